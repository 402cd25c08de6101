"""The pure part of a pending_failed decision: every classification checked against the job it names."""

import pytest

from torc_hpc.core.units import format_memory, parse_memory
from torc_hpc.triage import plan, requested_ids

JOBS = {
    1: {"id": 1, "workflow_id": 7, "status": "pending_failed"},
    2: {"id": 2, "workflow_id": 7, "status": "pending_failed"},
    3: {"id": 3, "workflow_id": 8, "status": "pending_failed"},
    4: {"id": 4, "workflow_id": 7, "status": "running"},
}


@pytest.mark.parametrize("item, error", [
    ({"job_id": 1, "action": "retry"}, None),
    ({"job_id": 1, "action": " Fail ", "reason": "bug"}, None),
    ({"job_id": 1, "action": "retry", "memory": "8g", "runtime": "PT2H"}, None),
    ({"job_id": 9, "action": "retry"}, "job 9 does not exist (or your database role cannot see it)"),
    ({"job_id": 3, "action": "retry"}, "job 3 belongs to workflow 8, not workflow 7"),
    ({"job_id": 4, "action": "fail"}, "job 4 is running, not pending_failed"),
    ({"job_id": 1, "action": "skip"}, "job 1: action 'skip' is not one of: retry, fail"),
    ({"job_id": 1}, "job 1: action None is not one of: retry, fail"),
    ({"job_id": "1", "action": "retry"}, "classification 1: job_id must be an integer job id, got '1'"),
    ({"job_id": True, "action": "retry"}, "classification 1: job_id must be an integer job id"),
    ({"action": "retry"}, "classification 1: job_id must be an integer job id, got None"),
    ([1, "retry"], "classification 1: expected an object with job_id and action"),
    ({"job_id": 1, "action": "retry", "memroy": "8g"}, "job 1: unknown field(s) memroy"),
    ({"job_id": 1, "action": "retry", "memory": "lots"}, "job 1: cannot read memory 'lots'"),
    ({"job_id": 1, "action": "retry", "memory": "0g"}, "job 1: memory must be more than 0"),
    ({"job_id": 1, "action": "retry", "runtime": "soon"}, "job 1: cannot read duration 'soon'"),
    ({"job_id": 1, "action": "fail", "memory": "8g"}, "job 1: memory and runtime apply only to action 'retry'"),
    ({"job_id": 1, "action": "retry", "reason": 42}, "job 1: reason must be text"),
    ({"job_id": 1, "action": "retry", "reason": "x" * 5000}, "job 1: reason is 5000 characters"),
])
def test_each_item_is_checked(item, error):
    [checked] = plan([item], JOBS, 7)
    if error is None:
        assert checked.error is None and checked.action in ("retry", "fail")
    else:
        assert checked.error is not None and checked.error.startswith(error), checked.error


def test_parsed_values_and_duplicates():
    items = plan([{"job_id": 1, "action": "RETRY", "memory": "1.5g", "runtime": "01:30:00"},
                  {"job_id": 2, "action": "fail"}, {"job_id": 1, "action": "fail"}], JOBS, 7)
    assert (items[0].action, items[0].memory_bytes, items[0].runtime_s) == ("retry", 1536 * 2**20, 5400)
    assert items[1].error is None
    assert items[2].error == "job 1: classified more than once in this call"
    assert requested_ids([{"job_id": 2}, {"job_id": 1}, {"job_id": True}, "x", {"job_id": 2}]) == [1, 2]


@pytest.mark.parametrize("n, text", [(2**30, "1g"), (1536 * 2**20, "1536m"), (100 * 1024, "100k"), (1000, "1000"),
                                     (3 * 2**40, "3t")])
def test_format_memory_reads_back(n, text):
    assert format_memory(n) == text and parse_memory(text) == n
