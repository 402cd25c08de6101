"""Shared by every command module: the database handle, the --format option and the root state."""

from __future__ import annotations

import typer

from torc_hpc.cli.output import Format
from torc_hpc.db import Database
from torc_hpc.limits import MAX_DEPENDENCIES, MAX_JOBS

FormatOpt = typer.Option(Format.table, "--format", "-f", help="table for people, json for scripts")
MaxJobsOpt = typer.Option(MAX_JOBS, "--max-jobs", min=1, show_default=True,
                          help="refuse a spec that expands to more jobs than this (checked before expanding)")
MaxDependenciesOpt = typer.Option(MAX_DEPENDENCIES, "--max-dependencies", min=0, show_default=True,
                                  help="refuse a spec that expands to more dependencies than this")


class _State:
    url: str | None = None


state = _State()


def open_db() -> Database:
    """A connection for one command (the URL from --database-url, TORC_DATABASE_URL or the embedded server)."""
    return Database(state.url)
