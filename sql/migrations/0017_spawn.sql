-- Dynamic jobs (Torc's dynamic_jobs / spawn_jobs; issue 14): a running job adds jobs blocked on itself with
-- `torc jobs spawn`, one transaction per call; each lineage (an independent chain of spawns) may spawn at
-- most dynamic_max_iterations times. See docs/torc-compat.md §4.16.

ALTER TABLE workflows ADD COLUMN dynamic_max_iterations integer NOT NULL DEFAULT 1000 CHECK (dynamic_max_iterations > 0);
COMMENT ON COLUMN workflows.dynamic_max_iterations IS 'The spec''s dynamic_jobs.max_iterations: how many spawns each lineage may make (Torc''s default 1000 when the spec says nothing).';

CREATE TABLE spawn_lineages (
    workflow_id    bigint      NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    lineage        text        NOT NULL,
    iterations     integer     NOT NULL DEFAULT 0,
    state          jsonb,
    converged_at   timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by_job bigint,
    PRIMARY KEY (workflow_id, lineage)
);
COMMENT ON TABLE spawn_lineages IS 'One row per lineage of spawning jobs: how many spawns it made, the state its last call left, and whether it converged (an empty batch).';
COMMENT ON COLUMN spawn_lineages.workflow_id IS 'Owning workflow.';
COMMENT ON COLUMN spawn_lineages.lineage IS 'The lineage''s name (torc jobs spawn --lineage; spawned jobs get it as TORC_ORCHESTRATOR_LINEAGE_ID).';
COMMENT ON COLUMN spawn_lineages.iterations IS 'Spawns made so far (a batch with jobs); at most workflows.dynamic_max_iterations.';
COMMENT ON COLUMN spawn_lineages.state IS 'The JSON state the last call passed (--state), for the next generation to read.';
COMMENT ON COLUMN spawn_lineages.converged_at IS 'When a call passed an empty batch (the lineage is done); NULL: still iterating.';
COMMENT ON COLUMN spawn_lineages.updated_at IS 'When the last call wrote this row.';
COMMENT ON COLUMN spawn_lineages.updated_by_job IS 'The job that made the last call (jobs.id; no foreign key: both go with the workflow).';

ALTER TABLE spawn_lineages ENABLE ROW LEVEL SECURITY;
CREATE POLICY spawn_lineages_read ON spawn_lineages FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = spawn_lineages.workflow_id));
COMMENT ON POLICY spawn_lineages_read ON spawn_lineages IS 'Rows of workflows the role may see (its own; every owner''s for watchers and admins).';
CREATE POLICY spawn_lineages_owner ON spawn_lineages
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = spawn_lineages.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = spawn_lineages.workflow_id AND w.owner = current_user));
COMMENT ON POLICY spawn_lineages_owner ON spawn_lineages IS 'The workflow''s owner (its jobs, which spawn) reads and writes its rows.';
