"""Every bound torc enforces, in one place. Each names the error that cites it; change them here only.

Grouped by concern so that a new limit has an obvious home.
"""

from __future__ import annotations

# ---- specs (bad input must fail in bounded time and memory) -----------------------------------

# ---- recovery scripts and user code -------------------------------------------------------------

# ---- logs shown to people and agents --------------------------------------------------------------
LOG_TAIL_LINES = 50            # default lines of a log tail (summaries, MCP, `torc logs --tail`)
LOG_TAIL_MAX_BYTES = 64 * 1024  # never read more than this from the end of a log for a tail

# ---- listings and pages ------------------------------------------------------------------------

# ---- the cluster (connections, allocations) -----------------------------------------------------

# ---- maintenance and retention (each chunk is one short transaction) ------------------------------
CANCEL_CHUNK_JOBS = 5_000       # jobs looked at (the waiting ones canceled, with their events) per transaction of `workflows cancel`
DELETE_CHUNK_ROWS = 5_000       # jobs (with their results and incoming edges), or events, per transaction of `workflows delete`
PRUNE_CHUNK_EVENTS = 20_000     # events deleted per transaction by `db prune`
ARCHIVE_FETCH_ROWS = 5_000      # rows fetched per round trip while `workflows archive` streams a table
