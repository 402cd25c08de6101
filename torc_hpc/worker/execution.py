"""What the worker does at a job's spawn and exit with the fields Torc's specs store (issue 14, execution):
environment and invocation script (spawn_env), stdio modes and delete_on_success (stdio), GPU devices
(core.gpus), declared outputs after exit 0 (core.outputs), resource monitoring and memory limits (monitor),
a job's own peak memory (core.peak_memory) and Torc's termination settings. The loop calls prepare (log
thread), spawn, ended, after_exit, peak and take_steps (main thread). A plain job (no env, no script, separate
stdio, no outputs, no GPUs, no monitoring) pays a few dictionary lookups here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass

from torc_hpc.core import gpus, monitoring, peak_memory
from torc_hpc.core.outputs import OUTPUT_MISSING, missing_outputs, missing_outputs_message
from torc_hpc.core.states import ExitCode
from torc_hpc.worker import process, stdio
from torc_hpc.worker.monitor import Monitor
from torc_hpc.worker.spawn_env import SpawnEnv, torc_bin_dir


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


@dataclass
class WorkflowExecution:
    """What one served workflow's settings mean for its jobs (a worker may serve several)."""

    env: SpawnEnv
    has_outputs: bool
    working_dir: str
    monitor: monitoring.MonitorSettings | None
    termination_signal: int
    timeout_exit_code: int


class Execution:
    """One per worker: the GPU pool, the monitor thread and the per-workflow settings of what it serves."""

    def __init__(self, cfg, wake, submit):
        self.cfg = cfg
        self.workflows: dict[int, WorkflowExecution] = {}
        pool = gpus.worker_pool(os.environ, cfg.resources.gpus)
        self.gpu_source = pool.source
        self.gpus = gpus.DevicePool(pool.devices)
        self.gpu_variables = gpus.vendor_variables(os.environ, os.path.exists("/dev/kfd"))
        self.background = lambda fn, *args: fn(*args)   # the loop hands over its log thread's submit
        self.monitor: Monitor | None = None
        self._wake, self._submit = wake, submit
        self._steps: list = []                          # monitoring rows to write with the next batch
        self._worker_peak = (0, -1.0)                   # (bytes, monotonic time read)
        self.walltime_grace_s: float | None = None
        self.has_outputs = False                        # some served workflow declares outputs

    def add_workflow(self, workflow_id: int, settings: dict | None, base_env: dict[str, str], stdio_dir: str,
                     working_dir: str | None) -> WorkflowExecution:
        """(under the loop's context lock) A served workflow's settings: env, outputs, monitoring, termination."""
        settings = settings or {}
        ec = settings.get("execution_config") or {}
        w = WorkflowExecution(
            env=SpawnEnv(base_env, settings.get("env"), torc_bin_dir(os.path.dirname(stdio_dir))),
            has_outputs=bool(settings.get("has_outputs")), working_dir=working_dir or os.getcwd(),
            monitor=monitoring.settings(settings.get("resource_monitor"), settings.get("execution_config")),
            termination_signal=getattr(signal, str(ec.get("termination_signal") or "SIGTERM"), signal.SIGTERM),
            timeout_exit_code=int(ec.get("timeout_exit_code", ExitCode.WALLTIME)))
        self.workflows[workflow_id] = w
        self.has_outputs = self.has_outputs or w.has_outputs
        if ec and self.cfg.end_time is not None:
            # Torc's direct mode: the termination signal sigterm_lead_seconds before SIGKILL, which comes
            # sigkill_headroom_seconds before the allocation ends (serving several: the longest of them).
            lead, headroom = float(ec.get("sigterm_lead_seconds", 30)), float(ec.get("sigkill_headroom_seconds", 60))
            if self.walltime_grace_s is None:   # the first: the spec's timings replace the worker's default
                self.cfg.walltime_buffer_s = lead + headroom
            else:
                self.cfg.walltime_buffer_s = max(self.cfg.walltime_buffer_s, lead + headroom)
            self.walltime_grace_s = max(self.walltime_grace_s or 0.0, lead)
        if w.monitor is not None:
            if self.monitor is None:
                self.monitor = Monitor(w.monitor.interval_s, self._wake, self._submit)
                self.monitor.start()
            else:
                self.monitor.faster(w.monitor.interval_s)
        return w

    def of(self, job: dict) -> WorkflowExecution:
        return self.workflows[job["workflow_id"]]

    def termination_signal(self, job: dict) -> int:
        w = self.workflows.get(job.get("workflow_id"))
        return w.termination_signal if w else signal.SIGTERM

    def timeout_exit_code(self, job: dict) -> int:
        w = self.workflows.get(job.get("workflow_id"))
        return w.timeout_exit_code if w else int(ExitCode.WALLTIME)

    # ---- the monitor thread ----------------------------------------------------------------------

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()

    def enforce_limits(self, children: dict) -> None:
        """(main thread) Kill the jobs the monitor found over their memory request (limit_resources)."""
        if self.monitor is None:
            return
        while self.monitor.kills:
            child = children.get(self.monitor.kills.popleft())
            if child is not None and child.kill_reason is None:
                child.kill_reason = "oom"
                process.signal_group(child, signal.SIGKILL)

    def take_steps(self) -> list:
        """Monitoring rows of the attempts that ended, for the batch the loop hands to the database."""
        steps, self._steps = self._steps, []
        return steps

    # ---- spawn -----------------------------------------------------------------------------------

    def prepare(self, job: dict, torc_vars: dict, stem_path: str) -> Prepared:
        """(log thread) argv, environment and open log files for a claimed job."""
        env = self.of(job).env.for_job(job, **torc_vars)
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
        w = self.of(job)
        if w.monitor is not None:
            self.monitor.add(child.pid, job, w.monitor)
        return child

    # ---- exit ------------------------------------------------------------------------------------

    def after_exit(self, child: process.Child, rc: int, killed: bool) -> dict | None:
        """After a job's process ended, before its result is written: check its declared outputs (exit 0
        without them is return code 156, said in its stderr file and the event) and delete its log files when
        it succeeded and asks for that. A job the monitor killed over its memory request gets oom_exit_code.
        Returns what the event must add (with the new return code), or None."""
        if child.kill_reason == "oom":
            track = child.extra.get("track")
            rss = track.over_memory if track is not None else None
            code = track.settings.oom_exit_code if track is not None else int(ExitCode.OUT_OF_MEMORY)
            return {"return_code": code, "message": f"killed by torc: its memory ({_mib(rss)}) exceeded its request "
                    f"({_mib(child.job['memory_bytes'])}); execution_config.limit_resources"}
        if rc != 0 or killed:
            return None
        job = child.job
        prepared: Prepared | None = child.extra.get("prepared")
        outputs = job.get("outputs")
        if outputs:
            missing = missing_outputs(outputs, self.of(job).working_dir, os.path.exists)
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
        """The job's process is gone (reaped): its devices go back to the pool, the monitor lets it go."""
        devices = child.extra.get("gpus")
        if devices:
            self.gpus.give_back(devices)
        if self.monitor is not None:
            track = self.monitor.remove(child.pid)
            if track is not None:
                child.extra["track"] = track

    def peak(self, child: process.Child, ru_maxrss_bytes: int, cpu_time_s: float | None,
             exec_time_s: float | None, rc: int) -> int | None:
        """The job's own peak memory (core.peak_memory), and its monitoring rows queued for the next batch."""
        read_at = self._worker_peak[1]
        if read_at < child.started_mono:    # the worker's peak must be read after the job started
            self._worker_peak = (worker_peak_bytes(), time.monotonic())
        track = child.extra.get("track")
        sampled = track.samples.own_peak if track is not None else None
        own = peak_memory.own_peak(ru_maxrss_bytes, self._worker_peak[0], sampled)
        if track is not None:
            job = child.job
            key = {"workflow_id": job["workflow_id"], "job_id": job["id"], "run_id": job["run_id"],
                   "attempt_id": job["attempt_id"]}
            if track.settings.summary:
                self._steps.append(("insert_attempt_resources", {
                    **key, **monitoring.summarize(track.samples, cpu_time_s, exec_time_s, own)}))
            if track.settings.series:
                step = self.monitor.chunk_step(track)
                if step is not None:
                    self._steps.append(step)
        return own


def worker_peak_bytes() -> int:
    """The worker's own peak resident memory (VmHWM of its address space): what a child's exec records."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.0f} MiB"
