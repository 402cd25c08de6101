"""Job states, exit-code conventions and the allowed transitions."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    BLOCKED = "blocked"
    READY = "ready"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TERMINATED = "terminated"
    PENDING_FAILED = "pending_failed"
    DISABLED = "disabled"


# Final states a run can end in. pending_failed is not final: it waits for a decision.
FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED,
                   JobStatus.TERMINATED, JobStatus.DISABLED})
# A parent ending in one of these cancels its dependents (unless they opt out).
BLOCKING_FAILURE = frozenset({JobStatus.FAILED, JobStatus.CANCELED, JobStatus.TERMINATED})
# What `reset-status --failed-only` resets.
RESETTABLE_FAILED = frozenset({JobStatus.FAILED, JobStatus.CANCELED, JobStatus.TERMINATED,
                               JobStatus.PENDING_FAILED})

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.BLOCKED: frozenset({JobStatus.READY, JobStatus.CANCELED, JobStatus.DISABLED}),
    JobStatus.READY: frozenset({JobStatus.RUNNING, JobStatus.CANCELED, JobStatus.DISABLED,
                                JobStatus.BLOCKED}),
    JobStatus.RUNNING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TERMINATED,
                                  JobStatus.PENDING_FAILED, JobStatus.READY}),
    JobStatus.PENDING_FAILED: frozenset({JobStatus.READY, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.COMPLETED: frozenset({JobStatus.READY, JobStatus.BLOCKED}),
    JobStatus.FAILED: frozenset({JobStatus.READY, JobStatus.BLOCKED}),
    JobStatus.CANCELED: frozenset({JobStatus.READY, JobStatus.BLOCKED}),
    JobStatus.TERMINATED: frozenset({JobStatus.READY, JobStatus.BLOCKED}),
    JobStatus.DISABLED: frozenset({JobStatus.READY, JobStatus.BLOCKED}),
}


def can_transition(old: JobStatus, new: JobStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[old]


class ExitCode:
    """Return codes torc assigns when a job did not exit on its own.

    Shell convention 128 + signal where a signal did it; 152 is Torc's walltime code.
    """

    START_FAILED = 127    # torc could not start it: log files not creatable (directory gone, read-only, no
                          # inodes), program missing, no file descriptors left (the event says which)
    OUT_OF_MEMORY = 137   # SIGKILL, as the kernel's or Slurm's OOM killer leaves it
    CANCELED = 143        # SIGTERM: scancel, Ctrl-C, `torc workflows cancel`
    WALLTIME = 152        # Slurm TIMEOUT, or the worker stopping a job before the walltime
    NODE_FAIL = 153       # Slurm NODE_FAIL / BOOT_FAIL: the node died under the job
    WORKER_LOST = 154     # the worker vanished (kill -9, lost node) and no scheduler said why
    SLURM_FAILED = 155    # the allocation ended FAILED / PREEMPTED / DEADLINE with no better cause
    OUTPUT_MISSING = 156  # the job exited 0 but a file it declared in output_files does not exist
