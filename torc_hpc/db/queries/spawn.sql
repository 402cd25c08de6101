-- Dynamic jobs: `torc jobs spawn` adds jobs to a running workflow, blocked on the job that spawns them.
-- Every statement here runs inside Database.spawn_jobs' single transaction.

-- name: set_dynamic_jobs
-- At creation: the spec's dynamic_jobs.max_iterations.
UPDATE workflows SET dynamic_max_iterations = %(max_iterations)s WHERE id = %(workflow_id)s;

-- name: lock_spawning_job
-- The caller, locked: only a running job of this workflow may spawn (the lock keeps its own finish, which
-- unblocks the spawned jobs, after this transaction).
SELECT j.id, j.name, j.status::text AS status, w.dynamic_max_iterations, w.env, w.spec, w.run_id
FROM jobs j JOIN workflows w ON w.id = j.workflow_id
WHERE j.id = %(job_id)s AND j.workflow_id = %(workflow_id)s
FOR UPDATE OF j;

-- name: jobs_by_names
-- Jobs of the workflow with these names, locked (the (workflow_id, name) index).
SELECT id, name, status::text AS status FROM jobs
WHERE workflow_id = %(workflow_id)s AND name = ANY (%(names)s::text[])
ORDER BY id
FOR UPDATE;

-- name: bump_lineage
-- Count one more spawn of a lineage (created on its first), with the state the call passed.
INSERT INTO spawn_lineages (workflow_id, lineage, iterations, state, updated_by_job)
VALUES (%(workflow_id)s, %(lineage)s, 1, %(state)s, %(job_id)s)
ON CONFLICT (workflow_id, lineage) DO UPDATE
SET iterations = spawn_lineages.iterations + 1, state = excluded.state, updated_at = now(),
    updated_by_job = excluded.updated_by_job
RETURNING iterations, converged_at;

-- name: converge_lineage
-- An empty batch: the lineage is done; keep its final state.
INSERT INTO spawn_lineages (workflow_id, lineage, iterations, state, converged_at, updated_by_job)
VALUES (%(workflow_id)s, %(lineage)s, 0, %(state)s, now(), %(job_id)s)
ON CONFLICT (workflow_id, lineage) DO UPDATE
SET state = excluded.state, converged_at = now(), updated_at = now(), updated_by_job = excluded.updated_by_job
RETURNING iterations, converged_at;

-- name: insert_spawned_jobs
-- The spawned jobs, blocked (on the caller at least), each with its event. Arrays are parallel.
WITH new AS (
    INSERT INTO jobs (id, workflow_id, name, command, status, unfinished_parents, priority, num_cpus, num_gpus,
                      num_nodes, memory_bytes, runtime_s, resource_requirements, cancel_on_blocking_job_failure, env)
    SELECT t.id, %(workflow_id)s, t.name, t.command, 'blocked', t.parents, t.priority, t.cpus, t.gpus, t.nodes,
           t.memory, t.runtime, t.rr, t.cancel, %(env)s
    FROM unnest(%(ids)s::bigint[], %(names)s::text[], %(commands)s::text[], %(parents)s::int[],
                %(priorities)s::int[], %(cpus)s::int[], %(gpus)s::int[], %(nodes)s::int[], %(memory)s::bigint[],
                %(runtime)s::int[], %(rrs)s::text[], %(cancels)s::boolean[])
         AS t(id, name, command, parents, priority, cpus, gpus, nodes, memory, runtime, rr, cancel)
    RETURNING id, name
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, to_status, attempt_id, run_id, detail)
    SELECT %(workflow_id)s, id, 'spawned', 'blocked', 1, %(run_id)s,
           jsonb_build_object('by_job', %(job_id)s::bigint, 'lineage', %(lineage)s::text,
                              'iteration', %(iteration)s::int)
    FROM new
)
SELECT id, name FROM new ORDER BY id;

-- name: insert_spawned_edges
-- Edges of the spawned jobs: from the caller, from siblings, from completed jobs they name.
INSERT INTO job_dependencies (workflow_id, parent_id, child_id)
SELECT %(workflow_id)s, p, c FROM unnest(%(parents)s::bigint[], %(children)s::bigint[]) AS e(p, c);

-- name: list_lineages
-- A workflow's spawn lineages.
SELECT lineage, iterations, state, converged_at, updated_at, updated_by_job
FROM spawn_lineages WHERE workflow_id = %(workflow_id)s ORDER BY lineage;
