-- torc-hpc schema, migration 0015: allocations shared by several workflows of one owner.
--
-- The cron watcher packs small workflows of one owner into one allocation whose worker serves them all
-- (`torc worker --workflows 3,7,9`). allocations.workflow_id stays the allocation's home (its script and
-- logs live in that workflow's output directory; row-level security keys on it); every workflow a packed
-- allocation serves, the home included, has a row here. An allocation of one workflow has none.

CREATE TABLE allocation_workflows (
    allocation_id bigint NOT NULL REFERENCES allocations (id) ON DELETE CASCADE,
    workflow_id   bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    PRIMARY KEY (allocation_id, workflow_id)
);
COMMENT ON TABLE allocation_workflows IS 'The workflows a packed allocation serves (all of one owner, its home included); allocations of one workflow have no rows here.';
COMMENT ON COLUMN allocation_workflows.allocation_id IS 'The packed allocation.';
COMMENT ON COLUMN allocation_workflows.workflow_id IS 'One workflow its worker serves.';
CREATE INDEX allocation_workflows_workflow_idx ON allocation_workflows (workflow_id);

ALTER TABLE allocation_workflows ENABLE ROW LEVEL SECURITY;
CREATE POLICY allocation_workflows_read ON allocation_workflows FOR SELECT
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = allocation_workflows.workflow_id));
COMMENT ON POLICY allocation_workflows_read ON allocation_workflows IS 'Rows of workflows the role may see.';
CREATE POLICY allocation_workflows_owner ON allocation_workflows
    USING (EXISTS (SELECT 1 FROM workflows w WHERE w.id = allocation_workflows.workflow_id AND w.owner = current_user))
    WITH CHECK (EXISTS (SELECT 1 FROM workflows w WHERE w.id = allocation_workflows.workflow_id AND w.owner = current_user));
COMMENT ON POLICY allocation_workflows_owner ON allocation_workflows IS 'The workflow''s owner reads and writes its rows.';
CREATE POLICY allocation_workflows_watcher ON allocation_workflows
    USING ((SELECT torc_granted('watcher'))) WITH CHECK ((SELECT torc_granted('watcher')));
COMMENT ON POLICY allocation_workflows_watcher ON allocation_workflows IS 'The cluster watcher records the workflows of the packed allocations it submits (as their owner).';
