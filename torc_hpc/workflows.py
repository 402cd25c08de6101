"""Workflow operations the CLI (and later the watcher) call: each composes spec, db and worker pieces."""

from __future__ import annotations

import os
from pathlib import Path

from torc_hpc.db.repo import Database
from torc_hpc.errors import DecisionRejected, SpecError, SpecProblem, TorcError
from torc_hpc.limits import AGENT_SPEC_MAX_BYTES
from torc_hpc.spec import ExpansionLimits, expand_workflow, load_spec, load_spec_text
from torc_hpc.reconcile import reconcile


def create_from_file(db: Database, path: str | Path, *, output_dir: str = "torc_output",
                     limits: ExpansionLimits | None = None) -> int:
    """Validate and expand the spec completely before writing anything, then insert it in one transaction."""
    spec, locator = load_spec(path)
    expanded = expand_workflow(spec, locator, str(path), limits)
    return db.create_workflow(expanded, spec_path=str(Path(path).resolve()), working_dir=os.getcwd(),
                              output_dir=output_dir)


def create_from_text(db: Database, text: str, *, label: str = "spec", output_dir: str = "torc_output") -> int:
    """The same as create_from_file for spec text (JSON or YAML) that is not in a file: an MCP client's.
    Errors are located by line in that text; relative paths resolve against the current directory."""
    if len(text.encode("utf-8", "replace")) > AGENT_SPEC_MAX_BYTES:
        raise SpecError(label, [SpecProblem(f"the spec is larger than {AGENT_SPEC_MAX_BYTES} bytes")])
    path = f"{label}.json" if text.lstrip().startswith("{") else f"{label}.yaml"
    spec, locator = load_spec_text(text, path)
    expanded = expand_workflow(spec, locator, path)
    return db.create_workflow(expanded, spec_path=None, working_dir=os.getcwd(), output_dir=output_dir)


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


def decide_pending(db: Database, workflow_id: int, job_id: int, *, retry: bool, reason: str | None = None,
                   memory: str | None = None, runtime: str | None = None) -> dict:
    """A person classifies a pending_failed job: retry it (optionally with new memory/runtime requests), or
    fail it (cascading). The same operation as the MCP tool classify_and_resolve_failures."""
    from torc_hpc.triage import Decider, classify_and_resolve

    item = {"job_id": job_id, "action": "retry" if retry else "fail", "reason": reason}
    item.update({k: v for k, v in (("memory", memory), ("runtime", runtime)) if v is not None})
    try:
        report = classify_and_resolve(db, workflow_id, [item], dry_run=False,
                                      decider=Decider("cli", os.environ.get("USER", "unknown")))
    except DecisionRejected as e:
        raise TorcError(e.problems[0]) from None
    return report["results"][0]
