"""The watcher's lease row (watch_state.leased_by / leased_until) instead of a session advisory lock, and no
session state left behind a transaction-mode pooler (issue 11 item 2, docs/scale-notes.md §5)."""

import os
import subprocess
import sys
import time

import psycopg
import pytest

from torc_hpc.db import Database
from torc_hpc.watch import cycle
from torc_hpc.watch.lease import Leases
from tests.helpers import create


def _wf(db, name="w"):
    return create(db, {"name": name, "jobs": [{"name": "a", "command": "true"}]})


def test_a_held_lease_skips_the_workflow_and_a_dead_watchers_lease_expires(db):
    wf = _wf(db)
    dead = Leases(db, ttl_s=2, me="elsewhere:1:dead")
    assert dead.take(wf)                       # then the watcher "crashes": it never releases
    r = cycle.run_locked(db, wf, None, cycle.WatchConfig())
    assert r.skipped == cycle.BUSY and not r.counts
    time.sleep(2.2)
    r = cycle.run_locked(db, wf, None, cycle.WatchConfig())
    assert r.skipped is None and r.counts == {"ready": 1}
    # The cycle gave its lease back: nobody holds the workflow now.
    assert db.one("watch_lease_holder", workflow_id=wf)["leased_by"] is None


def test_take_is_exclusive_reentrant_renewable_and_released(db):
    a, b = _wf(db, "a"), _wf(db, "b")
    mine, theirs = Leases(db, ttl_s=60), Leases(db, ttl_s=60)
    assert mine.take(a) and mine.take(a)        # ours again: taken (and extended)
    assert not theirs.take(a) and theirs.take(b)
    before = db.one("watch_lease_holder", workflow_id=a)["leased_until"]
    mine.ttl_s = 600
    mine.renew()                                # one statement renews every lease this watcher holds
    assert db.one("watch_lease_holder", workflow_id=a)["leased_until"] > before
    assert db.one("watch_lease_holder", workflow_id=b)["leased_by"] == theirs.me   # not someone else's
    mine.release()
    assert db.one("watch_lease_holder", workflow_id=a)["leased_by"] is None
    assert theirs.take(a)
    theirs.release([b])                         # only what it names
    assert db.one("watch_lease_holder", workflow_id=a)["leased_by"] == theirs.me


def test_the_watcher_takes_no_advisory_lock_and_sets_nothing_on_its_session(db):
    wf = _wf(db)
    cycle.run_locked(db, wf, None, cycle.WatchConfig())
    cycle.cron_once(db, None, cycle.WatchConfig())
    me = db.conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
    locks = db.conn.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = %s",
                            (me,)).fetchone()["n"]
    assert locks == 0
    assert db.conn.execute("SHOW plan_cache_mode").fetchone()["plan_cache_mode"] == "auto"


# ---- behind pgbouncer, transaction mode ------------------------------------------------------------------

def _pooler_reason():
    from tests.pgbouncer import unavailable_reason

    return unavailable_reason()


@pytest.mark.skipif(_pooler_reason() is not None, reason=_pooler_reason() or "")
def test_overlapping_cron_watchers_through_pgbouncer_leave_no_session_state(tmp_path):
    from tests.pgbouncer import Pgbouncer
    from tests.pgserver import PrivatePostgres

    with PrivatePostgres() as pg, Pgbouncer(pg, pool_mode="transaction", default_pool_size=2) as bouncer:
        pg.create_database("pooled")
        with Database(pg.url("pooled")) as direct_db:
            wfs = [_wf(direct_db, f"w{i}") for i in range(4)]
        env = dict(os.environ, TORC_DATABASE_URL=bouncer.url("pooled"), TORC_NO_SLURM="1")
        procs = [subprocess.Popen([sys.executable, "-m", "torc_hpc.cli.app", "watch", "--all", "--once",
                                   "--format", "json"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outs
        with psycopg.connect(pg.url("pooled"), autocommit=True) as direct:
            # No lock of any kind outlives the watchers, and no lease is left taken.
            assert direct.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0] == 0
            assert direct.execute("SELECT count(*) FROM watch_state WHERE leased_by IS NOT NULL").fetchone()[0] == 0
            assert {r[0] for r in direct.execute("SELECT workflow_id FROM watch_state")} == set(wfs)
        # Every pooled server connection still has the server's defaults (fresh clients land on them).
        seen = set()
        clients = [psycopg.connect(bouncer.url("pooled"), autocommit=True, prepare_threshold=None)
                   for _ in range(4)]
        try:
            for _ in range(5):
                for c in clients:
                    seen.add(c.execute("SHOW plan_cache_mode").fetchone()[0])
        finally:
            for c in clients:
                c.close()
        assert seen == {"auto"}


def test_the_interactive_watcher_listens_on_its_own_connection_only_without_a_pooler(db, monkeypatch):
    from torc_hpc.cli.watch import notify_sleep

    wf = _wf(db)
    channels = "SELECT count(*) AS n FROM pg_listening_channels()"
    monkeypatch.setenv("TORC_DB_POOLER", "transaction")
    monkeypatch.delenv("TORC_NOTIFY_URL", raising=False)
    sleep = notify_sleep(db, wf)
    assert db.conn.execute(channels).fetchone()["n"] == 0      # no session state behind the pooler
    t0 = time.monotonic()
    sleep(0.2)
    assert time.monotonic() - t0 >= 0.2
    monkeypatch.setenv("TORC_DB_POOLER", "none")
    notify_sleep(db, wf)
    assert db.conn.execute(channels).fetchone()["n"] == 1
