-- Workflow actions at run time: counters set at creation and reset, the due list, the once-only claim.
-- The counters move in the finish statements of jobs.sql (and cancel_jobs_chunk); see sql/migrations/0010.

-- name: mark_action_jobs
-- At creation: each job an action waits for carries the action's id (jobs.action_ids), so finishing it
-- reaches the action's counter without a lookup. Primary-key probes, one per selected job.
UPDATE jobs j SET action_ids = array_append(coalesce(j.action_ids, '{}'), %(action_id)s::bigint)
WHERE j.id = ANY (%(job_ids)s::bigint[]) AND j.workflow_id = %(workflow_id)s;

-- name: recount_actions
-- Set every action's reached_count from its jobs' statuses (at creation and after a reset), and re-arm
-- (fired_at NULL) what the reset made pending again: job-gated actions whose jobs are no longer all there,
-- on_workflow_complete after any reset, and on_workflow_start / non-persistent on_worker_* only after a
-- full reset (%(full)s). Reads action_jobs of this workflow only (O(selected jobs)); never on a hot path.
WITH counts AS (
    SELECT a.id,
           count(j.id) FILTER (WHERE (a.trigger_type = 'on_jobs_ready' AND j.status NOT IN ('blocked', 'canceled'))
                                  OR (a.trigger_type = 'on_jobs_complete'
                                      AND j.status IN ('completed', 'failed', 'canceled', 'terminated', 'disabled')))
               AS reached
    FROM workflow_actions a
    LEFT JOIN action_jobs aj ON aj.action_id = a.id
    LEFT JOIN jobs j ON j.id = aj.job_id
    WHERE a.workflow_id = %(workflow_id)s
    GROUP BY a.id
), upd AS (
    UPDATE workflow_actions a
    SET reached_count = c.reached,
        fired_at = CASE WHEN NOT %(rearm)s THEN a.fired_at
                        WHEN a.trigger_type IN ('on_jobs_ready', 'on_jobs_complete') AND c.reached < a.selected_count THEN NULL
                        WHEN a.trigger_type = 'on_workflow_complete' THEN NULL
                        WHEN %(full)s THEN NULL
                        ELSE a.fired_at END,
        fired_by = CASE WHEN NOT %(rearm)s THEN a.fired_by
                        WHEN a.trigger_type IN ('on_jobs_ready', 'on_jobs_complete') AND c.reached < a.selected_count THEN NULL
                        WHEN a.trigger_type = 'on_workflow_complete' THEN NULL
                        WHEN %(full)s THEN NULL
                        ELSE a.fired_by END
    FROM counts c WHERE a.id = c.id
    RETURNING a.id, a.position, a.fired_at IS NULL AS armed
)
SELECT count(*) FILTER (WHERE armed) AS armed, count(*) AS actions FROM upd;

-- name: pending_actions
-- A workflow's actions that have not fired (persistent worker actions always count): what a worker or
-- the watcher may still have to do. Primary-key-sized (workflow_actions (workflow_id, position)).
SELECT id, position, trigger_type, action_type, config, selected_count, reached_count
FROM workflow_actions
WHERE workflow_id = %(workflow_id)s
  AND (fired_at IS NULL OR (trigger_type IN ('on_worker_start', 'on_worker_complete')
                            AND (config ->> 'persistent')::boolean))
ORDER BY position;

-- name: workflows_with_pending_actions
-- Which of these workflows have an action a worker may still fire (a worker's one query at start).
SELECT DISTINCT workflow_id FROM workflow_actions
WHERE workflow_id = ANY (%(workflow_ids)s::bigint[])
  AND (fired_at IS NULL OR (trigger_type IN ('on_worker_start', 'on_worker_complete')
                            AND (config ->> 'persistent')::boolean))
ORDER BY workflow_id;

-- name: workflow_unfinished
-- Whether some job of the workflow can still change (on_workflow_complete waits for none).
-- jobs_workflow_status_idx: at most one index probe per status.
SELECT EXISTS (
    SELECT 1 FROM jobs WHERE workflow_id = %(workflow_id)s
      AND status IN ('blocked', 'ready', 'running', 'pending_failed')
) AS unfinished;

-- name: claim_action
-- Fire an action once: only the first caller gets the row back (fired_at was NULL and the trigger holds).
-- The trigger is re-checked here, in the same statement, so two claimers cannot both see it due.
UPDATE workflow_actions a SET fired_at = now(), fired_by = %(fired_by)s
WHERE a.id = %(action_id)s AND a.workflow_id = %(workflow_id)s AND a.fired_at IS NULL
  AND CASE a.trigger_type
        WHEN 'on_jobs_ready' THEN a.reached_count >= a.selected_count
        WHEN 'on_jobs_complete' THEN a.reached_count >= a.selected_count
        WHEN 'on_workflow_complete' THEN NOT EXISTS (
            SELECT 1 FROM jobs j WHERE j.workflow_id = a.workflow_id
              AND j.status IN ('blocked', 'ready', 'running', 'pending_failed'))
        ELSE true END
RETURNING a.id, a.position, a.trigger_type, a.action_type, a.config;

-- name: dataset_writers_left
-- How many of a dataset's writers did not complete (failed, canceled, …): then it is not fingerprinted.
SELECT count(*) FILTER (WHERE j.status NOT IN ('completed', 'disabled')) AS not_completed, count(*) AS writers
FROM job_datasets jd JOIN jobs j ON j.id = jd.job_id
WHERE jd.dataset_id = %(dataset_id)s AND jd.direction = 'output';

-- name: record_dataset
-- What a finalization found (or why it could not), with its event, in one statement.
WITH upd AS (
    UPDATE datasets SET finalized_at = CASE WHEN %(finalized)s THEN now() ELSE finalized_at END,
                        file_count = %(file_count)s, total_bytes = %(total_bytes)s, digest = %(digest)s,
                        finalize_note = %(note)s
    WHERE id = %(dataset_id)s AND workflow_id = %(workflow_id)s
    RETURNING id, name
), ev AS (
    INSERT INTO events (workflow_id, kind, worker_id, detail)
    SELECT %(workflow_id)s, CASE WHEN %(finalized)s THEN 'dataset_finalized' ELSE 'dataset_not_finalized' END,
           %(worker_id)s, %(detail)s
    FROM upd
)
SELECT id, name FROM upd;
