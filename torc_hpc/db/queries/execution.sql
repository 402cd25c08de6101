-- What a worker needs to run a workflow's jobs beyond the claim: Torc's workflow-level execution settings.
-- Loaded with every other file in this directory by torc_hpc/db/queries.py; names are unique across files.

-- name: worker_settings
-- Read once when a worker starts: the workflow's env (for jobs whose jobs.env is NULL), execution_config,
-- resource_monitor, and whether any job declares outputs (then claims return them; a probe on job_files).
SELECT w.env, w.execution_config, w.resource_monitor,
       EXISTS (SELECT 1 FROM job_files jf WHERE jf.workflow_id = w.id AND jf.direction = 'output') AS has_outputs
FROM workflows w WHERE w.id = %(workflow_id)s;

-- name: insert_attempt_resources
-- An attempt's monitoring summary, written with its result (a step of the worker's finish batch).
WITH ins AS (
    INSERT INTO attempt_resources (workflow_id, job_id, run_id, attempt_id, samples, interval_s, cpu_percent_peak,
                                   cpu_percent_avg, memory_peak_bytes, memory_avg_bytes, processes_peak)
    VALUES (%(workflow_id)s, %(job_id)s, %(run_id)s, %(attempt_id)s, %(samples)s, %(interval_s)s,
            %(cpu_percent_peak)s, %(cpu_percent_avg)s, %(memory_peak_bytes)s, %(memory_avg_bytes)s,
            %(processes_peak)s)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) AS monitoring_rows FROM ins;

-- name: insert_resource_samples
-- One chunk of an attempt's samples (every flush interval while it runs, and at its end).
WITH ins AS (
    INSERT INTO resource_samples (workflow_id, job_id, run_id, attempt_id, chunk, first_at, interval_ms, cpu_percent,
                                  memory_kib, processes)
    VALUES (%(workflow_id)s, %(job_id)s, %(run_id)s, %(attempt_id)s, %(chunk)s, to_timestamp(%(first_at)s),
            %(interval_ms)s, %(cpu_percent)s::real[], %(memory_kib)s::bigint[], %(processes)s::smallint[])
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) AS monitoring_rows FROM ins;

-- name: attempt_resource_series
-- The sample chunks of some jobs' monitored attempts, in time order, for the report (the primary key's range
-- per job: the report asks for the few attempts it plots).
SELECT s.job_id, j.name AS job_name, s.run_id, s.attempt_id, s.chunk, s.first_at, s.interval_ms, s.cpu_percent,
       s.memory_kib, s.processes, j.memory_bytes AS requested_memory_bytes
FROM resource_samples s JOIN jobs j ON j.id = s.job_id
WHERE s.job_id = ANY (%(job_ids)s::bigint[]) AND s.workflow_id = %(workflow_id)s
ORDER BY s.job_id, s.run_id, s.attempt_id, s.chunk;

-- name: attempt_resource_summaries
-- The monitoring summaries of a workflow's attempts (torc results list --wide, the report, MCP).
SELECT a.job_id, j.name AS job_name, a.run_id, a.attempt_id, a.samples, a.interval_s, a.cpu_percent_peak,
       a.cpu_percent_avg, a.memory_peak_bytes, a.memory_avg_bytes, a.processes_peak, j.memory_bytes AS requested_memory_bytes
FROM attempt_resources a JOIN jobs j ON j.id = a.job_id
WHERE a.workflow_id = %(workflow_id)s
ORDER BY a.job_id, a.run_id, a.attempt_id
LIMIT %(limit)s;

-- name: monitoring_storage_bytes
-- Bytes the monitoring tables take (heap, TOAST and indexes): bench/monitoring.py measures bytes per job-hour.
SELECT pg_total_relation_size('resource_samples') + pg_total_relation_size('attempt_resources') AS bytes;
