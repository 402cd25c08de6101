-- torc-hpc schema, migration 0002: Slurm allocations and the spec's allocation shapes.

CREATE TABLE slurm_schedulers (
    workflow_id   bigint  NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    name          text    NOT NULL,
    account       text,
    partition     text,
    walltime_s    integer NOT NULL,
    nodes         integer NOT NULL DEFAULT 1,
    cpus_per_node integer,
    mem           text,
    qos           text,
    gres          text,
    extra         text,
    PRIMARY KEY (workflow_id, name)
);
COMMENT ON TABLE slurm_schedulers IS 'Allocation shapes from the spec''s slurm_schedulers; jobs name one in jobs.scheduler.';
COMMENT ON COLUMN slurm_schedulers.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN slurm_schedulers.name IS 'Name jobs refer to.';
COMMENT ON COLUMN slurm_schedulers.account IS 'sbatch --account (the command line may override it).';
COMMENT ON COLUMN slurm_schedulers.partition IS 'sbatch --partition.';
COMMENT ON COLUMN slurm_schedulers.walltime_s IS 'sbatch --time, in seconds.';
COMMENT ON COLUMN slurm_schedulers.nodes IS 'sbatch --nodes; one worker runs per node.';
COMMENT ON COLUMN slurm_schedulers.cpus_per_node IS 'CPUs to ask for per node; NULL: sized from the jobs.';
COMMENT ON COLUMN slurm_schedulers.mem IS 'sbatch --mem (per node), e.g. 16g; NULL: sized from the jobs.';
COMMENT ON COLUMN slurm_schedulers.qos IS 'sbatch --qos.';
COMMENT ON COLUMN slurm_schedulers.gres IS 'sbatch --gres, e.g. gpu:2.';
COMMENT ON COLUMN slurm_schedulers.extra IS 'Extra sbatch arguments, verbatim.';

CREATE TABLE allocations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id   bigint      NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    slurm_job_id  text UNIQUE,
    scheduler     text,
    account       text,
    partition     text,
    nodes         integer     NOT NULL DEFAULT 1,
    cpus_per_node integer,
    mem           text,
    walltime_s    integer     NOT NULL,
    sbatch_args   text[]      NOT NULL DEFAULT '{}',
    script_path   text,
    state         text        NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('submit_failed', 'pending', 'running', 'ended', 'unknown')),
    sacct_state   text,
    exit_code     text,
    submitted_by  text        NOT NULL,
    reason        text,
    error         text,
    submitted_at  timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    ended_at      timestamptz,
    checked_at    timestamptz
);
COMMENT ON TABLE allocations IS 'Every sbatch torc made (or tried) for a workflow, with its Slurm state as last seen.';
COMMENT ON COLUMN allocations.id IS 'torc''s id for the allocation (also in the script''s file name).';
COMMENT ON COLUMN allocations.workflow_id IS 'Workflow whose jobs it runs.';
COMMENT ON COLUMN allocations.slurm_job_id IS 'Slurm job id from sbatch --parsable; NULL when sbatch failed.';
COMMENT ON COLUMN allocations.scheduler IS 'slurm_schedulers entry it was shaped by; NULL: shaped from the jobs.';
COMMENT ON COLUMN allocations.account IS 'sbatch --account.';
COMMENT ON COLUMN allocations.partition IS 'sbatch --partition.';
COMMENT ON COLUMN allocations.nodes IS 'Nodes requested.';
COMMENT ON COLUMN allocations.cpus_per_node IS 'CPUs requested per node.';
COMMENT ON COLUMN allocations.mem IS 'Memory requested per node.';
COMMENT ON COLUMN allocations.walltime_s IS 'Walltime requested, in seconds.';
COMMENT ON COLUMN allocations.sbatch_args IS 'The #SBATCH arguments used.';
COMMENT ON COLUMN allocations.script_path IS 'The submitted script, kept for inspection (also when sbatch failed).';
COMMENT ON COLUMN allocations.state IS 'submit_failed, pending, running, ended or unknown (torc''s reduction of the Slurm state).';
COMMENT ON COLUMN allocations.sacct_state IS 'Final state from sacct (COMPLETED, TIMEOUT, CANCELLED by N, FAILED, OUT_OF_MEMORY, NODE_FAIL, ...).';
COMMENT ON COLUMN allocations.exit_code IS 'sacct ExitCode (code:signal).';
COMMENT ON COLUMN allocations.submitted_by IS 'submit-slurm, watch, ...';
COMMENT ON COLUMN allocations.reason IS 'Why it was submitted (the auto-schedule decision).';
COMMENT ON COLUMN allocations.error IS 'sbatch''s error output when submission failed.';
COMMENT ON COLUMN allocations.submitted_at IS 'When sbatch was called.';
COMMENT ON COLUMN allocations.started_at IS 'Start reported by Slurm.';
COMMENT ON COLUMN allocations.ended_at IS 'End reported by Slurm.';
COMMENT ON COLUMN allocations.checked_at IS 'Last time squeue/sacct was asked about it.';
CREATE INDEX allocations_active_idx ON allocations (workflow_id) WHERE state IN ('pending', 'running', 'unknown');
CREATE INDEX allocations_workflow_idx ON allocations (workflow_id, id);
