"""`torc user-data …`: read and write a workflow's named JSON values (the spec's user_data).

Inside a job the workflow is TORC_WORKFLOW_ID, so Torc's documented commands work unchanged:
`torc user-data get knobs`, `torc user-data set knobs --data '{"threads": 4}'`.
"""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from torc_hpc import workflows as ops
from torc_hpc.cli import common
from torc_hpc.cli.common import FormatOpt, open_db
from torc_hpc.cli.output import Format, console, emit_json, emit_rows
from torc_hpc.errors import TorcError

app = typer.Typer(help="Read and write a workflow's user_data (named JSON values jobs pass to each other).",
                  no_args_is_help=True)

TargetArg = typer.Argument(..., metavar="[WF] NAME",
                           help="the workflow (an id or `last`; default: TORC_WORKFLOW_ID, set in every job) and "
                                "the value's name")


def _target(db, args: list[str]) -> tuple[int | None, str]:
    """(workflow, name) from `NAME` (the workflow: TORC_WORKFLOW_ID) or `WF NAME` (an id or `last`)."""
    if len(args) == 1:
        return None, args[0]
    if len(args) == 2:
        return common.workflow_id(db, args[0]), args[1]
    raise TorcError("give NAME, or WF NAME (a workflow id or `last`, and a name)")


@app.command("get")
def user_data_get(target: List[str] = TargetArg, fmt: Format = FormatOpt):
    """Print a value as JSON (table format: the value alone, for `$(torc user-data get NAME)`).

    Example inside a job: `threads=$(torc user-data get knobs | jq .threads)`.
    """
    with open_db() as db:
        wf, name = _target(db, target)
        row = ops.get_user_data(db, wf, name)
    if fmt is not Format.table:
        emit_json(row)
    else:
        print(json.dumps(row["data"]))


@app.command("set")
def user_data_set(target: List[str] = TargetArg,
                  data: str = typer.Option(..., "--data", "-d", help="the new value, as JSON text"),
                  fmt: Format = FormatOpt):
    """Write a value (JSON). Inside a job the writer is recorded (TORC_JOB_ID) with an event.

    Example: `torc user-data set knobs --data '{"threads": 4}'`.
    """
    with open_db() as db:
        wf, name = _target(db, target)
        row = ops.set_user_data(db, wf, name, data)
    if fmt is not Format.table:
        emit_json(row)
    else:
        console.print(f"user_data '{name}' of workflow {row['workflow_id']} set")


app.command("update", help="The same as set (Torc's name for it).\n\n"
                            "Example: `torc user-data update knobs --data '{\"threads\": 8}'`")(user_data_set)


@app.command("list")
def user_data_list(workflow_id: Optional[str] = typer.Argument(None, metavar="[WF]",
                                                                help="workflow id or `last`; default: TORC_WORKFLOW_ID"),
                   fmt: Format = FormatOpt):
    """Every user_data value of a workflow: its JSON, whether it is ephemeral, when and by which job it was
    last written.

    Example: `torc user-data list last`
    """
    with open_db() as db:
        wf = ops.user_data_workflow(db, common.workflow_id(db, workflow_id) if workflow_id else None)
        rows = db.all("list_user_data", workflow_id=wf)
    emit_rows(rows, ["name", "data", "is_ephemeral", "updated_at", "updated_by_job"], fmt,
              empty="no user_data in this workflow (declare values in the spec's user_data)")
