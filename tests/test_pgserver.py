"""The private-server helper itself: starts with password authentication, refuses a wrong password,
survives a kill and a restart."""

import psycopg
import pytest

from tests.pgserver import PrivatePostgres, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


def test_private_server_with_passwords_restarts_after_a_kill():
    with PrivatePostgres(auth="scram-sha-256") as pg:
        with psycopg.connect(pg.url()) as conn:
            assert conn.execute("SHOW port").fetchone()[0] == str(pg.port)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(pg.url(password="wrong"), connect_timeout=5)
        pg.kill()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg.url(), connect_timeout=2)
        pg.start()
        with psycopg.connect(pg.url()) as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
