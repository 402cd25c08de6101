"""Who may use a torc database, and as what: `torc db grant ROLE [--admin|--watcher]`, `torc db revoke ROLE`.

Privileges go to the role itself (no group roles): table and column privileges live in the database, so
granting alice here gives her nothing in another torc database on the same server, and the database owner
needs no CREATEROLE. torc_grants records each grant; row-level security (sql/migrations/0005_security.sql)
reads it. Column lists are computed from the catalog at grant time, and `torc db migrate` re-applies every
recorded grant after new migrations, so tables and columns added later are covered without re-granting.

What each kind gets (default deny: anything not listed here is refused by PostgreSQL):

- user: every torc table, all columns except `owner` (always current_user) and `workflow_id` on
  update; row-level security keeps it to its own workflows. Views workflow_progress and job_attempts.
- watcher: reads every table (except jobs.command, jobs.invocation_script, jobs.env, workflows.spec and
  workflows.env, which scheduling never needs) and
  every view; records allocations, watch state, events and results; finishes, resizes (memory, runtime)
  and resets jobs; declares workers lost; fires workflow actions (fired_at, fired_by, reached_count).
  It holds no privilege on a command, a recovery script, a
  working directory, an output directory or an environment.
- admin: reads everything (tables and the admin_* views); may cancel any workflow and job (the policies
  allow only canceled_at / status canceled) and record the event, which moves the counters of the
  actions waiting for those jobs (workflow_actions.reached_count).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from torc_hpc.db.queries import q
from torc_hpc.errors import TorcError

KINDS = ("user", "watcher", "admin")
# Never writable by anyone but the schema owner.
NEVER_WRITTEN = {"owner", "notify_channel"}
# Read-only for every kind: which migrations ran, and who holds which grant (the policies ask it).
READ_ONLY = {"torc_schema_migrations", "torc_grants"}

# Column privileges of the watcher beyond reading: table → (INSERT columns or "*", UPDATE columns).
# "*" means every column but owner and identity columns.
WATCHER_WRITES: dict[str, tuple[object, tuple[str, ...]]] = {
    "allocations": ("*", ("slurm_job_id", "slurm_cluster", "script_path", "state", "sacct_state", "exit_code",
                          "error", "started_at", "ended_at", "checked_at", "outcome", "sbatch_args",
                          "unknown_since")),
    "allocation_workflows": ("*", ()),
    "events": ("*", ()),
    "results": ("*", ()),
    "recovery_claims": ("*", ()),
    "watch_state": (("workflow_id", "last_auto_schedule_at", "consecutive_failures", "next_attempt_at",
                     "paused_reason", "recovery_rounds", "updated_at", "leased_by", "leased_until"),
                    ("last_auto_schedule_at", "consecutive_failures", "next_attempt_at", "paused_reason",
                     "recovery_rounds", "updated_at", "leased_by", "leased_until")),
    "workers": ((), ("stopped_at", "stop_reason")),
    "jobs": ((), ("status", "attempt_id", "return_code", "ready_at", "unfinished_parents", "worker_id",
                  "started_at", "memory_bytes", "runtime_s")),
    "workflows": ((), ("run_id", "canceled_at")),
    # Actions: fire them (schedule_nodes as the owner) and move their counters when finishing or resetting.
    "workflow_actions": ((), ("reached_count", "fired_at", "fired_by")),
}
# Columns the watcher may not even read: what a job runs and with which environment.
WATCHER_HIDDEN = {"jobs": {"command", "invocation_script", "env"}, "workflows": {"spec", "env"}}

ADMIN_WRITES: dict[str, tuple[object, tuple[str, ...]]] = {
    "events": ("*", ()),
    "workflow_actions": ((), ("reached_count",)),   # a cancel moves the on_jobs_complete counters
    "jobs": ((), ("status",)),
    "workflows": ((), ("canceled_at",)),
}


class _Db:
    """The named-query calls grants need, over any connection (the migrator's has tuple rows)."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def one(self, name: str, /, **params) -> dict | None:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(q(name), params).fetchone()

    def all(self, name: str, /, **params) -> list[dict]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(q(name), params).fetchall()

    def run(self, name: str, /, **params) -> int:
        return self.conn.execute(q(name), params).rowcount





@dataclass
class Relation:
    name: str
    kind: str                    # 'r' table, 'v' view
    columns: list[str]
    identity_always: set[str]


def _relations(db: _Db) -> list[Relation]:
    rels = []
    for r in db.all("torc_relations"):
        cols = db.all("relation_columns", relation=r["name"])
        rels.append(Relation(r["name"], r["kind"], [c["name"] for c in cols],
                             {c["name"] for c in cols if c["identity"] == "a"}))
    return rels


def _cols(names) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c) for c in names)


def _grant(db: _Db, privilege: str, rel: Relation, role: str, columns=None) -> None:
    if columns is not None and not columns:
        return
    target = sql.Identifier(rel.name)
    if columns is None:
        stmt = sql.SQL("GRANT {} ON TABLE {} TO {}").format(sql.SQL(privilege), target, sql.Identifier(role))
    else:
        stmt = sql.SQL("GRANT {} ({}) ON TABLE {} TO {}").format(sql.SQL(privilege), _cols(columns), target,
                                                                  sql.Identifier(role))
    db.conn.execute(stmt)


def _writes(rel: Relation, spec) -> tuple[list[str], list[str]]:
    insert, update = spec
    if insert == "*":
        insert = [c for c in rel.columns if c not in NEVER_WRITTEN and c not in rel.identity_always]
    return [c for c in insert if c in rel.columns], [c for c in update if c in rel.columns]


def _apply(db: _Db, role: str, kind: str) -> None:
    ident = sql.Identifier(role)
    me = db.one("whoami")
    db.conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
        sql.Identifier(me["database"]), ident))
    db.conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(me["schema"]), ident))
    db.conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION torc_granted(text[]) TO {}").format(ident))
    for rel in _relations(db):
        if rel.name in READ_ONLY:
            _grant(db, "SELECT", rel, role)
            continue
        if rel.kind == "v":
            if kind != "user" or not rel.name.startswith("admin_"):
                _grant(db, "SELECT", rel, role)
            continue
        if kind == "user":
            _grant(db, "SELECT", rel, role)
            _grant(db, "INSERT", rel, role,
                   [c for c in rel.columns if c not in NEVER_WRITTEN and c not in rel.identity_always])
            _grant(db, "UPDATE", rel, role,
                   [c for c in rel.columns if c not in NEVER_WRITTEN | {"workflow_id", "id"}])
            _grant(db, "DELETE", rel, role)
        elif kind == "watcher":
            hidden = WATCHER_HIDDEN.get(rel.name, set())
            _grant(db, "SELECT", rel, role, None if not hidden else [c for c in rel.columns if c not in hidden])
            insert, update = _writes(rel, WATCHER_WRITES.get(rel.name, ((), ())))
            _grant(db, "INSERT", rel, role, insert)
            _grant(db, "UPDATE", rel, role, update)
        else:
            _grant(db, "SELECT", rel, role)
            insert, update = _writes(rel, ADMIN_WRITES.get(rel.name, ((), ())))
            _grant(db, "INSERT", rel, role, insert)
            _grant(db, "UPDATE", rel, role, update)
    if kind == "user":
        db.conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION torc_reserve_job_ids(bigint) TO {}").format(ident))


def _revoke_all(db: _Db, role: str) -> None:
    ident = sql.Identifier(role)
    rels = [r.name for r in _relations(db)]
    db.conn.execute(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(r) for r in rels), ident))
    for fn in ("torc_granted(text[])", "torc_reserve_job_ids(bigint)"):
        db.conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM {}").format(sql.SQL(fn), ident))


def _check(db: _Db, role: str) -> dict:
    me = db.one("whoami")
    if not me["schema_owner"]:
        raise TorcError(f"only the owner of torc's tables can grant or revoke (you are {me['role']}); "
                        f"run this as the role that ran `torc db migrate`")
    info = db.one("role_exists", role=role)
    if info is None:
        raise TorcError(f"there is no PostgreSQL role {role!r}; create it first, e.g. "
                        f"`CREATE ROLE {role} LOGIN PASSWORD '…'` (or with your site's authentication), then grant")
    if role == me["role"]:
        raise TorcError(f"{role} owns torc's tables here and needs no grant")
    return info


def grant(conn: psycopg.Connection, role: str, kind: str = "user") -> dict:
    """Let `role` use torc on this database as `kind` (user, watcher or admin). Replaces an earlier grant."""
    db = _Db(conn)
    if kind not in KINDS:
        raise TorcError(f"unknown grant kind {kind!r} (one of {', '.join(KINDS)})")
    info = _check(db, role)
    with db.conn.transaction():
        _revoke_all(db, role)
        _apply(db, role, kind)
        db.run("record_grant", role=role, kind=kind)
    notes = []
    if info["rolsuper"] or info["rolbypassrls"]:
        notes.append(f"{role} is a superuser or has BYPASSRLS: row-level security does not restrict it")
    return {"role": role, "kind": kind, "database": db.one("whoami")["database"], "notes": notes}


def revoke(conn: psycopg.Connection, role: str) -> dict:
    """Take every torc privilege on this database from `role` (its workflows stay, owned by it)."""
    db = _Db(conn)
    _check(db, role)
    with db.conn.transaction():
        _revoke_all(db, role)
        row = db.one("forget_grant", role=role)
    return {"role": role, "was": row["kind"] if row else None, "database": db.one("whoami")["database"]}


def list_grants(conn: psycopg.Connection) -> list[dict]:
    return _Db(conn).all("list_grants")


def reapply_on(conn: psycopg.Connection) -> list[str]:
    """After migrations: give every granted role the privileges its kind has on the tables as they are now."""
    db = _Db(conn)
    if db.one("grants_table")["present"] is False:
        return []
    roles = []
    with db.conn.transaction():
        for g in db.all("list_grants"):
            if db.one("role_exists", role=g["role"]) is None:
                continue  # dropped from the server since; revoke it to clean up
            _revoke_all(db, g["role"])
            _apply(db, g["role"], g["kind"])
            roles.append(g["role"])
    return roles
