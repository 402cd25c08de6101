"""A private PostgreSQL with scram-sha-256 (the machine's shared server trusts everyone, so isolation
cannot be shown there), a torc database owned by `postgres`, and roles alice, bob (users), watch (the
cluster watcher) and support (admin), each with a password."""

from __future__ import annotations

import pytest

from tests.pgserver import PrivatePostgres, unavailable_reason

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "watch": "watch-pw", "support": "support-pw"}
KINDS = {"alice": "user", "bob": "user", "watch": "watcher", "support": "admin"}


@pytest.fixture(scope="session")
def private_pg():
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no private PostgreSQL: {reason}")
    with PrivatePostgres(auth="scram-sha-256") as pg:
        yield pg


@pytest.fixture(scope="session")
def cluster_db(private_pg):
    """The torc database of a 'site': migrated by its owner, four roles granted."""
    from torc_hpc.db import Database, grants

    private_pg.create_database("torc")
    with private_pg.admin() as conn:
        for role, pw in PASSWORDS.items():
            conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{pw}'")
    with Database(private_pg.url("torc")) as owner:
        for role, kind in KINDS.items():
            grants.grant(owner.conn, role, kind)
    return private_pg


def role_url(pg, role: str, dbname: str = "torc", with_password: bool = True) -> str:
    return pg.url(dbname, role, PASSWORDS[role] if with_password else None)
