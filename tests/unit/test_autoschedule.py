"""The auto-schedule policy, back-off and recovery sizing, row by row, with an injected clock."""

from datetime import datetime, timedelta, timezone

import pytest

from torc_hpc.core.autoschedule import (Backoff, Policy, Rule, Snapshot, after_failure, after_success,
                                        allocation_failed, allocations_needed, decide,
                                        vanished_needs_a_person)
from torc_hpc.core.recovery import Cause, adjust, classify

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
P = Policy(threshold=5, cooldown_s=1800, stranded_timeout_s=7200, max_pending=2)


def snap(**kw):
    base = dict(now=T0, ready=0, ready_retries=0, oldest_retry_ready_at=None, active_allocations=0,
                pending_allocations=0, last_auto_schedule_at=None, backoff=Backoff())
    base.update(kw)
    return Snapshot(**base)


def ago(s):
    return T0 - timedelta(seconds=s)


CASES = [
    # name, snapshot kwargs, submit, rule
    ("nothing ready", dict(), False, Rule.NOTHING_READY),
    ("ready, no allocation: submit now", dict(ready=3), True, Rule.NO_ALLOCATIONS),
    ("ready retries, no allocation: submit now even in cooldown",
     dict(ready=3, ready_retries=3, oldest_retry_ready_at=ago(10), last_auto_schedule_at=ago(5)), True,
     Rule.NO_ALLOCATIONS),
    ("active allocation takes fresh ready jobs", dict(ready=10, active_allocations=1), False, Rule.WAIT),
    ("retries at threshold with active allocation", dict(ready=5, ready_retries=5, active_allocations=1,
                                                         oldest_retry_ready_at=ago(5)), True, Rule.RETRY_THRESHOLD),
    ("retries above threshold, cooldown not over", dict(ready=9, ready_retries=9, active_allocations=1,
                                                        oldest_retry_ready_at=ago(5), last_auto_schedule_at=ago(1799)),
     False, Rule.COOLDOWN),
    ("retries above threshold, cooldown just over", dict(ready=9, ready_retries=9, active_allocations=1,
                                                         oldest_retry_ready_at=ago(5), last_auto_schedule_at=ago(1800)),
     True, Rule.RETRY_THRESHOLD),
    ("retries below threshold, not stranded yet", dict(ready=4, ready_retries=4, active_allocations=1,
                                                       oldest_retry_ready_at=ago(7200)), False, Rule.WAIT),
    ("retries below threshold, stranded", dict(ready=4, ready_retries=4, active_allocations=1,
                                               oldest_retry_ready_at=ago(7201)), True, Rule.STRANDED),
    ("stranded but in cooldown", dict(ready=1, ready_retries=1, active_allocations=1, oldest_retry_ready_at=ago(8000),
                                      last_auto_schedule_at=ago(60)), False, Rule.COOLDOWN),
    ("backlog of pending allocations", dict(ready=9, ready_retries=9, active_allocations=2, pending_allocations=2,
                                            oldest_retry_ready_at=ago(9000)), False, Rule.BACKLOG),
    ("one pending below the backlog limit", dict(ready=9, ready_retries=9, active_allocations=1,
                                                 pending_allocations=1, oldest_retry_ready_at=ago(5)),
     True, Rule.RETRY_THRESHOLD),
    ("inside back-off", dict(ready=3, backoff=Backoff(2, T0 + timedelta(seconds=10))), False, Rule.BACKOFF),
    ("back-off over", dict(ready=3, backoff=Backoff(2, T0)), True, Rule.NO_ALLOCATIONS),
    ("paused", dict(ready=3, backoff=Backoff(5, None, "5 allocations failed")), False, Rule.PAUSED),
]


@pytest.mark.parametrize("name,kw,submit,rule", CASES, ids=[c[0] for c in CASES])
def test_decide(name, kw, submit, rule):
    d = decide(snap(**kw), P)
    assert (d.submit, d.rule) == (submit, rule)
    assert d.reason


def test_backoff_escalates_then_pauses():
    p = Policy(backoff_s=(60, 300, 900), max_failures=4)
    b = Backoff()
    delays = []
    for _ in range(3):
        b = after_failure(b, T0, p, "sbatch: Invalid account")
        delays.append((b.next_attempt_at - T0).total_seconds())
    assert delays == [60, 300, 900]
    b = after_failure(b, T0, p, "sbatch: Invalid account")
    assert b.paused_reason and "4 allocations failed" in b.paused_reason and "Invalid account" in b.paused_reason
    assert decide(snap(ready=1, backoff=b), p).rule is Rule.PAUSED
    assert after_success(Backoff(3, T0)) == Backoff()


def test_backoff_beyond_the_schedule_repeats_the_last_delay():
    p = Policy(backoff_s=(1, 2), max_failures=10)
    b = Backoff(5, None)
    assert (after_failure(b, T0, p, "x").next_attempt_at - T0).total_seconds() == 2


@pytest.mark.parametrize("work,offer,max_new,n", [
    (0, 4 * 3600, 2, 0),            # nothing waits
    (3 * 20, 2 * 280, 2, 1),        # three 20 s retries fit one small allocation
    (9 * 3600, 4 * 3600, 5, 3),     # nine CPU-hours on 4-CPU, 1-hour allocations
    (100 * 3600, 4 * 3600, 2, 2),   # capped by the backlog limit
    (5, 4, 0, 0),                   # backlog full
])
def test_allocations_needed(work, offer, max_new, n):
    assert allocations_needed(work, offer, max_new) == n


@pytest.mark.parametrize("kw,failed", [
    (dict(submitted=False, workers_registered=0, sacct_state=None, elapsed_s=None), True),
    (dict(submitted=True, workers_registered=1, sacct_state="TIMEOUT", elapsed_s=5), False),
    (dict(submitted=True, workers_registered=0, sacct_state=None, elapsed_s=None), None),
    (dict(submitted=True, workers_registered=0, sacct_state="FAILED", elapsed_s=3), True),
    (dict(submitted=True, workers_registered=0, sacct_state="COMPLETED", elapsed_s=2), True),
    (dict(submitted=True, workers_registered=0, sacct_state="CANCELLED by 0", elapsed_s=4000), False),
    (dict(submitted=True, workers_registered=0, sacct_state="NODE_FAIL", elapsed_s=4000), True),
    # vanished: Slurm forgot it; with no worker ever started it failed, else its workers did the work
    (dict(submitted=True, workers_registered=0, sacct_state=None, elapsed_s=None, vanished=True), True),
    (dict(submitted=True, workers_registered=2, sacct_state=None, elapsed_s=None, vanished=True), False),
])
def test_allocation_failed(kw, failed):
    assert allocation_failed(quick_failure_s=60, **kw) is failed


@pytest.mark.parametrize("workers,lost,attention", [
    (0, 0, True),    # never ran a worker: nothing it was for happened
    (1, 1, True),    # its worker was declared lost, with whatever it was running
    (3, 0, False),   # every worker left on its own: a site without accounting sees this after each allocation
])
def test_a_vanished_allocation_needs_a_person_when_it_may_have_cost_work(workers, lost, attention):
    assert vanished_needs_a_person(workers_registered=workers, lost_workers=lost) is attention


@pytest.mark.parametrize("kw,cause", [
    (dict(return_code=137, peak_memory_bytes=None, memory_bytes=100, exec_time_s=1, runtime_s=100), Cause.OUT_OF_MEMORY),
    (dict(return_code=152, peak_memory_bytes=None, memory_bytes=100, exec_time_s=1, runtime_s=100), Cause.TIMEOUT),
    (dict(return_code=1, peak_memory_bytes=95, memory_bytes=100, exec_time_s=1, runtime_s=100), Cause.OUT_OF_MEMORY),
    (dict(return_code=1, peak_memory_bytes=10, memory_bytes=100, exec_time_s=95, runtime_s=100), Cause.TIMEOUT),
    (dict(return_code=1, peak_memory_bytes=10, memory_bytes=100, exec_time_s=5, runtime_s=100), None),
    (dict(return_code=143, peak_memory_bytes=None, memory_bytes=100, exec_time_s=None, runtime_s=100), None),
])
def test_classify(kw, cause):
    assert classify(**kw) is cause


def test_adjust():
    a = adjust(Cause.OUT_OF_MEMORY, memory_bytes=2**30, runtime_s=60, memory_multiplier=1.5, runtime_multiplier=2)
    assert a.memory_bytes == int(1.5 * 2**30) and a.runtime_s == 60
    a = adjust(Cause.TIMEOUT, memory_bytes=2**30, runtime_s=60, memory_multiplier=1.5, runtime_multiplier=2)
    assert a.runtime_s == 120 and a.memory_bytes == 2**30
    capped = adjust(Cause.TIMEOUT, memory_bytes=1, runtime_s=100, memory_multiplier=1, runtime_multiplier=3,
                    max_runtime_s=200)
    assert capped.runtime_s == 200
    assert adjust(Cause.TIMEOUT, memory_bytes=1, runtime_s=200, memory_multiplier=1, runtime_multiplier=3,
                  max_runtime_s=200) is None
