"""`torc workflows …`: create, list, status, cancel, delete, reset-status."""

from __future__ import annotations

from pathlib import Path

import typer

from torc_hpc import workflows as ops
from torc_hpc.cli.common import FormatOpt, MaxDependenciesOpt, MaxJobsOpt, open_db
from torc_hpc.cli.output import Format, console, emit_json, emit_rows
from torc_hpc.cli.run import _print_summary
from torc_hpc.slurm import ops as slurm_ops
from torc_hpc.slurm.client import default_client
from torc_hpc.spec import ExpansionLimits

app = typer.Typer(help="Create, list, cancel, delete and reset workflows.", no_args_is_help=True)


@app.command("create")
def workflows_create(spec: Path = typer.Argument(..., help="workflow spec, YAML or JSON"),
                     output_dir: str = typer.Option("torc_output", "--output-dir", "-o"),
                     max_jobs: int = MaxJobsOpt, max_dependencies: int = MaxDependenciesOpt,
                     fmt: Format = FormatOpt):
    """Validate a spec and store the workflow (nothing is written if the spec has any error).

    Every error names the file, the line, the job and the field (exit code 2). Sizes are bounded (see
    the spec reference in README); --max-jobs and --max-dependencies raise the expansion limits.
    """
    with open_db() as db:
        wf_id = ops.create_from_file(db, spec, output_dir=output_dir,
                                     limits=ExpansionLimits(max_jobs, max_dependencies))
        n = sum(db.status_counts(wf_id).values())
    if fmt is Format.json:
        emit_json({"id": wf_id})
    else:
        console.print(f"created workflow [bold]{wf_id}[/bold] with {n} jobs · run it: torc run {wf_id}")


@app.command("list")
def workflows_list(fmt: Format = FormatOpt):
    """All workflows with job counts by status."""
    with open_db() as db:
        rows = db.all("list_workflows")
    emit_rows(rows, ["id", "name", "run_id", "total", "completed", "running", "ready", "blocked", "failed",
                     "terminated", "canceled_jobs", "pending_failed", "canceled", "created_at"], fmt,
              empty="no workflows yet: torc workflows create SPEC")


@app.command("status")
def workflows_status(workflow_id: int, fmt: Format = FormatOpt):
    """Counts by status, retries and where the logs are."""
    with open_db() as db:
        ops.touch(db, workflow_id)
        s = ops.summary(db, workflow_id)
    if fmt is Format.json:
        emit_json(s)
    else:
        _print_summary(s)


@app.command("cancel")
def workflows_cancel(workflow_id: int, fmt: Format = FormatOpt):
    """Cancel every job that has not started; workers stop running ones (recorded as terminated, 143)."""
    with open_db() as db:
        n = db.cancel_workflow(workflow_id)
        scanceled = slurm_ops.cancel_allocations(db, workflow_id, default_client())
    if fmt is Format.json:
        emit_json({"id": workflow_id, "canceled_jobs": n, "scanceled_allocations": scanceled})
    else:
        console.print(f"workflow {workflow_id} canceled: {n} job(s) canceled; running jobs are being stopped"
                      + (f"; scancel sent to {len(scanceled)} allocation(s)" if scanceled else ""))


@app.command("delete")
def workflows_delete(workflow_id: int, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")):
    """Delete a workflow with its jobs, results and events (log files stay on disk)."""
    if not yes and not typer.confirm(f"delete workflow {workflow_id} and all its records?"):
        raise typer.Exit(1)
    with open_db() as db:
        db.delete_workflow(workflow_id)
    console.print(f"workflow {workflow_id} deleted")


@app.command("reset-status")
def workflows_reset_status(workflow_id: int,
                           failed_only: bool = typer.Option(
                               False, "--failed-only",
                               help="reset only failed, canceled, terminated and pending_failed jobs"),
                           fmt: Format = FormatOpt):
    """Start a new run: reset jobs (all, or only the failed ones) so `torc run WF` carries on.

    The run id increments and attempt ids start again at 1; completed jobs keep their results.
    """
    with open_db() as db:
        ops.touch(db, workflow_id)
        row = db.reset_status(workflow_id, failed_only=failed_only)
    if fmt is Format.json:
        emit_json({"id": workflow_id, "run_id": row["run_id"], "reset": row["reset"]})
    else:
        console.print(f"workflow {workflow_id}: {row['reset']} job(s) reset, now run {row['run_id']} · "
                      f"continue with: torc run {workflow_id}")

