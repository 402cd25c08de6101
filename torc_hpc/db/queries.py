"""Named SQL from torc_hpc/db/queries/*.sql, parsed once. Python code refers to statements by name only.

Every statement torc runs at run time lives in that directory, one file per concern (workflows, jobs,
workers, listings, slurm, watch, ...). Format: a "-- name: NAME" header, then a "-- " line saying what
it does, then the statement. Parameters are named (%(name)s); names are unique across all files.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def _all() -> dict[str, str]:
    queries: dict[str, str] = {}
    where: dict[str, str] = {}
    folder = resources.files("torc_hpc.db").joinpath("queries")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        parts = _HEADER.split(entry.read_text())
        for name, body in zip(parts[1::2], parts[2::2]):
            if name in queries:
                raise RuntimeError(f"query {name} is defined in both {where[name]} and {entry.name}")
            queries[name] = body.strip().rstrip(";")
            where[name] = entry.name
    return queries


def q(name: str) -> str:
    """The statement named `name` in torc_hpc/db/queries/*.sql."""
    try:
        return _all()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in torc_hpc/db/queries/") from None
