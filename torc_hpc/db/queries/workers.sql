-- Workers: registration, heartbeats, stops, and the reconciler's view of lost ones.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: register_worker
-- A worker announces itself.
INSERT INTO workers (workflow_id, hostname, pid, slurm_job_id, num_cpus, num_gpus, memory_bytes, end_time, token)
VALUES (%(workflow_id)s, %(hostname)s, %(pid)s, %(slurm_job_id)s, %(num_cpus)s, %(num_gpus)s, %(memory_bytes)s,
        %(end_time)s, %(token)s)
RETURNING id;

-- name: heartbeat
-- Refresh a worker's heartbeat; tells it whether the workflow was canceled or it was declared lost.
UPDATE workers w SET last_heartbeat = now()
FROM workflows f
WHERE w.id = %(worker_id)s AND f.id = w.workflow_id
RETURNING f.canceled_at IS NOT NULL AS workflow_canceled, w.stopped_at IS NOT NULL AS declared_lost;

-- name: idle_probe
-- What an idle worker asks before anything else, O(1) whatever the workflow's size: is a job of the workflow
-- running (jobs_running_workflow_idx) or ready for this worker's label (the head of jobs_ready_idx, in claim
-- order: ORDER BY ... LIMIT 1 keeps the planner on the index, where an EXISTS may choose a sequential scan
-- it hopes ends early), and was the workflow canceled? Partial indexes and leakproof conditions only, so
-- the plan is the same for roles under row-level security (migration 0020).
SELECT EXISTS (SELECT 1 FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'running'
                                     AND started_at IS NOT NULL) AS running,
       (SELECT true FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'ready'
                                AND label_key = %(label_key)s::text
        ORDER BY priority DESC, id LIMIT 1) IS NOT NULL AS ready,
       coalesce((SELECT canceled_at IS NOT NULL FROM workflows WHERE id = %(workflow_id)s), true) AS canceled;

-- name: stop_worker
-- A worker leaves cleanly.
UPDATE workers SET stopped_at = now(), stop_reason = %(reason)s WHERE id = %(worker_id)s AND stopped_at IS NULL;

-- name: live_workers
-- Workers not known to have stopped (the reconciler checks each for a stale heartbeat).
SELECT id, hostname, pid, slurm_job_id, started_at, last_heartbeat, now() AS db_now, token
FROM workers WHERE workflow_id = %(workflow_id)s AND stopped_at IS NULL;

-- name: mark_worker_lost
-- Declare a worker lost; only one reconciler wins.
UPDATE workers SET stopped_at = now(), stop_reason = %(reason)s
WHERE id = %(worker_id)s AND stopped_at IS NULL
RETURNING id;

-- name: running_jobs_of_worker
-- The jobs a (lost) worker was running, locked, with whether this attempt already has a result.
SELECT j.id, j.name, j.attempt_id, j.failure_handler_id, j.started_at, w.run_id,
       r.return_code AS recorded_return_code
FROM jobs j
JOIN workflows w ON w.id = j.workflow_id
LEFT JOIN results r ON r.job_id = j.id AND r.run_id = w.run_id AND r.attempt_id = j.attempt_id
WHERE j.worker_id = %(worker_id)s AND j.status = 'running'
ORDER BY j.id
FOR UPDATE OF j;

-- name: orphaned_jobs
-- Running jobs whose worker has stopped or was declared lost: the reconciler finishes them.
SELECT j.id, j.name, j.attempt_id, j.failure_handler_id, j.started_at, j.worker_id, w.run_id,
       j.interrupted_attempts, k.slurm_job_id, k.hostname, k.start_journal, r.return_code AS recorded_return_code
FROM jobs j
JOIN workflows w ON w.id = j.workflow_id
JOIN workers k ON k.id = j.worker_id
LEFT JOIN results r ON r.job_id = j.id AND r.run_id = w.run_id AND r.attempt_id = j.attempt_id
WHERE j.workflow_id = %(workflow_id)s AND j.status = 'running' AND j.started_at IS NOT NULL   -- jobs_running_workflow_idx
  AND k.stopped_at IS NOT NULL
ORDER BY j.id
FOR UPDATE OF j SKIP LOCKED;
