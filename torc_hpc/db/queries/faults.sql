-- Faults: interrupted attempts, recovery-script claims, start journals and jobs a dead worker never started.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: finish_interrupted
-- The attempt was interrupted (Ctrl-C of torc run): its result row (terminated), then ready with attempt + 1
-- and one more interrupted attempt, which the failure handler does not count against max_retries. No cascade.
WITH done AS (
    UPDATE jobs SET status = 'ready', attempt_id = attempt_id + 1, return_code = %(return_code)s, ready_at = now(),
                    interrupted_attempts = interrupted_attempts + 1
    WHERE id = %(job_id)s AND status = 'running' AND attempt_id = %(attempt_id)s
    RETURNING id, workflow_id
), result AS (
    INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, started_at, completed_at,
                         exec_time_s, peak_memory_bytes, cpu_time_s, worker_id)
    SELECT workflow_id, id, %(run_id)s, %(attempt_id)s, %(return_code)s, 'terminated',
           %(started_at)s::timestamptz, coalesce(%(completed_at)s::timestamptz, now()), %(exec_time_s)s::float8,
           %(peak_memory_bytes)s::bigint, %(cpu_time_s)s::float8, %(worker_id)s::bigint
    FROM done WHERE %(record_result)s
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
    SELECT workflow_id, id, 'interrupted', 'running', 'ready', %(attempt_id)s + 1, %(run_id)s, %(worker_id)s, %(detail)s
    FROM done
)
SELECT (SELECT count(*) FROM done) AS finished, (SELECT count(*) FROM done) AS newly_ready;

-- name: claim_recovery
-- Claim the recovery script of one failed attempt: whoever inserts the row runs it (at most once per
-- attempt). Only while the job still waits on it (running, that attempt). recorded = 1 when claimed.
WITH job AS (
    SELECT id, workflow_id FROM jobs
    WHERE id = %(job_id)s AND status = 'running' AND attempt_id = %(attempt_id)s
), claim AS (
    INSERT INTO recovery_claims (workflow_id, job_id, run_id, attempt_id, worker_id, claimed_by, expires_at)
    SELECT workflow_id, id, %(run_id)s, %(attempt_id)s, %(worker_id)s::bigint, %(claimed_by)s,
           now() + make_interval(secs => %(lease_s)s::float8)
    FROM job
    ON CONFLICT DO NOTHING
    RETURNING job_id
)
SELECT count(*) AS recorded FROM claim;

-- name: recovery_claim
-- Who claimed an attempt's recovery script, and whether that claim has expired (its runner died).
SELECT worker_id, claimed_by, claimed_at, expires_at, expires_at < now() AS expired
FROM recovery_claims
WHERE job_id = %(job_id)s AND run_id = %(run_id)s AND attempt_id = %(attempt_id)s;

-- name: set_start_journal
-- Where a worker journals the jobs it starts (read by the reconciler after the worker dies).
UPDATE workers SET start_journal = %(path)s WHERE id = %(worker_id)s;

-- name: release_unstarted
-- A dead worker's jobs that its start journal shows it never started: ready again, same attempt, no
-- result, no retry used, no cascade; event `released` says why.
WITH rel AS (
    UPDATE jobs SET status = 'ready', worker_id = NULL, started_at = NULL, ready_at = now()
    WHERE id = ANY (%(job_ids)s::bigint[]) AND status = 'running' AND worker_id = %(worker_id)s
    RETURNING id, attempt_id
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
    SELECT %(workflow_id)s, id, 'released', 'running', 'ready', attempt_id,
           (SELECT run_id FROM workflows WHERE id = %(workflow_id)s), %(worker_id)s, %(detail)s
    FROM rel
)
SELECT id FROM rel;
