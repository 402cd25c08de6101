-- Retention: pruning old events, and exporting a workflow whole before `torc workflows archive` deletes it.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: prune_events_range
-- How many events are older than %(before)s and the newest id among them (events_ts_brin reads only the
-- old blocks).
SELECT count(*) AS n, max(id) AS upto FROM events WHERE ts < %(before)s;

-- name: prune_events_chunk
-- Delete up to %(chunk)s events older than %(before)s with ids in (%(after)s, %(upto)s], in id order (the
-- primary key: no deleted row is read twice). Returns how many went and the last id deleted.
WITH gone AS (
    DELETE FROM events WHERE id = ANY (ARRAY(
        SELECT id FROM events
        WHERE id > %(after)s AND id <= %(upto)s AND ts < %(before)s
        ORDER BY id LIMIT %(chunk)s))
    RETURNING id
)
SELECT count(*) AS n, max(id) AS last FROM gone;

-- name: archive_quiet
-- Whether a workflow can be archived now: its running jobs and live workers, and its newest event (the
-- delete that follows the export is refused if a newer one appears).
SELECT (SELECT count(*) FROM jobs WHERE workflow_id = %(workflow_id)s AND status = 'running') AS running,
       (SELECT count(*) FROM workers WHERE workflow_id = %(workflow_id)s AND stopped_at IS NULL) AS live_workers,
       (SELECT max(id) FROM events WHERE workflow_id = %(workflow_id)s) AS last_event_id;

-- name: archive_workflow
-- The workflow row, every column.
SELECT * FROM workflows WHERE id = %(workflow_id)s;

-- name: archive_failure_handlers
-- A workflow's failure handlers, every column.
SELECT * FROM failure_handlers WHERE workflow_id = %(workflow_id)s ORDER BY id;

-- name: archive_failure_handler_rules
-- The rules of a workflow's failure handlers, every column.
SELECT r.* FROM failure_handler_rules r JOIN failure_handlers h ON h.id = r.handler_id
WHERE h.workflow_id = %(workflow_id)s
ORDER BY r.handler_id, r.position;

-- name: archive_slurm_schedulers
-- A workflow's allocation shapes, every column.
SELECT * FROM slurm_schedulers WHERE workflow_id = %(workflow_id)s ORDER BY name;

-- name: archive_watch_state
-- A workflow's watcher state, every column.
SELECT * FROM watch_state WHERE workflow_id = %(workflow_id)s;

-- name: archive_workers
-- A workflow's workers, every column.
SELECT * FROM workers WHERE workflow_id = %(workflow_id)s ORDER BY id;

-- name: archive_allocations
-- A workflow's allocations, every column.
SELECT * FROM allocations WHERE workflow_id = %(workflow_id)s ORDER BY id;

-- name: archive_files
-- A workflow's files (Torc's files), every column.
SELECT * FROM files WHERE workflow_id = %(workflow_id)s ORDER BY id;

-- name: archive_user_data
-- A workflow's user_data values, every column.
SELECT * FROM user_data WHERE workflow_id = %(workflow_id)s ORDER BY id;

-- name: archive_datasets
-- A workflow's datasets, every column.
SELECT * FROM datasets WHERE workflow_id = %(workflow_id)s ORDER BY id;

-- name: archive_workflow_actions
-- A workflow's actions, every column.
SELECT * FROM workflow_actions WHERE workflow_id = %(workflow_id)s ORDER BY position;

-- name: archive_recovery_claims
-- A workflow's recovery-script claims (one per failed attempt whose script ran), every column.
SELECT * FROM recovery_claims WHERE workflow_id = %(workflow_id)s ORDER BY job_id, run_id, attempt_id;

-- name: archive_job_files
-- Which job reads or writes which file (streamed).
SELECT * FROM job_files WHERE workflow_id = %(workflow_id)s;

-- name: archive_job_user_data
-- Which job reads or writes which user_data value (streamed).
SELECT * FROM job_user_data WHERE workflow_id = %(workflow_id)s;

-- name: archive_job_datasets
-- Which job reads or writes which dataset (streamed).
SELECT * FROM job_datasets WHERE workflow_id = %(workflow_id)s;

-- name: archive_spawn_lineages
-- A workflow's spawn lineages (dynamic_jobs), every column.
SELECT * FROM spawn_lineages WHERE workflow_id = %(workflow_id)s ORDER BY lineage;

-- name: archive_action_jobs
-- The jobs each action waits for (streamed).
SELECT * FROM action_jobs WHERE workflow_id = %(workflow_id)s;

-- name: archive_jobs
-- A workflow's jobs, every column (streamed through a server-side cursor; physical order).
SELECT * FROM jobs WHERE workflow_id = %(workflow_id)s;

-- name: archive_job_dependencies
-- A workflow's dependency edges (streamed).
SELECT * FROM job_dependencies WHERE workflow_id = %(workflow_id)s;

-- name: archive_results
-- A workflow's results, one per attempt (streamed, in results_workflow_idx order).
SELECT * FROM results WHERE workflow_id = %(workflow_id)s ORDER BY workflow_id, job_id;

-- name: archive_events
-- A workflow's events (streamed, in events_workflow_idx order).
SELECT * FROM events WHERE workflow_id = %(workflow_id)s ORDER BY workflow_id, id;
