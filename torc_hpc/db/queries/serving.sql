-- What a worker asks while it serves one or several workflows of its owner (`torc worker --workflows 3,7,9`,
-- `torc worker --all-mine`). A worker has one row in `workers` per workflow it serves (all with the same
-- host, pid and token); its statements name those rows in parallel arrays, %(workflow_ids)s and %(worker_ids)s.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: claim_jobs_multi
-- claim_jobs over several workflows of one owner, in one statement, fairly: each workflow offers the jobs of
-- its head that fit (at most %(window)s entries of jobs_ready_idx in claim order, NULL: all; at most %(limit)s
-- offers), and the offers are taken round-robin: every workflow's first, then every workflow's second, ...,
-- starting at a different workflow on each claim (%(rotate)s). Each job is claimed for the worker's row of its
-- own workflow; only jobs with the worker's label (NULL: unlabeled ones). Keep in step with claim_jobs
-- (jobs.sql), which serves one workflow.
WITH served AS (
    SELECT s.workflow_id, s.worker_id, w.run_id,
           (s.ord + %(rotate)s) %% cardinality(%(workflow_ids)s::bigint[]) AS turn
    FROM unnest(%(workflow_ids)s::bigint[], %(worker_ids)s::bigint[]) WITH ORDINALITY AS s(workflow_id, worker_id, ord)
    JOIN workflows w ON w.id = s.workflow_id AND w.canceled_at IS NULL
), offers AS (
    SELECT s.workflow_id, s.worker_id, s.run_id, s.turn, h.tid, h.id, h.priority
    FROM served s
    CROSS JOIN LATERAL (
        SELECT head.tid, head.id, head.priority
        FROM (SELECT ctid AS tid, id, priority, num_cpus, num_gpus, memory_bytes, runtime_s, scheduler
              FROM jobs
              WHERE workflow_id = s.workflow_id AND status = 'ready'
                AND label_key = %(label_key)s::text
              ORDER BY priority DESC, id
              LIMIT %(window)s) head
        WHERE head.num_cpus <= %(cpus)s AND head.num_gpus <= %(gpus)s AND head.memory_bytes <= %(memory)s
          AND head.num_cpus <= %(job_cpus)s AND head.num_gpus <= %(job_gpus)s AND head.memory_bytes <= %(job_memory)s
          AND head.runtime_s <= %(time_left_s)s
          AND (%(scheduler)s::text IS NULL OR head.scheduler IS NULL OR head.scheduler = %(scheduler)s::text)
        LIMIT %(limit)s
    ) h
), ranked AS (
    SELECT o.*, row_number() OVER (PARTITION BY o.workflow_id ORDER BY o.priority DESC, o.id) AS k FROM offers o
), candidates AS (
    SELECT j.id, r.worker_id, r.run_id, r.k, r.turn, j.num_cpus, j.num_gpus, j.memory_bytes
    FROM ranked r JOIN jobs j ON j.ctid = r.tid
    WHERE j.status = 'ready'
    ORDER BY r.k, r.turn
    LIMIT %(limit)s
    FOR UPDATE OF j SKIP LOCKED
), fitting AS (
    SELECT id, worker_id, run_id FROM (
        SELECT id, worker_id, run_id,
               sum(num_cpus) OVER w AS cpus, sum(num_gpus) OVER w AS gpus, sum(memory_bytes) OVER w AS mem
        FROM candidates
        WINDOW w AS (ORDER BY k, turn)
    ) s
    WHERE cpus <= %(cpus)s AND gpus <= %(gpus)s AND mem <= %(memory)s
), claimed AS (
    UPDATE jobs j SET status = 'running', worker_id = f.worker_id, started_at = now(), return_code = NULL
    FROM fitting f WHERE j.id = f.id
    RETURNING j.id, j.workflow_id, j.name, j.command, j.attempt_id, j.failure_handler_id, j.num_cpus, j.num_gpus,
              j.memory_bytes, j.runtime_s, j.priority, j.started_at, j.interrupted_attempts, f.run_id, f.worker_id AS claimed_by,
              j.invocation_script, j.env, j.stdio_mode, j.delete_stdio_on_success,
              EXISTS (SELECT 1 FROM job_dependencies d WHERE d.parent_id = j.id) AS has_children
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id)
    SELECT workflow_id, id, 'claimed', 'ready', 'running', attempt_id, run_id, claimed_by
    FROM claimed
)
SELECT c.*,
       CASE WHEN %(with_outputs)s::bool THEN (
           SELECT array_agg(ARRAY[f.name, f.path] ORDER BY f.name) FROM job_files jf JOIN files f ON f.id = jf.file_id
           WHERE jf.job_id = c.id AND jf.direction = 'output') END AS outputs
FROM claimed c ORDER BY c.priority DESC, c.id;

-- name: heartbeat_many
-- Refresh a worker's heartbeat on all its rows at once; per workflow, whether it was canceled (or is being
-- deleted) and whether this row was declared lost.
UPDATE workers w SET last_heartbeat = now()
FROM workflows f
WHERE w.id = ANY (%(worker_ids)s::bigint[]) AND f.id = w.workflow_id
RETURNING w.workflow_id, f.canceled_at IS NOT NULL AS workflow_canceled, w.stopped_at IS NOT NULL AS declared_lost;

-- name: idle_probe_many
-- idle_probe (workers.sql) for a worker serving several workflows: a running job in any of them, a ready one in
-- any of them for the worker's label (jobs_running_workflow_idx, and the head of jobs_ready_idx per workflow:
-- one descent each, also under row-level security), and which of them are canceled or gone.
SELECT EXISTS (SELECT 1 FROM jobs WHERE workflow_id = ANY (%(workflow_ids)s::bigint[]) AND status = 'running'
                                     AND started_at IS NOT NULL) AS running,
       EXISTS (SELECT 1 FROM unnest(%(workflow_ids)s::bigint[]) AS x(id)
               CROSS JOIN LATERAL (SELECT 1 FROM jobs WHERE workflow_id = x.id AND status = 'ready'
                                                      AND label_key = %(label_key)s::text
                                   ORDER BY priority DESC, id LIMIT 1) head) AS ready,
       ARRAY(SELECT x FROM unnest(%(workflow_ids)s::bigint[]) x
             WHERE NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = x AND w.canceled_at IS NULL)) AS canceled;

-- name: my_workflows_with_ready_jobs
-- `torc worker --all-mine`: the caller's own workflows (owner = current_user, whatever else row-level
-- security lets it read) that have a ready job for the worker's label, oldest first (workflows_owner_idx, then
-- one probe of jobs_ready_idx per workflow), leaving out those it serves already.
SELECT w.id FROM workflows w
WHERE w.owner = current_user AND w.canceled_at IS NULL AND w.deleting_at IS NULL
  AND NOT (w.id = ANY (%(serving)s::bigint[]))
  AND (SELECT true FROM jobs j WHERE j.workflow_id = w.id AND j.status = 'ready'
                                    AND j.label_key = %(label_key)s::text
       ORDER BY j.priority DESC, j.id LIMIT 1) IS NOT NULL
ORDER BY w.id
LIMIT %(limit)s;

-- name: not_my_workflows
-- Of the workflows a worker was asked to serve, those that do not exist or are not the caller's own (a
-- worker serves only its owner's workflows, whatever else row-level security lets the role read).
SELECT x AS id FROM unnest(%(workflow_ids)s::bigint[]) x
WHERE NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = x AND w.owner = current_user);
