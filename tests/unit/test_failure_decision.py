"""The failure decision, row by row (rules in order, attempt limits, pending_failed, killed)."""

import pytest

from torc_hpc.core.failure import Action, FailureRule, decide_failure, status_after_recovery
from torc_hpc.core.states import JobStatus

R10 = FailureRule(exit_codes=(10, 11), recovery_script="./fix.sh", max_retries=3)
R12 = FailureRule(exit_codes=(12,), max_retries=2)
ALL = FailureRule(match_all_exit_codes=True, max_retries=2)
T152 = FailureRule(exit_codes=(152,), max_retries=2)

CASES = [
    # id, rules, rc, attempt, has_handler, use_pending_failed, killed, action, status, rule, script
    ("match first rule, attempts left", (R10, R12), 10, 1, True, False, False, Action.RETRY, JobStatus.FAILED, 0, "./fix.sh"),
    ("second code of first rule", (R10, R12), 11, 2, True, False, False, Action.RETRY, JobStatus.FAILED, 0, "./fix.sh"),
    ("attempt == max_retries: no retry", (R10,), 10, 3, True, False, False, Action.FAIL, JobStatus.FAILED, 0, None),
    ("attempt > max_retries: no retry", (R10,), 10, 4, True, False, False, Action.FAIL, JobStatus.FAILED, 0, None),
    ("rule without script", (R10, R12), 12, 1, True, False, False, Action.RETRY, JobStatus.FAILED, 1, None),
    ("no match with handler -> pending_failed", (R10, R12), 1, 1, True, False, False, Action.PENDING_FAILED, JobStatus.PENDING_FAILED, None, None),
    ("no handler -> failed", (), 1, 1, False, False, False, Action.FAIL, JobStatus.FAILED, None, None),
    ("no handler, workflow pending_failed", (), 1, 1, False, True, False, Action.PENDING_FAILED, JobStatus.PENDING_FAILED, None, None),
    ("no handler killed -> terminated", (), 143, 1, False, False, True, Action.FAIL, JobStatus.TERMINATED, None, None),
    ("catch-all after specific: specific wins", (R10, ALL), 10, 1, True, False, False, Action.RETRY, JobStatus.FAILED, 0, "./fix.sh"),
    ("catch-all catches the rest", (R10, ALL), 7, 1, True, False, False, Action.RETRY, JobStatus.FAILED, 1, None),
    ("catch-all first shadows later rules", (ALL, R10), 10, 1, True, False, False, Action.RETRY, JobStatus.FAILED, 0, None),
    ("catch-all exhausted", (ALL,), 7, 2, True, False, False, Action.FAIL, JobStatus.FAILED, 0, None),
    ("walltime 152 retried", (T152,), 152, 1, True, False, True, Action.RETRY, JobStatus.TERMINATED, 0, None),
    ("walltime 152 exhausted -> terminated", (T152,), 152, 2, True, False, True, Action.FAIL, JobStatus.TERMINATED, 0, None),
    ("scancel 143 does not match a 152 rule", (T152,), 143, 1, True, False, True, Action.PENDING_FAILED, JobStatus.PENDING_FAILED, None, None),
    ("max_retries 0 never retries", (FailureRule(exit_codes=(5,), max_retries=0),), 5, 1, True, False, False, Action.FAIL, JobStatus.FAILED, 0, None),
    ("max_retries 1 never retries (attempt ids start at 1)", (FailureRule(exit_codes=(5,), max_retries=1),), 5, 1, True, False, False, Action.FAIL, JobStatus.FAILED, 0, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_decide_failure(case):
    _, rules, rc, attempt, has_handler, upf, killed, action, status, rule, script = case
    d = decide_failure(rules, rc, attempt, has_handler=has_handler, use_pending_failed=upf, killed=killed)
    assert d.action is action
    assert d.status is status
    assert d.rule_index == rule
    assert d.recovery_script == script
    assert d.reason


@pytest.mark.parametrize("rc,expected", [(0, JobStatus.READY), (1, JobStatus.FAILED), (137, JobStatus.FAILED)])
def test_status_after_recovery(rc, expected):
    assert status_after_recovery(rc) is expected
