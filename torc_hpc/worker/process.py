"""Starting, waiting for and stopping job processes (posix_spawn + pidfd; no shell=True, no threads)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP)


@dataclass
class Child:
    """A running process (a job or a recovery script) and what the worker needs to know about it."""

    pid: int
    pidfd: int
    started: float                 # time.time()
    started_mono: float            # time.monotonic()
    kind: str                      # "job" or "recovery"
    job: dict                      # the claimed job row
    stdout: Path
    stderr: Path
    kill_reason: str | None = None  # set when torc stopped it (interrupt, walltime, cancel)
    extra: dict = field(default_factory=dict)


@dataclass
class Exit:
    child: Child
    return_code: int               # 128 + N for signal N
    signaled: bool
    ended: float
    exec_time_s: float
    peak_memory_bytes: int
    cpu_time_s: float


def spawn(kind: str, job: dict, argv: list[str], env: dict[str, str], stdout: Path, stderr: Path) -> Child:
    """Start argv in its own process group with stdout/stderr to files and stdin from /dev/null."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(stdout), flags, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, str(stderr), flags, 0o644),
    ]
    started = time.time()
    mono = time.monotonic()
    pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setpgroup=0,
                          setsigdef=_RESET_SIGNALS, setsigmask=())
    return Child(pid=pid, pidfd=os.pidfd_open(pid), started=started, started_mono=mono, kind=kind, job=job,
                 stdout=stdout, stderr=stderr)


def reap(child: Child) -> Exit | None:
    """Collect the child's exit if it has ended (non-blocking), with its peak memory and CPU time."""
    pid, status, usage = os.wait4(child.pid, os.WNOHANG)
    if pid == 0:
        return None
    os.close(child.pidfd)
    if os.WIFSIGNALED(status):
        rc, signaled = 128 + os.WTERMSIG(status), True
    else:
        rc, signaled = os.WEXITSTATUS(status), False
    return Exit(child=child, return_code=rc, signaled=signaled, ended=time.time(),
                exec_time_s=time.monotonic() - child.started_mono,
                peak_memory_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
                cpu_time_s=usage.ru_utime + usage.ru_stime)


def signal_group(child: Child, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(child.pid, sig)
