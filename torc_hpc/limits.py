"""Every bound torc enforces, in one place. Each names the error that cites it; change them here only.

Grouped by concern so that a new limit has an obvious home.
"""

from __future__ import annotations

# ---- specs (bad input must fail in bounded time and memory) -----------------------------------
# Each bound is checked before the work it bounds (sizes are computed, never materialized first) and the
# error that enforces it cites it. Only the expansion sizes can be raised by a flag (--max-jobs,
# --max-dependencies on `torc workflows create`, `torc run` and `torc submit-slurm`); the others keep
# every value storable and every step of validation fast.

# PostgreSQL's column types: counts, priorities, retries, exit codes and seconds are `integer` (int4),
# memory in bytes is `bigint` (int8).
INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1
INT8_MAX = 2**63 - 1

MAX_SPEC_BYTES = 16 * 2**20       # a spec file larger than this is refused before it is read; checking a
                                  # valid-looking file costs ~1 s of CPU and ~50 MB per MiB of YAML (measured)
MAX_NESTING_DEPTH = 64            # mappings and lists nested deeper than this (a spec needs about 6)
MAX_ALIAS_VALUES = 1_000_000      # values that YAML aliases (*name) and merges (<<) stand for, in total
MAX_PROBLEMS = 100                # problems listed in one error; the rest are counted, not listed
MAX_JOBS = 10_000_000             # jobs one workflow expands to, and combinations one job iterates
MAX_DEPENDENCIES = 50_000_000     # dependency edges one workflow expands to (before removing repeats)
MAX_NAME_LENGTH = 512             # characters in a job, handler, resource or scheduler name: a btree
                                  # index row must stay under 2,704 bytes, and 512 × 4 UTF-8 bytes does
MAX_COMMAND_BYTES = 131_071       # UTF-8 bytes of a command or recovery script: Linux's MAX_ARG_STRLEN
                                  # (128 KiB with its NUL) is the most one `bash -c` argument can hold
MAX_TEXT_LENGTH = 65_536          # characters of free text (description, sbatch options)
MAX_VALUE_TEXT_LENGTH = 64        # characters of a number, a memory size or a duration ("2g", "PT30M")
MAX_PARAMETER_TEXT = 1_048_576    # characters of one parameter's value as written (a range or a list)
MAX_FORMAT_WIDTH = 256            # width and precision in a placeholder's format spec ({i:>8}, {x:.3f})
MAX_REGEX_LENGTH = 1_000          # characters of one depends_on_regexes entry
MAX_REGEX_MEMORY = 8 * 2**20      # bytes RE2 may use to compile one expression
MAX_DISTINCT_REGEXES = 10_000     # different expressions (after placeholders) in one workflow
MAX_REGEX_CHECKS = 10_000_000     # name-against-expression matches one workflow may need (RE2: linear each)

# ---- recovery scripts and user code -------------------------------------------------------------
RECOVERY_TIMEOUT_S = 600         # default time limit of a recovery script (a rule's recovery_timeout sets
                                 # its own); then its process group is killed and the recovery counts as failed
RECOVERY_CLAIM_GRACE_S = 120     # a recovery claim outlives its script's time limit by this much: after it,
                                 # a job still waiting on the script was abandoned by a runner that died
MAX_START_JOURNAL_BYTES = 256 * 2**20  # a dead worker's start journal read beyond this is not believed
                                 # (about 10 million starts); its held jobs then count as started
MAX_USER_DATA_BYTES = 1_048_576  # one user_data value written with `torc user-data set` (JSON text)

# ---- logs shown to people and agents --------------------------------------------------------------
LOG_TAIL_LINES = 50            # default lines of a log tail (summaries, MCP, `torc logs --tail`)
LOG_TAIL_MAX_BYTES = 64 * 1024  # never read more than this from the end of a log for a tail
SUMMARY_FAILED_JOBS = 10       # failed jobs the end-of-run summary names (then a count of the rest)
SUMMARY_STDERR_LINES = 5       # lines of stderr the summary shows per failed job
REPORT_STDERR_LINES = 20       # lines of stderr per failure in `torc report`
REPORT_MAX_FAILURES = 200      # failures `torc report` details (then a count of the rest)

# ---- listings and pages ------------------------------------------------------------------------
LISTING_FETCH_ROWS = 2000      # rows a streamed listing fetches per round trip (its memory is one batch)
REPORT_MAX_SERIES = 24          # monitored attempts whose samples `torc report` plots (the longest first)
REPORT_SERIES_POINTS = 600     # points per plotted line (longer series keep the maximum of each bucket)
REPORT_MAX_ATTEMPTS = 50_000   # attempts `torc report` draws (the first ones; ~100 bytes each; the report says so)
PLAN_MAX_STAGES = 1000         # stages `torc workflows plan` reports one by one (then only their number)
PLAN_STAGES_SHOWN = 25         # stages its table prints (the first ones, then how many more)
DAG_DRAW_MAX_JOBS = 150        # `torc report` draws every job and edge up to this size, else stages

# ---- the cluster (connections, allocations) -----------------------------------------------------

# ---- maintenance and retention (each chunk is one short transaction) ------------------------------
CANCEL_CHUNK_JOBS = 5_000       # jobs looked at (the waiting ones canceled, with their events) per transaction of `workflows cancel`
DELETE_CHUNK_ROWS = 5_000       # jobs (with their results and incoming edges), or events, per transaction of `workflows delete`
PRUNE_CHUNK_EVENTS = 20_000     # events deleted per transaction by `db prune`
ARCHIVE_FETCH_ROWS = 5_000      # rows fetched per round trip while `workflows archive` streams a table

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
