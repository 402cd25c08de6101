"""Resource monitoring of jobs (Torc's resource_monitor, and execution_config.limit_resources). Pure: what to
sample and how often, a job's summary from its samples, when a job is over its memory request, and the chunks
its time series is stored in. The sampling itself is worker/monitor.py.

What is measured, per job: its process group (the job's processes unless one calls setsid): CPU % (100 = one
core busy; from utime+stime of each process, and of the children they reaped, between two samples), resident
memory (the sum of the RSS of the group's processes) and the number of processes. The summary keeps the peak
and the average; the average CPU % comes from the attempt's exact CPU time (getrusage) over its wall time, not
from the samples, so short bursts between samples still count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torc_hpc.core.states import ExitCode

METRICS = ("cpu_percent", "memory_bytes", "num_processes")
LIMIT_INTERVAL_S = 2.0       # sampling for limit_resources alone (no resource_monitor): how late a kill may be
CHUNK_MAX_SAMPLES = 4096     # a stored chunk never holds more (its arrays stay a few tens of KB)


@dataclass(frozen=True)
class MonitorSettings:
    interval_s: float            # seconds between samples
    flush_s: float               # a running job's samples are written at least this often (time series)
    summary: bool                # write each attempt's summary (resource_monitor.jobs.enabled)
    series: bool                 # also its samples (granularity time_series)
    metrics: frozenset[str]      # which series to keep
    limit_memory: bool           # kill a job whose sampled RSS exceeds its memory request
    oom_exit_code: int


def settings(resource_monitor: dict | None, execution_config: dict | None) -> MonitorSettings | None:
    """What the worker samples for a workflow, from its stored resource_monitor and execution_config (both as
    the spec layer stored them, defaults filled in). None: nothing to sample (no thread, no cost per job).
    limit_resources is Torc's direct-mode default (true) only when the spec has an execution_config at all."""
    rm = resource_monitor or {}
    jobs = rm.get("jobs") or {}
    summary = bool(jobs.get("enabled"))
    ec = execution_config
    limit = bool(ec is not None and ec.get("limit_resources", True))
    if not (summary or limit):
        return None
    interval = float(rm.get("sample_interval_seconds") or 10) if summary else LIMIT_INTERVAL_S
    return MonitorSettings(
        interval_s=max(interval, 0.2), flush_s=float(rm.get("flush_interval_seconds") or 300), summary=summary,
        series=summary and jobs.get("granularity") == "time_series",
        metrics=frozenset(rm.get("metrics") or METRICS), limit_memory=limit,
        oom_exit_code=int((ec or {}).get("oom_exit_code", ExitCode.OUT_OF_MEMORY)))


def over_memory(rss_bytes: int, request_bytes: int | None) -> bool:
    """limit_resources: a job is killed when its sampled RSS exceeds its memory request (none: no limit)."""
    return bool(request_bytes) and request_bytes > 0 and rss_bytes > request_bytes


@dataclass
class Samples:
    """One attempt's samples so far (the part not yet written) and its running summary."""

    interval_s: float
    cpu: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    procs: list[int] = field(default_factory=list)
    first_at: float | None = None       # epoch seconds of the first unwritten sample
    chunk: int = 0                      # chunks written so far
    count: int = 0
    cpu_peak: float | None = None
    rss_peak: int | None = None
    rss_sum: int = 0
    procs_peak: int | None = None
    own_peak: int | None = None         # the largest process's own peak (VmHWM), as /usr/bin/time reports

    def add(self, at: float, cpu_percent: float, rss_bytes: int, processes: int, high_water: int = 0) -> None:
        if self.first_at is None:
            self.first_at = at
        self.cpu.append(cpu_percent)
        self.rss.append(rss_bytes)
        self.procs.append(processes)
        self.count += 1
        self.cpu_peak = cpu_percent if self.cpu_peak is None else max(self.cpu_peak, cpu_percent)
        self.rss_peak = rss_bytes if self.rss_peak is None else max(self.rss_peak, rss_bytes)
        self.rss_sum += rss_bytes
        self.procs_peak = processes if self.procs_peak is None else max(self.procs_peak, processes)
        if high_water:
            self.own_peak = high_water if self.own_peak is None else max(self.own_peak, high_water)

    def pending(self) -> int:
        return len(self.cpu)

    def take_chunk(self, metrics: frozenset[str]) -> dict | None:
        """The unwritten samples as one stored chunk (and forget them), or None when there are none."""
        if not self.cpu:
            return None
        chunk = {"chunk": self.chunk, "first_at": self.first_at, "interval_ms": int(round(self.interval_s * 1000)),
                 "cpu_percent": [round(c, 1) for c in self.cpu] if "cpu_percent" in metrics else None,
                 "memory_kib": [r // 1024 for r in self.rss] if "memory_bytes" in metrics else None,
                 "processes": self.procs if "num_processes" in metrics else None}
        self.chunk += 1
        self.cpu, self.rss, self.procs, self.first_at = [], [], [], None
        return chunk


def summarize(s: Samples, cpu_time_s: float | None, exec_time_s: float | None,
              peak_memory_bytes: int | None) -> dict:
    """An attempt's summary row. Average CPU % is exact (CPU time over wall time); peak memory is the job's own
    peak when known (core.peak_memory), else the sampled one."""
    avg_cpu = (100.0 * cpu_time_s / exec_time_s) if cpu_time_s is not None and exec_time_s else None
    peak_mem = max(x for x in (peak_memory_bytes, s.rss_peak) if x is not None) \
        if peak_memory_bytes is not None or s.rss_peak is not None else None
    return {"samples": s.count, "interval_s": s.interval_s,
            "cpu_percent_peak": round(s.cpu_peak, 1) if s.cpu_peak is not None else None,
            "cpu_percent_avg": round(avg_cpu, 1) if avg_cpu is not None else None,
            "memory_peak_bytes": peak_mem,
            "memory_avg_bytes": s.rss_sum // s.count if s.count else None,
            "processes_peak": s.procs_peak}
