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
       r.peak_memory_bytes, r.cpu_time_s, r.completed_at
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
       r.started_at, r.completed_at, r.exec_time_s, r.peak_memory_bytes, r.cpu_time_s
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
SELECT run_id, attempt_id FROM results
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

-- name: cancel_jobs
-- Cancel some jobs that have not started (blocked, ready or pending_failed), with an event each, and
-- cascade as a failure does: their blocked descendants are canceled transitively, except those with
-- cancel_on_blocking_job_failure = false, which stop waiting for the canceled parent.
WITH wf AS (
    SELECT run_id FROM workflows WHERE id = %(workflow_id)s
), old AS (
    SELECT id, status, attempt_id FROM jobs
    WHERE id = ANY (%(job_ids)s::bigint[]) AND workflow_id = %(workflow_id)s
      AND status IN ('blocked', 'ready', 'pending_failed')
    ORDER BY id
    FOR UPDATE
), done AS (
    UPDATE jobs j SET status = 'canceled' FROM old WHERE j.id = old.id
    RETURNING j.id, old.status AS from_status, j.attempt_id
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, detail)
    SELECT %(workflow_id)s, id, 'canceled', from_status, 'canceled', attempt_id, (SELECT run_id FROM wf), %(detail)s
    FROM done
), doomed AS (
    WITH RECURSIVE walk(id) AS (
        SELECT d.child_id FROM old JOIN job_dependencies d ON d.parent_id = old.id
        UNION
        SELECT d.child_id FROM walk
        JOIN jobs p ON p.id = walk.id AND p.cancel_on_blocking_job_failure AND p.status = 'blocked'
        JOIN job_dependencies d ON d.parent_id = walk.id
    )
    SELECT j.id, j.cancel_on_blocking_job_failure AS cancel FROM walk JOIN jobs j ON j.id = walk.id
    WHERE j.status = 'blocked' AND j.id <> ALL (%(job_ids)s::bigint[])
    ORDER BY j.id
    FOR UPDATE OF j
), canceled AS (
    UPDATE jobs j SET status = 'canceled'
    FROM doomed WHERE j.id = doomed.id AND doomed.cancel
    RETURNING j.id, j.attempt_id
), ev_canceled AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, detail)
    SELECT %(workflow_id)s, id, 'canceled', 'blocked', 'canceled', attempt_id, (SELECT run_id FROM wf),
           jsonb_build_object('because_of_canceled_jobs', %(job_ids)s::bigint[])
    FROM canceled
), lost_parents AS (
    SELECT d.child_id AS id, count(*) AS n
    FROM job_dependencies d
    JOIN doomed c ON c.id = d.child_id AND NOT c.cancel
    WHERE d.parent_id IN (SELECT id FROM old UNION ALL SELECT id FROM doomed WHERE cancel)
    GROUP BY d.child_id
), released AS (
    UPDATE jobs j
    SET unfinished_parents = j.unfinished_parents - lp.n,
        status = CASE WHEN j.unfinished_parents = lp.n THEN 'ready'::job_status ELSE j.status END,
        ready_at = CASE WHEN j.unfinished_parents = lp.n THEN now() ELSE j.ready_at END
    FROM lost_parents lp WHERE j.id = lp.id
    RETURNING j.id, j.status, j.attempt_id
), ev_released AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, detail)
    SELECT %(workflow_id)s, id, 'unblocked', 'blocked', 'ready', attempt_id, (SELECT run_id FROM wf),
           jsonb_build_object('despite_cancel_of_jobs', %(job_ids)s::bigint[])
    FROM released WHERE status = 'ready'
)
SELECT (SELECT count(*) FROM done) AS canceled,
       (SELECT count(*) FROM canceled) AS canceled_dependents,
       (SELECT count(*) FROM released WHERE status = 'ready') AS newly_ready;
