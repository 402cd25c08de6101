"""What a worker may use: this machine's CPUs, memory and GPUs (Slurm allocations add their limits)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Resources:
    cpus: int
    memory_bytes: int
    gpus: int = 0

    def fits(self, cpus: int, memory: int, gpus: int) -> bool:
        return cpus <= self.cpus and memory <= self.memory_bytes and gpus <= self.gpus


def local_resources() -> Resources:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        gpus = len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return Resources(cpus=cpus, memory_bytes=psutil.virtual_memory().total, gpus=gpus)


def slurm_resources(env: dict | None = None) -> Resources:
    """What this node of the allocation gives the worker, from Slurm's environment."""
    env = os.environ if env is None else env
    base = local_resources()
    cpus = int(env.get("SLURM_CPUS_ON_NODE") or base.cpus)
    if env.get("SLURM_MEM_PER_NODE"):
        mem = int(env["SLURM_MEM_PER_NODE"]) * 2**20
    elif env.get("SLURM_MEM_PER_CPU"):
        mem = int(env["SLURM_MEM_PER_CPU"]) * 2**20 * cpus
    else:
        mem = base.memory_bytes
    gpus = base.gpus
    if env.get("SLURM_GPUS_ON_NODE"):
        gpus = int(env["SLURM_GPUS_ON_NODE"])
    return Resources(cpus=cpus, memory_bytes=mem, gpus=gpus)
