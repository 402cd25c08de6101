"""The auto-schedule decision and its back-off: pure functions of a snapshot and `now`.

Rules (in order):
  paused                      → wait; a person resumes (`torc watch WF --resume`)
  no ready jobs               → nothing to do
  inside a back-off delay     → wait until it ends
  no active or pending alloc. → submit now
  backlog of pending allocs.  → wait (never more than max_pending queued)
  ready retries ≥ threshold   → submit, at most once per cooldown
  retries below threshold but the oldest waited > stranded timeout → submit, at most once per cooldown
  otherwise                   → wait
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class Rule(StrEnum):
    PAUSED = "paused"
    NOTHING_READY = "nothing_ready"
    BACKOFF = "backoff"
    NO_ALLOCATIONS = "no_allocations"
    BACKLOG = "backlog"
    RETRY_THRESHOLD = "retry_threshold"
    COOLDOWN = "cooldown"
    STRANDED = "stranded"
    WAIT = "wait"


@dataclass(frozen=True)
class Policy:
    threshold: int = 5
    cooldown_s: int = 1800
    stranded_timeout_s: int = 7200
    max_pending: int = 2                                   # backlog limit of queued allocations
    backoff_s: tuple[int, ...] = (60, 300, 900, 1800)      # delay after the 1st, 2nd, 3rd, … failure in a row
    max_failures: int = 5                                  # pause after this many failures in a row
    quick_failure_s: int = 60                              # an allocation whose workers all died this fast failed


@dataclass(frozen=True)
class Backoff:
    consecutive_failures: int = 0
    next_attempt_at: datetime | None = None
    paused_reason: str | None = None


@dataclass(frozen=True)
class Snapshot:
    now: datetime
    ready: int
    ready_retries: int                    # ready with attempt_id > 1
    oldest_retry_ready_at: datetime | None
    active_allocations: int               # pending + running
    pending_allocations: int
    last_auto_schedule_at: datetime | None
    backoff: Backoff = Backoff()


@dataclass(frozen=True)
class Decision:
    submit: bool
    rule: Rule
    reason: str
    wait_until: datetime | None = None


def decide(s: Snapshot, p: Policy) -> Decision:
    if s.backoff.paused_reason:
        return Decision(False, Rule.PAUSED, f"auto-schedule is paused: {s.backoff.paused_reason}")
    if s.ready == 0:
        return Decision(False, Rule.NOTHING_READY, "no ready jobs")
    if s.backoff.next_attempt_at and s.now < s.backoff.next_attempt_at:
        left = (s.backoff.next_attempt_at - s.now).total_seconds()
        return Decision(False, Rule.BACKOFF, f"backing off after {s.backoff.consecutive_failures} failed "
                        f"allocation(s); next try in {left:.0f}s", s.backoff.next_attempt_at)
    if s.active_allocations == 0:
        return Decision(True, Rule.NO_ALLOCATIONS, f"{s.ready} ready job(s) and no active or pending allocation")
    if s.pending_allocations >= p.max_pending:
        return Decision(False, Rule.BACKLOG, f"{s.pending_allocations} allocation(s) already queued "
                        f"(limit {p.max_pending})")
    if s.ready_retries == 0:
        return Decision(False, Rule.WAIT, f"{s.active_allocations} active allocation(s) will take the "
                        f"{s.ready} ready job(s)")
    cooldown_end = (s.last_auto_schedule_at + timedelta(seconds=p.cooldown_s)
                    if s.last_auto_schedule_at else None)
    in_cooldown = cooldown_end is not None and s.now < cooldown_end
    if s.ready_retries >= p.threshold:
        if in_cooldown:
            return Decision(False, Rule.COOLDOWN, f"{s.ready_retries} retries waiting (threshold {p.threshold}) "
                            f"but the last auto-schedule was under {p.cooldown_s}s ago", cooldown_end)
        return Decision(True, Rule.RETRY_THRESHOLD, f"{s.ready_retries} retry job(s) waiting, threshold "
                        f"{p.threshold}")
    waited = (s.now - s.oldest_retry_ready_at).total_seconds() if s.oldest_retry_ready_at else 0
    if waited > p.stranded_timeout_s:
        if in_cooldown:
            return Decision(False, Rule.COOLDOWN, f"{s.ready_retries} retry job(s) stranded for {waited:.0f}s "
                            f"but the last auto-schedule was under {p.cooldown_s}s ago", cooldown_end)
        return Decision(True, Rule.STRANDED, f"{s.ready_retries} retry job(s) below the threshold have "
                        f"waited {waited:.0f}s (> {p.stranded_timeout_s}s)")
    stranded_at = s.oldest_retry_ready_at + timedelta(seconds=p.stranded_timeout_s) if s.oldest_retry_ready_at else None
    return Decision(False, Rule.WAIT, f"{s.ready_retries} retry job(s) below the threshold of {p.threshold}; "
                    f"stranded after {p.stranded_timeout_s}s", stranded_at)


def after_failure(b: Backoff, now: datetime, p: Policy, why: str) -> Backoff:
    """An allocation failed (sbatch refused, or its workers died at once): delay, and pause eventually."""
    n = b.consecutive_failures + 1
    if n >= p.max_failures:
        return Backoff(n, None, f"{n} allocations failed in a row (last: {why})")
    delay = p.backoff_s[min(n, len(p.backoff_s)) - 1] if p.backoff_s else 0
    return Backoff(n, now + timedelta(seconds=delay), None)


def after_success(b: Backoff) -> Backoff:
    """An allocation's worker started: the failure streak is over."""
    return Backoff() if not b.paused_reason else replace(b, consecutive_failures=0, next_attempt_at=None)


def allocations_needed(waiting_cpu_seconds: int, allocation_cpu_seconds: int, max_new: int) -> int:
    """How many allocations the waiting work (CPUs × runtime) calls for, given what one allocation offers
    (CPUs × usable walltime), within the backlog limit."""
    if waiting_cpu_seconds <= 0 or max_new <= 0:
        return 0
    return max(1, min(max_new, math.ceil(waiting_cpu_seconds / max(1, allocation_cpu_seconds))))


def allocation_failed(*, submitted: bool, workers_registered: int, sacct_state: str | None,
                      elapsed_s: float | None, quick_failure_s: int, vanished: bool = False) -> bool | None:
    """Judge an ended allocation: True failed, False worked, None (not ended, or cannot tell yet).
    `vanished`: it was ended because neither squeue nor sacct knew it any more (no state to judge by)."""
    if not submitted:
        return True
    if workers_registered > 0:
        return False
    if vanished:
        return True   # no worker ever started in it, and Slurm cannot say why
    if sacct_state is None:
        return None
    # No worker ever registered: it could not start (bad path, unreachable database) or died at once.
    if elapsed_s is not None and elapsed_s <= quick_failure_s:
        return True
    return sacct_state.split(" ")[0] in ("FAILED", "NODE_FAIL", "BOOT_FAIL")


def vanished_needs_a_person(*, workers_registered: int, lost_workers: int) -> bool:
    """An allocation was ended because Slurm no longer knew it: say so in cron's output when it may have
    cost work (no worker ever started in it, or one of its workers was declared lost with its jobs). One
    whose workers all left on their own is what a site without accounting sees after every allocation."""
    return workers_registered == 0 or lost_workers > 0
