"""Shared by every command module: the database handle, common arguments and options, and the resolvers
that turn what a person types (`last`, a job name) into ids."""

from __future__ import annotations

import typer

from torc_hpc import workflows as ops
from torc_hpc.cli.output import Format
from torc_hpc.config import settings
from torc_hpc.db import Database
from torc_hpc.limits import MAX_DEPENDENCIES, MAX_JOBS

FormatOpt = typer.Option(Format.table, "--format", "-f",
                         help="table for people; json (one document) or jsonl (one object per line) for scripts")
WideOpt = typer.Option(False, "--wide", "-w", help="every column (default: the compact ones)")
WF_HELP = "workflow id, or `last` for your most recent workflow"
JOB_HELP = "job id or job name"


def WorkflowArg(help: str = WF_HELP):  # noqa: N802 - reads like the typer.Argument it returns
    return typer.Argument(..., metavar="WF", help=help, show_default=False)


def JobArg(help: str = JOB_HELP):  # noqa: N802
    return typer.Argument(..., metavar="JOB", help=help, show_default=False)
MaxJobsOpt = typer.Option(MAX_JOBS, "--max-jobs", min=1, show_default=True,
                          help="refuse a spec that expands to more jobs than this (checked before expanding)")
MaxDependenciesOpt = typer.Option(MAX_DEPENDENCIES, "--max-dependencies", min=0, show_default=True,
                                  help="refuse a spec that expands to more dependencies than this")


class _State:
    url: str | None = None


state = _State()


def open_db() -> Database:
    """A connection for one command (the URL from --database-url, TORC_DATABASE_URL, the config file, or
    the embedded server)."""
    return Database(state.url)


def workflow_id(db: Database, ref: str) -> int:
    """The id behind a WF argument (`last` or a number); raises NotFound with how to find one."""
    return ops.resolve_workflow(db, ref)


def job(db: Database, workflow_id: int, ref: str) -> dict:
    """The job behind a JOB argument (an id or a name)."""
    return ops.resolve_job(db, workflow_id, ref)


def script_setting(key: str, flag=None, option: str | None = None):
    """A setting's effective value (the flag if given, else environment, config file, default), for settings
    that end up in sbatch scripts (the output directory, Slurm options): a newline or other control
    character is refused before anything is written, naming where the value came from (the option, the
    environment variable, or the config file and its key)."""
    from torc_hpc.config import BY_KEY
    from torc_hpc.slurm.script import check_value

    v = settings.value(key, flag)
    if v.source == "flag":
        field, source = option or "--" + key.rsplit(".", 1)[-1], "the command line"
    elif v.source.startswith("env "):
        field, source = BY_KEY[key].env, "the environment"
    elif v.source.startswith("config "):
        field, source = key, f"the config file {settings.path}"
    else:
        field, source = key, "torc's defaults"
    check_value(field, v.value, source)
    return v.value


def expansion_limits(max_jobs: int, max_dependencies: int):
    """The --max-jobs/--max-dependencies bounds as the spec layer takes them (imported here, when a command
    creates a workflow: commands that only read skip loading the spec models)."""
    from torc_hpc.spec import ExpansionLimits

    return ExpansionLimits(max_jobs, max_dependencies)
