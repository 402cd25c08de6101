from datetime import datetime, timedelta, timezone

import pytest

from torc_hpc.core.liveness import worker_lost_reason
from torc_hpc.core.states import JobStatus, can_transition, exit_code_from_wait_status

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


def test_exit_code_from_wait_status():
    assert exit_code_from_wait_status(-9) == 137
    assert exit_code_from_wait_status(-15) == 143
    assert exit_code_from_wait_status(3) == 3
