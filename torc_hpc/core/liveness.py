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
