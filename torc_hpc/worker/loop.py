"""The worker loop: claim → spawn → wait (SIGCHLD or pidfds, signals) → finish in batches.

This main thread starts and reaps processes and never touches the database: the database thread
(worker/pump.py) owns the worker's one connection, and this loop sends it requests (finished steps, claims,
releases) and reads what it sends back (claimed jobs, recovery scripts to start, `halt`)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import selectors
import signal
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import psycopg

from torc_hpc.core.states import ExitCode
from torc_hpc.errors import DatabaseError, TorcError
from torc_hpc.db.connection import redact, resolve_url
from torc_hpc.db.repo import NO_LIMIT_S, Attempt, finish_step
from torc_hpc.core.states import JobStatus
from torc_hpc import logs
from torc_hpc.actions import Context as ActionContext, WorkerActions
from torc_hpc.core.actions import Runner
from torc_hpc.worker import execution, process
from torc_hpc.worker.journal import StartJournal
from torc_hpc.worker.outcomes import (after_recovery, classify_exit, plan_outcome, recovery_claim_step,
                                      recovery_interrupted)
from torc_hpc.worker.pump import Pump
from torc_hpc.worker.resources import Resources

log = logging.getLogger("torc.worker")

BIG = 2**62
# Hold about this much work beyond the slots: enough to cover a commit, and the lazy commit of leaf jobs'
# completions (worker/pump.py LAZY_COMMIT_S), so that with many workers each commit carries several jobs.
PREFETCH_WINDOW_S = 0.25
PREFETCH_MAX = 64          # never more than this many × the slots
HUNGRY = 0.25              # claim (and commit) once the jobs waiting here fall to this share of the prefetch


def prefetch_factor(avg_runtime_s: float | None) -> int:
    """How many times its slots a worker holds (running + claimed, waiting). Twice until jobs are known
    to be short; then enough that the waiting ones last PREFETCH_WINDOW_S, so the queue outlives a
    commit. Bounded by time, not count: jobs held here wait while other workers might run them."""
    if avg_runtime_s is None:
        return 2
    return max(2, min(PREFETCH_MAX, 1 + math.ceil(PREFETCH_WINDOW_S / max(avg_runtime_s, 1e-6))))


@dataclass
class WorkerConfig:
    workflow_id: int | None              # the workflow served (None with all_mine and no list)
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
    on_tick: Callable[[Pump], None] | None = None   # called on the database thread, with it (its .db), twice a second
    allocation_id: int | None = None                # torc's allocation row: marked started on registering
    workflow_ids: tuple[int, ...] = ()   # `torc worker --workflows 3,7,9`: serve these (all its owner's)
    all_mine: bool = False               # `torc worker --all-mine`: every workflow of its owner with ready jobs
    label: str | None = None                 # claim only jobs with this label (None: unlabeled jobs)


@dataclass
class WorkerSummary:
    stop_reason: str = ""
    finished: dict = field(default_factory=dict)   # final status → count, for this worker
    attempts: int = 0
    stale: int = 0
    unrunnable: list = field(default_factory=list)
    other_labels: list = field(default_factory=list)   # ready jobs left for workers with these labels
    capacity: dict = field(default_factory=dict)   # what this worker has (for the unrunnable jobs' report)


def _opened(future) -> "execution.Prepared | None":
    """What a job's preparation made (its open log files among them), if it got that far."""
    try:
        return future.result() if future else None
    except OSError:
        return None


@dataclass
class _Context:
    """What starting a job of one served workflow needs: where it runs, where its logs go, its environment,
    its failure rules and this worker's row for it."""

    workflow: dict
    rules: dict
    worker_id: int
    working_dir: str | None
    stdio_dir: str
    env: dict


# Steps that never make a batch urgent: completions of leaf jobs, and monitoring rows riding with them.
_NOT_URGENT = frozenset({"finish_completed", "insert_attempt_resources", "insert_resource_samples"})


@dataclass
class _Ended:
    """An attempt (or its recovery script) that just ended."""

    job: dict
    attempt: Attempt
    killed: bool = False
    kill_reason: str | None = None
    ex: process.Exit | None = None
    script: str | None = None          # set when this is a recovery script's end
    note: dict | None = None           # goes into the event (why torc assigned the return code)


class Worker:
    def __init__(self, cfg: WorkerConfig):
        self.cfg = cfg
        self.children: dict[int, process.Child] = {}   # pid → child
        # In the main thread, SIGCHLD tells us a child ended (no per-job pidfd, epoll add/del and close);
        # elsewhere (a worker inside a thread, as in tests) each child gets a pidfd in the selector.
        self._sigchld = threading.current_thread() is threading.main_thread()
        # Claimed but not started yet: a small prefetch so processes keep running while the database commits.
        self.queue: deque[dict] = deque()
        self._held = [0, 0, 0, 0]            # jobs, CPUs, GPUs, bytes held (running + queued + being claimed)
        self._held_lock = threading.Lock()
        self._recent_runtime_s: float | None = None   # moving average of job durations (prefetch policy)
        self._recoveries_running = 0                  # recovery scripts among the children (time limits)
        self.summary = WorkerSummary()
        self._stop_request: str | None = None
        self._sig_r, self._sig_w = socket.socketpair()
        self._sig_r.setblocking(False)
        self._sig_w.setblocking(False)
        self._kill_at: dict[int, float] = {}   # pid → when to SIGKILL (a canceled workflow's job)

    # ---- public ----------------------------------------------------------------------------

    def held_not_started(self) -> int:
        """Jobs claimed (running in the database) that this worker has not started yet: its prefetch."""
        return len(self.queue) + len(getattr(getattr(self, "pump", None), "claimed", ()))

    def request_stop(self, reason: str = "interrupted") -> None:
        """Ask the loop to stop its jobs and leave (safe from signal handlers and other threads)."""
        self._stop_request = self._stop_request or reason
        try:
            self._sig_w.send(b"x")
        except OSError:
            pass

    def run(self) -> WorkerSummary:
        cfg = self.cfg
        self.url = resolve_url(cfg.database_url)
        # The database thread owns the worker's one connection. It opens it here, retrying while the server
        # refuses (too many connections, a restart), before anything is registered.
        self.pump = Pump(self.url, cfg.workflow_id, claim_params=self._claim_params, wake=self._wake,
                         on_claimed=self._on_claimed, holds_nothing=self._holds_nothing, limits=self._limits,
                         heartbeat_s=cfg.heartbeat_interval_s, exit_when_done=cfg.exit_when_done,
                         on_tick=cfg.on_tick, workflow_ids=list(cfg.workflow_ids) or None, all_mine=cfg.all_mine)
        self.pump.label = cfg.label
        # Torc's execution fields (env, invocation_script, stdio, outputs, GPUs, monitoring) per served workflow:
        # worker/execution.py. The resource monitor (only when a workflow asks for it) sends its chunks of
        # samples to the database thread.
        self.x = execution.Execution(cfg, self._wake,
                                     lambda steps: self.pump.submit([s for s in steps if s], [], claim=False))
        self.pump.held_not_started = self.held_not_started   # for the live progress (on_tick gets the pump)
        self._previous_cwd = self._cwd = os.getcwd()
        self._contexts: dict[int, _Context] = {}
        self._token = secrets.token_hex(16)
        try:
            served = self.pump.connect()
            # Log directories first: one that cannot be created is an error before anything is registered.
            dirs = {wf: self._output_dir(s.workflow) for wf, s in served.items()}
            for d in dirs.values():
                try:
                    (d / "job_stdio").mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise TorcError(f"cannot write job logs under {d} ({e.strerror or e}); make it writable, "
                                    f"or run from another directory") from None
            # One start journal for the worker, whatever it serves (job ids are unique across workflows).
            journal_dir = next(iter(dirs.values()), None) or Path(self.cfg.output_dir or "torc_output").resolve()
            self.journal = StartJournal(journal_dir, self._token)
            self.worker_id = self.pump.register(
                hostname=socket.gethostname(), pid=os.getpid(),
                num_cpus=min(cfg.resources.cpus, 2**31 - 1), num_gpus=cfg.resources.gpus,
                memory_bytes=cfg.resources.memory_bytes, slurm_job_id=cfg.slurm_job_id,
                end_time=datetime.fromtimestamp(cfg.end_time, timezone.utc) if cfg.end_time else None,
                token=self._token, allocation_id=cfg.allocation_id, start_journal=self.journal.path)
            for wf in served:
                self._context(wf)
            first = self._contexts.get(self.pump.workflow_id)
            if first is not None:
                # Jobs run where their workflow was created. posix_spawn cannot set a child's directory, so
                # the worker moves there itself before a spawn (and back when it returns: it may run inside
                # a longer-lived process); with one workflow, once.
                self._enter(first)
                self.workflow, self.rules, self.output_dir = first.workflow, first.rules, dirs[self.pump.workflow_id]
            # The served workflows' actions: most have none, and then this one query (on the worker's
            # connection, before the database thread takes it over) is all they cost; each one with actions
            # gets its own thread and connection. (Workflows found later with --all-mine: none of theirs.)
            self.actions: list[WorkerActions] = []
            with_actions = WorkerActions.needed(self.pump.db, list(self._contexts))
        except BaseException:
            if getattr(self, "journal", None) is not None:
                self.journal.discard()
            self.pump.stop()
            with contextlib.suppress(OSError):
                os.chdir(self._previous_cwd)
            raise
        # One thread: creating files in one directory serializes on the directory's lock anyway, and
        # more threads only spin on it (measured on ext4); it still hides the creation from the loop.
        self._log_pool = ThreadPoolExecutor(1, thread_name_prefix="torc-logs")
        self.x.background = self._log_pool.submit   # deleting logs (delete_on_success) off the loop too
        self._to_close: deque[int] = deque()   # started jobs' log descriptors, closed by the log thread
        self.pump.start()
        restore = self._install_signal_handlers()
        reason = "error"
        try:
            for wf in with_actions:   # start triggers fire before the first claim; heartbeats already flow
                c = self._contexts[wf]
                self.actions.append(WorkerActions.begin(self.url, wf, ActionContext(
                    Runner.ALLOCATION if cfg.slurm_job_id else Runner.LOCAL, worker_id=c.worker_id,
                    env=c.env, output_dir=Path(c.stdio_dir).parent)))
            reason = self._loop()
        except psycopg.Error as e:
            raise DatabaseError(
                f"worker {self.worker_id} lost the database ({str(e).strip() or type(e).__name__}); its running "
                f"jobs were stopped. The next torc command records them; `torc run {self.pump.workflow_id}` "
                f"carries on") from e
        finally:
            try:
                if self.children or self.queue or not self.pump.idle():
                    self._stop_children("interrupted" if reason == "error" else reason)
            finally:
                self.x.stop()
                self._log_pool.shutdown()
                self._close_started_logs()
                # After an error the reconciler decides, as for a crash: no stop is recorded.
                self.pump.stop(None if reason == "error" else reason,
                               unrunnable=[r["name"] for r in self.summary.unrunnable])
                if self.pump.stop_recorded:
                    self.journal.discard()   # recorded and stopped: nobody will need to read it
                else:
                    self.journal.close()
                for a in self.actions:   # after the last finishes committed
                    a.end(reason)
                self.summary.stale = self.pump.stale
                restore()
                try:
                    os.chdir(self._previous_cwd)
                except OSError:
                    pass
        self.summary.stop_reason = reason
        return self.summary

    # ---- the loop --------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._sig_w.send(b"w")
        except OSError:
            pass

    # ---- the workflows served ---------------------------------------------------------------

    def _output_dir(self, wf: dict) -> Path:
        """Where a workflow's logs go: --output-dir, else its own, relative to its working directory."""
        base = wf["working_dir"] if wf["working_dir"] and os.path.isdir(wf["working_dir"]) else self._previous_cwd
        return (Path(base) / (self.cfg.output_dir or wf["output_dir"])).resolve()

    def _context(self, workflow_id: int) -> _Context:
        """(any thread) A served workflow's context, made when its first job arrives (a worker serving
        `--all-mine` finds workflows as it goes)."""
        ctx = self._contexts.get(workflow_id)
        if ctx is not None:
            return ctx
        with self._held_lock:   # the log thread prepares jobs too
            ctx = self._contexts.get(workflow_id)
            if ctx is not None:
                return ctx
            served = self.pump.served[workflow_id]
            wf = served.workflow
            out = self._output_dir(wf)
            (out / "job_stdio").mkdir(parents=True, exist_ok=True)
            env = dict(os.environ)
            env.update(TORC_WORKFLOW_ID=str(workflow_id), TORC_API_URL=redact(self.url), TORC_OUTPUT_DIR=str(out),
                       TORC_WORKER_ID=str(served.worker_id), TORC_WORKER_TOKEN=self._token)
            working = wf["working_dir"] if wf["working_dir"] and os.path.isdir(wf["working_dir"]) else None
            self.x.add_workflow(workflow_id, served.settings, env, str(out / "job_stdio"), working)
            ctx = self._contexts[workflow_id] = _Context(wf, served.rules, served.worker_id, working,
                                                         str(out / "job_stdio"), env)
            return ctx

    def _enter(self, ctx: _Context) -> None:
        """Be in the job's workflow's working directory before a spawn (a chdir only when it changes)."""
        target = ctx.working_dir or self._previous_cwd
        if target != self._cwd:
            os.chdir(target)
            self._cwd = target

    def _stop_workflow(self, workflow_id: int) -> None:
        """A worker serving several workflows: one was canceled. Its waiting jobs go back, its running ones
        are stopped (SIGTERM, SIGKILL after the grace period) and recorded as the loop reaps them."""
        self._take_from_pump()
        mine = [j for j in self.queue if j.get("workflow_id") == workflow_id]
        if mine:
            self.queue = deque(j for j in self.queue if j.get("workflow_id") != workflow_id)
            self._give_back(mine)
        deadline = time.monotonic() + self.cfg.kill_grace_s
        for child in self.children.values():
            if child.job.get("workflow_id") == workflow_id and child.kill_reason is None:
                child.kill_reason = "canceled"
                process.signal_group(child, signal.SIGTERM)
                self._kill_at[child.pid] = deadline

    def _kill_late(self) -> None:
        now = time.monotonic()
        for pid, at in list(self._kill_at.items()):
            child = self.children.get(pid)
            if child is None:
                del self._kill_at[pid]
            elif now >= at:
                process.signal_group(child, signal.SIGKILL)
                del self._kill_at[pid]

    def _holds_nothing(self) -> bool:
        """(database thread) No job running, queued or being claimed here, and no recovery script running."""
        with self._held_lock:
            return self._held[0] == 0 and not self.children

    def _loop(self) -> str:
        cfg = self.cfg
        sel = selectors.DefaultSelector()
        sel.register(self._sig_r, selectors.EVENT_READ, "signal")
        self._sel = sel
        self.pump.request_claim()
        idle_since = time.monotonic()
        while True:
            pump = self.pump
            if pump.error:
                raise pump.error
            if self._stop_request:
                self._stop_children(self._stop_request)
                return self._stop_request
            if pump.halt == "declared_lost":
                self._stop_children("lost")
                return "declared_lost"
            if pump.halt == "workflow_canceled":
                self._stop_children("canceled")
                return "workflow_canceled"
            if cfg.end_time is not None and time.time() >= cfg.end_time - cfg.walltime_buffer_s:
                self._stop_children("walltime")
                return "walltime"
            while pump.canceled_workflows:   # a worker serving several: one of them was canceled
                self._stop_workflow(pump.canceled_workflows.popleft())
            if self._kill_at:
                self._kill_late()

            self._take_from_pump()
            self._start_queued()
            until_limit = self._enforce_recovery_limits()
            if self.children or self.queue:
                idle_since = time.monotonic()
            elif pump.halt == "done" and pump.idle():
                self.summary.unrunnable = pump.unrunnable
                self.summary.other_labels = pump.other_labels
                self.summary.capacity = pump.capacity
                return "done"
            elif (cfg.idle_timeout_s is not None and time.monotonic() - idle_since >= cfg.idle_timeout_s
                  and pump.idle()):
                return "idle"
            timeout = min(1.0, until_limit)
            if cfg.end_time is not None:
                timeout = min(timeout, max(0.0, cfg.end_time - cfg.walltime_buffer_s - time.time()))
            exits = []
            for key, _ in sel.select(timeout):
                if key.data == "signal":
                    self._drain_signal_socket()
                else:
                    ex = process.reap(key.data)
                    if ex:
                        self._forget(ex.child)
                        exits.append(ex)
            self.x.enforce_limits(self.children)   # limit_resources: jobs the monitor found over their memory
            if self._sigchld and self.children:
                # One wait4 per wake-up collects every child that ended (SIGCHLD may merge several).
                for ex in process.reap_any(self.children):
                    self._forget(ex.child)
                    exits.append(ex)
            if exits:
                self._start_queued()   # keep the slots busy while this batch commits
                self._handle_exits(exits)

    def _take_from_pump(self) -> None:
        while self.pump.claimed:
            self.queue.append(self.pump.claimed.popleft())
        while self.pump.recover:
            self._spawn_recovery(*self.pump.recover.popleft())

    def _enforce_recovery_limits(self) -> float:
        """Kill the process group of a recovery script past its time limit (it then ends as a failed
        recovery). Returns the seconds until the next limit. Nothing to look at on the hot path: jobs only."""
        if not self._recoveries_running:
            return float("inf")
        now = time.monotonic()
        soonest = float("inf")
        for child in self.children.values():
            deadline = child.extra.get("deadline") if child.kind == "recovery" else None
            if deadline is None or child.extra.get("timed_out"):
                continue
            if now >= deadline:
                child.extra["timed_out"] = True
                process.signal_group(child, signal.SIGKILL)
            else:
                soonest = min(soonest, deadline - now)
        return soonest

    def _forget(self, child: process.Child) -> None:
        if child.pidfd >= 0:
            self._sel.unregister(child.pidfd)
        del self.children[child.pid]
        process.close_pidfd(child)
        if child.kind == "job":
            self._hold(child.job, -1)
            self.x.ended(child)
        else:
            self._recoveries_running -= 1

    # ---- capacity --------------------------------------------------------------------------
    # Counters are shared with the pump thread (which claims on their basis): change them under the lock.

    def _hold(self, job: dict, sign: int) -> None:
        with self._held_lock:
            self._held[0] += sign
            self._held[1] += sign * job["num_cpus"]
            self._held[2] += sign * job["num_gpus"]
            self._held[3] += sign * job["memory_bytes"]

    def _limits(self) -> tuple[int, int, int, int]:
        cfg = self.cfg
        time_left = NO_LIMIT_S
        if cfg.end_time is not None:
            time_left = max(0, int(cfg.end_time - cfg.walltime_buffer_s - time.time()))
        if cfg.max_parallel_jobs:
            return BIG, BIG, BIG, time_left
        res = cfg.resources
        return res.cpus, res.gpus, res.memory_bytes, time_left

    def _claim_params(self) -> dict | None:
        """(pump thread) What to claim: the free slots plus a prefetch."""
        cfg = self.cfg
        if self._stop_request:
            return None
        cpus, gpus, mem, time_left = self._limits()
        with self._held_lock:
            jobs, hc, hg, hm = self._held
        # Prefetch: hold more than we can run so processes keep running while the pump commits. What
        # runs or waits counts against the limit.
        k = prefetch_factor(self._recent_runtime_s)
        slots = cfg.max_parallel_jobs or cpus
        # No job larger than the worker itself: the prefetch budget would admit it, but no slot ever could.
        job_cpus, job_gpus, job_mem = cpus, gpus, mem
        if cfg.max_parallel_jobs:
            limit = k * cfg.max_parallel_jobs - jobs
            cpus = gpus = mem = BIG
        else:
            limit = k * cpus - jobs
            cpus, gpus, mem = k * cpus - hc, k * gpus - hg, k * mem - hm
        if limit <= 0 or time_left <= 0:
            return None
        # hungry: the jobs waiting to start here are down to HUNGRY of the prefetch (or none): claim, and
        # commit what ended with it, now rather than let leaf completions wait for company.
        return {"cpus": cpus, "gpus": gpus, "memory": mem, "limit": limit, "time_left_s": time_left,
                "scheduler": cfg.scheduler, "hungry": jobs - slots <= HUNGRY * (k - 1) * slots,
                "job_cpus": job_cpus, "job_gpus": job_gpus, "job_memory": job_mem, "label": cfg.label,
                # claims return declared outputs only when a served workflow has some (read when it was served)
                "with_outputs": any((w.settings or {}).get("has_outputs") for w in list(self.pump.served.values()))}

    def _on_claimed(self, job: dict) -> None:
        """(pump thread) A job is ours: count it, and have its log files created in the background.
        Creating files waits on the file system's journal or metadata server; several at once amortize it
        and the spawning thread never waits for one it does not need yet."""
        self._hold(job, +1)
        job["_prep"] = self._log_pool.submit(self._prepare, job)

    def _prepare(self, job: dict) -> execution.Prepared:
        """(background thread) Everything a spawn needs: program, argv, environment, open log files. Also
        closes the parent's copies of started jobs' log files (two syscalls per job the loop need not make)."""
        self._close_started_logs()
        stem = self._stem("job", job)   # makes the workflow's context (and execution settings) on first use
        return self.x.prepare(job, self._torc_vars(job), stem)

    def _close_started_logs(self) -> None:
        while self._to_close:
            os.close(self._to_close.popleft())

    def _start_queued(self) -> None:
        """Start queued jobs while they fit what is free now (in claim order)."""
        while self.queue:
            job = self.queue[0]
            if not self._fits_now(job):
                return
            self.queue.popleft()
            self._spawn_job(job)

    def _fits_now(self, job: dict) -> bool:
        running = [c.job for c in self.children.values() if c.kind == "job"]
        if self.cfg.max_parallel_jobs:
            return len(running) < self.cfg.max_parallel_jobs
        res = self.cfg.resources
        return (sum(j["num_cpus"] for j in running) + job["num_cpus"] <= res.cpus
                and sum(j["num_gpus"] for j in running) + job["num_gpus"] <= res.gpus
                and sum(j["memory_bytes"] for j in running) + job["memory_bytes"] <= res.memory_bytes)

    def _release_queue(self) -> None:
        """Give claimed-but-unstarted jobs back (they become ready again, same attempt)."""
        self._take_from_pump()
        if not self.queue:
            return
        jobs = list(self.queue)
        self.queue.clear()
        self._give_back(jobs)

    def _give_back(self, jobs: list[dict]) -> None:
        ids = [j["id"] for j in jobs]
        for j in jobs:
            self._hold(j, -1)
            prepared = _opened(j.pop("_prep", None))
            if prepared:  # never started: no log files for an attempt that did not run
                execution.discard(prepared)
        self.pump.release(ids)

    def _stem(self, prefix: str, job: dict) -> str:
        wf = job["workflow_id"]
        return f"{self._context(wf).stdio_dir}/{logs.stem(prefix, wf, job['id'], job['run_id'], job['attempt_id'])}"

    def _log_paths(self, prefix: str, job: dict) -> tuple[str, str]:
        stem = self._stem(prefix, job)
        return f"{stem}.o", f"{stem}.e"

    @staticmethod
    def _torc_vars(job: dict, **extra) -> dict:
        return dict(TORC_JOB_ID=str(job["id"]), TORC_JOB_NAME=job["name"], TORC_ATTEMPT_ID=str(job["attempt_id"]),
                    TORC_RUN_ID=str(job["run_id"]), **extra)

    def _env(self, job: dict, **extra) -> dict:
        self._context(job["workflow_id"])   # made on first use, with the workflow's execution settings
        return self.x.of(job).env.for_job(job, **self._torc_vars(job, **extra))

    def _watch(self, child: process.Child) -> None:
        self.children[child.pid] = child
        if child.pidfd >= 0:
            self._sel.register(child.pidfd, selectors.EVENT_READ, child)

    def _spawn_job(self, job: dict) -> None:
        prepared = None
        try:
            prep = job.pop("_prep", None)
            prepared = prep.result() if prep is not None else self._prepare(job)
            self._enter(self._context(job["workflow_id"]))
            if not self.journal.started(job):   # before the spawn: a start the journal misses could run twice
                raise OSError("the worker's start journal cannot be written")
            child = self.x.spawn(job, prepared, pidfd=not self._sigchld)
        except OSError as e:
            if prepared is not None:
                execution.discard(prepared, keep_stderr=True)
            # Could not even start (log files cannot be created: directory deleted, read-only, no inodes;
            # bash missing; fd limit): a failed attempt whose event says why; the worker carries on.
            why = f"torc could not start the job: {e}"
            execution.could_not_start(prepared, self._stem("job", job), e)
            self._hold(job, -1)
            attempt = Attempt(job["id"], job["run_id"], job["attempt_id"], self._context(job["workflow_id"]).worker_id,
                              return_code=ExitCode.START_FAILED, started_at=job["started_at"])
            self._finish([_Ended(job, attempt, note={"start_error": why})])
            return
        # the log thread closes our copies: two syscalls the loop need not make
        self._to_close.extend(prepared.stdio.owned)
        self._watch(child)

    def _spawn_recovery(self, job: dict, attempt: Attempt, script: str, timeout_s: int) -> None:
        out, err = self._log_paths("recovery", job)
        env = self._env(job, TORC_RETURN_CODE=str(attempt.return_code))
        try:
            self._enter(self._context(job["workflow_id"]))
            child = process.spawn("recovery", job, ["bash", "-c", script], env, out, err, pidfd=not self._sigchld)
        except OSError as e:
            with contextlib.suppress(OSError):
                Path(err).write_text(f"torc could not start the recovery script: {e}\n")
            self.pump.submit(after_recovery(attempt, ExitCode.START_FAILED, script).steps, [], claim=True)
            return
        child.extra = {"attempt": attempt, "script": script, "timeout_s": timeout_s,
                       "deadline": time.monotonic() + timeout_s}
        self._recoveries_running += 1
        self._watch(child)

    # ---- outcomes --------------------------------------------------------------------------

    def _handle_exits(self, exits: list[process.Exit]) -> None:
        batch = []
        for ex in exits:
            child, job = ex.child, ex.child.job
            if child.kind == "recovery":
                batch.append(_Ended(job, child.extra["attempt"], ex=ex, script=child.extra["script"]))
                continue
            d = ex.exec_time_s
            self._recent_runtime_s = d if self._recent_runtime_s is None else 0.9 * self._recent_runtime_s + 0.1 * d
            rc, killed, reason = classify_exit(ex.return_code, ex.signaled, child.kill_reason, self._stop_request)
            if reason == "walltime":
                rc = self.x.timeout_exit_code(job)   # 152 unless execution_config.timeout_exit_code says otherwise
            note = self.x.after_exit(child, rc, killed)   # declared outputs, delete_on_success, memory limit
            if note:
                rc = note["return_code"]
            attempt = Attempt(job["id"], job["run_id"], job["attempt_id"], self._context(job["workflow_id"]).worker_id,
                              return_code=rc,
                              started_at=datetime.fromtimestamp(child.started, timezone.utc),
                              completed_at=datetime.fromtimestamp(ex.ended, timezone.utc),
                              exec_time_s=ex.exec_time_s, cpu_time_s=ex.cpu_time_s,
                              # the job's own peak, not the worker's (core/peak_memory.py)
                              peak_memory_bytes=self.x.peak(child, ex.peak_memory_bytes, ex.cpu_time_s,
                                                            ex.exec_time_s, rc))
            batch.append(_Ended(job, attempt, killed=killed, kill_reason=reason, note=note))
        self._finish(batch)

    def _finish(self, batch: list["_Ended"]) -> None:
        """Hand a batch of ended attempts and recoveries to the pump: one transaction, which also claims
        the next jobs; recovery scripts start once their attempt's result is committed."""
        steps, recoveries = self.x.take_steps(), []   # monitoring rows of these attempts, if monitored
        for e in batch:
            if e.script is not None:  # a recovery script ended
                extra = e.ex.child.extra
                if extra.get("timed_out"):
                    plan = after_recovery(e.attempt, e.ex.return_code, e.script, timed_out_after_s=extra["timeout_s"])
                    steps += plan.steps
                    self._count(plan.final)
                elif e.ex.child.kill_reason == "canceled":
                    steps.append(finish_step("failed", e.attempt, status=JobStatus.TERMINATED,
                                             record_result=False, event_kind="recovery_interrupted",
                                             detail={"reason": e.ex.child.kill_reason}))
                    self._count(JobStatus.TERMINATED)
                elif e.ex.child.kill_reason:
                    plan = recovery_interrupted(e.attempt, e.script, f"the recovery script was stopped "
                                                f"({e.ex.child.kill_reason}); it runs at most once per attempt")
                    steps += plan.steps
                    self._count(plan.final)
                else:
                    plan = after_recovery(e.attempt, e.ex.return_code, e.script)
                    steps += plan.steps
                    self._count(plan.final)
                continue
            hid = e.job.get("failure_handler_id")
            ctx = self._context(e.job["workflow_id"])
            plan = plan_outcome(e.attempt, killed=e.killed,
                                handler_rules=ctx.rules.get(hid, ()) if hid is not None else None,
                                use_pending_failed=ctx.workflow["use_pending_failed"],
                                apply_handlers=e.kill_reason not in ("interrupted", "canceled", "lost"),
                                interrupted=e.kill_reason == "interrupted",
                                interrupted_attempts=e.job.get("interrupted_attempts") or 0, note=e.note)
            steps += plan.steps
            self.summary.attempts += 1
            if plan.recovery_script:
                # Claimed in the same transaction that records the attempt: at most one runner per attempt.
                steps.append(recovery_claim_step(e.attempt, f"worker {ctx.worker_id}", plan.recovery_timeout_s,
                                                 ctx.worker_id))
                recoveries.append((e.job, e.attempt, plan.recovery_script, plan.recovery_timeout_s))
            else:
                self._count(plan.final)
        # A completion others wait for (its children), any failure (a cascade, a retry) and every recovery
        # is committed at once; a leaf's completion may ride with the next batch (worker/pump.py).
        urgent = bool(recoveries) or any(name not in _NOT_URGENT for name, _ in steps) \
            or any(e.job.get("has_children", True) for e in batch)
        self.pump.submit(steps, recoveries, claim=not self._stop_request, urgent=urgent)
        for a in self.actions:
            a.poke()

    def _count(self, status) -> None:
        if status is not None:
            key = status.value if hasattr(status, "value") else str(status)
            self.summary.finished[key] = self.summary.finished.get(key, 0) + 1

    # ---- stopping --------------------------------------------------------------------------

    def _stop_children(self, reason: str) -> None:
        """SIGTERM every child's process group, SIGKILL after the grace period, record them all.

        If the database is gone, the processes are still stopped (nothing may outlive the worker); their
        jobs stay `running` under this worker, and the next torc command reconciles them."""
        self._stop_request = self._stop_request or reason
        try:
            self.pump.drain()
            self._release_queue()
            recording = True
        except Exception:  # noqa: BLE001 - the database failed; stopping the processes matters more now
            log.warning("cannot reach the database while stopping; the next torc command will reconcile")
            recording = False
        if not self.children:
            return
        # What ended before the stop is recorded as what it was (a success stays a success): reap it first.
        exits = []
        for child in list(self.children.values()):
            ex = process.reap(child)
            if ex:
                self._forget(child)
                exits.append(ex)
        for child in self.children.values():
            child.kill_reason = reason
            process.signal_group(child, self.x.termination_signal(child.job))   # execution_config
        grace = self.x.walltime_grace_s if reason == "walltime" and self.x.walltime_grace_s is not None \
            else self.cfg.kill_grace_s
        deadline = time.monotonic() + grace
        exits = []
        while self.children:
            for child in list(self.children.values()):
                ex = process.reap(child)
                if ex:
                    self._forget(child)
                    exits.append(ex)
            if not self.children:
                break
            if time.monotonic() >= deadline:
                for child in self.children.values():
                    process.signal_group(child, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.02)
        if not recording:
            self._journal_unrecorded(exits)
            return
        try:
            self._handle_exits(exits)
            self.pump.drain()
            # Recovery scripts of jobs stopped for walltime or scancel run now, before the allocation goes.
            while self.pump.recover:
                job, attempt, script, timeout_s = self.pump.recover.popleft()
                from torc_hpc.reconcile import run_recovery_here

                if self.cfg.end_time is not None:   # it must end before the allocation does
                    timeout_s = max(1, min(timeout_s, int(self.cfg.end_time - time.time()) - 5))
                rc, timed_out = run_recovery_here(self._context(job["workflow_id"]).workflow, job, attempt, script,
                                                  redact(self.url), timeout_s=timeout_s)
                self.pump.submit(after_recovery(attempt, rc, script, timed_out_after_s=timed_out).steps, [],
                                 claim=False)
            self.pump.drain()
        except Exception:  # noqa: BLE001 - processes are stopped; the reconciler records what we could not
            log.warning("cannot reach the database while stopping; the next torc command will reconcile")

    def _journal_unrecorded(self, exits: list[process.Exit]) -> None:
        """The database is gone: leave in the start journal how each attempt ended (what the database
        thread could not commit, and what was just stopped) for the reconciler, which records it."""
        for name, p in self.pump.uncommitted():
            if name in ("finish_completed", "finish_failed", "finish_retry", "finish_pending_failed",
                        "record_attempt_result", "finish_interrupted") and p.get("record_result", True):
                self.journal.ended({"id": p["job_id"], "run_id": p["run_id"], "attempt_id": p["attempt_id"]},
                                   p["return_code"], p.get("attempt_status") == "terminated")
        for ex in exits:
            if ex.child.kind == "job":
                self.journal.ended(ex.child.job, ex.return_code,
                                   ex.signaled or ex.child.kill_reason is not None)

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)}
        # SIGCHLD wakes the loop through the wake-up fd, written by the C-level handler (no Python-level
        # send per exit); the Python handler itself has nothing to do.
        signal.signal(signal.SIGCHLD, lambda *_: None)
        previous_wakeup_fd = signal.set_wakeup_fd(self._sig_w.fileno(), warn_on_full_buffer=False)

        def handler(signum, _frame):
            if signum == signal.SIGTERM and self.cfg.sigterm_reason:
                self.request_stop(self.cfg.sigterm_reason())
            else:
                self.request_stop("interrupted")

        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, handler)

        def restore():
            signal.set_wakeup_fd(previous_wakeup_fd)
            for s, h in previous.items():
                signal.signal(s, h)

        return restore

    def _drain_signal_socket(self) -> None:
        try:
            while len(self._sig_r.recv(4096)) == 4096:  # usually one call empties it
                pass
        except (BlockingIOError, InterruptedError):
            pass
