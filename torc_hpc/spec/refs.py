"""Files, user_data and datasets: their expansion, the jobs that read and write them, and the edges that
follow (a job that reads what another writes waits for it). Also workflow actions' job selections. Pure.

A job reads or writes an entry when it lists it (`input_files`, `output_user_data`, … and their `_regexes`)
or mentions it in its command or invocation script: `${files.input.NAME}` and `${datasets.output.NAME}`
stand for the path, `${user_data.input.NAME}` for the name (which `torc user-data get|set` take). Declared
and mentioned entries are unioned (Torc's code lets mentions replace the declared list; its docs do not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torc_hpc.spec.params import Template, combination_count, combinations
from torc_hpc.spec.regexes import NameIndex, compile_regex, literal_prefix

KINDS = ("files", "user_data", "datasets")
MENTION_RE = re.compile(r"\$\{(files|user_data|datasets)\.(input|output)\.([^{}\s]+)\}")


@dataclass(slots=True)
class ExpandedFile:
    name: str
    path: str
    spec_index: int
    st_mtime: float | None = None
    must_exist: bool = False


@dataclass(slots=True)
class ExpandedUserData:
    name: str
    data: object
    is_ephemeral: bool
    spec_index: int


@dataclass(slots=True)
class ExpandedDataset:
    name: str
    path: str
    hash_mode: str
    description: str | None
    spec_index: int


@dataclass(slots=True)
class ExpandedAction:
    trigger_type: str
    action_type: str
    job_names: list[str]
    commands: list[str] | None
    scheduler: str | None
    num_allocations: int | None
    start_one_worker_per_node: bool | None
    max_parallel_jobs: int | None
    persistent: bool
    spec_index: int
    job_indexes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class JobRefs:
    """What one job reads and writes (names), before regexes are resolved."""

    inputs: dict = field(default_factory=lambda: {k: [] for k in KINDS})
    outputs: dict = field(default_factory=lambda: {k: [] for k in KINDS})
    input_regexes: dict = field(default_factory=lambda: {k: [] for k in KINDS})
    output_regexes: dict = field(default_factory=lambda: {k: [] for k in KINDS})


def render_data(value, values: tuple, positions: dict):
    """A user_data value with the entry's parameters filled into every string inside it."""
    if isinstance(value, str):
        return Template(value, positions).render(values) if "{" in value else value
    if isinstance(value, list):
        return [render_data(v, values, positions) for v in value]
    if isinstance(value, dict):
        return {k: render_data(v, values, positions) for k, v in value.items()}
    return value


def expand_entries(kind: str, entries: list, params_of, problems, max_count: int) -> list:
    """Files, user_data or datasets, one per parameter combination. `params_of(i, entry)` gives (names,
    values, mode) or None (its problem already reported)."""
    out = []
    for i, e in enumerate(entries):
        resolved = params_of(i, e)
        if resolved is None:
            continue
        names, values, mode = resolved
        positions = {n: k for k, n in enumerate(names)}
        t_name = Template(e.name, positions)
        unknown = [u for u in t_name.unknown]
        if unknown:
            have = ", ".join(names) or "none"
            problems.add(f"{{{unknown[0]}}} in the name is not a parameter of this entry (its parameters: {have})",
                         (kind, i, "name"), None, f"{kind}[{i}].name")
            continue
        if names and not t_name.used:
            problems.add(f"the name '{e.name}' uses none of its parameters ({', '.join(names)}), so every "
                         "combination would have the same name: add a placeholder", (kind, i, "name"), None,
                         f"{kind}[{i}].name")
            continue
        try:
            count = combination_count(values, mode)
        except ValueError:
            problems.add("parameter_mode zip needs parameters with equal numbers of values",
                         (kind, i, "parameter_mode"), None, f"{kind}[{i}].parameter_mode")
            continue
        if len(out) + count > max_count:
            problems.add(f"{kind} expand to more than {max_count:,} entries (torc_hpc.limits.MAX_JOBS)",
                         (kind, i), None, f"{kind}[{i}]")
            return out
        t_path = Template(e.path, positions) if kind != "user_data" else None
        try:
            for combo in combinations(values, mode) if names else [()]:
                name = t_name.render(combo)
                if kind == "files":
                    out.append(ExpandedFile(name, t_path.render(combo), i, e.st_mtime, e.must_exist))
                elif kind == "datasets":
                    out.append(ExpandedDataset(name, t_path.render(combo), e.hash_mode, e.description, i))
                else:
                    out.append(ExpandedUserData(name, render_data(e.data, combo, positions), e.is_ephemeral, i))
        except (ValueError, TypeError, IndexError, KeyError) as err:
            problems.add(f"cannot fill the placeholders: {err}", (kind, i), None, f"{kind}[{i}]")
    return out


def name_index(kind: str, items: list, problems) -> dict[str, int]:
    index: dict[str, int] = {}
    for n, item in enumerate(items):
        if item.name in index:
            problems.add(f"{kind} name '{item.name}' is used twice", (kind, item.spec_index, "name"), None,
                         f"{kind}[{item.spec_index}].name")
        else:
            index[item.name] = n
    return index


def substitute_mentions(text: str, lookup: dict, refs: JobRefs, problem) -> str:
    """Replace `${files.input.X}` and the like in a command; record what the job reads and writes. Unknown
    names go to `problem(message)`."""
    def one(m: re.Match) -> str:
        kind, direction, name = m.group(1), m.group(2), m.group(3)
        items, index = lookup[kind]
        k = index.get(name)
        if k is None:
            known = ", ".join(sorted(index)[:10]) or f"no {kind} are defined"
            problem(f"{m.group()} names no entry of '{kind}' (known: {known})")
            return m.group()
        (refs.inputs if direction == "input" else refs.outputs)[kind].append(name)
        return name if kind == "user_data" else items[k].path

    return MENTION_RE.sub(one, text)


def resolve_regexes(refs_by_job: dict[int, JobRefs], lookup: dict, jobs, problems, max_checks: int) -> None:
    """Turn each job's `*_regexes` into names (search semantics, as Torc); every expression must match."""
    indexes = {kind: NameIndex(list(lookup[kind][1])) for kind in KINDS}
    names = {kind: list(lookup[kind][1]) for kind in KINDS}
    cache: dict[tuple, list[str] | str] = {}
    checks = 0
    for j, refs in refs_by_job.items():
        for direction, table, target in (("input", refs.input_regexes, refs.inputs),
                                         ("output", refs.output_regexes, refs.outputs)):
            for kind in KINDS:
                for rx in table[kind]:
                    key = (kind, rx)
                    if key not in cache:
                        pattern = compile_regex(rx)
                        if isinstance(pattern, str):
                            cache[key] = pattern
                        else:
                            span = indexes[kind].span(literal_prefix(rx))
                            checks += span[1] - span[0]
                            if checks > max_checks:
                                problems.add(f"{direction}_{_singular(kind)}_regexes need more than {max_checks:,} "
                                             "name checks (torc_hpc.limits.MAX_REGEX_CHECKS): start them with ^ "
                                             "and a literal prefix", ("jobs", jobs[j].spec_index), jobs[j].name, None)
                                return
                            cache[key] = [names[kind][k] for k in sorted(indexes[kind].matches(pattern, span))]
                    found = cache[key]
                    fld = f"{direction}_{_singular(kind)}_regexes"
                    if isinstance(found, str):
                        problems.add(found, ("jobs", jobs[j].spec_index, fld), jobs[j].name, fld)
                    elif not found:
                        problems.add(f"{fld} {rx!r} matches no entry of '{kind}'", ("jobs", jobs[j].spec_index, fld),
                                     jobs[j].name, fld)
                    else:
                        target[kind].extend(found)


def _singular(kind: str) -> str:
    return {"files": "file", "user_data": "user_data", "datasets": "dataset"}[kind]


def implicit_edges(refs_by_job: dict[int, JobRefs], jobs, max_edges: int, problems) -> dict[int, set[int]]:
    """child job → the jobs it waits for because they write what it reads."""
    parents: dict[int, set[int]] = {}
    for kind in KINDS:
        writers: dict[str, list[int]] = {}
        readers: dict[str, list[int]] = {}
        for j, refs in refs_by_job.items():
            for name in dict.fromkeys(refs.outputs[kind]):
                writers.setdefault(name, []).append(j)
            for name in dict.fromkeys(refs.inputs[kind]):
                readers.setdefault(name, []).append(j)
        total = sum(len(writers.get(n, ())) * len(r) for n, r in readers.items())
        if total > max_edges:
            problems.add(f"reading and writing {kind} makes more than {max_edges:,} dependencies "
                         "(torc_hpc.limits.MAX_DEPENDENCIES); raise it with --max-dependencies N", (kind,), None, kind)
            return parents
        for name, rs in readers.items():
            ws = writers.get(name)
            if not ws:
                continue
            for r in rs:
                mine = parents.setdefault(r, set())
                mine.update(w for w in ws if w != r)
    return {c: p for c, p in parents.items() if p}


def external_inputs(refs_by_job: dict[int, JobRefs], files: list[ExpandedFile], jobs) -> dict[str, str | None]:
    """Files some job reads and no job writes (they must exist before the run), each with its first reader;
    and files marked must_exist."""
    written = {n for refs in refs_by_job.values() for n in refs.outputs["files"]}
    first_reader: dict[str, str] = {}
    for j in sorted(refs_by_job):
        for n in refs_by_job[j].inputs["files"]:
            if n not in written:
                first_reader.setdefault(n, jobs[j].name)
    out = {f.name: first_reader.get(f.name) for f in files
           if f.name in first_reader or (f.must_exist and f.name not in written)}
    return out


def resolve_actions(spec, jobs, job_index: dict[str, int], problems, max_checks: int) -> list[ExpandedAction]:
    out = []
    names = NameIndex([j.name for j in jobs]) if any(a.job_name_regexes for a in spec.actions) else None
    for i, a in enumerate(spec.actions):
        loc = ("actions", i)
        picked: dict[int, None] = {}
        for name in a.jobs or []:
            k = job_index.get(name)
            if k is None:
                problems.add(f"action {i + 1} names the job '{name}', which the workflow does not have",
                             loc + ("jobs",), None, f"actions[{i}].jobs")
            else:
                picked[k] = None
        for rx in a.job_name_regexes or []:
            pattern = compile_regex(rx)
            if isinstance(pattern, str):
                problems.add(pattern, loc + ("job_name_regexes",), None, f"actions[{i}].job_name_regexes")
                continue
            found = sorted(names.matches(pattern, names.span(literal_prefix(rx))))
            if not found:
                problems.add(f"job_name_regexes {rx!r} matches no job", loc + ("job_name_regexes",), None,
                             f"actions[{i}].job_name_regexes")
            picked.update(dict.fromkeys(found))
        scheduling = a.action_type == "schedule_nodes"
        out.append(ExpandedAction(
            trigger_type=a.trigger_type, action_type=a.action_type, job_names=[jobs[k].name for k in picked],
            commands=list(a.commands) if a.commands else None, scheduler=a.scheduler,
            num_allocations=(a.num_allocations or 1) if scheduling else a.num_allocations,
            start_one_worker_per_node=bool(a.start_one_worker_per_node) if scheduling else a.start_one_worker_per_node,
            max_parallel_jobs=a.max_parallel_jobs, persistent=a.persistent, spec_index=i, job_indexes=list(picked)))
    return out
