-- torc-hpc schema, migration 0007: AI-assisted recovery (`torc watch --ai-recovery`).
-- One row per workflow: the lease that keeps agent runs one at a time, and what the last run did.
-- The lease is a row with an expiry, not a session lock: it survives a crashed watcher (the expiry frees
-- it) and works behind a transaction-mode pooler.

CREATE TABLE ai_recovery_state (
    workflow_id      bigint      PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
    holder           text,
    lease_expires_at timestamptz,
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_outcome     text CHECK (last_outcome IN ('ok', 'failed', 'missing', 'timeout')),
    runs             integer     NOT NULL DEFAULT 0
);
COMMENT ON TABLE ai_recovery_state IS 'Per-workflow state of torc watch --ai-recovery: the agent-run lease and the last run.';
COMMENT ON COLUMN ai_recovery_state.workflow_id IS 'The workflow.';
COMMENT ON COLUMN ai_recovery_state.holder IS 'Who runs the agent now (host:pid:token); NULL when no run is in progress.';
COMMENT ON COLUMN ai_recovery_state.lease_expires_at IS 'The lease ends here even if its holder died (agent time limit plus a grace); NULL: free.';
COMMENT ON COLUMN ai_recovery_state.last_started_at IS 'Start of the last agent run (it saw the pending_failed jobs that existed then).';
COMMENT ON COLUMN ai_recovery_state.last_finished_at IS 'End of the last agent run.';
COMMENT ON COLUMN ai_recovery_state.last_outcome IS 'ok (exit 0), failed (non-zero exit), missing (command not found) or timeout (stopped at the time limit).';
COMMENT ON COLUMN ai_recovery_state.runs IS 'Agent runs started for this workflow.';

-- Row-level security, as for every table with workflow data (the pattern in 0005_security.sql). Only a
-- workflow's owner runs an agent for it (the cluster watcher skips others' workflows), so only the owner
-- writes here; watchers and admins read.
ALTER TABLE ai_recovery_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_recovery_state_read ON ai_recovery_state FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = ai_recovery_state.workflow_id));
COMMENT ON POLICY ai_recovery_state_read ON ai_recovery_state IS 'Rows of workflows the role may see (its own; every owner''s for watchers and admins).';
CREATE POLICY ai_recovery_state_owner ON ai_recovery_state
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = ai_recovery_state.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = ai_recovery_state.workflow_id AND w.owner = current_user));
COMMENT ON POLICY ai_recovery_state_owner ON ai_recovery_state IS 'The workflow''s owner (whose watcher runs the agent) reads and writes its row.';
