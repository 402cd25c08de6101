"""Parameter values ("0:2", "0:10:2", "[1,5,10]", "['a','b']", float ranges), their combinations and
the placeholder templates they fill. Pure.

Values are lazy: a range is a `range` or a `FloatRange`, never a list, and `count` is computed from the
bounds, so the size of an expansion is known (and refused) before anything is materialized.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal, DecimalException, InvalidOperation

from torc_hpc.limits import MAX_FORMAT_WIDTH, MAX_PARAMETER_TEXT, MAX_VALUE_TEXT_LENGTH

# {name} or {name:format_spec}; other braces (bash ${VAR}, {a,b}) are left alone.
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# Counts above this are reported as "more than" it: no bound torc has is anywhere near.
COUNT_CAP = 10**18


class Float(float):
    """A parameter's float: without a format spec an integral value prints without '.0' (1.0 → '1', as in
    Torc's names); with one it formats like any float ({lr:.2e})."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(int(self)) if self.is_integer() else float.__repr__(self)
        return float.__format__(self, spec)

    def __str__(self) -> str:
        return self.__format__("")


class FloatRange(Sequence):
    """start, start + step, … (count values), computed in Decimal (no 0.1 + 0.2 drift), handed out as floats."""

    __slots__ = ("start", "step", "count")

    def __init__(self, start: Decimal, step: Decimal, count: int):
        self.start, self.step, self.count = start, step, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self.count))]
        if not -self.count <= i < self.count:
            raise IndexError(i)
        return Float(self.start + (i % self.count) * self.step)

    def __iter__(self) -> Iterator[float]:
        start, step = self.start, self.step
        return (Float(start + i * step) for i in range(self.count))


def value_count(values: Sequence) -> int:
    """How many values, capped at COUNT_CAP (a range may hold more than len() can say)."""
    if isinstance(values, range):
        n = (values.stop - values.start + values.step + (-1 if values.step > 0 else 1)) // values.step
        return min(max(n, 0), COUNT_CAP)
    if isinstance(values, FloatRange):
        return values.count
    return len(values)


def _number(text: str) -> int | Decimal:
    text = text.strip()
    if len(text) > MAX_VALUE_TEXT_LENGTH:
        raise ValueError(f"a bound of {len(text):,} characters is too long (at most {MAX_VALUE_TEXT_LENGTH}, "
                         "torc_hpc.limits.MAX_VALUE_TEXT_LENGTH)")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not d.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return d


def _check_scalars(values: list, text: str) -> list:
    for k, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ValueError(f"{text!r}: list values must be numbers or strings, not {type(v).__name__}")
        if isinstance(v, str) and CONTROL_RE.search(v):
            raise ValueError(f"{text!r}: a value contains a control character (tab, newline, NUL…)")
        if isinstance(v, float) and not isinstance(v, Float):
            values[k] = Float(v)
    return values


_QUOTES = ("'", '"')


def scalar(text: str):
    """A value written as text, as Torc reads list items, table cells and @file lines: an integer, else a
    finite float, else the text (stripped)."""
    t = text.strip()
    if len(t) <= MAX_VALUE_TEXT_LENGTH:
        try:
            return int(t)
        except ValueError:
            pass
        try:
            v = float(t)
            if v == v and v not in (float("inf"), float("-inf")):
                return Float(v)
        except ValueError:
            pass
    return t


def _bare_item(item: str):
    """One item of a bare-word list ("[train, test]"): a scalar, text without surrounding quotes."""
    v = scalar(item)
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] and v[0] in _QUOTES:
        v = v[1:-1]
    return v


def parameter_values(raw, files: dict | None = None) -> Sequence:
    """The values one parameter stands for: a range (lazy), a list, or a single value. Raises ValueError.

    Text forms: "0:9" and "0.0:1.0:0.25" (ends included), "[1, 5]" and "['a', 'b']" (Python literals),
    "[train, test]" (bare words, as Torc), "{1:3}" (Torc's braces around a range or list), and "@path" (one
    value per line of a file: `files` holds what validation read, path → values or the error)."""
    if isinstance(raw, bool):
        raise ValueError("a parameter must be a range like '0:9', a list like '[1,5]' or a value")
    if isinstance(raw, float):
        return [Float(raw)]
    if isinstance(raw, int):
        return [raw]
    if isinstance(raw, list):
        if not raw:
            raise ValueError("a parameter list cannot be empty")
        return _check_scalars(list(raw), "the list")
    text = str(raw).strip()
    if len(text) > MAX_PARAMETER_TEXT:
        raise ValueError(f"the value is {len(text):,} characters long; at most {MAX_PARAMETER_TEXT:,} "
                         "(torc_hpc.limits.MAX_PARAMETER_TEXT): use a range like '0:999' instead")
    if text.startswith("@") and len(text) > 1:
        got = (files or {}).get(text)
        if got is None:
            raise ValueError(f"{_shown(text)}: the file was not read (give the spec to torc as a file)")
        if isinstance(got, str):
            raise ValueError(got)
        return got
    if text.startswith("{") and text.endswith("}") and not PLACEHOLDER_RE.fullmatch(text):
        text = text[1:-1].strip()  # Torc's {1:100} is 1:100
    if text.startswith("["):
        try:
            values = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            values = None
        if values is None:
            if not text.endswith("]"):
                raise ValueError(f"cannot read list {_shown(text)}: write it like [1, 5, 10] or ['a', 'b']")
            items = [i for i in text[1:-1].split(",") if i.strip()]
            values = [_bare_item(i) for i in items]
        if not isinstance(values, list) or not values:
            raise ValueError(f"{_shown(text)} must be a non-empty list")
        return _check_scalars(values, _shown(text))
    if ":" in text:
        return _range(text)
    return [text]


def _range(text: str) -> Sequence:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"cannot read range {_shown(text)}: write start:end or start:end:step (end included)")
    try:
        nums = [_number(p) for p in parts]
    except ValueError as e:
        raise ValueError(f"cannot read range {_shown(text)}: {e}") from None
    start, end = nums[0], nums[1]
    step = nums[2] if len(nums) == 3 else 1
    if step == 0:
        raise ValueError(f"range {text!r} has a step of 0")
    if all(isinstance(n, int) for n in nums):
        if (end - start) * step < 0:
            raise ValueError(f"range {text!r} is empty: the step goes away from the end")
        return range(start, end + (1 if step > 0 else -1), step)
    try:
        span = (Decimal(end) - Decimal(start)) / Decimal(step)
    except DecimalException:  # beyond Decimal's exponent range: far more values than any limit
        return FloatRange(Decimal(start), Decimal(step), COUNT_CAP)
    if span < 0:
        raise ValueError(f"range {text!r} is empty: the step goes away from the end")
    count = COUNT_CAP if span >= COUNT_CAP else int(span) + 1
    return FloatRange(Decimal(start), Decimal(step), count)


def _shown(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text):,} characters)"


def combination_count(values: list[Sequence], mode: str) -> int:
    """How many combinations (capped at COUNT_CAP), without making any. Raises ValueError for zip of
    unequal lengths."""
    counts = [value_count(v) for v in values]
    if not counts:
        return 1
    if mode == "zip":
        if len(set(counts)) != 1:
            raise ValueError("unequal")
        return counts[0]
    n = 1
    for c in counts:
        n = min(n * c, COUNT_CAP)
    return n


def combinations(values: list[Sequence], mode: str) -> Iterator[tuple]:
    """Value tuples, one per combination, in order (the last parameter varies fastest in product mode)."""
    if not values:
        return iter([()])
    if mode == "zip":
        return zip(*values)
    return itertools.product(*values)


def placeholders(text: str) -> set[str]:
    return {m.group(1) for m in PLACEHOLDER_RE.finditer(text)}


def format_spec_problem(spec: str) -> str | None:
    """Refuse a format spec whose width or precision would make huge strings ({i:>1500000000})."""
    for digits in re.findall(r"\d+", spec):
        if len(digits) > len(str(MAX_FORMAT_WIDTH)) or int(digits) > MAX_FORMAT_WIDTH:
            return (f"the format spec ':{spec}' asks for a width or precision of {_shown(digits, 12)}; "
                    f"at most {MAX_FORMAT_WIDTH} (torc_hpc.limits.MAX_FORMAT_WIDTH)")
    return None


class Template:
    """A string with {name} / {name:spec} placeholders, parsed once and rendered per combination.

    `names` maps each parameter to its position in the value tuples; placeholders of other names stay
    as written (see `unknown`)."""

    __slots__ = ("text", "parts", "unknown", "_format")

    def __init__(self, text: str, names: dict[str, int]):
        self.text = text
        parts, last, unknown = [], 0, []
        for m in PLACEHOLDER_RE.finditer(text):
            name = m.group(1)
            if name in names:
                parts.append((text[last:m.start()], names[name], m.group(2) or ""))
                last = m.end()
            elif name not in unknown:
                unknown.append(name)
        self.parts = (parts, text[last:]) if parts else None
        self.unknown = unknown
        # The same rendering as format(value, spec) per placeholder, in one C call: str.format with
        # positional fields ({0:06d}); the literal text's own braces are doubled.
        esc = lambda s: s.replace("{", "{{").replace("}", "}}")  # noqa: E731
        self._format = "".join(f"{esc(lit)}{{{i}{':' + spec if spec else ''}}}" for lit, i, spec in parts) \
            + esc(text[last:]) if parts else None

    @property
    def used(self) -> set[int]:
        return {i for _, i, _ in self.parts[0]} if self.parts else set()

    def spec_problem(self) -> str | None:
        for _, _, spec in self.parts[0] if self.parts else ():
            msg = format_spec_problem(spec) if spec else None
            if msg:
                return msg
        return None

    def render(self, values: tuple) -> str:
        if self._format is None:
            return self.text  # shared, not copied: a million jobs with one command hold one string
        return self._format.format(*values)

    def render_problem(self, values: tuple, names: list[str]) -> str | None:
        """Why render() fails for these values (for the error message), or None."""
        for _, i, spec in self.parts[0] if self.parts else ():
            if i >= len(values):
                return f"{{{names[i]}}} has no value here"
            try:
                format(values[i], spec)
            except (ValueError, TypeError, OverflowError) as e:
                return (f"'{{{names[i]}:{spec}}}' cannot format the value {values[i]!r} of parameter "
                        f"{names[i]}: {e}")
        return None
