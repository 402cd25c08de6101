"""The failure-handler decision: one pure function shared by the worker and the watcher."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from torc_hpc.core.states import JobStatus


@dataclass(frozen=True)
class FailureRule:
    exit_codes: tuple[int, ...] = ()
    match_all_exit_codes: bool = False
    recovery_script: str | None = None
    max_retries: int = 1
    recovery_timeout_s: int | None = None   # None: limits.RECOVERY_TIMEOUT_S

    def matches(self, return_code: int) -> bool:
        return self.match_all_exit_codes or return_code in self.exit_codes


class Action(StrEnum):
    RETRY = "retry"                    # run the recovery script (if any), then ready with attempt + 1
    FAIL = "fail"                      # final: failed or terminated; dependents are canceled
    PENDING_FAILED = "pending_failed"  # wait for a person or an agent to decide; dependents stay blocked


@dataclass(frozen=True)
class FailureDecision:
    action: Action
    status: JobStatus                 # status to record if the action is not a successful retry
    rule_index: int | None = None     # which rule matched (0-based), for the event log
    recovery_script: str | None = None
    reason: str = ""
    recovery_timeout_s: int | None = None   # the matched rule's, None: the default


def decide_failure(
    rules: list[FailureRule] | tuple[FailureRule, ...],
    return_code: int,
    attempt_id: int,
    *,
    has_handler: bool,
    use_pending_failed: bool,
    killed: bool,
    interrupted_attempts: int = 0,
) -> FailureDecision:
    """Decide what happens to a job that exited non-zero (or was killed).

    Rules are tried in order; the first whose exit_codes hold the code, or that has
    match_all_exit_codes, wins. A match retries while attempt_id < max_retries (attempt ids
    start at 1). No match: pending_failed when the job has a handler or the workflow asks
    for it, otherwise a final failure. `killed` picks terminated over failed for final states.

    Interrupted attempts (Ctrl-C of `torc run`: the job went back to ready with attempt + 1) keep their
    result rows but are not failures: they do not count against max_retries, so the attempt compared with
    it is attempt_id - interrupted_attempts.
    """
    attempt_id = max(1, attempt_id - interrupted_attempts)
    final = JobStatus.TERMINATED if killed else JobStatus.FAILED
    for index, rule in enumerate(rules):
        if not rule.matches(return_code):
            continue
        if attempt_id < rule.max_retries:
            return FailureDecision(Action.RETRY, final, index, rule.recovery_script,
                                   f"rule {index + 1} matched exit code {return_code}; "
                                   f"attempt {attempt_id} of {rule.max_retries}",
                                   recovery_timeout_s=rule.recovery_timeout_s)
        return FailureDecision(Action.FAIL, final, index, None,
                               f"rule {index + 1} matched exit code {return_code} but "
                               f"attempt {attempt_id} reached max_retries={rule.max_retries}")
    if has_handler or use_pending_failed:
        return FailureDecision(Action.PENDING_FAILED, JobStatus.PENDING_FAILED, None, None,
                               f"no rule matched exit code {return_code}; awaiting a decision")
    return FailureDecision(Action.FAIL, final, None, None,
                           f"exit code {return_code} and no failure handler")


def status_after_recovery(recovery_exit_code: int) -> JobStatus:
    """A recovery script that exits 0 sends the job back to ready; anything else fails it."""
    return JobStatus.READY if recovery_exit_code == 0 else JobStatus.FAILED
