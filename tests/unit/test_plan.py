"""Plans: topological stages, requested totals, the largest job, handlers, and allocation shapes (pure)."""

from array import array

from tests.helpers import expanded
from torc_hpc.core.allocation import Waiting
from torc_hpc.plan import levels, summarize
from torc_hpc.slurm.allocations import SubmitOptions, request_for
from torc_hpc.slurm.client import PartitionShape


def test_levels_are_longest_paths_from_the_roots():
    # 0 → 1 → 3, 0 → 2 → 3, 3 → 4, and 5 alone; 0 → 4 directly does not make 4 shallower
    parents = array("q", [0, 0, 1, 2, 3, 0])
    children = array("q", [1, 2, 3, 3, 4, 4])
    assert list(levels(6, parents, children)) == [0, 1, 1, 2, 3, 0]
    assert list(levels(3, [], [])) == [0, 0, 0]


def test_a_long_chain_is_one_stage_per_job():
    n = 2000
    assert list(levels(n, list(range(n - 1)), list(range(1, n))))[-1] == n - 1


SPEC = {
    "name": "sweep",
    "failure_handlers": [{"name": "flaky", "rules": [{"exit_codes": [10], "max_retries": 3}]}],
    "jobs": [
        {"name": "prep", "command": "true", "resource_requirements": {"num_cpus": 1, "memory": "1g", "runtime": "PT10M"}},
        {"name": "sim_{n:02d}", "command": "sim {n}", "depends_on": ["prep"], "failure_handler": "flaky",
         "parameters": {"n": "1:12"},
         "resource_requirements": {"num_cpus": 2, "num_gpus": 1, "memory": "4g", "runtime": "PT30M"}},
        {"name": "big", "command": "big", "depends_on": ["prep"],
         "resource_requirements": {"num_cpus": 16, "memory": "64g", "runtime": "PT2H"}},
        {"name": "report", "command": "report", "depends_on": ["sim_{n:02d}", "big"], "parameters": {"n": "1:12"}},
    ],
}


def test_summary_counts_stages_hours_handlers_and_the_largest_job():
    p = summarize(expanded(SPEC))
    assert (p.jobs, p.dependencies, p.stages_total) == (15, 12 + 1 + 12 + 1, 3)
    assert [(s.level, s.jobs) for s in p.stages] == [(0, 1), (1, 13), (2, 1)]
    assert p.stages[1].groups == [("sim_{n:02d}", 12), ("big", 1)]
    # CPU-hours: prep 1×1/6 + 12 sims 2×0.5 + big 16×2 + report 1×1 (default PT1H)
    assert abs(p.cpu_hours - (1 / 6 + 12 + 32 + 1)) < 1e-9
    assert abs(p.gpu_hours - 6) < 1e-9
    assert p.memory_bytes == (1 + 12 * 4 + 64 + 1) * 2**30
    assert p.largest_job["name"] == "big" and p.max_request["memory_bytes"] == {"value": 64 * 2**30, "job": "big"}
    assert p.failure_handlers == {"flaky": 12} and p.jobs_with_handlers == 12
    assert p.schedulers[None].jobs == 15 and p.schedulers[None].max_cpus == 16


def test_the_shape_submit_slurm_would_use_and_why_jobs_would_not_fit():
    w = Waiting(jobs=15, cpus=42, max_cpus=16, memory_bytes=114 * 2**30, max_memory_bytes=64 * 2**30,
                max_runtime_s=7200, max_gpus=1)
    node = PartitionShape(cpus_per_node=32, mem_mb_per_node=128 * 1024, max_walltime_s=None, nodes="n[1-4]")
    req, problems = request_for(None, w, None, SubmitOptions(account="proj"), node, 2)
    assert problems == []
    assert (req.shape.cpus_per_node, req.shape.mem_mb_per_node, req.account) == (21, 64 * 1024, "proj")
    assert req.shape.walltime_s >= 7200 + 60
    small = PartitionShape(cpus_per_node=8, mem_mb_per_node=16 * 1024, max_walltime_s=3600, nodes="n1")
    _, problems = request_for(None, w, None, SubmitOptions(), small, 1)
    assert any("16 CPUs" in p for p in problems) and any("MB" in p for p in problems)
    # without Slurm: sized from the jobs alone, never smaller than the largest one
    req, problems = request_for(None, w, None, SubmitOptions(), None, 1)
    assert problems == [] and req.shape.cpus_per_node == 16
