"""What the report draws, read from the database in a handful of streamed queries."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from torc_hpc import workflows as ops
from torc_hpc.db.repo import Database
from torc_hpc.limits import (LISTING_FETCH_ROWS, REPORT_MAX_ATTEMPTS, REPORT_MAX_FAILURES, REPORT_MAX_SERIES,
                              REPORT_STDERR_LINES)


class Job(NamedTuple):
    id: int
    name: str
    status: str
    attempt_id: int
    return_code: int | None
    num_cpus: int
    num_gpus: int
    memory_bytes: int
    runtime_s: int
    started_at: datetime | None
    worker_id: int | None
    failure_handler_id: int | None


class Attempt(NamedTuple):
    job_id: int
    run_id: int
    attempt_id: int
    status: str                 # completed | failed | terminated | running (no result yet)
    return_code: int | None
    started_at: datetime | None
    completed_at: datetime | None
    exec_time_s: float | None
    peak_memory_bytes: int | None
    cpu_time_s: float | None
    worker_id: int | None


@dataclass
class ReportData:
    workflow: dict
    generated_at: datetime
    counts: dict[str, int]
    jobs: list[Job]
    attempts: list[Attempt]                 # finished attempts, then the running ones
    attempts_truncated: bool
    parents: array = field(default_factory=lambda: array("q"))    # edge i: parents[i] → children[i] (job ids)
    children: array = field(default_factory=lambda: array("q"))
    workers: list[dict] = field(default_factory=list)
    allocations: list[dict] = field(default_factory=list)
    failures: dict = field(default_factory=dict)                  # ops.failure_report(...)
    failure_events: list[dict] = field(default_factory=list)
    retries: int = 0
    monitored: list[dict] = field(default_factory=list)     # resource_monitor summaries (attempt_resources)
    series: list[dict] = field(default_factory=list)        # their samples, one entry per attempt (time_series)


def monitoring(db: Database, workflow_id: int) -> tuple[list[dict], list[dict]]:
    """Monitoring summaries (at most REPORT_MAX_ATTEMPTS) and the samples of the REPORT_MAX_SERIES attempts
    with the most samples, each as one entry with its chunks joined."""
    summaries = db.all("attempt_resource_summaries", workflow_id=workflow_id, limit=REPORT_MAX_ATTEMPTS)
    chosen = {(s["job_id"], s["run_id"], s["attempt_id"])
              for s in sorted(summaries, key=lambda s: -s["samples"])[:REPORT_MAX_SERIES] if s["samples"]}
    series: dict[tuple, dict] = {}
    if chosen:
        for r in db.stream("attempt_resource_series", itersize=LISTING_FETCH_ROWS, workflow_id=workflow_id,
                           job_ids=sorted({k[0] for k in chosen})):
            key = (r["job_id"], r["run_id"], r["attempt_id"])
            if key not in chosen:
                continue
            e = series.setdefault(key, {"job_id": r["job_id"], "job_name": r["job_name"], "run_id": r["run_id"],
                                        "attempt_id": r["attempt_id"], "start": r["first_at"],
                                        "requested_memory_bytes": r["requested_memory_bytes"], "t": [], "cpu": [],
                                        "mem": []})
            n = len(r["cpu_percent"] or r["memory_kib"] or r["processes"] or [])
            t0 = (r["first_at"] - e["start"]).total_seconds()
            e["t"].extend(t0 + i * r["interval_ms"] / 1000 for i in range(n))
            e["cpu"].extend(r["cpu_percent"] or [None] * n)
            e["mem"].extend([k * 1024 for k in r["memory_kib"]] if r["memory_kib"] else [None] * n)
    return summaries, [series[k] for k in sorted(series)]


def collect(db: Database, workflow_id: int, now: datetime) -> ReportData:
    """Everything `render` needs. Jobs, attempts and edges stream through server-side cursors into compact
    tuples and arrays; attempts stop at REPORT_MAX_ATTEMPTS (the report says so)."""
    s = ops.summary(db, workflow_id, failures=False)
    wf = db.workflow(workflow_id)
    jobs = [Job(*r.values()) for r in db.stream("report_jobs", itersize=LISTING_FETCH_ROWS,
                                                  workflow_id=workflow_id)]
    attempts = [Attempt(*r.values()) for r in db.stream("report_attempts", itersize=LISTING_FETCH_ROWS,
                                                          workflow_id=workflow_id, limit=REPORT_MAX_ATTEMPTS + 1)]
    truncated = len(attempts) > REPORT_MAX_ATTEMPTS
    del attempts[REPORT_MAX_ATTEMPTS:]
    for j in jobs:
        if j.status == "running" and j.started_at is not None:
            attempts.append(Attempt(j.id, wf["run_id"], j.attempt_id, "running", None, j.started_at, None,
                                    (now - j.started_at).total_seconds(), None, None, j.worker_id))
    parents, children = array("q"), array("q")
    for r in db.stream("report_edges", itersize=10 * LISTING_FETCH_ROWS, workflow_id=workflow_id):
        parents.append(r["parent_id"])
        children.append(r["child_id"])
    return ReportData(
        workflow=wf, generated_at=now, counts=s["counts"], jobs=jobs, attempts=attempts,
        attempts_truncated=truncated, parents=parents, children=children,
        workers=db.all("report_workers", workflow_id=workflow_id),
        allocations=db.all("list_allocations", workflow_id=workflow_id),
        failures=ops.failure_report(db, wf, limit=REPORT_MAX_FAILURES, tail_lines=REPORT_STDERR_LINES),
        failure_events=db.all("report_failure_events", workflow_id=workflow_id, limit=REPORT_MAX_FAILURES * 5),
        retries=s["retries"], monitored=(mon := monitoring(db, workflow_id))[0], series=mon[1])
