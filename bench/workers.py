"""Workers: PostgreSQL CPU per 1,000 jobs with N = 1, 4, 16, 64 real `torc worker` processes (issue 11).

Each N gets a fresh database on a private PostgreSQL (tests/pgserver.py) with the machine's durability
settings (fsync, synchronous_commit and full_page_writes on, shared_buffers 128MB; bench/pgcpu.py
MACHINE_LIKE) and max_connections 400 (a worker holds one connection; main before issue 11 held three). The workflow is one gate job
and JOBS short jobs (`true`) that depend on it. N `torc worker WF -j 1` processes start (the real CLI, not
`torc run`); the one that claims the gate waits on a file. When all N have registered, the benchmark opens
the gate and measures:

- jobs/s: JOBS ÷ the time from opening the gate to the last job completed;
- PostgreSQL CPU: utime+stime of the server's client backends (every torc connection; bench/pgcpu.py,
  exact also for backends that exit when their worker leaves) from opening the gate until every worker has
  exited, per 1,000 jobs. The whole server's CPU (background processes included) is reported beside it,
  and the client backends' CPU until the last job completed (`..._until_last_completion`: without the
  workers' leaving: their last idle checks, stop records and backends' exit).

The benchmark's own monitoring connection is excluded. Every phase has a time limit; workers still alive
then are killed (their process groups) and the run is reported as failed, never hung.

Peer: the same figure with N=1 in the same run. Target: N=64 ≤ 1.5 × N=1.

    python -m bench workers [JOBS [N ...]]      # default: 3000 jobs, N = 1 4 16 64
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import create_workflow, emit, server_version
from bench.pgcpu import ServerCpu, migrated_database, postmaster_pid, private_server

TARGET = 1.5
REGISTER_LIMIT_S = 300     # all N workers started and registered
RUN_LIMIT_S = 900          # gate opened → last job completed
EXIT_LIMIT_S = 120         # last job completed → every worker exited


def torc_command() -> list[str]:
    exe = Path(sys.executable).parent / "torc"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "torc_hpc.cli.app"]


def spec(jobs: int, gate: Path) -> str:
    return (f"name: workers_bench\njobs:\n"
            f"  - name: gate\n    command: 'while [ ! -e {gate} ]; do sleep 0.01; done'\n"
            f"  - name: t_{{i}}\n    command: 'true'\n    depends_on: [gate]\n    parameters: {{i: '1:{jobs}'}}\n")


def start_workers(n: int, url: str, wf: int, workdir: Path, extra_args: list[str] | None = None,
                  env: dict | None = None) -> list[tuple[subprocess.Popen, Path]]:
    """N `torc worker WF -j 1` processes, each in its own session (so a time limit can kill its jobs too),
    stdout+stderr to a file each."""
    procs = []
    env = dict(os.environ, TORC_DATABASE_URL=url, **(env or {}))
    for i in range(n):
        log = workdir / f"worker_{i:03d}.log"
        with open(log, "w") as f:
            p = subprocess.Popen([*torc_command(), "worker", str(wf), "-j", "1", "--idle-timeout", "600",
                                  *(extra_args or [])], cwd=workdir, env=env, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append((p, log))
    return procs


def kill_all(procs) -> int:
    """SIGKILL the process group of every worker still running; returns how many were."""
    alive = 0
    for p, _ in procs:
        if p.poll() is None:
            alive += 1
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p, _ in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
    return alive


def wait_until(predicate, limit_s: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()


def run_one(pg, n: int, jobs: int) -> dict:
    url = migrated_database(pg, f"workers_{n}")
    with tempfile.TemporaryDirectory(prefix=f"torc-bench-workers-{n}-") as d:
        workdir = Path(d)
        gate = workdir / "gate"
        wf = create_workflow(url, spec(jobs, gate), str(workdir))
        mon = psycopg.connect(url, autocommit=True)
        mon_pid = mon.execute("SELECT pg_backend_pid()").fetchone()[0]
        mon.execute("VACUUM ANALYZE jobs")

        polls = [0]

        def count(sql: str) -> int:
            polls[0] += 1
            return mon.execute(sql, (wf,)).fetchone()[0]

        procs = start_workers(n, url, wf, workdir)
        result: dict = {"n": n, "jobs": jobs, "ok": False}
        try:
            registered = wait_until(lambda: count("SELECT count(*) FROM workers WHERE workflow_id = %s") >= n
                                    and count("SELECT count(*) FROM jobs WHERE workflow_id = %s AND status = "
                                              "'running'") == 1, REGISTER_LIMIT_S, 0.2)
            if not registered:
                result["error"] = f"not all {n} workers registered within {REGISTER_LIMIT_S}s"
                return result
            commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            commits0 = mon.execute(commits).fetchone()[0]
            polls0 = polls[0]
            cpu = ServerCpu(postmaster_pid(pg.data), exclude=(mon_pid,)).start()
            until_last = ServerCpu(postmaster_pid(pg.data), exclude=(mon_pid,)).start()
            t0 = time.perf_counter()
            gate.touch()
            done = wait_until(lambda: count("SELECT count(*) FROM jobs WHERE workflow_id = %s AND status = "
                                            "'completed'") == jobs + 1
                              or all(p.poll() is not None for p, _ in procs), RUN_LIMIT_S, 0.05)
            t1 = time.perf_counter()
            last = until_last.stop()
            exited = wait_until(lambda: all(p.poll() is not None for p, _ in procs), EXIT_LIMIT_S, 0.05)
            t2 = time.perf_counter()
            report = cpu.stop()
            completed = count("SELECT count(*) FROM jobs WHERE workflow_id = %s AND status = 'completed'") - 1
            # pg_stat_database counts the monitor's own reads as commits too: leave them out.
            txns = mon.execute(commits).fetchone()[0] - commits0 - (polls[0] - polls0) - 1
            result.update(
                completed=completed, seconds=t1 - t0, exit_seconds=t2 - t1, jobs_per_s=completed / (t1 - t0),
                pg_client_cpu_s=report.client_s, pg_server_cpu_s=report.server_s,
                pg_client_cpu_s_per_1000=1000 * report.client_s / max(completed, 1),
                pg_client_cpu_s_per_1000_until_last_completion=1000 * last.client_s / max(completed, 1),
                pg_server_cpu_s_per_1000=1000 * report.server_s / max(completed, 1),
                backends_exited=report.exited_clients, server_cpu_by_kind=report.by_kind,
                commits=txns, jobs_per_commit=completed / max(txns, 1), exit_codes=sorted({p.returncode for p, _ in procs if p.returncode is not None}),
                ok=done and exited and completed == jobs)
            if not done:
                result["error"] = f"{completed}/{jobs} completed within {RUN_LIMIT_S}s"
            elif not exited:
                result["error"] = f"workers still running {EXIT_LIMIT_S}s after the last job"
            return result
        finally:
            killed = kill_all(procs)
            if killed:
                result["killed_workers"] = killed
            if not result.get("ok"):
                result["worker_log_tail"] = procs[0][1].read_text()[-1500:] if procs else ""
            mon.close()


def main(jobs: int = 3000, *ns: int) -> dict:
    ns = ns or (1, 4, 16, 64)
    runs = []
    with private_server({"max_connections": str(max(400, max(ns) + 50))}) as pg:
        version = server_version(pg.url())
        for n in ns:
            r = run_one(pg, n, jobs)
            runs.append(r)
            print(f"# workers N={n}: " + (f"{r['jobs_per_s']:.0f} jobs/s, PostgreSQL CPU "
                                           f"{r['pg_client_cpu_s_per_1000']:.2f} s (client backends) / "
                                           f"{r['pg_server_cpu_s_per_1000']:.2f} s (whole server) per 1,000 jobs; "
                                           f"{r['pg_client_cpu_s_per_1000_until_last_completion']:.2f} s until the "
                                           f"last completion; {r['jobs_per_commit']:.1f} jobs per commit"
                                           if "jobs_per_s" in r else "") + ("" if r["ok"] else f" FAILED: {r.get('error')}"),
                  file=sys.stderr, flush=True)
    first, last = runs[0], runs[-1]
    value = last.get("pg_client_cpu_s_per_1000", float("nan"))
    peer = first.get("pg_client_cpu_s_per_1000", float("nan"))
    return emit({"name": "workers_pg_cpu", "value": value, "unit": "PostgreSQL CPU s per 1,000 jobs",
                 "peer": f"the same with N={first['n']}", "peer_value": peer, "ratio": value / peer if peer else None,
                 "target": f"N={last['n']} ≤ {TARGET} × N={first['n']}",
                 "ratio_until_last_completion": (last.get("pg_client_cpu_s_per_1000_until_last_completion", 0)
                                                 / max(first.get("pg_client_cpu_s_per_1000_until_last_completion", 0), 1e-9)),
                 "meets_target": all(r["ok"] for r in runs) and value <= TARGET * peer,
                 "runs": runs, "server": version, "server_settings": "fsync, synchronous_commit, full_page_writes on"})


if __name__ == "__main__":
    main()
