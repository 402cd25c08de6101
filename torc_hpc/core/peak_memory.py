"""A job's own peak memory, from what getrusage tells the worker (issue 9 item 10). Pure.

Why the raw number is wrong for small jobs: the worker starts jobs with posix_spawn, i.e. vfork + exec. At
exec, Linux records the high-water mark of the memory the child is leaving into the child's ru_maxrss
(fs/exec.c: exec_mmap → setmax_mm_hiwater_rss(&signal->maxrss, old_mm)); after vfork that memory is the
worker's own. So a job's ru_maxrss is max(the worker's peak RSS when the job started, the job's own peak):
`true` reports the worker's ~57 MB where /usr/bin/time (a 1 MB parent) says ~1 MB. A fork instead of vfork
changes nothing (the child's copy has the worker's RSS), and a per-job cgroup would need the child to join it
before exec (a trampoline exec per job: doubles the cost of a short job) or cgroup delegation, which Slurm
nodes do not give users.

The correction: the worker's peak (getrusage(RUSAGE_SELF).ru_maxrss, read after the job ended, which is at
least what it was at the job's exec) bounds the pollution. A job whose ru_maxrss is above it peaked above
the worker: the number is its own (exact, the same quantity /usr/bin/time reports). A job at or below it
peaked somewhere under the worker's footprint and ru_maxrss says nothing more: its peak is the one the
resource monitor sampled (process-group RSS) when the job was monitored, else unknown (NULL; `watch
--recover` then does not call it near its memory request, which it is not unless the request is below the
worker's own ~60 MB).
"""

from __future__ import annotations


def own_peak(ru_maxrss_bytes: int | None, worker_peak_bytes: int, sampled_peak_bytes: int | None = None) -> int | None:
    """The job's own peak resident memory in bytes, or None when it cannot be known (see the module doc)."""
    if ru_maxrss_bytes is None:
        return sampled_peak_bytes
    if ru_maxrss_bytes > worker_peak_bytes:
        return max(ru_maxrss_bytes, sampled_peak_bytes or 0)
    return sampled_peak_bytes


def source(ru_maxrss_bytes: int | None, worker_peak_bytes: int, sampled_peak_bytes: int | None = None) -> str:
    """Where own_peak's answer came from: rusage, sampled or unknown."""
    if ru_maxrss_bytes is not None and ru_maxrss_bytes > worker_peak_bytes:
        return "rusage"
    return "sampled" if sampled_peak_bytes is not None else "unknown"
