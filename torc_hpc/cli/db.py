"""`torc db …`: migrations, the schema, the URL in use, grants, pruning old records."""

from __future__ import annotations

import typer

from torc_hpc.cli.common import FormatOpt, state
from torc_hpc.cli.output import Format, console, emit_json, emit_rows
from torc_hpc.db import Database, grants
from torc_hpc.db import migrate as migrations
from torc_hpc.errors import TorcError
from torc_hpc.db.connection import redact, resolve_url

app = typer.Typer(help="Database: apply migrations, print the schema, show the URL in use, grant roles, prune old "
                       "records.",
                  no_args_is_help=True)


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


@app.command("grant")
def db_grant(role: str = typer.Argument(..., help="an existing PostgreSQL role (CREATE ROLE … LOGIN first)"),
             admin: bool = typer.Option(False, "--admin", help="support staff: read everything, cancel anything"),
             watcher: bool = typer.Option(False, "--watcher",
                                          help="the cluster-wide cron watcher: schedules every owner's "
                                               "workflows, never changes what runs"),
             fmt: Format = FormatOpt):
    """Let a PostgreSQL role use torc on this database (run by the database owner).

    A plain grant: the role creates and runs its own workflows and sees only those (row-level security).
    `--watcher`: reads what scheduling needs across owners, records allocations, watch state and events,
    may resize and reset jobs; never a command, a recovery script, a directory or an environment.
    `--admin`: reads everything (also the admin_* views behind `torc admin`) and may cancel anything.
    Grants are per database; granting again replaces the earlier kind. See README "Running torc for a
    whole cluster".
    """
    if admin and watcher:
        raise TorcError("choose one of --admin and --watcher")
    kind = "admin" if admin else "watcher" if watcher else "user"
    with Database(state.url) as db:
        out = grants.grant(db.conn, role, kind)
    if fmt is Format.json:
        emit_json(out)
        return
    console.print(f"granted {role} torc {kind} on database {out['database']}")
    for n in out["notes"]:
        console.print(f"[yellow]note:[/yellow] {n}")


@app.command("revoke")
def db_revoke(role: str = typer.Argument(..., help="a role granted earlier"), fmt: Format = FormatOpt):
    """Take every torc privilege on this database from a role (its workflows stay, still owned by it)."""
    with Database(state.url) as db:
        out = grants.revoke(db.conn, role)
    if fmt is Format.json:
        emit_json(out)
    else:
        console.print(f"revoked torc {out['was'] or 'access'} from {role} on database {out['database']}")


@app.command("grants")
def db_grants(fmt: Format = FormatOpt):
    """The roles granted on this database, and as what."""
    with Database(state.url) as db:
        rows = grants.list_grants(db.conn)
    emit_rows(rows, ["role", "kind", "granted_at", "granted_by"], fmt,
              empty="no grants: only the database owner uses torc here (torc db grant ROLE)")


@app.command("prune")
def db_prune(events_before: str = typer.Option(
                 ..., "--events-before",
                 help="delete events older than this: a date (2024-06-01, local midnight), a time "
                      "(2024-06-01T12:30, 2024-06-01T12:30+02:00) or an age (90d, 12h, 2w)"),
             dry_run: bool = typer.Option(False, "--dry-run", help="count what would be deleted; delete nothing"),
             fmt: Format = FormatOpt):
    """Delete old events (the audit log) of every workflow you can see, in short transactions.

    Jobs, results and workflows stay; `torc workflows archive WF` exports and removes a whole workflow
    (results and events of deleted or archived workflows never remain). Events of a workflow's current run
    feed its retry count: prune well behind running work. For cron: `torc db prune --events-before 180d`.
    """
    from datetime import datetime, timezone

    from torc_hpc import retention

    cutoff = retention.parse_cutoff(events_before, datetime.now(timezone.utc))
    with Database(state.url) as db:
        out = retention.prune_events(db, cutoff, dry_run=dry_run)
    if fmt is Format.json:
        emit_json(out)
    elif dry_run:
        console.print(f"{out['events_older']} event(s) older than {out['before']} would be deleted")
    else:
        console.print(f"deleted {out['events_deleted']} event(s) older than {out['before']} "
                      f"in {out['chunks']} transaction(s)")
