"""Printing: rich tables for people, JSON for scripts. Field names in JSON are a stable interface."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import Enum

from rich.console import Console
from rich.table import Table

console = Console()
if not console.is_terminal:  # piped or logged: do not wrap tables at 80 columns
    console = Console(width=200)
err_console = Console(stderr=True)


class Format(str, Enum):
    table = "table"
    json = "json"


def _plain(v):
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, default=_plain, indent=None) + "\n")


def emit_rows(rows: list[dict], columns: list[str], fmt: Format, *, title: str | None = None,
              empty: str = "nothing to show") -> None:
    if fmt is Format.json:
        emit_json([{k: _plain(r.get(k)) for k in columns} for r in rows])
        return
    if not rows:
        console.print(f"[dim]{empty}[/dim]")
        return
    table = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*["" if r.get(c) is None else _fmt_cell(r.get(c)) for c in columns])
    console.print(table)


_STATUS_STYLE = {"completed": "green", "failed": "red", "terminated": "red", "canceled": "yellow",
                 "pending_failed": "magenta", "running": "cyan", "ready": "blue", "blocked": "dim"}


def _fmt_cell(v) -> str:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    s = str(v)
    style = _STATUS_STYLE.get(s)
    return f"[{style}]{s}[/{style}]" if style else s.replace("[", r"\[")
