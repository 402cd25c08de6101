"""Slurm job states reduced to torc's few, and the return code an allocation's end implies for the
jobs it left running. Pure tables."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from torc_hpc.core.states import ExitCode


class AllocationState(StrEnum):
    PENDING = "pending"      # queued
    RUNNING = "running"
    ENDED = "ended"          # finished, whatever the cause (sacct_state says which)
    UNKNOWN = "unknown"      # neither squeue nor sacct knows it (yet); ended after a grace period


_ACTIVE = {
    "PENDING": AllocationState.PENDING, "REQUEUED": AllocationState.PENDING,
    "REQUEUE_FED": AllocationState.PENDING, "REQUEUE_HOLD": AllocationState.PENDING,
    "RESV_DEL_HOLD": AllocationState.PENDING, "CONFIGURING": AllocationState.RUNNING,
    "RUNNING": AllocationState.RUNNING, "COMPLETING": AllocationState.RUNNING,
    "SUSPENDED": AllocationState.RUNNING, "STAGE_OUT": AllocationState.RUNNING,
    "SIGNALING": AllocationState.RUNNING, "RESIZING": AllocationState.RUNNING,
    "STOPPED": AllocationState.RUNNING,
}

# Final sacct state → return code for jobs still 'running' in torc when the allocation ended.
# A pilot ending at its walltime is not an error of the allocation, but it is one for the jobs it cut off.
_END_CODES = {
    "TIMEOUT": ExitCode.WALLTIME,
    "CANCELLED": ExitCode.CANCELED,
    "OUT_OF_MEMORY": ExitCode.OUT_OF_MEMORY,
    "NODE_FAIL": ExitCode.NODE_FAIL,
    "BOOT_FAIL": ExitCode.NODE_FAIL,
    "PREEMPTED": ExitCode.SLURM_FAILED,
    "DEADLINE": ExitCode.SLURM_FAILED,
    "FAILED": ExitCode.SLURM_FAILED,
    "COMPLETED": ExitCode.WORKER_LOST,   # the allocation ended normally yet left jobs running: the worker died
    "REVOKED": ExitCode.SLURM_FAILED,
    "SPECIAL_EXIT": ExitCode.SLURM_FAILED,
}


def base_state(raw: str) -> str:
    """'CANCELLED by 0' → 'CANCELLED'; 'RUNNING+' → 'RUNNING'."""
    return raw.strip().split(" ")[0].rstrip("+").upper()


def allocation_state(raw: str) -> AllocationState:
    s = base_state(raw)
    if not s:
        return AllocationState.UNKNOWN
    return _ACTIVE.get(s, AllocationState.ENDED)


# An allocation that neither squeue nor sacct has known for this long is ended, cause unknown (no accounting
# on the site, records purged, a rebuilt cluster). Long enough for slurmdbd to catch up after a restart and
# for a cron watcher to see it unknown on two runs; a site changes it with TORC_WATCH_UNKNOWN_GRACE.
UNKNOWN_GRACE_S = 600


def vanished(unknown_since: datetime | None, now: datetime, grace_s: float = UNKNOWN_GRACE_S) -> bool:
    """Whether an allocation unknown to squeue and sacct since `unknown_since` is to be ended now: it has
    been unknown, on every check, for at least the grace period. (One unknown answer proves nothing: a
    controller restart or a lagging slurmdbd gives one.)"""
    return unknown_since is not None and (now - unknown_since).total_seconds() >= grace_s


def end_return_code(raw_state: str, exit_code: str = "0:0") -> int:
    """Return code for jobs orphaned by an allocation that ended in `raw_state` with sacct's ExitCode.

    FAILED with signal 9 is what OverMemoryKill leaves (sacct shows FAILED 0:9): out of memory. No state
    at all (the allocation vanished: no scheduler knows how it ended) is the worker-lost code, 154.
    """
    s = base_state(raw_state)
    if not s:
        return int(ExitCode.WORKER_LOST)
    if s == "FAILED" and _signal(exit_code) == 9:
        return ExitCode.OUT_OF_MEMORY
    return int(_END_CODES.get(s, ExitCode.SLURM_FAILED))


def _signal(exit_code: str) -> int:
    try:
        return int(exit_code.split(":")[1])
    except (IndexError, ValueError):
        return 0
