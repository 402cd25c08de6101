"""`torc admin …`: what support staff see across every owner (needs `torc db grant ROLE --admin`, or the
database owner). Reads the admin_* views (sql/migrations/0005_security.sql)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional

import psycopg
import typer

from torc_hpc.cli.common import FormatOpt, WideOpt, open_db
from torc_hpc.cli.output import Format, console, emit_json, emit_rows
from torc_hpc.core.units import parse_duration
from torc_hpc.errors import TorcError

app = typer.Typer(help="Admins: usage per owner and what is stuck, across every owner's workflows "
                       "(torc db grant ROLE --admin).", no_args_is_help=True)


def _since(value: str | None, now: datetime) -> datetime | None:
    """--since: an ISO date/time, or a duration back from now (7d, 24h, PT2H, 01:00:00)."""
    if not value:
        return None
    v = value.strip()
    units = {"d": 86400, "h": 3600, "m": 60, "w": 7 * 86400}
    if v[:-1].isdigit() and v[-1] in units:
        return now - timedelta(seconds=int(v[:-1]) * units[v[-1]])
    try:
        return now - timedelta(seconds=parse_duration(v))
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        raise TorcError(f"--since {value!r}: give a date (2026-01-31), a date and time, or a duration back "
                        f"from now (7d, 24h, 90m, PT2H)") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _window(db, since, heartbeat_timeout_s: float = 120, pending_after_s: float = 86400) -> None:
    db.one("set_admin_window", since=since, heartbeat_timeout_s=heartbeat_timeout_s,
           pending_after_s=pending_after_s)


def _read(db, *names: str) -> list[list[dict]]:
    try:
        return [db.all(n) for n in names]
    except psycopg.errors.InsufficientPrivilege as e:
        raise TorcError(f"role {db.conn.info.user} may not read the "
                        f"admin views ({str(e).strip()}); the database owner grants it: "
                        f"torc db grant ROLE --admin") from None


@app.command("usage")
def admin_usage(since: Optional[str] = typer.Option(None, "--since", help="only results since: a date, or a "
                                                    "duration back from now (7d, 24h); default: all time"),
                wide: bool = WideOpt, fmt: Format = FormatOpt):
    """Per owner: workflows, attempts by outcome, CPU-hours and GPU-hours (runtime × requested CPUs/GPUs),
    CPU-hours used (rusage), jobs by status now, and failed attempts by return code.

    Example: `torc admin usage --since 7d`
    """
    start = _since(since, datetime.now(timezone.utc))
    with open_db() as db, db.conn.transaction():
        _window(db, start)
        usage, by_status, failures = _read(db, "admin_usage", "admin_jobs_by_status", "admin_failures")
    statuses: dict[str, dict] = {}
    for r in by_status:
        statuses.setdefault(r["owner"], {})[r["status"]] = r["jobs"]
    for u in usage:
        u["jobs"] = statuses.get(u["owner"], {})
        for k in ("cpu_hours", "gpu_hours", "cpu_hours_used"):
            u[k] = float(u[k])
    if fmt is not Format.table:
        emit_json({"since": start, "usage": usage, "failures": failures})
        return
    console.print(f"usage since {start:%Y-%m-%d %H:%M} UTC" if start else "usage, all time")
    emit_rows([{**u, "jobs": ", ".join(f"{k} {v}" for k, v in sorted(u["jobs"].items()))} for u in usage],
              ["owner", "workflows", "attempts", "failed", "cpu_hours", "gpu_hours", "jobs"], fmt,
              wide_columns=["completed", "terminated", "cpu_hours_used", "last_result_at"], wide=wide, flex="jobs",
              empty="no workflows visible to you (are you granted --admin?)")
    if failures:
        emit_rows(failures, ["owner", "return_code", "attempts", "workflows", "last_at"], fmt,
                  title="failed attempts by return code")


@app.command("stuck")
def admin_stuck(heartbeat_timeout: float = typer.Option(120, "--heartbeat-timeout",
                                                         help="seconds without a heartbeat that make a worker stale"),
                pending_after: float = typer.Option(86400, "--pending-after",
                                                    help="seconds an allocation may wait in Slurm before it counts"),
                fmt: Format = FormatOpt):
    """What needs a person: running jobs whose worker stopped or went silent, pending_failed jobs older than
    a day, allocations pending in Slurm for long.

    Example: `torc admin stuck --format json`
    """
    with open_db() as db, db.conn.transaction():
        _window(db, None, heartbeat_timeout, pending_after)
        (rows,) = _read(db, "admin_stuck")
    emit_rows(rows, ["owner", "workflow_id", "problem", "job_id", "job_name", "slurm_job_id", "since", "detail"],
              fmt, flex="detail", empty="nothing is stuck")
