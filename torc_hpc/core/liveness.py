"""Is a worker still alive? Pure: the caller gathers the facts."""

from __future__ import annotations

from datetime import datetime


def worker_lost_reason(*, last_heartbeat: datetime, now: datetime, stale_after_s: float,
                       same_host: bool, process_alive: bool | None) -> str | None:
    """None while the worker looks alive; otherwise why it is considered lost.

    On the same host the process table is authoritative (a kill -9 is seen at once);
    elsewhere only the heartbeat can tell.
    """
    if same_host and process_alive is False:
        return "worker process is gone"
    silent = (now - last_heartbeat).total_seconds()
    if silent > stale_after_s:
        return f"no heartbeat for {silent:.0f}s (limit {stale_after_s:.0f}s)"
    return None


def process_is_our_worker(*, exists: bool, status: str | None, create_time: float | None,
                          registered_at: float, slack_s: float = 60) -> bool:
    """Is the process with the worker's pid still that worker? A zombie (killed, not yet reaped by its
    parent) is dead: it runs nothing and never will. A pid reused by a process started after the worker
    registered is not the worker. `status` is psutil's (e.g. "zombie"); None when it could not be read."""
    if not exists or status in ("zombie", "dead"):
        return False
    if create_time is not None and create_time > registered_at + slack_s:
        return False
    return True
