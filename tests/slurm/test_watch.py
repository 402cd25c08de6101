"""torc watch on the real cluster. Allocations that must not run are submitted held (sbatch --hold), so
the policy sees real pending allocations and the clock is the only thing injected."""

import subprocess
import textwrap
from datetime import timedelta

import pytest
from psycopg.types.json import Jsonb

from torc_hpc.core.autoschedule import Policy
from torc_hpc.core.states import JobStatus
from torc_hpc.db import Attempt, Database
from torc_hpc.db.repo import finish_step
from torc_hpc.slurm.client import CliSlurmClient
from torc_hpc.watch import cycle
from tests.conftest import wait_for
from tests.helpers import create
from tests.slurm.conftest import ACCOUNT

HELD = {"account": ACCOUNT, "extra": "--hold", "idle_timeout_s": 5}


@pytest.fixture
def held_workflow(db, tmp_path):
    """A workflow whose n jobs are all ready retries (attempt 2), with held sbatch options saved."""
    made = []

    def make(n):
        # Its own working directory: scripts go to WORKDIR/torc_output/slurm/torc_wfW_aA.sh, and concurrent runs
        # of this suite (same W and A in their own databases) must not overwrite each other's.
        wf = create(db, {"name": "retries", "jobs": [
            {"name": "j_{i}", "command": "true", "resource_requirements": {"runtime": "PT1M", "memory": "100m"},
             "parameters": {"i": f"1:{n}"}}]}, working_dir=str(tmp_path))
        wid = db.register_worker(wf, hostname="elsewhere", pid=1, num_cpus=64, num_gpus=0, memory_bytes=2**36)
        jobs = db.claim(wf, wid, cpus=64, gpus=0, memory=2**36, limit=n)
        db.finish(wf, [finish_step("retry", Attempt(j["id"], j["run_id"], 1, wid, return_code=10),
                                   attempt_status=JobStatus.FAILED) for j in jobs])
        db.stop_worker(wf, wid, "done")
        db.run("save_submit_options", workflow_id=wf, options=Jsonb(HELD))
        made.append(wf)
        return wf

    yield make
    for wf in made:
        ids = [a["slurm_job_id"] for a in db.all("list_allocations", workflow_id=wf) if a["slurm_job_id"]]
        if ids:
            subprocess.run(["scancel", *ids], check=False)


def _oldest_retry(db, wf):
    return db.one("watch_snapshot", workflow_id=wf)["oldest_retry_ready_at"]


def test_no_allocation_then_wait_then_stranded_then_backlog(db, held_workflow):
    wf = held_workflow(3)
    client = CliSlurmClient()
    cfg = cycle.WatchConfig(auto_schedule=True, policy=Policy(threshold=5, cooldown_s=1800, stranded_timeout_s=7200,
                                                              max_pending=2))
    t0 = _oldest_retry(db, wf)
    r = cycle.run_once(db, wf, client, cfg, now=t0 + timedelta(seconds=5))
    assert r.decision["rule"] == "no_allocations" and len(r.submitted) == 1
    r = cycle.run_once(db, wf, client, cfg, now=t0 + timedelta(seconds=60))
    assert r.decision["rule"] == "wait" and not r.submitted          # 3 retries < threshold 5
    r = cycle.run_once(db, wf, client, cfg, now=t0 + timedelta(seconds=7201))
    assert r.decision["rule"] == "stranded" and len(r.submitted) == 1
    r = cycle.run_once(db, wf, client, cfg, now=t0 + timedelta(seconds=9999))
    assert r.decision["rule"] == "backlog" and not r.submitted
    allocs = db.all("list_allocations", workflow_id=wf)
    assert [a["reason"].split(" ")[1] for a in allocs] == ["ready", "retry"]
    assert {a["state"] for a in allocs} == {"pending"}


def test_threshold_then_cooldown(db, held_workflow):
    wf = held_workflow(6)
    client = CliSlurmClient()
    cfg = cycle.WatchConfig(auto_schedule=True, policy=Policy(threshold=5, cooldown_s=1800, max_pending=5))
    t0 = _oldest_retry(db, wf)
    first = cycle.run_once(db, wf, client, cfg, now=t0 + timedelta(seconds=1))
    assert first.decision["rule"] == "no_allocations"
    r = cycle.run_once(db, wf, client, cfg, now=t0 + timedelta(seconds=10))
    assert r.decision["rule"] == "cooldown" and not r.submitted
    r = cycle.run_once(db, wf, client, cfg, now=t0 + timedelta(seconds=1801))
    assert r.decision["rule"] == "retry_threshold" and len(r.submitted) >= 1


def test_two_concurrent_cron_runs_submit_one_allocation(torc, held_workflow):
    wf = held_workflow(2)
    procs = [torc.popen("watch", "--all", "--once", "--auto-schedule") for _ in range(2)]
    for p in procs:
        p.communicate(timeout=120)
    with Database(torc.url) as db:
        assert len(db.all("list_allocations", workflow_id=wf)) == 1


def test_misconfigured_account_backs_off_then_pauses(torc, db, held_workflow):
    wf = held_workflow(1)
    args = ["watch", wf, "--once", "--auto-schedule", "--account", "no_such_account", "--format", "json"]
    # Default back-off: the second run, right after the first failure, must not submit again.
    first = torc(*args, check=False)
    second = torc(*args, check=False)
    assert first.returncode == 1 and "sbatch failed" in first.stdout and "Invalid account" in first.stdout
    assert '"rule": "backoff"' in second.stdout
    assert len(db.all("list_allocations", workflow_id=wf)) == 1
    # With no delay, failures pile up to the limit and auto-schedule pauses instead of looping.
    wf = held_workflow(1)
    args[1] = wf
    fast = args + ["--auto-schedule-backoff", "0", "--auto-schedule-max-failures", "3"]
    for _ in range(4):
        last = torc(*fast, check=False)
    allocs = db.all("list_allocations", workflow_id=wf)
    assert len(allocs) == 3 and {a["state"] for a in allocs} == {"submit_failed"}
    assert last.returncode == 1 and '"rule": "paused"' in last.stdout and "--resume" in last.stdout
    cron = torc("watch", "--all", "--once", "--auto-schedule", check=False)
    assert cron.returncode == 1 and f"workflow {wf}:" in cron.stdout and "paused" in cron.stdout
    assert len(cron.stdout.strip().splitlines()) == 1


def test_cron_is_quiet_when_nothing_needs_a_person(torc, held_workflow):
    held_workflow(1)
    out = torc("watch", "--all", "--once", "--auto-schedule")
    assert out.stdout == "" and out.returncode == 0


def test_retries_after_every_allocation_ended_get_one_new_allocation(torc):
    torc.write("wf.yaml", textwrap.dedent("""
        name: stranded
        failure_handlers:
          - name: timeouts
            rules: [{exit_codes: [152], max_retries: 3}]
        jobs:
          - name: sim_{i}
            command: 'if [ "$TORC_ATTEMPT_ID" = 1 ]; then sleep 300; fi; echo ok'
            failure_handler: timeouts
            resource_requirements: {runtime: PT20S, memory: 100m}
            parameters: {i: "1:3"}
        """))
    out = torc.json("submit-slurm", "wf.yaml", "--account", ACCOUNT, "--walltime", "00:01:00", "--walltime-buffer",
                    "15", "--idle-timeout", "5", "--max-parallel-jobs", "3")
    wf = out["workflow_id"]

    def retries_ready_and_allocation_ended():
        jobs = torc.json("jobs", "list", wf)
        allocs = torc.json("slurm", "list", wf)
        return (all(j["status"] == "ready" and j["attempt_id"] == 2 for j in jobs)
                and all(a["state"] == "ended" for a in allocs))

    wait_for(retries_ready_and_allocation_ended, timeout=180, interval=2, what="three retries and no allocation")
    r = torc.json("watch", wf, "--once", "--auto-schedule")
    assert r["decision"]["rule"] == "no_allocations" and len(r["submitted"]) == 1
    wait_for(lambda: all(j["status"] == "completed" for j in torc.json("jobs", "list", wf)), timeout=120,
             interval=1, what="the retries to complete")
    assert len(torc.json("slurm", "list", wf)) == 2


def test_recover_gives_an_out_of_memory_job_more_memory(torc):
    torc.write("wf.yaml", textwrap.dedent("""
        name: oom
        jobs:
          - name: hog
            command: python3 -c "import time; x = bytearray(700 * 1024 * 1024); time.sleep(2)"
            resource_requirements: {runtime: PT5M, memory: 200m}
        """))
    wf = torc.json("submit-slurm", "wf.yaml", "--account", ACCOUNT, "--idle-timeout", "5")["workflow_id"]
    wait_for(lambda: torc.json("jobs", "list", wf)[0]["status"] == "terminated", timeout=120, interval=1,
             what="the out-of-memory kill")
    r = torc.json("watch", wf, "--once", "--recover", "--memory-multiplier", "6")
    assert [x["cause"] for x in r["recovered"]] == ["out_of_memory"] and len(r["submitted"]) == 1
    job = wait_for(lambda: (j := torc.json("jobs", "list", wf)[0])["status"] == "completed" and j, timeout=120,
                   interval=1, what="the resized job to complete")
    assert job["memory_bytes"] == 1200 * 2**20
    kinds = [e["kind"] for e in torc.json("events", "list", wf)]
    assert "recovery_resized" in kinds
