"""alice and bob as real Linux users with their passwords only in ~/.pgpass: every torc command bob runs
on alice's workflow is refused or sees nothing, psql as bob reads and changes none of her rows, and
alice's own run still completes."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.security import unixusers
from tests.security.conftest import PASSWORDS

pytestmark = pytest.mark.skipif(unixusers.unavailable_reason() is not None,
                                reason=str(unixusers.unavailable_reason()))

SPEC = """name: alice_secret
failure_handlers:
  - name: h
    rules: [{exit_codes: [3], max_retries: 2}]
jobs:
  - name: first
    command: 'echo alice-secret-output'
  - name: second
    command: 'sleep 1; id -un > who.txt'
    depends_on: [first]
    failure_handler: h
"""


@pytest.fixture(scope="module")
def people(cluster_db):
    pg = cluster_db
    out = {}
    for user in ("alice", "bob"):
        unixusers.ensure_user(user)
        unixusers.write_pgpass(user, [f"127.0.0.1:{pg.port}:*:{user}:{PASSWORDS[user]}"])
        # No password in the URL: libpq reads ~/.pgpass.
        out[user] = unixusers.user_env(user, TORC_DATABASE_URL=f"postgresql://{user}@127.0.0.1:{pg.port}/torc",
                                       TORC_NO_SLURM="1")
    return out


def test_bob_cannot_touch_alices_workflow(people, cluster_db):
    alice_dir = unixusers.home_dir("alice", "torc-isolation")
    bob_dir = unixusers.home_dir("bob", "torc-isolation")
    (alice_dir / "wf.yaml").write_text(SPEC)
    shutil.chown(alice_dir / "wf.yaml", "alice")

    def alice(*args):
        return unixusers.torc_as("alice", *args, cwd=str(alice_dir), env=people["alice"])

    def bob(*args):
        return unixusers.torc_as("bob", *args, cwd=str(bob_dir), env=people["bob"])

    made = alice("workflows", "create", "wf.yaml", "--format", "json")
    assert made.returncode == 0, made.stderr
    wf = json.loads(made.stdout)["id"]

    listed = bob("workflows", "list", "--format", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stdout + listed.stderr
    for args in (["workflows", "status", wf], ["workflows", "reset-status", wf], ["workflows", "cancel", wf],
                 ["workflows", "delete", wf, "--yes"], ["worker", wf, "--idle-timeout", "1"]):
        r = bob(*args)
        assert r.returncode != 0, f"bob: torc {' '.join(map(str, args))} succeeded: {r.stdout}"
        assert "does not exist" in r.stderr, r.stderr
    for args in (["jobs", "list", wf], ["results", "list", wf], ["events", "list", wf]):
        r = bob(*args, "--format", "json")
        assert (r.returncode != 0 and "does not exist" in r.stderr) or json.loads(r.stdout) == [], r.stdout + r.stderr

    psql = ["psql", "-h", "127.0.0.1", "-p", str(cluster_db.port), "-d", "torc", "-U", "bob", "-At", "-c"]
    for sql, expect in ((f"SELECT count(*) FROM jobs WHERE workflow_id = {wf}", "0"),
                        (f"SELECT count(*) FROM events WHERE workflow_id = {wf}", "0"),
                        (f"UPDATE jobs SET command = 'touch /tmp/owned' WHERE workflow_id = {wf}", "UPDATE 0"),
                        (f"DELETE FROM workflows WHERE id = {wf}", "DELETE 0")):
        r = unixusers.run_as("bob", psql + [sql], cwd=str(bob_dir), env=people["bob"])
        assert r.returncode == 0 and r.stdout.strip() == expect, (sql, r.stdout, r.stderr)

    # alice's workflow is unchanged, and her run completes as her.
    jobs = json.loads(alice("jobs", "list", wf, "--format", "json").stdout)
    assert [(j["name"], j["status"], j["attempt_id"]) for j in jobs] == [("first", "ready", 1),
                                                                         ("second", "blocked", 1)]
    psql_alice = [a.replace("bob", "alice") for a in psql]
    r = unixusers.run_as("alice", psql_alice + [f"SELECT string_agg(command, '|' ORDER BY id) FROM jobs "
                                                f"WHERE workflow_id = {wf}"], cwd=str(alice_dir), env=people["alice"])
    assert r.stdout.strip() == "echo alice-secret-output|sleep 1; id -un > who.txt", r.stdout + r.stderr
    done = alice("run", wf)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (alice_dir / "who.txt").read_text().strip() == "alice"
    assert "alice-secret-output" not in subprocess.run(["ls", "-R", str(bob_dir)], capture_output=True,
                                                       text=True).stdout
