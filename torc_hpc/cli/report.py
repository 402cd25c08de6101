"""`torc report WF`: one self-contained HTML file about a workflow, to open in any browser, offline."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from torc_hpc import workflows as ops
from torc_hpc.cli import common
from torc_hpc.cli.common import FormatOpt, WorkflowArg, open_db
from torc_hpc.cli.output import Format, console, emit_json, human_bytes


def report(workflow_id: str = WorkflowArg(),
           output: Optional[Path] = typer.Option(None, "--output", "-o", show_default=False,
                                                 help="the HTML file to write (default: report_wf{WF}.html here; "
                                                      "- for stdout)"),
           fmt: Format = FormatOpt):
    """Write one self-contained HTML report: a summary; a timeline of every attempt (one lane per worker or
    allocation, colored by outcome); peak memory and runtime against what each job requested; the failures
    with their stderr and the handlers' decisions; the dependency graph (as stages when it is large).

    It needs no network and no server: open it in a browser, attach it to a mail.

    Example: `torc report last -o report.html`
    """
    from torc_hpc.report import collect, render

    with open_db() as db:
        wf_id = common.workflow_id(db, workflow_id)
        ops.touch(db, wf_id)
        data = collect(db, wf_id, datetime.now(timezone.utc))
    html = render(data)
    if output is not None and str(output) == "-":
        print(html, end="")
        return
    path = output or Path(f"report_wf{wf_id}.html")
    path.write_text(html, encoding="utf-8")
    size = path.stat().st_size
    if fmt is not Format.table:
        emit_json({"workflow_id": wf_id, "path": str(path.resolve()), "bytes": size,
                   "attempts": len(data.attempts), "jobs": len(data.jobs)})
    else:
        console.print(f"wrote {path} ({human_bytes(size)}): {len(data.jobs)} jobs, {len(data.attempts)} attempts · "
                      f"open it: xdg-open {path}", highlight=False)
