"""`torc jobs …`, `torc results list`, `torc events list`: what ran and what happened."""

from __future__ import annotations

from typing import Optional

import typer

from torc_hpc import workflows as ops
from torc_hpc.cli.common import FormatOpt, open_db
from torc_hpc.cli.output import Format, console, emit_rows
from torc_hpc.core.states import JobStatus

app = typer.Typer(help="List jobs; decide on pending_failed jobs.", no_args_is_help=True)
results_app = typer.Typer(help="One row per attempt (return code, times, peak memory).", no_args_is_help=True)
events_app = typer.Typer(help="The audit log: every transition, with who and why.", no_args_is_help=True)


@app.command("list")
def jobs_list(workflow_id: int,
              status: Optional[JobStatus] = typer.Option(None, "--status", "-s", help="only jobs in this state"),
              fmt: Format = FormatOpt):
    """Jobs with status, attempt and last return code."""
    with open_db() as db:
        ops.touch(db, workflow_id)
        rows = db.all("list_jobs", workflow_id=workflow_id, status=status.value if status else None)
    emit_rows(rows, ["id", "name", "status", "attempt_id", "return_code", "num_cpus", "memory_bytes",
                     "runtime_s", "worker_id"], fmt)


ReasonOpt = typer.Option(None, "--reason", help="why (kept in the job's event, with who decided)")


@app.command("retry")
def jobs_retry(workflow_id: int, job_id: int, reason: Optional[str] = ReasonOpt,
               memory: Optional[str] = typer.Option(None, "--memory", help="new memory request, e.g. 8g"),
               runtime: Optional[str] = typer.Option(None, "--runtime", help="new runtime, e.g. PT2H or 02:00:00")):
    """Classify a pending_failed job as transient: it becomes ready with attempt + 1 (with more memory or
    time if you say so). The same decision an AI agent takes through `torc mcp`."""
    with open_db() as db:
        r = ops.decide_pending(db, workflow_id, job_id, retry=True, reason=reason, memory=memory, runtime=runtime)
    more = ", ".join(f"{k} {r[k]}" for k in ("memory", "runtime") if k in r)
    console.print(f"job {job_id} is ready again (attempt {r['new_attempt_id']}{', ' + more if more else ''}) · "
                  f"run it: torc run {workflow_id}")


@app.command("fail")
def jobs_fail(workflow_id: int, job_id: int, reason: Optional[str] = ReasonOpt):
    """Classify a pending_failed job as permanent: it fails and its dependents are canceled."""
    with open_db() as db:
        r = ops.decide_pending(db, workflow_id, job_id, retry=False, reason=reason)
    console.print(f"job {job_id} failed; {r['canceled_dependents']} dependent(s) canceled")


@results_app.command("list")
def results_list(workflow_id: int, fmt: Format = FormatOpt):
    """Every attempt: run, attempt, status, return code, duration, peak memory, CPU time."""
    with open_db() as db:
        ops.touch(db, workflow_id)
        rows = db.all("list_results", workflow_id=workflow_id)
    emit_rows(rows, ["id", "job_id", "job_name", "run_id", "attempt_id", "status", "return_code",
                     "exec_time_s", "peak_memory_bytes", "cpu_time_s", "completed_at"], fmt)


@events_app.command("list")
def events_list(workflow_id: int, after: int = typer.Option(0, help="only events with a larger id"),
                limit: int = typer.Option(1000, help="at most this many"), fmt: Format = FormatOpt):
    """The audit log, oldest first."""
    with open_db() as db:
        db.workflow(workflow_id)
        rows = db.all("list_events", workflow_id=workflow_id, after_id=after, limit=limit)
    emit_rows(rows, ["id", "ts", "job_id", "job_name", "kind", "from_status", "to_status", "attempt_id",
                     "run_id", "worker_id", "detail"], fmt)

