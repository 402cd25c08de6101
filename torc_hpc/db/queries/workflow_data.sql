-- Torc's spec data beside the jobs: files, user_data, datasets (what jobs read and write) and actions.
-- Inserted at creation as arrays (one statement per table, whatever the number of rows; works under
-- row-level security, which COPY does not); read by the CLI, the worker and `torc user-data`.

-- name: set_workflow_compat
-- Store the workflow's Torc fields (project, the spec's user, metadata, slurm_defaults, env, execution_config, resource_monitor).
UPDATE workflows
SET project = %(project)s, spec_user = %(spec_user)s, metadata = %(metadata)s, slurm_defaults = %(slurm_defaults)s,
    env = %(env)s, execution_config = %(execution_config)s, resource_monitor = %(resource_monitor)s
WHERE id = %(workflow_id)s;

-- name: insert_files
-- Create a workflow's files; returns each id with its name.
INSERT INTO files (workflow_id, name, path, st_mtime, must_exist)
SELECT %(workflow_id)s, f.name, f.path, f.st_mtime, f.must_exist
FROM unnest(%(names)s::text[], %(paths)s::text[], %(mtimes)s::float8[], %(must_exist)s::boolean[])
     AS f(name, path, st_mtime, must_exist)
RETURNING id, name;

-- name: insert_job_files
-- Which job reads or writes which file.
INSERT INTO job_files (workflow_id, job_id, file_id, direction)
SELECT %(workflow_id)s, r.job_id, r.item_id, r.direction
FROM unnest(%(job_ids)s::bigint[], %(item_ids)s::bigint[], %(directions)s::text[]) AS r(job_id, item_id, direction);

-- name: insert_user_data
-- Create a workflow's user_data values (current value = initial value); returns each id with its name.
INSERT INTO user_data (workflow_id, name, data, initial, is_ephemeral)
SELECT %(workflow_id)s, u.name, u.data, u.data, u.is_ephemeral
FROM unnest(%(names)s::text[], %(datas)s::jsonb[], %(ephemeral)s::boolean[]) AS u(name, data, is_ephemeral)
RETURNING id, name;

-- name: insert_job_user_data
-- Which job reads or writes which user_data value.
INSERT INTO job_user_data (workflow_id, job_id, user_data_id, direction)
SELECT %(workflow_id)s, r.job_id, r.item_id, r.direction
FROM unnest(%(job_ids)s::bigint[], %(item_ids)s::bigint[], %(directions)s::text[]) AS r(job_id, item_id, direction);

-- name: insert_datasets
-- Create a workflow's datasets; returns each id with its name.
INSERT INTO datasets (workflow_id, name, path, hash_mode, description)
SELECT %(workflow_id)s, d.name, d.path, d.hash_mode, d.description
FROM unnest(%(names)s::text[], %(paths)s::text[], %(hash_modes)s::text[], %(descriptions)s::text[])
     AS d(name, path, hash_mode, description)
RETURNING id, name;

-- name: insert_job_datasets
-- Which job reads or writes which dataset.
INSERT INTO job_datasets (workflow_id, job_id, dataset_id, direction)
SELECT %(workflow_id)s, r.job_id, r.item_id, r.direction
FROM unnest(%(job_ids)s::bigint[], %(item_ids)s::bigint[], %(directions)s::text[]) AS r(job_id, item_id, direction);

-- name: insert_action
-- Create one workflow action; returns its id.
INSERT INTO workflow_actions (workflow_id, position, trigger_type, action_type, config, selected_count)
VALUES (%(workflow_id)s, %(position)s, %(trigger_type)s, %(action_type)s, %(config)s, %(selected_count)s)
RETURNING id;

-- name: insert_action_jobs
-- The jobs one action waits for.
INSERT INTO action_jobs (workflow_id, action_id, job_id)
SELECT %(workflow_id)s, %(action_id)s, unnest(%(job_ids)s::bigint[]);

-- name: job_output_paths
-- The paths a job declared as outputs (the worker checks them after exit 0; primary-key range scan).
SELECT f.name, f.path
FROM job_files jf JOIN files f ON f.id = jf.file_id
WHERE jf.job_id = %(job_id)s AND jf.direction = 'output'
ORDER BY f.name;

-- name: workflow_details
-- Everything `torc workflows show` prints about one workflow besides its jobs.
SELECT w.id, w.name, w.description, w.owner, w.spec_user, w.project, w.metadata, w.slurm_defaults, w.env,
       w.execution_config, w.resource_monitor, w.spec_path, w.working_dir, w.output_dir, w.run_id, w.created_at,
       w.dynamic_max_iterations,
       w.canceled_at,
       (SELECT count(*) FROM jobs j WHERE j.workflow_id = w.id) AS jobs,
       (SELECT count(*) FROM files f WHERE f.workflow_id = w.id) AS files,
       (SELECT count(*) FROM user_data u WHERE u.workflow_id = w.id) AS user_data,
       (SELECT count(*) FROM datasets d WHERE d.workflow_id = w.id) AS datasets,
       (SELECT count(*) FROM workflow_actions a WHERE a.workflow_id = w.id) AS actions
FROM workflows w WHERE w.id = %(workflow_id)s;

-- name: list_files
-- A workflow's files with how many jobs write and read each.
SELECT f.name, f.path,
       count(jf.job_id) FILTER (WHERE jf.direction = 'output') AS writers,
       count(jf.job_id) FILTER (WHERE jf.direction = 'input') AS readers
FROM files f LEFT JOIN job_files jf ON jf.file_id = f.id
WHERE f.workflow_id = %(workflow_id)s
GROUP BY f.id ORDER BY f.name;

-- name: list_actions
-- A workflow's actions in spec order (torc's own, at negative positions, are listed with the datasets).
SELECT position, trigger_type, action_type, config, selected_count, reached_count, fired_at, fired_by
FROM workflow_actions WHERE workflow_id = %(workflow_id)s AND position >= 0 ORDER BY position;

-- name: list_datasets
-- A workflow's datasets: writers and readers, and what the last finalization recorded.
SELECT d.name, d.path, d.hash_mode,
       count(jd.job_id) FILTER (WHERE jd.direction = 'output') AS writers,
       count(jd.job_id) FILTER (WHERE jd.direction = 'input') AS readers,
       d.finalized_at, d.file_count, d.total_bytes, d.digest, d.finalize_note
FROM datasets d LEFT JOIN job_datasets jd ON jd.dataset_id = d.id
WHERE d.workflow_id = %(workflow_id)s
GROUP BY d.id ORDER BY d.name;

-- name: list_user_data
-- A workflow's user_data values.
SELECT name, data, is_ephemeral, updated_at, updated_by_job
FROM user_data WHERE workflow_id = %(workflow_id)s ORDER BY name;

-- name: get_user_data
-- One user_data value by name.
SELECT name, data, is_ephemeral, updated_at, updated_by_job
FROM user_data WHERE workflow_id = %(workflow_id)s AND name = %(name)s;

-- name: set_user_data
-- Write one user_data value (by the owner's CLI, usually inside a job) and record the event.
WITH upd AS (
    UPDATE user_data SET data = %(data)s, updated_at = now(), updated_by_job = %(job_id)s
    WHERE workflow_id = %(workflow_id)s AND name = %(name)s
    RETURNING id, name
), ev AS (
    INSERT INTO events (workflow_id, job_id, kind, detail)
    SELECT %(workflow_id)s, %(job_id)s, 'user_data_set', jsonb_build_object('name', name, 'bytes', %(bytes)s::int)
    FROM upd
)
SELECT id, name FROM upd;

-- name: reset_ephemeral_user_data
-- On reset-status: ephemeral values return to their spec value.
UPDATE user_data SET data = initial, updated_at = NULL, updated_by_job = NULL
WHERE workflow_id = %(workflow_id)s AND is_ephemeral AND data IS DISTINCT FROM initial;
