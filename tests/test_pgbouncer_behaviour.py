"""What a transaction-mode pgbouncer (Debian's, 1.18 here) does to the things torc relies on, verified by
experiment rather than from memory (issue 11; docs/scale-notes.md builds its design on these facts).

Each test states one behaviour of the pooler itself, with plain psycopg connections: if a pgbouncer
upgrade changes it (1.21 added protocol-level prepared statements, for instance), the test says so and the
design notes need a second look.
"""

import select

import psycopg
import pytest

from tests.pgbouncer import Pgbouncer, server_connections, unavailable_reason
from tests.pgserver import PrivatePostgres

_reason = unavailable_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

LOCK_KEY = 7_415_003 << 32 | 1   # the shape of the watcher's advisory lock key


@pytest.fixture(scope="module")
def pooled():
    """A private server and a transaction-mode pgbouncer with a pool of 2 server connections."""
    with PrivatePostgres() as pg, Pgbouncer(pg, pool_mode="transaction", default_pool_size=2) as bouncer:
        pg.create_database("pooled")
        yield pg, bouncer


def _client(bouncer, **kw):
    return psycopg.connect(bouncer.url("pooled"), autocommit=True, connect_timeout=5, **kw)


def test_server_side_prepared_statements_collide_and_prepare_threshold_none_avoids_them(pooled):
    pg, bouncer = pooled
    # psycopg prepares a statement after prepare_threshold (5) executions, naming it _pg3_0, _pg3_1, ...
    # per client connection: two clients that share a server connection both create "_pg3_0".
    a, b = _client(bouncer), _client(bouncer)
    with a, b, pytest.raises((psycopg.errors.DuplicatePreparedStatement, psycopg.errors.InvalidSqlStatementName)):
        for i in range(8):
            a.execute("SELECT %s::int", (i,))
            b.execute("SELECT %s::int", (i,))
    # With prepare_threshold=None psycopg never prepares (unnamed statements, extended protocol): fine.
    a, b = _client(bouncer, prepare_threshold=None), _client(bouncer, prepare_threshold=None)
    with a, b:
        for i in range(20):
            assert a.execute("SELECT %s::int", (i,)).fetchone()[0] == i
            assert b.execute("SELECT %s::int", (i,)).fetchone()[0] == i
        # Pipeline mode (what Database.finish uses) works through the pooler inside one transaction.
        with a.pipeline(), a.transaction():
            c1 = a.execute("SELECT %s::int", (1,))
            c2 = a.execute("SELECT %s::int", (2,))
        assert (c1.fetchone()[0], c2.fetchone()[0]) == (1, 2)


def test_notifications_never_reach_a_pooled_listener(pooled):
    pg, bouncer = pooled
    listener = _client(bouncer, prepare_threshold=None)
    sender = _client(bouncer, prepare_threshold=None)
    direct = psycopg.connect(pg.url("pooled"), autocommit=True)
    with listener, sender, direct:
        listener.execute("LISTEN torc_ready_1")   # LISTEN runs on whichever server connection, then lets go of it
        sender.execute("NOTIFY torc_ready_1")
        direct.execute("NOTIFY torc_ready_1")
        readable, _, _ = select.select([listener.pgconn.socket], [], [], 2.0)
        listener.pgconn.consume_input()
        assert not readable and listener.pgconn.notifies() is None
        # The same LISTEN on a direct connection hears it.
        with psycopg.connect(pg.url("pooled"), autocommit=True) as direct_listener:
            direct_listener.execute("LISTEN torc_ready_1")
            direct.execute("NOTIFY torc_ready_1")
            readable, _, _ = select.select([direct_listener.pgconn.socket], [], [], 5.0)
            direct_listener.pgconn.consume_input()
            assert readable and direct_listener.pgconn.notifies() is not None


def test_session_advisory_lock_outlives_its_client_and_transaction_locks_do_not(pooled):
    pg, bouncer = pooled
    with psycopg.connect(pg.url("pooled"), autocommit=True) as direct:
        with _client(bouncer, prepare_threshold=None) as watcher:
            assert watcher.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
        # The client is gone; the server connection it used went back to the pool still holding the lock.
        held = direct.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchall()
        assert len(held) == 1
        holder = held[0][0]
        # Two clients, each pinned to its own server connection by an open transaction: the one that lands
        # on the lock's connection "gets" it again (session locks are re-entrant), the other is refused,
        # though no client holds it. Mutual exclusion is gone and a workflow is skipped.
        x, y = _client(bouncer, prepare_threshold=None), _client(bouncer, prepare_threshold=None)
        with x, y, x.transaction(), y.transaction():
            got = {}
            for c in (x, y):
                pid, ok = c.execute("SELECT pg_backend_pid(), pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
                got[pid] = ok
            assert len(got) == 2 and got[holder] is True and list(got.values()).count(False) == 1
        # A transaction-scoped lock (another key: the leaked one stays where it is) ends with its
        # transaction: nothing leaks.
        other = LOCK_KEY + 1
        with _client(bouncer, prepare_threshold=None) as watcher:
            with watcher.transaction():
                assert watcher.execute("SELECT pg_try_advisory_xact_lock(%s)", (other,)).fetchone()[0]
        assert direct.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                              "(classid::bigint << 32 | objid::bigint) = %s", (other,)).fetchone()[0] == 0
        assert direct.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0] == 1


def test_set_leaks_to_other_clients_and_set_local_does_not(pooled):
    pg, bouncer = pooled
    with _client(bouncer, prepare_threshold=None) as c:
        c.execute("SET plan_cache_mode = force_custom_plan")
    seen = set()
    for _ in range(6):
        with _client(bouncer, prepare_threshold=None) as c:
            seen.add(c.execute("SHOW plan_cache_mode").fetchone()[0])
    assert "force_custom_plan" in seen   # a later client inherits another's SET
    with _client(bouncer, prepare_threshold=None) as c:
        with c.transaction():
            c.execute("SET LOCAL work_mem = '77MB'")
            assert c.execute("SHOW work_mem").fetchone()[0] == "77MB"
        assert c.execute("SHOW work_mem").fetchone()[0] != "77MB"
    assert server_connections(pg, "pooled") <= 2


def test_this_version_has_no_protocol_level_prepared_statements():
    """pgbouncer 1.21 added max_prepared_statements; the Debian 12 package (1.18) rejects the setting, so
    torc must not rely on it and turns psycopg's preparing off instead."""
    from tests.pgbouncer import version

    if not version().startswith("PgBouncer 1.18"):
        pytest.skip(f"written against 1.18; this is {version()}")
    with PrivatePostgres() as pg:
        bouncer = Pgbouncer(pg, settings={"max_prepared_statements": "100"})
        try:
            with pytest.raises(RuntimeError, match="unknown parameter: pgbouncer/max_prepared_statements"):
                bouncer.start()
        finally:
            bouncer.destroy()


def test_a_client_cannot_tell_it_is_pooled(pooled):
    """Why torc needs a setting to know a pooler is in front: through pgbouncer the connection reports
    the server's own parameters, SHOW of pooler settings is the server's (unknown there), and a client on
    an idle pool keeps landing on the same server process."""
    pg, bouncer = pooled
    with psycopg.connect(pg.url("pooled"), autocommit=True) as direct, _client(bouncer, prepare_threshold=None) as c:
        for name in ("server_version", "server_encoding", "integer_datetimes", "TimeZone"):
            assert c.info.parameter_status(name) == direct.info.parameter_status(name)
        with pytest.raises(psycopg.errors.UndefinedObject):
            c.execute("SHOW pool_mode")
        assert len({c.execute("SELECT pg_backend_pid()").fetchone()[0] for _ in range(10)}) == 1


def test_one_connection_gets_notifications_during_queries_and_while_idle(pooled):
    """The single-connection worker design (docs/scale-notes.md): on a direct connection a NOTIFY that
    arrives while the connection runs a query reaches psycopg's notify handler; one that arrives while it
    is idle makes its socket readable and is read with libpq's consume_input/notifies."""
    import threading
    import time

    pg, _ = pooled
    got = []
    with psycopg.connect(pg.url("pooled"), autocommit=True) as conn, \
            psycopg.connect(pg.url("pooled"), autocommit=True) as sender:
        conn.add_notify_handler(lambda n: got.append(n.payload))
        conn.execute("LISTEN torc_ready_9")
        t = threading.Thread(target=lambda: (time.sleep(0.2), sender.execute("NOTIFY torc_ready_9, 'during'")))
        t.start()
        conn.execute("SELECT pg_sleep(0.6)")
        t.join()
        assert got == ["during"]
        sender.execute("NOTIFY torc_ready_9, 'idle'")
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 5.0)
        assert readable
        conn.pgconn.consume_input()
        n = conn.pgconn.notifies()
        assert n is not None and n.extra == b"idle"


def test_defaults_that_explain_the_leaks():
    """pgbouncer's defaults behind the notes: no reset query in transaction mode, server connections kept
    up to an hour, and a startup `options` parameter (a tempting place for session SETs) refused unless
    listed in ignore_startup_parameters."""
    with PrivatePostgres() as pg, Pgbouncer(pg) as b:
        config = {r["key"]: r["value"] for r in b.show("CONFIG")}
        assert config["server_reset_query_always"] == "0"
        assert (config["server_idle_timeout"], config["server_lifetime"]) == ("600", "3600")
        with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
            psycopg.connect(b.url(), options="-c plan_cache_mode=force_custom_plan", connect_timeout=5)
