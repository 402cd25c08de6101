"""A worker's start journal on disk: written by the worker before each start, read by the reconciler after
it died (the format and what may be believed: torc_hpc/core/starts.py)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from pathlib import Path

from torc_hpc.core.starts import Journal, end_line, parse_journal, start_line
from torc_hpc.limits import MAX_START_JOURNAL_BYTES

log = logging.getLogger("torc.worker")

_READ_CHUNK = 1 << 20


class StartJournal:
    """Append-only, one write() per line, no fsync: a kill -9 of the worker keeps what it wrote."""

    def __init__(self, output_dir: Path, token: str):
        self.path: str | None = None
        self.fd = -1
        directory = output_dir / "workers"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"starts_{token}.log"
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
            self.path = str(path.resolve())
        except OSError as e:
            log.warning("no start journal (%s): if this worker dies, the jobs it holds count as started", e)

    def started(self, job: dict) -> bool:
        """Journal a start. False: the journal failed and could not be withdrawn; do not start the job
        (the reconciler would believe it never ran)."""
        return self._append(start_line(job["id"], job["run_id"], job["attempt_id"]))

    def ended(self, job: dict, return_code: int, killed: bool) -> None:
        """An attempt whose end the database never heard of (the worker gave up on it)."""
        self._append(end_line(job["id"], job["run_id"], job["attempt_id"], return_code, killed))

    def _append(self, line: bytes) -> bool:
        if self.fd < 0:
            return True   # no journal: every held job counts as started, which is safe
        try:
            if os.write(self.fd, line) == len(line):
                return True
            raise OSError(errno.EIO, "short write")
        except OSError as e:
            # A journal missing a start would let a job run twice: withdraw the whole journal (the reconciler
            # then counts every held job as started), or refuse the start if even that fails.
            log.warning("start journal %s failed (%s); withdrawing it", self.path, e)
            self.close()
            try:
                os.unlink(self.path)
                return True
            except OSError:
                return False

    def discard(self) -> None:
        """The worker stopped cleanly with everything recorded: the journal has no reader left."""
        self.close()
        if self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def read_journal(path: str, wanted: set[int], *, max_bytes: int = MAX_START_JOURNAL_BYTES,
                 owner_uid: int | None = None) -> tuple[Journal | None, str]:
    """Read a dead worker's journal as untrusted input: no symlink, a regular file only (never a FIFO or a
    device), owned by `owner_uid` when given, at most `max_bytes`, only lines about `wanted` jobs kept.
    Returns (facts, how it went); facts None when the journal cannot be believed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        return None, f"start journal {path} unreadable ({e.strerror or e})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, f"start journal {path} is not a regular file"
        if owner_uid is not None and st.st_uid != owner_uid:
            return None, f"start journal {path} is not owned by the workflow's owner"
        if st.st_size > max_bytes:
            return None, f"start journal {path} is larger than {max_bytes} bytes (limits.MAX_START_JOURNAL_BYTES)"
        facts = Journal()
        rest, total = b"", 0
        while total <= max_bytes:
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            parse_journal(data[:cut], wanted, into=facts)
            rest = data[cut:]
        if total > max_bytes:
            return None, f"start journal {path} grew beyond {max_bytes} bytes while being read"
        return facts, f"start journal {path} read"
    finally:
        os.close(fd)
