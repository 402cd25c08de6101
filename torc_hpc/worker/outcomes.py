"""Turn a finished attempt into database steps, through the pure failure decision."""

from __future__ import annotations

from dataclasses import dataclass

from torc_hpc.core.failure import Action, FailureRule, decide_failure
from torc_hpc.core.states import JobStatus
from torc_hpc.db.repo import Attempt, finish_step


@dataclass
class Plan:
    steps: list[tuple[str, dict]]
    recovery_script: str | None = None   # run this, then finish with after_recovery()
    final: JobStatus | None = None        # what the job became (None while recovery runs)
    decision: object = None


def plan_outcome(attempt: Attempt, *, killed: bool, handler_rules: tuple[FailureRule, ...] | None,
                 use_pending_failed: bool, apply_handlers: bool = True,
                 record_result: bool = True, detail: dict | None = None) -> Plan:
    """What to write for an attempt that ended with attempt.return_code. `detail`: more for the event (why
    torc changed the return code, e.g. declared outputs missing)."""
    rc = attempt.return_code
    more = detail or {}
    if rc == 0 and not killed:
        return Plan([finish_step("completed", attempt)], final=JobStatus.COMPLETED)
    attempt_status = JobStatus.TERMINATED if killed else JobStatus.FAILED
    if not apply_handlers:
        return Plan([finish_step("failed", attempt, status=attempt_status, record_result=record_result,
                                 detail={"return_code": rc, "reason": "stopped by the user", **more})],
                    final=attempt_status)
    decision = decide_failure(handler_rules or (), rc, attempt.attempt_id,
                              has_handler=handler_rules is not None, use_pending_failed=use_pending_failed,
                              killed=killed)
    detail = {"return_code": rc, "reason": decision.reason, "rule": decision.rule_index, **more}
    if decision.action is Action.RETRY:
        if decision.recovery_script:
            step = finish_step("recovering", attempt, attempt_status=attempt_status, detail=detail)
            return Plan([step] if record_result else [], recovery_script=decision.recovery_script,
                        decision=decision)
        return Plan([finish_step("retry", attempt, attempt_status=attempt_status, record_result=record_result,
                                 detail=detail)], final=JobStatus.READY, decision=decision)
    if decision.action is Action.PENDING_FAILED:
        return Plan([finish_step("pending_failed", attempt, attempt_status=attempt_status,
                                 record_result=record_result, detail=detail)],
                    final=JobStatus.PENDING_FAILED, decision=decision)
    return Plan([finish_step("failed", attempt, status=decision.status, attempt_status=attempt_status,
                             record_result=record_result, detail=detail)],
                final=decision.status, decision=decision)


def after_recovery(attempt: Attempt, recovery_rc: int, script: str) -> Plan:
    """The recovery script ended: exit 0 retries the job, anything else fails it for good."""
    detail = {"return_code": attempt.return_code, "recovery_script": script, "recovery_return_code": recovery_rc}
    if recovery_rc == 0:
        return Plan([finish_step("retry", attempt, record_result=False, detail=detail)], final=JobStatus.READY)
    return Plan([finish_step("failed", attempt, status=JobStatus.FAILED, record_result=False,
                             event_kind="recovery_failed", detail=detail)], final=JobStatus.FAILED)
