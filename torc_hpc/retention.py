"""Retention: prune old events, archive a workflow to one JSON file and delete it.

Both work in bounded memory and short transactions, whatever the size of the tables:
- `prune_events` deletes events older than a cutoff in chunks of limits.PRUNE_CHUNK_EVENTS, walking the
  primary key once (events_ts_brin finds where the old events end);
- `archive_workflow` streams every row the workflow owns through server-side cursors into one JSON file
  (one row per line, so `read_archive` can stream it back), under one consistent snapshot, then deletes the
  workflow in chunks (Database.delete_workflow) unless something changed in it since the snapshot.

Results and events of deleted or archived workflows cannot remain: the delete removes them explicitly and
the workflow row's ON DELETE CASCADE catches anything written meanwhile.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path

from torc_hpc import limits
from torc_hpc.db import migrate as migrations
from torc_hpc.db.queries import q
from torc_hpc.db.repo import Database
from torc_hpc.errors import TorcError

ARCHIVE_FORMAT = "torc-archive"
ARCHIVE_VERSION = 1

# Small tables first (read whole), then the large ones (streamed); the order a re-import would follow.
_SMALL = ("failure_handlers", "failure_handler_rules", "slurm_schedulers", "watch_state", "workers", "allocations",
          "files", "user_data", "datasets", "workflow_actions", "recovery_claims", "spawn_lineages")
_LARGE = ("jobs", "job_dependencies", "job_files", "job_user_data", "job_datasets", "action_jobs", "results", "events")
TABLES = _SMALL + _LARGE

_AGO_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_AGO_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_cutoff(text: str, now: datetime, local_tz: tzinfo | None = None) -> datetime:
    """A cutoff as people write it → an aware datetime. '2024-06-01' (midnight, local time),
    '2024-06-01T12:30', '2024-06-01 12:30+02:00', or an age: '90d', '12h', '2w' (before `now`)."""
    m = _AGO_RE.match(text)
    if m:
        return now - timedelta(**{_AGO_UNIT[m.group(2).lower()]: int(m.group(1))})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TorcError(f"cannot read the date {text!r}: write 2024-06-01, 2024-06-01T12:30 or an age "
                        f"such as 90d, 12h or 2w") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=local_tz or now.astimezone().tzinfo)
    if value > now:
        raise TorcError(f"the date {text!r} is in the future: nothing newer than now can be pruned safely")
    return value


# ---- prune -----------------------------------------------------------------------------------------

def prune_events(db: Database, before: datetime, *, dry_run: bool = False,
                 chunk: int = limits.PRUNE_CHUNK_EVENTS) -> dict:
    """Delete every event older than `before`, chunk by chunk (each chunk one transaction)."""
    rng = db.one("prune_events_range", before=before)
    out = {"before": before.isoformat(), "events_older": rng["n"], "events_deleted": 0, "chunks": 0,
           "dry_run": dry_run}
    if dry_run or not rng["n"]:
        return out
    after = 0
    while True:
        with db.conn.transaction():
            row = db.one("prune_events_chunk", before=before, after=after, upto=rng["upto"], chunk=chunk)
        out["events_deleted"] += row["n"]
        out["chunks"] += 1
        if row["n"] < chunk:
            break
        after = row["last"]
    return out


# ---- archive ---------------------------------------------------------------------------------------

def _plain(v):
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (bytes, memoryview)):
        return bytes(v).hex()
    raise TypeError(f"cannot write {type(v).__name__} to an archive")


def _line(row: dict) -> str:
    return json.dumps(row, default=_plain, ensure_ascii=False, separators=(",", ":"))


def default_archive_path(workflow_id: int) -> Path:
    return Path(f"torc_archive_wf{workflow_id}.json.gz")


def _open_out(path: Path):
    tmp = path.with_name(path.name + ".partial")
    if path.name.endswith(".gz"):
        return tmp, gzip.open(tmp, "wt", encoding="utf-8", compresslevel=3)
    return tmp, open(tmp, "w", encoding="utf-8")


@dataclass
class ArchiveResult:
    workflow_id: int
    path: str
    counts: dict[str, int]
    bytes: int
    deleted: bool


def archive_workflow(db: Database, workflow_id: int, path: Path | None = None, *, delete: bool = True,
                     fetch: int = limits.ARCHIVE_FETCH_ROWS) -> ArchiveResult:
    """Export everything about a finished workflow to one JSON file, then delete it.

    Refuses a workflow with running jobs or live workers (the export would miss what they do next). The
    export reads one REPEATABLE READ snapshot; rows stream through server-side cursors `fetch` at a time
    and are written one per line, so memory stays bounded. The file is written as PATH.partial, flushed to
    disk and renamed; only then is the workflow deleted, and only if it has no event newer than the
    snapshot's (else it is kept and the archive should be made again)."""
    db.workflow(workflow_id)
    path = Path(path) if path else default_archive_path(workflow_id)
    if path.exists():
        raise TorcError(f"{path} exists; choose another file with -o, or move it away")
    quiet = db.one("archive_quiet", workflow_id=workflow_id)
    if quiet["running"] or quiet["live_workers"]:
        raise TorcError(f"workflow {workflow_id} has {quiet['running']} running job(s) and "
                        f"{quiet['live_workers']} live worker(s); wait for them, or "
                        f"`torc workflows cancel {workflow_id}` and wait, then archive")
    counts: dict[str, int] = {}
    try:
        tmp, out = _open_out(path)
    except OSError as e:
        raise TorcError(f"cannot write the archive {path}: {e.strerror}; choose another file with -o") from e
    try:
        with out, db.conn.transaction():
            db.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            last_event_id = db.one("archive_quiet", workflow_id=workflow_id)["last_event_id"]
            wf = db.one("archive_workflow", workflow_id=workflow_id)
            out.write("{" + f'"format":"{ARCHIVE_FORMAT}","version":{ARCHIVE_VERSION},'
                      f'"schema_version":{migrations.current_version(db.conn)},'
                      f'"exported_at":{json.dumps(datetime.now(timezone.utc).isoformat())},'
                      f'"workflow_id":{workflow_id},\n')
            out.write('"workflow":' + _line(wf) + ",\n")
            for table in TABLES:
                out.write(f'"{table}":[')
                n = 0
                with db.conn.cursor(name=f"torc_archive_{table}") as cur:
                    cur.itersize = fetch
                    cur.execute(q(f"archive_{table}"), {"workflow_id": workflow_id})
                    for row in cur:
                        out.write(("\n" if n == 0 else ",\n") + _line(row))
                        n += 1
                counts[table] = n
                out.write(("\n" if n else "") + "],\n")
            out.write('"counts":' + _line(counts) + "\n}\n")
        fd = os.open(tmp, os.O_RDONLY)  # closed (gzip trailer written): make it durable before the rename
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    deleted = False
    if delete:
        db.delete_workflow(workflow_id, unchanged_since_event=last_event_id or 0)
        deleted = True
    return ArchiveResult(workflow_id, str(path), counts, path.stat().st_size, deleted)


def read_archive(path: str | Path) -> Iterator[tuple[str, dict]]:
    """Stream an archive back as (section, row) pairs: ("header", {...}), ("workflow", row), then
    (table, row) for every row of every table, and ("counts", {...}) last. Memory stays bounded: the file
    has one row per line. (Small archives are plain JSON too: json.load, jq.)"""
    opener = gzip.open if str(path).endswith(".gz") else open
    header: dict = {}
    section = None
    with opener(path, "rt", encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if section is not None:
                if line in ("],", "]"):
                    section = None
                    continue
                yield section, json.loads(line[:-1] if line.endswith(",") else line)
                continue
            if line.startswith("{"):
                header = json.loads(line[:-1] + "}")
                if header.get("format") != ARCHIVE_FORMAT:
                    raise TorcError(f"{path} is not a torc archive")
                yield "header", header
            elif line.startswith('"workflow":'):
                yield "workflow", json.loads(line[len('"workflow":'):].rstrip(","))
            elif line.startswith('"counts":'):
                yield "counts", json.loads(line[len('"counts":'):])
            elif line.endswith(":["):
                section = line[1:-3]
            elif line.endswith(":[],") or line.endswith(":[]"):
                continue
            elif line == "}":
                return
            else:
                raise TorcError(f"{path}: unexpected line in a torc archive: {line[:80]!r}")
