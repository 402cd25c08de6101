"""The database side of a worker: one thread, and the worker's only connection.

The worker's main thread starts and reaps processes and never touches the database. It talks to this
thread through requests (finished steps, a claim wanted, a call such as a release) and reads what comes
back: claimed jobs and recovery scripts to start (thread-safe deques), and `halt` (the workflow was
canceled, the worker was declared lost, nothing is left for it), each announced by a wake-up byte on the
worker's signal socket.

Before the thread starts, `connect()` opens the connection (retrying with back-off while the server
refuses: too many connections, a restart) and reads the workflow, and `register()` registers the worker:
a worker refused a connection at start waits for one instead of being registered and lost.

The thread then serves. It sleeps in select() on a wake-up socket (the main thread wrote a byte after
queueing a request) and the LISTEN socket (a NOTIFY: jobs became ready), with a timeout at the next thing
due (the group-commit window, the heartbeat, the idle poll). Each wake-up puts everything queued into one
transaction where it can: the finish steps, the heartbeat when it is due (no transaction of its own while
the worker is busy), and the claim. When the worker holds nothing, it looks for work and decides whether
anything is left with O(1) probes, backing off from 50 ms to a second; the reconciler runs at most once
per heartbeat period. Reconnecting after a broken connection happens here, in `_with_reconnect`, and
nowhere else.

Notifications: on a direct connection (or behind a session pooler) the same connection LISTENs; a NOTIFY
that arrives during a statement reaches psycopg's notify handler, one that arrives while the connection is
idle makes its socket readable. Behind a transaction pooler a LISTEN never hears anything, so the worker
LISTENs on TORC_NOTIFY_URL when the site gives one (a second, direct connection), else it polls.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import psycopg

from torc_hpc.db.connection import connect_retrying, notify_url, pooler_mode
from torc_hpc.db.repo import Database, label_key
from torc_hpc.errors import DatabaseError, NotFound

log = logging.getLogger("torc.worker")

GROUP_COMMIT_S = 0.003
GROUP_COMMIT_STEPS = 64
IDLE_POLL_MIN_S = 0.05     # an idle worker looks for work this soon, then backs off
IDLE_POLL_MAX_S = 1.0      # ... doubling up to this (O(1) probes: 1,000 idle workers ≈ 1,000 cheap reads/s)
TICK_S = 0.5               # on_tick (the live progress of `torc run`)
CLAIM_WINDOW = 1000        # a claim looks at this many ready jobs (claim order) for ones that fit, no more
# A worker for which none of those fits looks at all ready jobs at most this often (and before it decides it is
# done): that walk is O(ready jobs), 240 ms on 500,000 ready jobs (bench/idle.py).
DEEP_CLAIM_S = 60.0
LAZY_COMMIT_S = 0.25       # a leaf job's completion waits at most this long for others to commit with

# Steps after which the job is no longer running under this worker (record_attempt_result is not one:
# the job stays running while its recovery script runs).
_ENDING_STEPS = frozenset({"finish_completed", "finish_failed", "finish_retry", "finish_pending_failed",
                           "finish_interrupted"})

MAX_SERVED = 64            # `torc worker --all-mine` serves at most this many workflows at once

# How long a worker keeps trying to reach a database that went away (restart, failover) or refuses it
# (too many connections) before giving up.
RECONNECT_S = float(os.environ.get("TORC_DB_RECONNECT_SECONDS", "300"))


@dataclass
class Served:
    """A workflow this worker serves: its row, its failure rules, and this worker's row in `workers` for it."""

    workflow: dict
    rules: dict
    worker_id: int | None = None
    canceled: bool = False
    settings: dict | None = None    # Torc's execution settings (worker_settings: env, execution_config, ...)


class Pump(threading.Thread):
    """The database thread of one worker. Methods marked (main thread) are the requests; everything else
    runs on this thread once start() was called."""

    def __init__(self, url: str, workflow_id: int | None, *, claim_params: Callable[[], dict | None],
                 wake: Callable[[], None], on_claimed: Callable[[dict], None] = lambda job: None,
                 holds_nothing: Callable[[], bool] = lambda: False,
                 limits: Callable[[], tuple[int, int, int, int]] | None = None,
                 heartbeat_s: float = 10, exit_when_done: bool = False,
                 on_tick: Callable[["Pump"], None] | None = None,
                 workflow_ids: list[int] | None = None, all_mine: bool = False):
        super().__init__(name="torc-db", daemon=True)
        self.url = url
        # What it serves: one workflow (`torc run`, `torc worker WF`), a list (`--workflows 3,7,9`), or every
        # workflow of its owner with ready jobs (`--all-mine`, found now and then: MAX_SERVED at a time).
        self.requested = list(workflow_ids) if workflow_ids else ([workflow_id] if workflow_id is not None else [])
        self.several = bool(workflow_ids) or all_mine
        self.all_mine = all_mine
        self.workflow_id = self.requested[0] if self.requested else None
        self.served: dict[int, Served] = {}   # written by this thread (new workflows) before their jobs arrive
        self.canceled_workflows: deque = deque()   # (several) workflows canceled meanwhile, for the main thread
        self._job_wf: dict[int, int] = {}     # job id → workflow, for the jobs this worker holds
        self._rotate = 0                      # the workflow a multi-workflow claim starts with
        self._worker_info: dict = {}
        self._listening: set[int] = set()
        self.worker_id: int | None = None
        self.db: Database | None = None
        self.reconnect_s = RECONNECT_S
        self._claim_params = claim_params
        self._wake = wake
        self._on_claimed = on_claimed
        self._holds_nothing = holds_nothing
        self._limits = limits
        self.heartbeat_s = heartbeat_s
        self.exit_when_done = exit_when_done
        self._on_tick = on_tick
        self._cv = threading.Condition()
        self._steps: list = []
        self._after: list = []          # recoveries to start once their steps committed
        self._calls: list = []          # (fn(db), Future) to run on this thread
        self._claim_wanted = False
        self._busy = False
        self._stopping: str | None = None   # set by stop(): the reason recorded, "" for none
        self._streaming = False         # the last batch finished several jobs: group the next ones
        self._batch_open: float | None = None
        self._urgent = False            # a queued step must not wait (others depend on it)
        self._lazy_since: float | None = None   # when the oldest queued step arrived
        self._flush = False             # drain(): commit whatever is queued now
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel: selectors.BaseSelector | None = None
        self._listen: psycopg.Connection | None = None   # the connection that LISTENs (self.db.conn or a direct one)
        self._listen_fd: int | None = None
        self._notified = False
        self.notifications = "none"     # listen | listen (TORC_NOTIFY_URL) | poll
        now = time.monotonic()
        self._next_heartbeat = now + heartbeat_s
        self._next_reconcile = now      # the first idle check reconciles
        self._next_deep_claim = now     # a claim past the first CLAIM_WINDOW ready jobs: at most every DEEP_CLAIM_S
        self._next_discovery = now + heartbeat_s   # --all-mine: look for more workflows with ready jobs
        self._next_tick = now
        self._next_idle: float | None = None
        self._idle_delay = IDLE_POLL_MIN_S
        self.claimed: deque = deque()   # jobs for the main thread
        self.recover: deque = deque()   # (job, attempt, script) for the main thread
        self.error: BaseException | None = None
        self.halt: str | None = None    # workflow_canceled | declared_lost | done
        self.unrunnable: list[dict] = []
        self.label: str | None = None   # the worker's --label: claims, probes and the end see only its jobs
        self.other_labels: list[str] = []   # at the end: labels of ready jobs left for other workers
        self.capacity: dict = {}        # what this worker has, when it reports unrunnable jobs
        self.held_not_started: Callable[[], int] = lambda: 0   # the worker's prefetch (live progress)
        self.stop_recorded = False      # the worker's stop is in the database (its start journal is moot)
        self._inflight: list = []       # the batch being committed (for uncommitted())
        self.last_claim_empty = False   # the last claim asked for jobs and got none
        self.stale = 0
        self.stale_ids: list[int] = []
        # Jobs this worker knows it holds: claimed with the claim's answer received, not yet ended by a
        # committed step. Anything else running under this worker is a claim whose answer was lost.
        self._ours: set[int] = set()
        self.released_unacknowledged = 0
        self.stats = {"transactions": 0, "idle_checks": 0, "claims": 0, "empty_claims": 0, "notifications": 0}

    # ---- before the thread starts (main thread) ---------------------------------------------------

    def connect(self) -> dict[int, Served]:
        """Open the worker's connection, retrying with back-off while the server refuses it, and read what it
        serves: each workflow and its failure rules. Nothing is written yet. A worker serving several
        workflows serves only its owner's own (row-level security may let a watcher's role read others')."""
        self.db = Database(self.url, retry_s=self.reconnect_s, plan_once=True)
        ids = self.requested
        if self.several and ids:
            foreign = [r["id"] for r in self.db.all("not_my_workflows", workflow_ids=ids)]
            if foreign:
                raise NotFound(f"workflow(s) {', '.join(map(str, foreign))} do not exist or are not yours; a worker "
                               f"serves only its owner's workflows (see `torc workflows list`)")
        if self.all_mine:
            ids = ids + self._discover(MAX_SERVED - len(ids), ids)
        for wf in ids:
            self.served[wf] = Served(self.db.workflow(wf), self.db.failure_rules(wf),
                                     settings=self.db.one("worker_settings", workflow_id=wf))
        if self.workflow_id is None and ids:
            self.workflow_id = ids[0]
        return self.served

    def register(self, *, allocation_id: int | None = None, **worker) -> int | None:
        """Register the worker (hostname, pid, resources, token...: Database.register_worker) once for each
        workflow it serves, record that its allocation started, and LISTEN where notifications can arrive.
        Returns its row for the first workflow."""
        self._worker_info = worker
        for wf, served in self.served.items():
            served.worker_id = self.db.register_worker(wf, **worker)
        self.worker_id = self.served[self.workflow_id].worker_id if self.served else None
        if allocation_id is not None and self.served:
            self.db.run("allocation_started", id=allocation_id, workflow_id=self.workflow_id,
                        slurm_job_id=worker.get("slurm_job_id"))
        self._start_listening(time.monotonic() + self.reconnect_s)
        return self.worker_id

    def _discover(self, room: int, serving: list[int]) -> list[int]:
        """--all-mine: the owner's workflows with ready jobs that it does not serve yet (oldest first)."""
        if room <= 0:
            return []
        return [r["id"] for r in self.db.all("my_workflows_with_ready_jobs", serving=list(serving), limit=room,
                                                  label_key=self._label_key)]

    @property
    def _label_key(self) -> str:
        """The worker's label as the ready-jobs index keys it (every probe and claim filters on it)."""
        return label_key(self.label)

    def _serve_more(self) -> bool:
        """--all-mine, once per heartbeat period or when idle: register for newly found workflows. True if any."""
        self._next_discovery = time.monotonic() + self.heartbeat_s
        new = self._discover(MAX_SERVED - sum(not s.canceled for s in self.served.values()), list(self.served))
        for wf in new:
            served = Served(self.db.workflow(wf), self.db.failure_rules(wf),
                            settings=self.db.one("worker_settings", workflow_id=wf))
            served.worker_id = self.db.register_worker(wf, **self._worker_info)
            self.served[wf] = served
            if self.workflow_id is None:
                self.workflow_id, self.worker_id = wf, served.worker_id
        if new:
            log.info("now also serving workflow(s) %s", new)
            self._listen_channels()
        return bool(new)

    def serving(self) -> list[tuple[int, int]]:
        """(workflow, this worker's row) for every workflow it still claims from."""
        return [(wf, s.worker_id) for wf, s in self.served.items() if not s.canceled]

    # ---- requests (main thread) -------------------------------------------------------------------

    def submit(self, steps: list, recoveries: list, *, claim: bool, urgent: bool = True) -> None:
        """Finished steps to commit (with a claim when `claim`). Not `urgent` (leaf jobs that completed):
        they may wait up to LAZY_COMMIT_S for more to commit with, while the worker still holds work."""
        with self._cv:
            if self._lazy_since is None and steps:
                self._lazy_since = time.monotonic()
            self._steps.extend(steps)
            self._after.extend(recoveries)
            self._claim_wanted |= claim
            self._urgent |= urgent or bool(recoveries)
        self._poke()

    def request_claim(self) -> None:
        with self._cv:
            self._claim_wanted = True
        self._poke()

    def call(self, fn: Callable[[Database], object]) -> Future:
        """Run fn(db) on this thread, in its turn (across a reconnect if the connection breaks)."""
        fut: Future = Future()
        with self._cv:
            if self.error is not None or not self.is_alive():
                raise self.error or DatabaseError("the worker's database thread is not running")
            self._calls.append((fn, fut))
        self._poke()
        return fut

    def release(self, job_ids: list[int]) -> None:
        """Give claimed-but-unstarted jobs back (ready again, same attempt); waits until committed."""
        def give_back(db):
            by_wf: dict[int, list[int]] = {}
            for j in job_ids:
                by_wf.setdefault(self._job_wf.get(j, self.workflow_id), []).append(j)
            for wf, ids in by_wf.items():
                db.release_jobs(wf, self.served[wf].worker_id, ids)
            self._ours.difference_update(job_ids)
            for j in job_ids:
                self._job_wf.pop(j, None)

        self.call(give_back).result()

    def idle(self) -> bool:
        with self._cv:
            return not (self._steps or self._after or self._claim_wanted or self._busy or self._calls)

    def drain(self, timeout: float = 300) -> None:
        """Wait until everything submitted is committed (and any wanted claim made)."""
        with self._cv:
            self._flush = True
        self._poke()
        with self._cv:
            self._cv.wait_for(lambda: self.error is not None or not self.is_alive() or not (
                self._steps or self._after or self._claim_wanted or self._busy or self._calls), timeout)
        if self.error:
            raise self.error

    def uncommitted(self) -> list:
        """After this thread failed: the steps it never committed (the failed batch, then the queued ones)."""
        with self._cv:
            return list(self._inflight) + list(self._steps)

    def stop(self, reason: str | None = None, unrunnable: list[str] | None = None) -> None:
        """Finish what is queued, record the worker's stop (`reason`; None after an error: the reconciler
        decides, as for a crash), close the connection(s)."""
        with self._cv:
            self._stopping = reason or ""
            self._stop_unrunnable = unrunnable or []
        self._poke()
        if self.is_alive():
            self.join(60)
        self._close()

    # ---- the thread --------------------------------------------------------------------------------

    def _poke(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # a full buffer already means "wake up"

    def run(self) -> None:
        try:
            self._serve()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            self.error = e
            log.debug("the worker's database thread failed", exc_info=True)
        finally:
            with self._cv:
                self._busy = False
                calls, self._calls = self._calls, []
                self._cv.notify_all()
            for _, fut in calls:
                fut.set_exception(self.error or DatabaseError("the worker's database thread stopped"))
            self._wake()

    def _serve(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._watch_listen()
        while True:
            self._wait()
            now = time.monotonic()
            with self._cv:
                steps, self._steps = self._steps, []
                after, self._after = self._after, []
                calls, self._calls = self._calls, []
                want, self._claim_wanted = self._claim_wanted, False
                stopping = self._stopping
                self._busy = True
                self._urgent, self._lazy_since, self._flush = False, None, False
            self._batch_open = None
            try:
                params = self._claim_params() if want else None
                if params is not None and params["limit"] <= 0:
                    params = None
                if steps or after or params is not None or now >= self._next_heartbeat:
                    # A busy worker's heartbeat rides along with a batch once it is half due.
                    self._batch(steps, after, params, heartbeat=now >= self._next_heartbeat - self.heartbeat_s / 2)
                for fn, fut in calls:
                    try:
                        fut.set_result(self._with_reconnect(lambda: fn(self.db)))
                    except Exception as e:  # noqa: BLE001 - the caller decides
                        fut.set_exception(e)
                if self._on_tick and now >= self._next_tick and stopping is None:
                    self._next_tick = now + TICK_S
                    self._tick()
                if self.all_mine and now >= self._next_discovery and stopping is None:
                    # a busy worker too: another workflow of its owner may have ready jobs (taking turns)
                    self._with_reconnect(self._serve_more)
                if (stopping is None and self._next_idle is not None and time.monotonic() >= self._next_idle
                        and self._idle_now()):
                    self._idle_step()
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()
                self._wake()
            if stopping is not None:
                with self._cv:
                    more = self._steps or self._after or self._calls
                if not more:
                    self._leave(stopping)
                    return

    def _wait(self) -> None:
        """Sleep until something is queued or due; read notifications meanwhile."""
        while True:
            now = time.monotonic()
            with self._cv:
                n = len(self._steps)
                if self._calls or self._after or self._stopping is not None or (self._claim_wanted and not n):
                    return
            if self._idle_now():
                if self._next_idle is None:
                    self._next_idle = now + self._idle_delay
            else:
                self._next_idle = None
                self._idle_delay = IDLE_POLL_MIN_S
            due = self._next_heartbeat
            if self._on_tick:
                due = min(due, self._next_tick)
            if self._next_idle is not None:
                due = min(due, self._next_idle)
            if n:
                with self._cv:
                    urgent, flush, lazy_since = self._urgent, self._flush, self._lazy_since
                if flush or n >= GROUP_COMMIT_STEPS:
                    return
                if urgent:
                    if not self._streaming:
                        return
                    # Group commit: in a stream of completions, a few ms more per batch halves the
                    # transactions (and PostgreSQL's and this thread's CPU per job). A lone one goes at once.
                    if self._batch_open is None:
                        self._batch_open = now
                    due = min(due, self._batch_open + GROUP_COMMIT_S)
                else:
                    # Leaf completions nobody waits for: commit with the claim the worker needs next (it is
                    # hungry), or after LAZY_COMMIT_S. With many workers on one database this is what keeps
                    # transactions per job down (each commit carries several).
                    params = self._claim_params()
                    if params is not None and params.get("hungry", True):
                        return
                    due = min(due, (lazy_since or now) + LAZY_COMMIT_S)
            if due <= now:
                return
            for key, _ in self._sel.select(due - now):
                if key.data == "wake":
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        while len(self._wake_r.recv(4096)) == 4096:
                            pass
                else:
                    self._with_reconnect(self._read_notifications)
            if self._notified:
                self._notified = False
                self._idle_delay = IDLE_POLL_MIN_S
                with self._cv:
                    self._claim_wanted = True

    def _idle_now(self) -> bool:
        """The worker holds nothing (no job running, queued or being claimed) and nothing is queued here."""
        with self._cv:
            if self._steps or self._after or self._claim_wanted:
                return False
        return self._holds_nothing()

    # ---- one batch ----------------------------------------------------------------------------------

    def _tick(self) -> None:
        try:
            self._with_reconnect(lambda: self._on_tick(self))
        except psycopg.OperationalError:
            raise
        except Exception:  # noqa: BLE001 - a progress display must not stop the worker
            log.debug("on_tick failed", exc_info=True)

    def _batch(self, steps: list, after: list, params: dict | None, *, heartbeat: bool) -> int:
        """One transaction: the finish steps, the claim (`params`: what fits, or None) and the heartbeat.
        Returns how many jobs it claimed."""
        serving = self.serving()
        if params is not None and not serving:
            params = None
        if params is not None:
            params = {"window": CLAIM_WINDOW, **params, "rotate": self._rotate}
            self._rotate += 1
        if not (steps or params is not None or heartbeat):
            self.recover.extend(after)
            return 0
        notify = sorted({self._job_wf.get(p["job_id"], self.workflow_id) for _, p in steps}) or None
        self._inflight = steps
        result = self._with_reconnect(
            lambda: self.db.finish(self.workflow_id, steps, worker_id=self.worker_id, claim=params,
                                   heartbeat=heartbeat, serving=serving if self.several else None,
                                   notify=notify), claiming=params is not None)
        self.stats["transactions"] += 1
        for name, p in steps:
            if name in _ENDING_STEPS:
                self._ours.discard(p["job_id"])
                self._job_wf.pop(p["job_id"], None)
        self._ours.update(job["id"] for job in result["claimed"])
        for job in result["claimed"]:
            self._job_wf[job["id"]] = job["workflow_id"]
        self._streaming = len(steps) >= 2
        for job in result["claimed"]:   # after the commit: nothing slow inside a transaction
            self._on_claimed(job)
        self.claimed.extend(result["claimed"])
        # A recovery whose claim did not commit (the job was taken over, or another runner claimed it first)
        # is not ours to run.
        lost = set(result["stale"])
        self.recover.extend(r for r in after if r[0]["id"] not in lost)
        self._inflight = []
        if result["stale"]:
            self.stale += len(result["stale"])
            self.stale_ids.extend(result["stale"])
            log.warning("jobs %s were no longer ours (reset, canceled or taken over)", result["stale"])
        if heartbeat:
            self._beat(result["heartbeat"])
        if params is not None:
            self.stats["claims"] += 1
            self.last_claim_empty = not result["claimed"]
            self.stats["empty_claims"] += self.last_claim_empty
            if result["claimed"]:
                self._idle_delay = IDLE_POLL_MIN_S
        more = params is not None and len(result["claimed"]) == params["limit"]
        if more or result["newly_ready"]:
            with self._cv:
                self._claim_wanted = True
        return len(result["claimed"])

    def _beat(self, rows: list[dict]) -> None:
        """The heartbeat's answer, one row per workflow served (a row missing: its workflow is gone)."""
        self._next_heartbeat = time.monotonic() + self.heartbeat_s
        seen = {r["workflow_id"]: r for r in rows}
        if any(r["declared_lost"] for r in rows):
            log.error("this worker was declared lost by another torc process; stopping")
            self._set_halt("declared_lost")
            return
        self._canceled([wf for wf, s in self.served.items() if not s.canceled
                        and (wf not in seen or seen[wf]["workflow_canceled"])])

    def _canceled(self, workflows: list[int]) -> None:
        """Workflows canceled (or deleted) while served: a worker of one workflow stops; one serving several
        stops claiming from them and has the main thread stop their jobs, and stops when none is left."""
        if not workflows:
            return
        for wf in workflows:
            if wf in self.served:
                self.served[wf].canceled = True
        if not self.several or (all(s.canceled for s in self.served.values()) and not self.all_mine):
            self._set_halt("workflow_canceled")
            return
        self.canceled_workflows.extend(workflows)
        self._wake()

    def _set_halt(self, reason: str) -> None:
        if self.halt is None:
            self.halt = reason
        self._wake()

    # ---- idle: look for work, or decide nothing is left -----------------------------------------

    def _idle_step(self) -> None:
        """The worker holds nothing and its last claim found nothing. O(1) in the workflow's size: one
        statement of two EXISTS probes (a running job: jobs_workflow_status_idx; a ready one:
        jobs_ready_idx), a claim only when something is ready, and the reconciler (lost workers, orphaned
        jobs) at most once per heartbeat period."""
        self.stats["idle_checks"] += 1
        self._idle_delay = min(self._idle_delay * 2, IDLE_POLL_MAX_S)
        self._next_idle = time.monotonic() + self._idle_delay
        decision = self._with_reconnect(self.idle_check)
        if decision is not None:
            self._set_halt(decision)

    def idle_check(self) -> str | None:
        """One idle check (also what bench/idle.py measures): claim if something is ready, else return
        `done` when this worker exits when done and nothing it can run is left, `workflow_canceled`, or
        None to keep waiting."""
        from torc_hpc.reconcile import reconcile

        now = time.monotonic()
        if now >= self._next_reconcile:
            self._next_reconcile = now + self.heartbeat_s
            # A worker is a command that runs user code: orphans' recovery scripts run here (listings never
            # do), within their time limits and the time this worker has left, heartbeating meanwhile.
            time_left = self._limits()[3] if self._limits else None
            for wf, served in self.serving():
                reconcile(self.db, wf, run_recoveries=True, time_left_s=time_left,
                          while_waiting=lambda: self.db.heartbeat(served.worker_id) if served.worker_id else None)
        if self.all_mine and now >= self._next_discovery:
            self._serve_more()
        ids = [wf for wf, _ in self.serving()]
        if not ids and self.all_mine and self._serve_more():
            ids = [wf for wf, _ in self.serving()]
        if not ids:
            return "done" if self.exit_when_done else None
        if self.several:
            probe = self.db.one("idle_probe_many", workflow_ids=ids, label_key=self._label_key)
            self._canceled(probe["canceled"])
            if self.halt:
                return self.halt
        else:
            probe = self.db.one("idle_probe", workflow_id=ids[0], label_key=self._label_key)
            if probe["canceled"]:
                return "workflow_canceled"
        ending = self.exit_when_done and not probe["running"]
        if probe["ready"]:
            params = self._claim_params()
            if params is not None and params["limit"] > 0:
                # The claim looks at the first CLAIM_WINDOW ready jobs; beyond them (a worker too small for
                # the head of a long queue) only every DEEP_CLAIM_S, or before deciding it is done.
                deep = ending or now >= self._next_deep_claim
                if deep:
                    self._next_deep_claim = now + DEEP_CLAIM_S
                if self._batch([], [], {**params, "window": None if deep else CLAIM_WINDOW}, heartbeat=False):
                    return None
        if not ending:
            return None
        if self.all_mine and self._serve_more():   # before leaving: has another workflow of its owner work?
            return None
        if not probe["ready"]:
            # Ready jobs, if any, are for workers with other labels: say which (every ready row is one of
            # them, so the bounded scan stops at once).
            self.other_labels = sorted({r["label"] for wf in ids for r in self.db.all(
                "ready_labels_elsewhere", workflow_id=wf, label_key=self._label_key)})
            return "done"
        # Ready jobs, nothing running anywhere, and our claim got none: done if none of them fits here.
        cpus, gpus, memory, time_left = self._limits() if self._limits else (2**62, 2**62, 2**62, 2**31 - 1)
        self.unrunnable = []
        for wf in ids:
            self.unrunnable += self.db.all("blocked_by_unrunnable", workflow_id=wf, cpus=cpus, gpus=gpus,
                                           memory=memory, time_left_s=time_left,
                                           label_key=self._label_key)[:20 - len(self.unrunnable)]
        self.capacity = {"cpus": cpus, "gpus": gpus, "memory_bytes": memory,
                         "time_left_s": None if time_left >= 2**31 - 1 else time_left}
        return "done" if self.unrunnable else None

    # ---- notifications ------------------------------------------------------------------------------

    def _start_listening(self, deadline: float) -> None:
        """LISTEN for ready jobs where a NOTIFY can arrive: this connection, unless a transaction pooler is in
        front; then TORC_NOTIFY_URL (direct), or nothing (the idle poll finds the work)."""
        self._listening = set()
        if pooler_mode() != "transaction":
            self._listen = self.db.conn
            self.notifications = "listen"
        elif notify_url():
            self._listen = connect_retrying(notify_url(), within_s=deadline - time.monotonic(), pooler="none",
                                            what="connect for notifications")
            self.notifications = "listen (TORC_NOTIFY_URL)"
        else:
            self._listen = None
            self.notifications = "poll"
            return
        self._listen.add_notify_handler(self._on_notify)
        self._listen_channels()

    def _listen_channels(self) -> None:
        """LISTEN on the channel of every workflow served (once each)."""
        if self._listen is None:
            return
        for wf in self.served:
            if wf not in self._listening:
                self.db.listen_ready(wf, self._listen)
                self._listening.add(wf)

    def _watch_listen(self) -> None:
        if self._sel is None:
            return
        if self._listen_fd is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(self._listen_fd)
            self._listen_fd = None
        if self._listen is not None:
            self._listen_fd = self._listen.pgconn.socket
            self._sel.register(self._listen_fd, selectors.EVENT_READ, "notify")

    def _on_notify(self, _notify) -> None:
        self._notified = True
        self.stats["notifications"] += 1

    def _read_notifications(self) -> None:
        """The LISTEN socket is readable while the connection is idle: a NOTIFY (or the connection broke)."""
        pg = self._listen.pgconn
        pg.consume_input()
        if pg.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError("the connection to the database was lost")
        while pg.notifies() is not None:
            self._on_notify(None)

    # ---- reconnecting (the one place) ----------------------------------------------------------------

    def _with_reconnect(self, operation, *, claiming: bool = False):
        """Run a database operation; across a database restart (or a terminated backend) reconnect with
        back-off and retry it, for up to reconnect_s. Finish steps are guarded by status and attempt, so a
        batch that did commit before the connection broke is not applied twice. A claim whose answer was
        lost may have committed: those jobs are given back first."""
        deadline = time.monotonic() + self.reconnect_s
        release_first = False
        while True:
            try:
                if release_first:
                    self._release_unacknowledged()
                    release_first = False
                return operation()
            except psycopg.OperationalError as e:
                if self._listen is not None and self._listen is not self.db.conn and self._listen.broken:
                    self._relisten(e, deadline)   # only the notification connection broke
                    if not self.db.broken(e):
                        continue
                if not self.db.reconnect_after(e, deadline):
                    raise
                release_first = release_first or claiming
                if self._listen is None or self._listen.closed or self._listen.broken:
                    self._relisten(e, deadline)

    def _relisten(self, exc: BaseException, deadline: float) -> None:
        """LISTEN again after a reconnect, and claim once: a NOTIFY may have been missed meanwhile."""
        if self.notifications == "poll":
            self._listen = None
        else:
            if self._listen is not None and self._listen is not self.db.conn:
                with contextlib.suppress(Exception):
                    self._listen.close()
            try:
                self._start_listening(deadline)
            except (psycopg.OperationalError, DatabaseError) as e:
                raise DatabaseError(f"lost the database and could not reconnect within {self.reconnect_s:.0f}s: "
                                    f"{str(exc).strip()}") from e
        self._watch_listen()
        with self._cv:
            self._claim_wanted = True

    def _release_unacknowledged(self) -> None:
        """After a broken connection: jobs running under this worker that it never heard it claimed go
        back to ready, same attempt (else they would sit `running` until the worker stops)."""
        for wf, served in self.served.items():
            ids = [r["id"] for r in self.db.all("unacknowledged_claims", workflow_id=wf,
                                                 worker_id=served.worker_id, known=list(self._ours))]
            if ids:
                self.db.release_jobs(wf, served.worker_id, ids)
                self.released_unacknowledged += len(ids)
                log.warning("gave back %d job(s) claimed just before the connection broke: %s", len(ids), ids)

    # ---- leaving -----------------------------------------------------------------------------------

    def _leave(self, reason: str) -> None:
        if reason and reason != "error":
            unrunnable = getattr(self, "_stop_unrunnable", [])
            recorded = True
            for wf, served in self.served.items():
                why = "workflow_canceled" if served.canceled else reason
                try:
                    self._with_reconnect(lambda: self.db.stop_worker(wf, served.worker_id, why,
                                                                     unrunnable=unrunnable[:20]))
                except psycopg.Error:
                    recorded = False
                    log.warning("could not record the worker's stop")
            self.stop_recorded = recorded

    def _close(self) -> None:
        for conn in {id(c): c for c in (self._listen, self.db.conn if self.db else None) if c is not None}.values():
            with contextlib.suppress(Exception):
                conn.close()
        if self._sel is not None:
            with contextlib.suppress(Exception):
                self._sel.close()
        for s in (self._wake_r, self._wake_w):
            with contextlib.suppress(Exception):
                s.close()
