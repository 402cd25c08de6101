"""Every bound torc enforces, in one place. Each names the error that cites it; change them here only.

Grouped by concern so that a new limit has an obvious home.
"""

from __future__ import annotations

# ---- specs (bad input must fail in bounded time and memory) -----------------------------------

# ---- recovery scripts and user code -------------------------------------------------------------

# ---- logs shown to people and agents --------------------------------------------------------------
LOG_TAIL_LINES = 50            # default lines of a log tail (summaries, MCP, `torc logs --tail`)
LOG_TAIL_MAX_BYTES = 64 * 1024  # never read more than this from the end of a log for a tail
SUMMARY_FAILED_JOBS = 10       # failed jobs the end-of-run summary names (then a count of the rest)
SUMMARY_STDERR_LINES = 5       # lines of stderr the summary shows per failed job
REPORT_STDERR_LINES = 20       # lines of stderr per failure in `torc report`
REPORT_MAX_FAILURES = 200      # failures `torc report` details (then a count of the rest)

# ---- listings and pages ------------------------------------------------------------------------
LISTING_FETCH_ROWS = 2000      # rows a streamed listing fetches per round trip (its memory is one batch)
REPORT_MAX_ATTEMPTS = 50_000   # attempts `torc report` draws (the first ones; ~100 bytes each; the report says so)
PLAN_MAX_STAGES = 1000         # stages `torc workflows plan` reports one by one (then only their number)
PLAN_STAGES_SHOWN = 25         # stages its table prints (the first ones, then how many more)
DAG_DRAW_MAX_JOBS = 150        # `torc report` draws every job and edge up to this size, else stages

# ---- the cluster (connections, allocations) -----------------------------------------------------
