-- The watcher: its persistent state, snapshot, auto-schedule and --recover.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: ensure_watch_state
-- Create the workflow's watcher state row if missing.
INSERT INTO watch_state (workflow_id) VALUES (%(workflow_id)s) ON CONFLICT (workflow_id) DO NOTHING;

-- name: get_watch_state
-- The watcher's state for one workflow.
SELECT workflow_id, submit_options, last_auto_schedule_at, consecutive_failures, next_attempt_at, paused_reason,
       recovery_rounds
FROM watch_state WHERE workflow_id = %(workflow_id)s;

-- name: save_submit_options
-- Remember the sbatch options a user gave, for the watcher.
INSERT INTO watch_state (workflow_id, submit_options) VALUES (%(workflow_id)s, %(options)s)
ON CONFLICT (workflow_id) DO UPDATE SET submit_options = watch_state.submit_options || EXCLUDED.submit_options,
                                        updated_at = now();

-- name: save_backoff
-- Store the back-off state.
UPDATE watch_state SET consecutive_failures = %(consecutive_failures)s, next_attempt_at = %(next_attempt_at)s,
                       paused_reason = %(paused_reason)s, updated_at = now()
WHERE workflow_id = %(workflow_id)s;

-- name: mark_auto_scheduled
-- The watcher submitted allocations now.
UPDATE watch_state SET last_auto_schedule_at = %(now)s, updated_at = now() WHERE workflow_id = %(workflow_id)s;

-- name: bump_recovery_round
-- One more --recover round.
UPDATE watch_state SET recovery_rounds = recovery_rounds + 1, updated_at = now() WHERE workflow_id = %(workflow_id)s
RETURNING recovery_rounds;

-- name: watch_snapshot
-- What the auto-schedule decision needs beyond the status counts, in one round trip. Retries come from
-- jobs_ready_retry_idx, so the cost follows the retries waiting, not the workflow's size. Allocations count
-- the workflow's own and the packed ones that serve it too.
WITH serving AS (
    SELECT id, state FROM allocations
    WHERE workflow_id = %(workflow_id)s AND state IN ('pending', 'running', 'unknown')
    UNION
    SELECT a.id, a.state FROM allocation_workflows m JOIN allocations a ON a.id = m.allocation_id
    WHERE m.workflow_id = %(workflow_id)s AND a.state IN ('pending', 'running', 'unknown'))
SELECT
    (SELECT count(*) FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'ready' AND attempt_id > 1)
        AS ready_retries,
    (SELECT min(ready_at) FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'ready' AND attempt_id > 1)
        AS oldest_retry_ready_at,
    (SELECT count(*) FROM serving WHERE state IN ('pending', 'running', 'unknown')) AS active_allocations,
    (SELECT count(*) FROM serving WHERE state IN ('pending', 'unknown')) AS pending_allocations;

-- name: ready_cpu_seconds
-- The ready work in CPU-seconds (sizes new allocations; read only when the watcher submits).
SELECT coalesce(sum(num_cpus::bigint * runtime_s), 0) AS cpu_seconds
FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'ready';

-- name: unjudged_allocations
-- Allocations whose outcome the back-off has not counted yet and that can be judged now.
SELECT a.id, a.slurm_job_id, a.state, a.sacct_state, a.error, a.started_at, a.ended_at, a.unknown_since,
       (SELECT count(*) FROM workers w WHERE w.slurm_job_id = a.slurm_job_id) AS workers
FROM allocations a
WHERE a.workflow_id = %(workflow_id)s AND a.outcome IS NULL
ORDER BY a.id;

-- name: judge_allocation
-- Record the back-off's judgement of an allocation.
UPDATE allocations SET outcome = %(outcome)s WHERE id = %(id)s AND outcome IS NULL;

-- name: workflows_with_work
-- Workflows the cron watcher should look at: not canceled, with jobs left or allocations alive. "Jobs left" is
-- the workflow's lowest status in enum order (blocked < ready < running < the finished ones): the first entry
-- of jobs_workflow_status_idx, one probe per workflow. An EXISTS with `status IN (...)` was the same for the
-- schema owner, but for the watcher's role (row-level security: an enum comparison is never an index
-- condition) it walked every entry of each finished workflow on every pass.
SELECT w.id FROM workflows w
WHERE w.canceled_at IS NULL
  AND ((SELECT j.status FROM jobs j WHERE j.workflow_id = w.id ORDER BY j.status LIMIT 1)
           IN ('blocked', 'ready', 'running')
       OR EXISTS (SELECT 1 FROM allocations a WHERE a.workflow_id = w.id AND a.state IN ('pending', 'running', 'unknown')))
ORDER BY w.id;

-- name: recoverable_jobs
-- Failed or terminated jobs with their last attempt, for --recover to classify (every pass). The jobs come from
-- jobs_failures_idx first (MATERIALIZED), then are sorted: under row-level security the planner has no
-- statistics for an enum comparison and guessed a third of the workflow, which made walking jobs_pkey in
-- id order look cheaper than sorting what the index finds.
WITH found AS MATERIALIZED (
    SELECT id, name, status, return_code, memory_bytes, runtime_s FROM jobs
    WHERE workflow_id = %(workflow_id)s AND status IN ('failed', 'terminated'))
SELECT j.id, j.name, j.status::text AS status, j.return_code, j.memory_bytes, j.runtime_s,
       r.peak_memory_bytes, r.exec_time_s
FROM found j
LEFT JOIN LATERAL (
    SELECT peak_memory_bytes, exec_time_s FROM results
    WHERE job_id = j.id ORDER BY id DESC LIMIT 1) r ON true
ORDER BY j.id;

-- name: resize_job
-- --recover gives a job more memory or runtime.
UPDATE jobs SET memory_bytes = %(memory_bytes)s, runtime_s = %(runtime_s)s WHERE id = %(job_id)s;

-- name: take_watch_lease
-- Take the workflow's watcher lease when nobody holds it, it expired, or it is already ours (one statement,
-- creating the state row if needed). Returns a row when taken, none when another watcher holds it.
INSERT INTO watch_state (workflow_id, leased_by, leased_until)
VALUES (%(workflow_id)s, %(me)s, now() + %(ttl_s)s * interval '1 second')
ON CONFLICT (workflow_id) DO UPDATE SET leased_by = EXCLUDED.leased_by, leased_until = EXCLUDED.leased_until
WHERE watch_state.leased_by IS NULL OR watch_state.leased_until < now() OR watch_state.leased_by = EXCLUDED.leased_by
RETURNING workflow_id, leased_until;

-- name: renew_watch_leases
-- Extend every lease this watcher holds (between the steps of a cycle; one statement for all of them).
UPDATE watch_state SET leased_until = now() + %(ttl_s)s * interval '1 second'
WHERE leased_by = %(me)s;

-- name: release_watch_leases
-- Give back this watcher's leases on these workflows (at the end of their cycle).
UPDATE watch_state SET leased_by = NULL, leased_until = NULL
WHERE leased_by = %(me)s AND workflow_id = ANY (%(workflow_ids)s::bigint[]);

-- name: watch_lease_holder
-- Who holds the workflow's watcher lease, and until when (for messages and tests).
SELECT leased_by, leased_until, leased_until > now() AS live FROM watch_state WHERE workflow_id = %(workflow_id)s;

-- name: take_watch_leases
-- take_watch_lease for many workflows in one statement (the cron watcher's pass). Returns the ones taken.
INSERT INTO watch_state (workflow_id, leased_by, leased_until)
SELECT id, %(me)s, now() + %(ttl_s)s * interval '1 second' FROM unnest(%(workflow_ids)s::bigint[]) AS u (id)
ON CONFLICT (workflow_id) DO UPDATE SET leased_by = EXCLUDED.leased_by, leased_until = EXCLUDED.leased_until
WHERE watch_state.leased_by IS NULL OR watch_state.leased_until < now() OR watch_state.leased_by = EXCLUDED.leased_by
RETURNING workflow_id;

-- name: allocation_workers
-- How many workers ran in a Slurm job, and how many of them were declared lost (not stopped on their own).
SELECT count(*) AS workers, count(*) FILTER (WHERE stop_reason = 'lost') AS lost
FROM workers WHERE slurm_job_id = %(slurm_job_id)s;
