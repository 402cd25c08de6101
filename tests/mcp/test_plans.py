"""The queries the MCP tools and the watcher's --ai-recovery run per call or per cycle touch only the jobs
they are about (index scans), also on a large workflow, not every job of it."""

from tests.helpers import create
from torc_hpc.db.queries import q


def _plan(db, name, **params) -> str:
    return "\n".join(r["QUERY PLAN"] for r in db.conn.execute("EXPLAIN " + q(name), params).fetchall())


def test_listings_and_the_ai_snapshot_use_indexes_on_a_large_workflow(db):
    wf = create(db, {"name": "big", "jobs": [
        {"name": "j_{i}", "command": "true", "parameters": {"i": "1:20000"}},
        {"name": "after_{i}", "command": "true", "depends_on": ["j_{i}"], "parameters": {"i": "1:20000"}}]})
    # Every job ran once; a hundred failed without a matching rule (trivial SQL: test data only).
    db.conn.execute("INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status) "
                    "SELECT workflow_id, id, 1, 1, 0, 'completed' FROM jobs WHERE workflow_id = %s", (wf,))
    db.conn.execute("UPDATE jobs SET status = 'pending_failed' WHERE workflow_id = %s AND id %% 400 = 0", (wf,))
    db.conn.execute("ANALYZE")
    plans = {
        "jobs_with_last_attempt": _plan(db, "jobs_with_last_attempt", workflow_id=wf, statuses=["pending_failed"],
                                        limit=50),
        "count_jobs_in_statuses": _plan(db, "count_jobs_in_statuses", workflow_id=wf,
                                        statuses=["failed", "terminated"]),
        "ai_recovery_snapshot": _plan(db, "ai_recovery_snapshot", workflow_id=wf),
        "lock_jobs_for_decision": _plan(db, "lock_jobs_for_decision", job_ids=[1, 2, 3]),
        "workflows_with_pending_failed": _plan(db, "workflows_with_pending_failed"),
    }
    for name, plan in plans.items():
        assert "Seq Scan on jobs" not in plan, f"{name}:\n{plan}"
        assert "Seq Scan on results" not in plan, f"{name}:\n{plan}"
