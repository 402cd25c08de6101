"""Packing small workflows of one owner into shared allocations, and the caps on pending allocations
(torc_hpc.core.packing), table by table."""

import pytest

from torc_hpc.core.allocation import Waiting
from torc_hpc.core.packing import Caps, Demand, Node, Submission, pack_shape, plan, small

NODE = Node(cpus=8, mem_mb=32_000, max_walltime_s=None, buffer_s=60)
# 20 jobs of 1 CPU, 100 MB and at most a minute each: 20 CPU-minutes of ready work.
WORK = Waiting(jobs=20, cpus=20, max_cpus=1, memory_bytes=20 * 100 * 2**20, max_memory_bytes=100 * 2**20,
               max_runtime_s=60, ready=20)


def small_wf(wf, owner="alice", cpu_s=1200, group=("acct", "debug"), node=NODE, work=WORK):
    return Demand(workflow_id=wf, owner=owner, allocations=1, ready_cpu_s=cpu_s, share=work, group=group, node=node)


def own_wf(wf, owner="alice", n=1):
    return Demand(workflow_id=wf, owner=owner, allocations=n, ready_cpu_s=10**7, share=None)


def ids(p):
    return [s.workflow_ids for s in p.submit]


def test_five_hundred_small_workflows_of_one_owner_fill_few_allocations():
    caps = Caps(per_owner=100, total=100, workflows_per_allocation=50, pack_walltime_s=3600)
    p = plan([small_wf(i) for i in range(1, 501)], {}, 0, caps)
    # 8 CPUs × (3600 - 60 - 120) s = 27,360 CPU-s per allocation; 22 workflows of 1,200 CPU-s fit.
    assert [len(s.workflow_ids) for s in p.submit] == [22] * 22 + [16]
    assert sorted(w for s in p.submit for w in s.workflow_ids) == list(range(1, 501)) and not p.deferred
    assert all(s.packed and s.shape.cpus_per_node == 8 and s.shape.walltime_s <= 3600 for s in p.submit)


@pytest.mark.parametrize("per_pack,expect", [(50, [50, 50]), (10, [10] * 10), (1, [])])
def test_the_workflows_per_allocation_cap(per_pack, expect):
    tiny = [small_wf(i, cpu_s=10) for i in range(1, 101)]
    p = plan(tiny, {}, 0, Caps(per_owner=1000, total=1000, workflows_per_allocation=per_pack))
    assert [len(s.workflow_ids) for s in p.submit if s.packed] == expect
    assert sum(len(s.workflow_ids) for s in p.submit) == 100      # a "pack" of one is its own allocation


def test_owners_and_sbatch_options_never_share_an_allocation():
    demands = [small_wf(1, "alice"), small_wf(2, "bob"), small_wf(3, "alice"), small_wf(4, "bob"),
               small_wf(5, "alice", group=("acct", "gpu-partition")), small_wf(6, "alice", group=("acct", "gpu-partition"))]
    p = plan(demands, {}, 0, Caps())
    assert sorted(ids(p)) == [(1, 3), (2, 4), (5, 6)]
    assert {s.owner: s.workflow_ids for s in p.submit if s.owner == "bob"} == {"bob": (2, 4)}


@pytest.mark.parametrize("demand,is_small", [
    (small_wf(1), True),
    (small_wf(1, cpu_s=8 * (3600 - 180) + 1), False),                          # more work than one pack holds
    (Demand(1, "alice", 2, 1200, WORK, (), NODE), False),                      # it asked for two allocations
    (Demand(1, "alice", 1, 1200, None, (), NODE), False),                      # scheduler shapes, own template
    (small_wf(1, work=Waiting(1, 1, 1, 2**20, 2**20, 7200, 0, 1)), False),     # a job longer than the pack
    (small_wf(1, work=Waiting(1, 16, 16, 2**20, 2**20, 60, 0, 1)), False),     # a job larger than the node
    (small_wf(1, work=Waiting(1, 1, 1, 2**20, 2**20, 60, 1, 1)), False),       # GPUs: left to its own shape
    (small_wf(1, node=Node(8, 32_000, 1800, 60)), True),                       # the partition's limit bounds it
    (small_wf(1, cpu_s=8 * (1800 - 180) + 1, node=Node(8, 32_000, 1800, 60)), False),
])
def test_which_workflows_are_small(demand, is_small):
    assert small(demand, Caps(pack_walltime_s=3600)) is is_small


def test_big_workflows_keep_their_own_allocations_beside_packs():
    p = plan([own_wf(1, n=3), small_wf(2), small_wf(3), small_wf(4, owner="bob")], {}, 0, Caps())
    assert sorted(ids(p)) == [(1,), (1,), (1,), (2, 3), (4,)]
    assert [s.index for s in p.submit if s.workflow_ids == (1,)] == [0, 1, 2]
    assert all(not s.packed for s in p.submit if len(s.workflow_ids) == 1)


@pytest.mark.parametrize("pending,total,caps,submitted,deferred_why", [
    ({}, 0, Caps(per_owner=2, total=100), 2, "owner alice has 2 allocation(s) pending (cap 2"),
    ({"alice": 1}, 1, Caps(per_owner=2, total=100), 1, "owner alice has 2"),
    ({"alice": 5}, 5, Caps(per_owner=5, total=100), 0, "owner alice has 5"),
    ({"bob": 9}, 9, Caps(per_owner=50, total=10), 1, "10 allocation(s) pending in all (cap 10"),
])
def test_caps_on_pending_allocations(pending, total, caps, submitted, deferred_why):
    p = plan([own_wf(i) for i in range(1, 5)], pending, total, caps)
    assert len(p.submit) == submitted
    assert len(p.deferred) == 4 - submitted and all(why.startswith(deferred_why) for why in p.deferred.values())


def test_owners_take_turns_under_the_total_cap():
    demands = [own_wf(i, "alice") for i in range(1, 11)] + [own_wf(i, "bob") for i in range(11, 14)]
    p = plan(demands, {}, 0, Caps(per_owner=100, total=5))
    assert [s.owner for s in p.submit] == ["alice", "bob", "alice", "bob", "alice"]
    assert set(p.deferred) == {4, 5, 6, 7, 8, 9, 10, 13}


def test_a_workflow_that_got_some_of_its_allocations_is_not_deferred():
    p = plan([own_wf(1, n=4)], {}, 0, Caps(per_owner=2))
    assert ids(p) == [(1,), (1,)] and p.deferred == {}


@pytest.mark.parametrize("works,cpu_s,cpus,mem_mb,walltime", [
    ([WORK, WORK], 2400, 8, 800, 480),                       # 2,400 CPU-s over 8 CPUs: 300 s + buffers → 8 min
    ([WORK] * 40, 48_000, 8, 800, 3600),                     # capped at the pack walltime
    ([Waiting(1, 1, 1, 2**30, 2**30, 60, 0, 1)] * 3, 180, 3, 3072, 240),  # 3 one-CPU jobs: 3 CPUs, 3 GB
    ([Waiting(1, 4, 4, 2**30, 2**30, 900, 0, 1), WORK], 1200, 8, 2048, 1080),   # the longest job sets it
])
def test_a_packs_shape(works, cpu_s, cpus, mem_mb, walltime):
    shape = pack_shape(works, cpu_s, NODE, Caps(pack_walltime_s=3600))
    assert (shape.cpus_per_node, shape.mem_mb_per_node, shape.walltime_s, shape.nodes) == (cpus, mem_mb, walltime, 1)


def test_submission_packed_flag():
    assert not Submission("a", (1,)).packed


def test_a_packed_allocations_script_runs_one_worker_for_all_its_workflows(tmp_path):
    from torc_hpc.core.allocation import Shape
    from torc_hpc.slurm import script as scripts
    from torc_hpc.slurm.allocations import AllocationRequest, SubmitOptions, script_values

    req = AllocationRequest(scheduler=None, account="acct", partition="debug", shape=Shape(1, 8, 800, 480))
    args, values = script_values(3, 12, req, SubmitOptions(), tmp_path, "postgresql://alice@db/torc", (3, 7, 9))
    text = scripts.render(scripts.default_template(), values)
    assert "torc_hpc.cli.app worker --workflows 3,7,9 --slurm --idle-timeout=60" in text
    assert "--allocation-id=12" in text and "#SBATCH --job-name=torc_wf3_pack3" in text
    args, values = script_values(3, 12, req, SubmitOptions(), tmp_path, "postgresql://alice@db/torc")
    text = scripts.render(scripts.default_template(), values)
    assert "torc_hpc.cli.app worker 3 --slurm" in text and "#SBATCH --job-name=torc_wf3\n" in text
