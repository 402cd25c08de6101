-- torc-hpc schema, migration 0001: workflows, jobs, dependencies, failure handlers,
-- results, events, workers. Applied by `torc db migrate` (and automatically on first use).
-- Admins may read these tables directly; column names are a stable interface.

CREATE TYPE job_status AS ENUM (
    'blocked', 'ready', 'running', 'completed', 'failed',
    'canceled', 'terminated', 'pending_failed', 'disabled'
);
COMMENT ON TYPE job_status IS 'Lifecycle of a job; see README "Job states".';

CREATE TABLE workflows (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text        NOT NULL,
    description        text,
    spec               jsonb       NOT NULL,
    spec_path          text,
    run_id             integer     NOT NULL DEFAULT 1,
    use_pending_failed boolean     NOT NULL DEFAULT false,
    output_dir         text        NOT NULL DEFAULT 'torc_output',
    working_dir        text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    canceled_at        timestamptz
);
COMMENT ON TABLE workflows IS 'One row per workflow created from a spec.';
COMMENT ON COLUMN workflows.id IS 'Workflow id shown by the CLI and given to jobs as TORC_WORKFLOW_ID.';
COMMENT ON COLUMN workflows.name IS 'The spec''s name (not unique).';
COMMENT ON COLUMN workflows.description IS 'The spec''s description.';
COMMENT ON COLUMN workflows.spec IS 'The validated spec as the user wrote it (before expansion).';
COMMENT ON COLUMN workflows.spec_path IS 'Path of the spec file it was created from, if any.';
COMMENT ON COLUMN workflows.run_id IS 'Incremented by reset-status; part of every log file name and result.';
COMMENT ON COLUMN workflows.use_pending_failed IS 'Unmatched failures go to pending_failed even for jobs without a failure handler.';
COMMENT ON COLUMN workflows.output_dir IS 'Directory for job_stdio logs, relative to working_dir unless absolute.';
COMMENT ON COLUMN workflows.working_dir IS 'Directory torc ran from when it created the workflow; jobs and recovery scripts run here.';
COMMENT ON COLUMN workflows.created_at IS 'When the workflow was created.';
COMMENT ON COLUMN workflows.canceled_at IS 'Set by `torc workflows cancel`; workers stop its running jobs when they see it.';

CREATE TABLE failure_handlers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    name        text   NOT NULL,
    UNIQUE (workflow_id, name)
);
COMMENT ON TABLE failure_handlers IS 'Named sets of retry rules from the spec''s failure_handlers.';
COMMENT ON COLUMN failure_handlers.id IS 'Handler id, referenced by jobs.failure_handler_id.';
COMMENT ON COLUMN failure_handlers.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN failure_handlers.name IS 'Name jobs use in their failure_handler field.';

CREATE TABLE failure_handler_rules (
    handler_id           bigint    NOT NULL REFERENCES failure_handlers (id) ON DELETE CASCADE,
    position             integer   NOT NULL,
    exit_codes           integer[] NOT NULL DEFAULT '{}',
    match_all_exit_codes boolean   NOT NULL DEFAULT false,
    recovery_script      text,
    max_retries          integer   NOT NULL CHECK (max_retries >= 0),
    PRIMARY KEY (handler_id, position)
);
COMMENT ON TABLE failure_handler_rules IS 'Rules of a handler, tried in position order; the first match decides.';
COMMENT ON COLUMN failure_handler_rules.handler_id IS 'Owning handler.';
COMMENT ON COLUMN failure_handler_rules.position IS '0-based order in the spec.';
COMMENT ON COLUMN failure_handler_rules.exit_codes IS 'Return codes this rule matches.';
COMMENT ON COLUMN failure_handler_rules.match_all_exit_codes IS 'Matches any non-zero return code.';
COMMENT ON COLUMN failure_handler_rules.recovery_script IS 'Command run (bash -c, in the workflow''s working_dir) before a retry; exit 0 allows the retry.';
COMMENT ON COLUMN failure_handler_rules.max_retries IS 'A matched job is retried while its attempt_id < max_retries (attempt ids start at 1).';

CREATE TABLE workers (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id    bigint      NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    hostname       text        NOT NULL,
    pid            integer     NOT NULL,
    slurm_job_id   text,
    num_cpus       integer     NOT NULL,
    num_gpus       integer     NOT NULL,
    memory_bytes   bigint      NOT NULL,
    end_time       timestamptz,
    started_at     timestamptz NOT NULL DEFAULT now(),
    last_heartbeat timestamptz NOT NULL DEFAULT now(),
    stopped_at     timestamptz,
    stop_reason    text
);
COMMENT ON TABLE workers IS 'Each `torc run` / `torc worker` process, with its heartbeat. A live worker has stopped_at NULL.';
COMMENT ON COLUMN workers.id IS 'Worker id; running jobs point here (jobs.worker_id).';
COMMENT ON COLUMN workers.workflow_id IS 'Workflow the worker serves.';
COMMENT ON COLUMN workers.hostname IS 'Host the worker runs on.';
COMMENT ON COLUMN workers.pid IS 'Process id on that host.';
COMMENT ON COLUMN workers.slurm_job_id IS 'Slurm allocation it runs in, NULL for local runs.';
COMMENT ON COLUMN workers.num_cpus IS 'CPUs the worker may use.';
COMMENT ON COLUMN workers.num_gpus IS 'GPUs the worker may use.';
COMMENT ON COLUMN workers.memory_bytes IS 'Memory the worker may use.';
COMMENT ON COLUMN workers.end_time IS 'When its allocation ends (NULL: no limit); it claims only jobs whose runtime fits before it.';
COMMENT ON COLUMN workers.started_at IS 'Start of the worker.';
COMMENT ON COLUMN workers.last_heartbeat IS 'Refreshed every few seconds; a stale heartbeat marks the worker lost.';
COMMENT ON COLUMN workers.stopped_at IS 'When it stopped (cleanly, or found lost).';
COMMENT ON COLUMN workers.stop_reason IS 'done, idle, interrupted, walltime, lost, ...';
CREATE INDEX workers_live_idx ON workers (workflow_id) WHERE stopped_at IS NULL;

CREATE TABLE jobs (
    id                             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,  -- BY DEFAULT: creation reserves a block of ids and COPYs them
    workflow_id                    bigint     NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    name                           text       NOT NULL,
    command                        text       NOT NULL,
    status                         job_status NOT NULL,
    attempt_id                     integer    NOT NULL DEFAULT 1,
    unfinished_parents             integer    NOT NULL DEFAULT 0 CHECK (unfinished_parents >= 0),
    priority                       integer    NOT NULL DEFAULT 0,
    num_cpus                       integer    NOT NULL DEFAULT 1,
    num_gpus                       integer    NOT NULL DEFAULT 0,
    num_nodes                      integer    NOT NULL DEFAULT 1,
    memory_bytes                   bigint     NOT NULL,
    runtime_s                      integer    NOT NULL,
    resource_requirements          text,
    failure_handler_id             bigint REFERENCES failure_handlers (id) ON DELETE SET NULL,
    cancel_on_blocking_job_failure boolean    NOT NULL DEFAULT true,
    scheduler                      text,
    worker_id                      bigint REFERENCES workers (id) ON DELETE SET NULL,
    started_at                     timestamptz,
    ready_at                       timestamptz,
    return_code                    integer,
    UNIQUE (workflow_id, name)
) WITH (fillfactor = 80);  -- room for HOT updates of parent counts (status is indexed: its changes are never HOT)
COMMENT ON TABLE jobs IS 'One row per concrete job (after parameter expansion). status is the current state.';
COMMENT ON COLUMN jobs.id IS 'Job id, given to the job as TORC_JOB_ID.';
COMMENT ON COLUMN jobs.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN jobs.name IS 'Unique name within the workflow.';
COMMENT ON COLUMN jobs.command IS 'Shell command, run with bash -c in the workflow''s working_dir.';
COMMENT ON COLUMN jobs.status IS 'Current state (job_status).';
COMMENT ON COLUMN jobs.attempt_id IS 'Current attempt, from 1; a retry increments it; reset-status sets it back to 1.';
COMMENT ON COLUMN jobs.unfinished_parents IS 'Parents not yet completed; the job turns ready when it reaches 0.';
COMMENT ON COLUMN jobs.priority IS 'Higher is claimed first.';
COMMENT ON COLUMN jobs.num_cpus IS 'CPUs the job needs.';
COMMENT ON COLUMN jobs.num_gpus IS 'GPUs the job needs.';
COMMENT ON COLUMN jobs.num_nodes IS 'Nodes the job needs.';
COMMENT ON COLUMN jobs.memory_bytes IS 'Memory the job needs, in bytes.';
COMMENT ON COLUMN jobs.runtime_s IS 'Expected maximum runtime in seconds; a worker claims it only if it fits before its end.';
COMMENT ON COLUMN jobs.resource_requirements IS 'Name of the spec''s resource_requirements entry, if one was used.';
COMMENT ON COLUMN jobs.failure_handler_id IS 'Failure handler whose rules decide retries.';
COMMENT ON COLUMN jobs.cancel_on_blocking_job_failure IS 'false: run anyway when a parent fails, is canceled or terminated.';
COMMENT ON COLUMN jobs.scheduler IS 'Name of the slurm_schedulers entry whose allocations should run it.';
COMMENT ON COLUMN jobs.worker_id IS 'Worker running it (status running), else the last one that did.';
COMMENT ON COLUMN jobs.started_at IS 'Start of the current attempt.';
COMMENT ON COLUMN jobs.ready_at IS 'When it last became ready (the watcher''s waiting time).';
COMMENT ON COLUMN jobs.return_code IS 'Return code of the latest finished attempt.';

-- The claim path: only ready rows, in claim order. Partial, so it stays small however large the workflow.
CREATE INDEX jobs_ready_idx ON jobs (workflow_id, priority DESC, id) WHERE status = 'ready';
-- Jobs of a worker that may have died.
CREATE INDEX jobs_running_idx ON jobs (worker_id) WHERE status = 'running';
-- Counts by status for progress and the watcher.
CREATE INDEX jobs_workflow_status_idx ON jobs (workflow_id, status);

CREATE TABLE job_dependencies (
    workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    parent_id   bigint NOT NULL,
    child_id    bigint NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);
COMMENT ON TABLE job_dependencies IS 'Edges of the DAG: child_id waits for parent_id to complete.';
COMMENT ON COLUMN job_dependencies.workflow_id IS 'Owning workflow (for deletes and admin queries).';
COMMENT ON COLUMN job_dependencies.parent_id IS 'The job that must complete first (jobs.id).';
COMMENT ON COLUMN job_dependencies.child_id IS 'The job that waits (jobs.id).';
CREATE INDEX job_dependencies_child_idx ON job_dependencies (child_id);
CREATE INDEX job_dependencies_workflow_idx ON job_dependencies (workflow_id);

CREATE TABLE results (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id       bigint      NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    job_id            bigint      NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    run_id            integer     NOT NULL,
    attempt_id        integer     NOT NULL,
    return_code       integer     NOT NULL,
    status            job_status  NOT NULL,
    started_at        timestamptz,
    completed_at      timestamptz NOT NULL DEFAULT now(),
    exec_time_s       double precision,
    peak_memory_bytes bigint,
    cpu_time_s        double precision,
    worker_id         bigint REFERENCES workers (id) ON DELETE SET NULL,
    UNIQUE (job_id, run_id, attempt_id)
);
COMMENT ON TABLE results IS 'One row per attempt that started; never updated. The unique key proves one claim per attempt.';
COMMENT ON COLUMN results.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN results.job_id IS 'The job.';
COMMENT ON COLUMN results.run_id IS 'workflows.run_id when the attempt ran.';
COMMENT ON COLUMN results.attempt_id IS 'Attempt number within the run.';
COMMENT ON COLUMN results.return_code IS 'Exit code (128+N for signal N; 152 walltime; see README for the codes torc assigns).';
COMMENT ON COLUMN results.status IS 'What the attempt ended as: completed, failed or terminated (a retry is decided afterwards).';
COMMENT ON COLUMN results.started_at IS 'Start of the attempt.';
COMMENT ON COLUMN results.completed_at IS 'End of the attempt.';
COMMENT ON COLUMN results.exec_time_s IS 'Wall-clock seconds.';
COMMENT ON COLUMN results.peak_memory_bytes IS 'Peak resident memory of the job''s processes (getrusage), if measured.';
COMMENT ON COLUMN results.cpu_time_s IS 'User + system CPU seconds, if measured.';
COMMENT ON COLUMN results.worker_id IS 'Worker that ran it.';
CREATE INDEX results_workflow_idx ON results (workflow_id, job_id);

CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id bigint      NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    job_id      bigint,
    ts          timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind        text        NOT NULL,
    from_status job_status,
    to_status   job_status,
    attempt_id  integer,
    run_id      integer,
    worker_id   bigint,
    detail      jsonb
);
COMMENT ON TABLE events IS 'Audit log: every job transition and every workflow-level action, committed with the change it records.';
COMMENT ON COLUMN events.job_id IS 'The job, or NULL for workflow-level events.';
COMMENT ON COLUMN events.ts IS 'When it happened.';
COMMENT ON COLUMN events.kind IS 'claimed, completed, failed, retry, recovery_failed, pending_failed, canceled, unblocked, terminated, reset, worker_lost, created, ...';
COMMENT ON COLUMN events.from_status IS 'Status before, for transitions.';
COMMENT ON COLUMN events.to_status IS 'Status after, for transitions.';
COMMENT ON COLUMN events.attempt_id IS 'Attempt the event concerns.';
COMMENT ON COLUMN events.run_id IS 'Run the event concerns.';
COMMENT ON COLUMN events.worker_id IS 'Worker that caused it, if any.';
COMMENT ON COLUMN events.detail IS 'Anything else: return code, matched rule, reason.';
CREATE INDEX events_workflow_idx ON events (workflow_id, id);

-- Progress per workflow, for people and dashboards.
CREATE VIEW workflow_progress AS
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
       count(j.id) FILTER (WHERE j.status = 'ready' AND j.attempt_id > 1) AS ready_retries
FROM workflows w
LEFT JOIN jobs j ON j.workflow_id = w.id
GROUP BY w.id;
COMMENT ON VIEW workflow_progress IS 'Job counts by status for each workflow.';

-- Each attempt with its job name, for admins reading results.
CREATE VIEW job_attempts AS
SELECT r.workflow_id, r.job_id, j.name AS job_name, r.run_id, r.attempt_id, r.status,
       r.return_code, r.started_at, r.completed_at, r.exec_time_s, r.peak_memory_bytes,
       r.cpu_time_s, r.worker_id
FROM results r
JOIN jobs j ON j.id = r.job_id;
COMMENT ON VIEW job_attempts IS 'Results joined with job names: one row per attempt.';

-- Hot table: vacuum it early so dead tuples from status updates do not pile up.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
