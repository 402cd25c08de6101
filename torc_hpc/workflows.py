"""Workflow operations the CLI (and later the watcher) call: each composes spec, db and worker pieces."""

from __future__ import annotations

import json
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
    check_external_inputs(expanded, os.getcwd(), locator, str(path))
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
    check_external_inputs(expanded, os.getcwd(), locator, path)
    return db.create_workflow(expanded, spec_path=None, working_dir=os.getcwd(), output_dir=output_dir)


def check_external_inputs(expanded, working_dir: str, locator=None, path: str = "<spec>") -> None:
    """Files some job reads and no job writes must exist before the run (Torc calls them inputs). Raises
    SpecError naming each missing file, its path and the first job that reads it; nothing is written."""
    problems = []
    for f in expanded.files:
        if f.name not in expanded.external_inputs:
            continue
        full = f.path if os.path.isabs(f.path) else os.path.join(working_dir, f.path)
        if os.path.exists(full):
            continue
        reader = expanded.external_inputs[f.name]
        why = (f"job '{reader}' reads it and no job writes it" if reader else "it is marked must_exist")
        problems.append(SpecProblem(
            f"input file '{f.name}' ({f.path}) does not exist: {why}, so it must exist before the workflow "
            f"is created (paths are relative to {working_dir}); create it, or list it in some job's output_files",
            field=f"files[{f.spec_index}].path", path=path,
            line=locator.line(("files", f.spec_index, "path")) if locator else None))
    if problems:
        raise SpecError(path, problems)


def details(db: Database, workflow_id: int) -> dict:
    """`torc workflows show`: the stored Torc fields, files, user_data and actions of one workflow."""
    row = db.one("workflow_details", workflow_id=workflow_id)
    if row is None:
        raise TorcError(f"workflow {workflow_id} does not exist (see `torc workflows list`)")
    out = dict(row)
    out["files"] = db.all("list_files", workflow_id=workflow_id) if row["files"] else []
    out["user_data"] = db.all("list_user_data", workflow_id=workflow_id) if row["user_data"] else []
    out["actions"] = db.all("list_actions", workflow_id=workflow_id) if row["actions"] else []
    return out


def user_data_workflow(db: Database, workflow_id: int | None) -> int:
    """The workflow a user-data command means: the one given, else TORC_WORKFLOW_ID (inside a job)."""
    if workflow_id is None:
        env = os.environ.get("TORC_WORKFLOW_ID")
        if not env or not env.isdigit():
            raise TorcError("no workflow given: name it (torc user-data get WF NAME) or run inside a job, where "
                            "TORC_WORKFLOW_ID says which workflow it belongs to")
        workflow_id = int(env)
    db.workflow(workflow_id)
    return workflow_id


def get_user_data(db: Database, workflow_id: int | None, name: str) -> dict:
    """One user_data value (the workflow from TORC_WORKFLOW_ID when not given)."""
    wf = user_data_workflow(db, workflow_id)
    row = db.one("get_user_data", workflow_id=wf, name=name)
    if row is None:
        known = ", ".join(r["name"] for r in db.all("list_user_data", workflow_id=wf)[:20]) or "none"
        raise TorcError(f"workflow {wf} has no user_data '{name}' (it has: {known}); user_data values are "
                        "declared in the spec's user_data")
    return {"workflow_id": wf, **row}


def set_user_data(db: Database, workflow_id: int | None, name: str, data_text: str) -> dict:
    """Write one user_data value from JSON text; records the writing job (TORC_JOB_ID) and an event."""
    from torc_hpc.limits import MAX_USER_DATA_BYTES

    wf = user_data_workflow(db, workflow_id)
    if len(data_text.encode()) > MAX_USER_DATA_BYTES:
        raise TorcError(f"the value is larger than {MAX_USER_DATA_BYTES:,} bytes (torc_hpc.limits.MAX_USER_DATA_BYTES): "
                        "keep large data in a file and store its path")
    try:
        value = json.loads(data_text)
    except ValueError as e:
        raise TorcError(f"--data must be JSON ({e}); e.g. --data '{{\"threads\": 4}}' or --data '\"text\"'") from None
    job = os.environ.get("TORC_JOB_ID")
    job_id = int(job) if job and job.isdigit() and os.environ.get("TORC_WORKFLOW_ID") == str(wf) else None
    from psycopg.types.json import Jsonb

    with db.conn.transaction():
        row = db.one("set_user_data", workflow_id=wf, name=name, data=Jsonb(value), job_id=job_id,
                     bytes=len(data_text.encode()))
    if row is None:
        get_user_data(db, wf, name)  # raises the "no such value" error with the known names
    return {"workflow_id": wf, "name": name, "data": value}


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
