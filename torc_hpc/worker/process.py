"""Starting, waiting for and stopping job processes (posix_spawn + pidfd; no shell=True, no threads)."""

from __future__ import annotations

import os
import re
import shutil
from functools import lru_cache
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


# A command made only of these characters, whose first word is a program on PATH, means the same to
# bash as to execvp: run it directly and save a shell's start-up per job.
_SIMPLE = re.compile(r"[A-Za-z0-9_./:+,@%-]+(?: +[A-Za-z0-9_./:=+,@%-]+)*")


@lru_cache(maxsize=1024)
def _on_path(program: str) -> bool:
    return shutil.which(program) is not None


def command_argv(command: str, which=None) -> list[str]:
    """argv for a job's command: direct exec for plain `program arg ...`, else `bash -c`. `which(program)`
    finds the program (default: on the worker's PATH; the job's own PATH is what counts, see spawn_env)."""
    if _SIMPLE.fullmatch(command):
        argv = command.split()
        if (which(argv[0]) if which else _on_path(argv[0])):
            return argv
    return ["bash", "-c", command]


# No O_TRUNC: on ext4, closing a file opened with O_TRUNC forces its data out (the "replace via
# truncate" safeguard), which costs a journal wait per job. Attempt log names are unique, so O_EXCL
# almost always succeeds; the rare leftover of the same name is truncated explicitly.
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC


def open_log(path: Path | str) -> int:
    try:
        return os.open(path, _LOG_FLAGS | os.O_EXCL, 0o644)
    except FileExistsError:
        fd = os.open(path, _LOG_FLAGS, 0o644)
        os.ftruncate(fd, 0)
        return fd


def open_logs(stdout: Path, stderr: Path) -> tuple[int, int]:
    """Create an attempt's log files. Worth doing off the spawning thread: creating files waits on the
    file system's journal (and on Lustre/GPFS, on the metadata server)."""
    fo = open_log(stdout)
    try:
        return fo, open_log(stderr)
    except OSError:
        os.close(fo)
        raise


@lru_cache(maxsize=1)
def _devnull() -> int:
    """One /dev/null for every child's stdin (dup2'd in the child: cheaper than an open per job)."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def spawn(kind: str, job: dict, argv: list[str], env: dict[str, str], stdout: Path, stderr: Path,
          fds: tuple[int, int] | None = None, pidfd: bool = True, executable: str | None = None) -> Child:
    """Start argv in its own process group with stdout/stderr to files and stdin from /dev/null.
    `fds` are log files the caller already opened (see open_logs) and still owns; without them the
    files are opened and closed here. Without `pidfd`, the caller learns of the exit from SIGCHLD and
    reap_any(). `executable`: the program's full path (default: argv[0] looked up on the worker's PATH)."""
    own = fds is None
    if own:
        fds = open_logs(stdout, stderr)
    actions = [
        (os.POSIX_SPAWN_DUP2, _devnull(), 0),
        (os.POSIX_SPAWN_DUP2, fds[0], 1),
        (os.POSIX_SPAWN_DUP2, fds[1], 2),
    ]
    started = time.time()
    mono = time.monotonic()
    try:
        launch = os.posix_spawn if executable and os.path.isabs(executable) else os.posix_spawnp
        pid = launch(executable or argv[0], argv, env, file_actions=actions, setpgroup=0,
                     setsigdef=_RESET_SIGNALS, setsigmask=())
    finally:
        if own:
            os.close(fds[0])
            os.close(fds[1])
    return Child(pid=pid, pidfd=os.pidfd_open(pid) if pidfd else -1, started=started, started_mono=mono, kind=kind, job=job,
                 stdout=stdout, stderr=stderr)


# Seen but not reaped: the ended child stays a zombie, so its pid (the id of its process group) cannot be
# reused while we kill what it left in that group.
_PEEK = os.WEXITED | os.WNOHANG | os.WNOWAIT


def end_group(pid: int) -> None:
    """The job's main process has ended (and is not reaped yet): kill what it left running in its process
    group (background `cmd &`, daemons that did not call setsid). Escapes: processes that left the group
    (setsid, setpgid); under Slurm the allocation's cgroup ends them with the allocation."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def reap(child: Child) -> Exit | None:
    """Collect the child's exit if it has ended (non-blocking), with its peak memory and CPU time, after
    killing whatever it left in its process group. Then call close_pidfd once the pidfd is out of any
    selector."""
    if os.waitid(os.P_PID, child.pid, _PEEK) is None:   # ChildProcessError if reaped elsewhere: then its
        return None                                      # pid may be reused, so no killpg
    end_group(child.pid)
    pid, status, usage = os.wait4(child.pid, os.WNOHANG)
    if pid == 0:
        return None
    # The pidfd stays open: the caller takes it out of its selector first, then closes it (closing first
    # lets the number be reused while the selector still maps it to this child).
    return _exit(child, status, usage)


def reap_any(children: dict[int, Child]) -> list[Exit]:
    """Collect every ended child (non-blocking), by pid. For a process whose only children are these."""
    exits = []
    while children:
        try:
            info = os.waitid(os.P_ALL, 0, _PEEK)
        except ChildProcessError:
            break
        if info is None:
            break
        child = children.get(info.si_pid)
        if child is not None:
            end_group(child.pid)
        pid, status, usage = os.wait4(info.si_pid, 0)   # it has ended: this does not block
        if child is not None:
            exits.append(_exit(child, status, usage))
    return exits


def _exit(child: Child, status: int, usage) -> Exit:
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


def close_pidfd(child: Child) -> None:
    if child.pidfd >= 0:
        os.close(child.pidfd)
