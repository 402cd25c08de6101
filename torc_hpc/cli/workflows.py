"""`torc workflows …`: create, plan, list, status, cancel, delete, archive, reset-status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from torc_hpc import retention
from torc_hpc import workflows as ops
from torc_hpc.cli import common
from torc_hpc.cli.common import (FormatOpt, MaxDependenciesOpt, MaxJobsOpt, WideOpt, WorkflowArg,
                                 expansion_limits, open_db, script_setting)
from torc_hpc.cli.output import Format, console, emit_json, emit_rows
from torc_hpc.cli.plan import plan as plan_command
from torc_hpc.cli.run import print_summary
from torc_hpc.slurm import ops as slurm_ops
from torc_hpc.slurm.client import default_client

app = typer.Typer(help="Create, plan, list, cancel, delete, archive and reset workflows.", no_args_is_help=True)
app.command("plan")(plan_command)

OutputDirOpt = typer.Option(None, "--output-dir", "-o", show_default=False,
                            help="where job logs go; default: output_dir in the config file, else torc_output")


@app.command("create")
def workflows_create(spec: Path = typer.Argument(..., metavar="SPEC", help="workflow spec: YAML, JSON, JSON5 or KDL",
                                                 show_default=False),
                     output_dir: Optional[str] = OutputDirOpt,
                     max_jobs: int = MaxJobsOpt, max_dependencies: int = MaxDependenciesOpt,
                     fmt: Format = FormatOpt):
    """Validate a spec and store the workflow without running it (nothing is written if the spec has any error).

    Every error names the file, the line, the job and the field (exit code 2). Sizes are bounded (see
    the spec reference in README); --max-jobs and --max-dependencies raise the expansion limits. Files
    that jobs read and no job writes must exist (paths relative to the current directory).

    Example: `torc workflows create sweep.yaml && torc run last`
    """
    with open_db() as db:
        wf_id = ops.create_from_file(db, spec, output_dir=script_setting("output_dir", output_dir, "--output-dir"),
                                     limits=expansion_limits(max_jobs, max_dependencies))
        n = sum(db.status_counts(wf_id).values())
    if fmt is not Format.table:
        emit_json({"id": wf_id})
    else:
        console.print(f"created workflow [bold]{wf_id}[/bold] with {n} jobs · run it: torc run {wf_id}")


@app.command("list")
def workflows_list(project: Optional[str] = typer.Option(None, "--project", help="only this project's workflows"),
                   wide: bool = WideOpt, fmt: Format = FormatOpt):
    """All workflows with job counts by status, newest first.

    Example: `torc workflows list --wide`, `torc workflows list --project climate`
    """
    with open_db() as db:
        rows = db.all("list_workflows", project=project)
    emit_rows(rows, ["id", "name", "total", "completed", "running", "ready", "blocked", "failed", "pending_failed",
                     "created_at"], fmt,
              wide_columns=["project", "run_id", "terminated", "canceled_jobs", "canceled"], wide=wide, flex="name",
              empty="no workflows yet: torc run SPEC (or torc workflows create SPEC)")


@app.command("show")
def workflows_show(workflow_id: str = WorkflowArg(), fmt: Format = FormatOpt):
    """What the spec said beyond its jobs: project, user, metadata, slurm_defaults, env, execution_config,
    resource_monitor, files, user_data and actions.

    The spec's `user` is shown as written; the workflow belongs to its owner (the database role that
    created it), never to that field.

    Example: `torc workflows show last`
    """
    with open_db() as db:
        d = ops.details(db, common.workflow_id(db, workflow_id))
    if fmt is not Format.table:
        emit_json(d)
        return
    plain = ["id", "name", "description", "owner", "spec_user", "project", "run_id", "jobs", "working_dir",
             "output_dir", "spec_path", "created_at"]
    for k in plain:
        if d.get(k) is not None:
            label = "user (from the spec; not the owner)" if k == "spec_user" else k
            console.print(f"[bold]{label}[/bold]: {escape(str(d[k]))}", highlight=False)
    for k in ("metadata", "slurm_defaults", "env", "execution_config", "resource_monitor"):
        if d.get(k):
            console.print(f"[bold]{k}[/bold]: {escape(json.dumps(d[k]))}", highlight=False)
    if d["files"]:
        emit_rows(d["files"], ["name", "path", "writers", "readers"], fmt, title="files")
    if d["user_data"]:
        emit_rows(d["user_data"], ["name", "data", "is_ephemeral", "updated_at"], fmt, title="user_data")
    if d["actions"]:
        emit_rows(d["actions"], ["position", "trigger_type", "action_type", "config", "selected_count", "fired_at"],
                  fmt, title="actions (run by the worker and the watcher)")
    if d.get("datasets"):
        emit_rows(d["datasets"], ["name", "path", "writers", "readers", "finalized_at", "file_count", "total_bytes",
                                  "digest"], fmt, title="datasets (fingerprinted when their writers finish)")
    if d.get("lineages"):
        emit_rows(d["lineages"], ["lineage", "iterations", "converged_at", "state"], fmt,
                  title=f"spawn lineages (dynamic_jobs: at most {d['dynamic_max_iterations']} spawns each)")


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

    The workflow is marked canceled first (nothing more is claimed, idle workers leave at once), then its
    waiting jobs are canceled in short transactions of a few thousand jobs. If it is interrupted, run it
    again: it carries on where it stopped.

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
                     yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
                     fmt: Format = FormatOpt):
    """Delete a workflow with its jobs, results and events (log files stay on disk).

    It is marked first (nothing more is claimed from it, other commands refuse it), then its rows go in
    short transactions. If it is interrupted, run it again to finish. To keep a copy, use
    `torc workflows archive WF` instead.

    Example: `torc workflows delete 3 --yes`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        if not yes and not typer.confirm(f"delete workflow {wf_id} and all its records?"):
            raise typer.Exit(1)
        counts = db.delete_workflow(wf_id)
    if fmt is not Format.table:
        emit_json({"id": wf_id, "deleted": counts})
    else:
        console.print(f"workflow {wf_id} deleted ({counts['jobs']} jobs, {counts['results']} results, "
                      f"{counts['events']} events)")


@app.command("archive")
def workflows_archive(workflow_id: str = WorkflowArg(),
                      output: Optional[Path] = typer.Option(
                          None, "--output", "-o",
                          help="file to write (.json, or .json.gz compressed); default torc_archive_wfN.json.gz"),
                      keep: bool = typer.Option(False, "--keep", help="export only; do not delete the workflow"),
                      fmt: Format = FormatOpt):
    """Export everything about a finished workflow to one JSON file, then delete it from the database.

    The file holds the workflow row and every row of its failure handlers, rules, Slurm shapes, watcher
    state, workers, allocations, jobs, dependencies, results and events, each table a list of objects with
    the database's column names (one row per line; `jq` reads it, and `torc_hpc.retention.read_archive`
    streams it back in Python). It is written in bounded memory from one consistent snapshot, made durable,
    and only then is the workflow deleted. Refused while jobs run or workers are alive.

    Example: `torc workflows archive 3 -o sweep.json.gz`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        ops.touch(db, wf_id)
        r = retention.archive_workflow(db, wf_id, output, delete=not keep)
    if fmt is not Format.table:
        emit_json({"id": wf_id, "path": r.path, "bytes": r.bytes, "counts": r.counts, "deleted": r.deleted})
    else:
        console.print(f"workflow {wf_id} archived to {r.path} ({r.bytes / 2**20:.1f} MiB: "
                      f"{r.counts['jobs']} jobs, {r.counts['results']} results, {r.counts['events']} events)"
                      + ("; deleted from the database" if r.deleted else "; kept in the database (--keep)"))


@app.command("reset-status")
def workflows_reset_status(workflow_id: str = WorkflowArg(),
                           failed_only: bool = typer.Option(
                               False, "--failed-only",
                               help="reset only failed, canceled, terminated and pending_failed jobs"),
                           fmt: Format = FormatOpt):
    """Start a new run: reset jobs (all, or only the failed ones) so `torc run WF` carries on.

    The run id increments and attempt ids start again at 1; completed jobs keep their results. Only the
    jobs reset and their waiting children (which wait for them again) are rewritten.

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
