"""The resource monitor: a thread sampling the running jobs' process groups (CPU %, RSS, process count).

Exists only when the workflow asks for monitoring (resource_monitor.jobs.enabled) or memory limits
(execution_config.limit_resources): otherwise no thread and no per-job cost. Each tick reads /proc/<pid>/stat
of every process once (one pass for all jobs, whatever their number) and adds each process to the job whose
process group it belongs to. A job over its memory request (limit_resources) is handed to the main thread to
kill: only the main thread signals children, because only it knows a pid has not been reaped (and reused).
Samples of long jobs are written every flush interval (a chunk per flush) through `submit`; the rest and the
summary go with the attempt's result.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from torc_hpc.core.monitoring import CHUNK_MAX_SAMPLES, MonitorSettings, Samples, over_memory

log = logging.getLogger("torc.worker")

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Track:
    """One running job as the monitor sees it."""

    pgid: int
    job: dict
    settings: MonitorSettings                        # its workflow's (a worker may serve several)
    samples: Samples
    last_mono: float                                 # when its CPU was last accounted
    due: float                                       # when its next sample is due (monotonic)
    cpu_by_pid: dict[int, tuple[int, int]] = field(default_factory=dict)   # pid → (starttime, ticks)
    over_memory: int | None = None                   # the RSS that exceeded the request (kill asked)


def high_water(pid: int) -> int:
    """A process's own peak RSS since its exec (VmHWM; unlike ru_maxrss it does not carry the spawning
    worker's memory), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def read_processes() -> dict[int, list[tuple[int, int, int, int]]]:
    """pgid → [(pid, starttime, cpu ticks incl. reaped children, rss bytes)] for every live process."""
    groups: dict[int, list] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return groups
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue   # ended meanwhile
        rest = data[data.rfind(b")") + 2:].split()
        if len(rest) < 22 or rest[0] == b"Z":
            continue
        ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        groups.setdefault(int(rest[2]), []).append((int(name), int(rest[19]), ticks, int(rest[21]) * _PAGE))
    return groups


class Monitor(threading.Thread):
    def __init__(self, interval_s: float, wake: Callable[[], None], submit: Callable[[list], None]):
        super().__init__(name="torc-monitor", daemon=True)
        self.interval_s = interval_s        # the shortest interval of the workflows served
        self._wake = wake
        self._submit = submit
        self._lock = threading.Lock()
        self._tracks: dict[int, Track] = {}
        self._halt = threading.Event()
        self.kills: deque[int] = deque()    # pgids the main thread should kill (over their memory request)

    # ---- main thread ----------------------------------------------------------------------------

    def add(self, pid: int, job: dict, settings: MonitorSettings) -> None:
        now = time.monotonic()
        with self._lock:
            self._tracks[pid] = Track(pid, job, settings, Samples(settings.interval_s), now, now + settings.interval_s)

    def faster(self, interval_s: float) -> None:
        """Another served workflow samples more often: tick at its interval too."""
        self.interval_s = min(self.interval_s, interval_s)

    def remove(self, pid: int) -> Track | None:
        with self._lock:
            return self._tracks.pop(pid, None)

    def over_memory(self, pid: int) -> int | None:
        with self._lock:
            t = self._tracks.get(pid)
            return t.over_memory if t else None

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    # ---- the thread -----------------------------------------------------------------------------

    def run(self) -> None:
        next_at = time.monotonic() + self.interval_s
        while not self._halt.wait(max(0.0, next_at - time.monotonic())):
            next_at += self.interval_s
            if next_at < time.monotonic():        # fell behind (suspended, overloaded): no burst of catch-up
                next_at = time.monotonic() + self.interval_s
            try:
                self.sample_once()
            except Exception:  # noqa: BLE001 - monitoring must never take the worker down
                log.warning("resource monitor: a sample failed", exc_info=True)

    def sample_once(self) -> None:
        with self._lock:
            if not self._tracks:
                return
        groups = read_processes()
        now, mono = time.time(), time.monotonic()
        flush, kill = [], False
        with self._lock:
            for pgid, t in self._tracks.items():
                if mono + 0.05 < t.due:          # its workflow samples less often than the fastest served
                    continue
                t.due = max(t.due + t.settings.interval_s, mono)
                procs = groups.get(pgid, ())
                ticks, rss, hwm, seen = 0, 0, 0, {}
                for pid, start, total, r in procs:
                    before = t.cpu_by_pid.get(pid)
                    ticks += total - before[1] if before and before[0] == start else total
                    rss += r
                    hwm = max(hwm, high_water(pid))
                    seen[pid] = (start, total)
                t.cpu_by_pid = seen
                elapsed = max(mono - t.last_mono, 1e-3)
                t.last_mono = mono
                cpu = 100.0 * ticks / _TICK / elapsed
                t.samples.add(now, cpu, rss, len(procs), hwm)
                if t.settings.limit_memory and t.over_memory is None and over_memory(rss, t.job["memory_bytes"]):
                    t.over_memory = rss
                    self.kills.append(pgid)
                    kill = True
                if t.settings.series and (t.samples.pending() * t.settings.interval_s >= t.settings.flush_s
                                          or t.samples.pending() >= CHUNK_MAX_SAMPLES):
                    flush.append(self.chunk_step(t))
        if flush:
            self._submit(flush)
        if kill:
            self._wake()

    def chunk_step(self, t: Track) -> tuple[str, dict] | None:
        chunk = t.samples.take_chunk(t.settings.metrics)
        if chunk is None:
            return None
        job = t.job
        return ("insert_resource_samples", {
            "workflow_id": job["workflow_id"], "job_id": job["id"], "run_id": job["run_id"],
            "attempt_id": job["attempt_id"], **chunk})
