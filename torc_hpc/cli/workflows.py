"""`torc workflows …`: create, plan, list, status, cancel, delete, reset-status."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from torc_hpc import workflows as ops
from torc_hpc.cli import common
from torc_hpc.cli.common import (FormatOpt, MaxDependenciesOpt, MaxJobsOpt, WideOpt, WorkflowArg,
                                 config_value, expansion_limits, open_db)
from torc_hpc.cli.output import Format, console, emit_json, emit_rows
from torc_hpc.cli.plan import plan as plan_command
from torc_hpc.cli.run import print_summary
from torc_hpc.slurm import ops as slurm_ops
from torc_hpc.slurm.client import default_client

app = typer.Typer(help="Create, plan, list, cancel, delete and reset workflows.", no_args_is_help=True)
app.command("plan")(plan_command)

OutputDirOpt = typer.Option(None, "--output-dir", "-o", show_default=False,
                            help="where job logs go; default: output_dir in the config file, else torc_output")


@app.command("create")
def workflows_create(spec: Path = typer.Argument(..., metavar="SPEC", help="workflow spec, YAML or JSON",
                                                 show_default=False),
                     output_dir: Optional[str] = OutputDirOpt,
                     max_jobs: int = MaxJobsOpt, max_dependencies: int = MaxDependenciesOpt,
                     fmt: Format = FormatOpt):
    """Validate a spec and store the workflow without running it (nothing is written if the spec has any error).

    Every error names the file, the line, the job and the field (exit code 2). Sizes are bounded (see
    the spec reference in README); --max-jobs and --max-dependencies raise the expansion limits.

    Example: `torc workflows create sweep.yaml && torc run last`
    """
    with open_db() as db:
        wf_id = ops.create_from_file(db, spec, output_dir=config_value("output_dir", output_dir),
                                     limits=expansion_limits(max_jobs, max_dependencies))
        n = sum(db.status_counts(wf_id).values())
    if fmt is not Format.table:
        emit_json({"id": wf_id})
    else:
        console.print(f"created workflow [bold]{wf_id}[/bold] with {n} jobs · run it: torc run {wf_id}")


@app.command("list")
def workflows_list(wide: bool = WideOpt, fmt: Format = FormatOpt):
    """All workflows with job counts by status, newest first.

    Example: `torc workflows list --wide`
    """
    with open_db() as db:
        rows = db.all("list_workflows")
    emit_rows(rows, ["id", "name", "total", "completed", "running", "ready", "blocked", "failed", "pending_failed",
                     "created_at"], fmt,
              wide_columns=["run_id", "terminated", "canceled_jobs", "canceled"], wide=wide, flex="name",
              empty="no workflows yet: torc run SPEC (or torc workflows create SPEC)")


@app.command("status")
def workflows_status(workflow_id: str = WorkflowArg(), fmt: Format = FormatOpt):
    """Counts by status, retries, where the logs are, the failed jobs (with their stderr) and what to do next.

    Example: `torc workflows status last`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        ops.touch(db, wf_id)
        s = ops.summary(db, wf_id)
    s["next_steps"] = ops.next_steps(s)
    if fmt is not Format.table:
        emit_json(s)
    else:
        print_summary(s)


@app.command("cancel")
def workflows_cancel(workflow_id: str = WorkflowArg(), fmt: Format = FormatOpt):
    """Cancel every job that has not started; workers stop running ones (recorded as terminated, 143).

    Example: `torc workflows cancel 3`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        n = db.cancel_workflow(wf_id)
        scanceled = slurm_ops.cancel_allocations(db, wf_id, default_client())
    if fmt is not Format.table:
        emit_json({"id": wf_id, "canceled_jobs": n, "scanceled_allocations": scanceled})
    else:
        console.print(f"workflow {wf_id} canceled: {n} job(s) canceled; running jobs are being stopped"
                      + (f"; scancel sent to {len(scanceled)} allocation(s)" if scanceled else ""))


@app.command("delete")
def workflows_delete(workflow_id: str = WorkflowArg(),
                     yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")):
    """Delete a workflow with its jobs, results and events (log files stay on disk).

    Example: `torc workflows delete 3 --yes`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        if not yes and not typer.confirm(f"delete workflow {wf_id} and all its records?"):
            raise typer.Exit(1)
        db.delete_workflow(wf_id)
    console.print(f"workflow {wf_id} deleted")


@app.command("reset-status")
def workflows_reset_status(workflow_id: str = WorkflowArg(),
                           failed_only: bool = typer.Option(
                               False, "--failed-only",
                               help="reset only failed, canceled, terminated and pending_failed jobs"),
                           fmt: Format = FormatOpt):
    """Start a new run: reset jobs (all, or only the failed ones) so `torc run WF` carries on.

    The run id increments and attempt ids start again at 1; completed jobs keep their results.

    Example: `torc workflows reset-status 3 --failed-only && torc run 3`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        ops.touch(db, wf_id)
        row = db.reset_status(wf_id, failed_only=failed_only)
    if fmt is not Format.table:
        emit_json({"id": wf_id, "run_id": row["run_id"], "reset": row["reset"]})
    else:
        console.print(f"workflow {wf_id}: {row['reset']} job(s) reset, now run {row['run_id']} · "
                      f"continue with: torc run {wf_id}")
