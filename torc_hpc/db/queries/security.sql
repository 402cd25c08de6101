-- Security: grants, roles and owners (torc db grant/revoke), staging for row-level security, admin views.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: rls_active
-- Whether row-level security applies to the current role on jobs (false for the schema owner).
SELECT row_security_active('jobs') AS active;

-- name: stage_jobs
-- A private staging table for creating jobs under row-level security (COPY FROM refuses tables with RLS).
CREATE TEMP TABLE torc_stage_jobs (LIKE jobs INCLUDING DEFAULTS) ON COMMIT DROP;

-- name: stage_edges
-- The same for dependencies.
CREATE TEMP TABLE torc_stage_edges (LIKE job_dependencies INCLUDING DEFAULTS) ON COMMIT DROP;

-- name: unstage_jobs
-- Move staged jobs into jobs (owner takes its default, current_user; the insert policy checks the workflow).
INSERT INTO jobs (id, workflow_id, name, command, status, unfinished_parents, priority, num_cpus, num_gpus,
                  num_nodes, memory_bytes, runtime_s, resource_requirements, failure_handler_id,
                  cancel_on_blocking_job_failure, scheduler, ready_at, invocation_script, env, label, stdio_mode,
                  delete_stdio_on_success)
SELECT id, workflow_id, name, command, status, unfinished_parents, priority, num_cpus, num_gpus, num_nodes,
       memory_bytes, runtime_s, resource_requirements, failure_handler_id, cancel_on_blocking_job_failure,
       scheduler, ready_at, invocation_script, env, label, stdio_mode, delete_stdio_on_success
FROM torc_stage_jobs;

-- name: unstage_edges
-- Move staged dependencies into job_dependencies.
INSERT INTO job_dependencies (workflow_id, parent_id, child_id)
SELECT workflow_id, parent_id, child_id FROM torc_stage_edges;

-- name: whoami
-- The role this connection acts as, whether it owns torc's schema, and its torc grant here (if any).
SELECT current_user::text AS role, current_database()::text AS database,
       pg_has_role(current_user, c.relowner, 'MEMBER') AS schema_owner,
       (SELECT kind FROM torc_grants g WHERE g.role = current_user) AS kind,
       c.relnamespace::regnamespace::text AS schema
FROM pg_class c WHERE c.oid = 'workflows'::regclass;

-- name: role_exists
-- Whether a PostgreSQL role exists on the server (roles are cluster-wide).
SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %(role)s;

-- name: torc_relations
-- torc's tables and views in the schema of `workflows` (everything a grant covers), with their kind.
SELECT c.relname::text AS name, c.relkind::text AS kind
FROM pg_class c
WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'workflows'::regclass)
  AND c.relkind IN ('r', 'v', 'p')
ORDER BY c.relname;

-- name: relation_columns
-- The columns of one torc table (column privileges are computed from these, so new columns are covered).
SELECT a.attname::text AS name, a.attidentity::text AS identity
FROM pg_attribute a
WHERE a.attrelid = (SELECT c.oid FROM pg_class c
                    WHERE c.relname = %(relation)s
                      AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'workflows'::regclass))
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;

-- name: record_grant
-- Remember a role's torc grant in this database.
INSERT INTO torc_grants (role, kind) VALUES (%(role)s, %(kind)s)
ON CONFLICT (role) DO UPDATE SET kind = EXCLUDED.kind, granted_at = now(), granted_by = current_user;

-- name: forget_grant
-- Remove a role's torc grant in this database.
DELETE FROM torc_grants WHERE role = %(role)s RETURNING kind;

-- name: list_grants
-- Every role granted here.
SELECT role::text AS role, kind, granted_at, granted_by::text AS granted_by FROM torc_grants ORDER BY role;

-- name: workflow_owner
-- The role that owns a workflow.
SELECT owner FROM workflows WHERE id = %(workflow_id)s;

-- name: set_admin_window
-- Time window and thresholds for the admin views in this transaction (SET LOCAL through set_config).
SELECT set_config('torc.since', coalesce(%(since)s::timestamptz::text, ''), true),
       set_config('torc.heartbeat_timeout', %(heartbeat_timeout_s)s::text, true),
       set_config('torc.pending_after', %(pending_after_s)s::text, true);

-- name: admin_usage
-- Usage per owner over the window (admin_usage view).
SELECT owner, workflows, attempts, completed, failed, terminated, round(cpu_hours::numeric, 3) AS cpu_hours,
       round(gpu_hours::numeric, 3) AS gpu_hours, round(cpu_hours_used::numeric, 3) AS cpu_hours_used,
       last_result_at
FROM admin_usage ORDER BY cpu_hours DESC, owner;

-- name: admin_jobs_by_status
-- Jobs per owner and status right now (admin_jobs_by_status view).
SELECT owner, status, jobs FROM admin_jobs_by_status ORDER BY owner, status;

-- name: admin_failures
-- Failed attempts per owner and return code over the window (admin_failures view).
SELECT owner, return_code, attempts, workflows, last_at FROM admin_failures ORDER BY owner, attempts DESC;

-- name: admin_stuck
-- What is stuck (admin_stuck view), oldest first.
SELECT owner, workflow_id, problem, job_id, job_name, slurm_job_id, since, detail
FROM admin_stuck ORDER BY since NULLS LAST, workflow_id;

-- name: grants_table
-- Whether torc_grants exists yet (migrations before 0005 do not have it).
SELECT to_regclass('torc_grants') IS NOT NULL AS present;
