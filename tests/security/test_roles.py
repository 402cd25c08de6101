"""Row-level security and column privileges on a real server with password authentication: each role
sees and changes exactly what its grant says, and nothing a user could use to run code as someone else."""

from __future__ import annotations

import psycopg
import pytest

from torc_hpc.db import Database, grants
from tests.helpers import create
from tests.security.conftest import role_url

SPEC = {"name": "alice_wf",
        "failure_handlers": [{"name": "h", "rules": [{"exit_codes": [3], "recovery_script": "echo fix",
                                                       "max_retries": 2}]}],
        "slurm_schedulers": [{"name": "s", "account": "a", "walltime": "00:10:00"}],
        "jobs": [{"name": "a", "command": "echo a", "failure_handler": "h"},
                 {"name": "b", "command": "echo b", "depends_on": ["a"], "scheduler": "s"}]}


@pytest.fixture(scope="module")
def alice_wf(cluster_db):
    with Database(role_url(cluster_db, "alice")) as db:
        wf = create(db, SPEC, working_dir="/tmp")
        db.run("ensure_watch_state", workflow_id=wf)
        return wf


def _conn(pg, role):
    return psycopg.connect(role_url(pg, role), autocommit=True)


def test_owner_is_current_user_and_cannot_be_forged(cluster_db, alice_wf):
    with _conn(cluster_db, "alice") as c:
        assert c.execute("SELECT owner FROM workflows WHERE id = %s", (alice_wf,)).fetchone()[0] == "alice"
        assert {r[0] for r in c.execute("SELECT DISTINCT owner FROM jobs WHERE workflow_id = %s", (alice_wf,))} == {"alice"}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("INSERT INTO workflows (name, spec, owner) VALUES ('x', '{}', 'bob')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("UPDATE workflows SET owner = 'bob' WHERE id = %s", (alice_wf,))


def test_bob_sees_nothing_of_alice_and_changes_nothing(cluster_db, alice_wf):
    with _conn(cluster_db, "bob") as c:
        for table in ("workflows", "jobs", "job_dependencies", "failure_handlers", "failure_handler_rules",
                      "results", "events", "workers", "allocations", "slurm_schedulers", "watch_state",
                      "workflow_progress", "job_attempts"):
            assert c.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        assert c.execute("UPDATE jobs SET command = 'touch /tmp/owned' WHERE workflow_id = %s",
                         (alice_wf,)).rowcount == 0
        assert c.execute("UPDATE failure_handler_rules SET recovery_script = 'touch /tmp/owned'").rowcount == 0
        assert c.execute("DELETE FROM workflows WHERE id = %s", (alice_wf,)).rowcount == 0
        # Writing into alice's workflow: refused by the policies.
        for stmt in ("INSERT INTO jobs (workflow_id, name, command, status, memory_bytes, runtime_s) "
                     "VALUES (%s, 'evil', 'touch /tmp/owned', 'ready', 1, 1)",
                     "INSERT INTO events (workflow_id, kind) VALUES (%s, 'forged')",
                     "INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status) "
                     "SELECT %s, 1, 1, 1, 0, 'completed'",
                     "INSERT INTO workers (workflow_id, hostname, pid, num_cpus, num_gpus, memory_bytes) "
                     "VALUES (%s, 'h', 1, 1, 0, 1)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(stmt, (alice_wf,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT setval(pg_get_serial_sequence('jobs', 'id'), 1)")
    with _conn(cluster_db, "alice") as c:
        cmds = [r[0] for r in c.execute("SELECT command FROM jobs WHERE workflow_id = %s ORDER BY id", (alice_wf,))]
        assert cmds == ["echo a", "echo b"]


def test_watcher_schedules_but_never_changes_what_runs(cluster_db, alice_wf):
    with _conn(cluster_db, "watch") as c:
        assert c.execute("SELECT count(*) FROM jobs WHERE workflow_id = %s", (alice_wf,)).fetchone()[0] == 2
        # what scheduling needs: sizes, states, allocations, watch state, events
        assert c.execute("UPDATE jobs SET memory_bytes = memory_bytes * 2, runtime_s = runtime_s * 2 "
                         "WHERE workflow_id = %s", (alice_wf,)).rowcount == 2
        assert c.execute("UPDATE jobs SET status = 'ready', attempt_id = 1 WHERE workflow_id = %s AND name = 'a'",
                         (alice_wf,)).rowcount == 1
        c.execute("INSERT INTO allocations (workflow_id, walltime_s, submitted_by) VALUES (%s, 60, 'watch')", (alice_wf,))
        c.execute("INSERT INTO events (workflow_id, kind) VALUES (%s, 'auto_schedule')", (alice_wf,))
        c.execute("UPDATE watch_state SET consecutive_failures = 1 WHERE workflow_id = %s", (alice_wf,))
        c.execute("UPDATE workflows SET run_id = run_id + 1 WHERE id = %s", (alice_wf,))
        # never: commands, recovery scripts, directories, environments, stored sbatch options, workflows
        for stmt in ("UPDATE jobs SET command = 'touch /tmp/owned' WHERE workflow_id = %s",
                     "SELECT command FROM jobs WHERE workflow_id = %s",
                     "UPDATE failure_handler_rules SET recovery_script = 'x' WHERE handler_id > %s",
                     "UPDATE workflows SET working_dir = '/tmp' WHERE id = %s",
                     "UPDATE workflows SET output_dir = '/tmp' WHERE id = %s",
                     "UPDATE workflows SET spec = '{}' WHERE id = %s",
                     "UPDATE watch_state SET submit_options = '{\"extra\": \"--wrap=x\"}' WHERE workflow_id = %s",
                     "UPDATE slurm_schedulers SET extra = '--wrap=x' WHERE workflow_id = %s",
                     "INSERT INTO workflows (name, spec) SELECT 'x', '{}' WHERE %s > 0",
                     "DELETE FROM jobs WHERE workflow_id = %s",
                     "INSERT INTO workers (workflow_id, hostname, pid, num_cpus, num_gpus, memory_bytes) "
                     "VALUES (%s, 'h', 1, 1, 0, 1)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(stmt, (alice_wf,))


def test_admin_reads_everything_and_may_only_cancel(cluster_db, alice_wf):
    with _conn(cluster_db, "support") as c:
        assert c.execute("SELECT count(*) FROM jobs WHERE workflow_id = %s", (alice_wf,)).fetchone()[0] == 2
        assert c.execute("SELECT count(*) FROM failure_handler_rules").fetchone()[0] >= 1
        assert c.execute("SELECT count(*) FROM admin_usage WHERE owner = 'alice'").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("UPDATE jobs SET command = 'x' WHERE workflow_id = %s", (alice_wf,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):   # a status other than canceled: policy
            c.execute("UPDATE jobs SET status = 'ready' WHERE workflow_id = %s", (alice_wf,))
    with Database(role_url(cluster_db, "support")) as admin:
        assert admin.cancel_workflow(alice_wf) >= 1
    with _conn(cluster_db, "alice") as c:
        assert c.execute("SELECT canceled_at IS NOT NULL FROM workflows WHERE id = %s", (alice_wf,)).fetchone()[0]
        c.execute("UPDATE workflows SET canceled_at = NULL WHERE id = %s", (alice_wf,))


def test_users_see_no_admin_views(cluster_db):
    with _conn(cluster_db, "bob") as c:
        for view in ("admin_usage", "admin_stuck", "admin_failures", "admin_jobs_by_status"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(f"SELECT * FROM {view}")


def test_grants_are_per_database(cluster_db):
    """Two torc databases on one server: alice granted in one has nothing in the other."""
    cluster_db.create_database("torc_other")
    with Database(cluster_db.url("torc_other")) as owner:
        grants.grant(owner.conn, "bob")
    with _conn(cluster_db, "bob") as c:
        assert c.execute("SELECT count(*) FROM workflows").fetchone()[0] == 0
    with psycopg.connect(role_url(cluster_db, "alice", "torc_other"), autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT count(*) FROM workflows")
    with Database(cluster_db.url("torc_other")) as owner:
        assert [g["role"] for g in grants.list_grants(owner.conn)] == ["bob"]
        grants.revoke(owner.conn, "bob")
    with psycopg.connect(role_url(cluster_db, "bob", "torc_other"), autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT count(*) FROM workflows")


def test_only_the_schema_owner_grants(cluster_db):
    from torc_hpc.errors import TorcError

    with Database(role_url(cluster_db, "support")) as db:
        with pytest.raises(TorcError, match="only the owner"):
            grants.grant(db.conn, "bob", "admin")


def test_torc_admin_usage_and_stuck(cluster_db, alice_wf, tmp_path):
    import json
    import subprocess
    import sys

    def admin(*args, role="support"):
        env = dict(__import__("os").environ, TORC_DATABASE_URL=role_url(cluster_db, role), TORC_NO_SLURM="1")
        return subprocess.run([sys.executable, "-m", "torc_hpc.cli.app", "admin", *args, "--format", "json"],
                              env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60)

    with _conn(cluster_db, "alice") as c:   # a stale worker with a running job, and a failed attempt
        wid = c.execute("INSERT INTO workers (workflow_id, hostname, pid, num_cpus, num_gpus, memory_bytes, "
                        "last_heartbeat) VALUES (%s, 'gone', 1, 1, 0, 1, now() - interval '1 hour') RETURNING id",
                        (alice_wf,)).fetchone()[0]
        job = c.execute("UPDATE jobs SET status = 'running', worker_id = %s, started_at = now() WHERE workflow_id = %s AND name = 'a' "
                        "RETURNING id", (wid, alice_wf)).fetchone()[0]
        c.execute("INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, exec_time_s) "
                  "VALUES (%s, %s, 99, 1, 137, 'terminated', 7200)", (alice_wf, job))
    usage = admin("usage", "--since", "7d")
    assert usage.returncode == 0, usage.stderr
    u = json.loads(usage.stdout)
    mine = [r for r in u["usage"] if r["owner"] == "alice"][0]
    assert mine["cpu_hours"] >= 2.0 and mine["jobs"].get("running") == 1
    assert any(f["owner"] == "alice" and f["return_code"] == 137 for f in u["failures"])
    stuck = json.loads(admin("stuck").stdout)
    assert any(s["problem"] == "running_stale_heartbeat" and s["job_id"] == job for s in stuck)
    # ...and the other two kinds: a job pending_failed for two days, an allocation pending in Slurm for two
    # (removed again: the Slurm test on this cluster database runs a cron watcher over every workflow).
    with _conn(cluster_db, "alice") as c:
        waiting = c.execute("UPDATE jobs SET status = 'pending_failed' WHERE workflow_id = %s AND name = 'b' "
                            "RETURNING id", (alice_wf,)).fetchone()[0]
        c.execute("INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, ts) "
                  "VALUES (%s, %s, 'pending_failed', 'running', 'pending_failed', now() - interval '2 days')",
                  (alice_wf, waiting))
        alloc = c.execute("INSERT INTO allocations (workflow_id, walltime_s, submitted_by, state, slurm_job_id, "
                          "submitted_at) VALUES (%s, 60, 'alice', 'pending', 'not-a-slurm-id', "
                          "now() - interval '2 days') RETURNING id", (alice_wf,)).fetchone()[0]
    try:
        stuck = json.loads(admin("stuck").stdout)
        assert any(s["problem"] == "pending_failed_old" and s["job_id"] == waiting for s in stuck), stuck
        assert any(s["problem"] == "allocation_pending_long" and s["slurm_job_id"] == "not-a-slurm-id"
                   and s["owner"] == "alice" for s in stuck), stuck
    finally:
        with _conn(cluster_db, "alice") as c:
            c.execute("DELETE FROM allocations WHERE id = %s", (alloc,))
            c.execute("UPDATE jobs SET status = 'blocked' WHERE id = %s", (waiting,))
    # an ordinary user has no admin views
    refused = admin("usage", role="bob")
    assert refused.returncode != 0 and "permission denied" in refused.stderr
    old = json.loads(admin("usage", "--since", "2000-01-01").stdout)
    assert old["since"].startswith("2000-01-01")
    # The table fits 80 columns and never cuts the owner (the row's identity); --wide shows the rest.
    env = dict(__import__("os").environ, TORC_DATABASE_URL=role_url(cluster_db, "support"), TORC_NO_SLURM="1",
               COLUMNS="80")
    for wide in ([], ["--wide"]):
        table = subprocess.run([sys.executable, "-m", "torc_hpc.cli.app", "admin", "usage", *wide], env=env,
                               capture_output=True, text=True, cwd=tmp_path, timeout=60)
        lines = table.stdout.splitlines()
        assert table.returncode == 0 and any(line.startswith("alice ") for line in lines), table.stdout
        assert wide or all(len(line) <= 80 for line in lines), table.stdout
    assert "cpu_hours_used" in table.stdout
