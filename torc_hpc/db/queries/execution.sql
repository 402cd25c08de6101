-- What a worker needs to run a workflow's jobs beyond the claim: Torc's workflow-level execution settings.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: worker_settings
-- Read once when a worker starts: the workflow's env (for jobs whose jobs.env is NULL), execution_config,
-- resource_monitor, and whether any job declares outputs (then claims return them; a probe on job_files).
SELECT w.env, w.execution_config, w.resource_monitor,
       EXISTS (SELECT 1 FROM job_files jf WHERE jf.workflow_id = w.id AND jf.direction = 'output') AS has_outputs
FROM workflows w WHERE w.id = %(workflow_id)s;
