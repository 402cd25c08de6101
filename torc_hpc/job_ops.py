"""Operations on the jobs of a workflow that both the CLI and the MCP server (`torc mcp`) call: inspect a
job and its logs, list jobs by state, find jobs that ran out of memory or time, change a job's requests,
restart (reset) jobs, cancel jobs, and resubmit Slurm allocations.

Reads return plain dicts with stable field names (the MCP tools return them as JSON). Changes write an
event naming who decided; several jobs at once are all-or-nothing, with a message per job that cannot
change (DecisionRejected).
"""

from __future__ import annotations

from dataclasses import asdict

from torc_hpc import logs
from torc_hpc.core.recovery import adjust, classify
from torc_hpc.core.states import JobStatus
from torc_hpc.core.units import format_duration, format_memory, parse_duration, parse_memory
from torc_hpc.db.repo import Attempt, Database, finish_step, retry_conflicts
from torc_hpc.errors import DecisionRejected, NotFound, TorcError
from torc_hpc.limits import (AGENT_LIST_MAX_JOBS, AGENT_LOG_MAX_LINES, AGENT_MAX_ITEMS, AGENT_REASON_MAX_CHARS,
                             AGENT_SCAN_MAX_RESULTS, LOG_TAIL_MAX_BYTES)
from torc_hpc.triage import Decider

STREAMS = ("stdout", "stderr", "recovery_stdout", "recovery_stderr")
CANCELABLE = ("blocked", "ready", "pending_failed")
FAILED_STATES = ("failed", "terminated")


def _requests(row: dict) -> dict:
    """A job's requests as people write them and as numbers."""
    return {"num_cpus": row["num_cpus"], "memory": format_memory(row["memory_bytes"]),
            "memory_bytes": row["memory_bytes"], "runtime": format_duration(row["runtime_s"]),
            "runtime_s": row["runtime_s"]}


def _minutes(seconds: float | None) -> float | None:
    return round(seconds / 60, 3) if seconds is not None else None


def _job_rows(db: Database, workflow_id: int, statuses: list[str]) -> tuple[int, list[dict]]:
    total = db.one("count_jobs_in_statuses", workflow_id=workflow_id, statuses=statuses)["n"]
    rows = db.all("jobs_with_last_attempt", workflow_id=workflow_id, statuses=statuses, limit=AGENT_LIST_MAX_JOBS)
    return total, rows


def _brief(r: dict) -> dict:
    return {"job_id": r["job_id"], "name": r["name"], "command": r["command"], "status": r["status"],
            "attempt_id": r["attempt_id"], "return_code": r["return_code"], "run_id": r["run_id"],
            "exec_time_s": r["exec_time_s"], "peak_memory_bytes": r["peak_memory_bytes"]}


def _truncation(out: dict, total: int, shown: int) -> dict:
    if total > shown:
        out["warning"] = f"showing the first {shown} of {total} jobs (by id)"
    return out


def jobs_by_status(db: Database, workflow_id: int, status: str) -> dict:
    """Jobs of a workflow in one state (at most AGENT_LIST_MAX_JOBS; count says how many there are)."""
    db.workflow(workflow_id)
    try:
        status = JobStatus(str(status).strip().lower()).value
    except ValueError:
        raise TorcError(f"unknown job status {status!r}; one of: {', '.join(s.value for s in JobStatus)}") from None
    total, rows = _job_rows(db, workflow_id, [status])
    return _truncation({"workflow_id": workflow_id, "status": status, "count": total,
                        "jobs": [_brief(r) for r in rows]}, total, len(rows))


def failed_jobs(db: Database, workflow_id: int) -> dict:
    """Jobs that ended failed or terminated, with their last attempt (pending_failed ones have their own list)."""
    db.workflow(workflow_id)
    total, rows = _job_rows(db, workflow_id, list(FAILED_STATES))
    out = {"workflow_id": workflow_id, "failed_job_count": total, "failed_jobs": [_brief(r) for r in rows]}
    pending = db.one("count_jobs_in_statuses", workflow_id=workflow_id, statuses=["pending_failed"])["n"]
    if pending:
        out["pending_failed_count"] = pending
        out["hint"] = "pending_failed jobs await a decision: list_pending_failed_jobs shows them with their stderr"
    return _truncation(out, total, len(rows))


def job_details(db: Database, job_id: int) -> dict:
    """A job: command, state, requests, failure handler, parents, latest result and where its logs are."""
    r = db.one("job_detail", job_id=job_id)
    if r is None:
        raise NotFound(f"job {job_id} does not exist (or your database role cannot see it)")
    wf = db.workflow(r["workflow_id"])
    parents = [p["parent_id"] for p in db.all("job_parent_ids", job_id=job_id, limit=AGENT_LIST_MAX_JOBS)]
    out = {"job_id": r["job_id"], "workflow_id": r["workflow_id"], "name": r["name"], "command": r["command"],
           "status": r["status"], "attempt_id": r["attempt_id"], "return_code": r["return_code"],
           "priority": r["priority"], "failure_handler": r["failure_handler"], "scheduler": r["scheduler"],
           "cancel_on_blocking_job_failure": r["cancel_on_blocking_job_failure"],
           "depends_on_job_ids": parents, "unfinished_parents": r["unfinished_parents"],
           "resource_requirements": {**_requests(r), "num_gpus": r["num_gpus"], "num_nodes": r["num_nodes"],
                                     "name": r["resource_requirements"]},
           "latest_result": None}
    if r["run_id"] is not None:
        paths = logs.attempt_logs_of(wf, r, job_id, r["run_id"], r["result_attempt_id"], r["result_status"])
        out["latest_result"] = {
            "run_id": r["run_id"], "attempt_id": r["result_attempt_id"], "status": r["result_status"],
            "return_code": r["result_return_code"], "started_at": r["started_at"], "completed_at": r["completed_at"],
            "exec_time_s": r["exec_time_s"], "exec_time_minutes": _minutes(r["exec_time_s"]),
            "peak_memory_bytes": r["peak_memory_bytes"], "cpu_time_s": r["cpu_time_s"], "logs": paths.as_dict()}
    return out


def job_logs(db: Database, job_id: int, *, workflow_id: int | None = None, run_id: int | None = None,
             attempt_id: int | None = None, stream: str = "stderr", tail: int | None = None) -> dict:
    """The last `tail` lines of one attempt's log (default: the latest attempt that left a result, or the
    running one), bounded to LOG_TAIL_MAX_BYTES and made printable."""
    if stream not in STREAMS:
        raise TorcError(f"unknown log stream {stream!r}; one of: {', '.join(STREAMS)}")
    lines = AGENT_LOG_MAX_LINES if tail is None else tail
    if not 0 <= lines <= AGENT_LOG_MAX_LINES:
        raise TorcError(f"tail must be between 0 and {AGENT_LOG_MAX_LINES} lines, got {tail}")
    job = db.one("job_detail", job_id=job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist (or your database role cannot see it)")
    if workflow_id is not None and job["workflow_id"] != workflow_id:
        raise TorcError(f"job {job_id} belongs to workflow {job['workflow_id']}, not workflow {workflow_id}")
    wf = db.workflow(job["workflow_id"])
    status = None
    if run_id is None and attempt_id is None and job["status"] == JobStatus.RUNNING:
        run_id, attempt_id = wf["run_id"], job["attempt_id"]
    else:
        found = db.one("attempt_of_job", job_id=job_id, run_id=run_id, attempt_id=attempt_id)
        if found:
            run_id, attempt_id, status = found["run_id"], found["attempt_id"], found["status"]
        else:
            run_id = run_id if run_id is not None else wf["run_id"]
            attempt_id = attempt_id if attempt_id is not None else job["attempt_id"]
    paths = logs.attempt_logs_of(wf, job, job_id, run_id, attempt_id, status)
    path = getattr(paths, stream)
    why = paths.why_missing(stream) if stream in ("stdout", "stderr") else None
    if why and (path is None or not path.exists()):
        raise NotFound(f"no {stream} log for job {job_id}, run {run_id}, attempt {attempt_id}: {why}")
    text = logs.tail(path, lines=lines, max_bytes=LOG_TAIL_MAX_BYTES)
    if text is None:
        raise NotFound(f"no {stream} log for job {job_id}, run {run_id}, attempt {attempt_id}: {path} does not "
                       f"exist (the attempt may not have started, or ran on a host whose files you cannot see)")
    out = {"job_id": job_id, "workflow_id": job["workflow_id"], "run_id": run_id, "attempt_id": attempt_id,
           "stream": stream, "path": str(path), "tail_lines": lines, "text": text}
    if path.stat().st_size > LOG_TAIL_MAX_BYTES:
        out["truncated"] = f"the file is {path.stat().st_size} bytes; only its last {LOG_TAIL_MAX_BYTES} were read"
    return out


def resource_utilization(db: Database, workflow_id: int, *, include_failed: bool = True,
                         memory_multiplier: float = 1.5, runtime_multiplier: float = 1.5) -> dict:
    """Jobs that ran out of memory or time, or came within 10 % of their request, found with the same
    rule `torc watch --recover` uses (core.recovery.classify), each with the request a retry would get."""
    db.workflow(workflow_id)
    statuses = ["completed"] + (list(FAILED_STATES) + ["pending_failed"] if include_failed else [])
    rows = db.all("jobs_with_last_attempt", workflow_id=workflow_id, statuses=statuses, limit=AGENT_SCAN_MAX_RESULTS)
    violations = []
    with_results = 0
    for r in rows:
        if r["run_id"] is None:
            continue
        with_results += 1
        cause = classify(return_code=r["return_code"], peak_memory_bytes=r["peak_memory_bytes"],
                         memory_bytes=r["memory_bytes"], exec_time_s=r["exec_time_s"], runtime_s=r["runtime_s"])
        if cause is None:
            continue
        new = adjust(cause, memory_bytes=r["memory_bytes"], runtime_s=r["runtime_s"],
                     memory_multiplier=memory_multiplier, runtime_multiplier=runtime_multiplier)
        memory = cause.value == "out_of_memory"
        used, asked = (r["peak_memory_bytes"], r["memory_bytes"]) if memory else (r["exec_time_s"], r["runtime_s"])
        v = {"job_id": r["job_id"], "job_name": r["name"], "status": r["status"], "return_code": r["return_code"],
             "cause": cause.value, "resource_type": "Memory" if memory else "Runtime",
             "specified": format_memory(asked) if memory else format_duration(asked),
             "peak_used": (f"{used / 2**20:.0f}m" if memory else format_duration(int(used))) if used else None,
             "over_utilization": f"{100 * (used - asked) / asked:+.1f}%" if used and asked else None}
        if memory:
            v["suggested_memory"] = format_memory(new.memory_bytes)
        else:
            v["suggested_runtime"] = format_duration(new.runtime_s)
        violations.append(v)
    out = {"workflow_id": workflow_id, "total_results": with_results, "over_utilization_count": len(violations),
           "violations": violations,
           "how": "out of memory: return code 137, or peak memory >= 90% of the request; timeout: return code 152, "
                  "or run time >= 90% of the request (the rule `torc watch --recover` applies)"}
    if violations:
        out["next_steps"] = ("update_job_resources sets new requests (suggested_* above); then restart_jobs for "
                             "failed ones, or classify_and_resolve_failures with memory/runtime for pending_failed ones")
    if len(rows) >= AGENT_SCAN_MAX_RESULTS:
        out["warning"] = f"looked at the first {AGENT_SCAN_MAX_RESULTS} jobs (by id) only"
    return out


def _check_reason(reason) -> None:
    if reason is not None and (not isinstance(reason, str) or len(reason) > AGENT_REASON_MAX_CHARS):
        raise TorcError(f"reason must be text of at most {AGENT_REASON_MAX_CHARS} characters")


def update_resources(db: Database, job_id: int, *, num_cpus=None, memory=None, runtime=None, reason=None,
                     decider: Decider) -> dict:
    """New CPU, memory or runtime requests for a job's next attempt (not while it runs)."""
    _check_reason(reason)
    if num_cpus is None and memory is None and runtime is None:
        raise TorcError("give at least one of num_cpus, memory (e.g. '8g') or runtime (e.g. 'PT2H')")
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
        raise TorcError(f"num_cpus must be a whole number of at least 1, got {num_cpus!r}")
    try:
        memory_bytes = parse_memory(memory) if memory is not None else None
        runtime_s = parse_duration(runtime) if runtime is not None else None
    except (ValueError, TypeError) as e:
        raise TorcError(str(e)) from None
    if memory_bytes is not None and memory_bytes <= 0 or runtime_s is not None and runtime_s <= 0:
        raise TorcError("memory and runtime must be more than 0")
    with db.conn.transaction():
        role = db.one("database_role")["db_role"]
        rows = db.all("lock_jobs_for_decision", job_ids=[job_id])
        if not rows:
            raise NotFound(f"job {job_id} does not exist (or your database role cannot see it)")
        old = rows[0]
        if old["status"] == JobStatus.RUNNING:
            raise TorcError(f"job {job_id} is running; change its requests after this attempt ends")
        new = db.one("set_job_resources", job_id=job_id, num_cpus=num_cpus, memory_bytes=memory_bytes,
                     runtime_s=runtime_s)
        db.event(old["workflow_id"], "resources_updated", job_id=job_id, attempt_id=old["attempt_id"],
                 run_id=old["run_id"],
                 detail={"reason": reason, "decided_by": decider.name, "via": decider.via, "db_role": role,
                         "num_cpus": [old["num_cpus"], new["num_cpus"]],
                         "memory_bytes": [old["memory_bytes"], new["memory_bytes"]],
                         "runtime_s": [old["runtime_s"], new["runtime_s"]]})
    return {"success": True, "job_id": job_id, "workflow_id": old["workflow_id"], "status": old["status"],
            "previous": _requests(old), "updated": _requests(new)}


def _check_jobs(job_ids, rows: dict[int, dict], workflow_id: int | None, allowed: tuple[str, ...] | None,
                verb: str) -> tuple[int | None, list[str]]:
    """Per-job problems of an all-or-nothing change to jobs `job_ids`. Pure. Returns the workflow they
    belong to (the given one, else the first job's) and the problems."""
    problems = []
    if not isinstance(job_ids, list) or not job_ids:
        return workflow_id, ["give at least one job id"]
    if len(job_ids) > AGENT_MAX_ITEMS:
        return workflow_id, [f"{len(job_ids)} job ids in one call; at most {AGENT_MAX_ITEMS}"]
    seen = set()
    for j in job_ids:
        if isinstance(j, bool) or not isinstance(j, int):
            problems.append(f"{j!r} is not a job id")
            continue
        if j in seen:
            problems.append(f"job {j}: named more than once")
            continue
        seen.add(j)
        row = rows.get(j)
        if row is None:
            problems.append(f"job {j} does not exist (or your database role cannot see it)")
            continue
        workflow_id = row["workflow_id"] if workflow_id is None else workflow_id
        if row["workflow_id"] != workflow_id:
            problems.append(f"job {j} belongs to workflow {row['workflow_id']}, not workflow {workflow_id}")
        elif row["status"] == JobStatus.RUNNING:
            problems.append(f"job {j} is running: it cannot be {verb} now (`torc workflows cancel "
                            f"{workflow_id}` stops running jobs)")
        elif allowed is not None and row["status"] not in allowed:
            problems.append(f"job {j} is {row['status']}: only {', '.join(allowed)} jobs can be {verb}")
    return workflow_id, problems


def cancel_jobs(db: Database, job_ids, *, workflow_id: int | None = None, reason=None, decider: Decider) -> dict:
    """Cancel jobs that have not started (blocked, ready, pending_failed), all or none; their dependents are
    canceled as after a failure (the same statement, finish_failed)."""
    _check_reason(reason)
    if workflow_id is not None:
        db.workflow(workflow_id)
    canceled_dependents = newly_ready = 0
    with db.conn.transaction():
        role = db.one("database_role")["db_role"]
        ids = [j for j in job_ids if isinstance(j, int) and not isinstance(j, bool)] if isinstance(job_ids, list) else []
        rows = {r["id"]: r for r in db.all("lock_jobs_for_decision", job_ids=ids)}
        wf_id, problems = _check_jobs(job_ids, rows, workflow_id, CANCELABLE, "canceled")
        if problems:
            raise DecisionRejected({"workflow_id": wf_id, "canceled_jobs": [], "canceled_count": 0,
                                    "errors": problems}, problems, what="job")
        detail = {"reason": reason or "canceled by request", "decided_by": decider.name, "via": decider.via,
                  "db_role": role}
        canceled = 0
        for job_id in sorted(ids):
            row = rows[job_id]
            attempt = Attempt(job_id, row["run_id"], row["attempt_id"], None, return_code=row["return_code"])
            name, params = finish_step("failed", attempt, status=JobStatus.CANCELED,
                                       from_status=JobStatus(row["status"]), record_result=False, detail=detail)
            res = db.one(name, **params)
            # finished 0: the cascade from a job canceled just before (its ancestor in this call) got it first.
            canceled += res["finished"]
            canceled_dependents += res["canceled"]
            newly_ready += res["newly_ready"]
        if newly_ready:
            db.notify_ready(wf_id)
    return {"workflow_id": wf_id, "canceled_jobs": sorted(ids), "canceled_count": canceled,
            "canceled_dependents": canceled_dependents, "errors": []}


def restart_jobs(db: Database, workflow_id: int, *, failed_only: bool = True, job_ids=None,
                 decider: Decider) -> dict:
    """Reset-status semantics: a new run for the failed, canceled, terminated and pending_failed jobs
    (failed_only), for every job (not failed_only; none may be running), or for the given jobs and their
    canceled dependents. Attempts start again at 1; `torc run` or new allocations run them."""
    db.workflow(workflow_id)
    if job_ids is None:
        row = db.reset_status(workflow_id, failed_only=failed_only)
    else:
        row = _restart_given(db, workflow_id, job_ids, decider)
    return {"workflow_id": workflow_id, "run_id": row["run_id"], "reset_count": row["reset"],
            "next_steps": f"`torc run {workflow_id}` runs them here; on Slurm, resubmit_workflow (or "
                          f"`torc watch {workflow_id} --auto-schedule`) gets allocations for them"}


@retry_conflicts
def _restart_given(db: Database, workflow_id: int, job_ids, decider: Decider) -> dict:
    """Reset the given jobs (and their canceled descendants) at REPEATABLE READ, retried on a conflict."""
    with db.repeatable_read():
        ids = [j for j in job_ids if isinstance(j, int) and not isinstance(j, bool)] \
            if isinstance(job_ids, list) else []
        rows = {r["id"]: r for r in db.all("lock_jobs_for_decision", job_ids=ids)}
        _, problems = _check_jobs(job_ids, rows, workflow_id, None, "restarted")
        if problems:
            raise DecisionRejected({"workflow_id": workflow_id, "reset": 0, "errors": problems}, problems,
                                   what="job")
        row = db.reset_jobs(workflow_id, ids, reason=f"restart_jobs via {decider.via} ({decider.name})")
        db.event(workflow_id, "workflow_reset", run_id=row["run_id"],
                 detail={"job_ids": ids, "jobs_reset": row["reset"], "decided_by": decider.name,
                         "via": decider.via})
        db.notify_ready(workflow_id)
    return row


# Where resubmit_workflow's account/partition/walltime come from, for the error that refuses a hostile one.
RESUBMIT_SOURCE = "the resubmit_workflow tool's arguments"


def resubmit_workflow(db: Database, workflow_id: int, client, *, account=None, partition=None, walltime=None,
                      num_allocations: int = 1, dry_run: bool = False, submitted_by: str = "mcp",
                      source: str = RESUBMIT_SOURCE) -> dict:
    """Submit Slurm allocations for the workflow's waiting jobs as `torc submit-slurm WF` does, with the
    sbatch options submit-slurm saved for it (account, partition, ...) unless given here. `source` names
    where account/partition/walltime came from in the error that refuses a value holding a newline."""
    from torc_hpc.slurm import allocations as allocs
    from torc_hpc.slurm import ops as slurm_ops
    from torc_hpc.watch.cycle import WatchConfig, _submit_options

    db.workflow(workflow_id)
    if isinstance(num_allocations, bool) or not isinstance(num_allocations, int) or not 1 <= num_allocations <= 100:
        raise TorcError("num_allocations must be a whole number from 1 to 100")
    db.run("ensure_watch_state", workflow_id=workflow_id)
    state = db.one("get_watch_state", workflow_id=workflow_id)
    opts = _submit_options(db, workflow_id, WatchConfig(submit=allocs.SubmitOptions(
        account=account, partition=partition, walltime=walltime, source=source)), state)
    if dry_run:
        requests = allocs.plan_requests(db, workflow_id, opts, client, num_allocations)
        if not requests:
            raise TorcError(f"workflow {workflow_id} has no ready or blocked jobs: nothing to submit for")
        return {"workflow_id": workflow_id, "dry_run": True,
                "would_submit": [{"scheduler": r.scheduler, "account": r.account, "partition": r.partition,
                                  **asdict(r.shape), "walltime": format_duration(r.shape.walltime_s)}
                                 for r in requests]}
    result = slurm_ops.submit_for_workflow(db, workflow_id, client, opts, num_allocations,
                                           submitted_by=submitted_by, reason="resubmit_workflow")
    return {"workflow_id": workflow_id, "dry_run": False, **result}
