"""Read a spec file (YAML or JSON) into a validated WorkflowSpec, with errors located by line."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from torc_hpc.errors import SpecError, SpecProblem
from torc_hpc.spec.models import WorkflowSpec


def _line_index(text: str) -> dict[tuple, int]:
    """Map each key path (('jobs', 3, 'name'), …) to its 1-based line in the YAML/JSON text."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    index: dict[tuple, int] = {}

    def walk(node, path):
        index.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (key.value,)
                index[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return index


class LineLocator:
    """Finds the line for a key path, falling back to the nearest enclosing key. Built lazily."""

    def __init__(self, text: str):
        self._text = text
        self._index: dict[tuple, int] | None = None

    def line(self, path: tuple) -> int | None:
        if self._index is None:
            self._index = _line_index(self._text)
        while path:
            if path in self._index:
                return self._index[path]
            path = path[:-1]
        return None


def _job_name(data, path: tuple) -> str | None:
    if len(path) >= 2 and path[0] == "jobs" and isinstance(path[1], int):
        try:
            return data["jobs"][path[1]].get("name")
        except (KeyError, IndexError, AttributeError, TypeError):
            return None
    return None


def _field(path: tuple) -> str | None:
    if path and path[0] == "jobs" and len(path) >= 3:
        rest = path[2:]
    else:
        rest = path
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in rest]
    return ".".join(parts).replace(".[", "[") or None


def load_spec_text(text: str, path: str = "<spec>", base_dir: Path | None = None):
    """Parse and validate spec text. Returns (WorkflowSpec, LineLocator). Raises SpecError."""
    suffix = Path(path).suffix.lower()
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise SpecError(path, [SpecProblem(f"invalid JSON: {e.msg}", line=e.lineno, path=path)]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        msg = f"invalid YAML: {getattr(e, 'problem', e)}"
        if "got '{'" in msg:
            msg += (" (a {placeholder} inside [...] or {...} must be quoted, e.g. [\"sim_{i}\"], "
                    "or written as a block list with '- sim_{i}')")
        raise SpecError(path, [SpecProblem(msg, line=line, path=path)]) from None
    if not isinstance(data, dict):
        raise SpecError(path, [SpecProblem("the spec must be a mapping with 'name' and 'jobs'", path=path)])
    locator = LineLocator(text)
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as e:
        problems = []
        errors = e.errors()
        for err in errors:
            loc = tuple(err["loc"])
            # For `str | Model` fields pydantic reports both branches; when the Model branch has its own
            # errors, the "should be a string" one only confuses.
            if loc and loc[-1] == "str" and any(
                    len(o["loc"]) > len(loc) and tuple(o["loc"][:len(loc) - 1]) == loc[:-1] for o in errors):
                continue
            # pydantic appends the union member it tried ('str', 'ResourceRequirementsSpec'); drop it.
            loc = tuple(p for p in loc if not (isinstance(p, str) and p[:1].isupper())
                        and p not in ("str", "int", "float", "list[any]"))
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = f"unknown key '{loc[-1]}' (check its spelling; see the spec reference in README)"
            problems.append(SpecProblem(msg, job=_job_name(data, loc), field=_field(loc),
                                        line=locator.line(loc), path=path))
        raise SpecError(path, _dedupe(problems)) from None
    from torc_hpc.spec.expand import validate_references  # local: expand imports models too

    problems = validate_references(spec, locator, path, base_dir or Path.cwd())
    if problems:
        raise SpecError(path, problems)
    return spec, locator


def _dedupe(problems: list[SpecProblem]) -> list[SpecProblem]:
    seen, out = set(), []
    for p in problems:
        key = str(p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def load_spec(path: str | Path, base_dir: Path | None = None):
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise SpecError(str(path), [SpecProblem("file not found", path=str(path))]) from None
    except OSError as e:
        raise SpecError(str(path), [SpecProblem(f"cannot read the file: {e.strerror}", path=str(path))]) from None
    return load_spec_text(text, str(path), base_dir)
