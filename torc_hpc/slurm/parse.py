"""Parsers for squeue and sacct output (pipe-separated, no header). Pure; tested on captured output."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SQUEUE_FORMAT = "%i|%T|%e|%S|%r"
SACCT_FIELDS = "JobIDRaw,State,ExitCode,Start,End"


@dataclass(frozen=True)
class QueueRow:
    job_id: str
    state: str
    end_time: datetime | None
    start_time: datetime | None
    reason: str


@dataclass(frozen=True)
class AcctRow:
    job_id: str
    state: str          # raw, e.g. "CANCELLED by 0"
    exit_code: str      # "code:signal"
    start_time: datetime | None
    end_time: datetime | None


def parse_time(text: str) -> datetime | None:
    """Slurm prints local times like 2026-11-26T20:12:19, or N/A / Unknown / None."""
    text = text.strip()
    if not text or text in ("N/A", "Unknown", "None", "NONE"):
        return None
    try:
        return datetime.fromisoformat(text).astimezone()  # naive → the cluster's local zone
    except ValueError:
        return None


def parse_squeue(text: str) -> dict[str, QueueRow]:
    rows = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5:
            continue
        job_id, state, end, start, reason = parts[:5]
        rows[job_id] = QueueRow(job_id, state, parse_time(end), parse_time(start), reason)
    return rows


def parse_sacct(text: str) -> dict[str, AcctRow]:
    """Allocation rows only: steps ('123.batch', '123.0', '123.extern') are skipped."""
    rows = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5:
            continue
        job_id, state, exit_code, start, end = parts[:5]
        if "." in job_id or not job_id:
            continue
        rows[job_id] = AcctRow(job_id, state, exit_code, parse_time(start), parse_time(end))
    return rows


def parse_sbatch_parsable(text: str) -> str:
    """`sbatch --parsable` prints 'jobid' or 'jobid;cluster'."""
    first = text.strip().splitlines()[-1] if text.strip() else ""
    job_id = first.split(";")[0].strip()
    if not job_id.isdigit():
        raise ValueError(f"unexpected sbatch output: {text!r}")
    return job_id
