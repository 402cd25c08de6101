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
from torc_hpc.spec.models import TRIGGERS, ResourceRequirementsSpec, WorkflowSpec, duration_seconds, memory_bytes
from torc_hpc.spec.params import (COUNT_CAP, FloatRange, Template, combination_count, combinations,
                                  parameter_values, placeholders, value_count)
from torc_hpc.spec.refs import (KINDS, ExpandedAction, ExpandedDataset, ExpandedFile, ExpandedUserData, JobRefs,
                                expand_entries, external_inputs, implicit_edges, name_index, resolve_actions,
                                resolve_regexes, substitute_mentions)
from torc_hpc.spec.regexes import NameIndex, compile_regex, literal_prefix
from torc_hpc.spec.tables import TableError, load_lines, load_table

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
    extra: JobExtras | None = None  # Torc's per-job fields; None for plain jobs (one slot, not thirteen)


@dataclass(slots=True)
class JobExtras:
    """Torc's per-job fields, held apart so that a million plain jobs do not carry them."""

    invocation_script: str | None = None
    env: dict | None = None            # workflow env merged with the job's (the job's wins); None: none
    label: str | None = None
    stdio_mode: str = "separate"       # separate, combined, no_stdout, no_stderr, none
    delete_stdio_on_success: bool = False
    # What the job reads and writes (names of files, user_data, datasets).
    input_files: tuple = ()
    output_files: tuple = ()
    input_user_data: tuple = ()
    output_user_data: tuple = ()
    input_datasets: tuple = ()
    output_datasets: tuple = ()


_NO_EXTRAS = JobExtras()


def _extra_property(name: str) -> property:
    return property(lambda job: getattr(job.extra or _NO_EXTRAS, name), doc=f"JobExtras.{name}")


for _name in JobExtras.__slots__:
    setattr(ExpandedJob, _name, _extra_property(_name))


@dataclass
class ExpandedWorkflow:
    """Concrete jobs and their edges. Edges are kept as two parallel integer arrays (parent, child job
    indexes): a million-edge workflow costs 16 MB here, not the 150 MB a list of tuples would."""

    spec: WorkflowSpec
    jobs: list[ExpandedJob]
    parents: array = field(default_factory=lambda: array("q"))
    children: array = field(default_factory=lambda: array("q"))
    in_degree: array = field(default_factory=lambda: array("q"))
    files: list[ExpandedFile] = field(default_factory=list)
    user_data: list[ExpandedUserData] = field(default_factory=list)
    datasets: list[ExpandedDataset] = field(default_factory=list)
    actions: list[ExpandedAction] = field(default_factory=list)
    # Files some job reads and no job writes (they must exist when the workflow is created): name → the
    # first job reading it (None: a file marked must_exist that no job reads).
    external_inputs: dict[str, str | None] = field(default_factory=dict)

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
        for r, rx in enumerate(job.depends_on_regexes):
            if not placeholders(rx):
                compiled = compile_regex(rx)
                if isinstance(compiled, str):
                    add(compiled, jloc + ("depends_on_regexes", r), job.name, "depends_on_regexes")
    _read_tables(spec, base_dir, problems)
    for kind in ("jobs",) + KINDS:
        for i, entry in enumerate(getattr(spec, kind)):
            resolve_parameters(spec, kind, i, entry, problems)
    for i, a in enumerate(spec.actions):
        loc = ("actions", i)
        if a.trigger_type not in TRIGGERS:
            add(f"unknown trigger_type '{a.trigger_type}'; the triggers are {', '.join(TRIGGERS)}",
                loc + ("trigger_type",), None, f"actions[{i}].trigger_type")
        if a.action_type not in ("run_commands", "schedule_nodes"):
            add(f"unknown action_type '{a.action_type}'; the action types are run_commands and schedule_nodes",
                loc + ("action_type",), None, f"actions[{i}].action_type")
        elif a.action_type == "run_commands" and not a.commands:
            add("a run_commands action needs commands", loc, None, f"actions[{i}]")
        elif a.action_type == "schedule_nodes":
            if not a.scheduler:
                add("a schedule_nodes action needs scheduler (the name of a slurm_schedulers entry)", loc, None,
                    f"actions[{i}]")
            elif a.scheduler not in schedulers:
                known = ", ".join(sorted(schedulers)) or "none defined"
                add(f"unknown scheduler '{a.scheduler}' (known: {known})", loc + ("scheduler",), None,
                    f"actions[{i}].scheduler")
        if a.trigger_type in ("on_jobs_ready", "on_jobs_complete") and not (a.jobs or a.job_name_regexes):
            add(f"a {a.trigger_type} action needs jobs or job_name_regexes to say which jobs it waits for", loc,
                None, f"actions[{i}]")
    problems.raise_if_any()


def _read_tables(spec: WorkflowSpec, base_dir: Path, problems: _Problems) -> None:
    """Read every parameters_file and @file the spec names (once each), relative to base_dir."""
    tables = spec._tables
    wanted: list[tuple[str, tuple]] = []
    if spec.parameters_file:
        wanted.append((spec.parameters_file, ("parameters_file",)))
    for kind in ("jobs",) + KINDS:
        for i, e in enumerate(getattr(spec, kind)):
            if e.parameters_file:
                wanted.append((e.parameters_file, (kind, i, "parameters_file")))
    for path_text, loc in wanted:
        if path_text in tables:
            continue
        try:
            tables[path_text] = load_table(path_text, base_dir)
        except TableError as e:
            tables[path_text] = str(e)
            problems.add(str(e), loc, _entry_name(spec, loc), loc[-1] if loc[0] == "jobs" else None)
    params = [((k,), v) for k, v in spec.parameters.items()]
    for kind in ("jobs",) + KINDS:
        for i, e in enumerate(getattr(spec, kind)):
            params.extend(((kind, i, "parameters", k), v) for k, v in e.parameters.items())
    for loc, raw in params:
        if isinstance(raw, str) and raw.strip().startswith("@") and raw.strip() not in tables:
            text = raw.strip()
            try:
                tables[text] = load_lines(text[1:], base_dir)
            except TableError as e:
                tables[text] = str(e)


def _entry_name(spec, loc: tuple) -> str | None:
    return spec.jobs[loc[1]].name if loc[0] == "jobs" and len(loc) > 1 else None


def resolve_parameters(spec: WorkflowSpec, kind: str, i: int, entry, problems: _Problems):
    """The parameters an entry (job, file, user_data, dataset) expands over: its own, the workflow-level
    ones it names in use_parameters, or a table's columns (zipped). Returns (names, values, mode), or None
    after reporting the problem."""
    loc = (kind, i)
    job = entry.name if kind == "jobs" else None

    def fld(name: str) -> str:
        return name if kind == "jobs" else f"{kind}[{i}].{name}"

    table_path = entry.parameters_file or (spec.parameters_file if entry.use_parameters_file else None)
    if entry.use_parameters_file and not spec.parameters_file:
        problems.add("use_parameters_file: true needs a workflow-level parameters_file", loc + ("use_parameters_file",),
                     job, fld("use_parameters_file"))
        return None
    if table_path:
        mixed = [k for k in ("parameters", "use_parameters", "parameter_mode") if k in entry.model_fields_set
                 and getattr(entry, k)]
        if mixed or (entry.parameters_file and entry.use_parameters_file):
            what = ", ".join(mixed) or "use_parameters_file"
            problems.add(f"parameters_file gives every combination (one per row) and cannot be combined with "
                         f"{what}: put those values into the table", loc + ("parameters_file",), job,
                         fld("parameters_file"))
            return None
        table = spec._tables.get(table_path)
        if table is None:
            try:
                table = spec._tables[table_path] = load_table(table_path, Path.cwd())
            except TableError as e:
                table = spec._tables[table_path] = str(e)
        if isinstance(table, str):
            if entry.use_parameters_file:  # reported once, at the workflow-level parameters_file
                problems.add(table, loc + ("use_parameters_file",), job, fld("use_parameters_file"))
            return None
        names = list(table)
        return names, [parameter_values(table[n]) for n in names], "zip"
    raw: dict = {}
    for name in entry.use_parameters:
        if name not in spec.parameters:
            known = ", ".join(spec.parameters) or "none defined"
            problems.add(f"use_parameters names '{name}', which is not a workflow-level parameter (known: {known})",
                         loc + ("use_parameters",), job, fld("use_parameters"))
            return None
        raw[name] = spec.parameters[name]
    raw.update(entry.parameters)
    values, ok = [], True
    for key, value in raw.items():
        where = loc + ("parameters", key) if key in entry.parameters else ("parameters", key)
        try:
            values.append(parameter_values(value, spec._tables))
        except ValueError as e:
            problems.add(str(e), where, job, fld(f"parameters.{key}") if key in entry.parameters else None)
            ok = False
    return (list(raw), values, entry.parameter_mode) if ok else None


# Job fields naming files, user_data and datasets: field → (kind, direction, is a regex).
_REF_FIELDS = {
    "input_files": ("files", "input", False), "output_files": ("files", "output", False),
    "input_file_regexes": ("files", "input", True), "output_file_regexes": ("files", "output", True),
    "input_user_data": ("user_data", "input", False), "output_user_data": ("user_data", "output", False),
    "input_user_data_regexes": ("user_data", "input", True), "output_user_data_regexes": ("user_data", "output", True),
    "input_datasets": ("datasets", "input", False), "output_datasets": ("datasets", "output", False),
}


class _Plan:
    """One `jobs:` entry, ready to expand: its parameters (lazy), counts and templates."""

    __slots__ = ("index", "spec", "names", "values", "mode", "count", "single", "partial", "name_used", "_groups",
                 "jobs", "first", "t_name", "t_cmd",
                 "t_sched", "t_rr", "t_deps", "t_rxs", "t_inv", "t_label", "t_env", "t_refs", "mentions")

    def __init__(self, index: int, js, names: list, values: list, mode: str, count: int):
        self.index, self.spec, self.values, self.mode, self.count = index, js, values, mode, count
        self.names = names
        positions = {n: k for k, n in enumerate(self.names)}
        # A job whose name uses none of its parameters is one job standing for every combination.
        # A name using none of the parameters is one job standing for every combination; a name using some
        # of them is one job per value of those, standing for every value of the others (Torc's docs).
        self.name_used = {positions[n] for n in placeholders(js.name) if n in positions}
        self.single = bool(self.names) and not self.name_used
        self._groups = None
        jobs = 1 if self.single else count
        if self.name_used and len(self.name_used) < len(self.names):
            if mode == "product":
                jobs = 1
                for k in self.name_used:
                    jobs = min(jobs * value_count(values[k]), COUNT_CAP)
            elif any(isinstance(values[k], (range, FloatRange)) for k in self.name_used):
                pass  # zip with a range in the name: every value differs, so every name does
            elif count <= MAX_JOBS:  # zip: combinations share a name only when values repeat
                keys = sorted(self.name_used)
                jobs = len({tuple(c[k] for k in keys) for c in self.combos()})
        self.partial = jobs < count and not self.single
        self.jobs = jobs
        self.first = 0
        self.t_name = Template(js.name, positions)
        self.t_cmd = Template(js.command, positions)
        self.t_sched = Template(js.scheduler, positions) if js.scheduler else None
        rr = js.resource_requirements
        self.t_rr = Template(rr, positions) if isinstance(rr, str) else None
        self.t_deps = [Template(d, positions) for d in js.depends_on]
        self.t_rxs = [Template(r, positions) for r in js.depends_on_regexes]
        self.t_inv = Template(js.invocation_script, positions) if js.invocation_script else None
        self.t_label = Template(js.label, positions) if js.label else None
        self.t_env = {k: Template(v, positions) for k, v in js.env.items() if "{" in v}
        # (field, kind, direction, is_regex) → templates
        self.t_refs = [(f, Template(x, positions)) for f in _REF_FIELDS for x in getattr(js, f)]
        self.mentions = "${" in js.command or bool(js.invocation_script and "${" in js.invocation_script)

    def combos(self):
        return combinations(self.values, self.mode)

    def groups(self) -> list[list[tuple]]:
        """For a name using some parameters: the combinations behind each job, in order."""
        if self._groups is None:
            keys = sorted(self.name_used)
            found: dict[tuple, list[tuple]] = {}
            for c in self.combos():
                found.setdefault(tuple(c[k] for k in keys), []).append(c)
            self._groups = list(found.values())
        return self._groups

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
        if self.t_inv:
            yield self.t_inv, "invocation_script"
        if self.t_label:
            yield self.t_label, "label"
        for f, t in self.t_refs:
            yield t, f


def _plan(spec: WorkflowSpec, i: int, js, problems: _Problems) -> _Plan | None:
    resolved = resolve_parameters(spec, "jobs", i, js, problems)
    if resolved is None:
        return None
    names, values, mode = resolved
    try:
        count = combination_count(values, mode)
    except ValueError:
        detail = ", ".join(f"{k}={_count(value_count(v))}" for k, v in zip(names, values))
        problems.add(f"parameter_mode zip needs parameters with equal numbers of values ({detail})",
                     ("jobs", i, "parameter_mode"), js.name, "parameter_mode")
        return None
    plan = _Plan(i, js, names, values, mode, count)
    params = ", ".join(plan.names) if plan.names else None
    for t, fld in plan.templates():
        msg = t.spec_problem()
        if msg:
            problems.add(msg, ("jobs", i, fld), js.name, fld)
            return None
        if t.unknown and fld not in ("command", "invocation_script"):  # these keep other braces: ${HOME}
            names = ", ".join("{" + u + "}" for u in t.unknown)
            have = f"its parameters are {params}" if params else "it has no parameters"
            problems.add(f"{names} is not a parameter of this job ({have}); placeholders in {fld} must "
                         "name a parameter", ("jobs", i, fld), js.name, fld)
            return None
    if plan.single or plan.partial:
        per_job = [(plan.t_cmd, "command"), (plan.t_sched, "scheduler"), (plan.t_rr, "resource_requirements"),
                   (plan.t_inv, "invocation_script"), (plan.t_label, "label")]
        per_job += [(t, "env") for t in plan.t_env.values()]
        for t, fld in per_job:
            if t is not None and t.used - plan.name_used:
                used = ", ".join("{" + plan.names[k] + "}" for k in sorted(t.used - plan.name_used))
                if plan.single:
                    problems.add(f"the name '{js.name}' uses no parameter, so this is one job for all "
                                 f"{count:,} combinations and its {fld} cannot use {used}: add the parameter to "
                                 "the name to get one job per value", ("jobs", i, fld), js.name, fld)
                else:
                    problems.add(f"the name '{js.name}' does not use {used}, so each of its jobs stands for every "
                                 f"value of it and its {fld} cannot use it: add it to the name to get one job "
                                 "per value", ("jobs", i, fld), js.name, fld)
                return None
    return plan


def _describe(plan: _Plan) -> str:
    sizes = [f"{_count(value_count(v))} values of {n}" for n, v in zip(plan.names, plan.values)]
    return (" × " if plan.mode == "product" else " zipped with ").join(sizes)


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
    plans = [_plan(spec, i, js, problems) for i, js in enumerate(spec.jobs)]
    problems.raise_if_any()
    _check_sizes(plans, limits, problems)
    problems.raise_if_any()

    # Files, user_data and datasets first: jobs' commands mention them.
    entries = {kind: expand_entries(kind, getattr(spec, kind),
                                    lambda i, e, kind=kind: resolve_parameters(spec, kind, i, e, problems),
                                    problems, limits.max_jobs) for kind in KINDS}
    problems.raise_if_any()
    lookup = {kind: (entries[kind], name_index(kind, entries[kind], problems)) for kind in KINDS}
    problems.raise_if_any()

    refs_by_job: dict[int, JobRefs] = {}
    jobs = _expand_jobs(spec, plans, problems, lookup, refs_by_job)
    problems.raise_if_any()
    index = _name_index(spec, jobs, problems)
    problems.raise_if_any()

    implicit: dict[int, set[int]] = {}
    outside: dict[str, str | None] = {}
    if refs_by_job:
        _check_ref_names(refs_by_job, lookup, jobs, problems)
        resolve_regexes(refs_by_job, lookup, jobs, problems, MAX_REGEX_CHECKS)
        problems.raise_if_any()
        for j, refs in refs_by_job.items():
            x = jobs[j].extra
            x.input_files, x.output_files = _names(refs.inputs["files"]), _names(refs.outputs["files"])
            x.input_user_data, x.output_user_data = (_names(refs.inputs["user_data"]),
                                                     _names(refs.outputs["user_data"]))
            x.input_datasets, x.output_datasets = (_names(refs.inputs["datasets"]), _names(refs.outputs["datasets"]))
        implicit = implicit_edges(refs_by_job, jobs, limits.max_dependencies, problems)
        outside = external_inputs(refs_by_job, entries["files"], jobs)
        problems.raise_if_any()
    outside.update({f.name: None for f in entries["files"] if f.must_exist and f.name not in outside
                    and not any(f.name in jobs[j].output_files for j in refs_by_job)})

    parents, children = array("q"), array("q")
    in_degree = array("q", bytes(8 * len(jobs)))
    _resolve_dependencies(plans, jobs, index, parents, children, in_degree, limits, problems, implicit)
    problems.raise_if_any()
    actions = resolve_actions(spec, jobs, index, problems, MAX_REGEX_CHECKS) if spec.actions else []
    problems.raise_if_any()

    cycle = find_cycle(len(jobs), parents, children)
    if cycle:
        chain = " -> ".join(jobs[n].name for n in cycle)
        first = jobs[cycle[0]]
        problems.add(f"dependency cycle: {chain}", ("jobs", first.spec_index, "depends_on"), first.name,
                     "depends_on")
        problems.raise_if_any()
    return ExpandedWorkflow(spec=spec, jobs=jobs, parents=parents, children=children, in_degree=in_degree,
                            files=entries["files"], user_data=entries["user_data"], datasets=entries["datasets"],
                            actions=actions, external_inputs=outside)


def _names(items: list) -> tuple:
    return tuple(dict.fromkeys(items))


def _check_ref_names(refs_by_job: dict[int, JobRefs], lookup: dict, jobs, problems: _Problems) -> None:
    """Every name a job lists in input_files, output_user_data, … must be an entry of that kind."""
    for j, refs in refs_by_job.items():
        for direction, table in (("input", refs.inputs), ("output", refs.outputs)):
            for kind in KINDS:
                index = lookup[kind][1]
                for name in table[kind]:
                    if name not in index:
                        fld = f"{direction}_{kind}"
                        known = ", ".join(sorted(index)[:10]) or f"no {kind} are defined"
                        problems.add(f"{fld} names '{name}', which is not an entry of '{kind}' (known: {known})",
                                     ("jobs", jobs[j].spec_index, fld), jobs[j].name, fld)


def _stdio(spec: WorkflowSpec, js) -> tuple[str, bool]:
    """A job's stdio mode and delete_on_success: the job's own, else the workflow's, else separate/False."""
    wf = spec.execution_config.stdio if spec.execution_config and spec.execution_config.stdio else None
    own = js.stdio
    mode = (own and own.mode) or (wf and wf.mode) or "separate"
    delete = own.delete_on_success if own and own.delete_on_success is not None else \
        (wf.delete_on_success if wf and wf.delete_on_success is not None else False)
    return mode, bool(delete)


def _expand_jobs(spec: WorkflowSpec, plans: list[_Plan], problems: _Problems, lookup: dict | None = None,
                 refs_by_job: dict | None = None) -> list[ExpandedJob]:
    resources = {rr.name: rr for rr in spec.resource_requirements}
    lookup = lookup or {kind: ([], {}) for kind in KINDS}
    refs_by_job = {} if refs_by_job is None else refs_by_job
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
        combos = [()] if plan.single else (g[0] for g in plan.groups()) if plan.partial else plan.combos()
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
        stdio_mode, delete_stdio = _stdio(spec, js)
        base_env = {**spec.env, **js.env} or None
        extras = bool(plan.t_inv or plan.t_label or plan.t_env or plan.t_refs or plan.mentions or base_env
                      or stdio_mode != "separate" or delete_stdio)
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
                job = ExpandedJob(name, command, js.priority, res.num_cpus, res.num_gpus, res.num_nodes, mem,
                                  runtime, js.failure_handler, js.cancel_on_blocking_job_failure,
                                  t_sched.render(values) if t_sched else None, rr_name, i)
                if extras:
                    _job_extras(plan, job, values, base_env, stdio_mode, delete_stdio, lookup, refs_by_job,
                                len(jobs), len(jobs) - plan.first, problems)
                append(job)
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


def _job_extras(plan: _Plan, job: ExpandedJob, values: tuple, base_env, stdio_mode: str, delete_stdio: bool,
                lookup: dict, refs_by_job: dict, n: int, k: int, problems: _Problems) -> None:
    """Torc's per-job fields: invocation script, env, label, stdio, and what the job reads and writes."""
    x = job.extra = JobExtras(stdio_mode=stdio_mode, delete_stdio_on_success=delete_stdio)
    if plan.t_label:
        x.label = plan.t_label.render(values)
    if base_env:
        x.env = base_env if not plan.t_env else {**base_env, **{k: t.render(values) for k, t in plan.t_env.items()}}
    if plan.t_inv:
        x.invocation_script = plan.t_inv.render(values)
    if not (plan.t_refs or plan.mentions):
        return
    refs = JobRefs()
    combos = plan.combos() if plan.single else plan.groups()[k] if plan.partial else [values]
    for combo in combos:  # a job standing for several combinations reads and writes their union
        for fld, t in plan.t_refs:
            kind, direction, is_rx = _REF_FIELDS[fld]
            table = (refs.input_regexes if is_rx else refs.inputs) if direction == "input" else \
                (refs.output_regexes if is_rx else refs.outputs)
            table[kind].append(t.render(combo))
    if plan.mentions:
        def problem(msg: str) -> None:
            problems.add(msg, ("jobs", plan.index, "command"), job.name, "command")

        job.command = substitute_mentions(job.command, lookup, refs, problem)
        if x.invocation_script:
            x.invocation_script = substitute_mentions(x.invocation_script, lookup, refs, problem)
    refs_by_job[n] = refs


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


def _resolve_dependencies(plans, jobs, index, parents, children, in_degree, limits, problems,
                          implicit: dict[int, set[int]] | None = None) -> None:
    """Edges from depends_on and depends_on_regexes, merged with the implicit ones (files, user_data,
    datasets: child → parents); each child's parents are written once, sorted, without repeats."""
    implicit = dict(implicit or {})
    regex_children = []  # (child, rendered expressions, its parents so far) for the regex pass
    for plan in plans:
        i = plan.index
        if not (plan.t_deps or plan.t_rxs):
            continue
        t_deps, t_rxs = plan.t_deps, plan.t_rxs
        if plan.single:  # one job standing for every combination: the union of their dependencies
            rendered = [(dict.fromkeys(t.render(c) for t in t_deps for c in plan.combos()),
                         tuple(dict.fromkeys(t.render(c) for t in t_rxs for c in plan.combos())))]
        elif plan.partial:  # one job per value of the name's parameters: the union over the others
            rendered = [(dict.fromkeys(t.render(c) for t in t_deps for c in g),
                         tuple(dict.fromkeys(t.render(c) for t in t_rxs for c in g))) for g in plan.groups()]
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
            mine |= implicit.pop(child, set())
            if rx_texts:
                regex_children.append((child, rx_texts, mine))
                continue
            for parent in sorted(mine):
                parents.append(parent)
                children.append(child)
            in_degree[child] = len(mine)
        if problems.total > MAX_PROBLEMS:
            return
    for child in sorted(implicit):  # jobs whose only parents are implicit
        mine = implicit[child]
        for parent in sorted(mine):
            parents.append(parent)
            children.append(child)
        in_degree[child] = len(mine)
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
                     "anchor each expression with ^ and a literal prefix (e.g. '^sim_'), or use depends_on "
                     "with placeholders", ("jobs", i, "depends_on_regexes"), jobs[child].name, "depends_on_regexes")
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
