"""torc: create, run, inspect and repair workflows. Every listing takes --format json for scripts.

This module only assembles the command groups; each lives in its own module (run, workflows, jobs,
slurm, watch, logs, report, config, mcp, db, admin), and every command parses, calls one operation and prints.
"""

from __future__ import annotations

import logging
import sys
from typing import Optional

import typer
from rich.markup import escape

from torc_hpc.cli import admin as admin_cmds
from torc_hpc.cli import config as config_cmds
from torc_hpc.cli import db as db_cmds
from torc_hpc.cli import jobs as jobs_cmds
from torc_hpc.cli import logs as logs_cmds
from torc_hpc.cli import mcp as mcp_cmds
from torc_hpc.cli import report as report_cmds
from torc_hpc.cli import run as run_cmds
from torc_hpc.cli import slurm as slurm_cmds
from torc_hpc.cli import user_data as user_data_cmds
from torc_hpc.cli import watch as watch_cmds
from torc_hpc.cli import workflows as workflows_cmds
from torc_hpc.cli.common import state
from torc_hpc.cli.output import err_console
from torc_hpc.config import settings
from torc_hpc.errors import TorcError

app = typer.Typer(
    help="torc-hpc: run workflows of shell jobs with dependencies and failure handlers, locally or on Slurm.\n\n"
         "Quick start:  torc run examples/yaml/diamond.yaml\n\n"
         "Wherever a command takes a workflow id, `last` means your most recent workflow; wherever it takes a "
         "job, give its id or its name.\n\n"
         "The database is --database-url, else TORC_DATABASE_URL, else `database_url` in the config file "
         "(`torc config show`); without one, torc starts an embedded PostgreSQL in your data directory and "
         "keeps it for the next command (`torc db status`, `torc db stop`).",
    no_args_is_help=True, rich_markup_mode="markdown", pretty_exceptions_enable=False)

app.command()(run_cmds.run)
app.command()(run_cmds.worker)
app.command("submit-slurm")(slurm_cmds.submit_slurm)
app.command()(watch_cmds.watch)
app.command()(logs_cmds.logs)
app.command()(report_cmds.report)
app.command()(mcp_cmds.mcp)
app.add_typer(workflows_cmds.app, name="workflows")
app.add_typer(jobs_cmds.app, name="jobs")
app.add_typer(jobs_cmds.results_app, name="results")
app.add_typer(jobs_cmds.events_app, name="events")
app.add_typer(db_cmds.app, name="db")
app.add_typer(slurm_cmds.app, name="slurm")
app.add_typer(config_cmds.app, name="config")
app.add_typer(admin_cmds.app, name="admin")
app.add_typer(user_data_cmds.app, name="user-data")


@app.callback()
def _root(database_url: Optional[str] = typer.Option(
        None, "--database-url", show_default=False,
        help="PostgreSQL URL; else TORC_DATABASE_URL, else database_url in the config file, else the embedded "
             "server in your data directory"),
          db_pooler: Optional[str] = typer.Option(
        None, "--db-pooler", show_default=False,
        help="none, session or transaction: what is between torc and PostgreSQL (else TORC_DB_POOLER, else "
             "db_pooler in the config file); transaction: nothing prepared, workers poll or LISTEN on "
             "TORC_NOTIFY_URL"),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="log what the worker does")):
    settings.flags["database_url"] = database_url
    settings.flags["db_pooler"] = db_pooler
    state.url = settings.get("database_url", database_url)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("psycopg").setLevel(logging.INFO if verbose else logging.ERROR)  # torc says it better


_PLAIN_TYPES = {"int": "N", "int range": "N", "float": "NUM", "float range": "NUM", "str": "TEXT", "path": "PATH",
                "file": "PATH", "directory": "DIR"}


def _short_type(param, ctx) -> str | None:
    """What an option's value looks like, in one short word: N, TEXT, PATH, or its few choices."""
    label = (param.display_type(ctx) or "").strip("<>")
    if label in _PLAIN_TYPES:
        return _PLAIN_TYPES[label]
    return label if len(label) <= 24 else "NAME"


def _tidy_help(cmd) -> None:
    """--help that reads well at 80 columns: flags show no `<bool>` placeholder, values a short word
    (N, TEXT, PATH, table|json|jsonl), arguments only their name."""
    for p in cmd.params:
        kind = getattr(p, "param_type_name", "")
        if kind == "option" and getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
        elif kind == "option" and p.metavar is None:
            p.display_type_rich = (lambda param: lambda ctx: _short_type(param, ctx))(p)
        elif kind == "argument":
            p.display_type_rich = lambda ctx: None
    make_help = cmd.get_help_option

    def help_option(ctx):
        opt = make_help(ctx)
        if opt is not None:
            opt.metavar = ""
        return opt

    cmd.get_help_option = help_option
    for sub in getattr(cmd, "commands", {}).values():
        _tidy_help(sub)


def command():
    """The assembled click command (for main() and for tests that walk every command's help)."""
    cmd = typer.main.get_command(app)
    _tidy_help(cmd)
    return cmd


def main() -> None:
    try:
        command()(prog_name="torc")
    except TorcError as e:  # SpecError included (exit code 2); user text is escaped, never read as markup
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
