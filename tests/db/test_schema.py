"""Migrations and the schema as an admin sees it."""

import os

import psycopg

from torc_hpc.db import migrate as migrations


def test_migrate_is_idempotent(db):
    assert migrations.current_version(db.conn) == migrations.latest_version()
    assert migrations.migrate(db.conn) == []


def test_every_table_view_and_column_is_commented(db):
    missing = db.conn.execute("""
        SELECT c.relname AS rel, a.attname AS col
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind = 'r'
          AND ((a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL
                AND c.relname NOT IN ('torc_schema_migrations', 'events')
                AND a.attname NOT IN ('id'))
               OR obj_description(c.oid, 'pg_class') IS NULL)
        ORDER BY 1, 2""").fetchall()
    # events.id/workflow_id are self-explanatory; everything else must say what it is.
    assert missing == [], f"uncommented: {missing}"
    views = db.conn.execute("""
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'v' AND obj_description(c.oid, 'pg_class') IS NULL""").fetchall()
    assert views == []


def test_status_enum_has_readable_names(db):
    labels = [r["enumlabel"] for r in db.conn.execute(
        "SELECT enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
        "WHERE t.typname = 'job_status' ORDER BY enumsortorder")]
    assert labels == ["blocked", "ready", "running", "completed", "failed", "canceled", "terminated",
                      "pending_failed", "disabled"]


def test_fresh_database_migrates_on_first_use(admin_url):
    from tests.conftest import _with_db

    name = f"torc_fresh_migrate_test_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        from torc_hpc.db import Database

        with Database(_with_db(admin_url, name)) as db:
            assert migrations.current_version(db.conn) == migrations.latest_version()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_printed_schema_installs_into_an_empty_database(admin_url):
    """`torc db schema | psql` gives the same schema torc's own migrations give."""
    import subprocess
    import sys

    from tests.conftest import _with_db
    from torc_hpc.db import Database

    sql = subprocess.run([sys.executable, "-m", "torc_hpc.cli.app", "db", "schema"], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    name = f"torc_printed_schema_test_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        url = _with_db(admin_url, name)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(sql)
        with Database(url) as db:  # would migrate if anything were missing
            assert migrations.current_version(db.conn) == migrations.latest_version()
            tables = {r["tablename"] for r in db.conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"workflows", "jobs", "results", "events", "allocations", "watch_state"} <= tables
    finally:
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_migration_numbered_below_the_highest_applied_is_still_pending(admin_url):
    """Branches can land out of order: 0007 applied before 0004 existed must not hide 0004."""
    from tests.conftest import _with_db

    name = f"torc_out_of_order_test_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(_with_db(admin_url, name), autocommit=True) as c:
            c.execute("CREATE TABLE torc_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                      "applied_at timestamptz NOT NULL DEFAULT now())")
            everything = [v for v, _, _ in migrations.migrations()]
            skipped = everything[1]
            for v in everything:
                if v != skipped:
                    c.execute("INSERT INTO torc_schema_migrations (version, name) VALUES (%s, 'x')", (v,))
            assert migrations.current_version(c) == migrations.latest_version()
            assert [v for v, _, _ in migrations.pending(c)] == [skipped]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
