"""Workflow actions (Torc's `actions`): which pending actions a runner may fire now, and what it does with
each. Pure: the caller brings the pending rows (query `pending_actions`) and says who it is and when.

Triggers (docs/torc-compat.md §4.3): on_workflow_start when a worker or the watcher first sees the run;
on_jobs_ready / on_jobs_complete when every selected job reached that state (reached_count, moved by the
finish statements, equals selected_count); on_workflow_complete when no job can change any more (the claim
checks it); on_worker_start / on_worker_complete when a worker starts or stops (persistent: every worker;
otherwise the first one). Whoever fires claims the row first (`claim_action`), so each fires at most once.

finalize_dataset is torc's own action (one per dataset that jobs write, on_jobs_complete over its writers):
it records the dataset's file count, size and fingerprint once they all finished.

Runners, as in Torc: a worker (`torc run`, or `torc worker` in an allocation) fires every kind; the
watcher and `torc submit-slurm` fire only schedule_nodes (run_commands run in the owner's environment,
inside a worker).
`torc run` has no Slurm: its schedule_nodes actions are recorded as skipped, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

JOB_TRIGGERS = ("on_jobs_ready", "on_jobs_complete")
WORKER_TRIGGERS = ("on_worker_start", "on_worker_complete")
OUTPUT_TAIL_CHARS = 4000          # how much of an action's output its event keeps (the log file has it all)
DEFAULT_TIMEOUT_S = 3600          # a run_commands action is stopped after this long (TORC_ACTION_TIMEOUT_S)


class Runner(str, Enum):
    LOCAL = "torc run"            # a worker on this machine, no Slurm
    ALLOCATION = "worker"         # a worker inside a Slurm allocation
    WATCHER = "watch"             # torc watch / the site's cron
    SUBMIT = "submit-slurm"       # torc submit-slurm: the spec's start allocations instead of sized ones

    @property
    def is_worker(self) -> bool:
        return self in (Runner.LOCAL, Runner.ALLOCATION)


class Phase(str, Enum):
    START = "start"               # a worker starting (before it claims), or a watcher cycle
    POLL = "poll"                 # while jobs run
    STOP = "stop"                 # a worker leaving


@dataclass(frozen=True)
class Action:
    id: int
    position: int
    trigger_type: str
    action_type: str
    config: dict
    selected_count: int = 0
    reached_count: int = 0

    @property
    def persistent(self) -> bool:
        return bool(self.config.get("persistent"))

    @property
    def label(self) -> str:
        return f"action {self.position + 1} ({self.trigger_type} → {self.action_type})"


@dataclass(frozen=True)
class Plan:
    """What to do with one action now: fire it (claim first unless per-worker), or record it skipped."""

    action: Action
    claim: bool = True            # False: a persistent worker action, fired by every worker without a claim
    skip_reason: str | None = None


def _trigger_open(a: Action, phase: Phase, runner: Runner) -> bool:
    t = a.trigger_type
    if t == "on_workflow_start":
        return True               # any runner that sees it unfired fires it, before it claims jobs
    if t in JOB_TRIGGERS:
        return a.reached_count >= a.selected_count
    if t == "on_workflow_complete":
        return phase is not Phase.START   # the claim checks that no job can still change
    if t == "on_worker_start":
        return runner.is_worker and phase is Phase.START
    if t == "on_worker_complete":
        return runner.is_worker and phase is Phase.STOP
    return False


def plan(actions: list[Action], phase: Phase, runner: Runner) -> list[Plan]:
    """The pending actions this runner should fire now, in spec order."""
    out = []
    for a in actions:
        if not _trigger_open(a, phase, runner):
            continue
        if not runner.is_worker and a.action_type != "schedule_nodes":
            continue              # run_commands and dataset walks belong to workers (the owner's files)
        claim = not (a.trigger_type in WORKER_TRIGGERS and a.persistent)
        skip = None
        if a.action_type == "schedule_nodes" and runner is Runner.LOCAL:
            skip = ("torc run runs jobs on this machine and submits no Slurm allocations; use "
                    "`torc submit-slurm` or `torc watch --auto-schedule` on a cluster")
        out.append(Plan(a, claim=claim, skip_reason=skip))
    return out


def still_possible(actions: list[Action], runner: Runner) -> bool:
    """Whether a pending action could still fire while this runner runs (else a worker stops polling;
    on_worker_complete waits for the worker's end, which needs no polling)."""
    return any(a.trigger_type not in WORKER_TRIGGERS
               for a in actions if runner.is_worker or a.action_type == "schedule_nodes")


def tail(text: str, limit: int = OUTPUT_TAIL_CHARS) -> str:
    """The end of an action's output, as its event keeps it."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def allocation_count(config: dict) -> int:
    """num_allocations as Torc defines it: default 1."""
    n = config.get("num_allocations")
    return 1 if n is None else int(n)
