"""Maintenance on a 1M-job workflow: reset-status --failed-only, workflows cancel, workflows delete.

One private PostgreSQL (tests/pgserver.py; autovacuum off so nothing else writes), one 1,000,001-job
workflow (bench/create.py's spec) shaped into a run half done: 150k producers ran (every 1000th failed, its
consumers canceled), 75k consumers completed, 300 worker rows, a result per attempt, events per transition.
Two copies of that database: the baseline gets main's schema and statements (bench/baseline/), the other
this branch's. On each, in the same order: reset-status --failed-only, cancel, delete (VACUUM between
operations, not measured). For each operation: seconds, rows written (pg_stat_user_tables), WAL bytes
(pg_current_wal_lsn differences) and the longest transaction (pg_stat_activity sampled every 10 ms).

Targets: reset writes at most 4 rows per job it resets (job, event, and a waiting child's recount);
cancel's and delete's longest transaction ≤ 1 s.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from bench.common import emit

HERE = Path(__file__).resolve().parent
_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _named(path: Path) -> dict[str, str]:
    parts = _HEADER.split(path.read_text())
    return {n: b.strip().rstrip(";") for n, b in zip(parts[1::2], parts[2::2])}


SQL = _named(HERE / "maintenance.sql")
MAIN = _named(HERE / "baseline" / "maintenance_main.sql")


def _migrate_to(conn, upto: int | None) -> None:
    """main's schema (upto=3) or this branch's (None: all)."""
    from torc_hpc.db import migrate as migrations

    if upto is None:
        migrations.migrate(conn)
        return
    conn.execute("CREATE TABLE IF NOT EXISTS torc_schema_migrations (version integer PRIMARY KEY, "
                 "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    for version, name, path in migrations.migrations():
        if version <= upto:
            conn.execute(path.read_text())
            conn.execute("INSERT INTO torc_schema_migrations (version, name) VALUES (%s, %s)", (version, name))


class Probe:
    """What one backend does between start() and stop(): seconds, rows written, WAL bytes, longest
    transaction (sampled)."""

    def __init__(self, url: str, pid: int):
        self.obs = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        self.pid = pid

    def _tuples(self) -> int:
        self.obs.execute("SELECT pg_stat_clear_snapshot()")
        return self.obs.execute(SQL["tuples_written"]).fetchone()["n"]

    def start(self):
        self.tuples0 = self._tuples()
        self.lsn0 = self.obs.execute(SQL["wal_lsn"]).fetchone()["lsn"]
        self.longest = 0.0
        self.running = True
        self.sampler = psycopg.connect(self.obs.info.dsn, autocommit=True, row_factory=dict_row)
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.t0 = time.perf_counter()

    def _sample(self):
        while self.running:
            row = self.sampler.execute(SQL["xact_age"], {"pid": self.pid}).fetchone()
            if row and row["s"] is not None:
                self.longest = max(self.longest, row["s"])
            time.sleep(0.01)

    def stop(self, actor) -> dict:
        seconds = time.perf_counter() - self.t0
        self.running = False
        self.thread.join()
        self.sampler.close()
        actor.execute("SELECT pg_stat_force_next_flush()")
        actor.execute("SELECT 1")
        time.sleep(0.3)
        wal = self.obs.execute(SQL["wal_bytes"], {"lsn": self.lsn0}).fetchone()["n"]
        return {"seconds": round(seconds, 3), "rows_written": self._tuples() - self.tuples0, "wal_bytes": wal,
                "longest_transaction_s": round(max(self.longest, 0.0), 3)}


def build_state(url: str, spec_path: str) -> int:
    from torc_hpc.db import Database
    from torc_hpc.spec import expand_workflow, load_spec

    spec, loc = load_spec(spec_path)
    with Database(url, migrate=False) as db:
        wf = db.create_workflow(expand_workflow(spec, loc, spec_path), spec_path=spec_path, working_dir="/tmp")
        c = db.conn
        first = min(r["id"] for r in c.execute(SQL["add_workers"], {"wf": wf}).fetchall())
        for name in ("shape_producers", "shape_consumers", "shape_results", "shape_events"):
            c.execute(SQL[name], {"wf": wf, "first_worker": first})
        c.execute("VACUUM ANALYZE")
        print("# state:", {r["status"]: r["n"] for r in c.execute(SQL["status_summary"], {"wf": wf})},
              file=sys.stderr)
    return wf


def run_ops(url: str, wf: int, *, baseline: bool) -> dict:
    from torc_hpc.db import Database
    from torc_hpc.db.queries import q

    out = {}
    with Database(url, migrate=False) as db:
        conn = db.conn
        pid = conn.info.backend_pid

        def measure(name, fn):
            conn.execute("VACUUM ANALYZE")
            probe = Probe(url, pid)
            probe.start()
            extra = fn()
            out[name] = {**probe.stop(conn), **(extra or {})}
            probe.obs.close()
            print(f"# {'main' if baseline else 'this'} {name}: {out[name]}", file=sys.stderr)

        if baseline:
            def reset():
                statuses = ["failed", "canceled", "terminated", "pending_failed"]
                with conn.transaction():
                    conn.execute(q("count_running"), {"workflow_id": wf})
                    row = conn.execute(MAIN["reset_jobs"], {"workflow_id": wf, "statuses": statuses,
                                                            "job_ids": None, "reason": "bench"}).fetchone()
                    db.event(wf, "workflow_reset", run_id=row["run_id"], detail={"jobs_reset": row["reset"]})
                    db.notify_ready(wf)
                return {"jobs_reset": row["reset"]}

            def cancel():
                with conn.transaction():
                    row = conn.execute(MAIN["cancel_workflow"], {"workflow_id": wf}).fetchone()
                    db.notify_ready(wf)
                return {"jobs_canceled": row["canceled"]}

            def delete():
                conn.execute(MAIN["delete_workflow"], {"workflow_id": wf})
        else:
            def reset():
                row = db.reset_status(wf, failed_only=True)
                return {"jobs_reset": row["reset"], "children_recounted": row["recounted"]}

            def cancel():
                return {"jobs_canceled": db.cancel_workflow(wf)}

            def delete():
                db.delete_workflow(wf)

        measure("reset_failed_only", reset)
        measure("cancel", cancel)
        measure("delete", delete)
    return out


def main() -> list[dict]:
    from tests.pgserver import PrivatePostgres, unavailable_reason

    from bench.create import SPEC

    why = unavailable_reason()
    if why:
        raise SystemExit(f"maintenance benchmark needs a private PostgreSQL: {why}")
    with PrivatePostgres(settings={"autovacuum": "off", "max_wal_size": "8GB", "shared_buffers": "1GB",
                                   "maintenance_work_mem": "256MB"}) as pg, \
            tempfile.TemporaryDirectory() as d:
        spec_path = os.path.join(d, "million.yaml")
        Path(spec_path).write_text(SPEC)
        pg.create_database("shaped")
        with psycopg.connect(pg.url("shaped"), autocommit=True) as c:
            _migrate_to(c, 3)
        t = time.perf_counter()
        wf = build_state(pg.url("shaped"), spec_path)
        print(f"# built the shaped workflow in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        with pg.admin() as c:
            c.execute('CREATE DATABASE "main_copy" TEMPLATE "shaped" STRATEGY FILE_COPY')
            c.execute('CREATE DATABASE "this_copy" TEMPLATE "shaped" STRATEGY FILE_COPY')
        with psycopg.connect(pg.url("this_copy"), autocommit=True) as c:
            _migrate_to(c, None)
        base = run_ops(pg.url("main_copy"), wf, baseline=True)
        mine = run_ops(pg.url("this_copy"), wf, baseline=False)
        version = pg.admin().execute("SHOW server_version").fetchone()[0]
    results = []
    targets = {"reset_failed_only": "rows written ≤ 4 per job reset",
               "cancel": "longest transaction ≤ 1 s", "delete": "longest transaction ≤ 1 s"}
    for op in ("reset_failed_only", "cancel", "delete"):
        b, m = base[op], mine[op]
        ok = (m["rows_written"] <= 4 * max(1, m["jobs_reset"]) if op == "reset_failed_only"
              else m["longest_transaction_s"] <= 1.0)
        results.append(emit({
            "name": f"maintenance_{op}", "value": m["seconds"], "unit": "s", "peer": "main's statements",
            "peer_value": b["seconds"], "ratio": b["seconds"] / max(m["seconds"], 1e-9),
            "target": targets[op], "meets_target": ok, "this": m, "main": b, "jobs": 1_000_001,
            "server": version}))
    return results


if __name__ == "__main__":
    main()
