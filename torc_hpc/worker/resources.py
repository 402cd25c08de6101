"""What a worker may use: this machine's CPUs, memory and GPUs (Slurm allocations add their limits)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from torc_hpc.core.gpus import worker_pool


@dataclass(frozen=True)
class Resources:
    cpus: int
    memory_bytes: int
    gpus: int = 0

    def fits(self, cpus: int, memory: int, gpus: int) -> bool:
        return cpus <= self.cpus and memory <= self.memory_bytes and gpus <= self.gpus


def local_resources(gpus: int | None = None) -> Resources:
    """This machine: its CPUs (affinity), memory, and GPUs: `gpus` when given (`--gpus`), else the devices a
    visibility variable lists (CUDA_VISIBLE_DEVICES, AMD's, Intel's or Slurm's; see core.gpus)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if gpus is None:
        pool = worker_pool(os.environ, 0)
        gpus = len(pool.devices)
    return Resources(cpus=cpus, memory_bytes=psutil.virtual_memory().total, gpus=gpus)


def slurm_resources(env: dict | None = None, gpus: int | None = None) -> Resources:
    """What this node of the allocation gives the worker, from Slurm's environment."""
    env = os.environ if env is None else env
    gpus_given = gpus
    base = local_resources(gpus)
    cpus = int(env.get("SLURM_CPUS_ON_NODE") or base.cpus)
    if env.get("SLURM_MEM_PER_NODE"):
        mem = int(env["SLURM_MEM_PER_NODE"]) * 2**20
    elif env.get("SLURM_MEM_PER_CPU"):
        mem = int(env["SLURM_MEM_PER_CPU"]) * 2**20 * cpus
    else:
        mem = base.memory_bytes
    gpus = base.gpus
    if env.get("SLURM_GPUS_ON_NODE") and gpus_given is None:
        gpus = int(env["SLURM_GPUS_ON_NODE"])
    return Resources(cpus=cpus, memory_bytes=mem, gpus=gpus)
