"""Which allocations the cron watcher submits in one pass: small workflows of one owner packed together, and
the caps on pending allocations per owner and in total. Pure: plain data in, a plan out.

A workflow whose ready work fits well inside one allocation would get an allocation of its own, and 500 of
them would queue 500 jobs in Slurm. Instead the watcher packs such workflows, per owner and per set of
sbatch options, into as few allocations as their work fits (first fit, largest first); each runs one worker
that serves all of them (`torc worker --workflows 3,7,9`). A packed allocation holds one owner's workflows
only: it is submitted as that owner and its worker connects as that owner's role.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from torc_hpc.core.allocation import STARTUP_SLACK_S, Shape, Waiting


@dataclass(frozen=True)
class Caps:
    per_owner: int = 10              # pending (queued) allocations one owner may have, all workflows together
    total: int = 100                 # pending allocations of everyone together
    workflows_per_allocation: int = 50   # workflows one packed allocation's worker serves at most
    pack_walltime_s: int = 3600      # a packed allocation may run this long to hold more small workflows


@dataclass(frozen=True)
class Node:
    """What the partition offers per node (its smallest node), and the worker's walltime buffer."""

    cpus: int
    mem_mb: int
    max_walltime_s: int | None
    buffer_s: int


@dataclass(frozen=True)
class Demand:
    """One workflow the auto-schedule decided to submit for, this pass.

    `allocations` is how many it asked for (sized from its ready work). `share` is its waiting work when it
    may share an allocation (every waiting job without a slurm_schedulers entry, default sbatch template,
    nothing that fixes the shape); None: it gets its own. `group` is what must be equal to share one
    allocation (the sbatch options and worker settings), `node` the partition's node for that group."""

    workflow_id: int
    owner: str
    allocations: int
    ready_cpu_s: int = 0
    share: Waiting | None = None
    group: tuple = ()
    node: Node | None = None


@dataclass(frozen=True)
class Submission:
    """One allocation to submit: one workflow's own, or a pack of several (then `shape` says its size)."""

    owner: str
    workflow_ids: tuple[int, ...]
    shape: Shape | None = None       # None: the workflow's own request decides (one of `allocations`)
    index: int = 0                   # which of a workflow's own allocations (0, 1, ...)

    @property
    def packed(self) -> bool:
        return self.shape is not None


@dataclass(frozen=True)
class Plan:
    submit: list[Submission] = field(default_factory=list)
    deferred: dict[int, str] = field(default_factory=dict)   # workflow id → why nothing was submitted now


def usable_s(walltime_s: int, node: Node) -> int:
    """Seconds of an allocation's walltime its worker can run jobs in."""
    return max(0, walltime_s - node.buffer_s - STARTUP_SLACK_S)


def pack_limit_s(node: Node, caps: Caps) -> int:
    return min(caps.pack_walltime_s, node.max_walltime_s) if node.max_walltime_s else caps.pack_walltime_s


def small(d: Demand, caps: Caps) -> bool:
    """May this workflow share an allocation? It asked for one, its work may share, and its ready work and
    longest job fit one packed allocation."""
    if d.share is None or d.node is None or d.allocations != 1 or d.share.max_gpus:
        return False
    limit = pack_limit_s(d.node, caps)
    return (d.share.max_runtime_s <= usable_s(limit, d.node) and d.share.max_cpus <= d.node.cpus
            and d.share.max_memory_bytes <= d.node.mem_mb * 2**20
            and d.ready_cpu_s <= d.node.cpus * usable_s(limit, d.node))


def merged(works: list[Waiting]) -> Waiting:
    return Waiting(jobs=sum(w.jobs for w in works), cpus=sum(w.cpus for w in works),
                   max_cpus=max(w.max_cpus for w in works), memory_bytes=sum(w.memory_bytes for w in works),
                   max_memory_bytes=max(w.max_memory_bytes for w in works),
                   max_runtime_s=max(w.max_runtime_s for w in works), max_gpus=max(w.max_gpus for w in works),
                   ready=sum(w.ready for w in works))


def pack_shape(works: list[Waiting], ready_cpu_s: int, node: Node, caps: Caps) -> Shape:
    """One node; CPUs for the parallel work there is (never more than the node has); memory for as many of
    the largest jobs as can run at once; a walltime that fits the longest job and the ready work spread
    over those CPUs (whole minutes, within the pack limit)."""
    w = merged(works)
    cpus = max(1, min(node.cpus, max(w.max_cpus, w.cpus)))
    at_once = max(1, cpus // max(1, w.max_cpus))
    mem_mb = math.ceil(max(w.max_memory_bytes, min(w.memory_bytes, at_once * w.max_memory_bytes)) / 2**20)
    mem_mb = max(1, min(node.mem_mb, mem_mb))
    run_s = max(w.max_runtime_s, math.ceil(ready_cpu_s / cpus))
    walltime = max(60, math.ceil((run_s + node.buffer_s + STARTUP_SLACK_S) / 60) * 60)
    return Shape(nodes=1, cpus_per_node=cpus, mem_mb_per_node=mem_mb,
                 walltime_s=min(walltime, pack_limit_s(node, caps)))


def plan(demands: list[Demand], pending_by_owner: dict[str, int], pending_total: int, caps: Caps) -> Plan:
    """The allocations to submit this pass, and why the others wait.

    1. Small workflows (see `small`) of one owner and group are packed first fit, largest ready work first,
       into bins of at most `workflows_per_allocation` workflows whose ready work fits the node's CPUs for
       the pack walltime. A bin of one is that workflow's own allocation, sized as it asked.
    2. Every other workflow keeps the allocations it asked for.
    3. Caps: no owner goes over `per_owner` pending allocations and nobody over `total`, counting what is
       already queued; owners take turns (one allocation each per round, in order of their first workflow)
       so one owner's backlog cannot take the whole total.
    """
    by_owner: dict[str, list[Submission]] = {}
    bins: dict[tuple, list[list]] = {}        # (owner, group) → [[demands...], cpu_s, limit_s]
    for d in sorted(demands, key=lambda d: (-d.ready_cpu_s, d.workflow_id)):
        if not small(d, caps):
            continue
        key = (d.owner, d.group)
        cap_s = d.node.cpus * usable_s(pack_limit_s(d.node, caps), d.node)
        for b in bins.setdefault(key, []):
            if len(b[0]) < caps.workflows_per_allocation and b[1] + d.ready_cpu_s <= cap_s:
                b[0].append(d)
                b[1] += d.ready_cpu_s
                break
        else:
            bins[key].append([[d], d.ready_cpu_s])
    packed: set[int] = set()
    for (owner, _), group_bins in bins.items():
        for members, cpu_s in group_bins:
            if len(members) == 1:
                continue                    # alone: its own allocation, as it asked
            ids = tuple(sorted(m.workflow_id for m in members))
            packed.update(ids)
            shape = pack_shape([m.share for m in members], cpu_s, members[0].node, caps)
            by_owner.setdefault(owner, []).append(Submission(owner, ids, shape))
    for d in sorted(demands, key=lambda d: d.workflow_id):
        if d.workflow_id not in packed:
            by_owner.setdefault(d.owner, []).extend(
                Submission(d.owner, (d.workflow_id,), None, i) for i in range(d.allocations))
    for subs in by_owner.values():
        subs.sort(key=lambda s: s.workflow_ids[0])

    out = Plan()
    pending = dict(pending_by_owner)
    total = pending_total
    queues = {o: list(s) for o, s in sorted(by_owner.items(), key=lambda kv: kv[1][0].workflow_ids[0])}
    while queues:
        for owner in list(queues):
            sub = queues[owner]
            if total >= caps.total or pending.get(owner, 0) >= caps.per_owner:
                why = (f"{total} allocation(s) pending in all (cap {caps.total}, --max-pending-total)"
                       if total >= caps.total else
                       f"owner {owner} has {pending.get(owner, 0)} allocation(s) pending (cap {caps.per_owner}, "
                       f"--max-pending-per-owner)")
                for s in sub:
                    for wf in s.workflow_ids:
                        out.deferred.setdefault(wf, why)
                del queues[owner]
                continue
            out.submit.append(sub.pop(0))
            pending[owner] = pending.get(owner, 0) + 1
            total += 1
            if not sub:
                del queues[owner]
    # A workflow that got some of its allocations is not deferred.
    got = {wf for s in out.submit for wf in s.workflow_ids}
    return replace(out, deferred={wf: why for wf, why in out.deferred.items() if wf not in got})
