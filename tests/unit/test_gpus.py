"""GPU pools and the device allocator (core.gpus): tables."""

import pytest

from torc_hpc.core.gpus import DevicePool, job_variables, vendor_variables, worker_pool


@pytest.mark.parametrize("env,count,devices,source", [
    ({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 0, ("0", "1", "2", "3"), "CUDA_VISIBLE_DEVICES"),
    ({"CUDA_VISIBLE_DEVICES": "2,3", "SLURM_JOB_GPUS": "6,7"}, 8, ("2", "3"), "CUDA_VISIBLE_DEVICES"),
    ({"CUDA_VISIBLE_DEVICES": "GPU-a1,GPU-b2"}, 0, ("GPU-a1", "GPU-b2"), "CUDA_VISIBLE_DEVICES"),
    ({"CUDA_VISIBLE_DEVICES": "", "SLURM_STEP_GPUS": "4,5"}, 0, ("4", "5"), "SLURM_STEP_GPUS"),
    ({"CUDA_VISIBLE_DEVICES": "-1"}, 2, ("0", "1"), "count"),
    ({"SLURM_JOB_GPUS": "0-2,6"}, 0, ("0", "1", "2", "6"), "SLURM_JOB_GPUS"),
    ({"SLURM_STEP_GPUS": "1", "SLURM_JOB_GPUS": "0,1"}, 0, ("1",), "SLURM_STEP_GPUS"),
    ({"ROCR_VISIBLE_DEVICES": "0,1"}, 0, ("0", "1"), "ROCR_VISIBLE_DEVICES"),
    ({"ZE_AFFINITY_MASK": "0.0,0.1"}, 0, ("0.0", "0.1"), "ZE_AFFINITY_MASK"),
    ({"CUDA_VISIBLE_DEVICES": "1,1,2"}, 0, ("1", "2"), "CUDA_VISIBLE_DEVICES"),
    ({}, 3, ("0", "1", "2"), "count"),
    ({}, 0, (), "count"),
])
def test_worker_pool(env, count, devices, source):
    pool = worker_pool(env, count)
    assert pool.devices == devices and pool.source == source


def test_distinct_devices_least_used_first_and_returned():
    pool = DevicePool(("0", "1", "2", "3"))
    a = pool.take(2)
    b = pool.take(1)
    c = pool.take(1)
    assert a == ("0", "1") and b == ("2",) and c == ("3",)
    assert pool.free() == 0
    pool.give_back(a)
    assert pool.take(2) == ("0", "1")          # what came back is handed out again
    pool.give_back(b)
    assert pool.take(1) == ("2",)


@pytest.mark.parametrize("devices,busy,n,expected", [
    (("0", "1", "2", "3"), [], 4, ("0", "1", "2", "3")),
    (("0", "1", "2", "3"), [("1",)], 2, ("0", "2")),
    (("0", "1", "2", "3"), [("0", "1", "2")], 2, ("0", "3")),        # one free: it, then the least used
    (("0", "1"), [("0", "1")], 1, ("0",)),                             # all busy (-j): share, pool order
    (("0", "1"), [("0", "1"), ("0",)], 1, ("1",)),                     # the less shared one
    (("0", "1"), [], 3, ("0", "1")),                                   # never a device twice in one job
    (("0", "1"), [], 0, ()),
    ((), [], 2, ()),
])
def test_take_table(devices, busy, n, expected):
    pool = DevicePool(devices)
    for d in busy:
        for x in d:
            pool.users[x] += 1
    got = pool.take(n)
    assert got == expected
    assert len(set(got)) == len(got)


def test_never_shares_while_free_devices_remain():
    """Random take/give sequences: a device handed to a second holder only when none is free."""
    import random

    rng = random.Random(7)
    for _ in range(200):
        pool = DevicePool(tuple(str(i) for i in range(rng.randint(1, 8))))
        held = []
        for _ in range(50):
            if held and rng.random() < 0.4:
                pool.give_back(held.pop(rng.randrange(len(held))))
                continue
            free_before = pool.free()
            got = pool.take(rng.randint(1, 3))
            shared = [d for d in got if pool.users[d] > 1]
            assert not shared or free_before < len(got), (got, free_before)
            assert len(set(got)) == len(got)
            held.append(got)


@pytest.mark.parametrize("env,amd,expected", [
    ({}, False, ("CUDA_VISIBLE_DEVICES",)),
    ({}, True, ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")),
    ({"HIP_VISIBLE_DEVICES": "0"}, False, ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")),
    ({"ZE_AFFINITY_MASK": "0"}, False, ("CUDA_VISIBLE_DEVICES", "ZE_AFFINITY_MASK")),
])
def test_vendor_variables(env, amd, expected):
    assert vendor_variables(env, amd) == expected


def test_job_variables():
    assert job_variables(("2", "5"), ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")) == {
        "CUDA_VISIBLE_DEVICES": "2,5", "HIP_VISIBLE_DEVICES": "2,5"}
