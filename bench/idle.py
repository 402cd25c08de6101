"""Idle: PostgreSQL time per idle-worker check on a 10k-job and a 1M-job workflow (issue 11).

What an idle worker does (worker/pump.py `Pump.idle_check`, run by the worker's database thread when it
holds nothing, backing off from 50 ms to once a second): the reconciler at most once per heartbeat period,
one statement of two EXISTS probes (a running job, a ready job), a claim only when a job is ready, and
blocked_by_unrunnable only when nothing runs anywhere. The benchmark calls that method on a real
worker's database side, so it measures whatever the worker does when it changes (`idle_check()` below is
the one place to follow it).

Workflows: bench/create.py's shape (half producers, half consumers of two producers), created with the
same fast path (expand + COPY), sizes 10,001 and 1,000,001 jobs, on a private PostgreSQL with
pg_stat_statements (tests/pgserver.py; machine-like durability, bench/pgcpu.py). Two states, each after
VACUUM ANALYZE:

- waiting: half the jobs completed, 100 running under another live worker, the rest blocked, none ready:
  the worker waits for others (the common idle state of a large run);
- too_small: every producer ready but needing 64 CPUs, 100 running elsewhere; the idle worker has 1 CPU:
  each check's claim finds nothing that fits.

The figure is the private server's CPU time during the checks (bench/pgcpu.py: utime+stime of the
backend serving them *and* of the parallel workers PostgreSQL starts for the larger scans, but not of the
server's background processes, checkpointer and autovacuum (`cpu_ms_per_check` counts those too), 10 ms ticks,
over ≥ 10 checks and ~5 s, up to 50,000 checks) ÷ checks: on a shared, loaded machine that is what a check costs the server,
where pg_stat_statements' execution time (Δ total_exec_time + total_plan_time ÷ checks, reported beside
it with the statements that dominate) also counts waiting for a CPU or the disk. The serving backend's
own CPU is reported too (`backend_cpu_ms_per_check`): the difference is parallel workers. The claim alone is
measured separately in the too_small state, as the worker makes it (at most CLAIM_WINDOW ready jobs looked
at) and as its deep look past them (all ready jobs) that it makes at most every DEEP_CLAIM_S (60 s);
`too_small_per_second` is what such a worker costs per second (a check a second, that deep claim).

Peer: the same check on the 10k workflow. Target: 1M ÷ 10k ≤ 1.2 (for the waiting check).

    python -m bench idle [BIG [SMALL]]          # default 1000000 10000
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time

import psycopg

from bench.common import emit, server_version
from bench.create import spec_for
from bench.pgcpu import TICK, ServerCpu, _stat, migrated_database, postmaster_pid, private_server

TARGET = 1.2
# Server processes that work for nobody's query in particular (left out of work_cpu_ms_per_check).
_BACKGROUND = {"checkpointer", "background", "walwriter", "autovacuum", "logical", "postmaster", "archiver"}
MIN_CHECKS, MAX_CHECKS, SECONDS_PER_STATE = 10, 50_000, 5.0   # CPU comes in 10 ms ticks: many checks
RUNNING_ELSEWHERE = 100
TOO_BIG_CPUS = 64


def idle_check(worker, params) -> None:
    """One idle check of the worker: its database thread's `Pump.idle_check()` (the reconciler at most
    once per heartbeat period, two EXISTS probes, a claim when something is ready)."""
    worker.idle_check()


def make_worker(url: str, wf: int):
    """A worker's database side (worker/pump.py), connected and registered as `torc worker -j 1` would be:
    what an idle worker runs, without its processes."""
    from torc_hpc.worker.loop import Worker, WorkerConfig
    from torc_hpc.worker.pump import Pump
    from torc_hpc.worker.resources import Resources

    w = Worker(WorkerConfig(workflow_id=wf, database_url=url, resources=Resources(cpus=1, memory_bytes=2**34)))
    pump = Pump(url, wf, claim_params=w._claim_params, wake=lambda: None, holds_nothing=lambda: True,
                limits=w._limits, exit_when_done=True)
    w.pump = pump   # the worker's claim parameters read what its database side serves
    pump.connect()
    pump.register(hostname=socket.gethostname(), pid=os.getpid(), num_cpus=1, num_gpus=0, memory_bytes=2**34)
    pump.claim_params = w._claim_params
    return pump


def _statements(conn) -> tuple[float, int]:
    row = conn.execute("SELECT coalesce(sum(total_exec_time + total_plan_time), 0), coalesce(sum(calls), 0) "
                       "FROM pg_stat_statements WHERE query NOT LIKE '%%pg_stat_statements%%'").fetchone()
    return float(row[0]), int(row[1])


def _top(conn, n: int = 6) -> list[dict]:
    rows = conn.execute(
        "SELECT calls, (total_exec_time + total_plan_time) / greatest(calls, 1) AS ms_per_call, "
        "shared_blks_hit + shared_blks_read AS buffers, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS q "
        "FROM pg_stat_statements WHERE query NOT LIKE '%%pg_stat_statements%%' "
        "ORDER BY total_exec_time + total_plan_time DESC LIMIT %s", (n,)).fetchall()
    return [{"calls": r[0], "ms_per_call": round(r[1], 4), "buffers_per_call": round(r[2] / max(r[0], 1), 1),
             "statement": r[3]} for r in rows]


def measure(pg, admin, worker, op) -> dict:
    """Run `op` repeatedly (≥ MIN_CHECKS, about SECONDS_PER_STATE); server CPU and time per call."""
    backend = worker.db.conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
    admin_pid = admin.execute("SELECT pg_backend_pid()").fetchone()[0]
    op()  # warm: caches, plans
    admin.execute("SELECT pg_stat_statements_reset()")
    ms0, _ = _statements(admin)
    server = ServerCpu(postmaster_pid(pg.data), exclude=(admin_pid,)).start()
    cpu0 = _stat(backend)
    t0 = time.perf_counter()
    n = 0
    while n < MIN_CHECKS or (n < MAX_CHECKS and time.perf_counter() - t0 < SECONDS_PER_STATE):
        op()
        n += 1
    wall = time.perf_counter() - t0
    cpu1 = _stat(backend)
    total = server.stop()
    ms1, calls = _statements(admin)
    background = sum(v for k, v in total.by_kind.items() if k.split()[0] in _BACKGROUND)
    return {"checks": n, "cpu_ms_per_check": 1000 * total.server_s / n,
            "work_cpu_ms_per_check": 1000 * (total.server_s - background) / n,
            "server_ms_per_check": (ms1 - ms0) / n, "statements_per_check": calls / n,
            "cpu_by_process_kind_ms_per_check": {k: round(1000 * v / n, 3) for k, v in total.by_kind.items() if v},
            "backend_cpu_ms_per_check": 1000 * ((cpu1[0] + cpu1[1]) - (cpu0[0] + cpu0[1])) / TICK / n,
            "wall_ms_per_check": 1000 * wall / n, "top": _top(admin)}


def set_state(admin, wf: int, busy: int, state: str) -> None:
    """Put the workflow in one of the two idle states (plain UPDATEs; a benchmark set-up, not torc's path)."""
    with admin.transaction():
        admin.execute("UPDATE jobs SET status = 'blocked', worker_id = NULL, num_cpus = 1 "
                      "WHERE workflow_id = %s AND name LIKE 'combine%%'", (wf,))
        if state == "waiting":
            admin.execute("UPDATE jobs SET status = 'completed', num_cpus = 1, worker_id = NULL "
                          "WHERE workflow_id = %s AND name LIKE 'produce%%'", (wf,))
        else:
            admin.execute("UPDATE jobs SET status = 'ready', num_cpus = %s, worker_id = NULL "
                          "WHERE workflow_id = %s AND name LIKE 'produce%%'", (TOO_BIG_CPUS, wf))
        admin.execute("UPDATE jobs SET status = 'running', worker_id = %s, started_at = now() WHERE id IN "
                      "(SELECT id FROM jobs WHERE workflow_id = %s AND name LIKE 'produce%%' ORDER BY id LIMIT %s)",
                      (busy, wf, RUNNING_ELSEWHERE))
    admin.execute("VACUUM ANALYZE jobs")
    admin.execute("CHECKPOINT")   # the set-up's dirty pages are written now, not while the checks are measured
    # The other worker is alive: a fresh heartbeat, so the reconciler in the check leaves its jobs alone.
    admin.execute("UPDATE workers SET last_heartbeat = now(), stopped_at = NULL, stop_reason = NULL WHERE id = %s",
                  (busy,))


def run_size(pg, jobs: int) -> dict:
    from torc_hpc.db import Database
    from torc_hpc.spec import expand_workflow, load_spec_text

    url = migrated_database(pg, f"idle_{jobs}")
    admin = psycopg.connect(url, autocommit=True)
    admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    s, loc = load_spec_text(spec_for(jobs), "pairs.yaml")
    t = time.perf_counter()
    with Database(url, migrate=False) as db, tempfile.TemporaryDirectory() as d:
        wf = db.create_workflow(expand_workflow(s, loc), spec_path=None, working_dir=d)
        # Another live worker (this process, so the reconciler sees it alive) holds the running jobs.
        busy = db.register_worker(wf, hostname=socket.gethostname(), pid=os.getpid(), num_cpus=1000, num_gpus=0,
                                  memory_bytes=2**40)
    created_s = time.perf_counter() - t
    total = admin.execute("SELECT count(*) FROM jobs WHERE workflow_id = %s", (wf,)).fetchone()[0]
    worker = make_worker(url, wf)
    from torc_hpc.worker.pump import CLAIM_WINDOW

    params = {**worker.claim_params(), "window": CLAIM_WINDOW}   # the claim as the worker makes it
    deep = {**params, "window": None}                              # ... and once per heartbeat period
    out = {"jobs": total, "create_s": created_s, "claim_params": {k: v for k, v in params.items()}}
    try:
        for state in ("waiting", "too_small"):
            set_state(admin, wf, busy, state)
            out[state] = measure(pg, admin, worker, lambda: idle_check(worker, params))
            running = admin.execute("SELECT count(*) FROM jobs WHERE workflow_id = %s AND status = 'running'",
                                    (wf,)).fetchone()[0]
            assert running == RUNNING_ELSEWHERE, f"the check changed the workflow ({running} running)"
            if state == "too_small":
                out["claim_nothing_fits"] = measure(
                    pg, admin, worker, lambda: worker.db.finish(wf, [], worker_id=worker.worker_id, claim=params))
                out["deep_claim_nothing_fits"] = measure(
                    pg, admin, worker, lambda: worker.db.finish(wf, [], worker_id=worker.worker_id, claim=deep))
                for p in (params, deep):
                    claimed = worker.db.finish(wf, [], worker_id=worker.worker_id, claim=p)["claimed"]
                    assert not claimed, "the too_small claim must find nothing"
                # An idle worker that nothing fits: a check a second, one deep claim every DEEP_CLAIM_S.
                from torc_hpc.worker.pump import DEEP_CLAIM_S

                out["too_small_per_second"] = {"cpu_ms": (DEEP_CLAIM_S * out["too_small"]["work_cpu_ms_per_check"]
                                                          + out["deep_claim_nothing_fits"]["work_cpu_ms_per_check"])
                                                         / DEEP_CLAIM_S}
    finally:
        worker.stop()
        admin.close()
    return out


def main(big: int = 1_000_000, small: int = 10_000) -> dict:
    settings = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all",
                "pg_stat_statements.track_planning": "on", "max_wal_size": "4GB"}
    sizes = {}
    with private_server(settings) as pg:
        version = server_version(pg.url())
        for n in (small, big):
            sizes[n] = run_size(pg, n)
            r = sizes[n]
            print(f"# idle {r['jobs']:,} jobs, PostgreSQL CPU (execution time) per call: " + " · ".join(
                f"{label} {r[k]['work_cpu_ms_per_check']:.3f} ms ({r[k]['server_ms_per_check']:.3f})"
                               for label, k in (("waiting", "waiting"), ("too small", "too_small"),
                                                ("claim that finds nothing", "claim_nothing_fits"),
                                                ("deep claim (once a minute)", "deep_claim_nothing_fits"))),
                  file=sys.stderr, flush=True)
    b, s = sizes[big], sizes[small]
    value, peer = b["waiting"]["work_cpu_ms_per_check"], s["waiting"]["work_cpu_ms_per_check"]
    claim_ratio = (b["claim_nothing_fits"]["work_cpu_ms_per_check"]
                   / max(s["claim_nothing_fits"]["work_cpu_ms_per_check"], 1e-9))
    server = b["waiting"]["server_ms_per_check"] / max(s["waiting"]["server_ms_per_check"], 1e-9)
    return emit({"name": "idle_check", "value": value,
                 "unit": "ms PostgreSQL CPU per idle check (backends and their parallel workers)",
                 "whole_server_ratio": b["waiting"]["cpu_ms_per_check"] / max(s["waiting"]["cpu_ms_per_check"], 1e-9),
                 "peer": f"the same check on {s['jobs']:,} jobs", "peer_value": peer, "ratio": value / peer,
                 "target": f"≤ {TARGET}", "meets_target": value / peer <= TARGET,
                 "ratio_server_time": server, "claim_nothing_fits_ratio": claim_ratio, "sizes": sizes, "server": version})


if __name__ == "__main__":
    main()
