"""`torc mcp` on a shared database with row-level security (a private PostgreSQL with passwords and the
roles alice and bob, users, and watch, the cluster watcher): the server connects as its user and sees
exactly what that role sees; decisions record the role; the cluster watcher never runs an agent on
someone else's workflow."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Torc
from tests.mcp.conftest import data, events_of, make_pending_workflow, with_client
from tests.mcp.test_ai_recovery import _agent
from tests.security.conftest import cluster_db, private_pg, role_url  # noqa: F401 (fixtures)


@pytest.fixture
def people(cluster_db, tmp_path):  # noqa: F811
    made = {}
    for role in ("alice", "bob", "watch"):
        (tmp_path / role).mkdir()
        made[role] = Torc(role_url(cluster_db, role), tmp_path / role)
    return made


def test_each_role_sees_and_decides_only_its_own(people):
    alice, bob, watch = people["alice"], people["bob"], people["watch"]
    wf, jobs = make_pending_workflow(alice)
    bobs_wf, _ = make_pending_workflow(bob)
    fetch = jobs["fetch"]["id"]

    async def as_bob(client):
        return (await client.call_tool("list_pending_failed_jobs", {"workflow_id": wf}),
                await client.call_tool("get_job_details", {"job_id": fetch}),
                await client.call_tool("classify_and_resolve_failures", {
                    "workflow_id": bobs_wf, "dry_run": False,
                    "classifications": [{"job_id": fetch, "action": "fail", "reason": "not mine"}]}))

    listing, details, classify = with_client(bob, as_bob, name="bobs-agent")
    assert listing.is_error and listing.content[0].text == f"workflow {wf} does not exist (see `torc workflows list`)"
    assert details.is_error and f"job {fetch} does not exist (or your database role cannot see it)" in details.content[0].text
    assert classify.is_error
    assert data(classify)["results"][0]["message"] == f"job {fetch} does not exist (or your database role cannot see it)"

    async def as_alice(client):
        return await client.call_tool("classify_and_resolve_failures", {
            "workflow_id": wf, "dry_run": False,
            "classifications": [{"job_id": fetch, "action": "retry", "reason": "transient"}]})

    applied = with_client(alice, as_alice, name="alices-agent")
    assert not applied.is_error, applied.content
    assert data(applied)["decided_by"] == {"via": "mcp", "name": "alices-agent", "db_role": "alice"}
    from torc_hpc.db import Database

    with Database(alice.url) as db:
        retry = next(e for e in db.all("list_events", workflow_id=wf, after_id=0, limit=1000) if e["kind"] == "retry")
    assert retry["detail"]["db_role"] == "alice"

    # The cluster watcher sees bob's pending jobs but never starts an agent for them (nor for alice's).
    cron = watch("watch", "--all", "--once", "--ai-recovery", "--format", "json", "--ai-agent", _agent(),
                 check=False, timeout=180)
    reports = [json.loads(line) for line in cron.stdout.strip().splitlines()]
    bobs = next(r for r in reports if r["workflow_id"] == bobs_wf)
    assert bobs["ai_agent"]["ran"] is False and "only as the workflow's owner" in bobs["ai_agent"]["reason"]

    # bob's own watcher does run it, and the lease row is his to write.
    rc_proc = bob("watch", bobs_wf, "--once", "--ai-recovery", "--format", "json", "--ai-agent", _agent(),
                  check=False, timeout=180)
    report = json.loads(rc_proc.stdout.strip().splitlines()[-1])
    assert report["ai_agent"]["outcome"] == "ok", (report, rc_proc.stderr)
    assert any(e["kind"] == "ai_agent_finished" for e in events_of(bob, bobs_wf))
