"""`torc db …`: migrations, the schema, the URL in use, grants, pruning old records, the embedded server's
status and stop."""

from __future__ import annotations

import typer

from torc_hpc.cli.common import FormatOpt, state
from torc_hpc.cli.output import Format, console, emit_json, emit_rows, human_bytes
from torc_hpc.config import settings
from torc_hpc.db import Database, grants
from torc_hpc.db import migrate as migrations
from torc_hpc.errors import TorcError
from torc_hpc.db.connection import redact, resolve_url

app = typer.Typer(help="Database: migrations, the schema, the URL in use, grants, pruning old records, the "
                       "embedded server (status, stop).",
                  no_args_is_help=True)


@app.command("migrate")
def db_migrate():
    """Apply pending schema migrations (torc also does this on first use).

    Example: `torc db migrate`
    """
    with Database(state.url, migrate=False) as db:
        applied = migrations.migrate(db.conn)
        version = migrations.current_version(db.conn)
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    console.print(f"schema version {version}")


@app.command("schema")
def db_schema():
    """Print the schema SQL (every migration, in order) without connecting: for admins who install it
    themselves.

    Example: `torc db schema | psql -d torc`
    """
    for version, name, path in migrations.migrations():
        print(f"-- {version:04d}_{name}")
        print(path.read_text())
    print("CREATE TABLE IF NOT EXISTS torc_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
          "applied_at timestamptz NOT NULL DEFAULT now());")
    values = ", ".join(f"({v}, '{n}')" for v, n, _ in migrations.migrations())
    print(f"INSERT INTO torc_schema_migrations (version, name) VALUES {values};")


@app.command("url")
def db_url():
    """Print the database URL in use (password removed); starts the embedded server if needed.

    Example: `psql "$(torc db url)"`
    """
    print(redact(resolve_url(state.url)))


@app.command("status")
def db_status(fmt: Format = FormatOpt):
    """Which server torc uses and whether it answers: for the embedded one, its data directory, whether it is
    running and its size on disk (it is not started by this command); for yours, its URL (no password),
    version and database size. Also what torc believes is in front of it (TORC_DB_POOLER: none, session,
    transaction) and how workers hear of ready jobs (LISTEN, or polling behind a transaction pooler).

    Example: `torc db status`
    """
    from torc_hpc.db import embedded
    from torc_hpc.db.connection import connect

    configured = settings.all()["database_url"]
    if state.url:
        out = {"kind": "server", "url": redact(state.url), "source": configured.source, "running": None}
        url = state.url
    else:
        out = {**embedded.status(), "source": "embedded (no database_url set)"}
        url = out["url"]
    if url:
        try:
            with connect(url) as conn:
                from torc_hpc.db.queries import q

                row = conn.execute(q("server_status")).fetchone()
            out.update(running=True, answers=True, server_version=row["version"], database=row["database"],
                       user=row["user"], database_size_bytes=row["size_bytes"], connections=row["connections"])
            out["url"] = redact(url)
        except Exception as e:  # noqa: BLE001 - status reports any failure to answer
            out.update(answers=False, error=str(e).strip().splitlines()[0])
    out.update(connections_as(settings.all()))
    if fmt is not Format.table:
        emit_json(out)
        return
    if out["kind"] == "embedded":
        state_text = (f"[green]running[/green] (pid {out['pid']}, since {out['started_at']})" if out["running"]
                      else "[yellow]stopped[/yellow] (the next torc command starts it)" if out["initialized"]
                      else "not created yet (the first torc command creates it)")
        console.print(f"server: embedded PostgreSQL {out['version'] or ''}".rstrip(), highlight=False)
        console.print(f"data directory: {out['data_dir']} · {human_bytes(out['size_bytes'])} on disk", highlight=False)
        console.print(f"state: {state_text}", highlight=False)
        console.print(f"log: {out['log']}", highlight=False)
    else:
        console.print(f"server: {out['url']} (from {out['source']})", highlight=False)
    if out.get("answers"):
        console.print(f"database {out['database']} as {out['user']}: PostgreSQL {out['server_version']}, "
                      f"{human_bytes(out['database_size_bytes'])}, {out['connections']} connection(s)",
                      highlight=False)
    elif url:
        console.print(f"[red]does not answer:[/red] {out['error']}", highlight=False)
    console.print(f"pooler: {out['pooler']} (from {out['pooler_source']}) · workers hear of ready jobs by "
                  f"{out['notifications']}", highlight=False)


def connections_as(values: dict) -> dict:
    """What torc believes is between it and PostgreSQL, and how its workers learn of ready jobs."""
    pooler, notify = values["db_pooler"], values["notify_url"]
    mode = (pooler.value or "none").strip().lower()
    if mode != "transaction":
        how = "LISTEN on the database URL"
    elif notify.value:
        how = f"LISTEN on TORC_NOTIFY_URL {redact(notify.value)} (a second, direct connection per worker)"
    else:
        how = "polling (an O(1) probe, backing off to once a second; set TORC_NOTIFY_URL to LISTEN instead)"
    return {"pooler": mode, "pooler_source": pooler.source, "prepared_statements": mode != "transaction",
            "notifications": how}


@app.command("stop")
def db_stop():
    """Stop the embedded PostgreSQL (your data stays in its data directory; the next torc command starts it
    again). A server you configured yourself is yours to manage: this command leaves it alone.

    Example: `torc db stop`
    """
    from torc_hpc.db import embedded
    from torc_hpc.errors import TorcError

    if state.url:
        raise TorcError(f"torc only stops its embedded server; the database in use is {redact(state.url)} "
                        f"(from {settings.all()['database_url'].source}), which is managed outside torc")
    if embedded.stop():
        console.print(f"stopped the embedded PostgreSQL; its data stays in {embedded.pgdata()}", highlight=False)
    else:
        console.print(f"the embedded PostgreSQL is not running ({embedded.pgdata()})", highlight=False)


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

    Example: `torc db grant alice` · `torc db grant cron_watcher --watcher`
    """
    if admin and watcher:
        raise TorcError("choose one of --admin and --watcher")
    kind = "admin" if admin else "watcher" if watcher else "user"
    with Database(state.url) as db:
        out = grants.grant(db.conn, role, kind)
    if fmt is not Format.table:
        emit_json(out)
        return
    console.print(f"granted {role} torc {kind} on database {out['database']}")
    for n in out["notes"]:
        console.print(f"[yellow]note:[/yellow] {n}")


@app.command("revoke")
def db_revoke(role: str = typer.Argument(..., help="a role granted earlier"), fmt: Format = FormatOpt):
    """Take every torc privilege on this database from a role (its workflows stay, still owned by it).

    Example: `torc db revoke alice`
    """
    with Database(state.url) as db:
        out = grants.revoke(db.conn, role)
    if fmt is not Format.table:
        emit_json(out)
    else:
        console.print(f"revoked torc {out['was'] or 'access'} from {role} on database {out['database']}")


@app.command("grants")
def db_grants(fmt: Format = FormatOpt):
    """The roles granted on this database, and as what.

    Example: `torc db grants --format json`
    """
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
    feed its retry count: prune well behind running work.

    Example (for cron): `torc db prune --events-before 180d`
    """
    from datetime import datetime, timezone

    from torc_hpc import retention

    cutoff = retention.parse_cutoff(events_before, datetime.now(timezone.utc))
    with Database(state.url) as db:
        out = retention.prune_events(db, cutoff, dry_run=dry_run)
    if fmt is not Format.table:
        emit_json(out)
    elif dry_run:
        console.print(f"{out['events_older']} event(s) older than {out['before']} would be deleted")
    else:
        console.print(f"deleted {out['events_deleted']} event(s) older than {out['before']} "
                      f"in {out['chunks']} transaction(s)")
