-- torc-hpc schema, migration 0012: the watcher holds no session state, and allocations Slurm forgot end.
--
-- A session advisory lock stays on a pooled server connection after the watcher leaves (pgbouncer,
-- transaction mode): the watcher now takes a lease row instead, the same with or without a pooler. It is
-- taken with one statement, renewed between the cycle's steps, cleared at the end, and expires by itself
-- when a watcher dies. An allocation that neither squeue nor sacct knows (no accounting, purged records, a
-- rebuilt cluster) is ended after a grace period instead of counting as active for ever.

ALTER TABLE watch_state ADD COLUMN leased_by text;
ALTER TABLE watch_state ADD COLUMN leased_until timestamptz;
COMMENT ON COLUMN watch_state.leased_by IS 'The watcher working on this workflow now (host:pid:random); NULL: nobody. Others skip the workflow while leased_until is in the future.';
COMMENT ON COLUMN watch_state.leased_until IS 'When the lease expires unless renewed (a crashed watcher''s lease ends by itself).';
CREATE INDEX watch_state_leased_idx ON watch_state (leased_by) WHERE leased_by IS NOT NULL;

ALTER TABLE allocations ADD COLUMN unknown_since timestamptz;
COMMENT ON COLUMN allocations.unknown_since IS 'When squeue and sacct first both did not know this allocation (NULL: known at the last check). After the grace period (watch.unknown_grace) it is ended, cause unknown.';

