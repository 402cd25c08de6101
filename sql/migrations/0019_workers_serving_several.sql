-- torc-hpc schema, migration 0019: a worker serving several workflows of its owner (issue 11 item 5).
--
-- A worker may serve several workflows of its owner (`torc worker --workflows 3,7,9`, `--all-mine`). It then
-- has one row here per workflow it serves, registered when it starts serving that workflow: every row is an
-- ordinary worker of one workflow (its running jobs point at it, the reconciler of that workflow watches its
-- heartbeat, row-level security is the workflow's), and the rows of one process share hostname, pid,
-- started time and token, and are refreshed by one statement.
COMMENT ON TABLE workers IS 'Each `torc run` / `torc worker` process, with its heartbeat; one row per workflow it serves (a worker serving several workflows of its owner has several rows sharing hostname, pid and token). A live worker has stopped_at NULL.';
COMMENT ON COLUMN workers.workflow_id IS 'Workflow this row serves (a process serving several workflows has one row for each).';
COMMENT ON COLUMN workers.token IS 'Random token in the environment of every job the worker starts (TORC_WORKER_TOKEN), the same on every row of one process; the cleanup after a lost worker kills only processes carrying this row''s id and token.';
