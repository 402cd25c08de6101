"""Issue 9's pure decisions, by table: the start journal, whom to believe, zombies, interrupts and retries,
exits seen while stopping, recovery time limits, the progress line's counts."""

import pytest

from torc_hpc.core.failure import Action, FailureRule, decide_failure
from torc_hpc.core.liveness import process_is_our_worker
from torc_hpc.core.starts import end_line, journal_trust, parse_journal, start_line
from torc_hpc.core.states import ExitCode, JobStatus
from torc_hpc.db.repo import Attempt
from torc_hpc.worker.outcomes import after_recovery, classify_exit, plan_outcome


def test_journal_round_trip_and_garbage_is_ignored():
    data = (start_line(7, 1, 2) + start_line(8, 1, 1) + end_line(8, 1, 1, 0, False) + b"S 9 x 1\n"
            + b"rm -rf /\n" + b"S 99999999999999999999999 1 1\n" + end_line(10, 1, 1, 137, True) + b"S 11 1")
    j = parse_journal(data)
    assert j.starts == {(7, 1, 2), (8, 1, 1), (10, 1, 1)}   # an end implies a start; the cut last line is ignored
    assert j.ends == {(8, 1, 1): (0, False), (10, 1, 1): (137, True)}
    assert j.malformed == 3
    assert parse_journal(data, wanted={7}).starts == {(7, 1, 2)}


@pytest.mark.parametrize("same_host,end,trusted", [
    (True, None, True),                 # the kernel kept the killed worker's writes
    (True, "NODE_FAIL", True),          # read on that very host: it is up
    (False, "COMPLETED", True),         # the node lived; close() pushed the writes to the shared file system
    (False, "CANCELLED by 0", True),
    (False, "OUT_OF_MEMORY", True),
    (False, "NODE_FAIL", False),        # writes may have died in the node's memory
    (False, "BOOT_FAIL", False),
    (False, None, False),               # a silent host: it may have died
])
def test_when_a_journal_is_believed(same_host, end, trusted):
    assert journal_trust(same_host=same_host, allocation_end=end)[0] is trusted


@pytest.mark.parametrize("exists,status,created,alive", [
    (True, "running", 100.0, True),
    (True, "sleeping", 100.0, True),
    (True, "zombie", 100.0, False),     # killed, not reaped: dead (issue 9, item 7)
    (True, "dead", 100.0, False),
    (False, None, None, False),
    (True, "running", 10_000.0, False),  # the pid was reused by a later process
    (True, None, None, True),           # cannot read it (another user): assume alive
])
def test_zombies_are_dead(exists, status, created, alive):
    assert process_is_our_worker(exists=exists, status=status, create_time=created, registered_at=100.0) is alive


@pytest.mark.parametrize("rc,signaled,kill_reason,stop,expected", [
    (0, False, "interrupted", "interrupted", (0, False, None)),   # exited 0 before the kill: a success (item 5)
    (0, False, "walltime", "walltime", (0, False, None)),
    (143, True, "interrupted", "interrupted", (143, True, "interrupted")),
    (137, True, "interrupted", "interrupted", (143, True, "interrupted")),
    (1, False, "interrupted", "interrupted", (1, True, "interrupted")),  # trapped our SIGTERM and failed
    (9, True, "walltime", "walltime", (152, True, "walltime")),
    (3, False, None, None, (3, False, None)),
    (137, True, None, None, (137, True, None)),                   # the kernel's OOM kill
    (143, True, None, "scancel", (143, True, "scancel")),
])
def test_exits_seen_while_stopping(rc, signaled, kill_reason, stop, expected):
    assert classify_exit(rc, signaled, kill_reason, stop) == expected


RULES = (FailureRule(exit_codes=(3,), max_retries=2, recovery_script="fix", recovery_timeout_s=5),)


@pytest.mark.parametrize("attempt,interrupted,action", [
    (1, 0, Action.RETRY),
    (2, 0, Action.FAIL),
    (2, 1, Action.RETRY),   # attempt 1 was interrupted: this is the first failure
    (3, 1, Action.FAIL),
    (5, 4, Action.RETRY),
])
def test_interrupts_do_not_use_up_retries(attempt, interrupted, action):
    d = decide_failure(RULES, 3, attempt, has_handler=True, use_pending_failed=False, killed=False,
                       interrupted_attempts=interrupted)
    assert d.action is action
    if action is Action.RETRY:
        assert d.recovery_timeout_s == 5


def test_an_interrupted_attempt_is_recorded_and_the_job_goes_back_to_ready():
    plan = plan_outcome(Attempt(1, 1, 1, 9, return_code=143), killed=True, handler_rules=None,
                        use_pending_failed=False, apply_handlers=False, interrupted=True)
    (name, params), = plan.steps
    assert name == "finish_interrupted" and params["record_result"] and plan.final is JobStatus.READY


def test_a_timed_out_recovery_fails_and_says_so():
    plan = after_recovery(Attempt(1, 1, 1, 9, return_code=3), -9, "sleep 99", timed_out_after_s=5)
    (name, params), = plan.steps
    assert name == "finish_failed" and plan.final is JobStatus.FAILED
    assert params["event_kind"] == "recovery_failed"
    assert params["detail"].obj["timed_out"] is True and "5 s" in params["detail"].obj["reason"]


def test_the_default_recovery_time_limit():
    from torc_hpc.limits import RECOVERY_TIMEOUT_S

    plan = plan_outcome(Attempt(1, 1, 1, 9, return_code=3), killed=False,
                        handler_rules=(FailureRule(exit_codes=(3,), max_retries=2, recovery_script="fix"),),
                        use_pending_failed=False)
    assert plan.recovery_script == "fix" and plan.recovery_timeout_s == RECOVERY_TIMEOUT_S == 600


def test_recovery_timeout_in_the_spec():
    from torc_hpc.spec.models import FailureRuleSpec

    assert FailureRuleSpec(exit_codes=[1], recovery_timeout="PT2M").recovery_timeout_s == 120
    assert FailureRuleSpec(exit_codes=[1], recovery_timeout=30).recovery_timeout_s == 30
    assert FailureRuleSpec(exit_codes=[1]).recovery_timeout_s is None
    with pytest.raises(ValueError):
        FailureRuleSpec(exit_codes=[1], recovery_timeout=0)


@pytest.mark.parametrize("counts,held,shown", [
    ({"running": 4, "ready": 0}, 2, {"running": 2, "ready": 2}),   # `running 4` on 2 cores (item 1)
    ({"running": 1, "ready": 3}, 5, {"running": 0, "ready": 4}),
    ({"running": 2}, 0, {"running": 2}),
])
def test_progress_counts_only_started_jobs(counts, held, shown):
    from torc_hpc.cli.run import shown_counts

    assert shown_counts(counts, held) == shown


def test_exit_code_for_a_job_torc_could_not_start():
    assert ExitCode.START_FAILED == 127
