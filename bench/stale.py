"""Stale statistics: do the finish statements and the claim use the primary key when the planner's
statistics were taken before the run started? (issue 11; the write-up is docs/scale-notes.md)

On a private PostgreSQL (autovacuum off, so the statistics stay as they were; machine-like durability
otherwise): a workflow of bench/create.py's shape (1,000,001 jobs: half ready producers, half blocked
consumers), ANALYZE while nothing runs, then 50,000 producers put in `running` under one worker, as at the
start of a large run before autovacuum's next ANALYZE (spread over 500 workers; the statements
work on jobs of the first). Then EXPLAIN (ANALYZE, BUFFERS) of each hot
statement of torc_hpc/db/queries/jobs.sql (finish_completed, finish_completed_batch with 64 jobs,
finish_failed, finish_retry, finish_pending_failed, release_jobs, claim_jobs), each inside a transaction
that is rolled back so every statement sees the same state:

- stale:        custom plan (the parameters' values known), statistics from before the run;
- stale_generic: the generic plan a prepared statement may switch to (PREPARE + plan_cache_mode =
                force_generic_plan), same statistics;
- fresh:        after ANALYZE.

For each: the access path to `jobs` of every plan node that reads it, shared buffers touched, execution
time. The full text plans go to the file named by TORC_BENCH_PLANS (default /tmp/torc-stale-plans.txt).

    python -m bench stale [JOBS [RUNNING]]       # default 1000000 50000
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from datetime import datetime, timezone

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bench.common import emit, server_version
from bench.create import spec_for
from bench.pgcpu import migrated_database, private_server
from torc_hpc.db.queries import q

BIG = 2**50
INT_MAX = 2**31 - 1   # num_cpus and num_gpus are int: an untyped PREPARE infers int for their parameters
PARAM = re.compile(r"%\((\w+)\)s")
WORKERS = 500     # the running jobs are spread over this many workers, as in a large run
def _common(job: dict, worker: int, run_id: int) -> dict:
    now = datetime.now(timezone.utc)
    return {"job_id": job["id"], "run_id": run_id, "attempt_id": job["attempt_id"], "worker_id": worker,
            "return_code": 0, "started_at": now, "completed_at": now, "exec_time_s": 0.1,
            "peak_memory_bytes": None, "cpu_time_s": None}


def put_running(conn, wf: int, workers: list[int], running: int) -> None:
    """The first `running` ready jobs of the workflow become running, spread round-robin over `workers`."""
    conn.execute("UPDATE jobs j SET status = 'running', worker_id = (%s::bigint[])[1 + r.n %% %s], "
                 "started_at = now() FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM jobs "
                 "WHERE workflow_id = %s AND status = 'ready' ORDER BY id LIMIT %s) r WHERE j.id = r.id",
                 (workers, len(workers), wf, running))


def running_cases(conn, wf: int, worker: int) -> dict[str, dict]:
    """cases() for the running jobs of the workflow: single statements on `worker`'s jobs."""
    run_id = conn.execute("SELECT run_id FROM workflows WHERE id = %s", (wf,)).fetchone()[0]
    rows = conn.execute("SELECT id, attempt_id, worker_id FROM jobs WHERE workflow_id = %s AND status = 'running' "
                        "ORDER BY id", (wf,)).fetchall()
    as_dicts = [{"id": r[0], "attempt_id": r[1], "worker_id": r[2]} for r in rows]
    return cases(wf, worker, run_id, [r for r in as_dicts if r["worker_id"] == worker],
                 [r for r in as_dicts if r["worker_id"] != worker])


def cases(wf: int, worker: int, run_id: int, mine: list[dict], others: list[dict]) -> dict[str, dict]:
    """Parameters of each statement: single jobs of `worker`, a batch of 64 jobs from the other workers."""
    a, b, c, d, e = mine[:5]
    failed = {"attempt_status": "failed", "record_result": True, "from_status": "running",
              "detail": Jsonb({}), "return_code": 1}
    batch = others[-64:]
    now = datetime.now(timezone.utc)
    return {
        "finish_completed": _common(a, worker, run_id),
        "finish_completed_batch": {
            "worker_id": worker, "job_ids": [j["id"] for j in batch], "run_ids": [run_id] * len(batch),
            "attempt_ids": [j["attempt_id"] for j in batch], "started": [now] * len(batch),
            "completed": [now] * len(batch), "exec_time": [0.1] * len(batch), "peak_memory": [None] * len(batch),
            "cpu_time": [None] * len(batch)},
        "finish_failed": {**_common(b, worker, run_id), **failed, "status": "failed", "event_kind": "failed"},
        "finish_retry": {**_common(c, worker, run_id), **failed},
        "finish_pending_failed": {**_common(d, worker, run_id), **failed},
        "release_jobs": {"workflow_id": wf, "worker_id": worker, "job_ids": [e["id"]]},
        "claim_jobs": {"workflow_id": wf, "worker_id": worker, "cpus": INT_MAX, "gpus": INT_MAX, "memory": BIG, "limit": 2,
                       "time_left_s": 2**31 - 1, "scheduler": None, "window": 1000, "job_cpus": INT_MAX,
                       "job_gpus": INT_MAX, "job_memory": BIG, "label_key": "", "with_outputs": False},
    }


def _nodes(plan: dict, out: list) -> list:
    if plan.get("Relation Name") == "jobs" or plan.get("Index Name", "").startswith("jobs"):
        out.append(f"{plan['Node Type']}" + (f" using {plan['Index Name']}" if plan.get("Index Name") else "")
                   + f" (est {plan.get('Plan Rows')}, actual {plan.get('Actual Rows')} × {plan.get('Actual Loops')})")
    for child in plan.get("Plans", []):
        _nodes(child, out)
    return out


def _summary(doc: list) -> dict:
    top = doc[0]
    plan = top["Plan"]
    return {"jobs_access": _nodes(plan, []), "buffers": plan.get("Shared Hit Blocks", 0) + plan.get(
        "Shared Read Blocks", 0), "ms": round(top["Execution Time"], 3),
        "planning_ms": round(top.get("Planning Time", 0), 3)}


def explain(conn, text: str, params: dict, *, generic: bool, setup: tuple[str, ...] = ()) -> tuple[dict, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of a statement, as JSON (for the summary) and as text (for people), each
    in its own rolled-back transaction so both see the same state: (summary, text)."""
    out = []
    for fmt in ("FORMAT JSON", "FORMAT TEXT"):
        with conn.transaction(force_rollback=True):
            for s in setup:
                conn.execute(s)
            if not generic:
                rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, {fmt}) " + text, params).fetchall()
            else:
                # A prepared statement's generic plan: the plan does not see the values.
                names: list[str] = []

                def number(m) -> str:
                    if m[1] not in names:
                        names.append(m[1])
                    return f"${names.index(m[1]) + 1}"

                conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                conn.execute(sql.SQL("PREPARE torc_stale AS {}").format(sql.SQL(PARAM.sub(number, text))))
                args = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
                rows = conn.execute(sql.SQL(f"EXPLAIN (ANALYZE, BUFFERS, {fmt}) EXECUTE torc_stale ({{}})").format(args)
                                    ).fetchall()
                conn.execute("DEALLOCATE torc_stale")
        out.append(rows)
    return _summary(out[0][0][0]), "\n".join(r[0] for r in out[1])


def main(jobs: int = 1_000_000, running: int = 50_000) -> dict:
    from torc_hpc.db import Database
    from torc_hpc.spec import expand_workflow, load_spec_text

    plans_path = os.environ.get("TORC_BENCH_PLANS", "/tmp/torc-stale-plans.txt")
    results: dict[str, dict] = {}
    with private_server({"autovacuum": "off", "max_wal_size": "4GB"}) as pg:
        version = server_version(pg.url())
        url = migrated_database(pg, "stale")
        s, loc = load_spec_text(spec_for(jobs), "pairs.yaml")
        with Database(url, migrate=False) as db, tempfile.TemporaryDirectory() as d:
            wf = db.create_workflow(expand_workflow(s, loc), spec_path=None, working_dir=d)
            workers = [db.register_worker(wf, hostname="bench", pid=1, num_cpus=1000, num_gpus=0,
                                          memory_bytes=BIG) for _ in range(max(1, min(WORKERS, running // 100)))]
            worker = workers[0]
        with psycopg.connect(url, autocommit=True) as conn, open(plans_path, "w") as out:
            conn.execute("VACUUM ANALYZE")      # statistics while nothing runs
            t = time.perf_counter()
            put_running(conn, wf, workers, running)
            conn.execute("CHECKPOINT")
            setup_s = time.perf_counter() - t
            work = running_cases(conn, wf, worker)
            for label, generic in (("stale", False), ("stale_generic", True)):
                for name, params in work.items():
                    summary, txt = explain(conn, q(name), params, generic=generic)
                    results.setdefault(name, {})[label] = summary
                    out.write(f"==== {name} · {label}\n{txt}\n\n")
            conn.execute("ANALYZE jobs")
            for name, params in work.items():
                for label, generic in (("fresh", False), ("fresh_generic", True)):
                    summary, txt = explain(conn, q(name), params, generic=generic)
                    results[name][label] = summary
                    out.write(f"==== {name} · {label}\n{txt}\n\n")
    for name, r in results.items():
        print(f"# {name}: " + " · ".join(f"{label} {v['buffers']} buf {v['ms']} ms [{'; '.join(v['jobs_access'][:2])}]"
                                         for label, v in r.items()), file=sys.stderr, flush=True)
    # The finish statements (and release_jobs) must reach jobs by key; the claim walks jobs_ready_idx, and its
    # first run after many jobs left `ready` steps over their dead index entries (autovacuum's matter, not the
    # statistics'): it is reported above, not judged here.
    worst = max(((k, v) for k, v in results.items() if k != "claim_jobs"),
                key=lambda kv: kv[1]["stale"]["buffers"] / max(kv[1]["fresh"]["buffers"], 1))
    ratio = worst[1]["stale"]["buffers"] / max(worst[1]["fresh"]["buffers"], 1)
    return emit({"name": "stale_plans", "value": worst[1]["stale"]["buffers"], "unit": f"buffers ({worst[0]}, stale)",
                 "peer": "the same after ANALYZE", "peer_value": worst[1]["fresh"]["buffers"], "ratio": ratio,
                 "target": "≤ 2 (primary key whatever the statistics)", "meets_target": ratio <= 2,
                 "worst_generic_ratio": max(r["stale_generic"]["buffers"] / max(r["fresh"]["buffers"], 1)
                                            for r in results.values()),
                 "jobs": jobs, "running": running, "setup_s": setup_s, "plans_file": plans_path,
                 "statements": results, "server": version})


if __name__ == "__main__":
    main()
