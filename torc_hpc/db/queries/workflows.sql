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
INSERT INTO failure_handler_rules (handler_id, position, exit_codes, match_all_exit_codes, recovery_script, max_retries,
                                   recovery_timeout_s)
VALUES (%(handler_id)s, %(position)s, %(exit_codes)s, %(match_all_exit_codes)s, %(recovery_script)s, %(max_retries)s,
        %(recovery_timeout_s)s);

-- name: insert_event
-- Record a workflow-level or job-level event.
INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
VALUES (%(workflow_id)s, %(job_id)s, %(kind)s, %(from_status)s, %(to_status)s, %(attempt_id)s, %(run_id)s,
        %(worker_id)s, %(detail)s);

-- name: load_failure_rules
-- All rules of a workflow's handlers, in order (a worker loads them once).
SELECT h.id AS handler_id, h.name, r.position, r.exit_codes, r.match_all_exit_codes, r.recovery_script, r.max_retries,
       r.recovery_timeout_s
FROM failure_handlers h
JOIN failure_handler_rules r ON r.handler_id = h.id
WHERE h.workflow_id = %(workflow_id)s
ORDER BY h.id, r.position;

-- name: get_workflow
-- One workflow.
SELECT id, name, description, spec_path, run_id, use_pending_failed, output_dir, working_dir, created_at, canceled_at,
       deleting_at
FROM workflows WHERE id = %(workflow_id)s;

-- name: list_workflows
-- All workflows with their progress, newest first (only one project's when %(project)s is given).
SELECT w.id, w.name, w.project, w.run_id, w.created_at, w.canceled_at IS NOT NULL AS canceled,
       p.total, p.completed, p.running, p.ready, p.blocked, p.failed, p.terminated, p.canceled AS canceled_jobs,
       p.pending_failed
FROM workflows w JOIN workflow_progress p ON p.workflow_id = w.id
WHERE %(project)s::text IS NULL OR w.project = %(project)s::text
ORDER BY w.id DESC;

-- name: mark_workflow_deleting
-- First step of a delete or archive: mark it (commands refuse it from now on) and cancel it (claims stop,
-- heartbeats tell its workers to stop). Idempotent: a re-run after a crash finds it marked.
UPDATE workflows SET deleting_at = coalesce(deleting_at, now()), canceled_at = coalesce(canceled_at, now())
WHERE id = %(workflow_id)s AND (%(unchanged_since_event)s::bigint IS NULL OR NOT EXISTS (
    SELECT 1 FROM events e WHERE e.workflow_id = %(workflow_id)s AND e.id > %(unchanged_since_event)s))
RETURNING id;

-- name: delete_workflow_jobs_chunk
-- Delete the next %(chunk)s jobs of a workflow being deleted, in name order after %(after)s (the
-- (workflow_id, name) index: each job is read once however many chunks run), with their results and the
-- edges into them. Returns the counts and the last name deleted.
WITH j AS (
    SELECT id, name FROM jobs WHERE workflow_id = %(workflow_id)s AND name > %(after)s ORDER BY name LIMIT %(chunk)s
), r AS (
    DELETE FROM results WHERE workflow_id = %(workflow_id)s AND job_id = ANY (ARRAY(SELECT id FROM j)) RETURNING 1
), d AS (
    DELETE FROM job_dependencies WHERE child_id = ANY (ARRAY(SELECT id FROM j)) RETURNING 1
), gone AS (
    DELETE FROM jobs WHERE id = ANY (ARRAY(SELECT id FROM j)) RETURNING id
)
SELECT (SELECT count(*) FROM gone) AS jobs, (SELECT count(*) FROM r) AS results,
       (SELECT count(*) FROM d) AS dependencies, (SELECT max(name) FROM j) AS last;

-- name: delete_workflow_events_chunk
-- Delete the next %(chunk)s events of a workflow being deleted after id %(after)s (events_workflow_idx).
WITH gone AS (
    DELETE FROM events WHERE id = ANY (ARRAY(
        SELECT id FROM events WHERE workflow_id = %(workflow_id)s AND id > %(after)s
        ORDER BY workflow_id, id LIMIT %(chunk)s))
    RETURNING id
)
SELECT count(*) AS events, max(id) AS last FROM gone;

-- name: delete_workflow_row
-- Last step of a delete: the workflow row; its small tables (workers, handlers, allocations, schedulers,
-- watch state) and anything written since the chunks ran go with it (ON DELETE CASCADE, all indexed).
DELETE FROM workflows WHERE id = %(workflow_id)s AND deleting_at IS NOT NULL RETURNING id;

-- name: mark_workflow_canceled
-- First step of a cancel: claims stop (claim_jobs needs canceled_at IS NULL) and heartbeats tell workers
-- to stop their running jobs. Idempotent.
UPDATE workflows SET canceled_at = coalesce(canceled_at, now())
WHERE id = %(workflow_id)s AND deleting_at IS NULL
RETURNING run_id, canceled_at;

-- name: cancel_jobs_chunk
-- Cancel the next %(chunk)s jobs (in name order after %(after)s) of a canceled workflow that have not
-- started (blocked, ready, pending_failed), each with its event, in one short transaction. The
-- (workflow_id, name) index makes a pass over all chunks read each job once. SKIP LOCKED: never waits for
-- a worker finishing a parent; the caller makes another pass while cancel_jobs_left says one is left.
WITH wf AS (
    SELECT run_id FROM workflows WHERE id = %(workflow_id)s AND canceled_at IS NOT NULL
), scanned AS (
    SELECT j.id, j.name, j.status FROM jobs j
    WHERE j.workflow_id = %(workflow_id)s AND j.name > %(after)s AND EXISTS (SELECT 1 FROM wf)
    ORDER BY j.name
    LIMIT %(chunk)s
), old AS (
    SELECT j.id, j.status FROM jobs j
    WHERE j.id = ANY (ARRAY(SELECT id FROM scanned WHERE status IN ('blocked', 'ready', 'pending_failed')))
      AND j.status IN ('blocked', 'ready', 'pending_failed')
    FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE jobs j SET status = 'canceled' FROM old
    WHERE j.id = old.id AND j.id = ANY (ARRAY(SELECT id FROM old))  -- primary-key probes, never a scan
    RETURNING j.id, old.status AS from_status, j.attempt_id, j.action_ids
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, detail)
    SELECT %(workflow_id)s, id, 'canceled', from_status, 'canceled', attempt_id, (SELECT run_id FROM wf),
           '{"reason": "workflow canceled"}'::jsonb
    FROM upd
), watched AS (
    -- Actions waiting for these jobs (jobs.action_ids; NULL for almost every job, which costs nothing).
    SELECT unnest(action_ids) AS action_id, 'on_jobs_complete' AS trigger_type FROM upd WHERE action_ids IS NOT NULL
), counted AS (
    -- Their counters move in this transaction; the one-time EXISTS filter skips the update entirely
    -- when no finished job carries action ids.
    UPDATE workflow_actions a SET reached_count = a.reached_count + w.n
    FROM (SELECT action_id, trigger_type, count(*) AS n FROM watched GROUP BY action_id, trigger_type) w
    WHERE a.id = w.action_id AND a.trigger_type = w.trigger_type AND EXISTS (SELECT 1 FROM watched)
      AND a.id = ANY (ARRAY(SELECT action_id FROM watched))  -- primary-key probes, never a scan
)
SELECT (SELECT count(*) FROM upd) AS canceled, (SELECT count(*) FROM scanned) AS scanned,
       (SELECT max(name) FROM scanned) AS last;

-- name: cancel_jobs_left
-- Whether a canceled workflow still has a job that has not started (one locked during the last chunk).
SELECT EXISTS (
    SELECT 1 FROM jobs j JOIN workflows w ON w.id = j.workflow_id AND w.canceled_at IS NOT NULL
    WHERE j.workflow_id = %(workflow_id)s AND j.status IN ('blocked', 'ready', 'pending_failed')
) AS left;

-- name: reset_jobs
-- Start a new run for some jobs: those whose status is in %(statuses)s (blocked and ready jobs still on
-- their first attempt have nothing to reset and are skipped), or (when %(job_ids)s is given) those jobs
-- and their canceled descendants. Targets get attempt 1; targets and their blocked or ready children are
-- recounted (ready when no unfinished parent remains, blocked otherwise), and a child is rewritten only
-- when its count or status changes. Nothing else is read or written. A parent counts as finished when
-- completed or disabled and not itself being reset. Run it REPEATABLE READ (Database.reset_jobs): a
-- finisher changing a child meanwhile makes it fail and retry instead of losing that change.
WITH RECURSIVE chosen(id) AS (
    SELECT unnest(%(job_ids)s::bigint[])
    UNION
    SELECT d.child_id FROM chosen JOIN job_dependencies d ON d.parent_id = chosen.id
    JOIN jobs c ON c.id = d.child_id AND c.status = 'canceled'
), wf AS (
    UPDATE workflows SET run_id = run_id + 1, canceled_at = NULL
    WHERE id = %(workflow_id)s AND deleting_at IS NULL
    RETURNING id, run_id
), by_status AS (
    SELECT id, status FROM jobs
    WHERE workflow_id = %(workflow_id)s AND %(job_ids)s::bigint[] IS NULL AND EXISTS (SELECT 1 FROM wf)
      AND status = ANY (%(statuses)s::job_status[])
      AND (status NOT IN ('blocked', 'ready') OR attempt_id > 1)
    FOR UPDATE
), by_id AS (
    SELECT id, status FROM jobs
    WHERE id = ANY (ARRAY(SELECT id FROM chosen)) AND workflow_id = %(workflow_id)s AND EXISTS (SELECT 1 FROM wf)
    FOR UPDATE
), targets AS (
    SELECT id, status FROM by_status UNION ALL SELECT id, status FROM by_id
), affected AS (
    SELECT id FROM targets
    UNION
    SELECT d.child_id FROM targets t JOIN job_dependencies d ON d.parent_id = t.id
), recount AS (
    SELECT j.id, j.status AS old_status, t.id IS NOT NULL AS is_target,
           count(d.parent_id) FILTER (WHERE p.status NOT IN ('completed', 'disabled')
                                         OR p.id IN (SELECT id FROM targets)) AS n
    FROM affected a
    JOIN jobs j ON j.id = a.id
    LEFT JOIN targets t ON t.id = j.id
    LEFT JOIN job_dependencies d ON d.child_id = j.id
    LEFT JOIN jobs p ON p.id = d.parent_id
    WHERE t.id IS NOT NULL OR j.status IN ('blocked', 'ready')
    GROUP BY j.id, j.status, t.id
), upd AS (
    UPDATE jobs j
    SET unfinished_parents = r.n,
        status = CASE WHEN r.n = 0 THEN 'ready'::job_status ELSE 'blocked'::job_status END,
        ready_at = CASE WHEN r.n > 0 THEN NULL WHEN j.status = 'ready' AND NOT r.is_target THEN j.ready_at
                        ELSE now() END,
        attempt_id = CASE WHEN r.is_target THEN 1 ELSE j.attempt_id END,
        interrupted_attempts = CASE WHEN r.is_target THEN 0 ELSE j.interrupted_attempts END,
        return_code = CASE WHEN r.is_target THEN NULL ELSE j.return_code END
    FROM recount r
    WHERE j.id = r.id AND j.id = ANY (ARRAY(SELECT id FROM recount))  -- primary-key probes, never a scan
      AND (r.is_target OR j.unfinished_parents <> r.n
           OR j.status <> CASE WHEN r.n = 0 THEN 'ready'::job_status ELSE 'blocked'::job_status END)
    RETURNING j.id, j.status, j.attempt_id, r.old_status, r.is_target
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, detail)
    SELECT %(workflow_id)s, id,
           CASE WHEN is_target THEN 'reset' WHEN status = 'blocked' THEN 'reblocked' ELSE 'unblocked' END,
           old_status, status, attempt_id, (SELECT run_id FROM wf),
           CASE WHEN is_target THEN jsonb_build_object('by', %(reason)s::text)
                ELSE jsonb_build_object('by', %(reason)s::text, 'because', 'a parent was reset') END
    FROM upd WHERE is_target OR old_status <> status
)
SELECT (SELECT run_id FROM wf) AS run_id,
       (SELECT count(*) FROM upd WHERE is_target) AS reset,
       (SELECT count(*) FROM upd WHERE NOT is_target) AS recounted;

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
-- Wake idle workers of a workflow: new jobs are ready (on the workflow's own channel: migration 0021).
SELECT pg_notify(notify_channel, '') FROM workflows WHERE id = %(workflow_id)s;

-- name: notify_channel
-- The channel a workflow's workers and watchers LISTEN on (random per workflow: migration 0021).
SELECT notify_channel FROM workflows WHERE id = %(workflow_id)s;
