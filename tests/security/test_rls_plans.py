"""The hot statements keep their indexes for a role under row-level security.

The schema owner bypasses row-level security, so every plan test run as the owner (tests/db) says nothing
about a shared database's users. For them PostgreSQL evaluates the policies first and lets a condition
into an index scan only if it cannot leak row contents; it counts every COALESCE and every enum comparison
as possibly leaky. Before migration 0020 the ready-jobs index keyed coalesce(label, ''), and a user's claim
and idle check read and sorted every job of the workflow (20,000 jobs: ~11 ms per claim instead of ~0.2).

Here alice (a granted user, password authentication) owns a workflow of 1 gate job, 12,000 blocked jobs
waiting for it and 8,000 ready ones; one job runs; bob's 200,000 jobs fill the rest of the table. Her worker's statements must reach jobs through the
indexes and read a bounded number of pages, with fresh and with stale statistics.
"""

from __future__ import annotations

import pytest

from tests.helpers import create
from tests.security.conftest import role_url
from torc_hpc.db import Database
from torc_hpc.db.queries import q

BIG = 2**50
BLOCKED, READY = 12_000, 8_000


FILLER = 200_000


@pytest.fixture(scope="module")
def alice_big(cluster_db):
    # On a cluster one workflow is a small part of the jobs table; bob's big workflow makes it so here, or the
    # planner would rightly read the whole table for anything that concerns most of it.
    with Database(role_url(cluster_db, "bob"), migrate=False) as bob:
        filler = create(bob, {"name": "filler", "jobs": [
            {"name": "f_{i}", "command": "true", "parameters": {"i": f"1:{FILLER}"}}]})
    with Database(role_url(cluster_db, "alice"), migrate=False) as db:
        wf = create(db, {"name": "rls_plans", "jobs": [
            {"name": "gate", "command": "true", "priority": 9},
            {"name": "wait_{i}", "command": "true", "depends_on": ["gate"], "parameters": {"i": f"1:{BLOCKED}"}},
            {"name": "free_{i}", "command": "true", "parameters": {"i": f"1:{READY}"}}]})
        wid = db.register_worker(wf, hostname="t", pid=1, num_cpus=1, num_gpus=0, memory_bytes=BIG)
        assert [j["name"] for j in db.claim(wf, wid, cpus=1, gpus=0, memory=BIG, limit=1)] == ["gate"]
    with Database(cluster_db.url("torc"), migrate=False) as owner:
        owner.conn.execute("ANALYZE jobs")
    yield wf, wid
    with Database(role_url(cluster_db, "alice"), migrate=False) as db:   # other tests count alice's jobs
        db.delete_workflow(wf)
    with Database(role_url(cluster_db, "bob"), migrate=False) as bob:
        bob.delete_workflow(filler)


def _explain(cluster_db, sql: str, params: dict | None = None, role: str = "alice") -> str:
    """EXPLAIN ANALYZE as `role` (a granted role: row-level security applies), rolled back."""
    with Database(role_url(cluster_db, role), migrate=False) as db:
        assert db.conn.execute("SELECT current_user").fetchone()["current_user"] == role
        with db.conn.transaction(force_rollback=True):    # EXPLAIN ANALYZE of a claim claims
            rows = db.conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params).fetchall()
    return "\n".join(r["QUERY PLAN"] for r in rows)


def _top_buffers(plan: str) -> int:
    """Pages the whole statement read (shared hit + read; dirtied and written are the same pages again)."""
    line = next(line for line in plan.splitlines() if "Buffers: shared" in line)
    return sum(int(part.split("=")[1]) for part in line.split("shared")[1].split()
               if part.startswith(("hit=", "read=")))


def _claim_params(wf: int, wid: int, label_key: str = "") -> dict:
    return {"workflow_id": wf, "worker_id": wid, "cpus": 64, "gpus": 0, "memory": BIG, "limit": 32,
            "time_left_s": 10**9, "scheduler": None, "window": 1000, "label_key": label_key,
            "with_outputs": False, "job_cpus": 64, "job_gpus": 0, "job_memory": BIG}


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale"])
def test_a_users_claim_walks_the_ready_index(cluster_db, alice_big, stale):
    wf, wid = alice_big
    if stale:   # statistics from before the workflow existed: planner defaults for everything
        with Database(cluster_db.url("torc"), migrate=False) as owner:
            owner.conn.execute("DELETE FROM pg_statistic WHERE starelid = 'jobs'::regclass")
    plan = _explain(cluster_db, q("claim_jobs"), _claim_params(wf, wid))
    assert "Seq Scan on jobs" not in plan, plan
    assert "jobs_ready_idx" in plan, plan
    assert "rows=32 loops=1" in plan, plan
    assert _top_buffers(plan) < 1_000, plan     # 32 claimed + their events; not the 20,000-job workflow


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale"])
def test_a_users_idle_check_is_a_few_index_probes(cluster_db, alice_big, stale):
    wf, _ = alice_big
    if stale:
        with Database(cluster_db.url("torc"), migrate=False) as owner:
            owner.conn.execute("DELETE FROM pg_statistic WHERE starelid = 'jobs'::regclass")
    for label_key in ("", "gpu"):
        plan = _explain(cluster_db, q("idle_probe"), {"workflow_id": wf, "label_key": label_key})
        assert "Seq Scan on jobs" not in plan, plan
        assert _top_buffers(plan) < 60, plan    # one running job behind 12,000 blocked ones, 8,000 ready


def test_a_users_multi_workflow_statements_stay_on_the_indexes(cluster_db, alice_big):
    """`torc worker --workflows A,B` / `--all-mine`: the same for the statements that span workflows."""
    wf, wid = alice_big
    plan = _explain(cluster_db, q("idle_probe_many"), {"workflow_ids": [wf, wf + 10_000], "label_key": ""})
    assert "Seq Scan on jobs" not in plan and _top_buffers(plan) < 200, plan
    params = {**_claim_params(wf, wid), "workflow_ids": [wf], "worker_ids": [wid], "rotate": 0}
    del params["workflow_id"], params["worker_id"]
    plan = _explain(cluster_db, q("claim_jobs_multi"), params)
    assert "Seq Scan on jobs" not in plan and "jobs_ready_idx" in plan and _top_buffers(plan) < 1_000, plan
    plan = _explain(cluster_db, q("my_workflows_with_ready_jobs"), {"serving": [], "limit": 64, "label_key": ""})
    assert "Seq Scan on jobs" not in plan and _top_buffers(plan) < 80, plan


def test_the_watchers_status_counts_are_index_only(cluster_db, alice_big):
    """The cluster watcher (a granted role, row-level security applies) counts a workflow's jobs by status on
    every pass. Without `owner` in jobs_workflow_status_idx that was a heap visit per job; with it, an
    index-only scan. Here the workflow is half the table, so the planner rightly reads the table instead; the
    scan is forced onto the index to show the index-only path exists (on a cluster, a workflow is a small
    part of the table and the planner takes it)."""
    wf, _ = alice_big
    with Database(role_url(cluster_db, "bob"), migrate=False) as bob:
        other = create(bob, {"name": "bobs", "jobs": [
            {"name": "b_{i}", "command": "true", "parameters": {"i": f"1:{BLOCKED + READY}"}}]})
    try:
        with Database(cluster_db.url("torc"), migrate=False) as owner:
            owner.conn.execute("VACUUM ANALYZE jobs")
        with Database(role_url(cluster_db, "watch"), migrate=False) as db:
            db.conn.execute("SET enable_seqscan = off")
            db.conn.execute("SET enable_bitmapscan = off")
            db.conn.execute("SET enable_indexscan = off")   # leaves index-only scans: is that path there?
            rows = db.conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q("status_counts"),
                                   {"workflow_id": wf}).fetchall()
            counts = {r["status"]: r["n"] for r in db.all("status_counts", workflow_id=wf)}
        plan = "\n".join(r["QUERY PLAN"] for r in rows)
        assert counts == {"running": 1, "blocked": BLOCKED, "ready": READY}
        # Only the path is asserted, not its buffers: those depend on the visibility map, which VACUUM cannot
        # set while another test's transaction is open on this server (then every entry is a heap fetch).
        assert "Index Only Scan using jobs_workflow_status_idx" in plan, plan
    finally:
        with Database(role_url(cluster_db, "bob"), migrate=False) as bob:
            bob.delete_workflow(other)


def test_the_cron_watchers_workflow_list_probes_each_workflow_once(cluster_db, alice_big):
    """`watch --all`: which workflows still have work. A finished 20,000-job workflow must cost one index probe
    for the watcher's role, not a walk of its entries; unfinished ones (alice's) are still listed."""
    wf, _ = alice_big
    with Database(role_url(cluster_db, "bob"), migrate=False) as bob:
        done = create(bob, {"name": "finished", "jobs": [
            {"name": "d_{i}", "command": "true", "parameters": {"i": f"1:{BLOCKED + READY}"}}]})
    try:
        with Database(cluster_db.url("torc"), migrate=False) as owner:   # as if it had run to the end
            owner.conn.execute("UPDATE jobs SET status = 'completed' WHERE workflow_id = %s", (done,))
            owner.conn.execute("VACUUM ANALYZE jobs")
        with Database(role_url(cluster_db, "watch"), migrate=False) as db:
            ids = [r["id"] for r in db.all("workflows_with_work")]
        plan = _explain(cluster_db, q("workflows_with_work"), role="watch")
        assert wf in ids and done not in ids
        assert "Seq Scan on jobs" not in plan, plan
        assert _top_buffers(plan) < 300, plan   # a few pages per workflow (the walk read 1,163 here)
    finally:
        with Database(role_url(cluster_db, "bob"), migrate=False) as bob:
            bob.delete_workflow(done)


@pytest.mark.parametrize("name", ["recoverable_jobs", "ai_recovery_snapshot", "workflows_with_pending_failed",
                                  "orphaned_jobs"])
def test_the_watchers_per_pass_lookups_cost_what_they_find(cluster_db, alice_big, name):
    """--recover, the AI recovery and the reconciler ask for failed, pending_failed or orphaned running jobs on
    every pass. alice's 20,001-job workflow has none of the first two and one running job whose worker is
    alive: each lookup must be a few index pages for the watcher's role, not a walk of the workflow."""
    wf, _ = alice_big
    with Database(cluster_db.url("torc"), migrate=False) as owner:
        owner.conn.execute("VACUUM ANALYZE jobs")
    params = {} if name == "workflows_with_pending_failed" else {"workflow_id": wf}
    plan = _explain(cluster_db, q(name), params, role="watch")
    assert "Seq Scan on jobs" not in plan, plan
    # ~80 of these are the grant check's first call in the session (catalog reads); the walks read 500+
    assert _top_buffers(plan) < 150, plan
