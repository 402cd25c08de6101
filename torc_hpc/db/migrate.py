"""Apply the numbered SQL files in sql/migrations in order, once each, recorded in torc_schema_migrations."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row

# Any constant works; it serialises concurrent migrators across processes and hosts.
_MIGRATION_LOCK = 7_415_001

_FILE_RE = re.compile(r"^(\d{4})_(\w+)\.sql$")


def sql_dir() -> Path:
    """Top-level sql/ in a checkout, or the copy shipped inside the wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "sql", here / "_sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise FileNotFoundError("cannot find torc's sql/migrations directory; reinstall torc-hpc")


def migrations() -> list[tuple[int, str, Path]]:
    found = []
    for p in sorted((sql_dir() / "migrations").iterdir()):
        m = _FILE_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), m.group(2), p))
    return found


def latest_version() -> int:
    return max(v for v, _, _ in migrations())


def applied_versions(conn: psycopg.Connection) -> set[int]:
    with conn.cursor(row_factory=tuple_row) as cur:
        if not cur.execute("SELECT to_regclass('torc_schema_migrations') IS NOT NULL").fetchone()[0]:
            return set()
        return {v for (v,) in cur.execute("SELECT version FROM torc_schema_migrations")}


def current_version(conn: psycopg.Connection) -> int:
    return max(applied_versions(conn), default=0)


def pending(conn: psycopg.Connection) -> list[tuple[int, str, Path]]:
    """Migrations not applied yet, in order. By set, not by the highest number: a migration numbered
    below one already applied (branches that landed out of order) is still applied."""
    have = applied_versions(conn)
    return [m for m in migrations() if m[0] not in have]


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction. Returns the names applied."""
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("""
            CREATE TABLE IF NOT EXISTS torc_schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )""")
        conn.execute("COMMENT ON TABLE torc_schema_migrations IS "
                     "'Schema versions applied by torc db migrate (files in sql/migrations).'")
        for version, name, path in pending(conn):
            conn.execute(path.read_text(), prepare=False)   # several statements: never a prepared one
            conn.execute("INSERT INTO torc_schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(f"{version:04d}_{name}")
    if applied:
        _reapply_grants(conn)
    return applied


def _reapply_grants(conn: psycopg.Connection) -> None:
    """Roles granted with `torc db grant` get their privileges on tables and columns the new migrations added."""
    from torc_hpc.db.grants import reapply_on

    reapply_on(conn)
