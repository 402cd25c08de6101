"""The cron pass's submissions: what each workflow wants (`want`), then one plan for all of them
(core.packing: small workflows of one owner share allocations; caps on pending allocations per owner and in
total), then one sbatch per allocation of that plan, each as its owner (`submit_plan`).

The per-workflow cycles (watch.cycle.run_once) decide *whether* a workflow needs allocations, as before;
only the submitting is gathered here, after every workflow has been looked at.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime

from torc_hpc.core import packing
from torc_hpc.db.repo import Database
from torc_hpc.errors import SlurmError, TorcError
from torc_hpc.slurm import allocations as allocs

log = logging.getLogger("torc.watch")


@dataclass
class Want:
    """A workflow the auto-schedule decided to submit for, with what submitting needs later."""

    demand: packing.Demand
    opts: allocs.SubmitOptions
    reason: str
    report: object                                      # its CycleReport (submissions are added to it)
    max_new: int
    requests: list = field(default_factory=list)        # its own requests (when it is not packed)


def worker_serves_several() -> bool:
    """Whether this installation's `torc worker` takes `--workflows 3,7,9` (a packed allocation runs it).
    Until it does, every workflow keeps allocations of its own."""
    import inspect

    from torc_hpc.cli.run import worker

    return any("--workflows" in (getattr(p.default, "param_decls", None) or ())
               for p in inspect.signature(worker).parameters.values())


def pending_counts(db: Database) -> tuple[dict[str, int], int]:
    by_owner = {r["owner"]: r["pending"] for r in db.all("pending_allocations_by_owner")}
    return by_owner, sum(by_owner.values())


def want(db: Database, workflow_id: int, client, opts: allocs.SubmitOptions, reason: str, max_new: int,
         ready_cpu_s: int, report, caps: packing.Caps) -> Want | None:
    """Size what one workflow needs (as _auto_submit would) and say whether it may share an allocation.
    None (with the reason in `report.attention`) when it cannot be sized."""
    try:
        req, requests, count = allocs.size_from_ready(db, workflow_id, opts, client, ready_cpu_s, max_new)
        node_shape = client.partition_shape(req.partition)
    except TorcError as e:
        report.attention.append(f"cannot size an allocation: {e}")
        db.event(workflow_id, "auto_schedule_blocked", detail={"why": str(e)})
        return None
    owner = db.one("workflow_owner", workflow_id=workflow_id)["owner"]
    waiting = allocs.waiting_work(db, workflow_id)
    # Shared only when nothing but the work decides the shape: no slurm_schedulers entry, no shape given on
    # the command line or saved, the default template (it knows ${worker_target}), one node, no GPUs.
    shareable = (caps.workflows_per_allocation > 1 and worker_serves_several() and set(waiting) == {None}
                 and len(requests) == 1 and opts.template is None and opts.nodes is None and opts.mem is None
                 and opts.walltime is None and opts.gres is None and req.gres is None and not req.tmp
                 and not req.ntasks_per_node and not req.serialize)
    group = (req.account, req.partition, req.qos, tuple(req.extra), json.dumps(req.defaults, sort_keys=True),
             opts.idle_timeout_s, opts.walltime_buffer_s, opts.max_parallel_jobs)
    node = packing.Node(cpus=node_shape.cpus_per_node, mem_mb=node_shape.mem_mb_per_node,
                        max_walltime_s=node_shape.max_walltime_s, buffer_s=opts.walltime_buffer_s)
    demand = packing.Demand(workflow_id=workflow_id, owner=owner, allocations=count, ready_cpu_s=ready_cpu_s,
                            share=waiting[None] if shareable else None, group=group, node=node)
    return Want(demand, opts, reason, report, max_new, requests=[req])


def submit_plan(db: Database, client, wants: list[Want], caps: packing.Caps, now: datetime,
                renew, on_failure) -> packing.Plan:
    """Plan every wanted allocation at once and submit the plan. `on_failure(workflow_ids, why)` applies the
    back-off to the workflows whose sbatch was refused. An owner whose sbatch is refused gets nothing more
    this pass (its account or QOS is likely wrong for all its workflows)."""
    by_wf = {w.demand.workflow_id: w for w in wants}
    pending, total = pending_counts(db)
    plan = packing.plan([w.demand for w in wants], pending, total, caps)
    refused: dict[str, str] = {}
    own_requests: dict[int, list] = {}
    submitted_for: set[int] = set()
    for sub in plan.submit:
        home = by_wf[sub.workflow_ids[0]]
        if sub.owner in refused:
            for wf in sub.workflow_ids:
                plan.deferred.setdefault(wf, f"an sbatch for owner {sub.owner} was refused this pass")
            continue
        renew()
        try:
            if sub.packed:
                request = replace(home.requests[0], shape=sub.shape)
                reason = f"packed: {len(sub.workflow_ids)} small workflows of {sub.owner} share this allocation"
                a = allocs.submit(db, sub.workflow_ids[0], client, request, home.opts, submitted_by="watch",
                                  reason=reason, workflows=sub.workflow_ids)
            else:
                wf = sub.workflow_ids[0]
                if wf not in own_requests:
                    count = home.demand.allocations
                    own_requests[wf] = allocs.plan_requests(db, wf, home.opts, client, count)[:home.max_new]
                if sub.index >= len(own_requests[wf]):
                    continue
                reason = home.reason
                a = allocs.submit(db, wf, client, own_requests[wf][sub.index], home.opts, submitted_by="watch",
                                  reason=reason)
        except (SlurmError, TorcError) as e:
            why = (e.stderr.strip() if isinstance(e, SlurmError) and e.stderr else "") or str(e)
            refused[sub.owner] = why
            for wf in sub.workflow_ids:
                by_wf[wf].report.attention.append(f"sbatch failed: {why}")
            on_failure(sub.workflow_ids, why)
            continue
        for wf in sub.workflow_ids:
            entry = {"id": a["id"], "slurm_job_id": a["slurm_job_id"], "reason": reason}
            if sub.packed:
                entry["workflows"] = list(sub.workflow_ids)
            by_wf[wf].report.submitted.append(entry)
            submitted_for.add(wf)
    for wf in sorted(submitted_for):
        db.run("mark_auto_scheduled", workflow_id=wf, now=now)
        db.event(wf, "auto_schedule", detail={"reason": by_wf[wf].reason, "submitted": by_wf[wf].report.submitted})
    for wf, why in plan.deferred.items():
        if wf not in submitted_for and by_wf[wf].report.decision is not None:
            by_wf[wf].report.decision["deferred"] = why
    return plan


def room(db: Database, owner: str, caps: packing.Caps) -> tuple[int, str | None]:
    """How many more allocations this owner may queue now (one workflow's watcher honours the caps too)."""
    pending, total = pending_counts(db)
    mine = pending.get(owner, 0)
    left = min(caps.per_owner - mine, caps.total - total)
    if left > 0:
        return left, None
    if total >= caps.total:
        return 0, f"{total} allocation(s) pending in all (cap {caps.total}, --max-pending-total)"
    return 0, f"owner {owner} has {mine} allocation(s) pending (cap {caps.per_owner}, --max-pending-per-owner)"
