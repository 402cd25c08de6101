"""`torc jobs …`, `torc results list`, `torc events list`: what ran and what happened.

Listings stream: rows are read through a server-side cursor and printed as they arrive, so a million-job
workflow starts printing at once and never sits in memory. Tables use fixed, compact columns (`--wide`
for all); `--format json` writes one array, `--format jsonl` one object per line.
"""

from __future__ import annotations

from typing import Optional

import typer

from torc_hpc import logs
from torc_hpc import workflows as ops
from torc_hpc.cli import common
from torc_hpc.cli.common import FormatOpt, JobArg, WideOpt, WorkflowArg, open_db
from torc_hpc.cli.output import Col, Format, console, stream_rows
from torc_hpc.core.states import JobStatus
from torc_hpc.limits import LISTING_FETCH_ROWS

app = typer.Typer(help="List jobs; decide on pending_failed jobs.", no_args_is_help=True)
results_app = typer.Typer(help="One row per attempt (return code, times, peak memory).", no_args_is_help=True)
events_app = typer.Typer(help="The audit log: every transition, with who and why.", no_args_is_help=True)

LimitOpt = typer.Option(None, "--limit", "-n", min=1, show_default=False, help="print at most N rows")
OffsetOpt = typer.Option(0, "--offset", min=0, help="skip the first N rows (pages: --offset 100 --limit 100)")

JOB_COLS = [
    Col("id", "id", 8, "int"), Col("name", "name", 16, flex=True), Col("status", "status", 14, "status"),
    Col("attempt_id", "att", 3, "int"), Col("return_code", "rc", 3, "int"), Col("num_cpus", "cpus", 4, "int"),
    Col("memory_bytes", "mem", 8, "bytes"), Col("runtime_s", "runtime", 7, "duration"),
    Col("num_gpus", "gpus", 4, "int", wide=True), Col("num_nodes", "nodes", 5, "int", wide=True),
    Col("priority", "prio", 4, "int", wide=True), Col("worker_id", "worker", 6, "int", wide=True),
    Col("started_at", "started", 11, "time", wide=True), Col("scheduler", "scheduler", 10, wide=True),
    Col("command", "command", 20, wide=True, flex=True),
]

RESULT_COLS = [
    Col("job_id", "job id", 8, "int"), Col("job_name", "job", 16, flex=True), Col("run_id", "run", 3, "int"),
    Col("attempt_id", "att", 3, "int"), Col("status", "status", 10, "status"), Col("return_code", "rc", 3, "int"),
    Col("exec_time_s", "time", 7, "duration"), Col("peak_memory_bytes", "peak mem", 8, "bytes"),
    Col("requested_memory_bytes", "req mem", 8, "bytes", wide=True),
    Col("requested_runtime_s", "req time", 8, "duration", wide=True),
    Col("cpu_time_s", "cpu", 7, "duration", wide=True), Col("started_at", "started", 11, "time", wide=True),
    Col("completed_at", "ended", 11, "time", wide=True), Col("worker_id", "worker", 6, "int", wide=True),
    Col("id", "result", 8, "int", wide=True),
]

EVENT_COLS = [
    Col("id", "id", 8, "int"), Col("ts", "time", 11, "time"), Col("job_name", "job", 16),
    Col("kind", "kind", 14), Col("attempt_id", "att", 3, "int"), Col("detail", "detail", 20, "json", flex=True),
    Col("job_id", "job id", 8, "int", wide=True), Col("from_status", "from", 14, wide=True),
    Col("to_status", "to", 14, wide=True), Col("run_id", "run", 3, "int", wide=True),
    Col("worker_id", "worker", 6, "int", wide=True),
]


def log_paths(wf: dict):
    """(job, run, attempt, stdio mode, deleted) → the attempt's log files as logs.attempt_logs(...).as_dict()
    gives them, built from strings: a million-row listing cannot afford four Path objects per row. A stream the
    job's stdio mode does not keep is null, and `not_kept` says why (also for files delete_on_success removed)."""
    base = str(logs.stdio_dir(wf))

    def paths(job_id: int, run_id: int, attempt_id: int, mode: str | None = None,
              deleted: bool = False) -> dict[str, str | None]:
        job = logs.stem("job", wf["id"], job_id, run_id, attempt_id)
        rec = logs.stem("recovery", wf["id"], job_id, run_id, attempt_id)
        out, err = logs.job_log_names(f"{base}/{job}", mode)
        d = {"stdout": out, "stderr": err, "recovery_stdout": f"{base}/{rec}.o", "recovery_stderr": f"{base}/{rec}.e"}
        if mode or deleted:
            why = {s: logs.not_kept(mode, s, deleted) for s in ("stdout", "stderr")}
            if any(why.values()):
                d["not_kept"] = {s: w for s, w in why.items() if w}
        return d
    return paths


def _job_json(wf: dict):
    paths = log_paths(wf)

    def convert(r: dict) -> dict:
        out = {k: v for k, v in r.items() if k not in ("log_run_id", "log_attempt_id", "logs_deleted")}
        out["stdio_mode"] = r["stdio_mode"] or "separate"
        out["logs"] = paths(r["id"], r["log_run_id"], r["log_attempt_id"], r["stdio_mode"],
                            r["logs_deleted"]) if r["log_attempt_id"] else None
        return out
    return convert


@app.command("list")
def jobs_list(workflow_id: str = WorkflowArg(),
              status: Optional[JobStatus] = typer.Option(None, "--status", "-s", show_default=False,
                                                         help="only jobs in this state"),
              limit: Optional[int] = LimitOpt, offset: int = OffsetOpt, wide: bool = WideOpt,
              fmt: Format = FormatOpt):
    """Jobs with status, attempt, last return code and what they request; JSON adds the latest attempt's
    log files (`logs`).

    Example: `torc jobs list last --status failed`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        wf = ops.touch(db, wf_id)
        rows = db.stream("stream_jobs", itersize=LISTING_FETCH_ROWS, workflow_id=wf_id, run_id=wf["run_id"],
                         status=status.value if status else None, limit=limit, offset=offset)
        stream_rows(rows, JOB_COLS, fmt, wide=wide, as_json=_job_json(wf),
                    empty=f"no jobs{' with status ' + status.value if status else ''} in workflow {wf_id}")


ReasonOpt = typer.Option(None, "--reason", help="why (kept in the job's event, with who decided)")


@app.command("retry")
def jobs_retry(workflow_id: str = WorkflowArg(), job: str = JobArg(), reason: Optional[str] = ReasonOpt,
               memory: Optional[str] = typer.Option(None, "--memory", help="new memory request, e.g. 8g"),
               runtime: Optional[str] = typer.Option(None, "--runtime", help="new runtime, e.g. PT2H or 02:00:00")):
    """Classify a pending_failed job as transient: it becomes ready with attempt + 1 (with more memory or
    time if you say so). The same decision an AI agent takes through `torc mcp`.

    Example: `torc jobs retry 3 sim_07 --memory 8g && torc run 3`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        j = common.job(db, wf_id, job)
        r = ops.decide_pending(db, wf_id, j["id"], retry=True, reason=reason, memory=memory, runtime=runtime)
    more = ", ".join(f"{k} {r[k]}" for k in ("memory", "runtime") if k in r)
    console.print(f"job {j['name']} ({j['id']}) is ready again (attempt {r['new_attempt_id']}"
                  f"{', ' + more if more else ''}) · run it: torc run {wf_id}")


@app.command("fail")
def jobs_fail(workflow_id: str = WorkflowArg(), job: str = JobArg(), reason: Optional[str] = ReasonOpt):
    """Classify a pending_failed job as permanent: it fails and its dependents are canceled.

    Example: `torc jobs fail 3 sim_07 --reason "bad input"`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        j = common.job(db, wf_id, job)
        r = ops.decide_pending(db, wf_id, j["id"], retry=False, reason=reason)
    console.print(f"job {j['name']} ({j['id']}) failed; {r['canceled_dependents']} dependent(s) canceled")


@results_app.command("list")
def results_list(workflow_id: str = WorkflowArg(),
                 job: Optional[str] = typer.Option(None, "--job", "-j", show_default=False,
                                                   help="only the attempts of this job (id or name)"),
                 limit: Optional[int] = LimitOpt, offset: int = OffsetOpt, wide: bool = WideOpt,
                 fmt: Format = FormatOpt):
    """Every attempt: run, attempt, status, return code, duration, peak memory; `--wide` adds CPU time and
    what the job requested; JSON adds each attempt's log files (`logs`).

    Example: `torc results list 3 --job sim_07 --wide`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        wf = ops.touch(db, wf_id)
        job_id = common.job(db, wf_id, job)["id"] if job else None

        paths = log_paths(wf)

        def as_json(r: dict) -> dict:
            out = {k: v for k, v in r.items() if k != "logs_deleted"}
            out["stdio_mode"] = r["stdio_mode"] or "separate"
            out["logs"] = paths(r["job_id"], r["run_id"], r["attempt_id"], r["stdio_mode"], r["logs_deleted"])
            return out

        rows = db.stream("stream_results", itersize=LISTING_FETCH_ROWS, workflow_id=wf_id, job_id=job_id,
                         limit=limit, offset=offset)
        stream_rows(rows, RESULT_COLS, fmt, wide=wide, as_json=as_json,
                    empty=f"no attempts have finished in workflow {wf_id} yet")


@events_app.command("list")
def events_list(workflow_id: str = WorkflowArg(),
                after: int = typer.Option(0, "--after", help="only events with a larger id (to follow the log)"),
                limit: int = typer.Option(1000, "--limit", "-n", min=1, help="at most this many"),
                wide: bool = WideOpt, fmt: Format = FormatOpt):
    """The audit log, oldest first: claims, completions, failures and the handler's decisions, resets.

    Example: `torc events list last --after 1200 --format jsonl`
    """
    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        db.workflow(wf_id)
        rows = db.stream("list_events", itersize=LISTING_FETCH_ROWS, workflow_id=wf_id, after_id=after,
                         limit=limit)
        stream_rows(rows, EVENT_COLS, fmt, wide=wide, empty=f"no events in workflow {wf_id} after id {after}")


@app.command("spawn")
def jobs_spawn(jobs: str = typer.Option(..., "--jobs", help="the new jobs: JSON text, @FILE, or - (stdin); a "
                                        "list of {name, command, depends_on, resource_requirements, priority, "
                                        "cancel_on_blocking_job_failure}; [] ends the lineage"),
               lineage: Optional[str] = typer.Option(None, "--lineage", help="which lineage this spawn counts "
                                                     "toward (default: TORC_ORCHESTRATOR_LINEAGE_ID)"),
               state: Optional[str] = typer.Option(None, "--state", help="JSON to keep with the lineage for its "
                                                   "next generation (`torc workflows show` lists it)"),
               workflow: Optional[int] = typer.Option(None, "--workflow", help="default: TORC_WORKFLOW_ID"),
               job: Optional[int] = typer.Option(None, "--job", help="the spawning job (must be running); "
                                                 "default: TORC_JOB_ID"),
               fmt: Format = FormatOpt):
    """From inside a running job: add jobs to its workflow that wait for this job (one transaction).

    Each lineage spawns at most `dynamic_jobs.max_iterations` times (the spec's; 1000 if it says nothing).
    A repeat of a call that already went through changes nothing. Spawned jobs get
    TORC_ORCHESTRATOR_LINEAGE_ID and TORC_ORCHESTRATOR_GENERATION (which spawn made them).

    Example: `torc jobs spawn --lineage caseA --jobs '[{"name": "step_2", "command": "./step.sh 2"}]'`
    """
    import json
    import os
    import sys

    from torc_hpc import spawn as spawning
    from torc_hpc.errors import TorcError

    if jobs == "-":
        text = sys.stdin.read()
    elif jobs.startswith("@"):
        try:
            with open(jobs[1:]) as f:
                text = f.read()
        except OSError as e:
            raise TorcError(f"cannot read the batch from {jobs[1:]}: {e}") from None
    else:
        text = jobs
    lineage = lineage or os.environ.get(spawning.LINEAGE_ENV)
    if not lineage:
        raise TorcError("give --lineage (or run in a spawned job, where TORC_ORCHESTRATOR_LINEAGE_ID is set)")
    env_wf, env_job = (None, None)
    if workflow is None or job is None:
        env_wf, env_job = spawning.caller_from_env()
    try:
        state_value = json.loads(state) if state is not None else None
    except ValueError as e:
        raise TorcError(f"--state must be JSON: {e}") from None
    with open_db() as db:
        out = spawning.spawn(db, workflow or env_wf, job or env_job, lineage, spawning.read_batch(text), state_value)
    if fmt is not Format.table:
        from torc_hpc.cli.output import emit_json

        emit_json(out)
    elif out["converged"]:
        console.print(f"lineage {lineage} converged after {out['iteration']} spawn(s)")
    elif out.get("repeated"):
        console.print(f"already spawned: {', '.join(j['name'] for j in out['spawned'])} (nothing changed)")
    else:
        console.print(f"spawned {len(out['spawned'])} job(s) in lineage {lineage} (spawn {out['iteration']}): "
                      + ", ".join(j["name"] for j in out["spawned"]))
