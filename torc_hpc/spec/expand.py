"""Expand a validated spec into concrete jobs and edges, checking names, references and cycles."""

from __future__ import annotations

import os
import re
from array import array
import shlex
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from torc_hpc.core.units import parse_duration, parse_memory
from torc_hpc.errors import SpecError, SpecProblem
from torc_hpc.spec.models import ResourceRequirementsSpec, WorkflowSpec
from torc_hpc.spec.params import PLACEHOLDER_RE, combinations, parse_values, placeholders

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
    """Concrete jobs and their edges. Edges are kept as two parallel integer arrays (parent, child job
    indexes): a million-edge workflow costs 16 MB here, not the 150 MB a list of tuples would."""

    spec: WorkflowSpec
    jobs: list[ExpandedJob]
    parents: array = field(default_factory=lambda: array("q"))
    children: array = field(default_factory=lambda: array("q"))
    in_degree: array = field(default_factory=lambda: array("q"))

    @property
    def edges(self) -> list[tuple[int, int]]:
        """(parent, child) pairs, sorted (for small workflows and tests)."""
        return sorted(zip(self.parents, self.children))

    @property
    def edge_count(self) -> int:
        return len(self.parents)


class _Template:
    """A string with {name} / {name:spec} placeholders, parsed once and rendered per combination."""

    __slots__ = ("text", "parts")

    def __init__(self, text: str, names):
        self.text = text
        parts, last = [], 0
        for m in PLACEHOLDER_RE.finditer(text):
            if m.group(1) in names:
                parts.append((text[last:m.start()], m.group(1), m.group(2) or ""))
                last = m.end()
        self.parts = (parts, text[last:]) if parts else None

    def render(self, values: dict) -> str:
        if self.parts is None:
            return self.text  # shared, not copied: a million jobs with one command hold one string
        parts, tail = self.parts
        return "".join([f"{lit}{format(values[n], spec)}" for lit, n, spec in parts]) + tail


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
    """Turn the spec into concrete jobs and dependency edges. Raises SpecError with every problem.

    Two passes over the spec's jobs: the first names every job, the second resolves dependencies
    straight to job indexes, so no per-job list of dependency names is ever held.
    """
    line = (lambda loc: locator.line(loc)) if locator else (lambda loc: None)
    problems: list[SpecProblem] = []
    resources = {rr.name: rr for rr in spec.resource_requirements}
    sized = {}  # id(resource spec) → (memory bytes, runtime s): parse each once, not per job

    def size(res):
        key = id(res)
        if key not in sized:
            sized[key] = (parse_memory(res.memory), parse_duration(res.runtime))
        return sized[key]

    jobs: list[ExpandedJob] = []
    plans = []  # per spec job: (combos or None for a single job, first index, count)
    for i, js in enumerate(spec.jobs):
        params = {k: parse_values(v) for k, v in js.parameters.items()}
        try:
            combos = combinations(params, js.parameter_mode)
        except ValueError as e:
            problems.append(SpecProblem(str(e), job=js.name, field="parameter_mode",
                                        line=line(("jobs", i, "parameter_mode")), path=path))
            plans.append(None)
            continue
        names = set(params)
        single = bool(params) and not (placeholders(js.name) & names)
        groups = [{}] if single else combos
        t_name, t_cmd = _Template(js.name, names), _Template(js.command, names)
        t_sched = _Template(js.scheduler, names) if js.scheduler else None
        rr = js.resource_requirements
        t_rr = _Template(rr, names) if isinstance(rr, str) else None
        first = len(jobs)
        for values in groups:
            name = t_name.render(values)
            if t_rr is not None:
                rr_name = t_rr.render(values)
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
            mem, runtime = size(res)
            jobs.append(ExpandedJob(name, t_cmd.render(values), js.priority, res.num_cpus, res.num_gpus,
                                    res.num_nodes, mem, runtime, js.failure_handler,
                                    js.cancel_on_blocking_job_failure,
                                    t_sched.render(values) if t_sched else None, rr_name, i))
        plans.append((combos, groups, first, len(groups), single, names))

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

    parents, children = array("q"), array("q")
    in_degree = array("q", bytes(8 * len(jobs)))
    all_names = list(index)
    for i, js in enumerate(spec.jobs):
        if plans[i] is None or not (js.depends_on or js.depends_on_regexes):
            continue
        combos, groups, first, count, single, names = plans[i]
        t_deps = [_Template(d, names) for d in js.depends_on]
        t_rxs = [_Template(r, names) for r in js.depends_on_regexes]
        for k in range(count):
            child = first + k
            job = jobs[child]
            if single:  # one job standing for every combination: the union of their dependencies
                dep_names = dict.fromkeys(t.render(c) for t in t_deps for c in combos)
                rx_texts = dict.fromkeys(t.render(c) for t in t_rxs for c in combos)
            else:
                dep_names = [t.render(groups[k]) for t in t_deps]
                rx_texts = [t.render(groups[k]) for t in t_rxs]
            mine: set[int] = set()
            for dep in dep_names:
                parent = index.get(dep)
                if parent is None:
                    problems.append(SpecProblem(
                        f"depends on unknown job '{dep}'", job=job.name, field="depends_on",
                        line=line(("jobs", i, "depends_on")), path=path))
                elif parent == child:
                    problems.append(SpecProblem("a job cannot depend on itself", job=job.name, field="depends_on",
                                                line=line(("jobs", i, "depends_on")), path=path))
                else:
                    mine.add(parent)
            for rx in rx_texts:
                pattern = re.compile(rx)
                hits = [index[n] for n in all_names if pattern.fullmatch(n) and index[n] != child]
                if not hits:
                    problems.append(SpecProblem(
                        f"depends_on_regexes {rx!r} matches no job", job=job.name, field="depends_on_regexes",
                        line=line(("jobs", i, "depends_on_regexes")), path=path))
                mine.update(hits)
            for parent in sorted(mine):
                parents.append(parent)
                children.append(child)
            in_degree[child] = len(mine)
            if len(problems) > 100:
                break
    if problems:
        raise SpecError(path, problems[:100])

    cycle = find_cycle(len(jobs), parents, children)
    if cycle:
        chain = " -> ".join(jobs[n].name for n in cycle)
        first = jobs[cycle[0]]
        raise SpecError(path, [SpecProblem(f"dependency cycle: {chain}", job=first.name, field="depends_on",
                                           line=line(("jobs", first.spec_index, "depends_on")), path=path)])
    return ExpandedWorkflow(spec=spec, jobs=jobs, parents=parents, children=children, in_degree=in_degree)


def find_cycle(n: int, parents, children) -> list[int] | None:
    """Kahn's algorithm over arrays (compact for millions of edges). If nodes remain, walk parents
    among them to print one cycle (first node repeated)."""
    indeg = array("q", bytes(8 * n))
    out_count = array("q", bytes(8 * (n + 1)))
    for p, c in zip(parents, children):
        indeg[c] += 1
        out_count[p + 1] += 1
    for i in range(n):  # prefix sums: adjacency offsets
        out_count[i + 1] += out_count[i]
    adj = array("q", bytes(8 * len(parents)))
    fill = array("q", out_count[:n])
    for p, c in zip(parents, children):
        adj[fill[p]] = c
        fill[p] += 1
    del fill
    stack = [i for i in range(n) if indeg[i] == 0]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        for k in range(out_count[node], out_count[node + 1]):
            c = adj[k]
            indeg[c] -= 1
            if indeg[c] == 0:
                stack.append(c)
    if seen == n:
        return None
    remaining = {i for i in range(n) if indeg[i] > 0}
    # Every unprocessed node has an unprocessed parent: walk parents until one repeats.
    parent_of = defaultdict(list)
    for p, c in zip(parents, children):
        if p in remaining and c in remaining:
            parent_of[c].append(p)
    order, pos = [], {}
    node = min(remaining)
    while node not in pos:
        pos[node] = len(order)
        order.append(node)
        node = parent_of[node][0]
    cycle = list(reversed(order[pos[node]:]))
    return cycle + [cycle[0]]
