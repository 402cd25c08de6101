-- Row-level security must not take the ready-jobs index away from the people it protects.
--
-- jobs_ready_idx keyed the label as coalesce(label, ''). For a role that row-level security applies to (every
-- user of a shared database; not the schema owner) PostgreSQL may use a condition as an index condition
-- only if it cannot leak row contents, and it treats every COALESCE as possibly leaky: such a role's claim,
-- idle probe and "anything ready?" checks fell back to reading and sorting every job of the workflow
-- (20,000 jobs: 11 ms per claim instead of 0.2; a million: a second). A stored column holding the same key
-- is compared with plain text equality, which is leakproof, so the index serves everyone again.
-- Adding it rewrites the jobs table once (an ACCESS EXCLUSIVE lock for as long as that takes).
ALTER TABLE jobs ADD COLUMN label_key text GENERATED ALWAYS AS (coalesce(label, '')) STORED;
COMMENT ON COLUMN jobs.label_key IS 'coalesce(label, ''''): the label as the claim compares it (''''= unlabeled); kept by PostgreSQL, never written.';

DROP INDEX IF EXISTS jobs_ready_idx;
CREATE INDEX jobs_ready_idx ON jobs (workflow_id, label_key, priority DESC, id) WHERE status = 'ready';
COMMENT ON INDEX jobs_ready_idx IS 'Ready jobs of a workflow in claim order (priority, then id) per label (label_key; ''''= unlabeled): the claim''s range scan, for owners and row-level-security roles alike.';

-- The same rule keeps `status = 'running'` (an enum comparison) out of the index conditions on
-- jobs_workflow_status_idx for such a role: "is anything of this workflow running?" walked every blocked
-- and ready entry of the workflow first. A partial index needs no such condition (its predicate is proved
-- from the query, which is allowed), so an idle worker's check is one probe for everyone. Its predicate also
-- says `started_at IS NOT NULL` (true of every running job: both claims set it, and the constraint below
-- makes sure of it, so the index never misses a running job) for the reason 0014 gives:
-- only a statement that says so itself (the idle probe) can use the index, so the finish statements stay on
-- jobs_pkey when stale statistics make the planner believe no job runs.
CREATE INDEX jobs_running_workflow_idx ON jobs (workflow_id) WHERE status = 'running' AND started_at IS NOT NULL;
COMMENT ON INDEX jobs_running_workflow_idx IS 'Running jobs per workflow: the idle check''s "anything running?" probe, also under row-level security. started_at IS NOT NULL keeps statements that do not say it (the finish statements) on jobs_pkey.';

UPDATE jobs SET started_at = now() WHERE status = 'running' AND started_at IS NULL;   -- only hand-made rows
ALTER TABLE jobs ADD CONSTRAINT jobs_running_has_started CHECK (status <> 'running' OR started_at IS NOT NULL);
COMMENT ON CONSTRAINT jobs_running_has_started ON jobs IS 'A running job has started_at (set by the claim); jobs_running_workflow_idx relies on it.';

-- Counting a workflow's jobs by status (status, the watcher's pass, the watch view) is an index-only scan of
-- jobs_workflow_status_idx for the owner. A role under row-level security must also evaluate its policy
-- (owner = current_user OR a grant) on every row, and without `owner` in the index that meant a heap visit
-- per job (200,000 rows in 50 workflows: 4,003 buffers against 19). With owner carried in the index the
-- policy is evaluated from the index entry, and the scan stays index-only for every role.
DROP INDEX IF EXISTS jobs_workflow_status_idx;
CREATE INDEX jobs_workflow_status_idx ON jobs (workflow_id, status) INCLUDE (owner);
COMMENT ON INDEX jobs_workflow_status_idx IS 'Jobs of a workflow by status (counts, listings by status); owner is included so that row-level security''s check needs no heap visit.';

-- The watcher's other per-pass questions name a job status too: --recover's failed and terminated jobs, the
-- AI recovery's pending_failed ones (and which workflows have any). For its role each was a walk of the
-- workflow's entries with a heap visit per job; with this partial index they cost what the jobs they find
-- cost (status and owner are included, so counting them is index-only). Jobs enter these states rarely, so
-- the index costs the hot path nothing.
CREATE INDEX jobs_failures_idx ON jobs (workflow_id, id) INCLUDE (status, owner)
    WHERE status IN ('failed', 'terminated', 'pending_failed');
COMMENT ON INDEX jobs_failures_idx IS 'Failed, terminated and pending_failed jobs per workflow: --recover and the AI recovery find them in O(found), also under row-level security.';
