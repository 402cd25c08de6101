-- Labels route jobs to workers (Torc's `label`; `torc run --label`, `torc worker --label`): a worker claims
-- only jobs whose label equals its own, an unlabeled worker only unlabeled jobs. The claim walks the
-- ready-jobs index in claim order within one label, so it stays an index range scan whatever the mix of
-- labels. coalesce(label, '') makes "unlabeled" an ordinary key ('' is no label: the spec layer turns an
-- empty label into NULL). For unlabeled workflows the index entry keeps its size: the one-byte '' fits the
-- padding before priority (24-byte keys before and after).
DROP INDEX IF EXISTS jobs_ready_idx;
CREATE INDEX jobs_ready_idx ON jobs (workflow_id, (coalesce(label, '')), priority DESC, id) WHERE status = 'ready';
COMMENT ON INDEX jobs_ready_idx IS 'Ready jobs of a workflow in claim order (priority, then id) per label (''''= unlabeled): the claim''s range scan.';
