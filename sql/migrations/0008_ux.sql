-- torc-hpc schema, migration 0008: what the CLI's listings, summaries and `torc run SPEC` need.

-- `torc run spec.yaml` finds an unfinished workflow made from the same file with the same content.
ALTER TABLE workflows ADD COLUMN spec_sha256 text;
COMMENT ON COLUMN workflows.spec_sha256 IS 'SHA-256 of the spec file''s bytes at creation (with spec_path: was this file already run?).';
CREATE INDEX workflows_spec_idx ON workflows (spec_path, spec_sha256) WHERE spec_sha256 IS NOT NULL;

-- Listings stream in id order from a server-side cursor: the first row must not wait for a sort of the
-- whole workflow. Cost: a status change (never HOT, status is indexed) writes one more index entry.
CREATE INDEX jobs_workflow_id_idx ON jobs (workflow_id, id);
CREATE INDEX results_workflow_id_idx ON results (workflow_id, id);

-- Failures only: the live failure lines of `torc run`, the recent failures of `torc watch` and the
-- handler decisions of the end-of-run summary read these without walking every claim and completion.
CREATE INDEX events_failures_idx ON events (workflow_id, id)
    WHERE kind IN ('failed', 'terminated', 'pending_failed', 'retry', 'recovery_failed', 'recovery_interrupted');
