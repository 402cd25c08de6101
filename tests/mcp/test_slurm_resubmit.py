"""resubmit_workflow through `torc mcp` on the real one-node Slurm cluster: the allocation is submitted
held (the saved sbatch options say --hold), checked, and canceled."""

from __future__ import annotations

import subprocess

import pytest
from psycopg.types.json import Jsonb

from tests.mcp.conftest import data, with_client
from torc_hpc.db import Database

pytestmark = pytest.mark.slurm


@pytest.fixture
def cluster():
    from tests.slurm.conftest import ACCOUNT, _cluster_problem

    problem = _cluster_problem()
    if problem:
        pytest.skip(f"no Slurm cluster: {problem}")
    return ACCOUNT


def test_resubmit_after_a_retry_submits_as_submit_slurm_does(torc, pending, cluster):
    wf, jobs = pending
    with Database(torc.url) as db:     # what `torc submit-slurm --account A --sbatch-args=--hold` saves
        db.run("save_submit_options", workflow_id=wf, options=Jsonb({"account": cluster, "extra": "--hold",
                                                                     "idle_timeout_s": 5}))

    async def body(client):
        retry = await client.call_tool("classify_and_resolve_failures", {
            "workflow_id": wf, "dry_run": False,
            "classifications": [{"job_id": jobs["fetch"]["id"], "action": "retry", "reason": "transient"}]})
        preview = await client.call_tool("resubmit_workflow", {"workflow_id": wf, "dry_run": True})
        submitted = await client.call_tool("resubmit_workflow", {"workflow_id": wf})
        return retry, preview, submitted

    retry, preview, submitted = with_client(torc, body)
    ids = []
    try:
        assert not retry.is_error
        p = data(preview)
        assert p["dry_run"] and len(p["would_submit"]) == 1 and p["would_submit"][0]["account"] == cluster
        assert not submitted.is_error, submitted.content
        allocs = data(submitted)["allocations"]
        ids = [a["slurm_job_id"] for a in allocs]
        assert len(ids) == 1 and "--hold" in allocs[0]["sbatch_args"]
        rows = torc.json("slurm", "list", wf)
        assert [r["slurm_job_id"] for r in rows] == ids and rows[0]["submitted_by"] == "mcp"
    finally:
        if ids:
            subprocess.run(["scancel", *ids], check=False)
