"""`torc watch --recover`: classify failures as out-of-memory or timeout and size the retry. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from torc_hpc.core.states import ExitCode

NEAR = 0.9  # peak memory or runtime within 10 % of the request counts as having hit it


class Cause(StrEnum):
    OUT_OF_MEMORY = "out_of_memory"
    TIMEOUT = "timeout"


def classify(*, return_code: int | None, peak_memory_bytes: int | None, memory_bytes: int,
             exec_time_s: float | None, runtime_s: int) -> Cause | None:
    if return_code == ExitCode.OUT_OF_MEMORY:
        return Cause.OUT_OF_MEMORY
    if return_code == ExitCode.WALLTIME:
        return Cause.TIMEOUT
    if peak_memory_bytes and peak_memory_bytes >= NEAR * memory_bytes:
        return Cause.OUT_OF_MEMORY
    if exec_time_s and exec_time_s >= NEAR * runtime_s:
        return Cause.TIMEOUT
    return None


@dataclass(frozen=True)
class Adjustment:
    memory_bytes: int
    runtime_s: int


def adjust(cause: Cause, *, memory_bytes: int, runtime_s: int, memory_multiplier: float,
           runtime_multiplier: float, max_memory_bytes: int | None = None,
           max_runtime_s: int | None = None) -> Adjustment | None:
    """New requests for a retry; None when the limit (a node's memory, the partition's time) is reached."""
    mem, rt = memory_bytes, runtime_s
    if cause is Cause.OUT_OF_MEMORY:
        mem = math.ceil(memory_bytes * memory_multiplier / 2**20) * 2**20
        if max_memory_bytes and mem > max_memory_bytes:
            if memory_bytes >= max_memory_bytes:
                return None
            mem = max_memory_bytes
    else:
        rt = math.ceil(runtime_s * runtime_multiplier)
        if max_runtime_s and rt > max_runtime_s:
            if runtime_s >= max_runtime_s:
                return None
            rt = max_runtime_s
    return Adjustment(mem, rt)
