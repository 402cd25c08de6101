-- torc-hpc schema, migration 0009: Torc's spec fields (issue 14; docs/torc-compat.md).
-- Files, user_data and datasets with the jobs that read and write them, workflow actions with the jobs
-- they wait for, and the per-job and per-workflow fields Torc's specs carry. Every new table holds
-- workflow data and follows the row-level-security pattern at the top of 0005_security.sql. None is
-- written by the cluster watcher; nobody but the owner can change a command, a script or an environment
-- (torc_hpc/db/grants.py gives the watcher no privilege on invocation_script or env).

-- ---- workflows: stored and shown -------------------------------------------------------------------------
ALTER TABLE workflows
    ADD COLUMN project          text,
    ADD COLUMN spec_user        text,
    ADD COLUMN metadata         jsonb,
    ADD COLUMN slurm_defaults   jsonb,
    ADD COLUMN env              jsonb,
    ADD COLUMN execution_config jsonb,
    ADD COLUMN resource_monitor jsonb;
COMMENT ON COLUMN workflows.project IS 'The spec''s project (groups workflows: torc workflows list --project).';
COMMENT ON COLUMN workflows.spec_user IS 'The spec''s user field, as written. Shown only: ownership is workflows.owner (the role that created it), never this.';
COMMENT ON COLUMN workflows.metadata IS 'The spec''s metadata (a JSON object), stored and shown.';
COMMENT ON COLUMN workflows.slurm_defaults IS 'sbatch long options (without --) applied to every allocation of the workflow, under each scheduler''s own fields.';
COMMENT ON COLUMN workflows.env IS 'The spec''s workflow-level env: the environment of every job whose jobs.env is NULL (jobs.env, when set, is already merged with it).';
COMMENT ON COLUMN workflows.execution_config IS 'The spec''s execution_config with defaults (direct mode: termination signal, lead and headroom seconds, exit codes, stdio).';
COMMENT ON COLUMN workflows.resource_monitor IS 'The spec''s resource_monitor with defaults (sampling interval, metrics, granularity); NULL: not monitored.';
CREATE INDEX workflows_project_idx ON workflows (project, id) WHERE project IS NOT NULL;

-- ---- jobs: Torc's per-job fields (all NULL or default for plain jobs: COPY leaves them out) ----------------
ALTER TABLE jobs
    ADD COLUMN invocation_script       text,
    ADD COLUMN env                     jsonb,
    ADD COLUMN label                   text,
    ADD COLUMN stdio_mode              text CHECK (stdio_mode IN ('combined', 'no_stdout', 'no_stderr', 'none')),
    ADD COLUMN delete_stdio_on_success boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN jobs.invocation_script IS 'Runs the job as bash -c "<invocation_script> <command>" (a wrapper taking the command as arguments, or a prologue ending in a newline); NULL: the command alone.';
COMMENT ON COLUMN jobs.env IS 'The job''s environment additions: the workflow''s env merged with the job''s own (the job''s wins); NULL: workflows.env alone. TORC_* variables are set by the worker after these.';
COMMENT ON COLUMN jobs.label IS 'Routes the job to workers started with the same --label (Torc''s labels); NULL: unlabeled.';
COMMENT ON COLUMN jobs.stdio_mode IS 'How the job''s output is kept: NULL separate (.o and .e), combined (one .log), no_stdout, no_stderr, none.';
COMMENT ON COLUMN jobs.delete_stdio_on_success IS 'Delete the attempt''s log files after it exits 0 (kept on failure).';

-- ---- slurm_schedulers: Torc's further sbatch fields --------------------------------------------------------------
ALTER TABLE slurm_schedulers
    ADD COLUMN tmp                   text,
    ADD COLUMN ntasks_per_node       integer CHECK (ntasks_per_node >= 1),
    ADD COLUMN serialize_allocations boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN slurm_schedulers.tmp IS 'sbatch --tmp (local scratch per node), e.g. 10G.';
COMMENT ON COLUMN slurm_schedulers.ntasks_per_node IS 'sbatch --ntasks-per-node (the CPUs per node are split among the tasks); NULL: 1. One torc worker still runs per node.';
COMMENT ON COLUMN slurm_schedulers.serialize_allocations IS 'One allocation of this scheduler at a time: a shared job name and sbatch --dependency=singleton.';

-- ---- files -------------------------------------------------------------------------------------------------
CREATE TABLE files (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    name        text   NOT NULL,
    path        text   NOT NULL,
    st_mtime    double precision,
    must_exist  boolean NOT NULL DEFAULT false,
    UNIQUE (workflow_id, name)
);
COMMENT ON TABLE files IS 'The spec''s files (after parameter expansion): named paths jobs read and write.';
COMMENT ON COLUMN files.id IS 'File id (job_files.file_id).';
COMMENT ON COLUMN files.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN files.name IS 'Name jobs use in input_files / output_files and ${files.input|output.NAME}.';
COMMENT ON COLUMN files.path IS 'Path, relative to the workflow''s working_dir unless absolute.';
COMMENT ON COLUMN files.st_mtime IS 'Torc''s st_mtime from the spec, stored as given (not used).';
COMMENT ON COLUMN files.must_exist IS 'Older Torc specs: the file must exist when the workflow is created.';

CREATE TABLE job_files (
    workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    file_id     bigint NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    direction   text   NOT NULL CHECK (direction IN ('input', 'output')),
    PRIMARY KEY (job_id, direction, file_id)
);
COMMENT ON TABLE job_files IS 'Which job reads (input) or writes (output) which file. A reader waits for every writer (job_dependencies holds those edges). After a job exits 0 each of its outputs must exist, else the attempt fails with 156.';
COMMENT ON COLUMN job_files.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN job_files.job_id IS 'The job.';
COMMENT ON COLUMN job_files.file_id IS 'The file.';
COMMENT ON COLUMN job_files.direction IS 'input: the job reads it; output: the job writes it.';
CREATE INDEX job_files_file_idx ON job_files (file_id);
CREATE INDEX job_files_workflow_idx ON job_files (workflow_id);

-- ---- user_data -----------------------------------------------------------------------------------------------
CREATE TABLE user_data (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id    bigint      NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    name           text        NOT NULL,
    data           jsonb,
    initial        jsonb,
    is_ephemeral   boolean     NOT NULL DEFAULT false,
    updated_at     timestamptz,
    updated_by_job bigint,
    UNIQUE (workflow_id, name)
);
COMMENT ON TABLE user_data IS 'Named JSON values of a workflow (the spec''s user_data): jobs read and write them with `torc user-data get|set`.';
COMMENT ON COLUMN user_data.id IS 'Value id (job_user_data.user_data_id).';
COMMENT ON COLUMN user_data.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN user_data.name IS 'Name jobs use in input_user_data / output_user_data, ${user_data.input|output.NAME} and torc user-data.';
COMMENT ON COLUMN user_data.data IS 'The current value (JSON; NULL when nothing was written yet).';
COMMENT ON COLUMN user_data.initial IS 'The value the spec gave; an ephemeral value returns to it when the workflow is reset.';
COMMENT ON COLUMN user_data.is_ephemeral IS 'Reset to its initial value by torc workflows reset-status.';
COMMENT ON COLUMN user_data.updated_at IS 'When it was last written with torc user-data set.';
COMMENT ON COLUMN user_data.updated_by_job IS 'The job that wrote it last (TORC_JOB_ID of the writer), if a job did.';

CREATE TABLE job_user_data (
    workflow_id  bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    job_id       bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    user_data_id bigint NOT NULL REFERENCES user_data (id) ON DELETE CASCADE,
    direction    text   NOT NULL CHECK (direction IN ('input', 'output')),
    PRIMARY KEY (job_id, direction, user_data_id)
);
COMMENT ON TABLE job_user_data IS 'Which job reads (input) or writes (output) which user_data value; a reader waits for every writer.';
COMMENT ON COLUMN job_user_data.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN job_user_data.job_id IS 'The job.';
COMMENT ON COLUMN job_user_data.user_data_id IS 'The value.';
COMMENT ON COLUMN job_user_data.direction IS 'input: the job reads it; output: the job writes it.';
CREATE INDEX job_user_data_value_idx ON job_user_data (user_data_id);
CREATE INDEX job_user_data_workflow_idx ON job_user_data (workflow_id);

-- ---- datasets --------------------------------------------------------------------------------------------------
CREATE TABLE datasets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    name        text   NOT NULL,
    path        text   NOT NULL,
    hash_mode   text   NOT NULL DEFAULT 'manifest' CHECK (hash_mode IN ('manifest', 'content', 'none')),
    description text,
    UNIQUE (workflow_id, name)
);
COMMENT ON TABLE datasets IS 'The spec''s datasets: directories many jobs write; readers wait for every writer.';
COMMENT ON COLUMN datasets.id IS 'Dataset id (job_datasets.dataset_id).';
COMMENT ON COLUMN datasets.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN datasets.name IS 'Name jobs use in input_datasets / output_datasets and ${datasets.input|output.NAME}.';
COMMENT ON COLUMN datasets.path IS 'Directory, relative to the workflow''s working_dir unless absolute.';
COMMENT ON COLUMN datasets.hash_mode IS 'How Torc fingerprints it when finalized (manifest, content, none); stored, not computed yet.';
COMMENT ON COLUMN datasets.description IS 'The spec''s description.';

CREATE TABLE job_datasets (
    workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    dataset_id  bigint NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    direction   text   NOT NULL CHECK (direction IN ('input', 'output')),
    PRIMARY KEY (job_id, direction, dataset_id)
);
COMMENT ON TABLE job_datasets IS 'Which job reads (input) or writes (output) which dataset; a reader waits for every writer.';
COMMENT ON COLUMN job_datasets.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN job_datasets.job_id IS 'The job.';
COMMENT ON COLUMN job_datasets.dataset_id IS 'The dataset.';
COMMENT ON COLUMN job_datasets.direction IS 'input: the job reads it; output: the job writes it.';
CREATE INDEX job_datasets_dataset_idx ON job_datasets (dataset_id);
CREATE INDEX job_datasets_workflow_idx ON job_datasets (workflow_id);

-- ---- actions ---------------------------------------------------------------------------------------------------
CREATE TABLE workflow_actions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id    bigint      NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    position       integer     NOT NULL,
    trigger_type   text        NOT NULL CHECK (trigger_type IN ('on_workflow_start', 'on_workflow_complete',
                                   'on_jobs_ready', 'on_jobs_complete', 'on_worker_start', 'on_worker_complete')),
    action_type    text        NOT NULL CHECK (action_type IN ('run_commands', 'schedule_nodes')),
    config         jsonb       NOT NULL,
    selected_count integer     NOT NULL DEFAULT 0,
    reached_count  integer     NOT NULL DEFAULT 0,
    fired_at       timestamptz,
    fired_by       text,
    UNIQUE (workflow_id, position)
);
COMMENT ON TABLE workflow_actions IS 'The spec''s actions: what to do when a trigger fires (run commands, submit allocations), at most once per trigger unless persistent.';
COMMENT ON COLUMN workflow_actions.id IS 'Action id (action_jobs.action_id).';
COMMENT ON COLUMN workflow_actions.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN workflow_actions.position IS '0-based order in the spec.';
COMMENT ON COLUMN workflow_actions.trigger_type IS 'When it fires: workflow start or completion, its jobs all ready or all finished, a worker starting or ending.';
COMMENT ON COLUMN workflow_actions.action_type IS 'run_commands (in the workflow''s working_dir, one after another) or schedule_nodes (Slurm allocations of a slurm_schedulers entry).';
COMMENT ON COLUMN workflow_actions.config IS 'commands, scheduler, num_allocations, start_one_worker_per_node, max_parallel_jobs, persistent.';
COMMENT ON COLUMN workflow_actions.selected_count IS 'How many jobs the trigger waits for (rows in action_jobs).';
COMMENT ON COLUMN workflow_actions.reached_count IS 'How many of them reached the trigger''s state so far; the action is due when it equals selected_count.';
COMMENT ON COLUMN workflow_actions.fired_at IS 'When it fired (claimed by UPDATE … WHERE fired_at IS NULL); NULL: not yet.';
COMMENT ON COLUMN workflow_actions.fired_by IS 'Who fired it (worker or watcher).';

CREATE TABLE action_jobs (
    workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    action_id   bigint NOT NULL REFERENCES workflow_actions (id) ON DELETE CASCADE,
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (action_id, job_id)
);
COMMENT ON TABLE action_jobs IS 'The jobs an on_jobs_ready / on_jobs_complete action waits for (jobs and job_name_regexes, resolved at creation).';
COMMENT ON COLUMN action_jobs.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN action_jobs.action_id IS 'The action.';
COMMENT ON COLUMN action_jobs.job_id IS 'A job it waits for.';
CREATE INDEX action_jobs_job_idx ON action_jobs (job_id);
CREATE INDEX action_jobs_workflow_idx ON action_jobs (workflow_id);

-- ---- row-level security (the pattern in 0005_security.sql) ------------------------------------------------------
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['files', 'job_files', 'user_data', 'job_user_data', 'datasets', 'job_datasets',
                             'workflow_actions', 'action_jobs'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = %I.workflow_id))',
                       t || '_read', t, t);
        EXECUTE format('COMMENT ON POLICY %I ON %I IS %L', t || '_read', t,
                       'Rows of workflows the role may see (its own; every owner''s for watchers and admins).');
        EXECUTE format('CREATE POLICY %I ON %I USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = %I.workflow_id AND w.owner = current_user)) '
                       'WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = %I.workflow_id AND w.owner = current_user))',
                       t || '_owner', t, t, t);
        EXECUTE format('COMMENT ON POLICY %I ON %I IS %L', t || '_owner', t,
                       'The workflow''s owner (its CLI, its workers and its jobs) reads and writes its rows.');
    END LOOP;
END
$$;
