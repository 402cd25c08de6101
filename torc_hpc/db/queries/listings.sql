-- What the CLI lists: jobs, results, events.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: list_jobs
-- Jobs of a workflow, optionally of one status, in id order.
SELECT id, name, status::text AS status, attempt_id, return_code, priority, num_cpus, num_gpus, memory_bytes,
       runtime_s, worker_id, command
FROM jobs
WHERE workflow_id = %(workflow_id)s AND (%(status)s::job_status IS NULL OR status = %(status)s::job_status)
ORDER BY id;

-- name: list_results
-- Every attempt of a workflow.
SELECT r.id, r.job_id, j.name AS job_name, r.run_id, r.attempt_id, r.status::text AS status, r.return_code,
       r.started_at, r.completed_at, r.exec_time_s, r.peak_memory_bytes, r.cpu_time_s, r.worker_id
FROM results r JOIN jobs j ON j.id = r.job_id
WHERE r.workflow_id = %(workflow_id)s
ORDER BY r.id;

-- name: list_events
-- The audit log of a workflow, oldest first, optionally only after an event id.
SELECT e.id, e.ts, e.job_id, j.name AS job_name, e.kind, e.from_status::text AS from_status,
       e.to_status::text AS to_status, e.attempt_id, e.run_id, e.worker_id, e.detail
FROM events e LEFT JOIN jobs j ON j.id = e.job_id
WHERE e.workflow_id = %(workflow_id)s AND e.id > %(after_id)s
ORDER BY e.id
LIMIT %(limit)s;

-- name: stream_jobs
-- Jobs of a workflow in id order for a streamed listing (server-side cursor; jobs_workflow_id_idx gives the
-- first row at once). log_run_id/log_attempt_id name the latest attempt's log files: the running attempt,
-- else the last attempt that left a result (NULL: never ran).
SELECT j.id, j.name, j.status::text AS status, j.attempt_id, j.return_code, j.priority, j.num_cpus, j.num_gpus,
       j.num_nodes, j.memory_bytes, j.runtime_s, j.worker_id, j.started_at, j.scheduler, j.command,
       CASE WHEN j.status = 'running' THEN %(run_id)s::int ELSE r.run_id END AS log_run_id,
       CASE WHEN j.status = 'running' THEN j.attempt_id ELSE r.attempt_id END AS log_attempt_id,
       j.stdio_mode, j.delete_stdio_on_success AND j.status = 'completed' AS logs_deleted
FROM jobs j
LEFT JOIN LATERAL (
    SELECT run_id, attempt_id FROM results
    WHERE job_id = j.id ORDER BY run_id DESC, attempt_id DESC LIMIT 1) r ON true
WHERE j.workflow_id = %(workflow_id)s AND (%(status)s::job_status IS NULL OR j.status = %(status)s::job_status)
ORDER BY j.id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: stream_results
-- Attempts of a workflow (optionally of one job) in id order for a streamed listing, with what the job requested.
SELECT r.id, r.job_id, j.name AS job_name, r.run_id, r.attempt_id, r.status::text AS status, r.return_code,
       r.started_at, r.completed_at, r.exec_time_s, r.peak_memory_bytes, r.cpu_time_s, r.worker_id,
       j.memory_bytes AS requested_memory_bytes, j.runtime_s AS requested_runtime_s,
       j.stdio_mode, j.delete_stdio_on_success AND r.status = 'completed' AS logs_deleted
FROM results r JOIN jobs j ON j.id = r.job_id
WHERE r.workflow_id = %(workflow_id)s AND (%(job_id)s::bigint IS NULL OR r.job_id = %(job_id)s::bigint)
ORDER BY r.id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: last_workflow
-- The caller's most recent workflow (`last` wherever a workflow id is expected; workflows_owner_idx).
SELECT id FROM workflows WHERE owner = current_user ORDER BY id DESC LIMIT 1;

-- name: job_by_id
-- One job of a workflow by id (a JOB argument that is a number).
SELECT id, name, status::text AS status, attempt_id, return_code, worker_id, started_at, stdio_mode,
       delete_stdio_on_success
FROM jobs WHERE workflow_id = %(workflow_id)s AND id = %(job_id)s;

-- name: job_by_name
-- One job of a workflow by name (unique index on workflow_id, name).
SELECT id, name, status::text AS status, attempt_id, return_code, worker_id, started_at, stdio_mode,
       delete_stdio_on_success
FROM jobs WHERE workflow_id = %(workflow_id)s AND name = %(name)s;

-- name: job_attempts
-- The attempts of one job that left a result, latest first (for `torc logs`).
SELECT run_id, attempt_id, status::text AS status, return_code, started_at, completed_at
FROM results WHERE job_id = %(job_id)s
ORDER BY run_id DESC, attempt_id DESC
LIMIT %(limit)s;

-- name: unfinished_from_spec
-- Workflows created from this spec file with this content that still have work (not every job completed
-- or disabled) and were not canceled, newest first.
SELECT w.id, w.name, w.created_at
FROM workflows w
WHERE w.spec_path = %(spec_path)s AND w.spec_sha256 = %(spec_sha256)s AND w.canceled_at IS NULL
  AND EXISTS (SELECT 1 FROM jobs j WHERE j.workflow_id = w.id AND j.status NOT IN ('completed', 'disabled'))
ORDER BY w.id DESC
LIMIT 5;

-- name: failed_jobs
-- The first failed, terminated or pending_failed jobs of a workflow (end-of-run summary), with the return code
-- and times of their last attempt.
SELECT j.id, j.name, j.status::text AS status, j.attempt_id, j.return_code,
       r.run_id, r.attempt_id AS result_attempt_id, r.exec_time_s, r.peak_memory_bytes,
       j.stdio_mode, j.delete_stdio_on_success
FROM jobs j
LEFT JOIN LATERAL (
    SELECT run_id, attempt_id, exec_time_s, peak_memory_bytes FROM results
    WHERE job_id = j.id ORDER BY run_id DESC, attempt_id DESC LIMIT 1) r ON true
WHERE j.workflow_id = %(workflow_id)s AND j.status IN ('failed', 'terminated', 'pending_failed')
ORDER BY j.id
LIMIT %(limit)s;

-- name: count_failed_jobs
-- How many jobs are failed, terminated or pending_failed (jobs_workflow_status_idx).
SELECT count(*) AS n FROM jobs
WHERE workflow_id = %(workflow_id)s AND status IN ('failed', 'terminated', 'pending_failed');

-- name: failure_decisions
-- The last failure-handling event of each given job (what the handler decided), from events_failures_idx.
SELECT DISTINCT ON (e.job_id) e.job_id, e.id, e.kind, e.attempt_id, e.run_id, e.detail
FROM events e
WHERE e.workflow_id = %(workflow_id)s AND e.job_id = ANY (%(job_ids)s::bigint[])
  AND e.kind IN ('failed', 'terminated', 'pending_failed', 'retry', 'recovery_failed', 'recovery_interrupted')
ORDER BY e.job_id, e.id DESC;

-- name: failure_events_after
-- Failure-handling events after an event id, oldest first (the live failure lines of `torc run`).
SELECT e.id, e.ts, e.job_id, j.name AS job_name, e.kind, e.attempt_id, e.run_id, e.detail
FROM events e LEFT JOIN jobs j ON j.id = e.job_id
WHERE e.workflow_id = %(workflow_id)s AND e.id > %(after_id)s
  AND e.kind IN ('failed', 'terminated', 'pending_failed', 'retry', 'recovery_failed', 'recovery_interrupted')
ORDER BY e.id
LIMIT %(limit)s;

-- name: recent_failure_events
-- The latest failure-handling events, newest first (`torc watch`).
SELECT e.id, e.ts, e.job_id, j.name AS job_name, e.kind, e.attempt_id, e.run_id, e.detail
FROM events e LEFT JOIN jobs j ON j.id = e.job_id
WHERE e.workflow_id = %(workflow_id)s
  AND e.kind IN ('failed', 'terminated', 'pending_failed', 'retry', 'recovery_failed', 'recovery_interrupted')
ORDER BY e.id DESC
LIMIT %(limit)s;

-- name: last_event_id
-- The newest event of a workflow (where the live failure lines start).
SELECT coalesce(max(id), 0) AS id FROM events WHERE workflow_id = %(workflow_id)s;

-- name: running_jobs
-- Some running jobs of a workflow, longest running first (`torc watch`).
SELECT j.id, j.name, j.attempt_id, j.started_at, j.worker_id, j.num_cpus, j.memory_bytes, j.runtime_s,
       w.hostname, w.slurm_job_id
FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id
WHERE j.workflow_id = %(workflow_id)s AND j.status = 'running'
ORDER BY j.started_at NULLS LAST, j.id
LIMIT %(limit)s;

-- name: server_status
-- What `torc db status` reports about the server and database in use.
SELECT current_setting('server_version') AS version, current_database() AS database, current_user AS "user",
       pg_database_size(current_database()) AS size_bytes,
       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()) AS connections;

-- name: recent_allocations
-- The allocations a person watching wants to see: active ones first, then the latest (allocations_workflow_idx).
SELECT id, slurm_job_id, scheduler, state, sacct_state, nodes, cpus_per_node, mem, walltime_s, submitted_at,
       started_at, ended_at, error,
       (SELECT count(*) FROM allocations a2 WHERE a2.workflow_id = %(workflow_id)s) AS total
FROM allocations
WHERE workflow_id = %(workflow_id)s
ORDER BY state IN ('pending', 'running', 'unknown') DESC, id DESC
LIMIT %(limit)s;

-- name: no_jit_for_this_transaction
-- A streamed listing's plan costs all its rows, which switches JIT compilation on: 0.7 s before the first of
-- 200,000 rows, for nothing (the rows are cheap). Off for this read transaction only (pooler-safe).
SET LOCAL jit = off;
