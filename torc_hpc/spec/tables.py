"""Parameter values that live in files: tables (`parameters_file: sweep.csv|sweep.json`, one combination per
row) and lists (`"@cities.txt"`, one value per line). Read once, relative to the directory torc runs in,
bounded by MAX_SPEC_BYTES like the spec itself, and every problem names the file.

A table becomes ordinary parameters: one list per column, zipped (row k is combination k).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from torc_hpc.limits import MAX_SPEC_BYTES
from torc_hpc.spec.params import scalar

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TableError(ValueError):
    pass


def _read(path_text: str, base_dir: Path) -> str:
    p = Path(path_text)
    p = p if p.is_absolute() else base_dir / p
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise TableError(f"{path_text} not found (paths are relative to where torc runs: {base_dir})") from None
    except OSError as e:
        raise TableError(f"cannot read {path_text}: {e.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise TableError(f"{path_text} is larger than {MAX_SPEC_BYTES // 2**20} MiB "
                         "(torc_hpc.limits.MAX_SPEC_BYTES)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TableError(f"{path_text} is not UTF-8 text") from None


def load_table(path_text: str, base_dir: Path) -> dict[str, list]:
    """Columns of a CSV or JSON table (column → its values, one per row). Raises TableError."""
    text = _read(path_text, base_dir)
    if path_text.lower().endswith(".json"):
        try:
            rows = json.loads(text)
        except ValueError as e:
            raise TableError(f"{path_text} is not JSON: {e}") from None
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise TableError(f"{path_text} must hold a non-empty JSON array of objects, one per combination")
        columns = list(rows[0])
        for k, r in enumerate(rows):
            if set(r) != set(columns):
                raise TableError(f"{path_text}: object {k + 1} has the keys {sorted(r)}, the first has "
                                 f"{sorted(columns)}; every row needs the same keys")
        table = {c: [_json_cell(r[c]) for r in rows] for c in columns}
    elif path_text.lower().endswith(".csv"):
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader)
        except StopIteration:
            raise TableError(f"{path_text} is empty: it needs a header row and one row per combination") from None
        except csv.Error as e:
            raise TableError(f"{path_text}: {e}") from None
        columns = [h.strip() for h in header]
        table = {c: [] for c in columns}
        try:
            for n, row in enumerate(reader, start=2):
                if not row or not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise TableError(f"{path_text}:{n} has {len(row)} cells, the header {len(columns)}")
                for c, cell in zip(columns, row):
                    table[c].append(scalar(cell))
        except csv.Error as e:
            raise TableError(f"{path_text}: {e}") from None
        if not table or not next(iter(table.values())):
            raise TableError(f"{path_text} has a header but no rows")
    else:
        raise TableError(f"{path_text}: a parameters_file is a .csv or a .json table")
    if len(set(columns)) != len(columns):
        raise TableError(f"{path_text}: a column name appears twice")
    bad = [c for c in columns if not _IDENT.match(c)]
    if bad:
        raise TableError(f"{path_text}: column {bad[0]!r} is not a parameter name (letters, digits and _, not "
                         "starting with a digit)")
    return table


def _json_cell(v):
    if isinstance(v, bool) or v is None or isinstance(v, (list, dict)):
        return json.dumps(v)  # nested values become their JSON text, as in Torc
    return v


def load_lines(path_text: str, base_dir: Path) -> list:
    """Values of an @file: one per line, blank lines and # comments skipped. Raises TableError."""
    values = [scalar(line) for line in _read(path_text, base_dir).splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    if not values:
        raise TableError(f"@{path_text} holds no values (one per line; # starts a comment)")
    return values
