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
