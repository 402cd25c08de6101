-- Every SQL statement torc runs at run time, by name. Loaded once by torc_hpc/db/queries.py.
-- Format: a "-- name: NAME" header, then a "-- " line saying what it does, then the statement.
-- Parameters are named (%(name)s). Each transition writes its event in the same statement.

-- name: reserve_job_ids
-- Reserve a block of consecutive job ids (caller holds the create advisory lock).
SELECT setval(pg_get_serial_sequence('jobs', 'id'),
              nextval(pg_get_serial_sequence('jobs', 'id')) + %(count)s - 1) - %(count)s + 1 AS first_id;

-- name: insert_workflow
-- Create the workflow row.
INSERT INTO workflows (name, description, spec, spec_path, use_pending_failed, output_dir, working_dir)
VALUES (%(name)s, %(description)s, %(spec)s, %(spec_path)s, %(use_pending_failed)s, %(output_dir)s, %(working_dir)s)
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

-- name: status_counts
-- Job counts by status for one workflow (index-only scan on jobs_workflow_status_idx).
SELECT status::text AS status, count(*) AS n FROM jobs WHERE workflow_id = %(workflow_id)s GROUP BY status;

-- name: retry_count
-- How many retries this run has made (results of attempts > 1 plus jobs ready again).
SELECT count(*) AS n FROM events WHERE workflow_id = %(workflow_id)s AND run_id = %(run_id)s AND kind = 'retry';

-- name: list_jobs
-- Jobs of a workflow, optionally of one status, in id order.
SELECT id, name, status::text AS status, attempt_id, return_code, priority, num_cpus, num_gpus, memory_bytes,
       runtime_s, worker_id, command
FROM jobs
WHERE workflow_id = %(workflow_id)s AND (%(status)s::job_status IS NULL OR status = %(status)s::job_status)
ORDER BY id;

-- name: list_results
-- Every attempt of a workflow.
SELECT r.id, r.job_id, j.name AS job_name, r.run_id, r.attempt_id, r.status::text AS status, r.return_code,
       r.started_at, r.completed_at, r.exec_time_s, r.peak_memory_bytes, r.cpu_time_s, r.worker_id
FROM results r JOIN jobs j ON j.id = r.job_id
WHERE r.workflow_id = %(workflow_id)s
ORDER BY r.id;

-- name: list_events
-- The audit log of a workflow, oldest first, optionally only after an event id.
SELECT e.id, e.ts, e.job_id, j.name AS job_name, e.kind, e.from_status::text AS from_status,
       e.to_status::text AS to_status, e.attempt_id, e.run_id, e.worker_id, e.detail
FROM events e LEFT JOIN jobs j ON j.id = e.job_id
WHERE e.workflow_id = %(workflow_id)s AND e.id > %(after_id)s
ORDER BY e.id
LIMIT %(limit)s;

-- name: register_worker
-- A worker announces itself.
INSERT INTO workers (workflow_id, hostname, pid, slurm_job_id, num_cpus, num_gpus, memory_bytes, end_time)
VALUES (%(workflow_id)s, %(hostname)s, %(pid)s, %(slurm_job_id)s, %(num_cpus)s, %(num_gpus)s, %(memory_bytes)s,
        %(end_time)s)
RETURNING id;

-- name: heartbeat
-- Refresh a worker's heartbeat; tells it whether the workflow was canceled or it was declared lost.
UPDATE workers w SET last_heartbeat = now()
FROM workflows f
WHERE w.id = %(worker_id)s AND f.id = w.workflow_id
RETURNING f.canceled_at IS NOT NULL AS workflow_canceled, w.stopped_at IS NOT NULL AS declared_lost;

-- name: stop_worker
-- A worker leaves cleanly.
UPDATE workers SET stopped_at = now(), stop_reason = %(reason)s WHERE id = %(worker_id)s AND stopped_at IS NULL;

-- name: live_workers
-- Workers not known to have stopped (the reconciler checks each for a stale heartbeat).
SELECT id, hostname, pid, slurm_job_id, started_at, last_heartbeat, now() AS db_now
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

-- name: claim_jobs
-- Claim ready jobs that fit the worker: one statement, SKIP LOCKED so claimers never wait on each other.
-- candidates walks jobs_ready_idx in claim order; fitting keeps the prefix whose running sums fit.
WITH wf AS (
    SELECT run_id FROM workflows WHERE id = %(workflow_id)s AND canceled_at IS NULL
), candidates AS (
    SELECT id, priority, num_cpus, num_gpus, memory_bytes
    FROM jobs
    WHERE workflow_id = %(workflow_id)s AND status = 'ready'
      AND num_cpus <= %(cpus)s AND num_gpus <= %(gpus)s AND memory_bytes <= %(memory)s
      AND runtime_s <= %(time_left_s)s
      AND (%(scheduler)s::text IS NULL OR scheduler IS NULL OR scheduler = %(scheduler)s::text)
      AND EXISTS (SELECT 1 FROM wf)
    ORDER BY priority DESC, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
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
    RETURNING j.id, j.name, j.command, j.attempt_id, j.failure_handler_id, j.num_cpus, j.num_gpus,
              j.memory_bytes, j.runtime_s, j.priority, j.started_at
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id)
    SELECT %(workflow_id)s, id, 'claimed', 'ready', 'running', attempt_id, (SELECT run_id FROM wf), %(worker_id)s
    FROM claimed
)
SELECT c.*, (SELECT run_id FROM wf) AS run_id FROM claimed c ORDER BY c.priority DESC, c.id;

-- name: finish_completed
-- A job exited 0: result row, completed, event, and its blocked children lose one unfinished parent
-- (those reaching 0 turn ready in this same statement). Cost follows the job's out-degree only.
WITH done AS (
    UPDATE jobs SET status = 'completed', return_code = 0
    WHERE id = %(job_id)s AND status = 'running' AND attempt_id = %(attempt_id)s
    RETURNING id, workflow_id
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
    RETURNING j.id, j.workflow_id, j.status, j.attempt_id
), ev_ready AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id)
    SELECT workflow_id, id, 'unblocked', 'blocked', 'ready', attempt_id, %(run_id)s, %(worker_id)s
    FROM unblocked WHERE status = 'ready'
)
SELECT (SELECT count(*) FROM done) AS finished,
       (SELECT count(*) FROM unblocked WHERE status = 'ready') AS newly_ready;

-- name: finish_failed
-- A job ended failed or terminated for good: result row (unless already recorded), final status, event, and
-- the cancel cascade: blocked descendants are canceled transitively, except those with
-- cancel_on_blocking_job_failure = false, which just stop waiting for the canceled/failed parent.
WITH done AS (
    UPDATE jobs SET status = %(status)s::job_status, return_code = %(return_code)s
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
    RETURNING j.id, j.workflow_id, j.attempt_id
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
    RETURNING j.id, j.workflow_id, j.status, j.attempt_id
), ev_released AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
    SELECT workflow_id, id, 'unblocked', 'blocked', 'ready', attempt_id, %(run_id)s, %(worker_id)s,
           jsonb_build_object('despite_failure_of_job', %(job_id)s::bigint)
    FROM released WHERE status = 'ready'
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

-- name: count_running
-- Jobs currently running in a workflow.
SELECT count(*) AS n FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'running';

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

-- name: resolve_pending_failed_job
-- Lock one pending_failed job for a person's or an agent's retry/fail decision.
SELECT j.id, j.attempt_id, j.return_code, w.run_id FROM jobs j JOIN workflows w ON w.id = j.workflow_id
WHERE j.id = %(job_id)s AND j.workflow_id = %(workflow_id)s AND j.status = 'pending_failed'
FOR UPDATE OF j;

-- name: blocked_by_unrunnable
-- Ready jobs no worker here could ever run (too big), for the end-of-run summary.
SELECT id, name, num_cpus, num_gpus, memory_bytes, runtime_s FROM jobs
WHERE workflow_id = %(workflow_id)s AND status = 'ready'
  AND (num_cpus > %(cpus)s OR num_gpus > %(gpus)s OR memory_bytes > %(memory)s OR runtime_s > %(time_left_s)s)
ORDER BY id LIMIT 20;

-- name: notify_ready
-- Wake idle workers of a workflow: new jobs are ready.
SELECT pg_notify('torc_ready_' || %(workflow_id)s::text, '');

-- name: orphaned_jobs
-- Running jobs whose worker has stopped or was declared lost: the reconciler finishes them.
SELECT j.id, j.name, j.attempt_id, j.failure_handler_id, j.started_at, j.worker_id, w.run_id,
       k.slurm_job_id, k.hostname, r.return_code AS recorded_return_code
FROM jobs j
JOIN workflows w ON w.id = j.workflow_id
JOIN workers k ON k.id = j.worker_id
LEFT JOIN results r ON r.job_id = j.id AND r.run_id = w.run_id AND r.attempt_id = j.attempt_id
WHERE j.workflow_id = %(workflow_id)s AND j.status = 'running' AND k.stopped_at IS NOT NULL
ORDER BY j.id
FOR UPDATE OF j SKIP LOCKED;

-- name: insert_slurm_scheduler
-- Store one allocation shape from the spec.
INSERT INTO slurm_schedulers (workflow_id, name, account, partition, walltime_s, nodes, cpus_per_node, mem, qos, gres, extra)
VALUES (%(workflow_id)s, %(name)s, %(account)s, %(partition)s, %(walltime_s)s, %(nodes)s, %(cpus_per_node)s, %(mem)s,
        %(qos)s, %(gres)s, %(extra)s);

-- name: list_slurm_schedulers
-- The workflow's allocation shapes.
SELECT name, account, partition, walltime_s, nodes, cpus_per_node, mem, qos, gres, extra
FROM slurm_schedulers WHERE workflow_id = %(workflow_id)s ORDER BY name;

-- name: waiting_work_by_scheduler
-- What is left to run, per scheduler: counts and the largest request (sizes new allocations).
SELECT scheduler, count(*) AS jobs, sum(num_cpus) AS cpus, max(num_cpus) AS max_cpus,
       sum(memory_bytes) AS memory_bytes, max(memory_bytes) AS max_memory_bytes, max(runtime_s) AS max_runtime_s,
       max(num_gpus) AS max_gpus, max(num_nodes) AS max_nodes,
       count(*) FILTER (WHERE status = 'ready') AS ready
FROM jobs
WHERE workflow_id = %(workflow_id)s AND status IN ('ready', 'blocked')
GROUP BY scheduler;

-- name: insert_allocation
-- Record an allocation before sbatch runs (so a crash never leaves an unrecorded Slurm job).
INSERT INTO allocations (workflow_id, scheduler, account, partition, nodes, cpus_per_node, mem, walltime_s,
                         sbatch_args, submitted_by, reason)
VALUES (%(workflow_id)s, %(scheduler)s, %(account)s, %(partition)s, %(nodes)s, %(cpus_per_node)s, %(mem)s,
        %(walltime_s)s, %(sbatch_args)s, %(submitted_by)s, %(reason)s)
RETURNING id;

-- name: allocation_submitted
-- sbatch answered with a job id.
UPDATE allocations SET slurm_job_id = %(slurm_job_id)s, script_path = %(script_path)s, state = 'pending'
WHERE id = %(id)s;

-- name: allocation_submit_failed
-- sbatch refused; keep its message and the script.
UPDATE allocations SET state = 'submit_failed', error = %(error)s, script_path = %(script_path)s, ended_at = now()
WHERE id = %(id)s;

-- name: active_allocations
-- Allocations not known to have ended (the watcher and the reconciler ask Slurm about these).
SELECT id, slurm_job_id, state, scheduler, submitted_at, started_at FROM allocations
WHERE workflow_id = %(workflow_id)s AND state IN ('pending', 'running', 'unknown') AND slurm_job_id IS NOT NULL;

-- name: update_allocation_state
-- Store what squeue or sacct said.
UPDATE allocations
SET state = %(state)s, sacct_state = coalesce(%(sacct_state)s, sacct_state), exit_code = coalesce(%(exit_code)s, exit_code),
    started_at = coalesce(%(started_at)s, started_at), ended_at = coalesce(%(ended_at)s, ended_at), checked_at = now()
WHERE slurm_job_id = %(slurm_job_id)s
RETURNING id, state;

-- name: list_allocations
-- Every allocation of a workflow, newest last.
SELECT id, slurm_job_id, scheduler, state, sacct_state, exit_code, account, partition, nodes, cpus_per_node, mem,
       walltime_s, submitted_by, reason, error, submitted_at, started_at, ended_at, script_path
FROM allocations WHERE workflow_id = %(workflow_id)s ORDER BY id;

-- name: allocation_by_slurm_id
-- One allocation by its Slurm job id.
SELECT id, workflow_id, scheduler, state FROM allocations WHERE slurm_job_id = %(slurm_job_id)s;

-- name: allocation_started
-- A worker started inside the allocation: fills in the Slurm id even if the submitter died before
-- recording it.
UPDATE allocations
SET slurm_job_id = coalesce(slurm_job_id, %(slurm_job_id)s), started_at = coalesce(started_at, now()),
    state = CASE WHEN state IN ('pending', 'unknown') THEN 'running' ELSE state END
WHERE id = %(id)s AND workflow_id = %(workflow_id)s;

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
-- jobs_ready_retry_idx, so the cost follows the retries waiting, not the workflow's size.
SELECT
    (SELECT count(*) FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'ready' AND attempt_id > 1)
        AS ready_retries,
    (SELECT min(ready_at) FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'ready' AND attempt_id > 1)
        AS oldest_retry_ready_at,
    (SELECT count(*) FROM allocations WHERE workflow_id = %(workflow_id)s AND state IN ('pending', 'running', 'unknown'))
        AS active_allocations,
    (SELECT count(*) FROM allocations WHERE workflow_id = %(workflow_id)s AND state IN ('pending', 'unknown'))
        AS pending_allocations;

-- name: ready_cpu_seconds
-- The ready work in CPU-seconds (sizes new allocations; read only when the watcher submits).
SELECT coalesce(sum(num_cpus::bigint * runtime_s), 0) AS cpu_seconds
FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'ready';

-- name: unjudged_allocations
-- Allocations whose outcome the back-off has not counted yet and that can be judged now.
SELECT a.id, a.slurm_job_id, a.state, a.sacct_state, a.error, a.started_at, a.ended_at,
       (SELECT count(*) FROM workers w WHERE w.slurm_job_id = a.slurm_job_id) AS workers
FROM allocations a
WHERE a.workflow_id = %(workflow_id)s AND a.outcome IS NULL
ORDER BY a.id;

-- name: judge_allocation
-- Record the back-off's judgement of an allocation.
UPDATE allocations SET outcome = %(outcome)s WHERE id = %(id)s AND outcome IS NULL;

-- name: workflows_with_work
-- Workflows the cron watcher should look at: not canceled, with jobs left or allocations alive.
SELECT w.id FROM workflows w
WHERE w.canceled_at IS NULL
  AND (EXISTS (SELECT 1 FROM jobs j WHERE j.workflow_id = w.id AND j.status IN ('ready', 'blocked', 'running'))
       OR EXISTS (SELECT 1 FROM allocations a WHERE a.workflow_id = w.id AND a.state IN ('pending', 'running', 'unknown')))
ORDER BY w.id;

-- name: recoverable_jobs
-- Failed or terminated jobs with their last attempt, for --recover to classify.
SELECT j.id, j.name, j.status::text AS status, j.return_code, j.memory_bytes, j.runtime_s,
       r.peak_memory_bytes, r.exec_time_s
FROM jobs j
LEFT JOIN LATERAL (
    SELECT peak_memory_bytes, exec_time_s FROM results
    WHERE job_id = j.id ORDER BY id DESC LIMIT 1) r ON true
WHERE j.workflow_id = %(workflow_id)s AND j.status IN ('failed', 'terminated')
ORDER BY j.id;

-- name: resize_job
-- --recover gives a job more memory or runtime.
UPDATE jobs SET memory_bytes = %(memory_bytes)s, runtime_s = %(runtime_s)s WHERE id = %(job_id)s;

-- name: unacknowledged_claims
-- Jobs running under a worker that the worker does not know it holds: claimed in a transaction that
-- committed while the connection broke, so the answer never arrived. Reads only the workflow's running
-- jobs (jobs_workflow_status_idx).
SELECT id FROM jobs
WHERE worker_id = %(worker_id)s AND status = 'running' AND workflow_id = %(workflow_id)s
  AND NOT (id = ANY (%(known)s::bigint[]));

-- name: release_jobs
-- A stopping worker gives back jobs it claimed but never started: ready again, same attempt.
WITH rel AS (
    UPDATE jobs SET status = 'ready', worker_id = NULL, started_at = NULL, ready_at = now()
    WHERE id = ANY (%(job_ids)s::bigint[]) AND status = 'running' AND worker_id = %(worker_id)s
    RETURNING id, attempt_id
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id)
    SELECT %(workflow_id)s, id, 'released', 'running', 'ready', attempt_id,
           (SELECT run_id FROM workflows WHERE id = %(workflow_id)s), %(worker_id)s
    FROM rel
)
SELECT id FROM rel;

-- name: finish_completed_batch
-- finish_completed for many jobs in one statement (the worker's common case: a batch of exits 0).
-- Arrays are parallel: one element per job. Returns the ids that were no longer ours (stale).
WITH input AS (
    SELECT * FROM unnest(%(job_ids)s::bigint[], %(run_ids)s::int[], %(attempt_ids)s::int[],
                         %(started)s::timestamptz[], %(completed)s::timestamptz[], %(exec_time)s::float8[],
                         %(peak_memory)s::bigint[], %(cpu_time)s::float8[])
        AS t(job_id, run_id, attempt_id, started_at, completed_at, exec_time_s, peak_memory_bytes, cpu_time_s)
), done AS (
    UPDATE jobs j SET status = 'completed', return_code = 0
    FROM input i
    WHERE j.id = i.job_id AND j.status = 'running' AND j.attempt_id = i.attempt_id
    RETURNING j.id, j.workflow_id, i.run_id, i.attempt_id, i.started_at, i.completed_at, i.exec_time_s,
              i.peak_memory_bytes, i.cpu_time_s
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
    RETURNING j.id, j.workflow_id, j.status, j.attempt_id
), ev_ready AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id)
    SELECT u.workflow_id, u.id, 'unblocked', 'blocked', 'ready', u.attempt_id,
           (SELECT max(run_id) FROM input), %(worker_id)s::bigint
    FROM unblocked u WHERE u.status = 'ready'
)
SELECT (SELECT count(*) FROM done) AS finished,
       (SELECT count(*) FROM unblocked WHERE status = 'ready') AS newly_ready,
       (SELECT coalesce(array_agg(i.job_id), '{}') FROM input i WHERE i.job_id NOT IN (SELECT id FROM done)) AS stale;
