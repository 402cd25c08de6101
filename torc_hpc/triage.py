"""Deciding pending_failed jobs: one operation behind every front door (`torc jobs retry|fail`, the MCP
tools list_pending_failed_jobs and classify_and_resolve_failures, and through them `watch --ai-recovery`).

`plan` is pure: it checks each classification against the job it names and says, item by item, what it
would do or why it cannot. `classify_and_resolve` applies a whole plan in one transaction, or nothing;
a dry run applies it and rolls back, so it reports exactly what would happen (dependents canceled, the
new attempt) and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from torc_hpc import logs
from torc_hpc.core.states import JobStatus
from torc_hpc.core.units import format_duration, format_memory, parse_duration, parse_memory
from torc_hpc.db.repo import Attempt, Database, finish_step
from torc_hpc.errors import DecisionRejected, TorcError
from torc_hpc.limits import (AGENT_MAX_ITEMS, AGENT_PENDING_MAX_JOBS, AGENT_REASON_MAX_CHARS, AGENT_TAIL_LINES,
                             AGENT_TAIL_MAX_BYTES)

ACTIONS = ("retry", "fail")
ITEM_FIELDS = ("job_id", "action", "reason", "memory", "runtime")

GUIDANCE = (
    "Each job below failed with an exit code no failure-handler rule matched, so it waits for a decision; "
    "its dependents stay blocked meanwhile. Read stderr_tail (and stdout_tail) and decide per job. "
    "retry when the cause is outside the job and may be gone now: refused or reset connections, timeouts "
    "talking to a service, DNS failures, '503 Service Unavailable', I/O errors on shared storage, a node "
    "or GPU that failed, preemption. fail when running it again cannot help: syntax and import errors, "
    "missing modules, bad arguments or input data, assertion failures, a file the job needs that does not "
    "exist, permission denied. A job that ran out of memory or time (return code 137 or 152, peak memory or "
    "runtime near the request) can be retried with more: give memory (e.g. '8g') or runtime (e.g. 'PT2H'). "
    "When the evidence is unclear, leave the job out: it stays pending_failed for a person. Then call "
    "classify_and_resolve_failures with one item per job (job_id, action, reason); dry_run=true previews.")


@dataclass(frozen=True)
class Decider:
    """Who takes a decision, for its events: the front door and a name (the MCP client's name from the
    initialize handshake, or the user at the terminal). The database role is read in the transaction."""

    via: str
    name: str


@dataclass
class Item:
    """One classification, parsed: either the decision or the reason it cannot apply."""

    index: int
    job_id: int | None = None
    action: str | None = None
    reason: str | None = None
    memory_bytes: int | None = None
    runtime_s: int | None = None
    error: str | None = None


def _show(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def parse_item(index: int, raw) -> Item:
    """Check one classification's own fields (not the job it names)."""
    item = Item(index)
    if not isinstance(raw, dict):
        item.error = f"classification {index + 1}: expected an object with job_id and action, got {_show(raw)}"
        return item
    job_id = raw.get("job_id")
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        item.error = f"classification {index + 1}: job_id must be an integer job id, got {_show(job_id)}"
        return item
    item.job_id = job_id
    where = f"job {job_id}"
    unknown = sorted(str(k) for k in raw if k not in ITEM_FIELDS)
    if unknown:
        item.error = f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(ITEM_FIELDS)})"
        return item
    action = raw.get("action")
    if not isinstance(action, str) or action.strip().lower() not in ACTIONS:
        item.error = f"{where}: action {_show(action)} is not one of: retry, fail"
        return item
    item.action = action.strip().lower()
    reason = raw.get("reason")
    if reason is not None and not isinstance(reason, str):
        item.error = f"{where}: reason must be text, got {_show(reason)}"
        return item
    if reason is not None and len(reason) > AGENT_REASON_MAX_CHARS:
        item.error = f"{where}: reason is {len(reason)} characters; at most {AGENT_REASON_MAX_CHARS} are kept"
        return item
    item.reason = reason
    memory, runtime = raw.get("memory"), raw.get("runtime")
    if (memory is not None or runtime is not None) and item.action != "retry":
        item.error = f"{where}: memory and runtime apply only to action 'retry'"
        return item
    try:
        if memory is not None:
            item.memory_bytes = parse_memory(memory)
            if item.memory_bytes <= 0:
                raise ValueError("memory must be more than 0")
        if runtime is not None:
            item.runtime_s = parse_duration(runtime)
            if item.runtime_s <= 0:
                raise ValueError("runtime must be more than 0 seconds")
    except (ValueError, TypeError) as e:
        item.error = f"{where}: {e}"
    return item


def requested_ids(raw_items: list) -> list[int]:
    """The job ids the classifications name (to look them up), whatever else is wrong with them."""
    return sorted({r["job_id"] for r in raw_items if isinstance(r, dict) and isinstance(r.get("job_id"), int)
                   and not isinstance(r.get("job_id"), bool)})


def plan(raw_items: list, jobs: dict[int, dict], workflow_id: int) -> list[Item]:
    """Every classification checked against the job it names. `jobs`: id → row (id, workflow_id, status),
    as the caller's database role sees them. Pure."""
    items = [parse_item(i, raw) for i, raw in enumerate(raw_items)]
    seen: set[int] = set()
    for item in items:
        if item.error:
            continue
        if item.job_id in seen:
            item.error = f"job {item.job_id}: classified more than once in this call"
            continue
        seen.add(item.job_id)
        row = jobs.get(item.job_id)
        if row is None:
            item.error = f"job {item.job_id} does not exist (or your database role cannot see it)"
        elif row["workflow_id"] != workflow_id:
            item.error = f"job {item.job_id} belongs to workflow {row['workflow_id']}, not workflow {workflow_id}"
        elif row["status"] != JobStatus.PENDING_FAILED:
            item.error = (f"job {item.job_id} is {row['status']}, not pending_failed: only pending_failed jobs "
                          f"await a decision (see `torc jobs list {workflow_id} --status pending_failed`)")
    return items


def _item_report(item: Item, row: dict | None) -> dict:
    out = {"job_id": item.job_id, "job_name": row["name"] if row else None, "action": item.action,
           "reason": item.reason}
    if item.memory_bytes is not None:
        out["memory"] = format_memory(item.memory_bytes)
    if item.runtime_s is not None:
        out["runtime"] = format_duration(item.runtime_s)
    return out


def classify_and_resolve(db: Database, workflow_id: int, raw_items, *, dry_run: bool, decider: Decider) -> dict:
    """Apply retry/fail decisions to pending_failed jobs: all in one transaction, or none.

    retry: the job turns ready with attempt + 1 (with new memory/runtime requests if given); fail: it turns
    failed and its dependents are canceled as for any failure. Each decision's event records the reason,
    who decided (decider) and the database role. Raises DecisionRejected (with the per-item report) when
    any item cannot apply; then nothing is written.
    """
    db.workflow(workflow_id)  # a clear "no such workflow" before anything about jobs
    if not isinstance(raw_items, list) or not raw_items:
        raise TorcError("give at least one classification: {job_id, action: 'retry' or 'fail', reason}")
    if len(raw_items) > AGENT_MAX_ITEMS:
        raise TorcError(f"{len(raw_items)} classifications in one call; at most {AGENT_MAX_ITEMS} "
                        f"(split them over several calls)")
    report = {"workflow_id": workflow_id, "dry_run": dry_run, "applied": False,
              "total_classifications": len(raw_items), "jobs_to_retry": 0, "jobs_to_fail": 0, "results": []}
    with db.conn.transaction() as tx:
        role = db.one("database_role")["db_role"]
        rows = {r["id"]: r for r in db.all("lock_jobs_for_decision", job_ids=requested_ids(raw_items))}
        items = plan(raw_items, rows, workflow_id)
        report["decided_by"] = {"via": decider.via, "name": decider.name, "db_role": role}
        problems = [i.error for i in items if i.error]
        if problems:
            for item in items:
                entry = _item_report(item, rows.get(item.job_id) if item.job_id is not None else None)
                if item.error:
                    entry.update(status="error", message=item.error)
                else:
                    entry.update(status="not_applied",
                                 message="valid, but nothing was written because other items are not")
                report["results"].append(entry)
            raise DecisionRejected(report, problems, what="classification")
        woke = False
        for item in items:
            row = rows[item.job_id]
            entry = _item_report(item, row)
            entry.update(_apply(db, workflow_id, item, row, decider, role))
            entry["status"] = "would_apply" if dry_run else "applied"
            report["results"].append(entry)
            report["jobs_to_retry" if item.action == "retry" else "jobs_to_fail"] += 1
            woke = woke or item.action == "retry" or entry.get("newly_ready", 0) > 0
        if dry_run:
            raise psycopg.Rollback(tx)
        if woke:
            db.notify_ready(workflow_id)
        report["applied"] = True
    if dry_run:
        report["next_steps"] = ("Nothing was changed. If these decisions are right, call "
                                "classify_and_resolve_failures again with dry_run=false.")
    elif report["jobs_to_retry"]:
        report["next_steps"] = (f"Retried jobs are ready: `torc run {workflow_id}` runs them here; on Slurm, "
                                f"resubmit_workflow (or `torc watch {workflow_id} --auto-schedule`) gets "
                                f"allocations for them.")
    else:
        report["next_steps"] = "Decisions applied."
    return report


def _apply(db: Database, workflow_id: int, item: Item, row: dict, decider: Decider, role: str) -> dict:
    """One decision's statements (inside the caller's transaction). Returns what changed."""
    detail = {"reason": item.reason, "decided_by": decider.name, "via": decider.via, "db_role": role,
              "return_code": row["return_code"]}
    out: dict = {}
    if item.memory_bytes is not None or item.runtime_s is not None:
        new = db.one("set_job_resources", job_id=row["id"], num_cpus=None, memory_bytes=item.memory_bytes,
                     runtime_s=item.runtime_s)
        db.event(workflow_id, "resources_updated", job_id=row["id"], attempt_id=row["attempt_id"],
                 run_id=row["run_id"],
                 detail={**detail, "memory_bytes": [row["memory_bytes"], new["memory_bytes"]],
                         "runtime_s": [row["runtime_s"], new["runtime_s"]]})
    attempt = Attempt(row["id"], row["run_id"], row["attempt_id"], None, return_code=row["return_code"] or 0)
    if item.action == "retry":
        step = finish_step("retry", attempt, from_status=JobStatus.PENDING_FAILED, record_result=False,
                           detail=detail)
    else:
        step = finish_step("failed", attempt, status=JobStatus.FAILED, from_status=JobStatus.PENDING_FAILED,
                           record_result=False, detail=detail)
    res = db.one(step[0], **step[1])
    if not res["finished"]:  # locked above as pending_failed: cannot happen unless the lock was lost
        raise TorcError(f"job {row['id']} changed while deciding; look again with "
                        f"`torc jobs list {workflow_id} --status pending_failed`")
    if item.action == "retry":
        out["new_status"], out["new_attempt_id"] = "ready", row["attempt_id"] + 1
    else:
        out["new_status"] = "failed"
        out["canceled_dependents"] = res["canceled"]
        out["newly_ready"] = res["newly_ready"]
    return out


def list_pending_failed(db: Database, workflow_id: int, *, limit: int = AGENT_PENDING_MAX_JOBS) -> dict:
    """pending_failed jobs with their last attempt and bounded, printable tails of its logs."""
    wf = db.workflow(workflow_id)
    total = db.one("count_jobs_in_statuses", workflow_id=workflow_id, statuses=["pending_failed"])["n"]
    rows = db.all("jobs_with_last_attempt", workflow_id=workflow_id, statuses=["pending_failed"], limit=limit)
    jobs = []
    for r in rows:
        run_id = r["run_id"] or wf["run_id"]
        paths = logs.attempt_logs_of(wf, r, r["job_id"], run_id, r["attempt_id"])
        entry = {"job_id": r["job_id"], "name": r["name"], "command": r["command"], "return_code": r["return_code"],
                 "run_id": run_id, "attempt_id": r["attempt_id"], "exec_time_s": r["exec_time_s"],
                 "exec_time_minutes": round(r["exec_time_s"] / 60, 3) if r["exec_time_s"] is not None else None,
                 "peak_memory_bytes": r["peak_memory_bytes"],
                 "memory": format_memory(r["memory_bytes"]), "memory_bytes": r["memory_bytes"],
                 "runtime": format_duration(r["runtime_s"]), "runtime_s": r["runtime_s"],
                 "num_cpus": r["num_cpus"], "stdout_path": str(paths.stdout) if paths.stdout else None,
                 "stderr_path": str(paths.stderr) if paths.stderr else None}
        for stream, path in (("stderr", paths.stderr), ("stdout", paths.stdout)):
            text = logs.tail(path, lines=AGENT_TAIL_LINES, max_bytes=AGENT_TAIL_MAX_BYTES)
            entry[f"{stream}_tail"] = text if text is not None else ""
            if text is None:
                entry[f"{stream}_read_error"] = paths.why_missing(stream) or f"no log file at {path}"
        jobs.append(entry)
    out = {"workflow_id": workflow_id, "pending_failed_count": total, "pending_failed_jobs": jobs,
           "guidance": GUIDANCE if jobs else "No jobs are awaiting a decision."}
    if total > len(jobs):
        out["truncated"] = (f"showing the first {len(jobs)} of {total}; decide these, then list again "
                            f"for the rest")
    return out
