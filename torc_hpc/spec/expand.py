"""Expand a validated spec into concrete jobs and edges, checking names, references and cycles."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from torc_hpc.core.units import parse_duration, parse_memory
from torc_hpc.errors import SpecError, SpecProblem
from torc_hpc.spec.models import ResourceRequirementsSpec, WorkflowSpec
from torc_hpc.spec.params import combinations, parse_values, placeholders, substitute

DEFAULT_RESOURCES = ResourceRequirementsSpec()


@dataclass(slots=True)
class ExpandedJob:
    name: str
    command: str
    priority: int
    num_cpus: int
    num_gpus: int
    num_nodes: int
    memory_bytes: int
    runtime_s: int
    failure_handler: str | None
    cancel_on_blocking_job_failure: bool
    scheduler: str | None
    resource_requirements: str | None
    spec_index: int  # which entry of `jobs:` produced it


@dataclass
class ExpandedWorkflow:
    spec: WorkflowSpec
    jobs: list[ExpandedJob]
    edges: list[tuple[int, int]]  # (parent index, child index), deduplicated
    in_degree: list[int] = field(default_factory=list)


def _script_problem(script: str, base_dir: Path) -> str | None:
    try:
        argv = shlex.split(script)
    except ValueError as e:
        return f"cannot parse recovery_script {script!r}: {e}"
    if not argv:
        return "recovery_script is empty"
    exe = argv[0]
    if "/" in exe:
        p = Path(exe) if os.path.isabs(exe) else base_dir / exe
        if not p.exists():
            return f"recovery_script {exe!r} not found (paths are relative to where torc runs: {base_dir})"
        if not os.access(p, os.X_OK):
            return f"recovery_script {exe!r} is not executable: run chmod +x {exe}"
        return None
    if shutil.which(exe) is None:
        return f"recovery_script {exe!r} is not on PATH; for a file here write ./{exe}"
    return None


def validate_references(spec: WorkflowSpec, locator, path: str, base_dir: Path) -> list[SpecProblem]:
    """Checks that need the whole spec but not expansion: names that must exist, scripts, values."""
    problems: list[SpecProblem] = []

    def add(msg, loc, job=None, fld=None):
        problems.append(SpecProblem(msg, job=job, field=fld, line=locator.line(loc), path=path))

    handlers = {}
    for i, h in enumerate(spec.failure_handlers):
        if h.name in handlers:
            add(f"failure handler '{h.name}' is defined twice", ("failure_handlers", i, "name"))
        handlers[h.name] = h
        for r, rule in enumerate(h.rules):
            loc = ("failure_handlers", i, "rules", r)
            if not rule.exit_codes and not rule.match_all_exit_codes:
                add(f"handler '{h.name}' rule {r + 1} matches nothing: give exit_codes or "
                    "match_all_exit_codes: true", loc)
            if rule.recovery_script:
                msg = _script_problem(rule.recovery_script, base_dir)
                if msg:
                    add(f"handler '{h.name}': {msg}", loc + ("recovery_script",))
    resources = {}
    for i, rr in enumerate(spec.resource_requirements):
        if not rr.name:
            add("a named resource_requirements entry needs a name", ("resource_requirements", i))
        elif rr.name in resources:
            add(f"resource_requirements '{rr.name}' is defined twice", ("resource_requirements", i, "name"))
        resources[rr.name] = rr
    schedulers = {s.name for s in spec.slurm_schedulers}

    for i, job in enumerate(spec.jobs):
        jloc = ("jobs", i)
        if job.failure_handler and job.failure_handler not in handlers:
            known = ", ".join(sorted(handlers)) or "none defined"
            add(f"unknown failure handler '{job.failure_handler}' (known: {known})",
                jloc + ("failure_handler",), job.name, "failure_handler")
        rr = job.resource_requirements
        if isinstance(rr, str) and not placeholders(rr) and rr not in resources:
            known = ", ".join(sorted(resources)) or "none defined"
            add(f"unknown resource_requirements '{rr}' (known: {known})",
                jloc + ("resource_requirements",), job.name, "resource_requirements")
        if job.scheduler and not placeholders(job.scheduler) and job.scheduler not in schedulers:
            known = ", ".join(sorted(schedulers)) or "none defined"
            add(f"unknown scheduler '{job.scheduler}' (known: {known})", jloc + ("scheduler",),
                job.name, "scheduler")
        for key, raw in job.parameters.items():
            try:
                parse_values(raw)
            except ValueError as e:
                add(str(e), jloc + ("parameters", key), job.name, f"parameters.{key}")
        for r, rx in enumerate(job.depends_on_regexes):
            try:
                re.compile(rx)
            except re.error as e:
                add(f"bad regular expression {rx!r}: {e}", jloc + ("depends_on_regexes", r),
                    job.name, "depends_on_regexes")
    return problems


def expand_workflow(spec: WorkflowSpec, locator=None, path: str = "<spec>") -> ExpandedWorkflow:
    """Turn the spec into concrete jobs and dependency edges. Raises SpecError with every problem."""
    line = (lambda loc: locator.line(loc)) if locator else (lambda loc: None)
    problems: list[SpecProblem] = []
    resources = {rr.name: rr for rr in spec.resource_requirements}
    jobs: list[ExpandedJob] = []
    # per expanded job: the raw dependency names it asked for (kept apart to resolve after naming)
    wanted: list[tuple[list[str], list[str]]] = []

    for i, js in enumerate(spec.jobs):
        params = {k: parse_values(v) for k, v in js.parameters.items()}
        try:
            combos = combinations(params, js.parameter_mode)
        except ValueError as e:
            problems.append(SpecProblem(str(e), job=js.name, field="parameter_mode",
                                        line=line(("jobs", i, "parameter_mode")), path=path))
            continue
        used = placeholders(js.name) & set(params)
        if params and not used:
            # One job standing for all combinations: depends_on is the union over them.
            groups = [{}]
            deps = _union(substitute(d, c) for d in js.depends_on for c in combos)
            rxs = _union(substitute(r, c) for r in js.depends_on_regexes for c in combos)
            fixed = [(deps, rxs)]
        else:
            groups = combos
            fixed = None
        for g, values in enumerate(groups):
            name = substitute(js.name, values)
            rr = js.resource_requirements
            if isinstance(rr, str):
                rr_name = substitute(rr, values)
                res = resources.get(rr_name)
                if res is None:
                    problems.append(SpecProblem(f"unknown resource_requirements '{rr_name}'", job=name,
                                                field="resource_requirements",
                                                line=line(("jobs", i, "resource_requirements")), path=path))
                    res = DEFAULT_RESOURCES
            elif rr is None:
                rr_name, res = None, DEFAULT_RESOURCES
            else:
                rr_name, res = rr.name, rr
            jobs.append(ExpandedJob(
                name=name,
                command=substitute(js.command, values),
                priority=js.priority,
                num_cpus=res.num_cpus,
                num_gpus=res.num_gpus,
                num_nodes=res.num_nodes,
                memory_bytes=parse_memory(res.memory),
                runtime_s=parse_duration(res.runtime),
                failure_handler=js.failure_handler,
                cancel_on_blocking_job_failure=js.cancel_on_blocking_job_failure,
                scheduler=substitute(js.scheduler, values) if js.scheduler else None,
                resource_requirements=rr_name,
                spec_index=i,
            ))
            if fixed is not None:
                wanted.append(fixed[0])
            else:
                wanted.append(([substitute(d, values) for d in js.depends_on],
                               [substitute(r, values) for r in js.depends_on_regexes]))

    index: dict[str, int] = {}
    for n, job in enumerate(jobs):
        if job.name in index:
            first = jobs[index[job.name]]
            problems.append(SpecProblem(
                f"duplicate job name '{job.name}' (also produced by jobs[{first.spec_index}] "
                f"'{spec.jobs[first.spec_index].name}'); add a parameter placeholder to the name",
                job=spec.jobs[job.spec_index].name, field="name",
                line=line(("jobs", job.spec_index, "name")), path=path))
        else:
            index[job.name] = n

    edges: set[tuple[int, int]] = set()
    names = list(index)
    for child, (deps, rxs) in enumerate(wanted):
        job = jobs[child]
        for dep in deps:
            parent = index.get(dep)
            if parent is None:
                problems.append(SpecProblem(
                    f"depends on unknown job '{dep}'", job=job.name, field="depends_on",
                    line=line(("jobs", job.spec_index, "depends_on")), path=path))
            elif parent == child:
                problems.append(SpecProblem("a job cannot depend on itself", job=job.name,
                                            field="depends_on",
                                            line=line(("jobs", job.spec_index, "depends_on")), path=path))
            else:
                edges.add((parent, child))
        for rx in rxs:
            pattern = re.compile(rx)
            hits = [index[n] for n in names if pattern.fullmatch(n) and index[n] != child]
            if not hits:
                problems.append(SpecProblem(
                    f"depends_on_regexes {rx!r} matches no job", job=job.name, field="depends_on_regexes",
                    line=line(("jobs", job.spec_index, "depends_on_regexes")), path=path))
            edges.update((h, child) for h in hits)
    if problems:
        raise SpecError(path, problems)

    edge_list = sorted(edges)
    in_degree = [0] * len(jobs)
    for _, c in edge_list:
        in_degree[c] += 1
    cycle = find_cycle(len(jobs), edge_list)
    if cycle:
        chain = " -> ".join(jobs[n].name for n in cycle)
        first = jobs[cycle[0]]
        raise SpecError(path, [SpecProblem(f"dependency cycle: {chain}", job=first.name, field="depends_on",
                                           line=line(("jobs", first.spec_index, "depends_on")), path=path)])
    return ExpandedWorkflow(spec=spec, jobs=jobs, edges=edge_list, in_degree=in_degree)


def _union(items) -> list[str]:
    return list(dict.fromkeys(items))


def find_cycle(n: int, edges: list[tuple[int, int]]) -> list[int] | None:
    """Kahn's algorithm; if nodes remain, walk parents among them to print one cycle (first node repeated)."""
    children = defaultdict(list)
    indeg = [0] * n
    for p, c in edges:
        children[p].append(c)
        indeg[c] += 1
    stack = [i for i in range(n) if indeg[i] == 0]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        for c in children.get(node, ()):
            indeg[c] -= 1
            if indeg[c] == 0:
                stack.append(c)
    if seen == n:
        return None
    remaining = {i for i in range(n) if indeg[i] > 0}
    # Every unprocessed node has an unprocessed parent: walk parents until one repeats.
    parents = defaultdict(list)
    for p, c in edges:
        if p in remaining and c in remaining:
            parents[c].append(p)
    order, pos = [], {}
    node = min(remaining)
    while node not in pos:
        pos[node] = len(order)
        order.append(node)
        node = parents[node][0]
    cycle = list(reversed(order[pos[node]:]))
    return cycle + [cycle[0]]
