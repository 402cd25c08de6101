"""Shared by every command module: the database handle, the --format option and the root state."""

from __future__ import annotations

import typer

from torc_hpc.cli.output import Format
from torc_hpc.db import Database

FormatOpt = typer.Option(Format.table, "--format", "-f", help="table for people, json for scripts")


class _State:
    url: str | None = None


state = _State()


def open_db() -> Database:
    """A connection for one command (the URL from --database-url, TORC_DATABASE_URL or the embedded server)."""
    return Database(state.url)
