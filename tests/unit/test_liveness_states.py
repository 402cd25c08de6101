from datetime import datetime, timedelta, timezone

import pytest

from torc_hpc.core.liveness import worker_lost_reason
from torc_hpc.core.states import JobStatus, can_transition

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("age,same_host,alive,lost", [
    (5, False, None, False),
    (500, False, None, True),
    (5, True, True, False),
    (5, True, False, True),     # kill -9 on this host is seen at once
    (500, True, True, True),    # alive but silent (hung) still counts as lost
])
def test_worker_lost_reason(age, same_host, alive, lost):
    reason = worker_lost_reason(last_heartbeat=NOW - timedelta(seconds=age), now=NOW, stale_after_s=120,
                                same_host=same_host, process_alive=alive)
    assert (reason is not None) is lost


def test_transitions():
    assert can_transition(JobStatus.BLOCKED, JobStatus.READY)
    assert can_transition(JobStatus.RUNNING, JobStatus.PENDING_FAILED)
    assert can_transition(JobStatus.PENDING_FAILED, JobStatus.READY)
    assert not can_transition(JobStatus.COMPLETED, JobStatus.RUNNING)
    assert not can_transition(JobStatus.BLOCKED, JobStatus.RUNNING)


def test_finish_steps_respect_the_transition_table():
    from torc_hpc.db.repo import Attempt, finish_step

    a = Attempt(1, 1, 1, None, return_code=1)
    assert finish_step("retry", a, from_status=JobStatus.PENDING_FAILED)[0] == "finish_retry"
    with pytest.raises(ValueError, match="pending_failed to pending_failed"):
        finish_step("pending_failed", a, from_status=JobStatus.PENDING_FAILED)
    with pytest.raises(ValueError, match="blocked to completed"):
        finish_step("completed", a, from_status=JobStatus.BLOCKED)
