-- bench/maintenance.py: shaping a 1M-job workflow into a run half done, and the probes it reads.
-- (bench only; torc never runs these.)

-- name: add_workers
-- 300 worker rows for the workflow (all stopped), as a run on 300 nodes leaves them.
INSERT INTO workers (workflow_id, hostname, pid, num_cpus, num_gpus, memory_bytes, stopped_at, stop_reason)
SELECT %(wf)s, 'node' || g, 1000 + g, 64, 0, 2^36, now(), 'done' FROM generate_series(1, 300) g
RETURNING id;

-- name: shape_producers
-- Producers 0..149999 ran: completed, every 1000th failed (i mod 1000 = 7); spread over the 300 workers.
UPDATE jobs SET status = CASE WHEN substr(name, 9)::int %% 1000 = 7 THEN 'failed' ELSE 'completed' END::job_status,
                return_code = CASE WHEN substr(name, 9)::int %% 1000 = 7 THEN 1 ELSE 0 END,
                worker_id = %(first_worker)s + substr(name, 9)::int %% 300, started_at = now() - interval '1 hour'
WHERE workflow_id = %(wf)s AND name LIKE 'produce\_%%' AND substr(name, 9)::int < 150000;

-- name: shape_consumers
-- Consumers of a failed producer are canceled; of two completed ones: completed (i < 75000) or ready;
-- the rest wait (blocked, counting their unfinished producers). Consumer i reads producers i and i + 1,
-- whose states follow from shape_producers' rule (no join).
WITH c AS (
    SELECT id, i,
           CASE WHEN i >= 150000 THEN 'waiting' WHEN i %% 1000 = 7 THEN 'failed' ELSE 'completed' END AS ls,
           CASE WHEN i + 1 >= 150000 THEN 'waiting' WHEN (i + 1) %% 1000 = 7 THEN 'failed' ELSE 'completed' END AS rs
    FROM (SELECT id, substr(name, 9)::int AS i FROM jobs
          WHERE workflow_id = %(wf)s AND name LIKE 'combine\_%%') s
)
UPDATE jobs j
SET status = CASE WHEN c.ls = 'failed' OR c.rs = 'failed' THEN 'canceled'
                  WHEN c.ls = 'completed' AND c.rs = 'completed' AND c.i < 75000 THEN 'completed'
                  WHEN c.ls = 'completed' AND c.rs = 'completed' THEN 'ready'
                  ELSE 'blocked' END::job_status,
    unfinished_parents = CASE WHEN c.ls = 'failed' OR c.rs = 'failed' THEN j.unfinished_parents
                              ELSE (c.ls <> 'completed')::int + (c.rs <> 'completed')::int END,
    worker_id = CASE WHEN c.ls = 'completed' AND c.rs = 'completed' AND c.i < 75000
                     THEN %(first_worker)s + c.i %% 300 END,
    ready_at = now()
FROM c WHERE j.id = c.id;

-- name: shape_results
-- One result per job that ran.
INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, started_at, completed_at,
                     exec_time_s, worker_id)
SELECT workflow_id, id, 1, 1, coalesce(return_code, 0), status, started_at, coalesce(started_at, now()) + interval '5 s', 5, worker_id
FROM jobs WHERE workflow_id = %(wf)s AND status IN ('completed', 'failed');

-- name: shape_events
-- The events those transitions leave: claimed and completed/failed per job that ran, canceled per cascade.
INSERT INTO events (workflow_id, job_id, kind, from_status, to_status, attempt_id, run_id, worker_id, detail)
SELECT workflow_id, id, k.kind, k.f::job_status, k.t::job_status, 1, 1, worker_id, '{"return_code": 0}'::jsonb
FROM jobs
CROSS JOIN LATERAL (VALUES ('claimed', 'ready', 'running'), (status::text, 'running', status::text)) k(kind, f, t)
WHERE workflow_id = %(wf)s AND status IN ('completed', 'failed')
UNION ALL
SELECT workflow_id, id, 'canceled', 'blocked', 'canceled', 1, 1, NULL, '{"because_of_job": 0}'::jsonb
FROM jobs WHERE workflow_id = %(wf)s AND status = 'canceled';

-- name: status_summary
-- Jobs by status.
SELECT status::text AS status, count(*) AS n FROM jobs WHERE workflow_id = %(wf)s GROUP BY 1 ORDER BY 1;

-- name: tuples_written
-- Rows inserted, updated and deleted so far in every table of this database.
SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint AS n FROM pg_stat_user_tables;

-- name: wal_lsn
-- The current WAL position.
SELECT pg_current_wal_lsn()::text AS lsn;

-- name: wal_bytes
-- WAL written since %(lsn)s.
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %(lsn)s::pg_lsn)::bigint AS n;

-- name: xact_age
-- How long the given backend's current transaction has been open (NULL when idle).
SELECT extract(epoch FROM clock_timestamp() - xact_start)::float8 AS s FROM pg_stat_activity
WHERE pid = %(pid)s AND state <> 'idle';
