"""`torc config show`: the effective settings and where each came from."""

from __future__ import annotations

import typer

from torc_hpc.cli.common import FormatOpt
from torc_hpc.cli.output import Format, console, emit_json, emit_rows
from torc_hpc.config import EXAMPLE, SETTINGS, settings
from torc_hpc.db.connection import redact

app = typer.Typer(help="Defaults from ~/.config/torc/config.toml (or the file TORC_CONFIG names).",
                  no_args_is_help=True)


@app.command("show")
def config_show(example: bool = typer.Option(False, "--example", help="print an example config file instead"),
                fmt: Format = FormatOpt):
    """The effective value of every setting and where it came from: flag > environment > config file > default.

    The database URL is shown without its password.

    Example: `TORC_SLURM_ACCOUNT=proj torc config show`
    """
    if example:
        print(EXAMPLE.format(path=settings.path), end="")
        return
    values = settings.all()
    rows = []
    for s in SETTINGS:
        v = values[s.key]
        shown = redact(v.value) if (s.secret_url and v.value) else v.value
        rows.append({"key": s.key, "value": shown, "source": v.source, "env": s.env, "help": s.help})
    if fmt is not Format.table:
        emit_json({"config_file": str(settings.path), "config_file_exists": settings.path.is_file(),
                   "settings": rows})
        return
    where = settings.path if settings.path.is_file() else f"{settings.path} (none; `torc config show --example`)"
    console.print(f"config file: {where}", highlight=False)
    from torc_hpc.db.connection import data_dir

    for r in rows:
        if r["value"] is None:
            r["value"] = f"(embedded server in {data_dir() / 'pgdata'})" if r["key"] == "database_url" else ""
    emit_rows(rows,
              ["key", "value", "source"], fmt, wide_columns=["env", "help"], flex="value")
