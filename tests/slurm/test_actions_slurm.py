"""schedule_nodes actions on the real one-node cluster: `torc submit-slurm` submits the spec's start
allocations (exactly num_allocations of the named scheduler, as the owner, through the sbatch template),
and a worker inside an allocation submits the on_jobs_ready allocation when its job becomes ready."""

import textwrap

from tests.conftest import wait_for
from tests.slurm.conftest import ACCOUNT


def test_schedule_nodes_actions_submit_the_named_schedulers_allocations(torc):
    torc.write("wf.yaml", textwrap.dedent(f"""
        name: scheduled
        slurm_schedulers:
          - {{name: small, account: {ACCOUNT}, nodes: 1, walltime: "00:05:00", mem: 200M}}
          - {{name: later, account: {ACCOUNT}, nodes: 1, walltime: "00:04:00", mem: 300M}}
        resource_requirements:
          - {{name: tiny, num_cpus: 1, memory: 50m, runtime: PT1M}}
        jobs:
          - {{name: first, command: "sleep 2; echo first > first.txt", resource_requirements: tiny}}
          - {{name: late, command: "cat first.txt > late.txt", depends_on: [first], resource_requirements: tiny}}
        actions:
          - {{trigger_type: on_workflow_start, action_type: schedule_nodes, scheduler: small,
             scheduler_type: slurm, num_allocations: 1, max_parallel_jobs: 3}}
          - {{trigger_type: on_jobs_ready, action_type: schedule_nodes, jobs: [late], scheduler: later,
             scheduler_type: slurm}}
          - {{trigger_type: on_workflow_complete, action_type: run_commands, commands: ["echo done > end.txt"]}}
        """))
    out = torc.json("submit-slurm", "wf.yaml", "--account", ACCOUNT)
    wf = out["workflow_id"]
    assert len(out["allocations"]) == 1 and "--max-parallel-jobs=3" not in out["allocations"][0]["sbatch_args"]
    wait_for(lambda: (torc.cwd / "end.txt").exists(), timeout=180, interval=1, what="the completion action")
    assert (torc.cwd / "late.txt").read_text() == "first\n"
    allocs = wait_for(lambda: (a := torc.json("slurm", "list", wf)) and len(a) == 2 and a, timeout=60,
                      interval=1, what="the on_jobs_ready allocation")
    assert [(a["submitted_by"], a["mem"]) for a in allocs] == [("action", "200M"), ("action", "300M")]
    script = (torc.cwd / "torc_output" / "slurm" / f"torc_wf{wf}_a{allocs[0]['id']}.sh").read_text()
    assert "--max-parallel-jobs=3" in script and "#SBATCH --account=torc_test" in script
    acts = torc.json("workflows", "show", wf)["actions"]
    assert all(a["fired_at"] for a in acts)
    assert acts[1]["fired_by"].startswith("worker")   # the worker in the first allocation submitted it
