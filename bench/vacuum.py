"""Vacuum: dead tuples in the hot jobs table during a 100k-job run, main's autovacuum settings vs this branch's.

A private PostgreSQL with autovacuum on (server defaults, except autovacuum_naptime given on the command
line: 60 s is PostgreSQL's default, 10 s what the README recommends). The jobs table first holds a
history of H completed jobs (other workflows; default 2M), then a 100k-job workflow (50k producers, 50k
consumers, one edge each) runs through 2 worker processes doing what a worker's database thread does
(claim, then complete the batch together with the next claim), throttled to R jobs/s (default 800, so the
run lasts about two minutes). Every 0.5 s, n_dead_tup and autovacuum_count of jobs are read from
pg_stat_user_tables. Baseline in the same run: the same history and run with main's settings for jobs
(scale factors 0.02, cost delay inherited). Reported: peak and mean dead tuples during the run, and how
many autovacuums of jobs ran. Target: peak dead tuples ≤ 0.5 × the baseline's. Last, the same run in a
database of its own gives the bytes per job of each table (at the end of the run and after a VACUUM).

python -m bench vacuum [NAPTIME_S] [HISTORY_JOBS] [RATE]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import threading
import time

import psycopg
from psycopg.rows import dict_row

from bench.common import emit

BIG = 2**50
# main's settings for jobs (0001_core.sql), restored on the baseline copy.
MAIN_SETTINGS = ("ALTER TABLE jobs RESET (autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor, "
                 "autovacuum_vacuum_insert_threshold, autovacuum_vacuum_cost_delay); "
                 "ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)")
SIZES = ("SELECT relname AS t, pg_total_relation_size(relid) AS b FROM pg_stat_user_tables "
         "WHERE relname IN ('jobs', 'job_dependencies', 'results', 'events', 'workers', 'workflows')")
DEAD = ("SELECT n_dead_tup, n_live_tup, autovacuum_count, pg_relation_size('jobs') AS heap "
        "FROM pg_stat_user_tables WHERE relname = 'jobs'")


def _spec(name: str, n: int) -> str:
    half = n // 2
    return (f"name: {name}\njobs:\n  - name: p_{{i}}\n    command: 'true'\n    parameters: {{i: '1:{half}'}}\n"
            f"  - name: c_{{i}}\n    command: 'true'\n    depends_on: ['p_{{i}}']\n    parameters: {{i: '1:{half}'}}\n")


def _create(url: str, name: str, n: int) -> int:
    from torc_hpc.db import Database
    from torc_hpc.spec import expand_workflow, load_spec_text

    s, loc = load_spec_text(_spec(name, n), f"{name}.yaml")
    with Database(url, migrate=False) as db:
        return db.create_workflow(expand_workflow(s, loc), spec_path=None, working_dir="/tmp")


def _worker(url: str, wf: int, batch: int, rate: float, start, out) -> None:
    from torc_hpc.db import Attempt, Database
    from torc_hpc.db.repo import finish_step

    with Database(url, migrate=False) as db:
        wid = db.register_worker(wf, hostname="bench", pid=os.getpid(), num_cpus=batch, num_gpus=0,
                                 memory_bytes=BIG)
        claim = {"cpus": BIG, "gpus": 0, "memory": BIG, "limit": batch, "time_left_s": 10**9, "scheduler": None}
        start.wait()
        done, t0, idle = 0, time.perf_counter(), 0
        jobs = db.finish(wf, [], worker_id=wid, claim=claim)["claimed"]
        while True:
            if not jobs:
                # consumers turn ready as producers complete elsewhere: look again a few times
                idle += 1
                if idle > 20:
                    break
                time.sleep(0.05)
                jobs = db.finish(wf, [], worker_id=wid, claim=claim)["claimed"]
                continue
            idle = 0
            done += len(jobs)
            ahead = done / rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
            steps = [finish_step("completed", Attempt(j["id"], j["run_id"], j["attempt_id"], wid)) for j in jobs]
            jobs = db.finish(wf, steps, worker_id=wid, claim=claim)["claimed"]
        out.put(done)


def one(pg, dbname: str, n: int, rate: float, workers: int = 2) -> dict:
    url = pg.url(dbname)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as c:
        sizes0 = {r["t"]: r["b"] for r in c.execute(SIZES)}
    wf = _create(url, "run", n)
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()

    def sample():
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as c:
            while not stop.is_set():
                c.execute("SELECT pg_stat_clear_snapshot()")
                r = c.execute(DEAD).fetchone()
                samples.append((time.perf_counter(), r["n_dead_tup"], r["autovacuum_count"]))
                time.sleep(0.5)

    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, wf, 64, rate / workers, start, out)) for _ in range(workers)]
    for p in procs:
        p.start()
    time.sleep(2)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    start.set()
    total = sum(out.get() for _ in procs)
    seconds = time.perf_counter() - t0
    for p in procs:
        p.join()
    time.sleep(1)
    stop.set()
    t.join()
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as c:
        left = c.execute("SELECT count(*) AS n FROM jobs WHERE workflow_id = %s AND status <> 'completed'",
                         (wf,)).fetchone()["n"]
        heap = c.execute("SELECT pg_relation_size('jobs') AS h, pg_indexes_size('jobs') AS i").fetchone()
        sizes1 = {r["t"]: r["b"] for r in c.execute(SIZES)}
    assert total == n and left == 0, (total, left)
    dead = [d for _, d, _ in samples]
    return {"seconds": round(seconds, 1), "jobs_per_s": round(n / seconds), "peak_dead": max(dead),
            "mean_dead": round(statistics.mean(dead)), "autovacuums": samples[-1][2] - samples[0][2],
            "samples": len(samples), "heap_mb": round(heap["h"] / 2**20), "indexes_mb": round(heap["i"] / 2**20),
            "dead_every_5s": dead[::10],
            "bytes_per_job": {t: round((sizes1[t] - sizes0[t]) / n) for t in sizes1}}


def main(naptime: int = 60, history: int = 2_000_000, rate: int = 800, n: int = 100_000) -> dict:
    from tests.pgserver import PrivatePostgres, unavailable_reason

    from torc_hpc.db import migrate as migrations

    why = unavailable_reason()
    if why:
        raise SystemExit(f"vacuum benchmark needs a private PostgreSQL: {why}")
    with PrivatePostgres(settings={"autovacuum": "on", "autovacuum_naptime": f"{naptime}s",
                                   "shared_buffers": "512MB", "max_wal_size": "4GB",
                                   "log_autovacuum_min_duration": "0"}) as pg:
        pg.create_database("hist")
        with psycopg.connect(pg.url("hist"), autocommit=True) as c:
            migrations.migrate(c)
            c.execute("ALTER TABLE jobs SET (autovacuum_enabled = off)")  # quiet while the history is built
        t = time.perf_counter()
        if history:
            wf = _create(pg.url("hist"), "history", history)
            with psycopg.connect(pg.url("hist"), autocommit=True) as c:
                c.execute("UPDATE jobs SET status = 'completed', unfinished_parents = 0 WHERE workflow_id = %s", (wf,))
                c.execute("VACUUM (FREEZE, ANALYZE) jobs")
        print(f"# history of {history} jobs in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        with pg.admin() as c:
            c.execute('CREATE DATABASE "main_copy" TEMPLATE "hist" STRATEGY FILE_COPY')
            c.execute('CREATE DATABASE "this_copy" TEMPLATE "hist" STRATEGY FILE_COPY')
        with psycopg.connect(pg.url("main_copy"), autocommit=True) as c:
            c.execute("ALTER TABLE jobs RESET (autovacuum_enabled)")
            c.execute(MAIN_SETTINGS)
        with psycopg.connect(pg.url("this_copy"), autocommit=True) as c:
            c.execute("ALTER TABLE jobs RESET (autovacuum_enabled)")
            settings = c.execute("SELECT reloptions FROM pg_class WHERE relname = 'jobs'").fetchone()[0]
        base = one(pg, "main_copy", n, rate)
        print(f"# main's settings: {base}", file=sys.stderr)
        mine = one(pg, "this_copy", n, rate)
        print(f"# this branch ({settings}): {mine}", file=sys.stderr)
        # Sizing: a database holding only such a run (this branch's settings), bytes per job per table at
        # the end of the run and after a plain VACUUM (the space a steady state keeps).
        pg.create_database("fresh")
        with psycopg.connect(pg.url("fresh"), autocommit=True) as c:
            migrations.migrate(c)
        sized = one(pg, "fresh", n, rate * 4)
        with psycopg.connect(pg.url("fresh"), autocommit=True, row_factory=dict_row) as c:
            c.execute("VACUUM")
            after_vacuum = {r["t"]: round(r["b"] / n) for r in c.execute(SIZES)}
        sizing = {"after_run": sized["bytes_per_job"], "after_vacuum": after_vacuum,
                  "events_per_job": None}
        with psycopg.connect(pg.url("fresh"), autocommit=True, row_factory=dict_row) as c:
            sizing["events_per_job"] = round(c.execute("SELECT count(*) AS n FROM events").fetchone()["n"] / n, 2)
        print(f"# sizing, bytes per job: {sizing}", file=sys.stderr)
        version = pg.admin().execute("SHOW server_version").fetchone()[0]
    return emit({"name": "vacuum_dead_tuples", "value": mine["peak_dead"], "unit": "dead tuples (peak)",
                 "peer": "main's autovacuum settings", "peer_value": base["peak_dead"],
                 "ratio": mine["peak_dead"] / max(1, base["peak_dead"]), "target": "≤ 0.5 × main's peak",
                 "meets_target": mine["peak_dead"] <= 0.5 * base["peak_dead"], "naptime_s": naptime,
                 "history_jobs": history, "rate_jobs_per_s": rate, "jobs": n, "this": mine, "main": base,
                 "settings": settings, "sizing_bytes_per_job": sizing, "server": version})


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:]])
