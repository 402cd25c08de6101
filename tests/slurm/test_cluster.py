"""On the real one-node Slurm cluster: sbatch, squeue, sacct and scancel are the real programs."""

import textwrap
import time

from tests.conftest import wait_for
from tests.slurm.conftest import ACCOUNT


def _jobs(torc, wf):
    return {j["name"]: j for j in torc.json("jobs", "list", wf)}


def _allocations(torc, wf):
    return torc.json("slurm", "list", wf)


def _submit(torc, target, *args):
    out = torc.json("submit-slurm", target, "--account", ACCOUNT, "--idle-timeout", "5", *args)
    assert out["allocations"] and all(a["slurm_job_id"] for a in out["allocations"])
    return out


def _all_ended(torc, wf):
    allocs = _allocations(torc, wf)
    return allocs and all(a["state"] in ("ended", "submit_failed") for a in allocs) and allocs


def test_dag_runs_to_completion_through_sbatch(torc):
    torc.write("wf.yaml", textwrap.dedent("""
        name: dag
        jobs:
          - {name: a, command: "echo a > a.txt"}
          - {name: b, command: "cat a.txt > b.txt", depends_on: [a]}
          - {name: c, command: "cat a.txt > c.txt", depends_on: [a]}
          - {name: d, command: "cat b.txt c.txt > d.txt && hostname", depends_on: [b, c]}
        """))
    out = _submit(torc, "wf.yaml")
    wf = out["workflow_id"]
    wait_for(lambda: all(j["status"] == "completed" for j in _jobs(torc, wf).values()), timeout=120,
             interval=1, what="all jobs completed")
    assert (torc.cwd / "d.txt").read_text() == "a\na\n"
    allocs = wait_for(lambda: _all_ended(torc, wf), timeout=60, interval=1, what="allocation end")
    assert allocs[0]["sacct_state"] == "COMPLETED"
    script = torc.cwd / "torc_output" / "slurm" / f"torc_wf{wf}_a{allocs[0]['id']}.sh"
    assert "#SBATCH --account=torc_test" in script.read_text()
    results = torc.json("results", "list", wf)
    # measured: CPU time always; peak memory only where it is the job's own (these tiny jobs: unknown, None)
    assert all(r["cpu_time_s"] is not None for r in results)
    assert all(r["peak_memory_bytes"] is None or r["peak_memory_bytes"] < 50 * 2**20 for r in results)


def test_walltime_gives_152_and_the_handler_retries_in_a_new_allocation(torc):
    torc.write("wf.yaml", textwrap.dedent("""
        name: walltime
        failure_handlers:
          - name: timeouts
            rules: [{exit_codes: [152], max_retries: 2}]
        jobs:
          - name: long
            command: 'if [ "$TORC_ATTEMPT_ID" = 1 ]; then sleep 300; fi; echo finished'
            failure_handler: timeouts
            resource_requirements: {runtime: PT20S, memory: 100m}
        """))
    out = _submit(torc, "wf.yaml", "--walltime", "00:01:00", "--walltime-buffer", "15")
    wf = out["workflow_id"]
    job = wait_for(lambda: (j := _jobs(torc, wf)["long"])["attempt_id"] == 2 and j["status"] == "ready" and j,
                   timeout=150, interval=2, what="the walltime retry")
    assert job["return_code"] == 152
    _submit(torc, str(wf))
    wait_for(lambda: _jobs(torc, wf)["long"]["status"] == "completed", timeout=120, interval=1,
             what="the retry to complete")
    results = [(r["attempt_id"], r["status"], r["return_code"]) for r in torc.json("results", "list", wf)]
    assert results == [(1, "terminated", 152), (2, "completed", 0)]
    assert len(_allocations(torc, wf)) == 2


def test_scancel_gives_143(torc):
    torc.write("wf.yaml", textwrap.dedent("""
        name: scancel
        jobs:
          - {name: slow, command: "sleep 300", resource_requirements: {runtime: PT10M, memory: 100m}}
          - {name: after, command: "true", depends_on: [slow]}
        """))
    wf = _submit(torc, "wf.yaml")["workflow_id"]
    wait_for(lambda: _jobs(torc, wf)["slow"]["status"] == "running", timeout=60, interval=1, what="running job")
    time.sleep(1)
    canceled = torc.json("slurm", "cancel", wf)
    assert len(canceled["scanceled_allocations"]) == 1
    allocs = wait_for(lambda: _all_ended(torc, wf), timeout=90, interval=1, what="allocation end")
    assert allocs[0]["sacct_state"].startswith("CANCELLED")
    jobs = wait_for(lambda: (j := _jobs(torc, wf))["slow"]["status"] != "running" and j, timeout=30, interval=1,
                    what="the job to be recorded")
    assert jobs["slow"]["status"] == "terminated" and jobs["slow"]["return_code"] == 143
    assert jobs["after"]["status"] == "canceled"


def test_job_over_its_memory_gives_137(torc):
    torc.write("wf.yaml", textwrap.dedent("""
        name: oom
        jobs:
          - name: hog
            command: python3 -c "import time; x = bytearray(900 * 1024 * 1024); time.sleep(30)"
            resource_requirements: {runtime: PT5M, memory: 200m}
        """))
    wf = _submit(torc, "wf.yaml")["workflow_id"]
    allocs = wait_for(lambda: _all_ended(torc, wf), timeout=120, interval=1, what="allocation end")
    jobs = wait_for(lambda: (j := _jobs(torc, wf))["hog"]["status"] != "running" and j, timeout=30, interval=1,
                    what="the orphan to be reconciled")
    assert jobs["hog"]["status"] == "terminated" and jobs["hog"]["return_code"] == 137, (jobs, allocs)
    kinds = [e["kind"] for e in torc.json("events", "list", wf)]
    assert "worker_lost" in kinds


def test_refused_sbatch_keeps_the_script_and_says_why(torc):
    torc.write("wf.yaml", "name: acct\njobs:\n  - {name: a, command: 'true'}\n")
    proc = torc("submit-slurm", "wf.yaml", "--account", "no_such_account", check=False)
    assert proc.returncode != 0
    assert "Invalid account" in proc.stderr and "sacctmgr" in proc.stderr
    wf = torc.json("workflows", "list")[0]["id"]
    (alloc,) = torc.json("slurm", "list", wf)
    assert alloc["state"] == "submit_failed" and "Invalid account" in alloc["error"]
    assert (torc.cwd / "torc_output" / "slurm" / f"torc_wf{wf}_a{alloc['id']}.sh").exists()


def test_a_recycled_slurm_job_id_does_not_crash_the_submission(db, tmp_path):
    """Job ids are unique only within one Slurm cluster, and a rebuilt cluster of the same name starts them
    again: sbatch succeeds with an id an older allocation already carries. The new allocation is recorded
    (the old record stays), and the submission does not fail after sbatch ran."""
    import subprocess

    from tests.helpers import create
    from torc_hpc.slurm import ops as slurm_ops
    from torc_hpc.slurm.allocations import SubmitOptions
    from torc_hpc.slurm.client import CliSlurmClient

    old_wf = create(db, {"name": "before_the_rebuild", "jobs": [{"name": "a", "command": "true"}]},
                    working_dir=str(tmp_path))
    wf = create(db, {"name": "after_the_rebuild", "jobs": [{"name": "a", "command": "true"}]},
                working_dir=str(tmp_path))

    class RebuiltCluster(CliSlurmClient):
        """The real sbatch; before its id is recorded, the old cluster's record of the same id is planted."""

        def submit(self, script):
            job_id = super().submit(script)
            db.conn.execute("INSERT INTO allocations (workflow_id, walltime_s, submitted_by, state, slurm_job_id, "
                            "slurm_cluster) VALUES (%s, 60, 'old', 'ended', %s, %s)",
                            (old_wf, job_id, self.cluster_name()))
            return job_id

    client = RebuiltCluster()
    out = None
    try:
        out = slurm_ops.submit_for_workflow(db, wf, client, SubmitOptions(account=ACCOUNT, idle_timeout_s=5), 1,
                                            submitted_by="test")
        job_id = out["allocations"][0]["slurm_job_id"]
        rows = db.conn.execute("SELECT workflow_id, slurm_cluster, state FROM allocations WHERE slurm_job_id = %s "
                               "ORDER BY id", (job_id,)).fetchall()
        assert [(r["workflow_id"], r["slurm_cluster"]) for r in rows] == [(wf, None), (old_wf, client.cluster_name())]
        assert rows[0]["state"] != "submit_failed"
        ev = [e for e in db.all("list_events", workflow_id=wf, after_id=0, limit=100)
              if e["kind"] == "allocation_submitted"]
        assert len(ev) == 1 and ev[0]["detail"]["slurm_job_id"] == job_id
    finally:
        if out:
            subprocess.run(["scancel", *[a["slurm_job_id"] for a in out["allocations"]]], capture_output=True)
