"""Pooler: 100 real `torc worker` processes on a 20,000-job workflow through pgbouncer (transaction mode,
default_pool_size 10), against the same workers connected directly (issue 11).

Both runs use a private PostgreSQL (tests/pgserver.py, machine-like durability: bench/pgcpu.py) and, for
the pooled run, a private pgbouncer (tests/pgbouncer.py: Debian's package, installed when missing). Each
run gets a fresh database and the workers bench's workflow shape (a gate job, then JOBS `true` jobs that
depend on it): N `torc worker WF -j 1` start, the gate opens once every worker has registered or died, and
two `torc watch --all --once` start together a moment later (TORC_NO_SLURM=1: the shared Slurm is left
alone). In the pooled run every torc process has TORC_DB_POOLER=transaction (nothing prepared, no LISTEN:
idle workers poll) and no TORC_NOTIFY_URL. Every phase has a time limit: whatever still runs then is killed
and the run is reported as failed.

Reported per run: jobs/s (completed ÷ time from the gate to the last completion or the end), final job
counts, whether every job completed exactly once (results rows), worker and watcher exit codes, the errors
in their output by kind (DuplicatePreparedStatement, InvalidSqlStatementName, other psycopg errors), and
the most server connections (client backends on the workflow's database, sampled every 0.1 s, the
benchmark's own two direct connections left out) seen during the run. For the pooled run, probes after the workers are gone show what a transaction pooler does to
session state: advisory locks still held on the server with no watcher running, a third `watch --all
--once` skipping a workflow nobody watches, `SET plan_cache_mode` seen by unrelated clients, and whether a
NOTIFY reaches a LISTEN made through the pooler.

Value: jobs/s through the pooler ÷ jobs/s direct (target: ≥ 0.9, every job completed once, nothing
crashed, server connections ≤ the pool).

    python -m bench pooler [JOBS [WORKERS]]       # default 20000 100
"""

from __future__ import annotations

import collections
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from bench.common import create_workflow, emit, server_version
from bench.pgcpu import migrated_database, private_server
from bench.workers import kill_all, spec, start_workers, torc_command, wait_until

POOL_SIZE = 10
REGISTER_LIMIT_S = 300
RUN_LIMIT_S = 600
EXIT_LIMIT_S = 90
WATCH_LIMIT_S = 120
TARGET = 0.9
_ERROR = re.compile(r"psycopg\.errors\.(\w+)|psycopg\.(OperationalError|InterfaceError|ProgrammingError)"
                    r"|torc_hpc\.errors\.(\w+)|^(\w*Error): ", re.MULTILINE)
# The CLI prints torc's own errors ("error: worker 2 lost the database (prepared statement ...)"), wrapped.
_MESSAGES = {
    "DuplicatePreparedStatement": re.compile(r'prepared statement "\w+" already exists'),
    "InvalidSqlStatementName": re.compile(r'prepared statement "\w+" does not exist'),
    "lost the database": re.compile(r"lost the database"),
    "declared lost": re.compile(r"declared lost"),
    "too many clients / connections": re.compile(r"too many (clients|connections)|no more connections allowed"),
}


def _errors(texts: list[str]) -> dict[str, int]:
    """Kinds of errors in the processes' output, with how many processes showed each."""
    seen: collections.Counter = collections.Counter()
    for text in texts:
        flat = " ".join(text.split())
        kinds = {next(g for g in m.groups() if g) for m in _ERROR.finditer(text)}
        kinds |= {k for k, rx in _MESSAGES.items() if rx.search(flat)}
        seen.update(kinds)
    return dict(seen)


class ConnectionSampler(threading.Thread):
    """The most client backends connected to `dbname`, sampled on a direct connection."""

    def __init__(self, admin_url: str, dbname: str, exclude: tuple[int, ...] = (), interval_s: float = 0.1):
        super().__init__(daemon=True, name="conn-sampler")
        self.conn = psycopg.connect(admin_url, autocommit=True)
        self.exclude = [self.conn.execute("SELECT pg_backend_pid()").fetchone()[0], *exclude]
        self.dbname, self.interval_s = dbname, interval_s
        self.max = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            n = self.conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = "
                                  "'client backend' AND pid <> ALL (%s)", (self.dbname, self.exclude)).fetchone()[0]
            self.max = max(self.max, n)

    def stop(self) -> int:
        if not self._halt.is_set():
            self._halt.set()
            self.join()
            self.conn.close()
        return self.max


def start_watchers(url: str, workdir: Path, count: int, tag: str,
                   env: dict | None = None) -> list[tuple[subprocess.Popen, Path]]:
    env = dict(os.environ, TORC_DATABASE_URL=url, TORC_NO_SLURM="1", **(env or {}))
    out = []
    for i in range(count):
        log = workdir / f"watch_{tag}_{i}.log"
        with open(log, "w") as f:
            out.append((subprocess.Popen([*torc_command(), "watch", "--all", "--once", "--format", "json"], cwd=workdir,
                                         env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True), log))
    return out


def _finish(procs, limit_s: float) -> None:
    wait_until(lambda: all(p.poll() is not None for p, _ in procs), limit_s, 0.1)
    kill_all(procs)


def run(pg, *, jobs: int, workers: int, url: str, dbname: str, tag: str, env: dict | None = None) -> dict:
    """One run of `workers` workers on a fresh workflow, connecting with `url` (direct or pooled); `env`
    for every torc process (TORC_DB_POOLER=transaction behind pgbouncer)."""
    direct = pg.url(dbname)
    r: dict = {"connection": tag, "workers": workers, "jobs": jobs, "ok": False, "env": env or {}}
    with tempfile.TemporaryDirectory(prefix=f"torc-bench-pooler-{tag}-") as d:
        workdir = Path(d)
        gate = workdir / "gate"
        wf = create_workflow(direct, spec(jobs, gate), str(workdir))
        mon = psycopg.connect(direct, autocommit=True)
        mon.execute("VACUUM ANALYZE jobs")

        def one(sql: str):
            return mon.execute(sql, (wf,)).fetchone()[0]

        sampler = ConnectionSampler(pg.url(), dbname, exclude=(mon.execute("SELECT pg_backend_pid()").fetchone()[0],))
        sampler.start()
        procs = start_workers(workers, url, wf, workdir, env=env)
        watchers = []
        try:
            wait_until(lambda: one("SELECT count(*) FROM workers WHERE workflow_id = %s") +
                       sum(p.poll() is not None for p, _ in procs) >= workers, REGISTER_LIMIT_S, 0.2)
            r["registered"] = one("SELECT count(*) FROM workers WHERE workflow_id = %s")
            t0 = time.perf_counter()
            gate.touch()
            time.sleep(1.0)
            watchers = start_watchers(url, workdir, 2, tag, env)
            done = wait_until(lambda: one("SELECT count(*) FROM jobs WHERE workflow_id = %s AND status = 'completed'")
                              == jobs + 1 or all(p.poll() is not None for p, _ in procs), RUN_LIMIT_S, 0.1)
            t1 = time.perf_counter()
            exited = wait_until(lambda: all(p.poll() is not None for p, _ in procs), EXIT_LIMIT_S, 0.1)
            _finish(watchers, WATCH_LIMIT_S)
            r["killed_workers"] = kill_all(procs)
            r["max_server_connections"] = sampler.stop()
            counts = dict(mon.execute("SELECT status::text, count(*) FROM jobs WHERE workflow_id = %s "
                                      "GROUP BY 1 ORDER BY 1", (wf,)).fetchall())
            completed = counts.get("completed", 0) - (1 if gate.exists() else 0)
            dup = one("SELECT count(*) FROM (SELECT job_id FROM results WHERE workflow_id = %s AND status = "
                      "'completed' GROUP BY job_id HAVING count(*) > 1) d")
            worker_logs = [log.read_text(errors="replace") for _, log in procs]
            watch_logs = [log.read_text(errors="replace") for _, log in watchers]
            r.update(
                completed=completed, seconds=t1 - t0, jobs_per_s=completed / (t1 - t0), final_counts=counts,
                jobs_completed_twice=dup, all_done=done and completed == jobs, workers_exited_in_time=exited,
                worker_exit_codes=dict(collections.Counter(p.returncode for p, _ in procs)),
                watcher_exit_codes=[p.returncode for p, _ in watchers],
                worker_errors=_errors(worker_logs), watcher_errors=_errors(watch_logs),
                lost_workers=one("SELECT count(*) FROM workers WHERE workflow_id = %s AND stop_reason = 'lost'"),
                first_failed_worker_output=next((t[-1500:] for (p, _), t in zip(procs, worker_logs)
                                                 if p.returncode != 0), None),
                first_failed_watcher_output=next((t[-1500:] for (p, _), t in zip(watchers, watch_logs)
                                                  if p.returncode != 0), None),
                watcher_reports=[_watch_summary(t) for t in watch_logs])
            r["ok"] = (r["all_done"] and dup == 0 and not r["worker_errors"] and not r["watcher_errors"]
                       and set(r["worker_exit_codes"]) == {0})
            if tag == "pgbouncer":
                r["session_state_probes"] = probes(pg, url, dbname, workdir)
            return r
        finally:
            kill_all(procs)
            kill_all(watchers)
            sampler.stop()
            mon.close()


def _watch_summary(text: str) -> list:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                rep = json.loads(line)
                out.append({"workflow": rep.get("workflow_id"), "skipped": rep.get("skipped"),
                            "attention": rep.get("attention")})
            except json.JSONDecodeError:
                pass
    return out


def probes(pg, pooled_url: str, dbname: str, workdir: Path) -> dict:
    """Session state left behind on the pooled server connections once every torc process is gone."""
    out = {}
    with psycopg.connect(pg.url(dbname), autocommit=True) as direct:
        out["advisory_locks_held_with_no_torc_process"] = direct.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND a.datname = %s", (dbname,)).fetchone()[0]
        third = start_watchers(pooled_url, workdir, 1, "after", {"TORC_DB_POOLER": "transaction"})
        _finish(third, WATCH_LIMIT_S)
        out["third_watch_after_the_run"] = _watch_summary(third[0][1].read_text(errors="replace"))
        # Every server connection of the pool, each pinned by an open transaction of a new client.
        seen = collections.Counter()
        clients = [psycopg.connect(pooled_url, autocommit=True, prepare_threshold=None) for _ in range(POOL_SIZE)]
        try:
            for c in clients:
                c.execute("BEGIN")
                seen[c.execute("SHOW plan_cache_mode").fetchone()[0]] += 1
        finally:
            for c in clients:
                c.close()
        out["plan_cache_mode_seen_by_new_clients"] = dict(seen)
        with psycopg.connect(pooled_url, autocommit=True, prepare_threshold=None) as listener:
            listener.execute("LISTEN torc_probe")
            direct.execute("NOTIFY torc_probe")
            readable, _, _ = select.select([listener.pgconn.socket], [], [], 3.0)
            listener.pgconn.consume_input()
            out["notify_reaches_pooled_listener"] = bool(readable) and listener.pgconn.notifies() is not None
    return out


def main(jobs: int = 20_000, workers: int = 100) -> dict:
    from tests.pgbouncer import Pgbouncer, unavailable_reason, version

    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"the pooler benchmark needs pgbouncer: {reason}")
    runs = {}
    with private_server({"max_connections": str(workers + 60)}) as pg:
        pg_version = server_version(pg.url())
        url = migrated_database(pg, "pooler_direct")
        runs["direct"] = run(pg, jobs=jobs, workers=workers, url=url, dbname="pooler_direct", tag="direct")
        _report(runs["direct"])
        migrated_database(pg, "pooler_pooled")
        with Pgbouncer(pg, pool_mode="transaction", default_pool_size=POOL_SIZE,
                       max_client_conn=max(1000, 4 * workers)) as bouncer:
            runs["pgbouncer"] = run(pg, jobs=jobs, workers=workers, url=bouncer.url("pooler_pooled"),
                                    dbname="pooler_pooled", tag="pgbouncer", env={"TORC_DB_POOLER": "transaction"})
            runs["pgbouncer"]["pgbouncer_pool_at_end"] = bouncer.pool("pooler_pooled")
        _report(runs["pgbouncer"])
    d, p = runs["direct"], runs["pgbouncer"]
    ratio = p["jobs_per_s"] / d["jobs_per_s"] if d.get("jobs_per_s") and "jobs_per_s" in p else 0.0
    ok = p["ok"] and p.get("max_server_connections", 10**9) <= POOL_SIZE and ratio >= TARGET
    return emit({"name": "pooler", "value": p.get("jobs_per_s", 0.0), "unit": "jobs/s through pgbouncer",
                 "peer": f"the same {workers} workers connected directly", "peer_value": d.get("jobs_per_s", 0.0),
                 "ratio": ratio, "target": f"≥ {TARGET}, every job once, no crash, server connections ≤ {POOL_SIZE}",
                 "meets_target": ok, "runs": runs, "server": pg_version, "pgbouncer": version()})


def _report(r: dict) -> None:
    print(f"# pooler {r['connection']}: {r.get('completed', 0)}/{r['jobs']} completed, "
          f"{r.get('jobs_per_s', 0):.0f} jobs/s, max server connections {r.get('max_server_connections')}, "
          f"worker exits {r.get('worker_exit_codes')}, errors {r.get('worker_errors')}, "
          f"watchers {r.get('watcher_exit_codes')} {r.get('watcher_errors')}" + ("" if r["ok"] else "  FAILED"),
          file=sys.stderr, flush=True)
    if "session_state_probes" in r:
        print(f"# pooler probes: {r['session_state_probes']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
