"""Workflow operations the CLI (and later the watcher) call: each composes spec, db and worker pieces."""

from __future__ import annotations

import os
from pathlib import Path

from torc_hpc.core.states import JobStatus
from torc_hpc.db.repo import Database, finish_step, Attempt
from torc_hpc.errors import NotFound, TorcError
from torc_hpc.spec import ExpansionLimits, expand_workflow, load_spec
from torc_hpc.reconcile import reconcile


def create_from_file(db: Database, path: str | Path, *, output_dir: str = "torc_output",
                     limits: ExpansionLimits | None = None) -> int:
    """Validate and expand the spec completely before writing anything, then insert it in one transaction."""
    spec, locator = load_spec(path)
    expanded = expand_workflow(spec, locator, str(path), limits)
    return db.create_workflow(expanded, spec_path=str(Path(path).resolve()), working_dir=os.getcwd(),
                              output_dir=output_dir)


def touch(db: Database, workflow_id: int, client=None) -> dict:
    """What every command that touches a workflow does first: check it exists, repair after dead workers
    (asking Slurm about its allocations when Slurm is here)."""
    wf = db.workflow(workflow_id)
    if client is None:
        from torc_hpc.slurm.client import default_client

        client = default_client()
    reconcile(db, workflow_id, client=client)
    return wf


def summary(db: Database, workflow_id: int) -> dict:
    wf = db.workflow(workflow_id)
    counts = db.status_counts(workflow_id)
    total = sum(counts.values())
    retries = db.one("retry_count", workflow_id=workflow_id, run_id=wf["run_id"])["n"]
    out_dir = Path(wf["working_dir"] or ".") / wf["output_dir"]
    return {"workflow_id": workflow_id, "name": wf["name"], "run_id": wf["run_id"], "total": total,
            "counts": {k: v for k, v in counts.items() if v}, "retries": retries,
            "logs": str(out_dir / "job_stdio"),
            "all_completed": total > 0 and counts["completed"] + counts["disabled"] == total,
            "canceled": wf["canceled_at"] is not None}


def next_steps(s: dict) -> list[str]:
    """Plain advice for the end of a run, from its summary."""
    wf, c = s["workflow_id"], s["counts"]
    tips = []
    if c.get("pending_failed"):
        tips.append(f"{c['pending_failed']} job(s) await a decision: `torc jobs list {wf} --status pending_failed`, "
                    f"then `torc jobs retry {wf} JOB` or `torc jobs fail {wf} JOB`")
    bad = sum(c.get(k, 0) for k in ("failed", "terminated", "canceled"))
    if bad:
        tips.append(f"read the logs in {s['logs']}; after a fix, `torc workflows reset-status {wf} --failed-only` "
                    f"and `torc run {wf}` carry on")
    if c.get("ready") or c.get("blocked") and not c.get("pending_failed"):
        tips.append(f"jobs are still waiting: `torc run {wf}` continues")
    return tips


def decide_pending(db: Database, workflow_id: int, job_id: int, *, retry: bool) -> JobStatus:
    """A person (or an agent) classifies a pending_failed job: retry it, or fail it (cascading)."""
    db.workflow(workflow_id)  # a clear "no such workflow" before "no such job"
    with db.conn.transaction():
        row = db.one("resolve_pending_failed_job", workflow_id=workflow_id, job_id=job_id)
        if row is None:
            raise NotFound(f"job {job_id} of workflow {workflow_id} is not pending_failed "
                           f"(see `torc jobs list {workflow_id} --status pending_failed`)")
        attempt = Attempt(job_id, row["run_id"], row["attempt_id"], None, return_code=row["return_code"] or 0)
        detail = {"decided_by": os.environ.get("USER", "unknown"), "return_code": row["return_code"]}
        if retry:
            step = finish_step("retry", attempt, from_status=JobStatus.PENDING_FAILED, record_result=False,
                               detail=detail)
            status = JobStatus.READY
        else:
            step = finish_step("failed", attempt, status=JobStatus.FAILED, from_status=JobStatus.PENDING_FAILED,
                               record_result=False, detail=detail)
            status = JobStatus.FAILED
        res = db.one(step[0], **step[1])
        if not res["finished"]:
            raise TorcError(f"job {job_id} changed while deciding; look again with `torc jobs list {workflow_id}`")
        if retry:
            db.notify_ready(workflow_id)
    return status
