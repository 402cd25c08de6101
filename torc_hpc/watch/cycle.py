"""One watcher cycle for one workflow (`run_once`), the interactive loop, and cron mode over all workflows.

Decisions come from the pure policies in torc_hpc.core (autoschedule, recovery); this module gathers the
snapshot and carries out what they say. State that must survive restarts lives in watch_state.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable


from torc_hpc.actions import Context as ActionContext, fire as fire_actions
from torc_hpc.core import autoschedule as auto
from torc_hpc.core import packing
from torc_hpc.core.actions import Phase, Runner
from torc_hpc.core.recovery import adjust, classify
from torc_hpc.db.repo import Database, retry_conflicts
from torc_hpc.errors import SlurmError, TorcError
from torc_hpc.reconcile import reconcile
from torc_hpc.slurm import allocations as allocs
from torc_hpc.slurm.client import SlurmClient
from torc_hpc.watch.ai_recovery import AiRecovery, run_if_due as run_ai_agent_if_due
from torc_hpc.watch.lease import Leases

log = logging.getLogger("torc.watch")

BUSY = "another watcher is working on this workflow"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class WatchConfig:
    auto_schedule: bool = False
    policy: auto.Policy = field(default_factory=auto.Policy)
    recover: bool = False
    memory_multiplier: float = 1.5
    runtime_multiplier: float = 1.5
    max_recovery_rounds: int = 3
    submit: allocs.SubmitOptions | None = None      # command-line sbatch options (override the saved ones)
    ai_recovery: AiRecovery | None = None           # --ai-recovery: an agent decides pending_failed jobs
    caps: packing.Caps = field(default_factory=packing.Caps)   # pending allocations per owner / in all; packing


@dataclass
class CycleReport:
    workflow_id: int | None                           # None: about the whole pass, not one workflow
    counts: dict
    allocations_active: int = 0
    decision: dict | None = None
    submitted: list = field(default_factory=list)
    recovered: list = field(default_factory=list)
    left_alone: list = field(default_factory=list)
    attention: list = field(default_factory=list)     # things a person must look at
    reconciled: dict = field(default_factory=dict)
    done: bool = False
    skipped: str | None = None
    ai_agent: dict | None = None                      # --ai-recovery: whether the agent ran, and how it went
    actions: list = field(default_factory=list)       # workflow actions fired this cycle (schedule_nodes)

    def as_dict(self) -> dict:
        return asdict(self)


def plan_per_workflow(db: Database) -> None:
    """Workflows differ by orders of magnitude in size: the watcher's connection prepares nothing, so every
    statement is planned for its own workflow id (a generic plan made on a small workflow would be reused on
    a huge one). A client-side setting: no session state on the server, nothing to leak through a pooler."""
    db.conn.prepare_threshold = None


def _backoff(state: dict) -> auto.Backoff:
    return auto.Backoff(state["consecutive_failures"], state["next_attempt_at"], state["paused_reason"])


def _save_backoff(db: Database, workflow_id: int, b: auto.Backoff) -> None:
    db.run("save_backoff", workflow_id=workflow_id, consecutive_failures=b.consecutive_failures,
           next_attempt_at=b.next_attempt_at, paused_reason=b.paused_reason)


def resume(db: Database, workflow_id: int) -> None:
    """Clear a paused auto-schedule (a person fixed the cause)."""
    db.run("ensure_watch_state", workflow_id=workflow_id)
    _save_backoff(db, workflow_id, auto.Backoff())
    db.event(workflow_id, "auto_schedule_resumed")


def _submit_options(db: Database, workflow_id: int, cfg: WatchConfig, state: dict) -> allocs.SubmitOptions:
    saved = dict(state["submit_options"] or {})
    # Stored by the owner's submit-slurm; checked again here (a value that could change the script is
    # refused, naming this source) before the watcher, perhaps root's cron, submits with it.
    opts = allocs.SubmitOptions(**{k: v for k, v in saved.items() if k in allocs.SubmitOptions.__dataclass_fields__
                                   and k not in ("template", "source")},
                                source=f"watch_state.submit_options of workflow {workflow_id} (saved by submit-slurm)")
    if saved.get("template"):
        from pathlib import Path

        from torc_hpc.slurm.script import check_value

        opts.template = Path(check_value("template", saved["template"], opts.source))
    if cfg.submit:
        for k, v in asdict(cfg.submit).items():
            if v is not None and v != getattr(allocs.SubmitOptions(), k):
                setattr(opts, k, v)
    return opts


def _vanished_lines(db: Database, workflow_id: int, slurm: dict[str, dict] | None) -> list[str]:
    """One attention line per allocation of this workflow that this pass ended because Slurm no longer
    knew it, when that may have cost work (core.autoschedule.vanished_needs_a_person)."""
    lines = []
    for slurm_id, info in (slurm or {}).items():
        if not info.get("vanished") or info["workflow_id"] != workflow_id:
            continue
        w = db.one("allocation_workers", slurm_job_id=slurm_id)
        if not auto.vanished_needs_a_person(workers_registered=w["workers"], lost_workers=w["lost"]):
            continue
        since = info["unknown_since"].astimezone().strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"allocation {info['allocation_id']} (Slurm job {slurm_id}) vanished: neither squeue nor "
                     f"sacct has known it since {since}; it was ended, cause unknown, and jobs it left running "
                     f"were recorded terminated (154). Check `sacct -j {slurm_id}` and the workflow's slurm/ logs")
    return lines


def _judge_allocations(db: Database, workflow_id: int, policy: auto.Policy, now: datetime,
                       b: auto.Backoff) -> auto.Backoff:
    """Count allocations that failed (or worked) into the back-off, each once."""
    for a in db.all("unjudged_allocations", workflow_id=workflow_id):
        elapsed = None
        if a["started_at"] and a["ended_at"]:
            elapsed = (a["ended_at"] - a["started_at"]).total_seconds()
        ended = a["state"] in ("ended", "submit_failed")
        gone = a["state"] == "ended" and a["unknown_since"] is not None and a["sacct_state"] is None
        verdict = auto.allocation_failed(submitted=a["state"] != "submit_failed", workers_registered=a["workers"],
                                         sacct_state=a["sacct_state"] if ended else None, elapsed_s=elapsed,
                                         quick_failure_s=policy.quick_failure_s, vanished=gone)
        if verdict is None:
            continue
        db.run("judge_allocation", id=a["id"], outcome="failed" if verdict else "ok")
        if verdict:
            why = a["error"] or f"allocation {a['slurm_job_id']} ended {a['sacct_state']} with no worker started"
            b = auto.after_failure(b, now, policy, why)
            db.event(workflow_id, "allocation_failed", detail={"allocation_id": a["id"], "why": why,
                                                                 "consecutive_failures": b.consecutive_failures,
                                                                 "paused": b.paused_reason})
        else:
            b = auto.after_success(b)
    return b


def run_once(db: Database, workflow_id: int, client: SlurmClient | None, cfg: WatchConfig,
             now: datetime | None = None, renew: Callable[[], None] = lambda: None,
             slurm: dict[str, dict] | None = None, wants: list | None = None) -> CycleReport:
    """One cycle: refresh allocations and reconcile orphans, judge allocations for the back-off,
    decide, act. `now` is injectable for tests; it defaults to the clock. `renew` extends the caller's
    lease; it is called before each step that may take long (Slurm calls). `slurm` is the cluster pass's
    answer (cron_once): given, this cycle asks Slurm nothing itself. `wants` (cron_once): a decision to
    submit is added there, and the pass submits for every workflow at once (watch.packed)."""
    now = now or utcnow()
    plan_per_workflow(db)
    wf = db.workflow(workflow_id)
    report = CycleReport(workflow_id, counts={})
    if slurm is None and client is not None:   # one workflow alone: the same pass, over its allocations only
        slurm = allocs.refresh_cluster(db, client, [workflow_id])
    # Orphans' recovery scripts run here (at most once each, within their time limits): the lease is
    # renewed while one runs.
    report.reconciled = reconcile(db, workflow_id, client=client, slurm=slurm, run_recoveries=True,
                                  while_waiting=renew)
    report.attention.extend(_vanished_lines(db, workflow_id, slurm))
    if client is not None and wf["canceled_at"] is None:   # the spec's schedule_nodes actions that are due
        report.actions = fire_actions(db, workflow_id, Phase.POLL, ActionContext(Runner.WATCHER, client=client))
    db.run("ensure_watch_state", workflow_id=workflow_id)
    state = db.one("get_watch_state", workflow_id=workflow_id)
    backoff = _backoff(state)
    if client is not None:
        judged = _judge_allocations(db, workflow_id, cfg.policy, now, backoff)
        if judged != backoff:
            _save_backoff(db, workflow_id, judged)
            backoff = judged
    counts = db.status_counts(workflow_id)
    report.counts = {k: v for k, v in counts.items() if v}
    snap_row = db.one("watch_snapshot", workflow_id=workflow_id)
    report.allocations_active = snap_row["active_allocations"]
    if backoff.paused_reason:
        report.attention.append(f"auto-schedule paused: {backoff.paused_reason}; fix it, then "
                                f"`torc watch {workflow_id} --resume`")
    if cfg.ai_recovery is not None and counts["pending_failed"] and wf["canceled_at"] is None:
        report.ai_agent = run_ai_agent_if_due(db, workflow_id, cfg.ai_recovery, now)
        if report.ai_agent["ran"]:   # its decisions made jobs ready or failed: decide the rest on fresh counts
            counts, snap_row = db.status_counts(workflow_id), db.one("watch_snapshot", workflow_id=workflow_id)
            report.counts = {k: v for k, v in counts.items() if v}
            if report.ai_agent["outcome"] != "ok":
                report.attention.append(report.ai_agent["message"])

    if cfg.auto_schedule and client is not None and wf["canceled_at"] is None:
        snap = auto.Snapshot(now=now, ready=counts["ready"], ready_retries=snap_row["ready_retries"],
                             oldest_retry_ready_at=snap_row["oldest_retry_ready_at"],
                             active_allocations=snap_row["active_allocations"],
                             pending_allocations=snap_row["pending_allocations"],
                             last_auto_schedule_at=state["last_auto_schedule_at"], backoff=backoff)
        decision = auto.decide(snap, cfg.policy)
        report.decision = {"submit": decision.submit, "rule": decision.rule.value, "reason": decision.reason,
                           "wait_until": decision.wait_until}
        if decision.submit:
            max_new = max(1, cfg.policy.max_pending - snap_row["pending_allocations"])
            ready_cpu_s = int(db.one("ready_cpu_seconds", workflow_id=workflow_id)["cpu_seconds"])
            renew()
            if wants is not None:
                from torc_hpc.watch import packed

                w = packed.want(db, workflow_id, client, _submit_options(db, workflow_id, cfg, state),
                                decision.reason, max_new, ready_cpu_s, report, cfg.caps)
                if w is not None:
                    wants.append(w)
            else:
                _auto_submit(db, workflow_id, client, cfg, state, decision.reason, now, max_new, ready_cpu_s,
                             report, backoff, renew)

    if cfg.recover and wf["canceled_at"] is None:
        renew()
        if _recover(db, workflow_id, client, cfg, state, counts, snap_row, report, now):
            counts = db.status_counts(workflow_id)
            report.counts = {k: v for k, v in counts.items() if v}

    if counts["pending_failed"]:
        report.attention.append(f"{counts['pending_failed']} job(s) pending_failed: decide with "
                                f"`torc jobs retry|fail {workflow_id} JOB`")
    still_active = snap_row["active_allocations"] + len(report.submitted)
    report.allocations_active = still_active
    report.done = (counts["ready"] + counts["blocked"] + counts["running"] == 0 and still_active == 0) or (
        wf["canceled_at"] is not None and counts["running"] == 0)
    return report


def _auto_submit(db, workflow_id, client, cfg, state, reason, now, max_new, ready_cpu_s, report, backoff,
                 renew=lambda: None):
    from torc_hpc.watch import packed

    left, why = packed.room(db, db.one("workflow_owner", workflow_id=workflow_id)["owner"], cfg.caps)
    if not left:
        report.decision["deferred"] = why
        return
    max_new = min(max_new, left)
    opts = _submit_options(db, workflow_id, cfg, state)
    try:
        _, _, count = allocs.size_from_ready(db, workflow_id, opts, client, ready_cpu_s, max_new)
        requests = allocs.plan_requests(db, workflow_id, opts, client, count)[:max_new]
    except TorcError as e:
        report.attention.append(f"cannot size an allocation: {e}")
        db.event(workflow_id, "auto_schedule_blocked", detail={"why": str(e)})
        return
    db.run("mark_auto_scheduled", workflow_id=workflow_id, now=now)
    for req in requests:
        renew()
        try:
            a = allocs.submit(db, workflow_id, client, req, opts, submitted_by="watch", reason=reason)
            report.submitted.append({"id": a["id"], "slurm_job_id": a["slurm_job_id"], "reason": reason})
        except SlurmError as e:
            report.attention.append(f"sbatch failed: {e.stderr.strip() or e}")
            # The refused allocation is judged (and backed off) right away, not next cycle.
            b = _judge_allocations(db, workflow_id, cfg.policy, now, backoff)
            _save_backoff(db, workflow_id, b)
            if b.paused_reason:
                report.attention.append(f"auto-schedule paused: {b.paused_reason}; fix it, then "
                                        f"`torc watch {workflow_id} --resume`")
            break
    db.event(workflow_id, "auto_schedule", detail={"reason": reason, "submitted": report.submitted})


def _recover(db, workflow_id, client, cfg, state, counts, snap_row, report, now):
    """When nothing more can run: resize jobs that ran out of memory or time, reset them, resubmit.
    Returns whether it changed anything."""
    if counts["ready"] or counts["running"] or snap_row["active_allocations"] or report.submitted:
        return False  # something can still run
    if not (counts["failed"] or counts["terminated"]):
        return False
    candidates = db.all("recoverable_jobs", workflow_id=workflow_id)
    if state["recovery_rounds"] >= cfg.max_recovery_rounds:
        report.attention.append(f"--recover stopped after {state['recovery_rounds']} rounds; "
                                f"{len(candidates)} job(s) still failed")
        return False
    node = None
    if client is not None:
        try:
            node = client.partition_shape(_submit_options(db, workflow_id, cfg, state).partition)
        except SlurmError:
            node = None
    fixed = _resize_and_reset(db, workflow_id, cfg, candidates, node, report)
    if report.left_alone:
        report.attention.append("not recovered (unknown cause): " +
                                ", ".join(f"{j['name']} (exit {j['return_code']})" for j in report.left_alone))
    if fixed and client is not None:
        opts = _submit_options(db, workflow_id, cfg, state)
        try:
            for req in allocs.plan_requests(db, workflow_id, opts, client, 1):
                a = allocs.submit(db, workflow_id, client, req, opts, submitted_by="watch",
                                  reason=f"--recover resized {len(fixed)} job(s)")
                report.submitted.append({"id": a["id"], "slurm_job_id": a["slurm_job_id"], "reason": "recover"})
        except (TorcError, SlurmError) as e:
            report.attention.append(f"recovered jobs could not be submitted: {e}")
    return bool(fixed)



def _resize_and_reset(db, workflow_id, cfg, candidates, node, report) -> list[int]:
    """Decide each candidate's new size (pure), then resize and reset them in one REPEATABLE READ
    transaction (retried on a conflict: a worker finishing a parent meanwhile must not lose its
    decrement). Returns the ids reset."""
    plans = []
    for j in candidates:
        cause = classify(return_code=j["return_code"], peak_memory_bytes=j["peak_memory_bytes"],
                         memory_bytes=j["memory_bytes"], exec_time_s=j["exec_time_s"], runtime_s=j["runtime_s"])
        if cause is None:
            report.left_alone.append({"id": j["id"], "name": j["name"], "return_code": j["return_code"]})
            continue
        new = adjust(cause, memory_bytes=j["memory_bytes"], runtime_s=j["runtime_s"],
                     memory_multiplier=cfg.memory_multiplier, runtime_multiplier=cfg.runtime_multiplier,
                     max_memory_bytes=node.mem_mb_per_node * 2**20 if node else None,
                     max_runtime_s=(node.max_walltime_s - (cfg.submit.walltime_buffer_s if cfg.submit else 60)
                                    if node and node.max_walltime_s else None))
        if new is None:
            report.left_alone.append({"id": j["id"], "name": j["name"], "return_code": j["return_code"],
                                      "why": f"{cause.value}: already at the node's limit"})
            continue
        plans.append((j, cause, new))
    if not plans:
        return []

    @retry_conflicts
    def apply() -> None:
        with db.repeatable_read():
            for j, cause, new in plans:
                db.run("resize_job", job_id=j["id"], memory_bytes=new.memory_bytes, runtime_s=new.runtime_s)
                db.event(workflow_id, "recovery_resized", job_id=j["id"],
                         detail={"cause": cause.value, "memory_bytes": [j["memory_bytes"], new.memory_bytes],
                                 "runtime_s": [j["runtime_s"], new.runtime_s], "return_code": j["return_code"]})
            db.reset_jobs(workflow_id, [j["id"] for j, _, _ in plans], reason="watch --recover")
            db.one("bump_recovery_round", workflow_id=workflow_id)
            db.notify_ready(workflow_id)

    apply()
    report.recovered.extend({"id": j["id"], "name": j["name"], "cause": cause.value,
                             "memory_bytes": new.memory_bytes, "runtime_s": new.runtime_s} for j, cause, new in plans)
    return [j["id"] for j, _, _ in plans]

def run_locked(db: Database, workflow_id: int, client, cfg: WatchConfig, now: datetime | None = None,
               leases: Leases | None = None) -> CycleReport:
    """run_once under the workflow's lease (watch_state.leased_by); a busy workflow is skipped, not waited
    for. The lease is given back at the end of the cycle."""
    leases = leases or Leases(db)
    if not leases.take(workflow_id):
        return CycleReport(workflow_id, counts={}, skipped=BUSY)
    try:
        return run_once(db, workflow_id, client, cfg, now, renew=leases.renew)
    finally:
        leases.release([workflow_id])


def cron_once(db: Database, client, cfg: WatchConfig) -> list[CycleReport]:
    """`torc watch --all --once`: one pass over the cluster. Take the lease of every workflow with work (one
    statement), ask Slurm about all their allocations at once (one squeue, at most one sacct), then run
    each workflow's cycle on that answer. Workflows another watcher holds are skipped."""
    plan_per_workflow(db)
    ids = [row["id"] for row in db.all("workflows_with_work")]
    if cfg.ai_recovery is not None:   # a workflow whose only unfinished jobs await a decision counts too
        ids = sorted(set(ids) | {row["id"] for row in db.all("workflows_with_pending_failed")})
    leases = Leases(db)
    mine = leases.take_many(ids)
    reports = {wf: CycleReport(wf, counts={}, skipped=BUSY) for wf in ids if wf not in mine}
    try:
        slurm: dict[str, dict] = {}
        if client is not None and mine:
            try:
                slurm = allocs.refresh_cluster(db, client, mine)
            except SlurmError as e:   # Slurm is away: decide nothing on a half-known cluster, say so once
                r = CycleReport(None, counts={})
                r.attention.append(f"Slurm did not answer ({e}); no workflow was looked at this time")
                return [r, *reports.values()]
        wants: list = []
        now = utcnow()
        for wf_id in sorted(mine):
            leases.renew()
            try:
                reports[wf_id] = run_once(db, wf_id, client, cfg, now=now, renew=leases.renew, slurm=slurm,
                                          wants=wants)
            except TorcError as e:
                r = CycleReport(wf_id, counts={})
                r.attention.append(str(e))
                reports[wf_id] = r
        if wants:
            from torc_hpc.watch import packed

            packed.submit_plan(db, client, wants, cfg.caps, now, leases.renew,
                               on_failure=lambda wf_ids, why: _refused(db, wf_ids, cfg, now, reports))
            for w in wants:   # what they submitted counts as alive
                w.report.allocations_active += len(w.report.submitted)
    finally:
        leases.release()
    return [reports[wf] for wf in ids]


def _refused(db: Database, workflow_ids, cfg: WatchConfig, now: datetime, reports: dict) -> None:
    """An sbatch of the cron pass was refused: every workflow it was for backs off (and may pause)."""
    for wf in workflow_ids:
        state = db.one("get_watch_state", workflow_id=wf)
        b = _judge_allocations(db, wf, cfg.policy, now, _backoff(state))   # the home's refused row, if its own
        if b == _backoff(state):
            b = auto.after_failure(b, now, cfg.policy, "sbatch refused a packed allocation")
        _save_backoff(db, wf, b)
        if b.paused_reason:
            reports[wf].attention.append(f"auto-schedule paused: {b.paused_reason}; fix it, then "
                                         f"`torc watch {wf} --resume`")


def loop(db: Database, workflow_id: int, client, cfg: WatchConfig, poll_interval_s: float,
         on_cycle: Callable[[CycleReport], None], sleep: Callable[[float], None] = time.sleep) -> CycleReport:
    """Cycles until the workflow is done (nothing left to run and no allocation alive)."""
    leases = Leases(db)
    while True:
        report = run_locked(db, workflow_id, client, cfg, leases=leases)
        on_cycle(report)
        if report.done:
            return report
        sleep(poll_interval_s)
