"""7. CLI listings on a million jobs: time to the first row and peak RSS of `torc jobs list WF` and
`torc results list WF` (tables, read through a server-side cursor and printed as they arrive), each run as a
real process reading to the end.

Baselines in the same run: psql with FETCH_COUNT (psql's own cursor mode) running the very same queries, and a
bare psycopg server-side cursor's first fetch, with the server's JIT (as psql runs) and without (as torc's listings
run: JIT compiles for 0.7 s before a million-row cursor's first row). Target: first row ≤ 1 s and peak RSS
≤ 200 MB for both commands.
The workflow (1,000,000 jobs, one completed attempt each) is written with INSERT … SELECT, not through a spec:
this benchmark measures reading, and bench/create.py measures creating.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bench.common import emit, fresh_database, server_version
from torc_hpc.db import Database
from torc_hpc.db.queries import q
from torc_hpc.spec import expand_workflow, load_spec_text


def make_workflow(url: str, n: int) -> int:
    """One workflow of n jobs, each with one completed attempt, then ANALYZE."""
    s, loc = load_spec_text("name: million\njobs:\n  - {name: seed, command: 'true'}\n", "million.yaml")
    with Database(url) as db:
        wf = db.create_workflow(expand_workflow(s, loc), spec_path=None, working_dir="/tmp")
        with db.conn.transaction():
            db.conn.execute("""
                INSERT INTO jobs (workflow_id, name, command, status, memory_bytes, runtime_s, worker_id)
                SELECT %(wf)s, 'sim_' || lpad(i::text, 7, '0'), './simulate --case ' || i, 'completed', 1073741824,
                       3600, NULL
                FROM generate_series(1, %(n)s - 1) AS i""", {"wf": wf, "n": n})
            db.conn.execute("""
                INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, started_at,
                                     completed_at, exec_time_s, peak_memory_bytes, cpu_time_s)
                SELECT workflow_id, id, 1, 1, 0, 'completed', now() - interval '1 hour', now(), 12.5, 104857600, 11.0
                FROM jobs WHERE workflow_id = %(wf)s""", {"wf": wf})
        db.conn.execute("ANALYZE jobs")
        db.conn.execute("ANALYZE results")
        return wf


def first_row_and_rss(argv: list[str], env: dict, header_lines: int) -> dict:
    """Run a command with stdout on a pipe: seconds to its first data row, to its end, rows, peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = None
    lines = 0
    for line in proc.stdout:
        lines += 1
        if first is None and lines > header_lines:
            first = time.perf_counter() - t0
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err[-2000:]}")
    return {"first_row_s": first, "total_s": total, "rows": lines - header_lines,
            "peak_rss_mib": usage.ru_maxrss / 1024}


def psql_argv(url: str, sql: str) -> tuple[list[str], dict]:
    p = conninfo_to_dict(url)
    env = dict(os.environ, PGHOST=p.get("host", ""), PGPORT=str(p.get("port", "5432")), PGUSER=p.get("user", ""),
               PGDATABASE=p["dbname"])
    return ["psql", "-X", "-A", "-t", "-v", "FETCH_COUNT=2000", "-c", sql], env


def literal(name: str, **params) -> str:
    """A named query with its parameters written in (psql runs it as is)."""
    sql = q(name)
    for k, v in params.items():
        sql = sql.replace(f"%({k})s", "NULL" if v is None else str(v))
    return sql


def bare_cursor_first_row(url: str, sql: str, params: dict, jit: bool) -> float:
    """Seconds from connect to the first row of a psycopg server-side cursor (with the server's JIT setting,
    as psql runs, or with JIT off, as torc runs its listings)."""
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        with conn.transaction():
            if not jit:
                conn.execute("SET LOCAL jit = off")
            with conn.cursor(name="bare") as cur:
                cur.execute(sql, params)
                cur.fetchmany(50)
                return time.perf_counter() - t0


def main(n: int = 1_000_000) -> dict:
    with fresh_database("cli") as url, tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        wf = make_workflow(url, n)
        made_s = time.perf_counter() - t
        env = dict(os.environ, TORC_DATABASE_URL=url, COLUMNS="120")
        torc = [sys.executable, "-m", "torc_hpc.cli.app"]
        jobs = first_row_and_rss(torc + ["jobs", "list", str(wf)], env, header_lines=1)
        results = first_row_and_rss(torc + ["results", "list", str(wf)], env, header_lines=1)
        jobs_jsonl = first_row_and_rss(torc + ["jobs", "list", str(wf), "--format", "jsonl"], env, header_lines=0)
        params_jobs = {"workflow_id": wf, "run_id": 1, "status": None, "limit": None, "offset": 0}
        params_results = {"workflow_id": wf, "job_id": None, "limit": None, "offset": 0}
        argv, penv = psql_argv(url, literal("stream_jobs", **params_jobs))
        psql_jobs = first_row_and_rss(argv, penv, header_lines=0)
        argv, penv = psql_argv(url, literal("stream_results", **params_results))
        psql_results = first_row_and_rss(argv, penv, header_lines=0)
        bare = {f"{what}{'' if jit else '_no_jit'}": bare_cursor_first_row(url, q(name), params, jit)
                for what, name, params in (("jobs", "stream_jobs", params_jobs),
                                           ("results", "stream_results", params_results))
                for jit in (True, False)}
        worst = max(jobs["first_row_s"], results["first_row_s"])
        peak = max(jobs["peak_rss_mib"], results["peak_rss_mib"], jobs_jsonl["peak_rss_mib"])
        peer = max(psql_jobs["first_row_s"], psql_results["first_row_s"])
        os.sync()
        return emit({
            "name": "cli_first_row", "value": worst, "unit": "s", "peer": "psql FETCH_COUNT, same queries",
            "peer_value": peer, "ratio": peer / worst if worst else None, "target": "≤ 1 s and ≤ 200 MB",
            "meets_target": worst <= 1 and peak <= 200, "peak_rss_mib": peak, "jobs": n, "setup_s": made_s,
            "jobs_list": jobs, "results_list": results, "jobs_list_jsonl": jobs_jsonl,
            "psql_jobs": psql_jobs, "psql_results": psql_results,
            "bare_cursor_first_row_s": bare,
            "server": server_version(url), "dir": d})


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
