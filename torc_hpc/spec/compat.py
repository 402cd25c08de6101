"""Torc's spec conventions, applied to the plain data every format produces, before the schema. Pure.

- `null` means "not given" for every optional field (serde's Option), except a user_data value (`data:
  null` is a value);
- keys Torc renamed long ago (NREL/torc era) are read under their current names;
- keys that make no sense for torc-hpc are refused with "not supported: because …", never "unknown key";
- `variables` are substituted as `{name}` / `{name:fmt}` into every string of the spec (not into parameter
  names, `use_parameters`, or `${…}`, which belong to the shell and to `${files.…}`).

Each problem is (message, key path); the loader locates and reports them with the schema's.
"""

from __future__ import annotations

import re

# Where `null` is dropped: the spec's mappings, entries of its lists, and their nested option blocks.
_ENTRY_LISTS = ("jobs", "files", "user_data", "datasets", "actions", "failure_handlers", "resource_requirements",
                "slurm_schedulers")
_NESTED = {"failure_handlers": ("rules",), "jobs": ("stdio", "resource_requirements"),
           "resource_monitor": ("jobs", "compute_node"), "execution_config": ("stdio",)}
_KEEP_NULL = {("user_data", "data")}

# Renamed keys of older Torc specs → today's names (per list of entries).
LEGACY = {
    "jobs": {"resource_requirements_name": "resource_requirements", "blocked_by_job_names": "depends_on",
             "blocked_by_job_name_regexes": "depends_on_regexes", "input_file_names": "input_files",
             "output_file_names": "output_files", "input_user_data_names": "input_user_data",
             "output_user_data_names": "output_user_data", "output_data_names": "output_user_data",
             "scheduler_name": "scheduler"},
    "actions": {"job_names": "jobs", "scheduler_name": "scheduler"},
}

_GROUPS = "access is granted with PostgreSQL roles (`torc db grant ROLE`) and row-level security, not per-workflow groups"
_CRATE = "torc-hpc has no RO-Crate export; provenance is kept as events and results in PostgreSQL"
_SRUN = "torc-hpc runs jobs as processes of its own worker (Torc's direct mode), not as srun steps"
_SERVER = "torc-hpc needs no server: jobs and workers reach PostgreSQL directly"
_REMOVED = "Torc removed it too; use execution_config (mode: direct) instead"
_OLD_LAYOUT = ("this is the spec layout of Torc before 0.7; write it with today's keys (depends_on, "
               "slurm_schedulers, resource_monitor, …: see README)")

# (path pattern, value test or None for "any value", reason). '*' stands for any list index.
NOT_SUPPORTED: list[tuple[tuple, object, str]] = [
    (("access_groups",), None, _GROUPS),
    (("enable_ro_crate",), True, _CRATE),
    (("files", "*", "identifier"), None, _CRATE),
    (("slurm_config",), None, _REMOVED),
    (("schedulers",), None, _OLD_LAYOUT),
    (("config",), None, _OLD_LAYOUT),
    (("jobs", "*", "blocked_by"), None, _OLD_LAYOUT),
    (("jobs", "*", "interruptible"), None, _OLD_LAYOUT),
    (("use_srun",), None, _REMOVED),
    (("execution_config", "mode"), "slurm", _SRUN),
    (("execution_config", "srun_termination_signal"), None, _SRUN),
    (("execution_config", "enable_cpu_bind"), None, _SRUN),
    (("execution_config", "srun_mpi"), None, _SRUN),
    (("actions", "*", "start_server_on_head_node"), None, _SERVER),
    (("actions", "*", "torc_server_args"), None, _SERVER),
    (("actions", "*", "scheduler_type"), lambda v: v != "slurm",
     "torc-hpc submits allocations to Slurm only (scheduler_type: slurm)"),
]


def _drop_nulls(d: dict, kind: str | None = None) -> None:
    for k in [k for k, v in d.items() if v is None and (kind, k) not in _KEEP_NULL]:
        del d[k]


def normalize(data: dict) -> list[tuple[str, tuple]]:
    """Apply nulls, renamed keys and the not-supported table to `data` in place. Returns problems."""
    problems: list[tuple[str, tuple]] = []
    _drop_nulls(data)
    for key in _ENTRY_LISTS:
        for i, entry in enumerate(data.get(key) or []) if isinstance(data.get(key), list) else ():
            if not isinstance(entry, dict):
                continue
            _drop_nulls(entry, key)
            for sub in _NESTED.get(key, ()):
                if isinstance(entry.get(sub), dict):
                    _drop_nulls(entry[sub])
                elif isinstance(entry.get(sub), list):
                    for item in entry[sub]:
                        if isinstance(item, dict):
                            _drop_nulls(item)
            for old, new in LEGACY.get(key, {}).items():
                if old in entry:
                    if new in entry:
                        problems.append((f"'{old}' is the older name of '{new}'; give only one of them",
                                         (key, i, old)))
                    else:
                        entry[new] = entry.pop(old)
    for key in ("resource_monitor", "execution_config"):
        if isinstance(data.get(key), dict):
            _drop_nulls(data[key])
            for sub in _NESTED.get(key, ()):
                if isinstance(data[key].get(sub), dict):
                    _drop_nulls(data[key][sub])
    for pattern, test, reason in NOT_SUPPORTED:
        for path, value in _find(data, pattern):
            if test is None or (value == test if not callable(test) else test(value)):
                shown = "" if test is None else f": {value!r}"
                problems.append((f"'{path[-1]}'{shown} is not supported: because {reason}", path))
    return problems


def _find(node, pattern: tuple, path: tuple = ()):
    """(path, value) of every place the pattern names."""
    if not pattern:
        yield path, node
        return
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from _find(item, rest, path + (i,))
    elif isinstance(node, dict) and head in node:
        yield from _find(node[head], rest, path + (head,))


# ---- variables -------------------------------------------------------------------------------------------
# {name} or {name:spec}, not preceded by '$' (that is the shell's ${VAR} or torc's ${files.…}).
_TOKEN = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")
_UNTOUCHED = {"use_parameters", "variables"}


def parameter_names(data) -> set[str]:
    """Every parameter name the spec declares anywhere (they are not variables)."""
    names: set[str] = set()
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            params = node.get("parameters")
            if isinstance(params, dict):
                names.update(k for k in params if isinstance(k, str))
            stack.extend(v for k, v in node.items() if k != "variables")
        elif isinstance(node, list):
            stack.extend(node)
    return names


def apply_variables(data: dict) -> list[tuple[str, tuple]]:
    """Substitute `variables` into every string of the spec, in place. Returns problems."""
    variables = data.get("variables")
    if not variables:
        return []
    if not isinstance(variables, dict) or not all(isinstance(v, str) and isinstance(k, str)
                                                  for k, v in variables.items()):
        return [("variables is a mapping of names to strings, e.g. {root: /scratch/me}", ("variables",))]
    problems: list[tuple[str, tuple]] = []
    for k, v in variables.items():
        if _TOKEN.search(v):
            problems.append((f"variable '{k}' holds a {{…}} placeholder; variable values are literal text",
                             ("variables", k)))
    params = parameter_names(data)
    for k in variables:
        if k in params:
            problems.append((f"variable '{k}' has the name of a parameter; rename one of them", ("variables", k)))
    if problems:
        return problems
    # A table (parameters_file) may bring parameter names this pre-pass cannot see: then unknown names pass.
    tables = any(_find_key(data, "parameters_file")) or bool(data.get("use_parameters_file"))

    def sub(text: str, path: tuple) -> str:
        def one(m: re.Match) -> str:
            name, spec = m.group(1), m.group(2)
            if name in variables:
                try:
                    return format(variables[name], spec or "")
                except ValueError as e:
                    problems.append((f"'{m.group()}': {e}", path))
                    return m.group()
            if name not in params and not tables:
                known = ", ".join(sorted(variables))
                problems.append((f"'{m.group()}' names neither a variable ({known}) nor a parameter: check "
                                 "its spelling (with `variables` set, every {name} must be one or the other)",
                                 path))
            return m.group()

        return _TOKEN.sub(one, text) if "{" in text else text

    stack: list[tuple[object, tuple]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in list(items):
            if isinstance(node, dict) and k in _UNTOUCHED:
                continue
            if isinstance(v, str):
                node[k] = sub(v, path + (k,))
            elif isinstance(v, (dict, list)):
                stack.append((v, path + (k,)))
    return problems


def _find_key(node, key: str):
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            if n.get(key):
                yield n[key]
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)
