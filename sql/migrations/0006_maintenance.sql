-- torc-hpc schema, migration 0006: maintenance and retention.
-- Deletes that do not scale with workers × jobs, a "being deleted" mark, an index for pruning events by
-- time, and autovacuum settings that keep the hot jobs table's dead tuples bounded during a run.

-- A workflow whose delete (or archive) has begun: nobody claims from it (canceled_at is set with it),
-- commands refuse it, and `torc workflows delete` finishes what a crash interrupted.
ALTER TABLE workflows ADD COLUMN deleting_at timestamptz;
COMMENT ON COLUMN workflows.deleting_at IS 'Set when `torc workflows delete` or `archive` starts removing it (in bounded chunks); a crash leaves it set and a re-run of delete finishes.';

-- References to workers and failure handlers without foreign keys. Their ON DELETE SET NULL actions ran
-- `UPDATE jobs/results SET … WHERE worker_id = $1` once per deleted worker (and per deleted handler): with
-- no index on those columns, a sequential scan of ALL jobs and results of every workflow per row, so
-- deleting a workflow cost workers × (jobs + results). Indexing the columns instead would add an index
-- entry to every job transition (status is indexed, so those updates are never HOT and write every index)
-- and to every result. The constraints protected nothing: worker and handler rows are deleted only with
-- their workflow, whose jobs and results go in the same delete. Dropping them also removes the
-- FOR KEY SHARE check of the worker row on every claim and every result insert.
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_worker_id_fkey;
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_failure_handler_id_fkey;
ALTER TABLE results DROP CONSTRAINT IF EXISTS results_worker_id_fkey;
COMMENT ON COLUMN jobs.worker_id IS 'Worker running it (status running), else the last one that did (workers.id; no foreign key: both go only with their workflow).';
COMMENT ON COLUMN jobs.failure_handler_id IS 'Failure handler whose rules decide retries (failure_handlers.id; no foreign key: both go only with their workflow).';
COMMENT ON COLUMN results.worker_id IS 'Worker that ran it (workers.id; no foreign key: both go only with their workflow).';

-- The workflow delete's cascade to workers (and `torc workflows archive`) find a workflow's workers here;
-- workers_live_idx covers live ones only.
CREATE INDEX workers_workflow_idx ON workers (workflow_id);

-- `torc db prune --events-before DATE` finds old events without reading newer ones. Events are appended
-- in time order, so a BRIN index (a few pages per GB) narrows the search to the old blocks.
CREATE INDEX events_ts_brin ON events USING brin (ts) WITH (autosummarize = on);

-- The hot table: every claim, completion and unblock rewrites a row (never HOT: status is indexed).
-- Vacuum it after a fixed number of dead rows rather than a fraction of the table (2 % of a 10M-job table
-- is 200k dead rows before the first vacuum), and without cost-based throttling so a vacuum of a large
-- jobs table ends before the next batch of dead rows is due. Inserted workflows are vacuumed soon after
-- creation too, so index-only counts (status_counts) find the visibility map set.
-- Measured in README "Sizing" and docs/benchmarks.md (bench/vacuum.py): the server's autovacuum_naptime
-- bounds it too (10 s recommended).
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
                      autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 100000,
                      autovacuum_vacuum_cost_delay = 0);
