"""torc: create, run, inspect and repair workflows. Every listing takes --format json for scripts.

This module only assembles the command groups; each lives in its own module (run, workflows, jobs,
slurm, watch, db, admin), and every command parses, calls one operation and prints.
"""

from __future__ import annotations

import logging
import sys
from typing import Optional

import typer
from rich.markup import escape

from torc_hpc.cli import admin as admin_cmds
from torc_hpc.cli import db as db_cmds
from torc_hpc.cli import jobs as jobs_cmds
from torc_hpc.cli import mcp as mcp_cmds
from torc_hpc.cli import run as run_cmds
from torc_hpc.cli import slurm as slurm_cmds
from torc_hpc.cli import watch as watch_cmds
from torc_hpc.cli import workflows as workflows_cmds
from torc_hpc.cli.common import state
from torc_hpc.cli.output import err_console
from torc_hpc.errors import TorcError

app = typer.Typer(
    help="torc-hpc: run workflows of shell jobs with dependencies and failure handlers, locally or on Slurm.\n\n"
         "Quick start:  torc run examples/yaml/diamond.yaml\n\n"
         "The database is TORC_DATABASE_URL (or --database-url); without one, torc starts an embedded "
         "PostgreSQL in your data directory and keeps it for the next command.",
    no_args_is_help=True, rich_markup_mode="markdown", pretty_exceptions_enable=False)

app.command()(run_cmds.run)
app.command()(run_cmds.worker)
app.command("submit-slurm")(slurm_cmds.submit_slurm)
app.command()(watch_cmds.watch)
app.command()(mcp_cmds.mcp)
app.add_typer(workflows_cmds.app, name="workflows")
app.add_typer(jobs_cmds.app, name="jobs")
app.add_typer(jobs_cmds.results_app, name="results")
app.add_typer(jobs_cmds.events_app, name="events")
app.add_typer(db_cmds.app, name="db")
app.add_typer(slurm_cmds.app, name="slurm")
app.add_typer(admin_cmds.app, name="admin")


@app.callback()
def _root(database_url: Optional[str] = typer.Option(
        None, "--database-url", envvar="TORC_DATABASE_URL",
        help="PostgreSQL URL; default: the embedded server in your data directory"),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="log what the worker does")):
    state.url = database_url
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("psycopg").setLevel(logging.INFO if verbose else logging.ERROR)  # torc says it better


def main() -> None:
    try:
        app()
    except TorcError as e:  # SpecError included (exit code 2); user text is escaped, never read as markup
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
