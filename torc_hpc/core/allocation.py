"""Sizing allocations from the work that waits. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass


# Time between the allocation's start and the worker's first claim (Python start, squeue for the end time).
STARTUP_SLACK_S = 120


@dataclass(frozen=True)
class Waiting:
    """What is left to run for one scheduler (or for jobs with none)."""

    jobs: int
    cpus: int
    max_cpus: int
    memory_bytes: int
    max_memory_bytes: int
    max_runtime_s: int
    max_gpus: int = 0
    ready: int = 0


@dataclass(frozen=True)
class Shape:
    nodes: int
    cpus_per_node: int
    mem_mb_per_node: int
    walltime_s: int
    gpus_per_node: int = 0


def derive_shape(w: Waiting, *, node_cpus: int, node_mem_mb: int, allocations: int, buffer_s: int,
                 max_walltime_s: int | None = None) -> Shape:
    """One node per allocation, big enough for the largest job and for a fair share of all of them,
    never more than a node has; the walltime fits the longest job plus the worker's buffer."""
    allocations = max(1, allocations)
    cpus = max(w.max_cpus, math.ceil(w.cpus / allocations))
    cpus = max(1, min(cpus, node_cpus))
    mem_mb = max(math.ceil(w.max_memory_bytes / 2**20), math.ceil(w.memory_bytes / allocations / 2**20))
    mem_mb = max(1, min(mem_mb, node_mem_mb))
    walltime = w.max_runtime_s + buffer_s + STARTUP_SLACK_S
    walltime = max(60, math.ceil(walltime / 60) * 60)
    if max_walltime_s:
        walltime = min(walltime, max_walltime_s)
    return Shape(nodes=1, cpus_per_node=cpus, mem_mb_per_node=mem_mb, walltime_s=walltime,
                 gpus_per_node=w.max_gpus)


def fits(w: Waiting, shape: Shape, buffer_s: int) -> list[str]:
    """Why jobs like these could never run in an allocation of this shape (empty: they can)."""
    problems = []
    if w.max_cpus > shape.cpus_per_node:
        problems.append(f"a job needs {w.max_cpus} CPUs, the allocation has {shape.cpus_per_node}")
    if w.max_memory_bytes > shape.mem_mb_per_node * 2**20:
        problems.append(f"a job needs {w.max_memory_bytes // 2**20} MB, the allocation has {shape.mem_mb_per_node} MB")
    if w.max_runtime_s > shape.walltime_s - buffer_s:
        problems.append(f"a job needs {w.max_runtime_s}s of runtime, the allocation gives "
                        f"{shape.walltime_s - buffer_s}s after the worker's {buffer_s}s buffer")
    if w.max_gpus > shape.gpus_per_node:
        problems.append(f"a job needs {w.max_gpus} GPUs, the allocation has {shape.gpus_per_node}")
    return problems
