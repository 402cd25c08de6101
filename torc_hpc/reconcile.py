"""Reconcile a workflow after a worker died: declare it lost, then finish its jobs as terminated.

Called by every command that touches a workflow (and by the watcher). Idempotent and crash-safe:
a lost worker is marked stopped first; its running jobs are then found by that mark alone, so a
reconciler that dies half-way leaves work the next one picks up.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import psutil

from torc_hpc import logs
from torc_hpc.core.liveness import worker_lost_reason
from torc_hpc.core.slurm_states import AllocationState, end_return_code
from torc_hpc.core.states import ExitCode
from torc_hpc.db.connection import redact
from torc_hpc.db.repo import Attempt, Database
from torc_hpc.slurm.allocations import refresh as refresh_allocations
from torc_hpc.worker.outcomes import after_recovery, plan_outcome

log = logging.getLogger("torc.reconcile")

DEFAULT_STALE_AFTER_S = float(os.environ.get("TORC_HEARTBEAT_TIMEOUT", "120"))


def _process_alive(pid: int, registered_at: datetime) -> bool:
    try:
        proc = psutil.Process(pid)
        # A pid reused by a later process is not our worker.
        return proc.create_time() <= registered_at.timestamp() + 60
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def _kill_leftover_processes(worker_id: int, token: str | None) -> None:
    """Jobs run in their own process groups and outlive a kill -9'd worker on this host: stop them.

    Worker ids are per database, so the id alone would also match a job of another torc database whose
    worker has the same number: only processes carrying this worker's random token are touched (a worker
    registered without a token, from before migration 0005, leaves its processes alone)."""
    if not token:
        return
    wanted = (str(worker_id), token)
    for proc in psutil.process_iter(["pid"]):
        try:
            env = proc.environ()
            if (env.get("TORC_WORKER_ID"), env.get("TORC_WORKER_TOKEN")) == wanted:
                os.killpg(proc.pid, signal.SIGKILL)
        except (psutil.Error, ProcessLookupError, PermissionError, OSError):
            continue


def find_lost_workers(live: list[dict], stale_after_s: float,
                      slurm_ended: dict[str, str] | None = None) -> list[tuple[dict, str]]:
    """Of the live workers, those that are gone: their allocation ended (Slurm says so), their process is
    gone (same host), or their heartbeat is stale."""
    host = socket.gethostname()
    lost = []
    for w in live:
        if slurm_ended and w["slurm_job_id"] in slurm_ended:
            lost.append((w, f"allocation {w['slurm_job_id']} ended: {slurm_ended[w['slurm_job_id']]}"))
            continue
        # A Slurm worker's fate is Slurm's to tell (its allocation may still be completing); others: the pid.
        same_host = w["hostname"] == host and not w["slurm_job_id"]
        alive = _process_alive(w["pid"], w["started_at"]) if same_host else None
        reason = worker_lost_reason(last_heartbeat=w["last_heartbeat"], now=w["db_now"],
                                    stale_after_s=stale_after_s, same_host=same_host, process_alive=alive)
        if reason:
            lost.append((w, reason))
    return lost


def reconcile(db: Database, workflow_id: int, *, stale_after_s: float = DEFAULT_STALE_AFTER_S,
              client=None, slurm: dict[str, dict] | None = None) -> dict:
    """Declare dead workers lost and pass their running jobs through the failure handlers.

    With a Slurm client: one squeue and at most one sacct call refresh every active allocation of the
    workflow and every allocation a live worker runs in; jobs left running by an allocation that ended
    get the return code its end implies (TIMEOUT 152, CANCELLED 143, out of memory 137, ...). Jobs of
    other lost workers get ExitCode.WORKER_LOST. `slurm` is what the cluster watcher's one pass already
    learned (slurm id → state): then this workflow asks Slurm nothing itself.
    """
    report = {"lost_workers": 0, "orphaned_jobs": 0}
    host = socket.gethostname()
    slurm_ended: dict[str, str] = {}
    exit_codes: dict[str, int] = {}
    live = db.all("live_workers", workflow_id=workflow_id)
    if slurm is None and client is not None:
        slurm = refresh_allocations(db, workflow_id, client, extra_ids={w["slurm_job_id"] for w in live})
    if slurm:
        for job_id, info in slurm.items():
            if info["state"] is AllocationState.ENDED:
                slurm_ended[job_id] = info["sacct_state"] or info.get("why") or "ended"
                exit_codes[job_id] = end_return_code(info["sacct_state"] or "", info["exit_code"] or "0:0")
    # Workers already declared lost whose allocation has since reported its end: use that end's code.
    for w, reason in find_lost_workers(live, stale_after_s, slurm_ended):
        with db.conn.transaction():
            if db.one("mark_worker_lost", worker_id=w["id"], reason="lost") is None:
                continue  # another reconciler won
            db.event(workflow_id, "worker_lost", worker_id=w["id"],
                     detail={"reason": reason, "hostname": w["hostname"], "pid": w["pid"],
                             "slurm_job_id": w["slurm_job_id"]})
        report["lost_workers"] += 1
        if w["hostname"] == host and not w["slurm_job_id"]:
            _kill_leftover_processes(w["id"], w.get("token"))
    report["orphaned_jobs"] = finish_orphans(db, workflow_id, exit_codes)
    return report


def finish_orphans(db: Database, workflow_id: int, exit_codes: dict[str, int]) -> int:
    wf = db.workflow(workflow_id)
    rules = None
    recoveries = []
    count = 0
    with db.conn.transaction():
        jobs = db.all("orphaned_jobs", workflow_id=workflow_id)
        if not jobs:
            return 0
        rules = db.failure_rules(workflow_id)
        steps = []
        for j in jobs:
            recorded = j["recorded_return_code"]
            rc = recorded if recorded is not None else exit_codes.get(j["slurm_job_id"] or "", ExitCode.WORKER_LOST)
            attempt = Attempt(j["id"], j["run_id"], j["attempt_id"], j["worker_id"], return_code=rc,
                              started_at=j["started_at"], completed_at=datetime.now(timezone.utc))
            hid = j["failure_handler_id"]
            plan = plan_outcome(attempt, killed=True,
                                handler_rules=rules.get(hid, ()) if hid is not None else None,
                                use_pending_failed=wf["use_pending_failed"],
                                apply_handlers=wf["canceled_at"] is None,
                                record_result=recorded is None)
            steps += plan.steps
            if plan.recovery_script:
                recoveries.append((j, attempt, plan.recovery_script))
            count += 1
        for name, params in steps:
            db.one(name, **params)
        db.event(workflow_id, "orphans_reconciled", detail={"jobs": [j["id"] for j in jobs]})
    # Recovery scripts run outside the transaction; until they finish the jobs stay 'running' under a
    # stopped worker, so a crash here is repaired by the next reconcile.
    as_owner = _owner_identity(db, workflow_id) if recoveries else None
    for j, attempt, script in recoveries:
        rc = run_recovery_here(wf, j, attempt, script, redact(db.url), as_owner=as_owner)
        db.finish(workflow_id, after_recovery(attempt, rc, script).steps)
    if count:
        db.notify_ready(workflow_id)
    return count


def _owner_identity(db: Database, workflow_id: int):
    """User code runs only as its owner: when this process acts for another role (the cluster watcher), the
    owner's Unix identity to run recovery scripts as (root drops to it; anyone else is refused)."""
    from torc_hpc.slurm.owner import submitter_for

    return submitter_for(db.one("workflow_owner", workflow_id=workflow_id)["owner"], db.one("whoami")["role"])


def run_recovery_here(wf: dict, job: dict, attempt: Attempt, script: str, api_url: str = "",
                      as_owner=None) -> int:
    """Run a recovery script on this host (for jobs whose own worker is gone), as the workflow's owner."""
    workdir = wf["working_dir"] if wf["working_dir"] and os.path.isdir(wf["working_dir"]) else None
    out_dir = Path(workdir or ".") / wf["output_dir"] / "job_stdio"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = logs.stem("recovery", wf["id"], job["id"], attempt.run_id, attempt.attempt_id)
    from torc_hpc.slurm.owner import run_as_kwargs

    as_user = run_as_kwargs(as_owner)
    env = dict(as_user.pop("env", os.environ), TORC_WORKFLOW_ID=str(wf["id"]), TORC_JOB_ID=str(job["id"]),
               TORC_JOB_NAME=job["name"], TORC_ATTEMPT_ID=str(attempt.attempt_id),
               TORC_RUN_ID=str(attempt.run_id), TORC_RETURN_CODE=str(attempt.return_code),
               TORC_OUTPUT_DIR=str(out_dir.parent.resolve()), TORC_API_URL=api_url)
    with open(out_dir / f"{stem}.o", "w") as out, open(out_dir / f"{stem}.e", "w") as err:
        try:
            return subprocess.run(["bash", "-c", script], cwd=workdir, env=env, stdout=out, stderr=err,
                                  stdin=subprocess.DEVNULL, timeout=3600, **as_user).returncode
        except subprocess.TimeoutExpired:
            return 124
