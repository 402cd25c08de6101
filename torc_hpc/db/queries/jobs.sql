-- The hot path: claims, finishes (completion, failure, retry, pending_failed), releases, decisions.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: claim_jobs
-- Claim ready jobs that fit the worker: one statement, SKIP LOCKED so claimers never wait on each other.
-- head reads at most %(window)s entries of jobs_ready_idx in claim order within the worker's label_key (''
-- for unlabeled; a plain column, not coalesce(label, ''), so that the index serves roles under row-level
-- security too: migration 0020) (window NULL: all), so a claim for which nothing fits stops there instead
-- of walking every ready job of a large workflow (the worker looks deeper, window NULL, only now and then:
-- worker/pump.py). candidates keeps the head's jobs that fit and locks them, reaching each
-- row by its ctid (same statement, same snapshot; a row changed meanwhile fails the recheck and is skipped);
-- fitting keeps the prefix whose running sums fit. Declared outputs (Torc's output_files) come back only when
-- the worker says its workflow has some (it checks them after exit 0); otherwise no lookup per job.
-- A job larger than the worker itself (job_*: what one slot set can hold) is never a candidate: the prefetch
-- budget (cpus, gpus, memory: free slots plus the prefetch) would admit it, but it could never start.
WITH wf AS (
    SELECT run_id FROM workflows WHERE id = %(workflow_id)s AND canceled_at IS NULL
), head AS (
    SELECT ctid AS tid, id, priority, num_cpus, num_gpus, memory_bytes, runtime_s, scheduler
    FROM jobs
    WHERE workflow_id = %(workflow_id)s AND status = 'ready' AND label_key = %(label_key)s::text
      AND EXISTS (SELECT 1 FROM wf)
    ORDER BY priority DESC, id
    LIMIT %(window)s
), candidates AS (
    SELECT j.id, j.priority, j.num_cpus, j.num_gpus, j.memory_bytes
    FROM head JOIN jobs j ON j.ctid = head.tid
    WHERE head.num_cpus <= %(cpus)s AND head.num_gpus <= %(gpus)s AND head.memory_bytes <= %(memory)s
      AND head.num_cpus <= %(job_cpus)s AND head.num_gpus <= %(job_gpus)s AND head.memory_bytes <= %(job_memory)s
      AND head.runtime_s <= %(time_left_s)s
      AND (%(scheduler)s::text IS NULL OR head.scheduler IS NULL OR head.scheduler = %(scheduler)s::text)
      AND j.status = 'ready'
    ORDER BY head.priority DESC, head.id
    LIMIT %(limit)s
    FOR UPDATE OF j SKIP LOCKED
), fitting AS (
    SELECT id FROM (
        SELECT id,
               sum(num_cpus) OVER w AS cpus, sum(num_gpus) OVER w AS gpus, sum(memory_bytes) OVER w AS mem
        FROM candidates
        WINDOW w AS (ORDER BY priority DESC, id)
    ) s
    WHERE cpus <= %(cpus)s AND gpus <= %(gpus)s AND mem <= %(memory)s
), claimed AS (
    UPDATE jobs j SET status = 'running', worker_id = %(worker_id)s, started_at = now(), return_code = NULL
    FROM fitting WHERE j.id = fitting.id
    RETURNING j.id, j.workflow_id, j.name, j.command, j.attempt_id, j.failure_handler_id, j.num_cpus, j.num_gpus,
              j.memory_bytes, j.runtime_s, j.priority, j.started_at, j.interrupted_attempts,
              j.invocation_script, j.env, j.stdio_mode, j.delete_stdio_on_success,
              -- whether others wait for it (its completion is committed at once; a leaf's may wait for the next batch)
              EXISTS (SELECT 1 FROM job_dependencies d WHERE d.parent_id = j.id) AS has_children
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id)
    SELECT %(workflow_id)s, id, 'claimed', 'ready', 'running', attempt_id, (SELECT run_id FROM wf), %(worker_id)s
    FROM claimed
)
SELECT c.*, (SELECT run_id FROM wf) AS run_id,
       CASE WHEN %(with_outputs)s::bool THEN (
           SELECT array_agg(ARRAY[f.name, f.path] ORDER BY f.name) FROM job_files jf JOIN files f ON f.id = jf.file_id
           WHERE jf.job_id = c.id AND jf.direction = 'output') END AS outputs
FROM claimed c ORDER BY c.priority DESC, c.id;

-- name: finish_completed
-- A job exited 0: result row, completed, event, and its blocked children lose one unfinished parent
-- (those reaching 0 turn ready in this same statement). Cost follows the job's out-degree only.
WITH done AS (
    UPDATE jobs SET status = 'completed', return_code = 0
    WHERE id = %(job_id)s AND status = 'running' AND attempt_id = %(attempt_id)s
    RETURNING id, workflow_id, action_ids
), result AS (
    INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, started_at, completed_at,
                         exec_time_s, peak_memory_bytes, cpu_time_s, worker_id)
    SELECT workflow_id, id, %(run_id)s, %(attempt_id)s, 0, 'completed', %(started_at)s::timestamptz, coalesce(%(completed_at)s::timestamptz, now()),
           %(exec_time_s)s::float8, %(peak_memory_bytes)s::bigint, %(cpu_time_s)s::float8, %(worker_id)s::bigint
    FROM done
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
    SELECT workflow_id, id, 'completed', 'running', 'completed', %(attempt_id)s, %(run_id)s, %(worker_id)s,
           jsonb_build_object('return_code', 0)
    FROM done
), kids AS (
    SELECT j.id FROM done
    JOIN job_dependencies d ON d.parent_id = done.id
    JOIN jobs j ON j.id = d.child_id
    WHERE j.status = 'blocked'
    ORDER BY j.id
    FOR UPDATE OF j
), unblocked AS (
    UPDATE jobs j
    SET unfinished_parents = j.unfinished_parents - 1,
        status = CASE WHEN j.unfinished_parents = 1 THEN 'ready'::job_status ELSE j.status END,
        ready_at = CASE WHEN j.unfinished_parents = 1 THEN now() ELSE j.ready_at END
    FROM kids WHERE j.id = kids.id
    RETURNING j.id, j.workflow_id, j.status, j.attempt_id, j.action_ids
), ev_ready AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id)
    SELECT workflow_id, id, 'unblocked', 'blocked', 'ready', attempt_id, %(run_id)s, %(worker_id)s
    FROM unblocked WHERE status = 'ready'
), watched AS (
    -- Actions waiting for these jobs (jobs.action_ids; NULL for almost every job, which costs nothing).
    SELECT unnest(action_ids) AS action_id, 'on_jobs_complete' AS trigger_type FROM done WHERE action_ids IS NOT NULL
    UNION ALL
    SELECT unnest(action_ids), 'on_jobs_ready' FROM unblocked WHERE status = 'ready' AND action_ids IS NOT NULL
), counted AS (
    -- Their counters move in this transaction; the one-time EXISTS filter skips the update entirely
    -- when no finished job carries action ids.
    UPDATE workflow_actions a SET reached_count = a.reached_count + w.n
    FROM (SELECT action_id, trigger_type, count(*) AS n FROM watched GROUP BY action_id, trigger_type) w
    WHERE a.id = w.action_id AND a.trigger_type = w.trigger_type AND EXISTS (SELECT 1 FROM watched)
      AND a.id = ANY (ARRAY(SELECT action_id FROM watched))  -- primary-key probes, never a scan
)
SELECT (SELECT count(*) FROM done) AS finished,
       (SELECT count(*) FROM unblocked WHERE status = 'ready') AS newly_ready;

-- name: finish_completed_batch
-- finish_completed for many jobs in one statement (the worker's common case: a batch of exits 0).
-- Arrays are parallel: one element per job. Returns the ids that were no longer ours (stale).
WITH input AS (
    SELECT * FROM unnest(%(job_ids)s::bigint[], %(run_ids)s::int[], %(attempt_ids)s::int[],
                         %(started)s::timestamptz[], %(completed)s::timestamptz[], %(exec_time)s::float8[],
                         %(peak_memory)s::bigint[], %(cpu_time)s::float8[])
        AS t(job_id, run_id, attempt_id, started_at, completed_at, exec_time_s, peak_memory_bytes, cpu_time_s)
), done AS (
    -- The batch is reached by jobs_pkey whatever the statistics say: `j.id = ANY (...)` restates the join as
    -- a condition on the key, and the status test is written with IS NOT DISTINCT FROM (the same as = for
    -- this NOT NULL column) so that no index on status can serve it. Statistics from before a run believe
    -- nothing runs, and an index scan of "every running job" then looks cheaper than 64 key lookups.
    UPDATE jobs j SET status = 'completed', return_code = 0
    FROM input i
    WHERE j.id = i.job_id AND j.id = ANY (%(job_ids)s::bigint[]) AND j.status IS NOT DISTINCT FROM 'running'
      AND j.attempt_id = i.attempt_id
    RETURNING j.id, j.workflow_id, i.run_id, i.attempt_id, i.started_at, i.completed_at, i.exec_time_s,
              i.peak_memory_bytes, i.cpu_time_s, j.action_ids
), result AS (
    INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, started_at, completed_at,
                         exec_time_s, peak_memory_bytes, cpu_time_s, worker_id)
    SELECT workflow_id, id, run_id, attempt_id, 0, 'completed', started_at, coalesce(completed_at, now()),
           exec_time_s, peak_memory_bytes, cpu_time_s, %(worker_id)s::bigint
    FROM done
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
    SELECT workflow_id, id, 'completed', 'running', 'completed', attempt_id, run_id, %(worker_id)s::bigint,
           '{"return_code": 0}'::jsonb
    FROM done
), kids AS (
    SELECT d.child_id AS id, count(*) AS n FROM done JOIN job_dependencies d ON d.parent_id = done.id
    GROUP BY d.child_id
), locked AS (
    SELECT j.id, kids.n FROM jobs j JOIN kids ON kids.id = j.id
    WHERE j.status = 'blocked'
    ORDER BY j.id
    FOR UPDATE OF j
), unblocked AS (
    UPDATE jobs j
    SET unfinished_parents = j.unfinished_parents - l.n,
        status = CASE WHEN j.unfinished_parents = l.n THEN 'ready'::job_status ELSE j.status END,
        ready_at = CASE WHEN j.unfinished_parents = l.n THEN now() ELSE j.ready_at END
    FROM locked l WHERE j.id = l.id
    RETURNING j.id, j.workflow_id, j.status, j.attempt_id, j.action_ids
), ev_ready AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id)
    SELECT u.workflow_id, u.id, 'unblocked', 'blocked', 'ready', u.attempt_id,
           (SELECT max(run_id) FROM input), %(worker_id)s::bigint
    FROM unblocked u WHERE u.status = 'ready'
), watched AS (
    -- Actions waiting for these jobs (jobs.action_ids; NULL for almost every job, which costs nothing).
    SELECT unnest(action_ids) AS action_id, 'on_jobs_complete' AS trigger_type FROM done WHERE action_ids IS NOT NULL
    UNION ALL
    SELECT unnest(action_ids), 'on_jobs_ready' FROM unblocked WHERE status = 'ready' AND action_ids IS NOT NULL
), counted AS (
    -- Their counters move in this transaction; the one-time EXISTS filter skips the update entirely
    -- when no finished job carries action ids.
    UPDATE workflow_actions a SET reached_count = a.reached_count + w.n
    FROM (SELECT action_id, trigger_type, count(*) AS n FROM watched GROUP BY action_id, trigger_type) w
    WHERE a.id = w.action_id AND a.trigger_type = w.trigger_type AND EXISTS (SELECT 1 FROM watched)
      AND a.id = ANY (ARRAY(SELECT action_id FROM watched))  -- primary-key probes, never a scan
)
SELECT (SELECT count(*) FROM done) AS finished,
       (SELECT count(*) FROM unblocked WHERE status = 'ready') AS newly_ready,
       (SELECT coalesce(array_agg(i.job_id), '{}') FROM input i WHERE i.job_id NOT IN (SELECT id FROM done)) AS stale;

-- name: finish_failed
-- A job ended failed or terminated for good (or was canceled before it ran): result row (unless already
-- recorded), final status, event, and the cancel cascade: blocked descendants are canceled transitively,
-- except those with cancel_on_blocking_job_failure = false, which just stop waiting for the canceled/failed
-- parent. Only from %(from_status)s (running; pending_failed for a decision; blocked/ready for a cancel).
WITH done AS (
    UPDATE jobs SET status = %(status)s::job_status, return_code = %(return_code)s
    WHERE id = %(job_id)s AND status = %(from_status)s::job_status AND attempt_id = %(attempt_id)s
    RETURNING id, workflow_id, action_ids
), result AS (
    INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, started_at, completed_at,
                         exec_time_s, peak_memory_bytes, cpu_time_s, worker_id)
    SELECT workflow_id, id, %(run_id)s, %(attempt_id)s, %(return_code)s, %(attempt_status)s::job_status,
           %(started_at)s::timestamptz, coalesce(%(completed_at)s::timestamptz, now()), %(exec_time_s)s::float8, %(peak_memory_bytes)s::bigint, %(cpu_time_s)s::float8, %(worker_id)s::bigint
    FROM done WHERE %(record_result)s
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
    SELECT workflow_id, id, %(event_kind)s, %(from_status)s::job_status, %(status)s::job_status, %(attempt_id)s,
           %(run_id)s, %(worker_id)s, %(detail)s
    FROM done
), doomed AS (
    WITH RECURSIVE walk(id) AS (
        SELECT d.child_id FROM done JOIN job_dependencies d ON d.parent_id = done.id
        UNION
        SELECT d.child_id FROM walk
        JOIN jobs p ON p.id = walk.id AND p.cancel_on_blocking_job_failure AND p.status = 'blocked'
        JOIN job_dependencies d ON d.parent_id = walk.id
    )
    SELECT j.id, j.cancel_on_blocking_job_failure AS cancel FROM walk JOIN jobs j ON j.id = walk.id
    WHERE j.status = 'blocked'
    ORDER BY j.id
    FOR UPDATE OF j
), canceled AS (
    UPDATE jobs j SET status = 'canceled'
    FROM doomed WHERE j.id = doomed.id AND doomed.cancel
    RETURNING j.id, j.workflow_id, j.attempt_id, j.action_ids
), ev_canceled AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
    SELECT workflow_id, id, 'canceled', 'blocked', 'canceled', attempt_id, %(run_id)s, %(worker_id)s,
           jsonb_build_object('because_of_job', %(job_id)s::bigint)
    FROM canceled
), lost_parents AS (
    -- opt-out children: how many of their parents just ended badly (the failed job or canceled jobs)
    SELECT d.child_id AS id, count(*) AS n
    FROM job_dependencies d
    JOIN doomed c ON c.id = d.child_id AND NOT c.cancel
    WHERE d.parent_id IN (SELECT id FROM done UNION ALL SELECT id FROM doomed WHERE cancel)
    GROUP BY d.child_id
), released AS (
    UPDATE jobs j
    SET unfinished_parents = j.unfinished_parents - lp.n,
        status = CASE WHEN j.unfinished_parents = lp.n THEN 'ready'::job_status ELSE j.status END,
        ready_at = CASE WHEN j.unfinished_parents = lp.n THEN now() ELSE j.ready_at END
    FROM lost_parents lp WHERE j.id = lp.id
    RETURNING j.id, j.workflow_id, j.status, j.attempt_id, j.action_ids
), ev_released AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
    SELECT workflow_id, id, 'unblocked', 'blocked', 'ready', attempt_id, %(run_id)s, %(worker_id)s,
           jsonb_build_object('despite_failure_of_job', %(job_id)s::bigint)
    FROM released WHERE status = 'ready'
), watched AS (
    -- Actions waiting for these jobs (jobs.action_ids; NULL for almost every job, which costs nothing).
    SELECT unnest(action_ids) AS action_id, 'on_jobs_complete' AS trigger_type FROM done WHERE action_ids IS NOT NULL
    UNION ALL
    SELECT unnest(action_ids), 'on_jobs_complete' FROM canceled WHERE action_ids IS NOT NULL
    UNION ALL
    SELECT unnest(action_ids), 'on_jobs_ready' FROM released WHERE status = 'ready' AND action_ids IS NOT NULL
), counted AS (
    -- Their counters move in this transaction; the one-time EXISTS filter skips the update entirely
    -- when no finished job carries action ids.
    UPDATE workflow_actions a SET reached_count = a.reached_count + w.n
    FROM (SELECT action_id, trigger_type, count(*) AS n FROM watched GROUP BY action_id, trigger_type) w
    WHERE a.id = w.action_id AND a.trigger_type = w.trigger_type AND EXISTS (SELECT 1 FROM watched)
      AND a.id = ANY (ARRAY(SELECT action_id FROM watched))  -- primary-key probes, never a scan
)
SELECT (SELECT count(*) FROM done) AS finished,
       (SELECT count(*) FROM canceled) AS canceled,
       (SELECT count(*) FROM released WHERE status = 'ready') AS newly_ready;

-- name: finish_retry
-- A failure handler retries the job: result row (unless already recorded), ready with attempt + 1, event.
WITH done AS (
    UPDATE jobs SET status = 'ready', attempt_id = attempt_id + 1, return_code = %(return_code)s, ready_at = now()
    WHERE id = %(job_id)s AND status IN ('running', 'pending_failed') AND attempt_id = %(attempt_id)s
    RETURNING id, workflow_id
), result AS (
    INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, started_at, completed_at,
                         exec_time_s, peak_memory_bytes, cpu_time_s, worker_id)
    SELECT workflow_id, id, %(run_id)s, %(attempt_id)s, %(return_code)s, %(attempt_status)s::job_status,
           %(started_at)s::timestamptz, coalesce(%(completed_at)s::timestamptz, now()), %(exec_time_s)s::float8, %(peak_memory_bytes)s::bigint, %(cpu_time_s)s::float8, %(worker_id)s::bigint
    FROM done WHERE %(record_result)s
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
    SELECT workflow_id, id, 'retry', %(from_status)s::job_status, 'ready', %(attempt_id)s + 1, %(run_id)s,
           %(worker_id)s, %(detail)s
    FROM done
)
SELECT (SELECT count(*) FROM done) AS finished;

-- name: finish_pending_failed
-- No rule matched: pending_failed, result row, event. Dependents stay blocked.
WITH done AS (
    UPDATE jobs SET status = 'pending_failed', return_code = %(return_code)s
    WHERE id = %(job_id)s AND status = 'running' AND attempt_id = %(attempt_id)s
    RETURNING id, workflow_id
), result AS (
    INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, started_at, completed_at,
                         exec_time_s, peak_memory_bytes, cpu_time_s, worker_id)
    SELECT workflow_id, id, %(run_id)s, %(attempt_id)s, %(return_code)s, %(attempt_status)s::job_status,
           %(started_at)s::timestamptz, coalesce(%(completed_at)s::timestamptz, now()), %(exec_time_s)s::float8, %(peak_memory_bytes)s::bigint, %(cpu_time_s)s::float8, %(worker_id)s::bigint
    FROM done WHERE %(record_result)s
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
    SELECT workflow_id, id, 'pending_failed', 'running', 'pending_failed', %(attempt_id)s, %(run_id)s,
           %(worker_id)s, %(detail)s
    FROM done
)
SELECT (SELECT count(*) FROM done) AS finished;

-- name: record_attempt_result
-- The attempt ended and a recovery script will now run: keep its result; the job stays running meanwhile.
WITH job AS (
    SELECT id, workflow_id FROM jobs
    WHERE id = %(job_id)s AND status = 'running' AND attempt_id = %(attempt_id)s
), result AS (
    INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, started_at, completed_at,
                         exec_time_s, peak_memory_bytes, cpu_time_s, worker_id)
    SELECT workflow_id, id, %(run_id)s, %(attempt_id)s, %(return_code)s, %(attempt_status)s::job_status,
           %(started_at)s::timestamptz, coalesce(%(completed_at)s::timestamptz, now()), %(exec_time_s)s::float8, %(peak_memory_bytes)s::bigint, %(cpu_time_s)s::float8, %(worker_id)s::bigint
    FROM job
    RETURNING id
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, attempt_id, run_id, worker_id, detail)
    SELECT workflow_id, id, 'recovery_started', %(attempt_id)s, %(run_id)s, %(worker_id)s, %(detail)s FROM job
)
SELECT count(*) AS recorded FROM result;

-- name: release_jobs
-- A stopping worker gives back jobs it claimed but never started: ready again, same attempt.
-- IS NOT DISTINCT FROM (for a worker id, the same as =) is an operator jobs_running_idx cannot serve: the
-- jobs are found by jobs_pkey whatever the statistics say (docs/scale-notes.md §3).
WITH rel AS (
    UPDATE jobs SET status = 'ready', worker_id = NULL, started_at = NULL, ready_at = now()
    WHERE id = ANY (%(job_ids)s::bigint[]) AND status = 'running' AND worker_id IS NOT DISTINCT FROM %(worker_id)s::bigint
    RETURNING id, attempt_id
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id)
    SELECT %(workflow_id)s, id, 'released', 'running', 'ready', attempt_id,
           (SELECT run_id FROM workflows WHERE id = %(workflow_id)s), %(worker_id)s
    FROM rel
)
SELECT id FROM rel;

-- name: unacknowledged_claims
-- Jobs running under a worker that the worker does not know it holds: claimed in a transaction that
-- committed while the connection broke, so the answer never arrived. Reads only the workflow's running
-- jobs (jobs_workflow_status_idx).
SELECT id FROM jobs
WHERE worker_id = %(worker_id)s AND status = 'running' AND workflow_id = %(workflow_id)s
  AND NOT (id = ANY (%(known)s::bigint[]));

-- name: resolve_pending_failed_job
-- Lock one pending_failed job for a person's or an agent's retry/fail decision.
SELECT j.id, j.attempt_id, j.return_code, w.run_id FROM jobs j JOIN workflows w ON w.id = j.workflow_id
WHERE j.id = %(job_id)s AND j.workflow_id = %(workflow_id)s AND j.status = 'pending_failed'
FOR UPDATE OF j;

-- name: blocked_by_unrunnable
-- Ready jobs no worker here could ever run (too big), for the end-of-run summary (this worker's label only).
SELECT id, name, num_cpus, num_gpus, memory_bytes, runtime_s FROM jobs
WHERE workflow_id = %(workflow_id)s AND status = 'ready' AND label_key = %(label_key)s::text
  AND (num_cpus > %(cpus)s OR num_gpus > %(gpus)s OR memory_bytes > %(memory)s OR runtime_s > %(time_left_s)s)
ORDER BY id LIMIT 20;

-- name: ready_labels_elsewhere
-- Labels of ready jobs this worker's label does not serve (at most 5; '' is unlabeled), for `torc run`'s
-- end: a run leaves when only such jobs are left, and says which --label would run them.
SELECT DISTINCT label_key AS label FROM (
    SELECT label_key FROM jobs
    WHERE workflow_id = %(workflow_id)s AND status = 'ready' AND label_key <> %(label_key)s::text
    LIMIT 1000
) s LIMIT 5;
