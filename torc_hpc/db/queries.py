"""Named SQL from queries.sql, parsed once. Python code refers to statements by name only."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def _all() -> dict[str, str]:
    text = resources.files("torc_hpc.db").joinpath("queries.sql").read_text()
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        lines = [ln for ln in body.strip().splitlines()]
        sql = "\n".join(lines).strip().rstrip(";")
        if name in queries:
            raise RuntimeError(f"queries.sql defines {name} twice")
        queries[name] = sql
    return queries


def q(name: str) -> str:
    """The statement named `name` in queries.sql."""
    try:
        return _all()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in torc_hpc/db/queries.sql") from None
