-- `torc report`: everything the HTML report draws, read once per report (streamed where it grows with the workflow).
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: report_attempts
-- Every attempt that left a result, in id order, at most %(limit)s (the timeline and the resource plots).
SELECT r.job_id, r.run_id, r.attempt_id, r.status::text AS status, r.return_code, r.started_at, r.completed_at,
       r.exec_time_s, r.peak_memory_bytes, r.cpu_time_s, r.worker_id
FROM results r
WHERE r.workflow_id = %(workflow_id)s
ORDER BY r.id
LIMIT %(limit)s;

-- name: report_jobs
-- Every job of the workflow with what it requested (names, statuses, the DAG's nodes).
SELECT id, name, status::text AS status, attempt_id, return_code, num_cpus, num_gpus, memory_bytes, runtime_s,
       started_at, worker_id, failure_handler_id
FROM jobs WHERE workflow_id = %(workflow_id)s
ORDER BY id;

-- name: report_edges
-- Every dependency of the workflow (the DAG's edges and its stages).
SELECT parent_id, child_id FROM job_dependencies WHERE workflow_id = %(workflow_id)s;

-- name: report_workers
-- The workers that served the workflow (timeline lanes).
SELECT id, hostname, pid, slurm_job_id, num_cpus, memory_bytes, started_at, stopped_at, stop_reason
FROM workers WHERE workflow_id = %(workflow_id)s
ORDER BY id;

-- name: report_failure_events
-- Failure-handling decisions of the workflow, oldest first, at most %(limit)s (events_failures_idx).
SELECT e.id, e.ts, e.job_id, e.kind, e.attempt_id, e.run_id, e.detail
FROM events e
WHERE e.workflow_id = %(workflow_id)s
  AND e.kind IN ('failed', 'terminated', 'pending_failed', 'retry', 'recovery_failed', 'recovery_interrupted')
ORDER BY e.id
LIMIT %(limit)s;
