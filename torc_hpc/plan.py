"""What a workflow would do, before it exists: `torc workflows plan SPEC` and `torc run SPEC --dry-run`.

`levels` and `summarize` are pure (an expanded workflow in, plain data out); `plan_file` is the thin edge that
reads the spec and, where Slurm is installed, asks it once for the partition's node size.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from torc_hpc.core.allocation import Waiting
from torc_hpc.limits import PLAN_MAX_STAGES

if TYPE_CHECKING:
    from torc_hpc.spec.expand import ExpandedWorkflow


def levels(n: int, parents, children) -> array:
    """Topological level of every job: 0 for jobs without parents, else 1 + the deepest parent.
    O(jobs + edges) time, two integer arrays of memory (Kahn's algorithm over a CSR adjacency)."""
    indeg = array("q", [0]) * n
    outdeg = array("q", [0]) * (n + 1)
    for p, c in zip(parents, children):
        indeg[c] += 1
        outdeg[p + 1] += 1
    for i in range(n):                       # prefix sums: start of each job's children
        outdeg[i + 1] += outdeg[i]
    adj = array("q", [0]) * len(parents)
    fill = array("q", outdeg[:n])
    for p, c in zip(parents, children):
        adj[fill[p]] = c
        fill[p] += 1
    level = array("q", [0]) * n
    queue = array("q", (i for i in range(n) if indeg[i] == 0))
    head = 0
    while head < len(queue):
        j = queue[head]
        head += 1
        nxt = level[j] + 1
        for k in range(outdeg[j], outdeg[j + 1]):
            c = adj[k]
            if level[c] < nxt:
                level[c] = nxt
            indeg[c] -= 1
            if indeg[c] == 0:
                queue.append(c)
    return level


@dataclass
class Stage:
    level: int
    jobs: int
    groups: list[tuple[str, int]]           # (job name as written in the spec, count), largest first
    cpu_hours: float


@dataclass
class Plan:
    name: str
    jobs: int
    dependencies: int
    stages_total: int
    stages: list[Stage]
    cpu_hours: float
    gpu_hours: float
    memory_bytes: int                        # sum of every job's request
    largest_job: dict                        # the biggest CPU-time request
    max_request: dict                        # the largest single request per resource, with a job that has it
    failure_handlers: dict[str, int]         # handler → jobs using it
    jobs_with_handlers: int
    schedulers: dict[str | None, Waiting] = field(default_factory=dict)
    allocations: list[dict] = field(default_factory=list)   # filled by plan_file when Slurm shapes are asked for
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["stages"] = [{"level": s.level, "jobs": s.jobs, "cpu_hours": s.cpu_hours,
                        "groups": [{"name": g, "jobs": n} for g, n in s.groups]} for s in self.stages]
        d["schedulers"] = {k or "": asdict(v) for k, v in self.schedulers.items()}
        return d


def summarize(ex: "ExpandedWorkflow") -> Plan:
    """The plan of an expanded workflow: stages, totals, the largest requests, handlers, waiting work."""
    jobs = ex.jobs
    lv = levels(len(jobs), ex.parents, ex.children)
    templates = [j.name for j in ex.spec.jobs]
    per_level: dict[int, Counter] = defaultdict(Counter)
    cpu_s_level: dict[int, float] = defaultdict(float)
    cpu_s = gpu_s = 0.0
    mem = 0
    handlers: Counter = Counter()
    biggest = None
    maxima = {"cpus": (0, None), "gpus": (0, None), "memory_bytes": (0, None), "runtime_s": (0, None)}
    sched: dict[str | None, list] = {}
    for i, j in enumerate(jobs):
        per_level[lv[i]][templates[j.spec_index]] += 1
        cpus = j.num_cpus * j.num_nodes
        c = cpus * j.runtime_s
        cpu_s += c
        cpu_s_level[lv[i]] += c
        gpu_s += j.num_gpus * j.num_nodes * j.runtime_s
        mem += j.memory_bytes
        if j.failure_handler:
            handlers[j.failure_handler] += 1
        if biggest is None or (c, j.memory_bytes) > biggest[0]:
            biggest = ((c, j.memory_bytes), j)
        for key, value in (("cpus", cpus), ("gpus", j.num_gpus), ("memory_bytes", j.memory_bytes),
                           ("runtime_s", j.runtime_s)):
            if value > maxima[key][0]:
                maxima[key] = (value, j.name)
        w = sched.setdefault(j.scheduler, [0, 0, 0, 0, 0, 0, 0])
        w[0] += 1
        w[1] += j.num_cpus
        w[2] = max(w[2], j.num_cpus)
        w[3] += j.memory_bytes
        w[4] = max(w[4], j.memory_bytes)
        w[5] = max(w[5], j.runtime_s)
        w[6] = max(w[6], j.num_gpus)
    order = sorted(per_level)
    stages = [Stage(level=k, jobs=sum(per_level[k].values()),
                    groups=per_level[k].most_common(), cpu_hours=cpu_s_level[k] / 3600)
              for k in order[:PLAN_MAX_STAGES]]
    b = biggest[1] if biggest else None
    largest = ({"name": b.name, "num_cpus": b.num_cpus, "num_nodes": b.num_nodes, "num_gpus": b.num_gpus,
                "memory_bytes": b.memory_bytes, "runtime_s": b.runtime_s} if b else {})
    return Plan(
        name=ex.spec.name, jobs=len(jobs), dependencies=ex.edge_count, stages_total=len(order), stages=stages,
        cpu_hours=cpu_s / 3600, gpu_hours=gpu_s / 3600, memory_bytes=mem, largest_job=largest,
        max_request={k: {"value": v, "job": n} for k, (v, n) in maxima.items()},
        failure_handlers=dict(handlers), jobs_with_handlers=sum(handlers.values()),
        schedulers={k: Waiting(jobs=v[0], cpus=v[1], max_cpus=v[2], memory_bytes=v[3], max_memory_bytes=v[4],
                               max_runtime_s=v[5], max_gpus=v[6], ready=0) for k, v in sched.items()})


def plan_file(path: str | Path, *, opts=None, client=None, count: int = 1, slurm: bool | None = None,
              limits=None) -> Plan:
    """Validate and expand a spec file (nothing is written) and plan it. With Slurm (a client, or
    slurm_schedulers in the spec, or slurm=True), add the allocation shapes `torc submit-slurm` would use."""
    from torc_hpc.core.units import parse_duration
    from torc_hpc.errors import SlurmError
    from torc_hpc.slurm.allocations import SubmitOptions, request_for
    from torc_hpc.spec import expand_workflow, load_spec

    spec, locator = load_spec(path)
    ex = expand_workflow(spec, locator, str(path), limits)
    p = summarize(ex)
    want = slurm if slurm is not None else (client is not None or bool(spec.slurm_schedulers))
    if not want:
        return p
    opts = opts or SubmitOptions()
    schedulers = {s.name: {"partition": s.partition, "walltime_s": parse_duration(s.walltime), "nodes": s.nodes,
                           "cpus_per_node": s.cpus_per_node, "mem": s.mem, "account": s.account, "qos": s.qos,
                           "gres": s.gres, "extra": s.extra} for s in spec.slurm_schedulers}
    nodes = {}
    for name, w in sorted(p.schedulers.items(), key=lambda kv: kv[0] or ""):
        sch = schedulers.get(name) if name else None
        partition = opts.partition or (sch and sch["partition"])
        node = None
        if client is not None:
            if partition not in nodes:
                try:
                    nodes[partition] = client.partition_shape(partition)
                except SlurmError as e:
                    nodes[partition] = None
                    p.notes.append(f"could not ask Slurm about partition {partition or '(default)'}: "
                                   f"{e.stderr.strip() or e}")
            node = nodes[partition]
        elif not p.notes:
            p.notes.append("Slurm is not installed here: shapes are sized from the jobs alone, without the "
                           "partition's node size")
        req, problems = request_for(name, w, sch, opts, node, count)
        p.allocations.append({"scheduler": name, "jobs": w.jobs, "account": req.account, "partition": partition,
                              "nodes": req.shape.nodes, "cpus_per_node": req.shape.cpus_per_node,
                              "mem_mb_per_node": req.shape.mem_mb_per_node, "walltime_s": req.shape.walltime_s,
                              "gpus_per_node": req.shape.gpus_per_node, "qos": req.qos, "count": count,
                              "problems": problems})
    return p
