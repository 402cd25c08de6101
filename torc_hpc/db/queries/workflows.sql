-- Workflows: create, read, list, cancel, delete, reset, and their events and failure rules.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: reserve_job_ids
-- Reserve a block of consecutive job ids (caller holds the create advisory lock).
-- torc_reserve_job_ids (migration 0005) runs as the schema owner: users need no UPDATE on the sequence.
SELECT torc_reserve_job_ids(%(count)s) AS first_id;

-- name: insert_workflow
-- Create the workflow row.
INSERT INTO workflows (name, description, spec, spec_path, use_pending_failed, output_dir, working_dir, spec_sha256)
VALUES (%(name)s, %(description)s, %(spec)s, %(spec_path)s, %(use_pending_failed)s, %(output_dir)s, %(working_dir)s,
        %(spec_sha256)s)
RETURNING id, run_id;

-- name: insert_failure_handler
-- Create one named failure handler.
INSERT INTO failure_handlers (workflow_id, name) VALUES (%(workflow_id)s, %(name)s) RETURNING id;

-- name: insert_failure_rule
-- Add one rule to a handler.
INSERT INTO failure_handler_rules (handler_id, position, exit_codes, match_all_exit_codes, recovery_script, max_retries)
VALUES (%(handler_id)s, %(position)s, %(exit_codes)s, %(match_all_exit_codes)s, %(recovery_script)s, %(max_retries)s);

-- name: insert_event
-- Record a workflow-level or job-level event.
INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
VALUES (%(workflow_id)s, %(job_id)s, %(kind)s, %(from_status)s, %(to_status)s, %(attempt_id)s, %(run_id)s,
        %(worker_id)s, %(detail)s);

-- name: load_failure_rules
-- All rules of a workflow's handlers, in order (a worker loads them once).
SELECT h.id AS handler_id, h.name, r.position, r.exit_codes, r.match_all_exit_codes, r.recovery_script, r.max_retries
FROM failure_handlers h
JOIN failure_handler_rules r ON r.handler_id = h.id
WHERE h.workflow_id = %(workflow_id)s
ORDER BY h.id, r.position;

-- name: get_workflow
-- One workflow.
SELECT id, name, description, spec_path, run_id, use_pending_failed, output_dir, working_dir, created_at, canceled_at
FROM workflows WHERE id = %(workflow_id)s;

-- name: list_workflows
-- All workflows with their progress, newest first.
SELECT w.id, w.name, w.run_id, w.created_at, w.canceled_at IS NOT NULL AS canceled,
       p.total, p.completed, p.running, p.ready, p.blocked, p.failed, p.terminated, p.canceled AS canceled_jobs,
       p.pending_failed
FROM workflows w JOIN workflow_progress p ON p.workflow_id = w.id
ORDER BY w.id DESC;

-- name: delete_workflow
-- Delete a workflow and everything it owns (cascades).
DELETE FROM workflows WHERE id = %(workflow_id)s RETURNING id;

-- name: cancel_workflow
-- Cancel a workflow: mark it, and cancel every job that has not started (running ones are stopped by workers).
WITH wf AS (
    UPDATE workflows SET canceled_at = coalesce(canceled_at, now()) WHERE id = %(workflow_id)s RETURNING id, run_id
), old AS (
    SELECT j.id, j.status, j.attempt_id FROM jobs j
    WHERE j.workflow_id = %(workflow_id)s AND j.status IN ('blocked', 'ready', 'pending_failed')
    FOR UPDATE
), upd AS (
    UPDATE jobs j SET status = 'canceled' FROM old WHERE j.id = old.id
    RETURNING j.id, old.status AS from_status, j.attempt_id
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, detail)
    SELECT %(workflow_id)s, id, 'canceled', from_status, 'canceled', attempt_id, (SELECT run_id FROM wf),
           '{"reason": "workflow canceled"}'::jsonb
    FROM upd
)
SELECT (SELECT count(*) FROM wf) AS found, (SELECT count(*) FROM upd) AS canceled;

-- name: reset_jobs
-- Start a new run for some jobs: those whose status is in %(statuses)s, or (when %(job_ids)s is given)
-- those jobs and their canceled descendants. Targets get attempt 1; they and every blocked or ready job
-- (a parent may be reset under it) are recounted: ready when no unfinished parent remains, blocked
-- otherwise. A parent counts as finished when completed or disabled and not itself being reset.
WITH RECURSIVE chosen(id) AS (
    SELECT unnest(%(job_ids)s::bigint[])
    UNION
    SELECT d.child_id FROM chosen JOIN job_dependencies d ON d.parent_id = chosen.id
    JOIN jobs c ON c.id = d.child_id AND c.status = 'canceled'
), wf AS (
    UPDATE workflows SET run_id = run_id + 1, canceled_at = NULL WHERE id = %(workflow_id)s RETURNING id, run_id
), targets AS (
    SELECT id, status FROM jobs
    WHERE workflow_id = %(workflow_id)s
      AND CASE WHEN %(job_ids)s::bigint[] IS NULL THEN status = ANY (%(statuses)s::job_status[])
               ELSE id IN (SELECT id FROM chosen) END
    FOR UPDATE
), recount AS (
    SELECT j.id,
           count(d.parent_id) FILTER (WHERE p.status NOT IN ('completed', 'disabled')
                                         OR p.id IN (SELECT id FROM targets)) AS n
    FROM jobs j
    LEFT JOIN job_dependencies d ON d.child_id = j.id
    LEFT JOIN jobs p ON p.id = d.parent_id
    WHERE j.workflow_id = %(workflow_id)s AND (j.id IN (SELECT id FROM targets) OR j.status IN ('blocked', 'ready'))
    GROUP BY j.id
), upd AS (
    UPDATE jobs j
    SET unfinished_parents = r.n,
        status = CASE WHEN r.n = 0 THEN 'ready'::job_status ELSE 'blocked'::job_status END,
        ready_at = CASE WHEN r.n > 0 THEN NULL WHEN j.status = 'ready' AND t.id IS NULL THEN j.ready_at ELSE now() END,
        attempt_id = CASE WHEN t.id IS NOT NULL THEN 1 ELSE j.attempt_id END,
        return_code = CASE WHEN t.id IS NOT NULL THEN NULL ELSE j.return_code END
    FROM recount r LEFT JOIN targets t ON t.id = r.id
    WHERE j.id = r.id
    RETURNING j.id, j.status, t.status AS from_status, t.id IS NOT NULL AS was_target
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, detail)
    SELECT %(workflow_id)s, id, 'reset', from_status, status, 1, (SELECT run_id FROM wf),
           jsonb_build_object('by', %(reason)s::text)
    FROM upd WHERE was_target
)
SELECT (SELECT run_id FROM wf) AS run_id, (SELECT count(*) FROM upd WHERE was_target) AS reset;

-- name: status_counts
-- Job counts by status for one workflow (index-only scan on jobs_workflow_status_idx).
SELECT status::text AS status, count(*) AS n FROM jobs WHERE workflow_id = %(workflow_id)s GROUP BY status;

-- name: retry_count
-- How many retries this run has made (results of attempts > 1 plus jobs ready again).
SELECT count(*) AS n FROM events WHERE workflow_id = %(workflow_id)s AND run_id = %(run_id)s AND kind = 'retry';

-- name: count_running
-- Jobs currently running in a workflow.
SELECT count(*) AS n FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'running';

-- name: notify_ready
-- Wake idle workers of a workflow: new jobs are ready.
SELECT pg_notify('torc_ready_' || %(workflow_id)s::text, '');
