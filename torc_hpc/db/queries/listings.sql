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
