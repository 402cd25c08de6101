"""The watcher's lease on a workflow: a row in watch_state, not a session lock.

A session advisory lock lives on the server connection; behind a transaction-mode pooler that connection
serves other clients after the watcher leaves, so the lock leaks (docs/scale-notes.md §5). A lease is plain
data: taken with one statement (free, expired, or already ours), renewed between the cycle's steps,
cleared at the end, and it expires by itself when a watcher dies, so the next watcher waits at most its
time-to-live. It works the same with or without a pooler.
"""

from __future__ import annotations

import os
import secrets
import socket

from torc_hpc.db.repo import Database

# Long enough for the slowest step between two renewals (an sbatch as the owner may take minutes under a
# busy controller: the client retries transient errors); short enough that a crashed watcher's workflows
# are picked up again by the next cron run but one.
DEFAULT_TTL_S = 600


def holder_name() -> str:
    """This watcher, as recorded in watch_state.leased_by: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    """The leases one watcher holds. Every call is one short statement in its own transaction."""

    def __init__(self, db: Database, ttl_s: int | None = None, me: str | None = None):
        self.db = db
        self.ttl_s = int(ttl_s if ttl_s is not None else os.environ.get("TORC_WATCH_LEASE_S", DEFAULT_TTL_S))
        self.me = me or holder_name()
        self.held: set[int] = set()

    def take(self, workflow_id: int) -> bool:
        """True when this watcher now holds the workflow; False when another live watcher does."""
        row = self.db.one("take_watch_lease", workflow_id=workflow_id, me=self.me, ttl_s=self.ttl_s)
        if row is not None:
            self.held.add(workflow_id)
        return row is not None

    def take_many(self, workflow_ids) -> set[int]:
        """take() for many workflows in one statement; returns those now held."""
        ids = sorted(set(workflow_ids))
        if not ids:
            return set()
        got = {r["workflow_id"] for r in self.db.all("take_watch_leases", workflow_ids=ids, me=self.me,
                                                     ttl_s=self.ttl_s)}
        self.held |= got
        return got

    def renew(self) -> None:
        if self.held:
            self.db.run("renew_watch_leases", me=self.me, ttl_s=self.ttl_s)

    def release(self, workflow_ids=None) -> None:
        ids = sorted(self.held if workflow_ids is None else set(workflow_ids) & self.held)
        if ids:
            self.db.run("release_watch_leases", me=self.me, workflow_ids=ids)
            self.held -= set(ids)
