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

# ---- the MCP server and AI agents (torc mcp, torc watch --ai-recovery) ------------------------------
AGENT_TAIL_LINES = 30              # lines of stderr/stdout per job in list_pending_failed_jobs
AGENT_TAIL_MAX_BYTES = 8 * 1024    # bytes read from the end of each of those logs
AGENT_LOG_MAX_LINES = 2000         # most lines get_job_logs returns (reading at most LOG_TAIL_MAX_BYTES)
AGENT_PENDING_MAX_JOBS = 50        # pending_failed jobs (with their tails) one listing shows; the count says all
AGENT_LIST_MAX_JOBS = 1000         # jobs one MCP listing returns; the count says how many there are
AGENT_SCAN_MAX_RESULTS = 10_000    # jobs check_resource_utilization looks at in one call
AGENT_MAX_ITEMS = 1000             # classifications (or job ids) in one call
AGENT_REASON_MAX_CHARS = 2000      # a decision's reason, as stored in its event
AGENT_SPEC_MAX_BYTES = 4 * 2**20   # spec text create_workflow_from_spec accepts
AI_AGENT_TIMEOUT_S = 900           # default time limit of one agent run (--ai-timeout)
AI_AGENT_LEASE_GRACE_S = 120       # the run lease outlives the time limit by this much (a crashed watcher)
AI_AGENT_RETRY_AFTER_S = 3600      # an agent that left jobs pending sees the same jobs again after this
AI_AGENT_OUTPUT_MAX_BYTES = 4096   # tail of the agent's output kept in its event
