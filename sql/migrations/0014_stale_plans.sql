-- torc-hpc schema, migration 0014: finish statements reach their job by the primary key whatever the
-- planner's statistics say (issue 11; docs/scale-notes.md §3, tests/db/test_stale_plans.py).
--
-- jobs_running_idx was `ON jobs (worker_id) WHERE status = 'running'`. A statement may use a partial index
-- whenever its WHERE clause implies the index's predicate, and the finish statements' `id = $1 AND status =
-- 'running' AND attempt_id = $2` does. With statistics taken while nothing ran (the start of a large run,
-- before autovacuum's next ANALYZE) the planner believes that index empty, prefers it to jobs_pkey, and each
-- completion then reads every running job (50,000 running: 50,101 buffers and 56 ms instead of 50 and
-- 0.6 ms; a 64-job batch as a generic plan: 3.3 s).
--
-- Adding `worker_id IS NOT NULL` to the predicate keeps the index for the statements that name a worker
-- (`worker_id = $1` implies it: `=` is strict), which look up one worker's running jobs (the reconciler,
-- unacknowledged claims, releases), and makes it unusable for every statement that does not: the finish
-- statements are left with the primary key. The index holds only running jobs, but building it still reads
-- the table once (writes to jobs wait meanwhile; seconds per million jobs).
DROP INDEX IF EXISTS jobs_running_idx;
CREATE INDEX jobs_running_idx ON jobs (worker_id) WHERE status = 'running' AND worker_id IS NOT NULL;
COMMENT ON INDEX jobs_running_idx IS 'Running jobs of one worker (lost-worker repair, releases). worker_id IS NOT NULL keeps statements that do not name a worker (the finish statements) on jobs_pkey whatever the statistics say.';
