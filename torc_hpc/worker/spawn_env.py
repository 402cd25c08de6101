"""What a job is started with: its command line and its environment (Torc's env and invocation_script).

Environment, in order (later wins): the worker's own environment with OUTPUT_DIR/bin put first on PATH, a
directory holding only a `torc` that runs this worker's torc (so a job can call `torc user-data …` without
activating torc's virtualenv, and gets this torc even where Torc's own `torc` is on PATH, while `python`, `pip`
and the rest still come from the user's environment: prepending the virtualenv's bin would shadow them), then
the job's env
(jobs.env: already merged with the workflow's at creation) or else the workflow's env (workflows.env), then
the TORC_* variables and the job's GPU devices. The spec refuses env keys starting with TORC_.

Command line: `bash -c "<invocation_script> <command>"` when the job has an invocation script (Torc runs the
two as one shell line: a wrapper that takes the command as arguments, or a prologue ending in a newline);
otherwise the command alone, executed directly when bash would read it the same way (see process.command_argv),
with the program looked up on the job's own PATH.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from functools import lru_cache

from torc_hpc.worker import process


def interpreter_dir() -> str:
    """Where torc's own executables are (the virtualenv's bin when torc runs from one)."""
    return os.path.dirname(sys.executable)


def torc_bin_dir(output_dir: str) -> str:
    """OUTPUT_DIR/bin with one executable, `torc`, running this interpreter's torc (written atomically: several
    workers may start at once)."""
    directory = os.path.join(output_dir, "bin")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "torc")
    text = f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m torc_hpc.cli.app \"$@\"\n"
    try:
        with open(path) as f:
            if f.read() == text:
                return directory
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return directory


def with_path_first(env: dict[str, str], directory: str) -> dict[str, str]:
    path = env.get("PATH", os.defpath)
    if directory and directory not in path.split(os.pathsep):
        env["PATH"] = directory + os.pathsep + path if path else directory
    return env


@lru_cache(maxsize=4096)
def _which(program: str, path: str) -> str | None:
    return shutil.which(program, path=path)


class SpawnEnv:
    """Built once per worker: the base environment (with the workflow's env merged in, computed once) and
    the job-level additions."""

    def __init__(self, base: dict[str, str], workflow_env: dict | None, bin_dir: str | None = None):
        self.base = with_path_first(dict(base), bin_dir or interpreter_dir())
        self.workflow_base = {**self.base, **{k: str(v) for k, v in workflow_env.items()}} if workflow_env \
            else self.base

    def for_job(self, job: dict, **extra: str) -> dict[str, str]:
        """A job's environment: the base, its env (else the workflow's), then `extra` (TORC_*, devices)."""
        own = job.get("env")
        env = dict(self.workflow_base) if own is None else {**self.base, **{k: str(v) for k, v in own.items()}}
        env.update(extra)
        return env

    @staticmethod
    def argv(job: dict, env: dict[str, str]) -> tuple[str, list[str]]:
        """(the program to execute, argv) for a job, given its environment."""
        script = job.get("invocation_script")
        if script:
            return "bash", ["bash", "-c", f"{script} {job['command']}"]
        argv = process.command_argv(job["command"], lambda p: _which(p, env.get("PATH", os.defpath)))
        if argv[:2] == ["bash", "-c"]:
            return "bash", argv
        return _which(argv[0], env.get("PATH", os.defpath)) or argv[0], argv
