"""The cron watcher as one pass over the real cluster (issue 11 item 5), and allocations Slurm never heard of
(issue 9 item 8). Slurm calls are counted by wrappers that log and exec the real programs; every test looks
only at its own jobs (other helpers share the cluster)."""

import json
import subprocess
import time

import pytest

from psycopg.types.json import Jsonb

from torc_hpc.watch.packed import worker_serves_several
from tests.conftest import wait_for
from tests.helpers import create
from tests.slurm.conftest import ACCOUNT

HELD = {"account": ACCOUNT, "extra": "--hold", "idle_timeout_s": 5}
NEVER_SUBMITTED = "999999999"     # above Slurm's MaxJobId (67,043,328): no job ever had this id


def _small(db, name, n=2, held=True, where=None):
    # Each test's own working directory: scripts go to WORKDIR/torc_output/slurm (others share /tmp).
    wf = create(db, {"name": name, "jobs": [
        {"name": "j_{i}", "command": "true", "resource_requirements": {"runtime": "PT1M", "memory": "100m"},
         "parameters": {"i": f"1:{n}"}}]}, working_dir=str(where))
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
    wfs = [_small(db, f"w{i}", where=torc.cwd) for i in range(12)]
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
    quiet, busy = _small(db, "quiet", where=torc.cwd), _small(db, "busy", where=torc.cwd)
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
    wf = _small(db, "ghost", n=2, where=torc.cwd)
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


def _pass(torc, slurm_calls, *args):
    slurm_calls.reset()
    t0 = time.monotonic()
    out = torc("watch", "--all", "--once", *args, "--format", "json", timeout=600, check=False)
    assert out.returncode in (0, 1), out.stderr[-3000:]
    return out, time.monotonic() - t0, slurm_calls.count()


def _served(db, wfs):
    served = {}
    for wf in wfs:
        for a in db.all("list_allocations", workflow_id=wf):
            served.setdefault(a["id"], a)
    return served


@pytest.mark.skipif(not worker_serves_several(), reason="packed allocations run `torc worker --workflows`, which "
                                                        "this installation's worker does not take yet")
def test_three_hundred_small_workflows_one_pass_few_packed_allocations(torc, db, slurm_calls):
    """issue 11 item 5: 300 workflows of 2 one-minute jobs, one owner. One `watch --all --once` asks Slurm
    at most once (nothing is active yet: no squeue at all) and packs them into ceil(300 / 50) = 6
    allocations, one sbatch each; the next passes make one squeue and at most one sacct."""
    torc.env["PATH"] = slurm_calls.path(torc.env["PATH"])
    wfs = [_small(db, f"s{i}", where=torc.cwd) for i in range(300)]
    try:
        out, secs, counts = _pass(torc, slurm_calls, "--auto-schedule")
        print(f"\n300 workflows, first pass: {secs:.1f}s, Slurm calls {counts}")
        assert counts.get("squeue", 0) <= 1 and counts.get("sacct", 0) <= 1 and counts.get("sbatch") == 6, counts
        served = _served(db, wfs)
        assert len(served) == 6
        assert sorted(w for a in served.values() for w in a["workflows"]) == sorted(wfs)   # each served once
        script = open(next(iter(served.values()))["script_path"]).read()
        assert "worker --workflows " in script and "#SBATCH --hold" in script
        # Second pass: every workflow is served by a pending allocation; one squeue, nothing else.
        out, secs, counts = _pass(torc, slurm_calls, "--auto-schedule")
        print(f"second pass: {secs:.1f}s, Slurm calls {counts}")
        assert counts == {"squeue": 1}
        # All six end (scancel): one squeue and one sacct learn it for all 300 workflows.
        subprocess.run(["scancel", *[a["slurm_job_id"] for a in served.values()]], check=False)
        out, secs, counts = _pass(torc, slurm_calls)
        print(f"after scancel: {secs:.1f}s, Slurm calls {counts}")
        assert counts.get("squeue") == 1 and counts.get("sacct", 0) <= 1 and "sbatch" not in counts
    finally:
        _scancel_all(db, wfs)


def test_three_hundred_workflows_of_one_owner_stop_at_the_owner_cap(torc, db, slurm_calls):
    """Without sharing (--max-workflows-per-allocation 1) each workflow would want its own allocation: the
    per-owner cap (10) lets 10 sbatch through, the other 290 wait and say why; one squeue per later pass."""
    torc.env["PATH"] = slurm_calls.path(torc.env["PATH"])
    wfs = [_small(db, f"c{i}", where=torc.cwd) for i in range(300)]
    try:
        out, secs, counts = _pass(torc, slurm_calls, "--auto-schedule", "--max-workflows-per-allocation", "1")
        print(f"\n300 workflows, no sharing, first pass: {secs:.1f}s, Slurm calls {counts}")
        assert counts.get("sbatch") == 10 and counts.get("squeue", 0) <= 1 and counts.get("sacct", 0) <= 1, counts
        reports = [json.loads(line) for line in out.stdout.splitlines()]
        deferred = [r for r in reports if (r["decision"] or {}).get("deferred")]
        assert len(deferred) == 290 and "cap 10" in deferred[0]["decision"]["deferred"]
        assert len(_served(db, wfs)) == 10
        out, secs, counts = _pass(torc, slurm_calls, "--auto-schedule", "--max-workflows-per-allocation", "1",
                                  "--max-pending-per-owner", "12")
        print(f"second pass, cap 12: {secs:.1f}s, Slurm calls {counts}")
        assert counts["squeue"] == 1 and counts["sbatch"] == 2 and "sacct" not in counts, counts
    finally:
        _scancel_all(db, wfs)


def test_a_packed_allocation_counts_for_each_workflow_it_serves(torc, db):
    """Submitted for real (held): every member sees it as its own active allocation (so none of them asks
    for another), `slurm list` shows it to each, cancelling one member does not scancel it, its worker may
    report its start under any member, and workflows of two owners are never packed."""
    from torc_hpc.core.allocation import Shape
    from torc_hpc.errors import TorcError
    from torc_hpc.slurm import allocations as allocs
    from torc_hpc.slurm.client import CliSlurmClient

    a, b, c = (_small(db, f"p{i}", where=torc.cwd) for i in range(3))
    opts = allocs.SubmitOptions(account=ACCOUNT, extra="--hold")
    req = allocs.AllocationRequest(scheduler=None, account=ACCOUNT, partition=None, shape=Shape(1, 1, 300, 600),
                                   extra=["--hold"])
    try:
        pack = allocs.submit(db, a, CliSlurmClient(), req, opts, submitted_by="test", workflows=(a, b, c))
        assert pack["workflows"] == [a, b, c]
        for wf in (a, b, c):
            snap = db.one("watch_snapshot", workflow_id=wf)
            assert (snap["active_allocations"], snap["pending_allocations"]) == (1, 1)
            (row,) = torc.json("slurm", "list", wf)
            assert row["id"] == pack["id"] and row["workflows"] == [a, b, c]
        assert torc.json("slurm", "cancel", b)["scanceled_allocations"] == []
        assert db.all("list_allocations", workflow_id=a)[0]["state"] == "pending"
        db.run("allocation_started", id=pack["id"], workflow_id=c, slurm_job_id=pack["slurm_job_id"])
        assert db.all("list_allocations", workflow_id=a)[0]["state"] == "running"
        db.conn.execute("UPDATE workflows SET owner = 'someone_else' WHERE id = %s", (c,))
        with pytest.raises(TorcError, match="one owner's workflows only"):
            allocs.submit(db, a, CliSlurmClient(), req, opts, submitted_by="test", workflows=(a, c))
    finally:
        _scancel_all(db, [a])


@pytest.mark.skipif(not worker_serves_several(), reason="packed allocations run `torc worker --workflows`, which "
                                                        "this installation's worker does not take yet")
def test_a_packed_allocation_runs_every_workflow_it_serves_to_completion(torc, db, slurm_calls):
    """End to end on the real cluster: three small workflows of one owner, one cron pass, one sbatch; the
    allocation's single worker runs all six jobs, and the allocation ends COMPLETED."""
    torc.env["PATH"] = slurm_calls.path(torc.env["PATH"])
    wfs = [_small(db, f"e{i}", held=False, where=torc.cwd) for i in range(3)]
    for wf in wfs:
        db.run("save_submit_options", workflow_id=wf, options=Jsonb({"account": ACCOUNT, "idle_timeout_s": 5}))
    try:
        out, secs, counts = _pass(torc, slurm_calls, "--auto-schedule")
        assert counts.get("sbatch") == 1, (counts, out.stdout[-2000:])
        (alloc,) = _served(db, wfs).values()
        assert alloc["workflows"] == sorted(wfs)

        def all_done():
            return all(j["status"] == "completed" for wf in wfs for j in db.all("list_jobs", workflow_id=wf,
                                                                                 status=None))
        wait_for(all_done, timeout=180, interval=1, what="every job of the three workflows")
        # One worker served them all: every attempt's result names a worker of that one Slurm job.
        worker_ids = [r["worker_id"] for wf in wfs for r in db.all("list_results", workflow_id=wf)]
        assert len(worker_ids) == 6
        ran_in = {r["slurm_job_id"] for r in db.conn.execute(
            "SELECT slurm_job_id FROM workers WHERE id = ANY (%s)", (worker_ids,)).fetchall()}
        assert ran_in == {alloc["slurm_job_id"]}
        wait_for(lambda: _pass(torc, slurm_calls)[0] is not None and _served(db, wfs)[alloc["id"]]["state"] == "ended",
                 timeout=120, interval=3, what="the allocation to end")
        assert _served(db, wfs)[alloc["id"]]["sacct_state"] == "COMPLETED"
    finally:
        _scancel_all(db, wfs)
