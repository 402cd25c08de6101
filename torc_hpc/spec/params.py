"""Parameter values ("0:2", "0:10:2", "[1,5,10]", "['a','b']", float ranges) and placeholders."""

from __future__ import annotations

import ast
import itertools
import re
from decimal import Decimal, InvalidOperation

# {name} or {name:format_spec}; other braces (bash ${VAR}, {a,b}) are left alone.
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")


def _number(text: str) -> int | float | Decimal:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None


def parse_values(raw) -> list:
    """Expand one parameter's value into the list of values it stands for."""
    if isinstance(raw, bool):
        raise ValueError("a parameter must be a range like '0:9', a list like '[1,5]' or a value")
    if isinstance(raw, (int, float)):
        return [raw]
    if isinstance(raw, list):
        if not raw:
            raise ValueError("a parameter list cannot be empty")
        return list(raw)
    text = str(raw).strip()
    if text.startswith("["):
        try:
            values = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"cannot read list {text!r}: write it like [1, 5, 10] or ['a', 'b']") from None
        if not isinstance(values, list) or not values:
            raise ValueError(f"{text!r} must be a non-empty list")
        return values
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"cannot read range {text!r}: write start:end or start:end:step (end included)")
        try:
            nums = [_number(p) for p in parts]
        except ValueError as e:
            raise ValueError(f"cannot read range {text!r}: {e}") from None
        start, end = nums[0], nums[1]
        step = nums[2] if len(nums) == 3 else 1
        if step == 0:
            raise ValueError(f"range {text!r} has a step of 0")
        if (end - start) * step < 0:
            raise ValueError(f"range {text!r} is empty: the step goes away from the end")
        count = int((Decimal(end) - Decimal(start)) / Decimal(step)) + 1
        if all(isinstance(n, int) for n in nums):
            return [start + i * step for i in range(count)]
        # Decimal arithmetic avoids 0.1 + 0.2 drift; the values handed out are floats.
        return [float(Decimal(start) + i * Decimal(step)) for i in range(count)]
    return [text]


def combinations(parameters: dict[str, list], mode: str) -> list[dict]:
    names = list(parameters)
    if not names:
        return [{}]
    if mode == "zip":
        lengths = {len(v) for v in parameters.values()}
        if len(lengths) != 1:
            detail = ", ".join(f"{k}={len(v)}" for k, v in parameters.items())
            raise ValueError(f"parameter_mode zip needs lists of equal length ({detail})")
        return [dict(zip(names, vals)) for vals in zip(*parameters.values())]
    return [dict(zip(names, vals)) for vals in itertools.product(*parameters.values())]


def placeholders(text: str) -> set[str]:
    return {m.group(1) for m in PLACEHOLDER_RE.finditer(text)}


def substitute(text: str, values: dict) -> str:
    """Replace {name} and {name:spec} for the names in `values`; leave every other brace alone."""
    if "{" not in text:
        return text

    def repl(m: re.Match) -> str:
        name, spec = m.group(1), m.group(2)
        if name not in values:
            return m.group(0)
        return format(values[name], spec or "")

    return PLACEHOLDER_RE.sub(repl, text)
