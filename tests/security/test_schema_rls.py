"""Every table that holds workflow data has row-level security and policies, and every policy says what it
is for. A table added by a later migration without them fails here (see the pattern at the top of
sql/migrations/0005_security.sql)."""

from torc_hpc.db import grants

# Tables without workflow data: the migration log and the grant list (both read-only for every role).
NOT_WORKFLOW_DATA = {"torc_schema_migrations", "torc_grants"}


def _tables(db):
    return db.conn.execute("""
        SELECT c.relname AS name, c.relrowsecurity AS rls,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'workflow_id'
                       AND NOT a.attisdropped) AS has_workflow_id,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
        FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
        ORDER BY c.relname""").fetchall()


def test_every_table_with_workflow_data_has_rls_and_policies(db):
    tables = _tables(db)
    assert any(t["name"] == "jobs" for t in tables)
    bad = [f"{t['name']} (rls={t['rls']}, policies={t['policies']})" for t in tables
           if (t["has_workflow_id"] or t["name"] not in NOT_WORKFLOW_DATA) and not (t["rls"] and t["policies"])]
    assert not bad, ("tables holding workflow data without row-level security or without a policy: "
                     + ", ".join(bad) + "; follow the pattern at the top of sql/migrations/0005_security.sql")


def test_every_policy_is_commented(db):
    rows = db.conn.execute("""
        SELECT c.relname AS tbl, p.polname AS pol, obj_description(p.oid, 'pg_policy') AS comment
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid""").fetchall()
    assert rows
    assert not [f"{r['tbl']}.{r['pol']}" for r in rows if not r["comment"]]


def test_owner_columns_are_never_granted_for_writing():
    assert "owner" in grants.NEVER_WRITTEN
    for table, (insert, update) in {**grants.WATCHER_WRITES, **grants.ADMIN_WRITES}.items():
        assert "owner" not in update and (insert == "*" or "owner" not in insert), table


def test_views_do_not_bypass_row_level_security(db):
    """A plain view reads as its owner; on PostgreSQL 15+ torc's views run with the reader's rights."""
    if db.conn.info.server_version < 150000:
        return
    rows = db.conn.execute("""
        SELECT c.relname, coalesce(c.reloptions::text[], '{}') AS opts FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'v'""").fetchall()
    assert rows and not [r["relname"] for r in rows if "security_invoker=true" not in r["opts"]]
