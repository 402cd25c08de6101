"""On the real one-node Slurm cluster: alice submits her workflow; root's cron-style
`torc watch --all --once --auto-schedule`, connected as the watcher role, submits her follow-up
allocation as alice: Slurm shows alice as its user, the script is hers and lives in her output directory,
its database URL names her role and holds no password, and her job runs as alice and reaches the database
with her ~/.pgpass."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import wait_for
from tests.security import unixusers
from tests.security.conftest import PASSWORDS
from tests.slurm.conftest import ACCOUNT, _cluster_problem

pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(unixusers.unavailable_reason() is not None,
                                 reason=str(unixusers.unavailable_reason()))]

SPEC = """name: as_owner
jobs:
  - name: who
    command: 'id -un >> who.txt; sleep 8'
    resource_requirements: {runtime: PT2M, memory: 100m}
"""


@pytest.fixture(scope="module")
def slurm_alice():
    problem = _cluster_problem()
    if problem:
        pytest.skip(f"no Slurm cluster: {problem}")
    unixusers.ensure_user("alice")
    subprocess.run(["sacctmgr", "-i", "add", "user", "alice", f"account={ACCOUNT}"], capture_output=True, text=True)
    assoc = subprocess.run(["sacctmgr", "-n", "show", "assoc", "user=alice", f"account={ACCOUNT}", "format=user"],
                           capture_output=True, text=True).stdout
    if "alice" not in assoc:
        pytest.skip("could not give alice a Slurm association with account torc_test")


def test_cron_watcher_submits_alices_allocation_as_alice(slurm_alice, cluster_db, tmp_path):
    pg = cluster_db
    unixusers.write_pgpass("alice", [f"127.0.0.1:{pg.port}:*:alice:{PASSWORDS['alice']}"])
    env = unixusers.user_env("alice", TORC_DATABASE_URL=f"postgresql://alice@127.0.0.1:{pg.port}/torc")
    work = unixusers.home_dir("alice", "torc-slurm")
    (work / "wf.yaml").write_text(SPEC)

    def alice(*args):
        r = unixusers.torc_as("alice", *args, "--format", "json", cwd=str(work), env=env)
        assert r.returncode == 0, f"alice: torc {' '.join(map(str, args))}: {r.stdout}{r.stderr}"
        return json.loads(r.stdout)

    slurm_ids = []
    try:
        first = alice("submit-slurm", "wf.yaml", "--account", ACCOUNT, "--idle-timeout", "3")
        wf = first["workflow_id"]
        slurm_ids.append(first["allocations"][0]["slurm_job_id"])
        wait_for(lambda: alice("jobs", "list", wf)[0]["status"] == "completed", timeout=180, interval=2,
                 what="alice's first allocation to run her job")
        wait_for(lambda: all(a["state"] == "ended" for a in alice("slurm", "list", wf)), timeout=120, interval=2,
                 what="alice's first allocation to end")
        alice("workflows", "reset-status", wf)

        # root's cron: the watcher role, its password in root's own pgpass file, no password in the URL.
        pgpass = tmp_path / "root.pgpass"
        pgpass.write_text(f"127.0.0.1:{pg.port}:torc:watch:{PASSWORDS['watch']}\n")
        pgpass.chmod(0o600)
        cron_env = {"PATH": os.environ["PATH"], "HOME": "/root", "LANG": "C.UTF-8",
                    "PYTHONPATH": env["PYTHONPATH"], "PGPASSFILE": str(pgpass),
                    "TORC_DATABASE_URL": f"postgresql://watch@127.0.0.1:{pg.port}/torc"}
        cron = subprocess.run([unixusers.python_for_users(), "-m", "torc_hpc.cli.app", "watch", "--all", "--once",
                               "--auto-schedule", "--format", "json"], env=cron_env, cwd="/", capture_output=True,
                              text=True, timeout=180)
        # The cluster database is shared with the other security tests: another owner's workflow may need a
        # person (exit 1). Judge alice's workflow by its own report.
        assert cron.returncode in (0, 1) and "Traceback" not in cron.stderr, cron.stdout + cron.stderr
        reports = [json.loads(line) for line in cron.stdout.splitlines() if line.startswith("{")]
        mine = [r for r in reports if r.get("workflow_id") == wf]
        assert len(mine) == 1 and not mine[0]["attention"] and len(mine[0]["submitted"]) == 1, cron.stdout
        allocs = alice("slurm", "list", wf)
        assert len(allocs) == 2, allocs
        follow = allocs[1]
        slurm_ids.append(follow["slurm_job_id"])
        users = subprocess.run(["squeue", "-h", "-j", follow["slurm_job_id"], "-o", "%u"], capture_output=True,
                               text=True).stdout.split()
        assert users == ["alice"], f"squeue shows {users} for the watcher's allocation"

        script = work / "torc_output" / "slurm" / f"torc_wf{wf}_a{follow['id']}.sh"
        st = os.stat(script)
        assert (st.st_uid, st.st_mode & 0o077) == (unixusers.pwd.getpwnam("alice").pw_uid, 0)
        text = open(script).read()
        assert "user=alice" in text and PASSWORDS["watch"] not in text and PASSWORDS["alice"] not in text
        assert "password" not in text

        wait_for(lambda: alice("jobs", "list", wf)[0]["status"] == "completed", timeout=180, interval=2,
                 what="the follow-up allocation to run her job")
        assert (work / "who.txt").read_text().split() == ["alice", "alice"]
        events = alice("events", "list", wf)
        submitted = [e for e in events if e["kind"] == "allocation_submitted"]
        assert submitted[-1]["detail"]["submitted_by"] == "watch" and submitted[-1]["detail"]["as"] == "alice"
    finally:
        if slurm_ids:
            subprocess.run(["scancel", *[i for i in slurm_ids if i]], capture_output=True)
        time.sleep(0)
        shutil.rmtree(work, ignore_errors=True)
