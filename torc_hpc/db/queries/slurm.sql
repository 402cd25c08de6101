-- Slurm: allocation shapes from the spec, the allocations torc submitted and their states.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: insert_slurm_scheduler
-- Store one allocation shape from the spec.
INSERT INTO slurm_schedulers (workflow_id, name, account, partition, walltime_s, nodes, cpus_per_node, mem, qos, gres, extra,
                              tmp, ntasks_per_node, serialize_allocations)
VALUES (%(workflow_id)s, %(name)s, %(account)s, %(partition)s, %(walltime_s)s, %(nodes)s, %(cpus_per_node)s, %(mem)s,
        %(qos)s, %(gres)s, %(extra)s, %(tmp)s, %(ntasks_per_node)s, %(serialize_allocations)s);

-- name: list_slurm_schedulers
-- The workflow's allocation shapes.
SELECT name, account, partition, walltime_s, nodes, cpus_per_node, mem, qos, gres, extra, tmp, ntasks_per_node,
       serialize_allocations
FROM slurm_schedulers WHERE workflow_id = %(workflow_id)s ORDER BY name;

-- name: workflow_slurm_defaults
-- sbatch options the spec applies to every allocation of the workflow (slurm_defaults).
SELECT slurm_defaults FROM workflows WHERE id = %(workflow_id)s;

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
-- sbatch answered with a job id (unique per Slurm cluster).
UPDATE allocations SET slurm_job_id = %(slurm_job_id)s, slurm_cluster = %(slurm_cluster)s,
                       script_path = %(script_path)s, state = 'pending'
WHERE id = %(id)s;

-- name: allocation_args
-- The sbatch arguments an allocation's script was rendered with.
UPDATE allocations SET sbatch_args = %(sbatch_args)s WHERE id = %(id)s;

-- name: allocation_submit_failed
-- sbatch refused; keep its message and the script.
UPDATE allocations SET state = 'submit_failed', error = %(error)s, script_path = %(script_path)s, ended_at = now()
WHERE id = %(id)s;

-- name: active_allocations
-- The workflow's own allocations not known to have ended (what `slurm cancel` / `workflows cancel` scancel).
-- A packed allocation that also serves other workflows is left alone: its worker stops serving a canceled
-- workflow by itself.
SELECT a.id, a.slurm_job_id, a.state, a.scheduler, a.submitted_at, a.started_at FROM allocations a
WHERE a.workflow_id = %(workflow_id)s AND a.state IN ('pending', 'running', 'unknown') AND a.slurm_job_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM allocation_workflows m WHERE m.allocation_id = a.id AND m.workflow_id <> a.workflow_id);

-- name: update_allocation_states
-- Store what squeue and sacct said about many allocations at once (one statement per refresh). Only
-- allocations not known to have ended change; unknown_since is set on the first check at which neither
-- knew the allocation, kept while that lasts, and cleared when one of them knows it again.
UPDATE allocations a
SET state = u.state, sacct_state = coalesce(u.sacct_state, a.sacct_state), exit_code = coalesce(u.exit_code, a.exit_code),
    started_at = coalesce(u.started_at, a.started_at), ended_at = coalesce(u.ended_at, a.ended_at), checked_at = now(),
    unknown_since = CASE WHEN u.state = 'unknown' THEN coalesce(a.unknown_since, now()) END
FROM unnest(%(slurm_job_ids)s::text[], %(states)s::text[], %(sacct_states)s::text[], %(exit_codes)s::text[],
            %(started_at)s::timestamptz[], %(ended_at)s::timestamptz[])
     AS u (slurm_job_id, state, sacct_state, exit_code, started_at, ended_at)
WHERE a.slurm_job_id = u.slurm_job_id AND a.state IN ('pending', 'running', 'unknown')
RETURNING a.id, a.workflow_id, a.slurm_job_id, a.state, a.unknown_since, now() AS db_now;

-- name: end_vanished_allocations
-- End allocations that neither squeue nor sacct has known for the grace period (cause unknown; the
-- allocation keeps unknown_since, which marks how it ended).
UPDATE allocations SET state = 'ended', ended_at = now(), error = %(why)s, checked_at = now()
WHERE id = ANY (%(ids)s::bigint[]) AND state = 'unknown'
RETURNING id, workflow_id, slurm_job_id, unknown_since;

-- name: cluster_slurm_ids
-- The Slurm jobs to ask about for these workflows (the watcher's pass, or one workflow's refresh): their
-- active allocations (allocations_active_idx), packed ones that serve them (allocation_workflows_workflow_idx),
-- and the allocations their live workers run in (workers_live_idx).
SELECT slurm_job_id FROM allocations
WHERE workflow_id = ANY (%(workflow_ids)s::bigint[]) AND state IN ('pending', 'running', 'unknown')
  AND slurm_job_id IS NOT NULL
UNION
SELECT a.slurm_job_id FROM allocation_workflows m JOIN allocations a ON a.id = m.allocation_id
WHERE m.workflow_id = ANY (%(workflow_ids)s::bigint[]) AND a.state IN ('pending', 'running', 'unknown')
  AND a.slurm_job_id IS NOT NULL
UNION
SELECT slurm_job_id FROM workers
WHERE workflow_id = ANY (%(workflow_ids)s::bigint[]) AND stopped_at IS NULL AND slurm_job_id IS NOT NULL;

-- name: list_allocations
-- Every allocation of a workflow, newest last: its own, and packed ones that served it too (`workflows`
-- lists what a packed allocation serves; NULL for an allocation of one workflow).
WITH ids AS (
    SELECT id FROM allocations WHERE workflow_id = %(workflow_id)s
    UNION
    SELECT allocation_id FROM allocation_workflows WHERE workflow_id = %(workflow_id)s)
SELECT a.id, a.slurm_job_id, a.scheduler, a.state, a.sacct_state, a.exit_code, a.account, a.partition, a.nodes,
       a.cpus_per_node, a.mem, a.walltime_s, a.submitted_by, a.reason, a.error, a.submitted_at, a.started_at,
       a.ended_at, a.script_path,
       (SELECT array_agg(m.workflow_id ORDER BY m.workflow_id) FROM allocation_workflows m
        WHERE m.allocation_id = a.id) AS workflows
FROM allocations a JOIN ids ON ids.id = a.id
ORDER BY a.id;

-- name: insert_allocation_workflows
-- The workflows a packed allocation serves (recorded with the allocation, before sbatch runs).
INSERT INTO allocation_workflows (allocation_id, workflow_id)
SELECT %(allocation_id)s, unnest(%(workflow_ids)s::bigint[]);

-- name: pending_allocations_by_owner
-- Allocations queued in Slurm (pending, or unknown: not known to have started), per owner: the watcher's
-- caps count these (allocations_active_idx).
SELECT w.owner, count(*) AS pending
FROM allocations a JOIN workflows w ON w.id = a.workflow_id
WHERE a.state IN ('pending', 'unknown')
GROUP BY w.owner;

-- name: allocation_by_slurm_id
-- One allocation by its Slurm job id.
SELECT id, workflow_id, scheduler, state FROM allocations WHERE slurm_job_id = %(slurm_job_id)s;

-- name: allocation_started
-- A worker started inside the allocation: fills in the Slurm id even if the submitter died before
-- recording it. The worker names one of the workflows it serves (a packed allocation's member will do).
UPDATE allocations
SET slurm_job_id = coalesce(slurm_job_id, %(slurm_job_id)s), started_at = coalesce(started_at, now()),
    state = CASE WHEN state IN ('pending', 'unknown') THEN 'running' ELSE state END
WHERE id = %(id)s
  AND (workflow_id = %(workflow_id)s
       OR EXISTS (SELECT 1 FROM allocation_workflows m WHERE m.allocation_id = %(id)s AND m.workflow_id = %(workflow_id)s));
