"""Turn a finished attempt into database steps, through the pure failure decision."""

from __future__ import annotations

from dataclasses import dataclass

from torc_hpc.core.failure import Action, FailureRule, decide_failure
from torc_hpc.core.states import ExitCode, JobStatus
from torc_hpc.db.repo import Attempt, finish_step
from torc_hpc.limits import RECOVERY_TIMEOUT_S


@dataclass
class Plan:
    steps: list[tuple[str, dict]]
    recovery_script: str | None = None   # run this, then finish with after_recovery()
    recovery_timeout_s: int = RECOVERY_TIMEOUT_S   # its time limit
    final: JobStatus | None = None        # what the job became (None while recovery runs)
    decision: object = None


def classify_exit(return_code: int, signaled: bool, kill_reason: str | None,
                  stop_request: str | None) -> tuple[int, bool, str | None]:
    """How an exit is recorded: (return code, killed, why torc stopped it or None).

    An exit 0 is a success even while the worker is stopping (it ended before the kill, or handled the
    SIGTERM and finished its work). A job torc stopped gets 152 (walltime) or 143 (interrupt, cancel,
    scancel); Slurm signals jobs itself, so a signal during a stop counts as ours."""
    if return_code == 0 and not signaled:
        return 0, False, None
    reason = kill_reason or (stop_request if signaled else None)
    rc = return_code
    if reason == "walltime":
        rc = ExitCode.WALLTIME
    elif reason in ("interrupted", "canceled", "scancel") and signaled:
        rc = ExitCode.CANCELED
    return rc, signaled or reason is not None, reason


def plan_outcome(attempt: Attempt, *, killed: bool, handler_rules: tuple[FailureRule, ...] | None,
                 use_pending_failed: bool, apply_handlers: bool = True,
                 record_result: bool = True, interrupted: bool = False, interrupted_attempts: int = 0,
                 note: dict | None = None) -> Plan:
    """What to write for an attempt that ended with attempt.return_code.

    `interrupted` (Ctrl-C or SIGTERM of `torc run`): not a failure of the job. The attempt keeps a true
    result row (terminated) and the job goes back to ready with attempt + 1, its dependents untouched; the
    failure handler does not count it against max_retries (`interrupted_attempts`). `note` goes into the
    event's detail (why torc assigned the return code)."""
    rc = attempt.return_code
    if rc == 0 and not killed:
        return Plan([finish_step("completed", attempt)], final=JobStatus.COMPLETED)
    attempt_status = JobStatus.TERMINATED if killed else JobStatus.FAILED
    if interrupted:
        step = finish_step("retry", attempt, attempt_status=attempt_status, record_result=record_result,
                           detail={"return_code": rc, "reason": "interrupted: runs again with the next torc run; "
                                                                  "not counted against max_retries"})
        return Plan([("finish_interrupted", step[1])], final=JobStatus.READY)
    if not apply_handlers:
        return Plan([finish_step("failed", attempt, status=attempt_status, record_result=record_result,
                                 detail={"return_code": rc, "reason": "stopped by the user", **(note or {})})],
                    final=attempt_status)
    decision = decide_failure(handler_rules or (), rc, attempt.attempt_id,
                              has_handler=handler_rules is not None, use_pending_failed=use_pending_failed,
                              killed=killed, interrupted_attempts=interrupted_attempts)
    detail = {"return_code": rc, "reason": decision.reason, "rule": decision.rule_index, **(note or {})}
    if decision.action is Action.RETRY:
        if decision.recovery_script:
            step = finish_step("recovering", attempt, attempt_status=attempt_status, detail=detail)
            return Plan([step] if record_result else [], recovery_script=decision.recovery_script,
                        recovery_timeout_s=decision.recovery_timeout_s or RECOVERY_TIMEOUT_S, decision=decision)
        return Plan([finish_step("retry", attempt, attempt_status=attempt_status, record_result=record_result,
                                 detail=detail)], final=JobStatus.READY, decision=decision)
    if decision.action is Action.PENDING_FAILED:
        return Plan([finish_step("pending_failed", attempt, attempt_status=attempt_status,
                                 record_result=record_result, detail=detail)],
                    final=JobStatus.PENDING_FAILED, decision=decision)
    return Plan([finish_step("failed", attempt, status=decision.status, attempt_status=attempt_status,
                             record_result=record_result, detail=detail)],
                final=decision.status, decision=decision)


def after_recovery(attempt: Attempt, recovery_rc: int, script: str, *, timed_out_after_s: int | None = None) -> Plan:
    """The recovery script ended: exit 0 retries the job, anything else (a time-out too) fails it for good."""
    detail = {"return_code": attempt.return_code, "recovery_script": script, "recovery_return_code": recovery_rc}
    if timed_out_after_s is not None:
        detail.update(timed_out=True, reason=f"the recovery script ran longer than its time limit "
                                             f"({timed_out_after_s} s) and was killed")
    elif recovery_rc == 0:
        return Plan([finish_step("retry", attempt, record_result=False, detail=detail)], final=JobStatus.READY)
    return Plan([finish_step("failed", attempt, status=JobStatus.FAILED, record_result=False,
                             event_kind="recovery_failed", detail=detail)], final=JobStatus.FAILED)


def recovery_interrupted(attempt: Attempt, script: str, why: str) -> Plan:
    """The recovery script was stopped before it ended (Ctrl-C, or its runner died). It runs at most once per
    failed attempt, so it is not run again: the job waits for a decision (pending_failed: dependents stay
    blocked, nothing cascades), `torc jobs retry` or `torc jobs fail`."""
    return Plan([finish_step("pending_failed", attempt, record_result=False,
                             detail={"return_code": attempt.return_code, "recovery_script": script,
                                     "recovery_interrupted": True, "reason": why})],
                final=JobStatus.PENDING_FAILED)


def recovery_claim_step(attempt: Attempt, claimed_by: str, timeout_s: int, worker_id: int | None) -> tuple[str, dict]:
    """The step that claims an attempt's recovery script before it runs (at most once per attempt)."""
    from torc_hpc.limits import RECOVERY_CLAIM_GRACE_S

    return "claim_recovery", {"job_id": attempt.job_id, "run_id": attempt.run_id, "attempt_id": attempt.attempt_id,
                              "worker_id": worker_id, "claimed_by": claimed_by,
                              "lease_s": float(timeout_s + RECOVERY_CLAIM_GRACE_S)}
