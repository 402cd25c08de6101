"""The start journal: which of a dead worker's claimed jobs it really started. Pure: lines in, facts out.

A worker claims jobs ahead of its slots (its prefetch), so `running` in the database means "claimed". Just
before it starts a job it appends `S job run attempt` to its journal (one write(), no fsync: the page
cache survives a kill -9 of the worker); when it cannot record an attempt's end in the database (it gave
up on a database that stayed away) it appends `E job run attempt return_code killed`. After the worker
died, the reconciler reads the journal: a held job with no `S` line never started and goes back to
ready (same attempt, no result, no retry used, no cascade); a started one is recorded as before, with
the return code of its `E` line when there is one.

The file is input from another process (and, for a root cron watcher, from another Unix user): lines that
do not parse are counted and ignored, numbers are bounded, and nothing in it is ever executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Key = tuple[int, int, int]   # (job_id, run_id, attempt_id)

_MAX_ID = 2**63 - 1


def start_line(job_id: int, run_id: int, attempt_id: int) -> bytes:
    return b"S %d %d %d\n" % (job_id, run_id, attempt_id)


def end_line(job_id: int, run_id: int, attempt_id: int, return_code: int, killed: bool) -> bytes:
    return b"E %d %d %d %d %d\n" % (job_id, run_id, attempt_id, return_code, 1 if killed else 0)


@dataclass
class Journal:
    starts: set[Key] = field(default_factory=set)
    ends: dict[Key, tuple[int, bool]] = field(default_factory=dict)   # key → (return code, killed)
    malformed: int = 0


def _ints(words: list[bytes]) -> list[int] | None:
    try:
        values = [int(w) for w in words]
    except ValueError:
        return None
    return values if all(-_MAX_ID <= v <= _MAX_ID for v in values) else None


def parse_journal(data: bytes, wanted: set[int] | None = None, into: Journal | None = None) -> Journal:
    """Facts about the jobs in `wanted` (all when None). A last line without its newline was cut by a
    crash mid-write (or by a bounded read) and is ignored."""
    j = into or Journal()
    lines = data.split(b"\n")
    for line in lines[:-1]:
        words = line.split()
        if not words:
            continue
        kind, values = words[0], _ints(words[1:])
        if values is None or kind not in (b"S", b"E") or len(values) != (3 if kind == b"S" else 5):
            j.malformed += 1
            continue
        if wanted is not None and values[0] not in wanted:
            continue
        key = (values[0], values[1], values[2])
        if kind == b"S":
            j.starts.add(key)
        else:
            j.starts.add(key)   # an end implies a start
            j.ends[key] = (max(-2**31, min(values[3], 2**31 - 1)), bool(values[4]))
    return j


def journal_trust(*, same_host: bool, allocation_end: str | None) -> tuple[bool, str]:
    """May the reconciler believe a dead worker's journal about the jobs it does NOT list (never started)?

    - Read on the worker's own host: yes. The kernel keeps a killed process's writes.
    - Another host whose allocation Slurm says ended without the node failing: yes. The node lived, and
      closing the file at the worker's exit pushed its writes to the shared file system (NFS flushes on
      close; Lustre and GPFS are coherent).
    - Otherwise (node failure, or a silent host): no. Writes may have died in that host's memory; every
      held job is recorded as started, as conservative as before the journal existed.
    """
    if same_host:
        return True, "read on the worker's host"
    if allocation_end and allocation_end.split()[0].upper() not in ("NODE_FAIL", "BOOT_FAIL"):
        return True, f"the worker's allocation ended {allocation_end} with its node up"
    if allocation_end:
        return False, f"the worker's node failed ({allocation_end}): its last journal writes may be lost"
    return False, "the worker ran on another host that may have died with unwritten journal data"
