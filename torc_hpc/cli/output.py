"""Printing: tables for people, JSON (or JSON lines) for scripts. Field names in JSON are a stable interface.

Tables never break a word inside a cell: a value wider than its column is cut with an ellipsis, and the
table fits the terminal (COLUMNS, else the terminal's width, else 200 when output is not a terminal).
Listings that stream (jobs, results) print each row as it arrives, so their columns have fixed widths;
short listings measure their rows first. Sizes and durations are shown in human units (KiB/MiB/GiB,
1m05s) in tables and as plain numbers in JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Callable, Iterable, TextIO

from rich.console import Console

from torc_hpc.core.units import human_bytes, human_duration  # noqa: F401 - re-exported for the CLI modules

# Messages are never hard-wrapped: a long command or path stays one line for copy-paste and for logs.
console = Console(soft_wrap=True)
if not console.is_terminal:  # piped or logged: rich renderables get a wide canvas
    console = Console(width=200, soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


class Format(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"


ELLIPSIS = "…"
GAP = "  "
FLEX_MAX = 60   # a flexible column (names, commands) grows with the terminal up to this many characters


# ---- human units -------------------------------------------------------------------------------

def human_time(dt: datetime | None, now: datetime | None = None) -> str:
    if dt is None:
        return ""
    local = dt.astimezone() if dt.tzinfo else dt
    now = now or datetime.now(timezone.utc)
    now = now.astimezone() if now.tzinfo else now
    if local.date() == now.date():
        return local.strftime("%H:%M:%S")
    if local.year == now.year:
        return local.strftime("%m-%d %H:%M")
    return local.strftime("%Y-%m-%d")


# ---- columns and cells -------------------------------------------------------------------------

@dataclass(frozen=True)
class Col:
    """One table column. `width` is fixed for streamed tables; `flex` takes what the terminal has left."""

    key: str
    header: str
    width: int = 10
    kind: str = "text"      # text | int | bytes | duration | time | status | float | json
    wide: bool = False      # shown only with --wide
    flex: bool = False

    @property
    def right(self) -> bool:
        return self.kind in ("int", "bytes", "duration", "float")


_STATUS_COLOR = {"completed": "32", "failed": "31", "terminated": "31", "canceled": "33",
                 "pending_failed": "35", "running": "36", "ready": "34", "blocked": "2"}


def cell(value, kind: str = "text") -> str:
    """A value as table text (one line; control characters and newlines become spaces)."""
    if value is None:
        return ""
    if kind == "bytes":
        return human_bytes(value)
    if kind == "duration":
        return human_duration(value)
    if isinstance(value, datetime):
        return human_time(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, default=str, separators=(",", ":"))
    text = str(value)
    return text if text.isprintable() else text.translate(_CONTROL)


_CONTROL = {i: " " for i in (*range(32), 127)}


def fit(text: str, width: int) -> str:
    """Cut text to `width` characters with an ellipsis (never a break inside a word)."""
    if len(text) <= width:
        return text
    if width <= 0:
        return ""
    return text[:width - 1] + ELLIPSIS


def kind_for(name: str) -> str:
    """A column's kind from its field name (for listings given as plain field names)."""
    if name.endswith("_bytes") or name in ("mem",):
        return "bytes"
    if name.endswith(("_s", "_seconds")):
        return "duration"
    if name.endswith("_at") or name == "ts":
        return "time"
    if name == "status":
        return "status"
    if name.endswith("_id") or name in ("id", "total", "nodes", "return_code") or name.startswith("num_"):
        return "int"
    return "text"


_SHORT = {"attempt_id": "att", "return_code": "rc", "num_cpus": "cpus", "num_gpus": "gpus", "memory_bytes": "mem",
          "runtime_s": "runtime", "worker_id": "worker", "exec_time_s": "time", "peak_memory_bytes": "peak mem",
          "cpu_time_s": "cpu", "job_name": "job", "run_id": "run", "job_id": "job id",
          "canceled_jobs": "canceled", "canceled": "wf canceled", "pending_failed": "pending", "completed": "done", "total": "jobs", "slurm_job_id": "slurm id",
          "cpus_per_node": "cpus/node", "walltime_s": "walltime", "sacct_state": "sacct", "submitted_at": "submitted",
          "started_at": "started", "ended_at": "ended", "completed_at": "ended", "created_at": "created",
          "from_status": "from", "to_status": "to"}


def terminal_width() -> int:
    return shutil.get_terminal_size(fallback=(200, 24)).columns


def _color_enabled(out: TextIO) -> bool:
    return out.isatty() and not os.environ.get("NO_COLOR")


class TableWriter:
    """Writes a table row by row: header first, then each row as it comes (fixed column widths)."""

    def __init__(self, cols: list[Col], out: TextIO | None = None, *, total_width: int | None = None,
                 grow: bool = True):
        """grow: flexible columns take the room the terminal has left (up to FLEX_MAX); without it (columns
        measured from their rows) they only shrink to fit."""
        self.out = out or sys.stdout
        self.cols = cols
        self.color = _color_enabled(self.out)
        total = total_width or terminal_width()
        fixed = sum(c.width for c in cols if not c.flex) + len(GAP) * (len(cols) - 1)
        flex = [c for c in cols if c.flex]
        spare = max(0, total - fixed)
        self.widths = [max(c.width, min(FLEX_MAX, spare // len(flex))) if c.flex and grow else c.width
                       for c in cols]
        # Never wider than the terminal: shrink the flexible column first, then the widest others.
        over = sum(self.widths) + len(GAP) * (len(cols) - 1) - total
        order = sorted(range(len(cols)), key=lambda i: (not cols[i].flex, -self.widths[i]))
        for i in order:
            if over <= 0:
                break
            floor = max(4, len(cols[i].header)) if cols[i].kind != "status" else 6
            take = min(over, max(0, self.widths[i] - floor))
            self.widths[i] -= take
            over -= take

    def _line(self, texts: list[str], styles: list[str | None]) -> str:
        if not hasattr(self, "_layout"):
            last = len(self.cols) - 1
            # (width, right-aligned, may be cut, pad it) per column; the last left-aligned one gets no padding
            self._layout = [(w, c.right, c.kind != "int", not (i == last and not c.right))
                            for i, (c, w) in enumerate(zip(self.cols, self.widths))]
        parts = []
        for (w, right, cut, pad), t, st in zip(self._layout, texts, styles):
            if cut and len(t) > w:   # a number is never cut: it may push the row a little wider
                t = t[:w - 1] + ELLIPSIS if w > 0 else ""
            if pad:
                t = t.rjust(w) if right else t.ljust(w)
            if st and self.color:
                t = f"\x1b[{st}m{t}\x1b[0m"
            parts.append(t)
        return GAP.join(parts).rstrip() + "\n"

    def header(self) -> None:
        self.out.write(self._line([c.header for c in self.cols], ["1"] * len(self.cols)))

    def row(self, r: dict) -> None:
        """One row; the hot path of a million-row listing, so each column's formatting is looked up once."""
        if not hasattr(self, "_fmt"):
            now = datetime.now(timezone.utc)
            self._fmt = [_formatter(c.kind, now) for c in self.cols]
            self._keys = [c.key for c in self.cols]
            self._status = [c.kind == "status" for c in self.cols]
        texts = [f(r.get(k)) for f, k in zip(self._fmt, self._keys)]
        styles = [_STATUS_COLOR.get(t) if st else None for t, st in zip(texts, self._status)]
        self.out.write(self._line(texts, styles))


def _formatter(kind: str, now: datetime) -> Callable:
    if kind == "int":
        return lambda v: "" if v is None else str(v)
    if kind == "bytes":
        return human_bytes
    if kind == "duration":
        return human_duration
    if kind == "time":
        return lambda v: human_time(v, now) if isinstance(v, datetime) else cell(v)
    if kind == "status":
        return lambda v: "" if v is None else v
    return lambda v: cell(v, kind)


def _plain(v):
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, default=_plain, indent=None) + "\n")


def stream_rows(rows: Iterable[dict], cols: list[Col], fmt: Format, *, wide: bool = False,
                as_json: Callable[[dict], dict] | None = None, empty: str = "nothing to show",
                out: TextIO | None = None, grow: bool = True) -> int:
    """Print rows as they arrive (tables, a JSON array written element by element, or JSON lines).
    `as_json` turns a row into its JSON object (default: the row itself). Returns the number of rows."""
    out = out or sys.stdout
    as_json = as_json or (lambda r: r)
    n = 0
    last_flush = time.monotonic()

    def flush_now():
        nonlocal last_flush
        # The first row goes out at once; later rows in chunks (a pipe is block-buffered anyway).
        if n == 1 or time.monotonic() - last_flush > 0.5:
            out.flush()
            last_flush = time.monotonic()

    if fmt is Format.table:
        shown = [c for c in cols if wide or not c.wide]
        # --wide asks for every column: they keep their widths (for `less -S` or a wide window), not the terminal's
        writer = TableWriter(shown, out, grow=grow, total_width=10_000 if wide else None)
        for r in rows:
            if n == 0:
                writer.header()
            writer.row(r)
            n += 1
            flush_now()
        if n == 0:
            err_console.print(f"[dim]{empty}[/dim]")
    elif fmt is Format.jsonl:
        for r in rows:
            out.write(json.dumps(as_json(r), default=_plain) + "\n")
            n += 1
            flush_now()
    else:
        out.write("[")
        for r in rows:
            out.write(("," if n else "") + "\n" + json.dumps(as_json(r), default=_plain))
            n += 1
            flush_now()
        out.write("\n]\n" if n else "]\n")
    out.flush()
    return n


def measured_cols(rows: list[dict], columns: list[str], *, flex: str | None = None) -> list[Col]:
    """Columns sized to the rows they will show (for short listings that are read before printing)."""
    cols = []
    for name in columns:
        kind = kind_for(name)
        values = [r.get(name) for r in rows if r.get(name) is not None]
        if kind == "text" and values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            kind = "int"
        header = _SHORT.get(name, name)
        width = max([len(header)] + [len(cell(v, kind)) for v in values])
        cols.append(Col(name, header, width if name == flex else min(width, 60), kind, flex=(name == flex)))
    return cols


def emit_rows(rows: list[dict], columns: list[str], fmt: Format, *, title: str | None = None,
              empty: str = "nothing to show", wide_columns: list[str] | None = None, wide: bool = False,
              flex: str | None = None) -> None:
    """A short listing: JSON gets every field named in columns (and wide_columns); a table gets the
    compact columns (plus wide_columns with --wide), each as wide as its longest value, cut to fit."""
    all_cols = list(columns) + [c for c in (wide_columns or []) if c not in columns]
    if fmt is not Format.table:
        stream_rows(rows, [], fmt, as_json=lambda r: {k: _plain(r.get(k)) for k in all_cols})
        return
    if not rows:
        err_console.print(f"[dim]{empty}[/dim]")
        return
    if title:
        console.print(f"[bold]{title}[/bold]")
    shown = all_cols if wide else list(columns)
    # --wide: every column at its own width (as streamed listings do), not cut to the terminal's
    stream_rows(rows, measured_cols(rows, shown, flex=flex), Format.table, wide=wide, grow=False)
