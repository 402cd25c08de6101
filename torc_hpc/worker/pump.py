"""The database side of a worker, on its own thread and connection.

The worker's main thread only starts and reaps processes; this thread commits what ended and claims
what comes next, one transaction per batch, so processes keep running while PostgreSQL syncs its log.
Results come back through thread-safe deques and a wake-up byte on the worker's signal socket.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Callable

import psycopg

from torc_hpc.db.repo import Database

log = logging.getLogger("torc.worker")

GROUP_COMMIT_S = 0.003
GROUP_COMMIT_STEPS = 64

# Steps after which the job is no longer running under this worker (record_attempt_result is not one:
# the job stays running while its recovery script runs).
_ENDING_STEPS = frozenset({"finish_completed", "finish_failed", "finish_retry", "finish_pending_failed",
                           "finish_interrupted"})

# How long a worker keeps trying to reach a database that went away (restart, failover) before giving up.
RECONNECT_S = float(os.environ.get("TORC_DB_RECONNECT_SECONDS", "300"))


class Pump(threading.Thread):
    def __init__(self, url: str, workflow_id: int, worker_id: int, claim_params: Callable[[], dict | None],
                 wake: Callable[[], None], on_claimed: Callable[[dict], None] = lambda job: None):
        super().__init__(name="torc-db-pump", daemon=True)
        self.db = Database(url, migrate=False)
        self.workflow_id = workflow_id
        self.worker_id = worker_id
        self._claim_params = claim_params
        self._wake = wake
        self.reconnect_s = RECONNECT_S
        self._on_claimed = on_claimed
        self._cv = threading.Condition()
        self._steps: list = []
        self._after: list = []          # recoveries to start once their steps committed
        self._claim_wanted = False
        self._busy = False
        self._inflight: list = []       # the batch being committed (kept for uncommitted())
        self._stopping = False
        self._streaming = False         # the last batch finished several jobs: group the next ones
        self.claimed: deque = deque()   # jobs for the main thread
        self.recover: deque = deque()   # (job, attempt, script) for the main thread
        self.error: BaseException | None = None
        self.last_claim_empty = False   # the last claim asked for jobs and got none
        self.stale = 0
        self.stale_ids: list[int] = []
        # Jobs this worker knows it holds: claimed with the claim's answer received, not yet ended by a
        # committed step. Anything else running under this worker is a claim whose answer was lost.
        self._ours: set[int] = set()
        self.released_unacknowledged = 0

    # ---- called from the main thread -----------------------------------------------------------

    def submit(self, steps: list, recoveries: list, *, claim: bool) -> None:
        with self._cv:
            self._steps.extend(steps)
            self._after.extend(recoveries)
            self._claim_wanted |= claim
            self._cv.notify()

    def request_claim(self) -> None:
        with self._cv:
            self._claim_wanted = True
            self._cv.notify()

    def idle(self) -> bool:
        with self._cv:
            return not (self._steps or self._after or self._claim_wanted or self._busy)

    def drain(self, timeout: float = 300) -> None:
        """Wait until everything submitted is committed (and any wanted claim made)."""
        with self._cv:
            self._cv.wait_for(lambda: self.error is not None or not (
                self._steps or self._after or self._claim_wanted or self._busy), timeout)
        if self.error:
            raise self.error

    def uncommitted(self) -> list:
        """After the thread failed: the steps it never committed (the failed batch, then the queued ones)."""
        with self._cv:
            return list(self._inflight) + list(self._steps)

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self.join(30)
        try:
            self.db.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not hide the real error
            pass

    # ---- the thread ----------------------------------------------------------------------------

    def _finish(self, steps, params) -> dict:
        """One batch; across a database restart it reconnects and retries (finish steps are guarded by
        status and attempt, so a batch that did commit before the connection broke is not applied twice).
        A claim in a batch whose answer was lost may have committed: those jobs are given back first."""
        deadline = time.monotonic() + self.reconnect_s
        while True:
            try:
                result = self.db.finish(self.workflow_id, steps, worker_id=self.worker_id, claim=params)
                break
            except psycopg.OperationalError as e:
                if not self.db.reconnect_after(e, deadline):
                    raise
                if params is not None:
                    self._release_unacknowledged()
        for name, p in steps:
            if name in _ENDING_STEPS:
                self._ours.discard(p["job_id"])
        self._ours.update(job["id"] for job in result["claimed"])
        return result

    def _release_unacknowledged(self) -> None:
        """After a broken connection: jobs running under this worker that it never heard it claimed go
        back to ready, same attempt (else they would sit `running` until the worker stops)."""
        ids = [r["id"] for r in self.db.all("unacknowledged_claims", workflow_id=self.workflow_id,
                                             worker_id=self.worker_id, known=list(self._ours))]
        if ids:
            self.db.release_jobs(self.workflow_id, self.worker_id, ids)
            self.released_unacknowledged += len(ids)
            log.warning("gave back %d job(s) claimed just before the connection broke: %s", len(ids), ids)

    def run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._steps or self._after or self._claim_wanted or self._stopping)
                if self._stopping and not (self._steps or self._after):
                    return
                if self._streaming and self._steps and not self._stopping:
                    # Group commit: in a stream of completions, a few ms more per batch halves the
                    # transactions (and PostgreSQL's and this thread's CPU per job). A lone completion,
                    # as on a dependency chain, goes at once.
                    self._cv.wait_for(lambda: len(self._steps) >= GROUP_COMMIT_STEPS or self._stopping,
                                      GROUP_COMMIT_S)
                steps, self._steps = self._steps, []
                self._inflight = steps
                after, self._after = self._after, []
                want, self._claim_wanted = self._claim_wanted, False
                self._busy = True
            try:
                params = self._claim_params() if want else None
                if params is not None and params["limit"] <= 0:
                    params = None
                result = self._finish(steps, params)
                self._streaming = len(steps) >= 2
                for job in result["claimed"]:   # after the commit: nothing slow inside a transaction
                    self._on_claimed(job)
                self.claimed.extend(result["claimed"])
                # A recovery whose claim did not commit (the job was taken over, or another runner claimed
                # it first) is not ours to run.
                lost = set(result["stale"])
                self.recover.extend(r for r in after if r[0]["id"] not in lost)
                self._inflight = []
                if result["stale"]:
                    self.stale += len(result["stale"])
                    self.stale_ids.extend(result["stale"])
                    log.warning("jobs %s were no longer ours (reset, canceled or taken over)", result["stale"])
                more = params is not None and len(result["claimed"]) == params["limit"]
                with self._cv:
                    if params is not None:
                        self.last_claim_empty = not result["claimed"]
                    if more or result["newly_ready"]:
                        self._claim_wanted = True
            except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
                self.error = e
                log.debug("database pump failed", exc_info=True)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()
                self._wake()
            if self.error:
                return
