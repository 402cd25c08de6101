"""Workflow operations the CLI (and later the watcher) call: each composes spec, db and worker pieces."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from torc_hpc import logs
from torc_hpc.db.repo import Database
from torc_hpc.errors import DecisionRejected, NotFound, SpecError, SpecProblem, TorcError
from torc_hpc.limits import AGENT_SPEC_MAX_BYTES, SUMMARY_FAILED_JOBS, SUMMARY_STDERR_LINES
from torc_hpc.reconcile import reconcile

if TYPE_CHECKING:
    from torc_hpc.spec import ExpansionLimits


def spec_sha256(path: str | Path) -> str:
    """The content hash stored with a workflow: same path and same hash mean "this file was run already"."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def create_from_file(db: Database, path: str | Path, *, output_dir: str = "torc_output",
                     limits: "ExpansionLimits | None" = None) -> int:
    """Validate and expand the spec completely before writing anything, then insert it in one transaction."""
    from torc_hpc.spec import expand_workflow, load_spec   # here: commands that only read skip pydantic's models

    spec, locator = load_spec(path)
    expanded = expand_workflow(spec, locator, str(path), limits)
    check_external_inputs(expanded, os.getcwd(), locator, str(path))
    return db.create_workflow(expanded, spec_path=str(Path(path).resolve()), working_dir=os.getcwd(),
                              output_dir=output_dir, spec_sha256=spec_sha256(path))


def check_output_dir(output_dir: str | Path) -> None:
    """Before creating a workflow to run here: its logs must be writable (the directory is made if missing).
    One clear error instead of a workflow row whose every job would fail to start."""
    import tempfile

    path = Path(output_dir) / "job_stdio"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".torc-probe-"):
            pass
    except OSError as e:
        raise TorcError(f"cannot write job logs under {Path(output_dir).resolve()} ({e.strerror or e}); nothing "
                        f"was created. Make it writable, or choose another with --output-dir") from None


def unfinished_from_spec(db: Database, path: str | Path) -> list[dict]:
    """Workflows made from this very file (same path, same content) that still have work, newest first."""
    p = Path(path)
    if not p.is_file():
        return []
    return db.all("unfinished_from_spec", spec_path=str(p.resolve()), spec_sha256=spec_sha256(p))


# ---- what the user names: `last`, job ids and names ----------------------------------------------------

def resolve_workflow(db: Database, ref: str | int) -> int:
    """A workflow id from what the user typed: a number, or `last` (the most recent workflow they created)."""
    text = str(ref).strip()
    if text.lower() == "last":
        row = db.one("last_workflow")
        if row is None:
            raise NotFound("you have no workflow yet, so `last` means nothing: create one with `torc run SPEC`")
        return row["id"]
    if text.isdigit():
        return int(text)
    raise NotFound(f"'{text}' is not a workflow: give its id (see `torc workflows list`) or `last`")


def resolve_job(db: Database, workflow_id: int, ref: str | int) -> dict:
    """A job of the workflow from what the user typed: its id or its name (a name made of digits that is not
    an id of this workflow is looked up as a name)."""
    text = str(ref).strip()
    row = None
    if text.isdigit():
        row = db.one("job_by_id", workflow_id=workflow_id, job_id=int(text))
    if row is None:
        row = db.one("job_by_name", workflow_id=workflow_id, name=text)
    if row is None:
        db.workflow(workflow_id)
        raise NotFound(f"workflow {workflow_id} has no job '{text}' (give an id or a name; "
                       f"see `torc jobs list {workflow_id}`)")
    return row


def shell_word(text: str) -> str:
    """text as one word for a command we print for the user to paste."""
    return text if _SAFE_WORD.fullmatch(text) else shlex.quote(text)


_SAFE_WORD = re.compile(r"[\w.,:@%+=/-]+")


def create_from_text(db: Database, text: str, *, label: str = "spec", output_dir: str = "torc_output") -> int:
    """The same as create_from_file for spec text (JSON or YAML) that is not in a file: an MCP client's.
    Errors are located by line in that text; relative paths resolve against the current directory."""
    if len(text.encode("utf-8", "replace")) > AGENT_SPEC_MAX_BYTES:
        raise SpecError(label, [SpecProblem(f"the spec is larger than {AGENT_SPEC_MAX_BYTES} bytes")])
    from torc_hpc.spec import expand_workflow, load_spec_text   # here: commands that only read skip the models

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
    out["datasets"] = db.all("list_datasets", workflow_id=workflow_id) if row["datasets"] else []
    out["lineages"] = db.all("list_lineages", workflow_id=workflow_id)
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


def summary(db: Database, workflow_id: int, *, failures: bool = True) -> dict:
    """Counts by status, retries, where the logs are, and (with `failures`) the first failed jobs with
    their return codes, the handler's decisions and the last lines of their stderr."""
    wf = db.workflow(workflow_id)
    counts = db.status_counts(workflow_id)
    total = sum(counts.values())
    retries = db.one("retry_count", workflow_id=workflow_id, run_id=wf["run_id"])["n"]
    out = {"workflow_id": workflow_id, "name": wf["name"], "run_id": wf["run_id"], "total": total,
           "counts": {k: v for k, v in counts.items() if v}, "retries": retries,
           "logs": str(logs.stdio_dir(wf)),
           "all_completed": total > 0 and counts["completed"] + counts["disabled"] == total,
           "canceled": wf["canceled_at"] is not None}
    if failures:
        out["failures"] = failure_report(db, wf)
    return out


def describe_decision(kind: str, detail: dict | None) -> str:
    """What the failure handling decided, in words, from a failure event (kind and detail)."""
    d = detail or {}
    reason = d.get("reason")
    if kind == "retry":
        if "recovery_return_code" in d:
            return "retried after its recovery script exited 0"
        return f"retried: {reason}" if reason else "retried"
    if kind == "recovery_failed":
        return f"failed: the recovery script exited {d.get('recovery_return_code')}"
    if kind == "recovery_interrupted":
        return f"recovery interrupted: {reason or 'stopped'}"
    if d.get("decided_by"):
        return f"{kind}: decided by {d['decided_by']}"
    return f"{kind}: {reason}" if reason else kind


def failure_report(db: Database, wf: dict, *, limit: int = SUMMARY_FAILED_JOBS,
                   tail_lines: int = SUMMARY_STDERR_LINES) -> dict:
    """The first `limit` failed, terminated and pending_failed jobs (and how many there are in all), each with
    its return code, the handler's last decision, its log files and the last lines of its stderr."""
    workflow_id = wf["id"]
    total = db.one("count_failed_jobs", workflow_id=workflow_id)["n"]
    if not total:
        return {"total": 0, "jobs": []}
    rows = db.all("failed_jobs", workflow_id=workflow_id, limit=limit)
    decisions = {r["job_id"]: r for r in db.all("failure_decisions", workflow_id=workflow_id,
                                                  job_ids=[r["id"] for r in rows])}
    jobs = []
    for r in rows:
        run_id = r["run_id"] or wf["run_id"]
        attempt = r["result_attempt_id"] or r["attempt_id"]
        paths = logs.attempt_logs_of(wf, r, r["id"], run_id, attempt)
        ev = decisions.get(r["id"])
        jobs.append({"id": r["id"], "name": r["name"], "status": r["status"], "return_code": r["return_code"],
                     "run_id": run_id, "attempt_id": attempt,
                     "decision": describe_decision(ev["kind"], ev["detail"]) if ev else None,
                     "stderr_tail": logs.tail(paths.stderr, lines=tail_lines), "logs": paths.as_dict(),
                     **({"stderr_not_kept": paths.why_missing("stderr")} if paths.why_missing("stderr") else {})})
    return {"total": total, "jobs": jobs}


def next_steps(s: dict) -> list[dict]:
    """The exact commands to inspect or carry on after a run, from its summary: [{command, why}]."""
    wf, c = s["workflow_id"], s["counts"]
    steps = []
    failed = (s.get("failures") or {}).get("jobs") or []
    if failed:
        first = shell_word(failed[0]["name"])
        steps.append({"command": f"torc logs {wf} {first}", "why": "stderr of its latest attempt"})
        steps.append({"command": f"torc results list {wf} --job {first}", "why": "every attempt of it"})
    pending = [j for j in failed if j["status"] == "pending_failed"]
    if c.get("pending_failed"):
        name = shell_word(pending[0]["name"]) if pending else "JOB"
        steps.append({"command": f"torc jobs retry {wf} {name}",
                      "why": f"{c['pending_failed']} job(s) pending_failed await a decision; or "
                             f"`torc jobs fail {wf} {name}`"})
    if sum(c.get(k, 0) for k in ("failed", "terminated", "canceled")):
        steps.append({"command": f"torc workflows reset-status {wf} --failed-only && torc run {wf}",
                      "why": "after a fix, run the failed jobs again"})
    elif s.get("unrunnable"):
        # `torc run` here cannot continue: name what would (a machine or allocation where the jobs fit).
        steps.append({"command": f"torc submit-slurm --account ACCOUNT {wf}",
                      "why": f"{len(s['unrunnable'])} job(s) need more than this machine has; run them where "
                             f"they fit (or lower their requests)"})
    elif (c.get("ready") or c.get("blocked")) and not c.get("pending_failed"):
        steps.append({"command": f"torc run {wf}", "why": "jobs are still waiting"})
    if failed or s.get("retries"):
        steps.append({"command": f"torc report {wf} -o report.html", "why": "timeline, resources and failures"})
    return steps


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


def log_target(db: Database, workflow_id: int, job_ref: str | int, *, attempt: int | None = None,
               run: int | None = None, recovery: bool = False) -> dict:
    """Which attempt's logs `torc logs` shows: the latest (the running one, else the last that finished), or
    the attempt/run asked for. With `recovery` and neither given: the latest attempt whose recovery script
    left logs (it runs after attempt N fails and writes recovery_…_aN, so the latest attempt rarely has one).
    Returns the job, the attempt, whether it is still running and its log files."""
    wf = db.workflow(workflow_id)
    job = resolve_job(db, workflow_id, job_ref)
    attempts = db.all("job_attempts", job_id=job["id"], limit=1000)
    known = [(a["run_id"], a["attempt_id"]) for a in attempts]
    statuses = {(a["run_id"], a["attempt_id"]): a["status"] for a in attempts}
    current = (wf["run_id"], job["attempt_id"])
    if job["status"] == "running" and current not in known:
        known.insert(0, current)
    if not known and attempt is None and run is None:
        if job["status"] in ("blocked", "ready"):
            raise NotFound(f"job {job['name']} ({job['id']}) has not run yet (it is {job['status']}); "
                           f"`torc logs {workflow_id} {shell_word(job['name'])} --follow` waits for it to start")
        raise NotFound(f"job {job['name']} ({job['id']}) never ran (it is {job['status']}), so it has no logs")
    if attempt is None and run is None:
        run, attempt = known[0]
        if recovery:
            run, attempt = next(((r, a) for r, a in known if _has_recovery_logs(wf, job["id"], r, a)), known[0])
    elif attempt is None:
        attempt = next((a for r, a in known if r == run), None)
        if attempt is None:
            raise NotFound(f"job {job['name']} has no attempt in run {run}; it ran in: "
                           f"{', '.join(sorted({str(r) for r, _ in known})) or 'none'}")
    elif run is None:
        run = next((r for r, a in known if a == attempt), wf["run_id"])
    if (run, attempt) not in known and not (run, attempt) == current:
        tried = ", ".join(f"run {r} attempt {a}" for r, a in known) or "none"
        raise NotFound(f"job {job['name']} has no attempt {attempt} in run {run} (its attempts: {tried})")
    return {"workflow_id": workflow_id, "job_id": job["id"], "job_name": job["name"], "status": job["status"],
            "run_id": run, "attempt_id": attempt,
            "running": job["status"] == "running" and (run, attempt) == current,
            "logs": logs.attempt_logs_of(wf, job, job["id"], run, attempt, statuses.get((run, attempt)))}


def _has_recovery_logs(wf: dict, job_id: int, run: int, attempt: int) -> bool:
    paths = logs.attempt_logs(wf, job_id, run, attempt)
    return paths.recovery_stdout.exists() or paths.recovery_stderr.exists()


def attempt_running(db: Database, workflow_id: int, job_id: int, run_id: int, attempt_id: int) -> bool:
    """Is this attempt of the job still running (for `torc logs --follow`)?"""
    wf = db.workflow(workflow_id)
    job = db.one("job_by_id", workflow_id=workflow_id, job_id=job_id)
    return bool(job and job["status"] == "running" and wf["run_id"] == run_id and job["attempt_id"] == attempt_id)


def watch_details(db: Database, workflow_id: int, *, running: int = 8, failures: int = 5,
                  allocations: int = 6) -> dict:
    """What `torc watch` shows beside the cycle's counts and decision: the longest-running jobs, the latest
    failures with the handler's decisions, and the allocations (active first) with their Slurm states.
    Each read is bounded (partial indexes and LIMITs), whatever the workflow's size."""
    fails = db.all("recent_failure_events", workflow_id=workflow_id, limit=failures)
    for e in fails:
        e["decision"] = describe_decision(e["kind"], e["detail"])
        e["failed_attempt"] = e["attempt_id"] - 1 if e["kind"] == "retry" and e["attempt_id"] else e["attempt_id"]
    return {"running": db.all("running_jobs", workflow_id=workflow_id, limit=running),
            "failures": fails,
            "allocations": db.all("recent_allocations", workflow_id=workflow_id, limit=allocations)}
