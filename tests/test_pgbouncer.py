"""The pgbouncer fixture itself: transaction pooling in front of a private PostgreSQL caps the server
connections at the pool size however many clients connect, its admin console reads, and it works with a
password-protected (SCRAM) backend as well as a trusting one."""

import psycopg
import pytest

from tests.pgbouncer import Pgbouncer, server_connections, unavailable_reason
from tests.pgserver import PrivatePostgres

_reason = unavailable_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


def test_transaction_pool_caps_server_connections():
    with PrivatePostgres() as pg, Pgbouncer(pg, pool_mode="transaction", default_pool_size=2) as bouncer:
        pg.create_database("pooled")
        clients = [psycopg.connect(bouncer.url("pooled"), autocommit=True, prepare_threshold=None)
                   for _ in range(20)]
        try:
            for i, c in enumerate(clients):
                assert c.execute("SELECT %s::int + 1", (i,)).fetchone()[0] == i + 1
            # Twenty clients, every one of them has run a statement, and the server saw at most the pool.
            assert 1 <= server_connections(pg, "pooled") <= 2
            pool = bouncer.pool("pooled")
            assert pool["cl_active"] + pool["cl_waiting"] == 20
            assert pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] <= 2
            stats = {r["database"]: r for r in bouncer.show("STATS")}
            assert int(stats["pooled"]["total_xact_count"]) >= 20
            config = {r["key"]: r["value"] for r in bouncer.show("CONFIG")}
            assert config["pool_mode"] == "transaction" and int(config["max_client_conn"]) >= 1000
        finally:
            for c in clients:
                c.close()


def test_scram_backend_through_the_pooler():
    with PrivatePostgres(auth="scram-sha-256") as pg, Pgbouncer(pg, default_pool_size=1) as bouncer:
        with psycopg.connect(bouncer.url(), autocommit=True) as c:
            assert c.execute("SELECT current_user").fetchone()[0] == "postgres"
        bad = bouncer.url().replace(pg.superuser_password, "wrong")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(bad, connect_timeout=5)
