-- torc-hpc schema, migration 0005: one database for a whole cluster.
--
-- Every workflow records its owner (the PostgreSQL role that created it, `current_user`, never a value the
-- client sends), and row-level security lets a role see and change only its own workflows' rows. Roles
-- that `torc db grant ROLE --watcher` or `--admin` recorded in torc_grants also read every owner's rows;
-- what they may change is decided by column privileges (torc_hpc/db/grants.py) plus the write policies
-- below. The table owner (whoever ran the migrations: the embedded server's user, a single-user setup) is
-- not subject to RLS and needs no grant: single-user setups work exactly as before.
--
-- ==== THE PATTERN EVERY LATER MIGRATION FOLLOWS for a table that holds workflow data ====================
-- (tests/security/test_schema_rls.py fails for a table with a workflow_id column and no RLS or no policy)
--
--   ALTER TABLE t ENABLE ROW LEVEL SECURITY;
--   CREATE POLICY t_read ON t FOR SELECT
--       USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = t.workflow_id));
--   COMMENT ON POLICY t_read ON t IS 'Rows of workflows the role may see (its own; every owner''s for watchers and admins).';
--   CREATE POLICY t_owner ON t
--       USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = t.workflow_id AND w.owner = current_user))
--       WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = t.workflow_id AND w.owner = current_user));
--   COMMENT ON POLICY t_owner ON t IS 'The workflow''s owner reads and writes its rows.';
--   -- only if the cluster watcher must write it (default: it may not):
--   CREATE POLICY t_watcher ON t FOR INSERT WITH CHECK ((SELECT torc_granted('watcher')));
--   -- and give the watcher the columns in torc_hpc/db/grants.py (WATCHER_WRITES).
--
-- The subquery on workflows is itself filtered by workflows' policies, so "visible workflow" means the
-- same thing everywhere. Plain users get SELECT/INSERT/UPDATE/DELETE on every table automatically (every
-- column but `owner` and `workflow_id`); `torc db migrate` re-applies the grants of every role in
-- torc_grants after new migrations, so a new table is usable without re-granting. A hot table (millions of
-- rows, touched on every claim) may carry `owner text NOT NULL DEFAULT current_user` itself, as jobs and
-- job_dependencies do below, so its policies compare a column instead of probing workflows per row.
-- ========================================================================================================

-- ---- who may use this database, and as what -------------------------------------------------------------
CREATE TABLE torc_grants (
    role       name        PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('user', 'watcher', 'admin')),
    granted_at timestamptz NOT NULL DEFAULT now(),
    granted_by name        NOT NULL DEFAULT current_user
);
COMMENT ON TABLE torc_grants IS 'Roles allowed to use torc on this database (`torc db grant ROLE [--admin|--watcher]`). Per database: the same role may be a user here and nothing in another torc database on the server.';
COMMENT ON COLUMN torc_grants.role IS 'PostgreSQL role name.';
COMMENT ON COLUMN torc_grants.kind IS 'user: its own workflows only; watcher: reads every owner''s workflows, records allocations, watch state and events, resizes and resets jobs; admin: reads everything, may cancel anything.';
COMMENT ON COLUMN torc_grants.granted_at IS 'When the grant was made.';
COMMENT ON COLUMN torc_grants.granted_by IS 'Who made it (the database owner).';

-- Whether the current role holds one of these grant kinds here. Policies call it as (SELECT torc_granted(...)),
-- an InitPlan: evaluated once per statement, never per row.
CREATE FUNCTION torc_granted(VARIADIC kinds text[]) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT EXISTS (SELECT 1 FROM torc_grants g WHERE g.role = current_user AND g.kind = ANY (kinds)) $$;
COMMENT ON FUNCTION torc_granted(text[]) IS 'True when current_user holds one of the given torc grant kinds in this database (see torc_grants).';

-- Job ids are reserved in blocks for COPY; setval needs UPDATE on the sequence, which would let any user
-- move it backwards and collide with everyone's ids. This runs as the table owner, forward only, bounded.
CREATE FUNCTION torc_reserve_job_ids(n bigint) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT setval(pg_get_serial_sequence('public.jobs', 'id'),
                  nextval(pg_get_serial_sequence('public.jobs', 'id')) + n - 1) - n + 1
    WHERE n BETWEEN 1 AND 100000000
$$;
COMMENT ON FUNCTION torc_reserve_job_ids(bigint) IS 'Reserve n (1..1e8) consecutive job ids; returns the first. Runs as the schema owner so users need no UPDATE on the sequence.';
REVOKE ALL ON FUNCTION torc_reserve_job_ids(bigint) FROM PUBLIC;

-- ---- owners ---------------------------------------------------------------------------------------------
-- Existing rows belong to whoever runs this migration (the single user of a laptop database).
ALTER TABLE workflows ADD COLUMN owner text NOT NULL DEFAULT current_user;
COMMENT ON COLUMN workflows.owner IS 'PostgreSQL role that created the workflow (current_user at creation; users have no privilege on this column). Row-level security keys on it; the cluster watcher submits allocations as the Unix user of this name.';
CREATE INDEX workflows_owner_idx ON workflows (owner, id);

-- Denormalized onto the two tables written only at creation (by the owner, so the default is right) and
-- read on every claim and completion: their policies compare a column instead of probing workflows.
ALTER TABLE jobs ADD COLUMN owner text NOT NULL DEFAULT current_user;
COMMENT ON COLUMN jobs.owner IS 'Owner of the workflow (copied at creation for row-level security on the hot path).';
ALTER TABLE job_dependencies ADD COLUMN owner text NOT NULL DEFAULT current_user;
COMMENT ON COLUMN job_dependencies.owner IS 'Owner of the workflow (copied at creation for row-level security).';

-- ---- per-worker token (leftover-process cleanup touches only this worker of this database) -------------
ALTER TABLE workers ADD COLUMN token text;
COMMENT ON COLUMN workers.token IS 'Random token in the environment of every job the worker starts (TORC_WORKER_TOKEN); the cleanup after a lost worker kills only processes carrying it.';

-- ---- Slurm job ids are unique per cluster, not globally -----------------------------------------------
ALTER TABLE allocations ADD COLUMN slurm_cluster text;
COMMENT ON COLUMN allocations.slurm_cluster IS 'Slurm ClusterName the allocation was submitted to (job ids are unique only within a cluster; NULL when unknown).';
ALTER TABLE allocations DROP CONSTRAINT allocations_slurm_job_id_key;
CREATE UNIQUE INDEX allocations_cluster_job_idx ON allocations (slurm_cluster, slurm_job_id);
CREATE INDEX allocations_slurm_job_idx ON allocations (slurm_job_id) WHERE slurm_job_id IS NOT NULL;

-- ---- row-level security ---------------------------------------------------------------------------------
-- workflows: the owner does anything with its own; watchers and admins read all; watchers may bump the
-- run (reset) and admins may cancel (columns: grants.py).
ALTER TABLE workflows ENABLE ROW LEVEL SECURITY;
CREATE POLICY workflows_read ON workflows FOR SELECT
    USING (owner = current_user OR (SELECT torc_granted('watcher', 'admin')));
COMMENT ON POLICY workflows_read ON workflows IS 'A role sees its own workflows; watchers and admins see every owner''s.';
CREATE POLICY workflows_owner ON workflows
    USING (owner = current_user) WITH CHECK (owner = current_user);
COMMENT ON POLICY workflows_owner ON workflows IS 'The owner creates, changes and deletes its own workflows (owner is current_user: the column default; users cannot write the column).';
CREATE POLICY workflows_watcher ON workflows FOR UPDATE
    USING ((SELECT torc_granted('watcher'))) WITH CHECK ((SELECT torc_granted('watcher')));
COMMENT ON POLICY workflows_watcher ON workflows IS 'The cluster watcher resets jobs (run_id, canceled_at; no other column is granted to it).';
CREATE POLICY workflows_admin_cancel ON workflows FOR UPDATE
    USING ((SELECT torc_granted('admin'))) WITH CHECK ((SELECT torc_granted('admin')) AND canceled_at IS NOT NULL);
COMMENT ON POLICY workflows_admin_cancel ON workflows IS 'An admin may cancel any workflow (set canceled_at), nothing else.';

-- jobs (hot: claims, completions): policies compare the denormalized owner.
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_read ON jobs FOR SELECT
    USING (owner = current_user OR (SELECT torc_granted('watcher', 'admin')));
COMMENT ON POLICY jobs_read ON jobs IS 'A role sees the jobs of its own workflows; watchers and admins see every owner''s.';
CREATE POLICY jobs_owner_insert ON jobs FOR INSERT
    WITH CHECK (owner = current_user
                AND EXISTS (SELECT 1 FROM workflows w WHERE w.id = jobs.workflow_id AND w.owner = current_user));
COMMENT ON POLICY jobs_owner_insert ON jobs IS 'Jobs are added only to a workflow of one''s own, owned by oneself.';
CREATE POLICY jobs_owner_update ON jobs FOR UPDATE
    USING (owner = current_user) WITH CHECK (owner = current_user);
COMMENT ON POLICY jobs_owner_update ON jobs IS 'The owner (its CLI and its workers) changes its own jobs.';
CREATE POLICY jobs_owner_delete ON jobs FOR DELETE USING (owner = current_user);
COMMENT ON POLICY jobs_owner_delete ON jobs IS 'The owner deletes its own jobs.';
CREATE POLICY jobs_watcher ON jobs FOR UPDATE
    USING ((SELECT torc_granted('watcher'))) WITH CHECK ((SELECT torc_granted('watcher')));
COMMENT ON POLICY jobs_watcher ON jobs IS 'The cluster watcher finishes orphaned jobs, resizes (memory, runtime) and resets them; it holds no privilege on command or any other column that decides what runs.';
CREATE POLICY jobs_admin_cancel ON jobs FOR UPDATE
    USING ((SELECT torc_granted('admin'))) WITH CHECK ((SELECT torc_granted('admin')) AND status = 'canceled');
COMMENT ON POLICY jobs_admin_cancel ON jobs IS 'An admin may cancel any job (status canceled), nothing else.';

ALTER TABLE job_dependencies ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_dependencies_read ON job_dependencies FOR SELECT
    USING (owner = current_user OR (SELECT torc_granted('watcher', 'admin')));
COMMENT ON POLICY job_dependencies_read ON job_dependencies IS 'A role sees the edges of its own workflows; watchers and admins see every owner''s.';
CREATE POLICY job_dependencies_owner_insert ON job_dependencies FOR INSERT
    WITH CHECK (owner = current_user
                AND EXISTS (SELECT 1 FROM workflows w WHERE w.id = job_dependencies.workflow_id AND w.owner = current_user));
COMMENT ON POLICY job_dependencies_owner_insert ON job_dependencies IS 'Edges are added only to a workflow of one''s own.';
CREATE POLICY job_dependencies_owner_delete ON job_dependencies FOR DELETE USING (owner = current_user);
COMMENT ON POLICY job_dependencies_owner_delete ON job_dependencies IS 'The owner deletes its own edges.';

-- The tables below follow the pattern at the top of this file.
ALTER TABLE failure_handlers ENABLE ROW LEVEL SECURITY;
CREATE POLICY failure_handlers_read ON failure_handlers FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = failure_handlers.workflow_id));
COMMENT ON POLICY failure_handlers_read ON failure_handlers IS 'Rows of workflows the role may see.';
CREATE POLICY failure_handlers_owner ON failure_handlers
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = failure_handlers.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = failure_handlers.workflow_id AND w.owner = current_user));
COMMENT ON POLICY failure_handlers_owner ON failure_handlers IS 'The workflow''s owner reads and writes its rows.';

-- failure_handler_rules has no workflow_id: it follows its handler.
ALTER TABLE failure_handler_rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY failure_handler_rules_read ON failure_handler_rules FOR SELECT
    USING (EXISTS (SELECT 1 FROM failure_handlers h WHERE h.id = failure_handler_rules.handler_id));
COMMENT ON POLICY failure_handler_rules_read ON failure_handler_rules IS 'Rules of handlers the role may see.';
CREATE POLICY failure_handler_rules_owner ON failure_handler_rules
    USING (EXISTS (SELECT 1 FROM failure_handlers h JOIN workflows w ON w.id = h.workflow_id
                   WHERE h.id = failure_handler_rules.handler_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM failure_handlers h JOIN workflows w ON w.id = h.workflow_id
                        WHERE h.id = failure_handler_rules.handler_id AND w.owner = current_user));
COMMENT ON POLICY failure_handler_rules_owner ON failure_handler_rules IS 'The workflow''s owner reads and writes its handlers'' rules (recovery scripts): nobody else can.';

ALTER TABLE results ENABLE ROW LEVEL SECURITY;
CREATE POLICY results_read ON results FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = results.workflow_id));
COMMENT ON POLICY results_read ON results IS 'Rows of workflows the role may see.';
CREATE POLICY results_owner ON results
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = results.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = results.workflow_id AND w.owner = current_user));
COMMENT ON POLICY results_owner ON results IS 'The workflow''s owner reads and writes its rows.';
CREATE POLICY results_watcher ON results FOR INSERT WITH CHECK ((SELECT torc_granted('watcher')));
COMMENT ON POLICY results_watcher ON results IS 'The cluster watcher records the attempts of jobs orphaned by dead allocations.';

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_read ON events FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = events.workflow_id));
COMMENT ON POLICY events_read ON events IS 'Rows of workflows the role may see.';
CREATE POLICY events_owner ON events
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = events.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = events.workflow_id AND w.owner = current_user));
COMMENT ON POLICY events_owner ON events IS 'The workflow''s owner reads and writes its rows.';
CREATE POLICY events_elevated_insert ON events FOR INSERT WITH CHECK ((SELECT torc_granted('watcher', 'admin')));
COMMENT ON POLICY events_elevated_insert ON events IS 'The watcher and admins record what they did (allocations, resets, cancels) in any workflow''s audit log.';

ALTER TABLE workers ENABLE ROW LEVEL SECURITY;
CREATE POLICY workers_read ON workers FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = workers.workflow_id));
COMMENT ON POLICY workers_read ON workers IS 'Rows of workflows the role may see.';
CREATE POLICY workers_owner ON workers
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = workers.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = workers.workflow_id AND w.owner = current_user));
COMMENT ON POLICY workers_owner ON workers IS 'Only the owner registers workers: nobody else''s `torc worker` can claim its jobs.';
CREATE POLICY workers_watcher ON workers FOR UPDATE
    USING ((SELECT torc_granted('watcher'))) WITH CHECK ((SELECT torc_granted('watcher')));
COMMENT ON POLICY workers_watcher ON workers IS 'The cluster watcher declares dead workers lost (stopped_at, stop_reason).';

ALTER TABLE allocations ENABLE ROW LEVEL SECURITY;
CREATE POLICY allocations_read ON allocations FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = allocations.workflow_id));
COMMENT ON POLICY allocations_read ON allocations IS 'Rows of workflows the role may see.';
CREATE POLICY allocations_owner ON allocations
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = allocations.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = allocations.workflow_id AND w.owner = current_user));
COMMENT ON POLICY allocations_owner ON allocations IS 'The workflow''s owner reads and writes its rows.';
CREATE POLICY allocations_watcher ON allocations
    USING ((SELECT torc_granted('watcher'))) WITH CHECK ((SELECT torc_granted('watcher')));
COMMENT ON POLICY allocations_watcher ON allocations IS 'The cluster watcher records the allocations it submits (as the owner) and their Slurm states.';

ALTER TABLE slurm_schedulers ENABLE ROW LEVEL SECURITY;
CREATE POLICY slurm_schedulers_read ON slurm_schedulers FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = slurm_schedulers.workflow_id));
COMMENT ON POLICY slurm_schedulers_read ON slurm_schedulers IS 'Rows of workflows the role may see.';
CREATE POLICY slurm_schedulers_owner ON slurm_schedulers
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = slurm_schedulers.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = slurm_schedulers.workflow_id AND w.owner = current_user));
COMMENT ON POLICY slurm_schedulers_owner ON slurm_schedulers IS 'The workflow''s owner reads and writes its rows.';

ALTER TABLE watch_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY watch_state_read ON watch_state FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = watch_state.workflow_id));
COMMENT ON POLICY watch_state_read ON watch_state IS 'Rows of workflows the role may see.';
CREATE POLICY watch_state_owner ON watch_state
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = watch_state.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = watch_state.workflow_id AND w.owner = current_user));
COMMENT ON POLICY watch_state_owner ON watch_state IS 'The workflow''s owner reads and writes its rows.';
CREATE POLICY watch_state_watcher ON watch_state
    USING ((SELECT torc_granted('watcher'))) WITH CHECK ((SELECT torc_granted('watcher')));
COMMENT ON POLICY watch_state_watcher ON watch_state IS 'The cluster watcher keeps its back-off and recovery state (it cannot write submit_options: no column privilege).';

-- ---- views run with the querying role's rights ------------------------------------------------------------
-- A plain view reads its tables as the view's owner, which bypasses row-level security. The filter below
-- (the same one workflows_read applies) keeps every view to the rows its reader may see on any server
-- version; on PostgreSQL 15+ security_invoker makes the tables' own policies apply as well.
CREATE OR REPLACE VIEW workflow_progress AS
SELECT w.id AS workflow_id,
       w.name,
       w.run_id,
       count(j.id) AS total,
       count(j.id) FILTER (WHERE j.status = 'completed')      AS completed,
       count(j.id) FILTER (WHERE j.status = 'running')        AS running,
       count(j.id) FILTER (WHERE j.status = 'ready')          AS ready,
       count(j.id) FILTER (WHERE j.status = 'blocked')        AS blocked,
       count(j.id) FILTER (WHERE j.status = 'failed')         AS failed,
       count(j.id) FILTER (WHERE j.status = 'terminated')     AS terminated,
       count(j.id) FILTER (WHERE j.status = 'canceled')       AS canceled,
       count(j.id) FILTER (WHERE j.status = 'pending_failed') AS pending_failed,
       count(j.id) FILTER (WHERE j.status = 'disabled')       AS disabled,
       count(j.id) FILTER (WHERE j.status = 'ready' AND j.attempt_id > 1) AS ready_retries,
       w.owner
FROM workflows w
LEFT JOIN jobs j ON j.workflow_id = w.id
WHERE w.owner = current_user OR (SELECT torc_granted('watcher', 'admin'))
      OR pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'workflows'::regclass), 'MEMBER')
GROUP BY w.id;
COMMENT ON VIEW workflow_progress IS 'Job counts by status for each workflow the reader may see.';

CREATE OR REPLACE VIEW job_attempts AS
SELECT r.workflow_id, r.job_id, j.name AS job_name, r.run_id, r.attempt_id, r.status,
       r.return_code, r.started_at, r.completed_at, r.exec_time_s, r.peak_memory_bytes,
       r.cpu_time_s, r.worker_id
FROM results r
JOIN jobs j ON j.id = r.job_id
WHERE j.owner = current_user OR (SELECT torc_granted('watcher', 'admin'))
      OR pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'jobs'::regclass), 'MEMBER');
COMMENT ON VIEW job_attempts IS 'Results joined with job names: one row per attempt, of the workflows the reader may see.';

-- ---- admin views (`torc admin usage`, `torc admin stuck`) -------------------------------------------------
CREATE VIEW admin_usage AS
SELECT w.owner,
       count(DISTINCT w.id) AS workflows,
       count(r.id) AS attempts,
       count(r.id) FILTER (WHERE r.status = 'completed') AS completed,
       count(r.id) FILTER (WHERE r.status = 'failed') AS failed,
       count(r.id) FILTER (WHERE r.status = 'terminated') AS terminated,
       coalesce(sum(r.exec_time_s * j.num_cpus) / 3600.0, 0) AS cpu_hours,
       coalesce(sum(r.exec_time_s * j.num_gpus) / 3600.0, 0) AS gpu_hours,
       coalesce(sum(r.cpu_time_s) / 3600.0, 0) AS cpu_hours_used,
       max(r.completed_at) AS last_result_at
FROM workflows w
LEFT JOIN results r ON r.workflow_id = w.id
                   AND r.completed_at >= coalesce(nullif(current_setting('torc.since', true), '')::timestamptz, '-infinity')
LEFT JOIN jobs j ON j.id = r.job_id
GROUP BY w.owner;
ALTER VIEW admin_usage SET (security_barrier = true);
COMMENT ON VIEW admin_usage IS 'Per owner: workflows, attempts by outcome, CPU-hours and GPU-hours reserved (runtime × requested CPUs/GPUs) and CPU-hours used (rusage), from results completed since the setting torc.since (unset: all time). Rows the reader may see only.';

CREATE VIEW admin_jobs_by_status AS
SELECT owner, status::text AS status, count(*) AS jobs FROM jobs GROUP BY owner, status;
COMMENT ON VIEW admin_jobs_by_status IS 'Per owner: how many jobs are in each status right now.';

CREATE VIEW admin_failures AS
SELECT w.owner, r.return_code, count(*) AS attempts, count(DISTINCT r.workflow_id) AS workflows,
       max(r.completed_at) AS last_at
FROM results r JOIN workflows w ON w.id = r.workflow_id
WHERE r.return_code <> 0
  AND r.completed_at >= coalesce(nullif(current_setting('torc.since', true), '')::timestamptz, '-infinity')
GROUP BY w.owner, r.return_code;
COMMENT ON VIEW admin_failures IS 'Per owner and return code: failed attempts since torc.since (unset: all time). 137 memory, 143 canceled, 152 walltime, 154 lost worker: see README.';

CREATE VIEW admin_stuck AS
SELECT w.owner, j.workflow_id, 'running_stale_heartbeat'::text AS problem, j.id AS job_id, j.name AS job_name,
       NULL::text AS slurm_job_id, k.last_heartbeat AS since,
       format('job running on worker %s (%s) whose last heartbeat was %s ago', k.id, k.hostname,
              date_trunc('second', now() - k.last_heartbeat)) AS detail
FROM jobs j JOIN workers k ON k.id = j.worker_id JOIN workflows w ON w.id = j.workflow_id
WHERE j.status = 'running'
  AND (k.stopped_at IS NOT NULL
       OR k.last_heartbeat < now() - make_interval(secs => coalesce(nullif(current_setting('torc.heartbeat_timeout', true), '')::float8, 120)))
UNION ALL
SELECT w.owner, j.workflow_id, 'pending_failed_old', j.id, j.name, NULL, e.ts,
       format('pending_failed for %s: decide with torc jobs retry|fail', date_trunc('second', now() - e.ts))
FROM jobs j JOIN workflows w ON w.id = j.workflow_id
JOIN LATERAL (SELECT max(ts) AS ts FROM events WHERE job_id = j.id AND to_status = 'pending_failed') e ON true
WHERE j.status = 'pending_failed' AND e.ts < now() - interval '1 day'
UNION ALL
SELECT w.owner, a.workflow_id, 'allocation_pending_long', NULL, NULL, a.slurm_job_id, a.submitted_at,
       format('allocation %s pending in Slurm for %s', a.slurm_job_id, date_trunc('second', now() - a.submitted_at))
FROM allocations a JOIN workflows w ON w.id = a.workflow_id
WHERE a.state IN ('pending', 'unknown')
  AND a.submitted_at < now() - make_interval(secs => coalesce(nullif(current_setting('torc.pending_after', true), '')::float8, 86400));
COMMENT ON VIEW admin_stuck IS 'What needs a person: running jobs whose worker stopped or has a stale heartbeat (torc.heartbeat_timeout, default 120 s), pending_failed jobs older than a day, allocations pending in Slurm longer than torc.pending_after (default a day).';

DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 150000 THEN
        EXECUTE 'ALTER VIEW workflow_progress SET (security_invoker = true)';
        EXECUTE 'ALTER VIEW job_attempts SET (security_invoker = true)';
        EXECUTE 'ALTER VIEW admin_usage SET (security_invoker = true)';
        EXECUTE 'ALTER VIEW admin_jobs_by_status SET (security_invoker = true)';
        EXECUTE 'ALTER VIEW admin_failures SET (security_invoker = true)';
        EXECUTE 'ALTER VIEW admin_stuck SET (security_invoker = true)';
    END IF;
END $$;
