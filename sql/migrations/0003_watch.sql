-- torc-hpc schema, migration 0003: the watcher's persistent state (shared by cron runs and interactive watchers).

CREATE TABLE watch_state (
    workflow_id           bigint      PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
    submit_options        jsonb       NOT NULL DEFAULT '{}',
    last_auto_schedule_at timestamptz,
    consecutive_failures  integer     NOT NULL DEFAULT 0,
    next_attempt_at       timestamptz,
    paused_reason         text,
    recovery_rounds       integer     NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE watch_state IS 'Per-workflow state of torc watch: auto-schedule timing, back-off and recovery rounds.';
COMMENT ON COLUMN watch_state.workflow_id IS 'The workflow.';
COMMENT ON COLUMN watch_state.submit_options IS 'sbatch options (account, partition, ...) from the last submit-slurm, reused by the watcher.';
COMMENT ON COLUMN watch_state.last_auto_schedule_at IS 'When the watcher last submitted allocations (the cooldown counts from here).';
COMMENT ON COLUMN watch_state.consecutive_failures IS 'Allocations that failed in a row (sbatch refused, or workers died at once).';
COMMENT ON COLUMN watch_state.next_attempt_at IS 'No auto-schedule before this time (back-off).';
COMMENT ON COLUMN watch_state.paused_reason IS 'Set when auto-schedule paused itself; cleared by torc watch WF --resume.';
COMMENT ON COLUMN watch_state.recovery_rounds IS 'How many times --recover has resized and reset jobs.';
COMMENT ON COLUMN watch_state.updated_at IS 'Last change.';

ALTER TABLE allocations ADD COLUMN outcome text CHECK (outcome IN ('ok', 'failed'));
COMMENT ON COLUMN allocations.outcome IS 'The watcher''s judgement for its back-off: ok (a worker started) or failed; NULL until judged.';

CREATE INDEX workers_slurm_job_idx ON workers (slurm_job_id) WHERE slurm_job_id IS NOT NULL;
CREATE INDEX allocations_unjudged_idx ON allocations (workflow_id) WHERE outcome IS NULL;

-- Ready retries (attempt > 1) in waiting order: the watcher counts them and reads the oldest without
-- touching the (possibly huge) rest of the ready jobs.
CREATE INDEX jobs_ready_retry_idx ON jobs (workflow_id, ready_at) WHERE status = 'ready' AND attempt_id > 1;
