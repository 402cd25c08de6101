"""GPU devices: which ones a worker may hand out, and which ones a job gets. Pure: the environment is a dict.

A worker's pool is the devices it was given: CUDA_VISIBLE_DEVICES (what Slurm sets with --gres/--gpus, already
renumbered inside the allocation's cgroup), else ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES (AMD), else
ZE_AFFINITY_MASK (Intel), else SLURM_STEP_GPUS / SLURM_JOB_GPUS (physical indices, when Slurm did not set a
visibility variable), else the count the worker was given (devices 0..N-1). A job asking for N GPUs gets N
distinct devices of the pool, the least used first, and gives them back when it ends: two jobs share a
device only when every device is already in use (a worker running with -j ignores requests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Where the pool comes from, in order. The first one set (and not "hide everything") wins.
POOL_SOURCES = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ZE_AFFINITY_MASK",
                "SLURM_STEP_GPUS", "SLURM_JOB_GPUS")
# Vendor variables set for a job besides CUDA_VISIBLE_DEVICES, when the worker's environment shows the
# machine uses them (the worker had one set) or the vendor's device node exists (AMD's /dev/kfd).
AMD_VARS = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
INTEL_VARS = ("ZE_AFFINITY_MASK",)


def _devices(value: str) -> tuple[str, ...]:
    """A visibility list: "0,1,3", "GPU-uuid,…", "0.0,0.1" (Intel tiles); Slurm's ranges "0-3,6" too."""
    out: list[str] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        if dash and lo.isdigit() and hi.isdigit() and int(lo) <= int(hi) and int(hi) - int(lo) < 4096:
            out.extend(str(i) for i in range(int(lo), int(hi) + 1))
        else:
            out.append(part)
    return tuple(dict.fromkeys(out))  # once each, in order


@dataclass(frozen=True)
class PoolSource:
    devices: tuple[str, ...]
    source: str            # the variable it came from, or "count"


def worker_pool(env: Mapping[str, str], count: int) -> PoolSource:
    """The devices a worker hands out. `count` is what the worker was told it has (Slurm's
    SLURM_GPUS_ON_NODE, or the local count): used when no variable lists the devices."""
    for name in POOL_SOURCES:
        value = env.get(name)
        if value is None or value.strip() in ("", "-1", "NoDevFiles"):
            continue
        devices = _devices(value)
        if devices:
            return PoolSource(devices, name)
    return PoolSource(tuple(str(i) for i in range(max(0, count))), "count")


def vendor_variables(env: Mapping[str, str], amd_device_present: bool) -> tuple[str, ...]:
    """The variables a job's devices go into: always CUDA_VISIBLE_DEVICES, plus AMD's and Intel's where the
    machine uses them."""
    names = ["CUDA_VISIBLE_DEVICES"]
    if amd_device_present or any(env.get(v) is not None for v in AMD_VARS):
        names += AMD_VARS
    if any(env.get(v) is not None for v in INTEL_VARS):
        names += INTEL_VARS
    return tuple(names)


@dataclass
class DevicePool:
    """Which devices are in use and by how many jobs (more than one only when every device is busy)."""

    devices: tuple[str, ...]
    users: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        for d in self.devices:
            self.users.setdefault(d, 0)

    def take(self, n: int) -> tuple[str, ...]:
        """n distinct devices, the least used first (pool order among equals); fewer only when the pool
        has fewer than n devices; () for n <= 0."""
        if n <= 0 or not self.devices:
            return ()
        order = sorted(range(len(self.devices)), key=lambda i: (self.users[self.devices[i]], i))
        chosen = tuple(self.devices[i] for i in sorted(order[:n]))
        for d in chosen:
            self.users[d] += 1
        return chosen

    def give_back(self, devices: tuple[str, ...]) -> None:
        for d in devices:
            if self.users.get(d, 0) > 0:
                self.users[d] -= 1

    def free(self) -> int:
        return sum(1 for d in self.devices if self.users[d] == 0)


def job_variables(devices: tuple[str, ...], names: tuple[str, ...]) -> dict[str, str]:
    """The environment a job gets for its devices."""
    value = ",".join(devices)
    return {name: value for name in names}
