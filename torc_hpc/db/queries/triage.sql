-- Triage: what people and AI agents (torc mcp) read about jobs and the decisions they take on them.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: database_role
-- The role this connection acts as (who decided, in events; what row-level security lets it see).
SELECT current_user AS db_role;

-- name: lock_jobs_for_decision
-- Lock the named jobs (those this role can see), in id order, for an all-or-nothing decision.
SELECT j.id, j.workflow_id, j.name, j.status::text AS status, j.attempt_id, j.return_code, j.num_cpus,
       j.memory_bytes, j.runtime_s, w.run_id
FROM jobs j JOIN workflows w ON w.id = j.workflow_id
WHERE j.id = ANY (%(job_ids)s::bigint[])
ORDER BY j.id
FOR UPDATE OF j;

-- name: count_jobs_in_statuses
-- How many jobs of a workflow are in these states (index-only on jobs_workflow_status_idx).
SELECT count(*) AS n FROM jobs
WHERE workflow_id = %(workflow_id)s AND status = ANY (%(statuses)s::job_status[]);

-- name: jobs_with_last_attempt
-- Jobs of a workflow in these states, with their latest attempt's result, in id order, at most %(limit)s.
-- Cost follows the matching jobs (jobs_workflow_status_idx) and one results probe each.
SELECT j.id AS job_id, j.name, j.command, j.status::text AS status, j.attempt_id, j.return_code, j.num_cpus,
       j.num_gpus, j.memory_bytes, j.runtime_s,
       r.run_id, r.attempt_id AS result_attempt_id, r.status::text AS result_status, r.exec_time_s,
       r.peak_memory_bytes, r.cpu_time_s, r.completed_at, j.stdio_mode, j.delete_stdio_on_success
FROM jobs j
LEFT JOIN LATERAL (
    SELECT run_id, attempt_id, status, exec_time_s, peak_memory_bytes, cpu_time_s, completed_at
    FROM results WHERE job_id = j.id ORDER BY id DESC LIMIT 1) r ON true
WHERE j.workflow_id = %(workflow_id)s AND j.status = ANY (%(statuses)s::job_status[])
ORDER BY j.id
LIMIT %(limit)s;

-- name: job_detail
-- One job with its workflow's run, its failure handler's name and its latest attempt's result.
SELECT j.id AS job_id, j.workflow_id, j.name, j.command, j.status::text AS status, j.attempt_id, j.return_code,
       j.priority, j.num_cpus, j.num_gpus, j.num_nodes, j.memory_bytes, j.runtime_s, j.resource_requirements,
       j.cancel_on_blocking_job_failure, j.scheduler, j.unfinished_parents, w.run_id AS workflow_run_id,
       h.name AS failure_handler,
       r.run_id, r.attempt_id AS result_attempt_id, r.status::text AS result_status, r.return_code AS result_return_code,
       r.started_at, r.completed_at, r.exec_time_s, r.peak_memory_bytes, r.cpu_time_s,
       j.stdio_mode, j.delete_stdio_on_success
FROM jobs j
JOIN workflows w ON w.id = j.workflow_id
LEFT JOIN failure_handlers h ON h.id = j.failure_handler_id
LEFT JOIN LATERAL (
    SELECT run_id, attempt_id, status, return_code, started_at, completed_at, exec_time_s, peak_memory_bytes, cpu_time_s
    FROM results WHERE job_id = j.id ORDER BY id DESC LIMIT 1) r ON true
WHERE j.id = %(job_id)s;

-- name: job_parent_ids
-- The jobs a job waits for (job_dependencies_child_idx), at most %(limit)s.
SELECT parent_id FROM job_dependencies WHERE child_id = %(job_id)s ORDER BY parent_id LIMIT %(limit)s;

-- name: attempt_of_job
-- The attempt whose logs to read: the given run and attempt, else the latest that left a result.
SELECT run_id, attempt_id, status::text AS status FROM results
WHERE job_id = %(job_id)s
  AND (%(run_id)s::int IS NULL OR run_id = %(run_id)s::int)
  AND (%(attempt_id)s::int IS NULL OR attempt_id = %(attempt_id)s::int)
ORDER BY id DESC LIMIT 1;

-- name: set_job_resources
-- New CPU, memory or runtime requests for a job's next attempt (NULL keeps the current value).
UPDATE jobs SET num_cpus = coalesce(%(num_cpus)s::int, num_cpus),
                memory_bytes = coalesce(%(memory_bytes)s::bigint, memory_bytes),
                runtime_s = coalesce(%(runtime_s)s::int, runtime_s)
WHERE id = %(job_id)s
RETURNING num_cpus, memory_bytes, runtime_s;
