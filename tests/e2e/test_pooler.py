"""torc behind pgbouncer in transaction mode (issue 11 item 2): 100 real `torc worker` processes on a
20,000-job workflow and two overlapping `torc watch --all --once`, all through Debian's pgbouncer
(transaction pooling, default_pool_size 10) in front of a private PostgreSQL. Every job completes exactly
once, no process crashes, and the server never sees more than the pool's 10 connections.

Slow but in CI (a few minutes): trivial jobs (`true`), two jobs at a time per worker, idle workers leave as
soon as nothing is left. The workers poll (no TORC_NOTIFY_URL): the setting tells them a transaction
pooler is in front, so they prepare nothing and do not LISTEN. A shorter test checks that with
TORC_NOTIFY_URL set a worker behind the pooler LISTENs on its own direct connection and wakes at once.
"""

import time

import psycopg
import pytest

from bench.pooler import ConnectionSampler, start_watchers
from bench.workers import kill_all, start_workers, wait_until
from tests.conftest import Torc
from tests.pgbouncer import Pgbouncer, unavailable_reason
from tests.pgserver import PrivatePostgres

_reason = unavailable_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

POOL = 10
WORKERS = 100
JOBS = 20_000


def _migrated(pg: PrivatePostgres, name: str) -> str:
    from torc_hpc.db import migrate

    pg.create_database(name)
    with psycopg.connect(pg.url(name), autocommit=True) as c:
        migrate.migrate(c)
    return pg.url(name)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_hundred_workers_and_two_watchers_through_pgbouncer(tmp_path, monkeypatch):
    monkeypatch.setenv("TORC_DB_POOLER", "transaction")
    monkeypatch.delenv("TORC_NOTIFY_URL", raising=False)
    with PrivatePostgres(settings={"max_connections": "40"}) as pg, \
            Pgbouncer(pg, pool_mode="transaction", default_pool_size=POOL, max_client_conn=400) as bouncer:
        direct = _migrated(pg, "torc")
        pooled = bouncer.url("torc")
        gate = tmp_path / "gate"
        spec = tmp_path / "wf.yaml"
        spec.write_text(f"name: pooled\njobs:\n"
                        f"  - {{name: gate, command: 'while [ ! -e {gate} ]; do sleep 0.05; done'}}\n"
                        f"  - {{name: 't_{{i}}', command: 'true', depends_on: [gate], parameters: {{i: '1:{JOBS}'}}}}\n")
        torc = Torc(pooled, tmp_path)
        torc.env["TORC_DB_POOLER"] = "transaction"
        wf = torc.json("workflows", "create", str(spec))["id"]
        c = psycopg.connect(direct, autocommit=True)   # the test's own eyes, direct: left out of the count
        c.execute("VACUUM ANALYZE jobs")
        sampler = ConnectionSampler(pg.url("postgres"), "torc",
                                    exclude=(c.execute("SELECT pg_backend_pid()").fetchone()[0],))
        sampler.start()
        procs = start_workers(WORKERS, pooled, wf, tmp_path, extra_args=["-j", "2", "--idle-timeout", "120"],
                              env={"TORC_DB_POOLER": "transaction"})
        watchers = []
        try:
            with c:
                registered = wait_until(lambda: c.execute("SELECT count(*) FROM workers").fetchone()[0]
                                        + sum(p.poll() is not None for p, _ in procs) >= WORKERS, 600, 0.5)
                assert registered, "the workers did not all register within 10 minutes"
                gate.touch()
                time.sleep(1.0)
                watchers = start_watchers(pooled, tmp_path, 2, "pooled")   # overlapping, through the pooler
                done = wait_until(lambda: c.execute(
                    "SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()[0] == JOBS + 1
                    or all(p.poll() is not None for p, _ in procs), 900, 0.5)
                wait_until(lambda: all(p.poll() is not None for p, _ in procs + watchers), 180, 0.2)
                counts = dict(c.execute("SELECT status::text, count(*) FROM jobs GROUP BY 1").fetchall())
                twice = c.execute("SELECT count(*) FROM (SELECT job_id FROM results WHERE status = 'completed' "
                                  "GROUP BY job_id HAVING count(*) > 1) d").fetchone()[0]
                results = c.execute("SELECT count(*) FROM results").fetchone()[0]
                workers_rows = dict(c.execute("SELECT coalesce(stop_reason, 'running'), count(*) FROM workers "
                                              "GROUP BY 1").fetchall())
        finally:
            kill_all(procs)
            kill_all(watchers)
            most = sampler.stop()
        logs = [log.read_text(errors="replace") for _, log in procs + watchers]
        crashed = [(i, text[-800:]) for i, ((p, _), text) in enumerate(zip(procs + watchers, logs))
                   if p.returncode != 0 or "Traceback" in text or "prepared statement" in text]
        assert done and counts == {"completed": JOBS + 1}, counts
        assert twice == 0 and results == JOBS + 1
        assert not crashed, crashed[:3]
        assert "lost" not in workers_rows, workers_rows
        assert 0 < most <= POOL, f"the server saw {most} connections from torc (pool: {POOL})"


@pytest.mark.timeout(300)
def test_behind_the_pooler_a_worker_listens_on_the_notify_url(tmp_path):
    """TORC_NOTIFY_URL: the worker claims and completes through the pooler and LISTENs on the direct URL,
    so a job made ready while it idles is claimed at once (a poll would take up to a second)."""
    from torc_hpc.worker.pump import IDLE_POLL_MAX_S

    with PrivatePostgres() as pg, Pgbouncer(pg, pool_mode="transaction", default_pool_size=2) as bouncer:
        direct = _migrated(pg, "torc")
        torc = Torc(bouncer.url("torc"), tmp_path)
        torc.env.update(TORC_DB_POOLER="transaction", TORC_NOTIFY_URL=direct)
        torc.write("wf.yaml", "name: notified\njobs:\n  - {name: first, command: 'true'}\n"
                              "  - {name: second, command: 'true', depends_on: [first]}\n")
        wf = torc.json("workflows", "create", "wf.yaml")["id"]
        with psycopg.connect(direct, autocommit=True) as c:
            c.execute("UPDATE jobs SET status = 'running', started_at = now() WHERE name = 'first'")   # someone else runs it
            proc = torc.popen("worker", wf, "--idle-timeout", "60")
            try:
                assert wait_until(lambda: c.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'torc' AND query LIKE 'LISTEN%%'"
                ).fetchone()[0] == 1, 60, 0.1), "the worker did not LISTEN on the direct URL"
                time.sleep(4 * IDLE_POLL_MAX_S)
                with c.transaction():
                    c.execute("UPDATE jobs SET status = 'ready' WHERE name = 'first'")
                    c.execute("SELECT pg_notify(notify_channel, '') FROM workflows WHERE id = %s", (wf,))
                t0 = time.monotonic()
                assert wait_until(lambda: c.execute("SELECT status::text FROM jobs WHERE name = 'second'"
                                                    ).fetchone()[0] == "completed", 30, 0.01)
                woke = time.monotonic() - t0
                out, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
        assert proc.returncode == 0, err
        assert woke < IDLE_POLL_MAX_S, f"took {woke:.2f}s: the NOTIFY did not wake the worker"


def test_the_setting_turns_server_side_preparing_off(monkeypatch, admin_url):
    from torc_hpc.db.connection import connect

    monkeypatch.setenv("TORC_DB_POOLER", "transaction")
    with connect(admin_url) as c:
        assert c.prepare_threshold is None
    monkeypatch.setenv("TORC_DB_POOLER", "none")
    with connect(admin_url) as c:
        assert c.prepare_threshold == 5


def test_an_unknown_pooler_setting_is_a_clear_error(monkeypatch):
    from torc_hpc.db.connection import pooler_mode
    from torc_hpc.errors import ConfigError

    monkeypatch.setenv("TORC_DB_POOLER", "statement")
    with pytest.raises(ConfigError, match="TORC_DB_POOLER"):
        pooler_mode()

