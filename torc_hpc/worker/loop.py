"""The worker loop: claim → spawn → wait (pidfds, LISTEN/NOTIFY, signals) → finish in batches."""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from torc_hpc.core.states import ExitCode
from torc_hpc.db.connection import connect, redact
from torc_hpc.db.repo import NO_LIMIT_S, Attempt, Database, finish_step
from torc_hpc.core.states import JobStatus
from torc_hpc.worker import process
from torc_hpc.worker.outcomes import after_recovery, plan_outcome
from torc_hpc.worker.resources import Resources

log = logging.getLogger("torc.worker")

BIG = 2**62


@dataclass
class WorkerConfig:
    workflow_id: int
    database_url: str
    resources: Resources
    max_parallel_jobs: int | None = None     # count jobs instead of resources
    output_dir: str | None = None            # default: the workflow's output_dir
    end_time: float | None = None            # epoch seconds the allocation ends; None: no limit
    walltime_buffer_s: float = 60            # stop jobs this long before end_time
    exit_when_done: bool = True              # `torc run`: leave when nothing more can run
    idle_timeout_s: float | None = None      # `torc worker`: leave after this long with nothing to do
    heartbeat_interval_s: float = 10
    kill_grace_s: float = 10                 # SIGTERM → SIGKILL
    slurm_job_id: str | None = None
    scheduler: str | None = None
    sigterm_reason: Callable[[], str] | None = None  # Slurm: tell walltime from scancel
    on_tick: Callable[["Worker"], None] | None = None


@dataclass
class WorkerSummary:
    stop_reason: str = ""
    finished: dict = field(default_factory=dict)   # final status → count, for this worker
    attempts: int = 0
    stale: int = 0
    unrunnable: list = field(default_factory=list)


@dataclass
class _Ended:
    """An attempt (or its recovery script) that just ended."""

    job: dict
    attempt: Attempt
    killed: bool = False
    kill_reason: str | None = None
    ex: process.Exit | None = None
    script: str | None = None          # set when this is a recovery script's end


class Worker:
    def __init__(self, cfg: WorkerConfig):
        self.cfg = cfg
        self.children: dict[int, process.Child] = {}   # pidfd → child
        self.summary = WorkerSummary()
        self._stop_request: str | None = None
        self._sig_r, self._sig_w = socket.socketpair()
        self._sig_r.setblocking(False)
        self._sig_w.setblocking(False)

    # ---- public ----------------------------------------------------------------------------

    def request_stop(self, reason: str = "interrupted") -> None:
        """Ask the loop to stop its jobs and leave (safe from signal handlers and other threads)."""
        self._stop_request = self._stop_request or reason
        try:
            self._sig_w.send(b"x")
        except OSError:
            pass

    def run(self) -> WorkerSummary:
        cfg = self.cfg
        self.db = Database(cfg.database_url)
        wf = self.db.workflow(cfg.workflow_id)
        self.workflow = wf
        self.rules = self.db.failure_rules(cfg.workflow_id)
        if wf["working_dir"] and os.path.isdir(wf["working_dir"]):
            os.chdir(wf["working_dir"])
        self.output_dir = Path(cfg.output_dir or wf["output_dir"]).resolve()
        (self.output_dir / "job_stdio").mkdir(parents=True, exist_ok=True)
        self.worker_id = self.db.register_worker(
            cfg.workflow_id, hostname=socket.gethostname(), pid=os.getpid(),
            num_cpus=min(cfg.resources.cpus, 2**31 - 1), num_gpus=cfg.resources.gpus,
            memory_bytes=cfg.resources.memory_bytes, slurm_job_id=cfg.slurm_job_id,
            end_time=datetime.fromtimestamp(cfg.end_time, timezone.utc) if cfg.end_time else None)
        self._base_env = dict(os.environ)
        self._base_env.update(TORC_WORKFLOW_ID=str(cfg.workflow_id), TORC_API_URL=redact(self.db.url),
                              TORC_OUTPUT_DIR=str(self.output_dir), TORC_WORKER_ID=str(self.worker_id))
        self.listen = connect(cfg.database_url)
        self.listen.execute(f"LISTEN torc_ready_{int(cfg.workflow_id)}")
        restore = self._install_signal_handlers()
        reason = "error"
        try:
            reason = self._loop()
        finally:
            if self.children:
                self._stop_children("interrupted")
            try:
                self.db.stop_worker(cfg.workflow_id, self.worker_id, reason,
                                    unrunnable=[r["name"] for r in self.summary.unrunnable][:20])
            finally:
                restore()
                self.listen.close()
                self.db.close()
        self.summary.stop_reason = reason
        return self.summary

    # ---- the loop --------------------------------------------------------------------------

    def _loop(self) -> str:
        cfg = self.cfg
        sel = selectors.DefaultSelector()
        sel.register(self.listen.pgconn.socket, selectors.EVENT_READ, "notify")
        sel.register(self._sig_r, selectors.EVENT_READ, "signal")
        self._sel = sel
        maybe_ready = True
        next_heartbeat = 0.0
        idle_since = time.monotonic()
        next_tick = 0.0
        while True:
            if self._stop_request:
                self._stop_children(self._stop_request)
                return self._stop_request
            mono = time.monotonic()
            if mono >= next_heartbeat:
                hb = self.db.heartbeat(self.worker_id)
                next_heartbeat = mono + cfg.heartbeat_interval_s
                if hb["declared_lost"]:
                    log.error("this worker was declared lost by another torc process; stopping")
                    self._stop_children("lost")
                    return "declared_lost"
                if hb["workflow_canceled"]:
                    self._stop_children("canceled")
                    return "workflow_canceled"
            if cfg.end_time is not None and time.time() >= cfg.end_time - cfg.walltime_buffer_s:
                self._stop_children("walltime")
                return "walltime"
            if cfg.on_tick and mono >= next_tick:
                cfg.on_tick(self)
                next_tick = mono + 0.5

            claimed = 0
            if maybe_ready:
                claimed, asked = self._claim_and_spawn()
                maybe_ready = asked > 0 and claimed == asked
            if self.children:
                idle_since = time.monotonic()
            elif claimed == 0:
                if cfg.exit_when_done and self._nothing_left():
                    return "done"
                if cfg.idle_timeout_s is not None and time.monotonic() - idle_since >= cfg.idle_timeout_s:
                    return "idle"
            timeout = max(0.0, next_heartbeat - time.monotonic())
            if not self.children:
                timeout = min(timeout, 2.0)  # also re-check for lost workers elsewhere
            if cfg.end_time is not None:
                timeout = min(timeout, max(0.0, cfg.end_time - cfg.walltime_buffer_s - time.time()))
            exits = []
            for key, _ in sel.select(timeout if not maybe_ready else 0):
                if key.data == "notify":
                    if self._drain_notifies():
                        maybe_ready = True
                elif key.data == "signal":
                    self._drain_signal_socket()
                else:
                    ex = process.reap(key.data)
                    if ex:
                        sel.unregister(key.fileobj)
                        del self.children[ex.child.pidfd]
                        exits.append(ex)
            if exits:
                self._handle_exits(exits)
                maybe_ready = True

    def _nothing_left(self) -> bool:
        """For `torc run`: true when no job is running anywhere and none is ready for us."""
        from torc_hpc.reconcile import reconcile

        reconcile(self.db, self.cfg.workflow_id)
        counts = self.db.status_counts(self.cfg.workflow_id)
        if counts["running"]:
            return False
        if counts["ready"]:
            cpus, gpus, memory, time_left = self._limits(free=False)
            self.summary.unrunnable = self.db.all(
                "blocked_by_unrunnable", workflow_id=self.cfg.workflow_id, cpus=cpus, gpus=gpus,
                memory=memory, time_left_s=time_left)
            return bool(self.summary.unrunnable)
        return True

    def _limits(self, free: bool) -> tuple[int, int, int, int]:
        cfg = self.cfg
        time_left = NO_LIMIT_S
        if cfg.end_time is not None:
            time_left = max(0, int(cfg.end_time - cfg.walltime_buffer_s - time.time()))
        if cfg.max_parallel_jobs:
            return BIG, BIG, BIG, time_left
        res = cfg.resources
        cpus, gpus, mem = res.cpus, res.gpus, res.memory_bytes
        if free:
            for c in self.children.values():
                if c.kind == "job":
                    cpus -= c.job["num_cpus"]
                    gpus -= c.job["num_gpus"]
                    mem -= c.job["memory_bytes"]
        return cpus, gpus, mem, time_left

    def _claim_and_spawn(self) -> tuple[int, int]:
        cfg = self.cfg
        running = sum(1 for c in self.children.values() if c.kind == "job")
        cpus, gpus, mem, time_left = self._limits(free=True)
        if cfg.max_parallel_jobs:
            limit = cfg.max_parallel_jobs - running
        else:
            limit = cpus  # every job needs at least one CPU
        if limit <= 0 or time_left <= 0:
            return 0, 0
        jobs = self.db.claim(cfg.workflow_id, self.worker_id, cpus=cpus, gpus=gpus, memory=mem, limit=limit,
                             time_left_s=time_left, scheduler=cfg.scheduler)
        for job in jobs:
            self._spawn_job(job)
        return len(jobs), limit

    def _log_paths(self, prefix: str, job: dict) -> tuple[Path, Path]:
        stem = (f"{prefix}_wf{self.cfg.workflow_id}_j{job['id']}_r{job['run_id']}_a{job['attempt_id']}")
        base = self.output_dir / "job_stdio"
        return base / f"{stem}.o", base / f"{stem}.e"

    def _env(self, job: dict, **extra) -> dict:
        env = dict(self._base_env)
        env.update(TORC_JOB_ID=str(job["id"]), TORC_JOB_NAME=job["name"],
                   TORC_ATTEMPT_ID=str(job["attempt_id"]), TORC_RUN_ID=str(job["run_id"]), **extra)
        return env

    def _watch(self, child: process.Child) -> None:
        self.children[child.pidfd] = child
        self._sel.register(child.pidfd, selectors.EVENT_READ, child)

    def _spawn_job(self, job: dict) -> None:
        out, err = self._log_paths("job", job)
        try:
            child = process.spawn("job", job, ["bash", "-c", job["command"]], self._env(job), out, err)
        except OSError as e:
            # Could not even start (e.g. bash missing, fd limit): record it as a failed attempt.
            err.write_text(f"torc could not start the job: {e}\n")
            attempt = Attempt(job["id"], job["run_id"], job["attempt_id"], self.worker_id, return_code=127,
                              started_at=job["started_at"])
            self._finish([_Ended(job, attempt)])
            return
        self._watch(child)

    def _spawn_recovery(self, job: dict, attempt: Attempt, script: str) -> None:
        out, err = self._log_paths("recovery", job)
        env = self._env(job, TORC_RETURN_CODE=str(attempt.return_code))
        try:
            child = process.spawn("recovery", job, ["bash", "-c", script], env, out, err)
        except OSError as e:
            err.write_text(f"torc could not start the recovery script: {e}\n")
            self._apply(after_recovery(attempt, 127, script).steps)
            return
        child.extra = {"attempt": attempt, "script": script}
        self._watch(child)

    # ---- outcomes --------------------------------------------------------------------------

    def _handle_exits(self, exits: list[process.Exit]) -> None:
        batch = []
        for ex in exits:
            child, job = ex.child, ex.child.job
            if child.kind == "recovery":
                batch.append(_Ended(job, child.extra["attempt"], ex=ex, script=child.extra["script"]))
                continue
            rc = ex.return_code
            # Slurm signals the job's processes itself; a child killed while we are stopping was stopped by us.
            reason = child.kill_reason or (self._stop_request if ex.signaled else None)
            if reason == "walltime":
                rc = ExitCode.WALLTIME
            elif reason in ("interrupted", "canceled", "scancel") and ex.signaled:
                rc = ExitCode.CANCELED
            attempt = Attempt(job["id"], job["run_id"], job["attempt_id"], self.worker_id, return_code=rc,
                              started_at=job["started_at"],
                              completed_at=datetime.fromtimestamp(ex.ended, timezone.utc),
                              exec_time_s=ex.exec_time_s, peak_memory_bytes=ex.peak_memory_bytes,
                              cpu_time_s=ex.cpu_time_s)
            batch.append(_Ended(job, attempt, killed=ex.signaled or reason is not None, kill_reason=reason))
        self._finish(batch)

    def _finish(self, batch: list["_Ended"]) -> None:
        """Write a batch of ended attempts and recoveries in one transaction, then start recoveries."""
        steps, recoveries = [], []
        for e in batch:
            if e.script is not None:  # a recovery script ended
                if e.ex.child.kill_reason:
                    steps.append(finish_step("failed", e.attempt, status=JobStatus.TERMINATED,
                                             record_result=False, event_kind="recovery_interrupted",
                                             detail={"reason": e.ex.child.kill_reason}))
                    self._count(JobStatus.TERMINATED)
                else:
                    plan = after_recovery(e.attempt, e.ex.return_code, e.script)
                    steps += plan.steps
                    self._count(plan.final)
                continue
            hid = e.job.get("failure_handler_id")
            plan = plan_outcome(e.attempt, killed=e.killed,
                                handler_rules=self.rules.get(hid, ()) if hid is not None else None,
                                use_pending_failed=self.workflow["use_pending_failed"],
                                apply_handlers=e.kill_reason not in ("interrupted", "canceled", "lost"))
            steps += plan.steps
            self.summary.attempts += 1
            if plan.recovery_script:
                recoveries.append((e.job, e.attempt, plan.recovery_script))
            else:
                self._count(plan.final)
        self._apply(steps)
        for job, attempt, script in recoveries:
            self._spawn_recovery(job, attempt, script)

    def _count(self, status) -> None:
        if status is not None:
            key = status.value if hasattr(status, "value") else str(status)
            self.summary.finished[key] = self.summary.finished.get(key, 0) + 1

    def _apply(self, steps) -> None:
        if not steps:
            return
        result = self.db.finish(self.cfg.workflow_id, steps)
        if result["stale"]:
            self.summary.stale += len(result["stale"])
            log.warning("jobs %s were no longer ours (reset, canceled or taken over); results kept as they were",
                        result["stale"])

    # ---- stopping --------------------------------------------------------------------------

    def _stop_children(self, reason: str) -> None:
        """SIGTERM every child's process group, SIGKILL after the grace period, record them all."""
        if not self.children:
            return
        for child in self.children.values():
            child.kill_reason = reason
            process.signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + self.cfg.kill_grace_s
        exits = []
        while self.children:
            for fd, child in list(self.children.items()):
                ex = process.reap(child)
                if ex:
                    self._sel.unregister(fd)
                    del self.children[fd]
                    exits.append(ex)
            if not self.children:
                break
            if time.monotonic() >= deadline:
                for child in self.children.values():
                    process.signal_group(child, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.02)
        self._handle_exits(exits)

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, _frame):
            if signum == signal.SIGTERM and self.cfg.sigterm_reason:
                self.request_stop(self.cfg.sigterm_reason())
            else:
                self.request_stop("interrupted")

        for s in previous:
            signal.signal(s, handler)

        def restore():
            for s, h in previous.items():
                signal.signal(s, h)

        return restore

    def _drain_signal_socket(self) -> None:
        try:
            while self._sig_r.recv(64):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _drain_notifies(self) -> bool:
        pg = self.listen.pgconn
        pg.consume_input()
        got = False
        while pg.notifies() is not None:
            got = True
        return got
