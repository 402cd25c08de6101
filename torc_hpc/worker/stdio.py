"""A job attempt's stdout and stderr as its stdio mode says (separate, combined, no_stdout, no_stderr, none).

Fewer files per job is the point of the modes on file systems where creating one is slow (Lustre, GPFS):
`combined` creates one file instead of two, `none` creates none (both streams go to /dev/null).
Names come from torc_hpc.logs (the CLI reads the same ones).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache

from torc_hpc import logs
from torc_hpc.worker import process


@lru_cache(maxsize=1)
def devnull_for_writing() -> int:
    """One /dev/null for every stream that is not kept (dup2'd in the child, never closed)."""
    return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


@dataclass(frozen=True, slots=True)
class Stdio:
    """What a child's fds 1 and 2 become, which descriptors the worker must close once the child runs, and
    which files the attempt created (deleted again if the attempt never starts or delete_on_success)."""

    stdout_fd: int
    stderr_fd: int
    owned: tuple[int, ...]
    paths: tuple[str, ...]
    stdout: str | None       # file names (None: not kept); combined: both the same .log
    stderr: str | None

    @property
    def fds(self) -> tuple[int, int]:
        return self.stdout_fd, self.stderr_fd


def names(stem_path: str, mode: str | None) -> tuple[str | None, str | None]:
    return logs.job_log_names(stem_path, mode)


def open_stdio(stem_path: str, mode: str | None) -> Stdio:
    """Create the attempt's log files for its mode (off the spawning thread: creating files waits on the file
    system). `stem_path` is the directory and the attempt's stem."""
    out, err = names(stem_path, mode)
    if out is not None and err is not None and out != err:    # separate: today's two files
        fo, fe = process.open_logs(out, err)
        return Stdio(fo, fe, (fo, fe), (out, err), out, err)
    if out is not None and out == err:                        # combined: one file for both streams
        fd = process.open_log(out)
        return Stdio(fd, fd, (fd,), (out,), out, err)
    null = devnull_for_writing()
    fd = process.open_log(out or err) if (out or err) else None
    if fd is None:                                            # none
        return Stdio(null, null, (), (), None, None)
    if out is not None:                                       # no_stderr
        return Stdio(fd, null, (fd,), (out,), out, None)
    return Stdio(null, fd, (fd,), (err,), None, err)          # no_stdout


def close(stdio: Stdio) -> None:
    for fd in stdio.owned:
        with contextlib.suppress(OSError):
            os.close(fd)


def delete(paths) -> None:
    """Remove an attempt's log files (delete_on_success after exit 0, or an attempt that never started)."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def note(path: str | None, text: str) -> None:
    """Append torc's own line to a job's stderr file when it has one (e.g. why it failed after exit 0)."""
    if path is None:
        return
    with contextlib.suppress(OSError), open(path, "a") as f:
        f.write(text if text.endswith("\n") else text + "\n")
