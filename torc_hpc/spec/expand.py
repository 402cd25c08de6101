"""Expand a validated spec into concrete jobs and edges, checking names, references, sizes and cycles.

Sizes are checked before anything is expanded: each job's number of parameter combinations is computed
from the parameters' counts (never by making them), so a spec that would expand past MAX_JOBS jobs or
MAX_DEPENDENCIES edges is refused at once with the job and the field that cause it.
"""

from __future__ import annotations

import os
import shlex
import shutil
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from torc_hpc.errors import SpecError, SpecProblem
from torc_hpc.limits import (MAX_COMMAND_BYTES, MAX_DEPENDENCIES, MAX_DISTINCT_REGEXES, MAX_JOBS, MAX_NAME_LENGTH,
                             MAX_PROBLEMS, MAX_REGEX_CHECKS)
from torc_hpc.spec.models import ResourceRequirementsSpec, WorkflowSpec, duration_seconds, memory_bytes
from torc_hpc.spec.params import (COUNT_CAP, Template, combination_count, combinations, parameter_values,
                                  placeholders, value_count)
from torc_hpc.spec.regexes import NameIndex, compile_regex, literal_prefix

DEFAULT_RESOURCES = ResourceRequirementsSpec()


@dataclass(frozen=True)
class ExpansionLimits:
    """How large one workflow may expand (the CLI's --max-jobs and --max-dependencies)."""

    max_jobs: int = MAX_JOBS
    max_dependencies: int = MAX_DEPENDENCIES


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


class _Problems:
    """Collects problems; keeps the first MAX_PROBLEMS (located together, in one pass over the file, when
    raised) and counts the rest."""

    def __init__(self, path: str, locator):
        self.path = path
        self.locator = locator
        self.items: list[tuple] = []
        self.total = 0

    def add(self, message: str, loc: tuple, job: str | None = None, fld: str | None = None) -> None:
        self.total += 1
        if len(self.items) < MAX_PROBLEMS:
            if job is None and fld is None:
                fld = ".".join(f"[{p}]" if isinstance(p, int) else p for p in loc).replace(".[", "[")
            self.items.append((message, loc, job, fld))

    def raise_if_any(self) -> None:
        if not self.total:
            return
        lines = self.locator.lines([loc for _, loc, _, _ in self.items]) if self.locator else [None] * len(self.items)
        raise SpecError(self.path, [SpecProblem(message, job=job, field=fld, line=line, path=self.path)
                                    for (message, _, job, fld), line in zip(self.items, lines)], total=self.total)


_BASH_WORDS = {"!", "[", "[[", "{", "(", ".", ":", "alias", "builtin", "case", "cd", "command", "declare", "echo",
               "eval", "exec", "exit", "export", "false", "for", "function", "if", "let", "local", "printf", "pwd",
               "read", "return", "set", "shift", "source", "test", "time", "trap", "true", "type", "ulimit",
               "umask", "unset", "until", "wait", "while"}


def _script_problem(script: str, base_dir: Path) -> str | None:
    """Check what can be checked of a recovery script before running it: that bash can parse its
    quoting, and that its program exists (a path relative to where torc runs, or on PATH)."""
    try:
        argv = shlex.split(script, comments=True)
    except ValueError as e:
        return f"cannot parse recovery_script {script!r}: {e}"
    while argv and "=" in argv[0] and argv[0].split("=", 1)[0].isidentifier():
        argv = argv[1:]  # VAR=value before the program
    if not argv:
        return None if script.strip() and "=" in script else "recovery_script is empty"
    exe = argv[0]
    if exe in _BASH_WORDS:
        return None
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


def validate_references(spec: WorkflowSpec, locator, path: str, base_dir: Path) -> None:
    """Checks that need the whole spec but not expansion: names that must exist, scripts, values.
    Raises SpecError with every problem."""
    problems = _Problems(path, locator)
    add = problems.add

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
                if len(rule.recovery_script.encode()) > MAX_COMMAND_BYTES:
                    add(f"handler '{h.name}': recovery_script is more than {MAX_COMMAND_BYTES:,} bytes "
                        "(torc_hpc.limits.MAX_COMMAND_BYTES): put it in a file", loc + ("recovery_script",))
                    continue
                msg = _script_problem(rule.recovery_script, base_dir)
                if msg:
                    add(f"handler '{h.name}': {msg}", loc + ("recovery_script",))
    resources = {}
    for i, rr in enumerate(spec.resource_requirements):
        if not rr.name:
            add("a named resource_requirements entry needs a name", ("resource_requirements", i))
        elif rr.name in resources:
            add(f"resource_requirements '{rr.name}' is defined twice", ("resource_requirements", i, "name"))
        else:
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
                parameter_values(raw)
            except ValueError as e:
                add(str(e), jloc + ("parameters", key), job.name, f"parameters.{key}")
        for r, rx in enumerate(job.depends_on_regexes):
            if not placeholders(rx):
                compiled = compile_regex(rx)
                if isinstance(compiled, str):
                    add(compiled, jloc + ("depends_on_regexes", r), job.name, "depends_on_regexes")
    problems.raise_if_any()


class _Plan:
    """One `jobs:` entry, ready to expand: its parameters (lazy), counts and templates."""

    __slots__ = ("index", "spec", "names", "values", "count", "single", "jobs", "first", "t_name", "t_cmd",
                 "t_sched", "t_rr", "t_deps", "t_rxs")

    def __init__(self, index: int, js, values: list, count: int):
        self.index, self.spec, self.values, self.count = index, js, values, count
        self.names = list(js.parameters)
        positions = {n: k for k, n in enumerate(self.names)}
        # A job whose name uses none of its parameters is one job standing for every combination.
        self.single = bool(self.names) and not (placeholders(js.name) & set(self.names))
        self.jobs = 1 if self.single else count
        self.first = 0
        self.t_name = Template(js.name, positions)
        self.t_cmd = Template(js.command, positions)
        self.t_sched = Template(js.scheduler, positions) if js.scheduler else None
        rr = js.resource_requirements
        self.t_rr = Template(rr, positions) if isinstance(rr, str) else None
        self.t_deps = [Template(d, positions) for d in js.depends_on]
        self.t_rxs = [Template(r, positions) for r in js.depends_on_regexes]

    def combos(self):
        return combinations(self.values, self.spec.parameter_mode)

    def templates(self):
        """(template, field) pairs for every templated field."""
        yield self.t_name, "name"
        yield self.t_cmd, "command"
        if self.t_sched:
            yield self.t_sched, "scheduler"
        if self.t_rr:
            yield self.t_rr, "resource_requirements"
        for t in self.t_deps:
            yield t, "depends_on"
        for t in self.t_rxs:
            yield t, "depends_on_regexes"


def _plan(i: int, js, problems: _Problems) -> _Plan | None:
    values, ok = [], True
    for key, raw in js.parameters.items():
        try:
            values.append(parameter_values(raw))
        except ValueError as e:
            problems.add(str(e), ("jobs", i, "parameters", key), js.name, f"parameters.{key}")
            ok = False
    if not ok:
        return None
    try:
        count = combination_count(values, js.parameter_mode)
    except ValueError:
        detail = ", ".join(f"{k}={_count(value_count(v))}" for k, v in zip(js.parameters, values))
        problems.add(f"parameter_mode zip needs parameters with equal numbers of values ({detail})",
                     ("jobs", i, "parameter_mode"), js.name, "parameter_mode")
        return None
    plan = _Plan(i, js, values, count)
    params = ", ".join(plan.names) if plan.names else None
    for t, fld in plan.templates():
        msg = t.spec_problem()
        if msg:
            problems.add(msg, ("jobs", i, fld), js.name, fld)
            return None
        if t.unknown and fld != "command":  # commands keep other braces: awk '{print}', ${HOME}
            names = ", ".join("{" + u + "}" for u in t.unknown)
            have = f"its parameters are {params}" if params else "it has no parameters"
            problems.add(f"{names} is not a parameter of this job ({have}); placeholders in {fld} must "
                         "name a parameter", ("jobs", i, fld), js.name, fld)
            return None
    if plan.single:
        for t, fld in ((plan.t_cmd, "command"), (plan.t_sched, "scheduler"), (plan.t_rr, "resource_requirements")):
            if t is not None and t.used:
                used = ", ".join("{" + plan.names[k] + "}" for k in sorted(t.used))
                problems.add(f"the name '{js.name}' uses no parameter, so this is one job for all "
                             f"{count:,} combinations and its {fld} cannot use {used}: add the parameter to "
                             "the name to get one job per value", ("jobs", i, fld), js.name, fld)
                return None
    return plan


def _describe(plan: _Plan) -> str:
    sizes = [f"{_count(value_count(v))} values of {n}" for n, v in zip(plan.names, plan.values)]
    return (" × " if plan.spec.parameter_mode == "product" else " zipped with ").join(sizes)


def _count(n: int) -> str:
    return f"more than {COUNT_CAP:,}" if n >= COUNT_CAP else f"{n:,}"


def _check_sizes(plans: list[_Plan], limits: ExpansionLimits, problems: _Problems) -> None:
    """Refuse, before expanding, a workflow larger than the limits (jobs, combinations, dependencies)."""
    total_jobs = total_deps = 0
    over = False
    for p in plans:
        js, i = p.spec, p.index
        if p.count > limits.max_jobs:
            what = "combinations for its one job" if p.single else "jobs"
            problems.add(f"expands to {_count(p.count)} {what} ({_describe(p)}), more than the limit of "
                         f"{limits.max_jobs:,} (torc_hpc.limits.MAX_JOBS); raise it with --max-jobs N",
                         ("jobs", i, "parameters"), js.name, "parameters")
            over = True
        total_jobs += p.jobs
        total_deps += min(p.count * (len(p.t_deps) + len(p.t_rxs)), COUNT_CAP)
    if not over and total_jobs > limits.max_jobs:
        big = sorted(plans, key=lambda p: -p.jobs)[:3]
        detail = ", ".join(f"'{p.spec.name}' {p.jobs:,}" for p in big)
        problems.add(f"the workflow expands to {_count(total_jobs)} jobs (largest: {detail}), more than the limit "
                     f"of {limits.max_jobs:,} (torc_hpc.limits.MAX_JOBS); raise it with --max-jobs N",
                     ("jobs",), None, "jobs")
        over = True
    if not over and total_deps > limits.max_dependencies:
        p = max(plans, key=lambda p: p.count * (len(p.t_deps) + len(p.t_rxs)))
        fld = "depends_on" if p.t_deps else "depends_on_regexes"
        problems.add(f"the workflow's dependencies expand to {_count(total_deps)} entries (this job: "
                     f"{_count(p.count)} × {len(p.t_deps) + len(p.t_rxs)}), more than the limit of "
                     f"{limits.max_dependencies:,} (torc_hpc.limits.MAX_DEPENDENCIES); raise it with "
                     "--max-dependencies N", ("jobs", p.index, fld), p.spec.name, fld)


def expand_workflow(spec: WorkflowSpec, locator=None, path: str = "<spec>",
                    limits: ExpansionLimits | None = None) -> ExpandedWorkflow:
    """Turn the spec into concrete jobs and dependency edges. Raises SpecError with every problem.

    Sizes first (from counts), then two passes over the spec's jobs: the first names every job, the
    second resolves dependencies straight to job indexes, so no per-job list of names is ever held.
    """
    limits = limits or ExpansionLimits()
    problems = _Problems(path, locator)
    plans = [_plan(i, js, problems) for i, js in enumerate(spec.jobs)]
    problems.raise_if_any()
    _check_sizes(plans, limits, problems)
    problems.raise_if_any()

    jobs = _expand_jobs(spec, plans, problems)
    problems.raise_if_any()
    index = _name_index(spec, jobs, problems)
    problems.raise_if_any()

    parents, children = array("q"), array("q")
    in_degree = array("q", bytes(8 * len(jobs)))
    _resolve_dependencies(plans, jobs, index, parents, children, in_degree, limits, problems)
    problems.raise_if_any()

    cycle = find_cycle(len(jobs), parents, children)
    if cycle:
        chain = " -> ".join(jobs[n].name for n in cycle)
        first = jobs[cycle[0]]
        problems.add(f"dependency cycle: {chain}", ("jobs", first.spec_index, "depends_on"), first.name,
                     "depends_on")
        problems.raise_if_any()
    return ExpandedWorkflow(spec=spec, jobs=jobs, parents=parents, children=children, in_degree=in_degree)


def _expand_jobs(spec: WorkflowSpec, plans: list[_Plan], problems: _Problems) -> list[ExpandedJob]:
    resources = {rr.name: rr for rr in spec.resource_requirements}
    sized = {}  # id(resource spec) → (memory bytes, runtime s): parse each once, not per job

    def size(res):
        key = id(res)
        if key not in sized:
            sized[key] = (memory_bytes(res.memory), duration_seconds(res.runtime))
        return sized[key]

    jobs: list[ExpandedJob] = []
    append = jobs.append
    for plan in plans:
        js, i = plan.spec, plan.index
        plan.first = len(jobs)
        combos = [()] if plan.single else plan.combos()
        t_name, t_cmd, t_sched, t_rr = plan.t_name, plan.t_cmd, plan.t_sched, plan.t_rr
        check_name = t_name.parts is not None
        check_cmd = t_cmd.parts is not None
        rr = js.resource_requirements
        if rr is None:
            rr_name, res = None, DEFAULT_RESOURCES
        elif isinstance(rr, str):
            rr_name, res = rr, resources.get(rr, DEFAULT_RESOURCES)
        else:
            rr_name, res = rr.name, rr
        mem, runtime = size(res)
        values = ()
        try:
            for values in combos:
                name = t_name.render(values)
                if check_name and len(name) > MAX_NAME_LENGTH:
                    problems.add(f"the name '{name[:60]}…' is {len(name):,} characters long after its "
                                 f"placeholders are filled; at most {MAX_NAME_LENGTH} "
                                 "(torc_hpc.limits.MAX_NAME_LENGTH)", ("jobs", i, "name"), js.name, "name")
                    break
                command = t_cmd.render(values)
                if check_cmd and len(command) > MAX_COMMAND_BYTES // 4 and len(command.encode()) > MAX_COMMAND_BYTES:
                    problems.add(f"the command of '{name}' is more than {MAX_COMMAND_BYTES:,} bytes after its "
                                 "placeholders are filled (torc_hpc.limits.MAX_COMMAND_BYTES, the most one "
                                 "`bash -c` argument holds): put it in a script", ("jobs", i, "command"),
                                 name, "command")
                    break
                if t_rr is not None and t_rr.parts is not None:
                    rr_name = t_rr.render(values)
                    res = resources.get(rr_name)
                    if res is None:
                        problems.add(f"unknown resource_requirements '{rr_name}'", ("jobs", i, "resource_requirements"),
                                     name, "resource_requirements")
                        res = DEFAULT_RESOURCES
                    mem, runtime = size(res)
                append(ExpandedJob(name, command, js.priority, res.num_cpus, res.num_gpus, res.num_nodes, mem,
                                   runtime, js.failure_handler, js.cancel_on_blocking_job_failure,
                                   t_sched.render(values) if t_sched else None, rr_name, i))
        except (ValueError, TypeError, OverflowError, IndexError, KeyError) as e:
            for t, fld in plan.templates():
                msg = t.render_problem(values, plan.names)
                if msg:
                    problems.add(msg, ("jobs", i, fld), js.name, fld)
                    break
            else:
                problems.add(f"cannot fill the placeholders: {e}", ("jobs", i), js.name, None)
        if problems.total > MAX_PROBLEMS:
            break
    return jobs


def _name_index(spec: WorkflowSpec, jobs: list[ExpandedJob], problems: _Problems) -> dict[str, int]:
    index: dict[str, int] = {}
    for n, job in enumerate(jobs):
        if job.name in index:
            first = jobs[index[job.name]]
            problems.add(f"duplicate job name '{job.name}' (also produced by jobs[{first.spec_index}] "
                         f"'{spec.jobs[first.spec_index].name}'); add a parameter placeholder to the name",
                         ("jobs", job.spec_index, "name"), spec.jobs[job.spec_index].name, "name")
        else:
            index[job.name] = n
    return index


def _resolve_dependencies(plans, jobs, index, parents, children, in_degree, limits, problems) -> None:
    regex_children = []  # (child, rendered expressions, its parents so far) for the regex pass
    for plan in plans:
        i = plan.index
        if not (plan.t_deps or plan.t_rxs):
            continue
        t_deps, t_rxs = plan.t_deps, plan.t_rxs
        if plan.single:  # one job standing for every combination: the union of their dependencies
            rendered = [(dict.fromkeys(t.render(c) for t in t_deps for c in plan.combos()),
                         tuple(dict.fromkeys(t.render(c) for t in t_rxs for c in plan.combos())))]
        else:
            rendered = (([t.render(c) for t in t_deps], tuple(t.render(c) for t in t_rxs)) for c in plan.combos())
        for k, (dep_names, rx_texts) in enumerate(rendered):
            child = plan.first + k
            mine: set[int] = set()
            for dep in dep_names:
                parent = index.get(dep)
                if parent is None:
                    problems.add(f"depends on unknown job '{dep}'", ("jobs", i, "depends_on"), jobs[child].name,
                                 "depends_on")
                elif parent == child:
                    problems.add("a job cannot depend on itself", ("jobs", i, "depends_on"), jobs[child].name,
                                 "depends_on")
                else:
                    mine.add(parent)
            if rx_texts:
                regex_children.append((child, rx_texts, mine))
                continue
            for parent in sorted(mine):
                parents.append(parent)
                children.append(child)
            in_degree[child] = len(mine)
        if problems.total > MAX_PROBLEMS:
            return
    if regex_children:
        _resolve_regexes(jobs, regex_children, parents, children, in_degree, limits, problems)


def _resolve_regexes(jobs, regex_children, parents, children, in_degree, limits, problems) -> None:
    """Match every distinct expression once, against only the names sharing its literal prefix; the
    number of checks is known (and bounded) before any is made."""
    distinct: dict[str, tuple] = {}  # expression → (first child using it, its spec index)
    for child, texts, _ in regex_children:
        for rx in texts:
            distinct.setdefault(rx, (child, jobs[child].spec_index))
    if len(distinct) > MAX_DISTINCT_REGEXES:
        child, i = next(iter(distinct.values()))
        problems.add(f"depends_on_regexes make {len(distinct):,} different expressions, more than "
                     f"{MAX_DISTINCT_REGEXES:,} (torc_hpc.limits.MAX_DISTINCT_REGEXES): use depends_on with "
                     "placeholders to pair jobs up", ("jobs", i, "depends_on_regexes"), jobs[child].name,
                     "depends_on_regexes")
        return
    names = NameIndex([j.name for j in jobs])
    compiled, checks = {}, 0
    for rx, (child, i) in distinct.items():
        pattern = compile_regex(rx)
        if isinstance(pattern, str):
            problems.add(pattern, ("jobs", i, "depends_on_regexes"), jobs[child].name, "depends_on_regexes")
            continue
        span = names.span(literal_prefix(rx))
        checks += span[1] - span[0]
        compiled[rx] = (pattern, span)
    if problems.total:
        return
    if checks > MAX_REGEX_CHECKS:
        child, i = next(iter(distinct.values()))
        problems.add(f"depends_on_regexes need {checks:,} name checks ({len(distinct):,} expressions against "
                     f"{len(jobs):,} names), more than {MAX_REGEX_CHECKS:,} (torc_hpc.limits.MAX_REGEX_CHECKS): "
                     "start each expression with a literal prefix (e.g. 'sim_.*') or use depends_on with "
                     "placeholders", ("jobs", i, "depends_on_regexes"), jobs[child].name, "depends_on_regexes")
        return
    hits = {rx: names.matches(pattern, span) for rx, (pattern, span) in compiled.items()}
    total = len(parents)
    for child, texts, mine in regex_children:
        i = jobs[child].spec_index
        for rx in texts:
            found = [p for p in hits[rx] if p != child]
            if not found:
                problems.add(f"depends_on_regexes {rx!r} matches no job", ("jobs", i, "depends_on_regexes"),
                             jobs[child].name, "depends_on_regexes")
            mine.update(found)
        total += len(mine)
        if total > limits.max_dependencies:
            problems.add(f"depends_on_regexes make more than {limits.max_dependencies:,} dependencies "
                         "(torc_hpc.limits.MAX_DEPENDENCIES); raise it with --max-dependencies N",
                         ("jobs", i, "depends_on_regexes"), jobs[child].name, "depends_on_regexes")
            return
        for parent in sorted(mine):
            parents.append(parent)
            children.append(child)
        in_degree[child] = len(mine)


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
