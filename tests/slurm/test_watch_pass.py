"""The cron watcher as one pass over the real cluster (issue 11 item 5), and allocations Slurm never heard of
(issue 9 item 8). Slurm calls are counted by wrappers that log and exec the real programs; every test looks
only at its own jobs (other helpers share the cluster)."""

import subprocess
import time

from psycopg.types.json import Jsonb

from torc_hpc.db import Database
from tests.conftest import wait_for
from tests.helpers import create
from tests.slurm.conftest import ACCOUNT

HELD = {"account": ACCOUNT, "extra": "--hold", "idle_timeout_s": 5}
NEVER_SUBMITTED = "999999999"     # above Slurm's MaxJobId (67,043,328): no job ever had this id


def _small(db, name, n=2, held=True):
    wf = create(db, {"name": name, "jobs": [
        {"name": "j_{i}", "command": "true", "resource_requirements": {"runtime": "PT1M", "memory": "100m"},
         "parameters": {"i": f"1:{n}"}}]})
    if held:
        db.run("save_submit_options", workflow_id=wf, options=Jsonb(HELD))
    return wf


def _scancel_all(db, wfs):
    ids = [a["slurm_job_id"] for wf in wfs for a in db.all("list_allocations", workflow_id=wf) if a["slurm_job_id"]
           and a["slurm_job_id"] != NEVER_SUBMITTED]
    if ids:
        subprocess.run(["scancel", *ids], check=False)
    return ids


def test_cron_asks_slurm_once_per_pass_whatever_the_number_of_allocations(torc, db, slurm_calls):
    torc.env["PATH"] = slurm_calls.path(torc.env["PATH"])
    wfs = [_small(db, f"w{i}") for i in range(12)]
    try:
        # Each workflow gets its own (held) allocation from a plain submit-slurm.
        for wf in wfs:
            torc("submit-slurm", wf, "--account", ACCOUNT, "--sbatch-args=--hold", "--idle-timeout", "5")
        assert len(slurm_calls.calls("sbatch")) == 12
        slurm_calls.reset()
        out = torc("watch", "--all", "--once", "--auto-schedule")
        assert out.returncode == 0 and out.stdout == ""
        counts = slurm_calls.count()
        assert counts.get("squeue") == 1 and counts.get("sacct", 0) == 0 and counts.get("sbatch", 0) == 0, counts
        (line,) = slurm_calls.calls("squeue")
        assert all(a["slurm_job_id"] in line for wf in wfs for a in db.all("list_allocations", workflow_id=wf))
        # All twelve end: the next pass learns every end in one squeue and one sacct.
        _scancel_all(db, wfs)
        slurm_calls.reset()
        wait_for(lambda: subprocess.run(["squeue", "-h", "-t", "PD,R", "-j", ",".join(
            a["slurm_job_id"] for wf in wfs for a in db.all("list_allocations", workflow_id=wf))],
            capture_output=True, text=True).stdout.strip() == "", timeout=60, interval=1, what="scancel")
        slurm_calls.reset()
        torc("watch", "--all", "--once", check=False)
        counts = slurm_calls.count()
        assert counts.get("squeue") == 1 and counts.get("sacct") == 1, counts
        states = {a["state"] for wf in wfs for a in db.all("list_allocations", workflow_id=wf)}
        assert states == {"ended"}
    finally:
        _scancel_all(db, wfs)


def test_plain_commands_ask_slurm_only_when_the_workflow_has_active_allocations(torc, db, slurm_calls):
    torc.env["PATH"] = slurm_calls.path(torc.env["PATH"])
    quiet, busy = _small(db, "quiet"), _small(db, "busy")
    try:
        torc("submit-slurm", busy, "--account", ACCOUNT, "--sbatch-args=--hold")
        slurm_calls.reset()
        for args in (("workflows", "status", quiet), ("jobs", "list", quiet), ("results", "list", quiet),
                     ("slurm", "list", quiet), ("workflows", "status", busy)):
            torc(*args, check=False)
        calls = slurm_calls.calls()
        assert len(calls) == 1 and calls[0].startswith("squeue"), calls   # only busy's status asked
    finally:
        _scancel_all(db, [busy])


def test_an_allocation_slurm_never_heard_of_ends_after_the_grace_period(torc, db, slurm_calls):
    """A row whose Slurm id was never submitted (as after a rebuilt cluster or purged records): unknown at
    first, counted as active (one unknown answer proves nothing); after the grace period it is ended, the
    job it left running gets 154, cron prints one attention line, and auto-schedule submits again."""
    torc.env["PATH"] = slurm_calls.path(torc.env["PATH"])
    torc.env["TORC_WATCH_UNKNOWN_GRACE"] = "3"
    wf = _small(db, "ghost", n=2)
    alloc = db.one("insert_allocation", workflow_id=wf, scheduler=None, account=ACCOUNT, partition=None, nodes=1,
                   cpus_per_node=1, mem="100M", walltime_s=600, sbatch_args=[], submitted_by="test",
                   reason="a job id Slurm never had")["id"]
    db.run("allocation_submitted", id=alloc, slurm_job_id=NEVER_SUBMITTED, slurm_cluster=None, script_path=None)
    wid = db.register_worker(wf, hostname="node-gone", pid=4242, num_cpus=1, num_gpus=0, memory_bytes=2**30,
                             slurm_job_id=NEVER_SUBMITTED)
    (running,) = db.claim(wf, wid, cpus=1, gpus=0, memory=2**30, limit=1)
    try:
        first = torc("watch", "--all", "--once", "--auto-schedule", "--format", "json")
        assert first.returncode == 0, first.stdout + first.stderr
        (a,) = [x for x in db.all("list_allocations", workflow_id=wf)]
        assert a["state"] == "unknown"
        assert '"rule": "wait"' in first.stdout and '"submitted": []' in first.stdout   # still counted active
        assert slurm_calls.count() == {"squeue": 1, "sacct": 1}
        time.sleep(3.5)
        slurm_calls.reset()
        second = torc("watch", "--all", "--once", "--auto-schedule", check=False)
        assert second.returncode == 1
        (line,) = second.stdout.strip().splitlines()
        assert line.startswith(f"workflow {wf}: ") and "vanished" in line and NEVER_SUBMITTED in line
        assert "154" in line
        allocs = {x["id"]: x for x in db.all("list_allocations", workflow_id=wf)}
        assert allocs[alloc]["state"] == "ended" and "neither squeue nor sacct" in allocs[alloc]["error"]
        (job,) = [j for j in db.all("list_jobs", workflow_id=wf, status=None) if j["id"] == running["id"]]
        assert job["status"] == "terminated" and job["return_code"] == 154
        kinds = [e["kind"] for e in db.all("list_events", workflow_id=wf, after_id=0, limit=100)]
        assert "allocation_vanished" in kinds and "worker_lost" in kinds
        # Nothing active any more: auto-schedule submitted a new allocation for the ready job.
        new = [x for x in allocs.values() if x["id"] != alloc]
        assert len(new) == 1 and new[0]["state"] == "pending" and new[0]["submitted_by"] == "watch"
        counts = slurm_calls.count()
        assert counts["squeue"] == 1 and counts["sacct"] == 1 and counts["sbatch"] == 1, counts
        # The attention line is said once: the next pass is quiet about it.
        third = torc("watch", "--all", "--once", check=False)
        assert "vanished" not in third.stdout
    finally:
        _scancel_all(db, [wf])
