-- Dataset finalization (Torc's datasets, issue 14; docs/torc-compat.md §4.4): when every job that writes a
-- dataset has finished, a worker walks its directory (bounded) and records its file count, size and
-- fingerprint. The trigger is an internal workflow action (action_type finalize_dataset, on_jobs_complete
-- over the writers, a negative position) so it rides on the same counters, once-only claim and re-arm.

ALTER TABLE workflow_actions DROP CONSTRAINT workflow_actions_action_type_check;
ALTER TABLE workflow_actions ADD CONSTRAINT workflow_actions_action_type_check
    CHECK (action_type IN ('run_commands', 'schedule_nodes', 'finalize_dataset'));
COMMENT ON COLUMN workflow_actions.action_type IS 'run_commands (in the workflow''s working_dir, one after another), schedule_nodes (Slurm allocations of a slurm_schedulers entry), or finalize_dataset (torc''s own: fingerprint a dataset once its writers finished).';
COMMENT ON COLUMN workflow_actions.position IS '0-based order in the spec; negative: torc''s own actions (-1 - i finalizes the i-th dataset).';

ALTER TABLE datasets
    ADD COLUMN finalized_at timestamptz,
    ADD COLUMN file_count   bigint,
    ADD COLUMN total_bytes  bigint,
    ADD COLUMN digest       text,
    ADD COLUMN finalize_note text;
COMMENT ON COLUMN datasets.hash_mode IS 'How it is fingerprinted when finalized: manifest (paths, sizes, modification times), content (paths and file contents), none (counts only).';
COMMENT ON COLUMN datasets.finalized_at IS 'When a worker last recorded it, after its writers finished (a reset of a writer re-arms it; the next finalization overwrites these columns); NULL: never.';
COMMENT ON COLUMN datasets.file_count IS 'Regular files under path when finalized.';
COMMENT ON COLUMN datasets.total_bytes IS 'Their total size in bytes when finalized.';
COMMENT ON COLUMN datasets.digest IS 'sha256 (hex) of the fingerprint hash_mode names; NULL for none.';
COMMENT ON COLUMN datasets.finalize_note IS 'Why the fingerprint is partial or missing (walk bounds, content bytes capped, a writer that did not complete).';
