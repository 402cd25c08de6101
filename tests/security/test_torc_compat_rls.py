"""Torc's fields under row-level security: a granted user creates a workflow with files, user_data, env,
actions through the staging path; others see none of it; the cluster watcher reads what scheduling needs
but can neither read nor change what a job runs with (invocation_script, env) nor write user_data."""

from __future__ import annotations

import psycopg
import pytest

from torc_hpc.db import Database
from tests.helpers import create
from tests.security.conftest import role_url

SPEC = {"name": "alice_compat", "project": "p1", "user": "mallory",
        "env": {"STAGE": "prod"},
        "files": [{"name": "out_{i}", "path": "/tmp/out_{i}.txt", "parameters": {"i": "1:2"}}],
        "user_data": [{"name": "knobs", "data": {"threads": 2}}],
        "actions": [{"trigger_type": "on_jobs_complete", "action_type": "run_commands", "jobs": ["make_1"],
                     "commands": ["echo done"]}],
        "jobs": [{"name": "make_{i}", "command": "echo {i} > ${files.output.out_{i}}", "parameters": {"i": "1:2"},
                  "invocation_script": "bash -c 'exec \"$@\"' wrap", "env": {"SECRET": "s3"},
                  "output_user_data": ["knobs"]},
                 {"name": "use", "command": "cat /tmp/out_1.txt", "input_file_regexes": ["^out_"],
                  "input_user_data": ["knobs"]}]}
TABLES = ("files", "job_files", "user_data", "job_user_data", "datasets", "job_datasets", "workflow_actions",
          "action_jobs")


@pytest.fixture(scope="module")
def alice_compat(cluster_db):
    with Database(role_url(cluster_db, "alice")) as db:
        assert db.one("rls_active")["active"]  # alice is not the schema owner: the staged path
        return create(db, SPEC, working_dir="/tmp")


def _conn(pg, role):
    return psycopg.connect(role_url(pg, role), autocommit=True)


def test_the_owner_created_everything_through_staging(cluster_db, alice_compat):
    with _conn(cluster_db, "alice") as c:
        counts = {t: c.execute(f"SELECT count(*) FROM {t} WHERE workflow_id = %s", (alice_compat,)).fetchone()[0]
                  for t in TABLES}
        assert counts == {"files": 2, "job_files": 4, "user_data": 1, "job_user_data": 3, "datasets": 0,
                          "job_datasets": 0, "workflow_actions": 1, "action_jobs": 1}
        assert c.execute("SELECT count(*) FROM job_dependencies WHERE workflow_id = %s",
                         (alice_compat,)).fetchone()[0] == 2
        env, inv = c.execute("SELECT env, invocation_script FROM jobs WHERE workflow_id = %s AND name = 'make_1'",
                             (alice_compat,)).fetchone()
        assert env == {"STAGE": "prod", "SECRET": "s3"} and inv.startswith("bash -c")
        owner, spec_user = c.execute("SELECT owner, spec_user FROM workflows WHERE id = %s", (alice_compat,)).fetchone()
        assert (owner, spec_user) == ("alice", "mallory")
        assert c.execute("UPDATE user_data SET data = '5' WHERE workflow_id = %s", (alice_compat,)).rowcount == 1


def test_another_user_sees_and_changes_nothing(cluster_db, alice_compat):
    with _conn(cluster_db, "bob") as c:
        for t in TABLES:
            assert c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 0, t
        assert c.execute("UPDATE user_data SET data = '1'").rowcount == 0


def test_the_watcher_reads_scheduling_data_but_not_what_jobs_run_with(cluster_db, alice_compat):
    with _conn(cluster_db, "watch") as c:
        assert c.execute("SELECT count(*) FROM files WHERE workflow_id = %s", (alice_compat,)).fetchone()[0] == 2
        assert c.execute("SELECT label, stdio_mode FROM jobs WHERE workflow_id = %s", (alice_compat,)).fetchall()
        assert c.execute("SELECT slurm_defaults, project FROM workflows WHERE id = %s", (alice_compat,)).fetchone()
        for stmt in ("SELECT env FROM jobs", "SELECT invocation_script FROM jobs", "SELECT env FROM workflows",
                     "UPDATE jobs SET env = '{}'", "UPDATE jobs SET invocation_script = 'x'",
                     "UPDATE workflows SET env = '{}'", "UPDATE user_data SET data = '1'",
                     "UPDATE files SET path = '/etc/passwd'", "UPDATE workflow_actions SET config = '{}'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(stmt)


def test_the_watcher_fires_actions_but_changes_nothing_else_about_them(cluster_db, alice_compat):
    with _conn(cluster_db, "watch") as c:
        with c.transaction():
            n = c.execute("UPDATE workflow_actions SET fired_at = now(), fired_by = 'watch', "
                          "reached_count = reached_count WHERE workflow_id = %s", (alice_compat,)).rowcount
            assert n == 1
            raise psycopg.Rollback()
        for stmt in ("UPDATE workflow_actions SET action_type = 'schedule_nodes'",
                     "UPDATE workflow_actions SET selected_count = 0", "DELETE FROM workflow_actions",
                     "INSERT INTO workflow_actions (workflow_id, position, trigger_type, action_type, config) "
                     "VALUES (1, 9, 'on_workflow_start', 'run_commands', '{}')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(stmt)
    with _conn(cluster_db, "bob") as c:   # another user cannot fire alice's actions
        assert c.execute("UPDATE workflow_actions SET fired_at = now()").rowcount == 0
