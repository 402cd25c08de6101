-- Resource monitoring of jobs (Torc's resource_monitor): a summary per monitored attempt and, with
-- granularity time_series, its samples in chunks. Written by the worker that ran the attempt: the summary
-- with the attempt's result, sample chunks every flush_interval_seconds while it runs and at its end (no row
-- per sample, no array rewritten as it grows). Rows exist only for workflows whose spec enables monitoring.
-- Both tables follow the row-level-security pattern of 0005_security.sql; the watcher does not write them.

CREATE TABLE attempt_resources (
    workflow_id        bigint  NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    job_id             bigint  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    run_id             integer NOT NULL,
    attempt_id         integer NOT NULL,
    samples            integer NOT NULL,
    interval_s         real    NOT NULL,
    cpu_percent_peak   real,
    cpu_percent_avg    real,
    memory_peak_bytes  bigint,
    memory_avg_bytes   bigint,
    processes_peak     integer,
    PRIMARY KEY (job_id, run_id, attempt_id)
);
COMMENT ON TABLE attempt_resources IS 'What the resource monitor measured over one attempt of a job (one row per monitored attempt; results holds the attempt itself, same job_id, run_id, attempt_id).';
COMMENT ON COLUMN attempt_resources.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN attempt_resources.job_id IS 'The job.';
COMMENT ON COLUMN attempt_resources.run_id IS 'workflows.run_id when the attempt ran.';
COMMENT ON COLUMN attempt_resources.attempt_id IS 'Attempt number within the run.';
COMMENT ON COLUMN attempt_resources.samples IS 'How many samples were taken (0 for an attempt shorter than the interval).';
COMMENT ON COLUMN attempt_resources.interval_s IS 'Seconds between samples.';
COMMENT ON COLUMN attempt_resources.cpu_percent_peak IS 'Highest sampled CPU % of the job''s process group (100 = one core busy).';
COMMENT ON COLUMN attempt_resources.cpu_percent_avg IS 'Average CPU %: the attempt''s CPU time (getrusage, exact) over its wall time.';
COMMENT ON COLUMN attempt_resources.memory_peak_bytes IS 'Peak resident memory: the larger of the sampled process-group RSS and the job''s own getrusage peak when that is known (see results.peak_memory_bytes).';
COMMENT ON COLUMN attempt_resources.memory_avg_bytes IS 'Average sampled process-group RSS.';
COMMENT ON COLUMN attempt_resources.processes_peak IS 'Most processes sampled in the job''s process group at once.';
CREATE INDEX attempt_resources_workflow_idx ON attempt_resources (workflow_id);

CREATE TABLE resource_samples (
    workflow_id  bigint      NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    job_id       bigint      NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    run_id       integer     NOT NULL,
    attempt_id   integer     NOT NULL,
    chunk        integer     NOT NULL,
    first_at     timestamptz NOT NULL,
    interval_ms  integer     NOT NULL,
    cpu_percent  real[],
    memory_kib   bigint[],
    processes    smallint[],
    PRIMARY KEY (job_id, run_id, attempt_id, chunk)
);
COMMENT ON TABLE resource_samples IS 'An attempt''s samples (resource_monitor granularity time_series), in chunks: sample i of a chunk was taken at first_at + i × interval_ms. A NULL array: that metric was not kept (resource_monitor.metrics).';
COMMENT ON COLUMN resource_samples.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN resource_samples.job_id IS 'The job.';
COMMENT ON COLUMN resource_samples.run_id IS 'workflows.run_id when the attempt ran.';
COMMENT ON COLUMN resource_samples.attempt_id IS 'Attempt number within the run.';
COMMENT ON COLUMN resource_samples.chunk IS '0, 1, … in time order: one per flush (flush_interval_seconds) and one at the end.';
COMMENT ON COLUMN resource_samples.first_at IS 'When the chunk''s first sample was taken.';
COMMENT ON COLUMN resource_samples.interval_ms IS 'Milliseconds between samples.';
COMMENT ON COLUMN resource_samples.cpu_percent IS 'CPU % of the process group per sample (100 = one core).';
COMMENT ON COLUMN resource_samples.memory_kib IS 'Resident memory of the process group per sample, KiB.';
COMMENT ON COLUMN resource_samples.processes IS 'Processes in the group per sample.';
CREATE INDEX resource_samples_workflow_idx ON resource_samples (workflow_id);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['attempt_resources', 'resource_samples'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = %I.workflow_id))',
                       t || '_read', t, t);
        EXECUTE format('COMMENT ON POLICY %I ON %I IS %L', t || '_read', t,
                       'Rows of workflows the role may see (its own; every owner''s for watchers and admins).');
        EXECUTE format('CREATE POLICY %I ON %I USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = %I.workflow_id AND w.owner = current_user)) '
                       'WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = %I.workflow_id AND w.owner = current_user))',
                       t || '_owner', t, t, t);
        EXECUTE format('COMMENT ON POLICY %I ON %I IS %L', t || '_owner', t,
                       'The workflow''s owner (its workers) writes the rows; they are read with the workflow.');
    END LOOP;
END
$$;
