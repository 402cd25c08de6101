"""Read a spec file into a validated WorkflowSpec, with every error located by file, line, job and field.

The stages, the same for every format (torc_hpc.spec.formats):
  bytes ─► text (size bound, UTF-8, BOM) ─► format.parse ─► plain data ─► schema (models) ─► references
A format only turns text into plain data and, when an error needs a line, key paths into lines; the
bounds and the messages are shared.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from torc_hpc.errors import SpecError, SpecProblem
from torc_hpc.limits import (MAX_COMMAND_BYTES, MAX_NAME_LENGTH, MAX_NESTING_DEPTH, MAX_PARAMETER_TEXT, MAX_PROBLEMS,
                             MAX_REGEX_LENGTH, MAX_SPEC_BYTES, MAX_TEXT_LENGTH)
from torc_hpc.spec.formats import FormatError, SpecFormat, format_for
from torc_hpc.spec import compat
from torc_hpc.spec.models import DATA_NAME, ENV_KEY, IDENTIFIER, NO_CONTROL, NO_NUL, SBATCH_KEY, WorkflowSpec

_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
         b"\xfe\xff": "UTF-16"}

_PATTERN_MESSAGES = {
    NO_NUL: "contains a NUL character (\\u0000 or \\0), which PostgreSQL cannot store: remove it",
    NO_CONTROL: "contains a control character (a tab, a newline, NUL…), which this field cannot hold",
    IDENTIFIER: "parameter names are identifiers (letters, digits and _, not starting with a digit), so "
                "that {name} placeholders can use them",
    ENV_KEY: "environment variable names are letters, digits and _, not starting with a digit",
    SBATCH_KEY: "slurm_defaults keys are sbatch long options without the leading --, in lower case "
                "(e.g. mail-type)",
    DATA_NAME: "user_data names are letters, digits and . _ - (they are substituted into commands)",
}
_LENGTH_LIMITS = {MAX_NAME_LENGTH: "MAX_NAME_LENGTH", MAX_COMMAND_BYTES: "MAX_COMMAND_BYTES",
                  MAX_TEXT_LENGTH: "MAX_TEXT_LENGTH", MAX_REGEX_LENGTH: "MAX_REGEX_LENGTH",
                  MAX_PARAMETER_TEXT: "MAX_PARAMETER_TEXT"}
assert len(_LENGTH_LIMITS) == 5, "string length limits must differ so that messages can name them"


class LineLocator:
    """Finds the lines of key paths, falling back to the nearest enclosing key. Nothing is indexed until
    an error needs a line; then the spec's own format scans the text once for the paths asked for (ask
    for all of an error's paths at once with `lines`)."""

    def __init__(self, text: str, fmt: SpecFormat | None = None):
        self._text = text
        self._format = fmt or format_for("<spec>.yaml")
        self._index: dict[tuple, int] = {}
        self._covered: set[tuple] = set()

    def lines(self, paths: list[tuple]) -> list[int | None]:
        need = {p[:k] for p in paths for k in range(len(p) + 1)}
        if not need <= self._covered:
            self._covered |= need
            self._index = self._format.line_index(self._text, self._covered)
        return [self._lookup(p) for p in paths]

    def line(self, path: tuple) -> int | None:
        return self.lines([path])[0]

    def _lookup(self, path: tuple) -> int | None:
        while path:
            if path in self._index:
                return self._index[path]
            path = path[:-1]
        return self._index.get(())


def decode(raw: bytes, path: str) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is dropped). Raises SpecError naming the line of a bad byte."""
    for bom, name in _BOMS.items():
        if raw.startswith(bom):
            raise SpecError(path, [SpecProblem(f"the file is {name} (it starts with a {name} byte-order mark); "
                                               "save it as UTF-8", line=1, path=path)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(path, [SpecProblem(
            f"the file is not UTF-8: byte 0x{raw[e.start]:02x} at column {column} cannot be read; save the "
            "file as UTF-8", line=line, path=path)]) from None
    return text[1:] if text.startswith("\ufeff") else text


def _job_name(data, path: tuple) -> str | None:
    if len(path) >= 2 and path[0] == "jobs" and isinstance(path[1], int):
        try:
            name = data["jobs"][path[1]].get("name")
        except (KeyError, IndexError, AttributeError, TypeError):
            return None
        if not isinstance(name, str):
            return None
        return name if len(name) <= 80 else f"{name[:60]}… ({len(name):,} characters)"
    return None


def _field(path: tuple, strip_job: bool = True) -> str | None:
    """'resource_requirements.memory', 'jobs[3].name' (the job's own fields without 'jobs[i]')."""
    rest = path[2:] if strip_job and path[:1] == ("jobs",) and len(path) >= 3 else path
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in rest]
    if len(parts) > 8:  # a deeply nested path: its start and its end say where
        parts = parts[:4] + [f"…({len(parts) - 6} more)…"] + parts[-2:]
    return ".".join(parts).replace(".[", "[") or None


def _data_path(data, loc: tuple, keep_last: bool) -> tuple[tuple, bool]:
    """The error location as a path in the data: pydantic inserts union members ('str',
    'constrained-str', 'ResourceRequirementsSpec', …) and '[key]' into `loc`; they resolve to nothing in
    the data and are dropped. Returns (path, whether a union member was dropped)."""
    path, node, dropped = [], data, False
    for n, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif keep_last and n == len(loc) - 1:
            node = None
        else:
            dropped = True
            continue
        path.append(part)
    return tuple(path), dropped


def _message(err: dict) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key (check its spelling; see the spec reference in README)"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERN_MESSAGES:
        return _PATTERN_MESSAGES[ctx["pattern"]]
    if kind in ("string_type", "int_type", "float_type", "list_type", "bool_type", "dict_type",
                "model_type", "int_parsing", "float_parsing"):
        return err["msg"].replace("Input should be ", "should be ")
    if kind == "string_too_long":
        limit = ctx.get("max_length")
        name = _LENGTH_LIMITS.get(limit)
        return (f"is too long: at most {limit:,} characters" + (f" (torc_hpc.limits.{name})" if name else ""))
    return err["msg"]


def _schema_problems(e: ValidationError, data, locator: LineLocator, path: str) -> SpecError:
    errors = e.errors(include_url=False, include_input=False)
    cleaned = []
    for err in errors:
        loc, dropped = _data_path(data, tuple(err["loc"]), keep_last=err["type"] in ("missing", "extra_forbidden"))
        cleaned.append((loc, dropped, err))
    # A union ('str | Model') reports every member; when one member has errors deeper inside the value,
    # the others ("should be a valid string") only confuse. Members failing at the same place are joined.
    deeper = {loc[:k] for loc, _, _ in cleaned for k in range(len(loc))}
    by_loc: dict[tuple, list[str]] = {}
    for loc, dropped, err in cleaned:
        if dropped and loc in deeper:
            continue
        msgs = by_loc.setdefault(loc, [])
        msg = _message(err)
        if msg not in msgs:
            msgs.append(msg)
    problems = []
    shown = list(by_loc.items())[:MAX_PROBLEMS]
    lines = locator.lines([loc for loc, _ in shown])
    for (loc, msgs), line in zip(shown, lines):
        if msgs[0].startswith("unknown key"):
            msgs = [f"unknown key '{loc[-1]}' (check its spelling; see the spec reference in README)"]
        job = _job_name(data, loc)
        if len(msgs) > 1 and all(m.startswith("should be ") for m in msgs):
            msgs = ["should be " + ", ".join(m[len("should be "):] for m in msgs[:-1]) + " or "
                    + msgs[-1][len("should be "):]]
        problems.append(SpecProblem("; or ".join(msgs), job=job, field=_field(loc, strip_job=job is not None),
                                    line=line, path=path))
    return SpecError(path, problems, total=len(by_loc))


def _too_deep(data) -> tuple | None:
    """The key path of a list or mapping nested deeper than MAX_NESTING_DEPTH, or None. Iterative, and
    only over containers; formats that parse without recursion refuse such nesting earlier."""
    stack = [(data, ())]
    while stack:
        node, path = stack.pop()
        if len(path) >= MAX_NESTING_DEPTH:
            return path
        if isinstance(node, dict):
            stack.extend((v, path + (k,)) for k, v in node.items() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, path + (i,)) for i, v in enumerate(node) if isinstance(v, (dict, list)))
    return None


def load_spec_text(text: str | bytes, path: str = "<spec>", base_dir: Path | None = None):
    """Parse and validate spec text. Returns (WorkflowSpec, LineLocator). Raises SpecError."""
    if isinstance(text, bytes):
        text = decode(text, path)
    elif text.startswith("\ufeff"):
        text = text[1:]
    fmt = format_for(path)
    try:
        data = fmt.parse(text)
    except FormatError as e:
        field = _field(e.key_path, strip_job=False) if e.key_path else None
        raise SpecError(path, [SpecProblem(e.message, field=field, line=e.line, path=path)]) from None
    if data is None:
        raise SpecError(path, [SpecProblem("the spec is empty: it needs at least 'name' and 'jobs' "
                                           "(see examples/yaml/diamond.yaml)", path=path)])
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a single string"}.get(type(data), f"a single {type(data).__name__}")
        raise SpecError(path, [SpecProblem(f"the spec must be a mapping with 'name' and 'jobs', not {kind}",
                                           line=1, path=path)])
    locator = LineLocator(text, fmt)
    too_deep = _too_deep(data)
    if too_deep is not None:
        raise SpecError(path, [SpecProblem(
            f"lists and mappings are nested more than {MAX_NESTING_DEPTH} levels deep "
            "(torc_hpc.limits.MAX_NESTING_DEPTH); a workflow spec needs about 6",
            field=_field(too_deep, strip_job=False), line=locator.line(too_deep), path=path)])
    found = compat.normalize(data)
    found += compat.apply_variables(data) if not found else []
    if found:
        shown = found[:MAX_PROBLEMS]
        lines = locator.lines([loc for _, loc in shown])
        raise SpecError(path, [SpecProblem(msg, job=_job_name(data, loc), field=_field(loc, _job_name(data, loc) is not None),
                                           line=line, path=path) for (msg, loc), line in zip(shown, lines)],
                        total=len(found))
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as e:
        raise _schema_problems(e, data, locator, path) from None
    from torc_hpc.spec.expand import validate_references  # local: expand imports models too

    validate_references(spec, locator, path, base_dir or Path.cwd())
    return spec, locator


def load_spec(path: str | Path, base_dir: Path | None = None):
    """Read and validate a spec file (refused unread if larger than MAX_SPEC_BYTES)."""
    p, shown = Path(path), str(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(shown, [SpecProblem("file not found", path=shown)]) from None
    except IsADirectoryError:
        raise SpecError(shown, [SpecProblem("is a directory, not a spec file", path=shown)]) from None
    except OSError as e:
        raise SpecError(shown, [SpecProblem(f"cannot read the file: {e.strerror}", path=shown)]) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(shown, [SpecProblem(
            f"the file is larger than {MAX_SPEC_BYTES // 2**20} MiB (torc_hpc.limits.MAX_SPEC_BYTES): use "
            "parameters ('0:999999') instead of writing every job out", path=shown)])
    return load_spec_text(raw, shown, base_dir)

