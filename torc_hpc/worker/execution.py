"""What the worker does at a job's spawn and exit with the fields Torc's specs store (issue 14, execution):
environment and invocation script (spawn_env), stdio modes and delete_on_success (stdio), GPU devices
(core.gpus), declared outputs after exit 0 (core.outputs). The loop calls four methods: prepare (log thread),
spawn, after_exit and ended (main thread). A plain job (no env, no script, separate stdio, no outputs, no GPUs)
pays a few dictionary lookups here.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from torc_hpc.core import gpus
from torc_hpc.core.outputs import OUTPUT_MISSING, missing_outputs, missing_outputs_message
from torc_hpc.worker import process, stdio
from torc_hpc.worker.spawn_env import SpawnEnv


@dataclass(slots=True)
class Prepared:
    """A claimed job ready to start: what to execute, with which environment, into which files."""

    executable: str
    argv: list[str]
    env: dict
    stdio: stdio.Stdio


def discard(prepared: Prepared, *, keep_stderr: bool = False) -> None:
    """A prepared job that will not start: close its files and (unless keeping stderr to say why) delete them."""
    stdio.close(prepared.stdio)
    if not keep_stderr:
        stdio.delete(prepared.stdio.paths)


def could_not_start(prepared: Prepared | None, stem_path: str, error: BaseException) -> None:
    """Say in the job's stderr file (if it keeps one) why it never ran."""
    path = prepared.stdio.stderr if prepared is not None else f"{stem_path}.e"
    with contextlib.suppress(OSError):
        stdio.note(path, f"torc could not start the job: {error}")


class Execution:
    def __init__(self, settings: dict | None, base_env: dict[str, str], stdio_dir: str, cfg):
        settings = settings or {}
        self.env = SpawnEnv(base_env, settings.get("env"))
        self.has_outputs = bool(settings.get("has_outputs"))
        self.execution_config = settings.get("execution_config") or {}
        self.resource_monitor = settings.get("resource_monitor")
        self.working_dir = os.getcwd()   # the worker has moved into the workflow's directory
        pool = gpus.worker_pool(os.environ, cfg.resources.gpus)
        self.gpu_source = pool.source
        self.gpus = gpus.DevicePool(pool.devices)
        self.gpu_variables = gpus.vendor_variables(os.environ, os.path.exists("/dev/kfd"))
        self.background = lambda fn, *args: fn(*args)   # the loop hands over its log thread's submit

    # ---- spawn -----------------------------------------------------------------------------------

    def prepare(self, job: dict, torc_vars: dict, stem_path: str) -> Prepared:
        """(log thread) argv, environment and open log files for a claimed job."""
        env = self.env.for_job(job, **torc_vars)
        executable, argv = SpawnEnv.argv(job, env)
        return Prepared(executable, argv, env, stdio.open_stdio(stem_path, job.get("stdio_mode")))

    def spawn(self, job: dict, prepared: Prepared, *, pidfd: bool) -> process.Child:
        env = prepared.env
        devices: tuple[str, ...] = ()
        if job["num_gpus"] > 0 and self.gpus.devices:
            devices = self.gpus.take(job["num_gpus"])
            env = {**env, **gpus.job_variables(devices, self.gpu_variables)}
        try:
            child = process.spawn("job", job, prepared.argv, env, prepared.stdio.stdout, prepared.stdio.stderr,
                                  fds=prepared.stdio.fds, pidfd=pidfd, executable=prepared.executable)
        except OSError:
            self.gpus.give_back(devices)
            raise
        child.extra["prepared"] = prepared
        if devices:
            child.extra["gpus"] = devices
        return child

    # ---- exit ------------------------------------------------------------------------------------

    def after_exit(self, child: process.Child, rc: int, killed: bool) -> dict | None:
        """After a job's process ended, before its result is written: check its declared outputs (exit 0
        without them is return code 156, said in its stderr file and the event) and delete its log files when
        it succeeded and asks for that. Returns what the event must add (with the new return code), or None."""
        if rc != 0 or killed:
            return None
        job = child.job
        prepared: Prepared | None = child.extra.get("prepared")
        outputs = job.get("outputs")
        if outputs:
            missing = missing_outputs(outputs, self.working_dir, os.path.exists)
            if missing:
                message = missing_outputs_message(missing)
                if prepared is not None:
                    stdio.note(prepared.stdio.stderr, f"torc: {message}")
                return {"return_code": int(OUTPUT_MISSING), "message": message,
                        "missing_outputs": [path for _, path in missing[:100]]}
        if job.get("delete_stdio_on_success") and prepared is not None and prepared.stdio.paths:
            self.background(stdio.delete, prepared.stdio.paths)
        return None

    def ended(self, child: process.Child) -> None:
        """The job's process is gone (reaped): its devices go back to the pool."""
        devices = child.extra.get("gpus")
        if devices:
            self.gpus.give_back(devices)
