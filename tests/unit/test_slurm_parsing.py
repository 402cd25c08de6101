"""squeue/sacct parsing on output captured from Slurm 22.05, and the state tables."""

import socket
from pathlib import Path

import pytest

from torc_hpc.core.allocation import Shape, Waiting, derive_shape, fits
from datetime import datetime, timedelta, timezone

from torc_hpc.core.slurm_states import AllocationState, allocation_state, base_state, end_return_code, vanished
from torc_hpc.slurm.allocations import database_reachability_warning
from torc_hpc.slurm.parse import parse_sacct, parse_sbatch_parsable, parse_squeue

CAPTURED = Path(__file__).resolve().parents[1] / "slurm" / "captured"


def test_parse_sacct_with_steps_keeps_allocations_only():
    rows = parse_sacct((CAPTURED / "sacct_with_steps.txt").read_text())
    assert sorted(rows) == ["1", "2", "3", "4"]
    assert rows["2"].state == "TIMEOUT"
    assert rows["3"].state == "CANCELLED by 0" and rows["3"].start_time is None
    assert rows["4"].state == "FAILED" and rows["4"].exit_code == "0:9"
    assert rows["1"].end_time is not None and rows["1"].end_time > rows["1"].start_time


def test_parse_squeue():
    rows = parse_squeue((CAPTURED / "squeue.txt").read_text())
    assert rows["3"].state == "PENDING" and rows["3"].end_time is None and rows["3"].reason == "Resources"
    assert rows["2"].state == "RUNNING" and rows["2"].end_time is not None
    assert (rows["2"].end_time - rows["2"].start_time).total_seconds() == 60


def test_captured_states_map_to_return_codes():
    rows = parse_sacct((CAPTURED / "sacct_allocations.txt").read_text())
    codes = {k: end_return_code(r.state, r.exit_code) for k, r in rows.items()}
    assert codes == {"1": 154, "2": 152, "3": 143, "4": 137}


@pytest.mark.parametrize("raw,state", [
    ("PENDING", AllocationState.PENDING), ("RUNNING", AllocationState.RUNNING),
    ("COMPLETING", AllocationState.RUNNING), ("REQUEUED", AllocationState.PENDING),
    ("CANCELLED by 1000", AllocationState.ENDED), ("TIMEOUT", AllocationState.ENDED),
    ("NODE_FAIL", AllocationState.ENDED), ("", AllocationState.UNKNOWN), ("RUNNING+", AllocationState.RUNNING),
])
def test_allocation_state(raw, state):
    assert allocation_state(raw) is state


@pytest.mark.parametrize("raw,exit_code,rc", [
    ("TIMEOUT", "0:0", 152), ("CANCELLED by 0", "0:15", 143), ("CANCELLED", "0:0", 143),
    ("OUT_OF_MEMORY", "0:125", 137), ("FAILED", "0:9", 137), ("FAILED", "1:0", 155),
    ("NODE_FAIL", "0:0", 153), ("BOOT_FAIL", "0:0", 153), ("PREEMPTED", "0:0", 155),
    ("DEADLINE", "0:0", 155), ("COMPLETED", "0:0", 154), ("SOMETHING_NEW", "0:0", 155),
    ("", "0:0", 154),   # vanished: neither squeue nor sacct knows how it ended
])
def test_end_return_code(raw, exit_code, rc):
    assert end_return_code(raw, exit_code) == rc


_T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("unknown_for_s,grace_s,ended", [
    (None, 600, False),     # known at the last check
    (0, 600, False),        # first unknown answer: a lagging slurmdbd or a controller restart gives one
    (599, 600, False),
    (600, 600, True),       # unknown on every check for the whole grace period
    (86400, 600, True),
    (0, 0, True),           # a site that wants no grace
])
def test_an_allocation_unknown_past_the_grace_period_has_vanished(unknown_for_s, grace_s, ended):
    since = None if unknown_for_s is None else _T0
    now = _T0 + timedelta(seconds=unknown_for_s or 0)
    assert vanished(since, now, grace_s) is ended


def test_base_state():
    assert base_state("CANCELLED by 0") == "CANCELLED"


def test_sbatch_parsable():
    assert parse_sbatch_parsable("1234\n") == "1234"
    assert parse_sbatch_parsable("1234;cluster\n") == "1234"
    with pytest.raises(ValueError):
        parse_sbatch_parsable("sbatch: error")


W = Waiting(jobs=10, cpus=10, max_cpus=2, memory_bytes=10 * 2**30, max_memory_bytes=2**30, max_runtime_s=1800)


@pytest.mark.parametrize("allocs,node_cpus,node_mem,expect_cpus,expect_mem", [
    (1, 64, 256000, 10, 10240),   # everything in one allocation
    (5, 64, 256000, 2, 2048),     # a fair share, never below the largest job
    (1, 4, 8192, 4, 8192),        # capped by the node
    (100, 64, 256000, 2, 1024),   # many allocations: the largest job sets the floor
])
def test_derive_shape(allocs, node_cpus, node_mem, expect_cpus, expect_mem):
    s = derive_shape(W, node_cpus=node_cpus, node_mem_mb=node_mem, allocations=allocs, buffer_s=60)
    assert (s.cpus_per_node, s.mem_mb_per_node) == (expect_cpus, expect_mem)
    assert s.walltime_s >= 1800 + 60 and s.walltime_s % 60 == 0
    assert fits(W, s, 60) == []


def test_fits_explains_what_does_not_fit():
    small = Shape(nodes=1, cpus_per_node=1, mem_mb_per_node=512, walltime_s=600)
    problems = fits(W, small, 60)
    assert len(problems) == 3 and any("1800s" in p for p in problems)


def test_database_reachability_warning():
    here = socket.gethostname().split(".")[0]
    assert database_reachability_warning("postgresql://u@127.0.0.1/db", here) is None  # all nodes are this host
    assert database_reachability_warning("postgresql://u@localhost/db", "node[01-10]")
    assert database_reachability_warning("postgresql://postgres:@/postgres?host=/tmp/x", "node[01-10]")
    assert database_reachability_warning("postgresql://u@db.cluster.org/db", "node[01-10]") is None
