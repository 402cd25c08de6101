"""`torc db …`: migrations, the schema, the URL in use."""

from __future__ import annotations

import typer

from torc_hpc.cli.common import state
from torc_hpc.cli.output import console
from torc_hpc.db import Database
from torc_hpc.db import migrate as migrations
from torc_hpc.db.connection import redact, resolve_url

app = typer.Typer(help="Database: apply migrations, print the schema, show the URL in use.", no_args_is_help=True)


@app.command("migrate")
def db_migrate():
    """Apply pending schema migrations (torc also does this on first use)."""
    with Database(state.url, migrate=False) as db:
        applied = migrations.migrate(db.conn)
        version = migrations.current_version(db.conn)
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    console.print(f"schema version {version}")


@app.command("schema")
def db_schema():
    """Print the schema SQL (every migration, in order) without connecting: for admins who install it
    themselves, e.g. `torc db schema | psql -d torc`."""
    for version, name, path in migrations.migrations():
        print(f"-- {version:04d}_{name}")
        print(path.read_text())
    print("CREATE TABLE IF NOT EXISTS torc_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
          "applied_at timestamptz NOT NULL DEFAULT now());")
    values = ", ".join(f"({v}, '{n}')" for v, n, _ in migrations.migrations())
    print(f"INSERT INTO torc_schema_migrations (version, name) VALUES {values};")


@app.command("url")
def db_url():
    """Print the database URL in use (password removed); starts the embedded server if needed."""
    print(redact(resolve_url(state.url)))
