-- The statements of main before issue 11's maintenance work, for bench/maintenance.py's baseline only.
-- Copied verbatim from torc_hpc/db/queries/workflows.sql at 8736287; never used by torc itself.

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

