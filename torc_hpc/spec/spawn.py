"""A `torc jobs spawn` batch (Torc's spawn_jobs): validated and planned before anything is written. Pure.

A batch is a JSON list of jobs, each {name, command, depends_on?, resource_requirements?, priority?,
cancel_on_blocking_job_failure?}. Every spawned job waits for the job that spawns it (an implicit edge);
`depends_on` may name other jobs of the same batch or jobs of the workflow that already completed. A job
still running elsewhere cannot be named: its finish could pass the new edge by (its statement's snapshot
predates this transaction), leaving the child blocked for good; wait for it by spawning later instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field, ValidationError

from torc_hpc.spec.models import Command, Int4, Name, ResourceRequirementsSpec, _Strict

MAX_SPAWN_JOBS = 100_000   # jobs in one call (one transaction)


class SpawnJobSpec(_Strict):
    name: Name
    command: Command
    depends_on: list[Name] = Field(default_factory=list)
    resource_requirements: Name | ResourceRequirementsSpec | None = None
    priority: Int4 = 0
    cancel_on_blocking_job_failure: bool = True


@dataclass
class PlannedJob:
    name: str
    command: str
    priority: int
    cancel_on_blocking_job_failure: bool
    resources: ResourceRequirementsSpec
    resource_requirements: str | None
    siblings: list[int] = field(default_factory=list)   # indexes of batch jobs it waits for
    external: list[str] = field(default_factory=list)   # names of existing jobs it waits for


class SpawnRejected(ValueError):
    """The batch is not valid; nothing was written. The message lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems[:20]) + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""))


def resource_table(spec: dict | None) -> dict[str, ResourceRequirementsSpec]:
    """The workflow's named resource_requirements, from its stored spec."""
    out = {}
    for rr in (spec or {}).get("resource_requirements") or []:
        r = ResourceRequirementsSpec(**rr)
        if r.name:
            out[r.name] = r
    return out


def plan_batch(batch, resources: dict[str, ResourceRequirementsSpec]) -> list[PlannedJob]:
    """Validate a batch (the parsed JSON) and resolve names: sibling edges (no cycle), external names,
    resources. Raises SpawnRejected listing every problem."""
    if not isinstance(batch, list):
        raise SpawnRejected(["the batch must be a JSON list of jobs, e.g. [{\"name\": \"a\", \"command\": \"echo a\"}]"])
    if len(batch) > MAX_SPAWN_JOBS:
        raise SpawnRejected([f"a batch holds at most {MAX_SPAWN_JOBS:,} jobs, not {len(batch):,}"])
    problems: list[str] = []
    specs: list[SpawnJobSpec] = []
    for i, item in enumerate(batch):
        try:
            specs.append(SpawnJobSpec.model_validate(item))
        except ValidationError as e:
            for err in e.errors():
                where = ".".join(str(x) for x in err["loc"]) or "job"
                problems.append(f"job {i + 1}: {where}: {err['msg']}")
    if problems:
        raise SpawnRejected(problems)
    index: dict[str, int] = {}
    for i, s in enumerate(specs):
        if s.name in index:
            problems.append(f"job {i + 1}: the name '{s.name}' appears twice in the batch")
        index[s.name] = i
    planned = []
    for i, s in enumerate(specs):
        rr = s.resource_requirements
        if isinstance(rr, str):
            if rr not in resources:
                known = ", ".join(sorted(resources)) or "none"
                problems.append(f"job '{s.name}': unknown resource_requirements '{rr}' (the workflow has: {known})")
                continue
            res, rr_name = resources[rr], rr
        else:
            res, rr_name = rr or ResourceRequirementsSpec(), None
        job = PlannedJob(s.name, s.command, s.priority, s.cancel_on_blocking_job_failure, res, rr_name)
        for dep in s.depends_on:
            if dep == s.name:
                problems.append(f"job '{s.name}' depends on itself")
            elif dep in index:
                job.siblings.append(index[dep])
            else:
                job.external.append(dep)
        planned.append(job)
    if problems:
        raise SpawnRejected(problems)
    cycle = _cycle(planned)
    if cycle:
        raise SpawnRejected([f"the batch's depends_on form a cycle: {' → '.join(cycle)}"])
    return planned


def _cycle(jobs: list[PlannedJob]) -> list[str] | None:
    """A dependency cycle among the batch's jobs, as names, or None (iterative DFS)."""
    state = [0] * len(jobs)   # 0 new, 1 on the stack, 2 done
    for start in range(len(jobs)):
        if state[start]:
            continue
        stack = [(start, iter(jobs[start].siblings))]
        path = [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state[nxt] == 1:
                loop = path[path.index(nxt):] + [nxt]
                return [jobs[k].name for k in loop]
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(jobs[nxt].siblings)))
                path.append(nxt)
    return None
