"""Finish statements with stale statistics (issue 11): ANALYZE while nothing runs, then put many jobs in
`running`, as at the start of a large run before autovacuum's next ANALYZE. Each finish statement must
find its job(s) by the primary key, in its custom plan and in the generic plan a prepared statement may
switch to, whatever the statistics say.

Before migration 0014 finish_completed, finish_completed_batch, finish_pending_failed and release_jobs
walked the partial index jobs_running_idx instead (every running job, O(running) per completion), and so
did finish_failed's custom plan (its WHERE takes `status = %(from_status)s`, 'running' for a worker's
failure). 0014 keeps that index out of reach of statements that do not name a worker, and release_jobs
compares its worker with IS NOT DISTINCT FROM (docs/scale-notes.md §3).
"""

import psycopg
import pytest

from bench.create import spec_for
from bench.stale import explain, put_running, running_cases
from torc_hpc.db.queries import q

JOBS, RUNNING, WORKERS = 10_000, 2_000, 20

STATEMENTS = ["finish_completed", "finish_completed_batch", "finish_failed", "finish_retry", "finish_pending_failed",
              "release_jobs"]


@pytest.fixture(scope="module")
def stale(admin_url, template_db):
    """A database with a 10,001-job workflow analyzed while idle, then 2,000 jobs running."""
    import os

    from bench.common import with_db
    from torc_hpc.db import Database
    from torc_hpc.spec import expand_workflow, load_spec_text

    name = f"torc_t_stale_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    url = with_db(admin_url, name)
    try:
        s, loc = load_spec_text(spec_for(JOBS), "pairs.yaml")
        with Database(url, migrate=False) as db:
            wf = db.create_workflow(expand_workflow(s, loc), spec_path=None, working_dir="/tmp")
            workers = [db.register_worker(wf, hostname="test", pid=1, num_cpus=8, num_gpus=0, memory_bytes=2**34)
                       for _ in range(WORKERS)]
        conn = psycopg.connect(url, autocommit=True)
        conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = off)")   # keep the statistics stale
        conn.execute("VACUUM ANALYZE jobs")
        put_running(conn, wf, workers, RUNNING)
        yield conn, running_cases(conn, wf, workers[0])
        conn.close()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cases():
    for name in STATEMENTS:
        for generic in (False, True):
            yield pytest.param(name, generic, id=f"{name}-{'generic' if generic else 'custom'}")


@pytest.mark.parametrize("name,generic", list(_cases()))
def test_finish_statement_uses_the_primary_key_with_stale_statistics(stale, name, generic):
    conn, work = stale
    summary, text = explain(conn, q(name), work[name], generic=generic)
    scans = [a for a in summary["jobs_access"] if "Scan" in a]
    assert scans and "jobs_pkey" in scans[0], text
    assert not any("jobs_running_idx" in a for a in summary["jobs_access"]), text


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
def test_the_idle_probe_reads_indexes_with_stale_statistics(stale, generic):
    """An idle worker's check (idle_probe) finds a running and a ready job through the indexes, whatever
    the statistics say: never a scan of the workflow (issue 11 item 3)."""
    conn, work = stale
    wf = work["claim_jobs"]["workflow_id"]
    summary, text = explain(conn, q("idle_probe"), {"workflow_id": wf, "label_key": ""}, generic=generic)
    assert summary["jobs_access"] and all("Index" in a for a in summary["jobs_access"]), text
    assert summary["buffers"] < 100, text
