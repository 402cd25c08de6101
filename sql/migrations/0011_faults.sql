-- Faults (issue 9): which claimed jobs a dead worker really started, recovery scripts run at most once per
-- failed attempt and within a time limit, and interrupts (Ctrl-C) that do not use up a job's retries.

-- A worker appends one line per job to this file just before starting it (one write(), no fsync: the page
-- cache survives a kill -9). After the worker dies, the reconciler reads it to tell the jobs it started
-- (recorded as usual) from those it only held (given back: ready, same attempt, no result).
ALTER TABLE workers ADD COLUMN start_journal text;
COMMENT ON COLUMN workers.start_journal IS
    'Path of the worker''s start journal (one line per job it started); read by the reconciler after the worker dies. NULL: no journal (jobs it held count as started).';

ALTER TABLE failure_handler_rules ADD COLUMN recovery_timeout_s integer CHECK (recovery_timeout_s > 0);
COMMENT ON COLUMN failure_handler_rules.recovery_timeout_s IS
    'Seconds the recovery script may run before its process group is killed (a failed recovery). NULL: torc''s default (limits.RECOVERY_TIMEOUT_S).';

ALTER TABLE jobs ADD COLUMN interrupted_attempts integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN jobs.interrupted_attempts IS
    'Attempts of this run that were interrupted (Ctrl-C of torc run): they keep their result row but do not count against a failure handler''s max_retries.';

CREATE TABLE recovery_claims (
    workflow_id bigint      NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    job_id      bigint      NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    run_id      integer     NOT NULL,
    attempt_id  integer     NOT NULL,
    worker_id   bigint,
    claimed_by  text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (job_id, run_id, attempt_id)
);
COMMENT ON TABLE recovery_claims IS
    'One row per failed attempt whose recovery script was started: whoever inserts it runs the script, so it runs at most once per attempt.';
COMMENT ON COLUMN recovery_claims.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN recovery_claims.job_id IS 'The job whose attempt failed.';
COMMENT ON COLUMN recovery_claims.run_id IS 'workflows.run_id of that attempt.';
COMMENT ON COLUMN recovery_claims.attempt_id IS 'The attempt that failed.';
COMMENT ON COLUMN recovery_claims.worker_id IS 'The worker running the script; NULL when a torc run/worker/watch runs it for an orphaned job.';
COMMENT ON COLUMN recovery_claims.claimed_by IS 'Who runs it: "worker N", or host:pid of the command running an orphan''s script.';
COMMENT ON COLUMN recovery_claims.claimed_at IS 'When the script was claimed (just before it started).';
COMMENT ON COLUMN recovery_claims.expires_at IS 'Claim time + the script''s time limit + a grace: after it, a job still waiting on this script was abandoned (its runner died) and its recovery counts as failed.';
CREATE INDEX recovery_claims_workflow_idx ON recovery_claims (workflow_id);

ALTER TABLE recovery_claims ENABLE ROW LEVEL SECURITY;
CREATE POLICY recovery_claims_read ON recovery_claims FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = recovery_claims.workflow_id));
COMMENT ON POLICY recovery_claims_read ON recovery_claims IS
    'Rows of workflows the role may see (its own; every owner''s for watchers and admins).';
CREATE POLICY recovery_claims_owner ON recovery_claims
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = recovery_claims.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = recovery_claims.workflow_id AND w.owner = current_user));
COMMENT ON POLICY recovery_claims_owner ON recovery_claims IS
    'The workflow''s owner (its CLI, its workers) claims its recovery scripts.';
CREATE POLICY recovery_claims_watcher ON recovery_claims FOR INSERT WITH CHECK ((SELECT torc_granted('watcher')));
COMMENT ON POLICY recovery_claims_watcher ON recovery_claims IS
    'The cluster watcher claims the recovery scripts of jobs orphaned by dead allocations (it runs them as their owner).';
