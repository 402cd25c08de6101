-- `torc watch --ai-recovery`: the per-workflow agent-run lease and what the decision to run an agent reads.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: ai_recovery_snapshot
-- What decides whether to run the agent: whether this role owns the workflow, its pending_failed jobs
-- (count, when the newest appeared), the lease and the last run. Cost follows the pending_failed jobs
-- (jobs_workflow_status_idx), not the workflow.
SELECT (SELECT owner = current_user FROM workflows WHERE id = %(workflow_id)s) AS owned,
       (SELECT count(*) FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'pending_failed') AS pending,
       (SELECT max(r.completed_at) FROM jobs j
        JOIN workflows w ON w.id = j.workflow_id
        JOIN results r ON r.job_id = j.id AND r.run_id = w.run_id AND r.attempt_id = j.attempt_id
        WHERE j.workflow_id = %(workflow_id)s AND j.status = 'pending_failed') AS newest_pending_at,
       s.holder, s.lease_expires_at, s.last_started_at, s.last_finished_at, s.last_outcome, s.runs
FROM (SELECT 1) one
LEFT JOIN ai_recovery_state s ON s.workflow_id = %(workflow_id)s;

-- name: ai_recovery_acquire
-- Take the workflow's agent-run lease if it is free or expired; one row back means this caller holds it.
INSERT INTO ai_recovery_state (workflow_id, holder, lease_expires_at, last_started_at, runs)
VALUES (%(workflow_id)s, %(holder)s, %(expires_at)s, %(now)s, 1)
ON CONFLICT (workflow_id) DO UPDATE
SET holder = EXCLUDED.holder, lease_expires_at = EXCLUDED.lease_expires_at,
    last_started_at = EXCLUDED.last_started_at, runs = ai_recovery_state.runs + 1
WHERE ai_recovery_state.lease_expires_at IS NULL OR ai_recovery_state.lease_expires_at <= %(now)s
RETURNING runs;

-- name: ai_recovery_release
-- Give the lease back and record how the run ended (only the holder can; an expired lease taken over
-- by another watcher stays theirs).
UPDATE ai_recovery_state
SET holder = NULL, lease_expires_at = NULL, last_finished_at = %(now)s, last_outcome = %(outcome)s
WHERE workflow_id = %(workflow_id)s AND holder = %(holder)s
RETURNING runs;

-- name: workflows_with_pending_failed
-- Workflows (not canceled) with jobs awaiting a decision: cron mode with --ai-recovery looks at these too.
-- One probe of jobs_failures_idx per workflow: a correlated ORDER BY id LIMIT 1, which the planner can neither
-- answer with a sequential scan it hopes ends early nor turn into a join over every job (what it did with an
-- EXISTS for the watcher's role, which has no statistics for an enum comparison).
SELECT w.id FROM workflows w
WHERE w.canceled_at IS NULL
  AND (SELECT true FROM jobs j WHERE j.workflow_id = w.id AND j.status = 'pending_failed' ORDER BY j.id LIMIT 1)
      IS NOT NULL
ORDER BY w.id;
