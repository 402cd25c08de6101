"""Reconcile a workflow after a worker died: declare it lost, then finish its jobs as terminated.

Called by every command that touches a workflow (and by the watcher). Idempotent and crash-safe:
a lost worker is marked stopped first; its running jobs are then found by that mark alone, so a
reconciler that dies half-way leaves work the next one picks up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

from psycopg.types.json import Jsonb

from torc_hpc import logs
from torc_hpc.core.liveness import process_is_our_worker, worker_lost_reason
from torc_hpc.core.starts import journal_trust
from torc_hpc.core.slurm_states import AllocationState, end_return_code
from torc_hpc.core.states import ExitCode
from torc_hpc.db.connection import redact
from torc_hpc.db.repo import Attempt, Database
from torc_hpc.errors import TorcError
from torc_hpc.limits import RECOVERY_TIMEOUT_S
from torc_hpc.slurm.allocations import refresh as refresh_allocations
from torc_hpc.worker.journal import read_journal
from torc_hpc.worker.outcomes import after_recovery, plan_outcome, recovery_claim_step, recovery_interrupted

log = logging.getLogger("torc.reconcile")

DEFAULT_STALE_AFTER_S = float(os.environ.get("TORC_HEARTBEAT_TIMEOUT", "120"))


def _process_alive(pid: int, registered_at: datetime) -> bool:
    try:
        proc = psutil.Process(pid)
        status, created = proc.status(), proc.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        status, created = None, None
    return process_is_our_worker(exists=True, status=status, create_time=created,
                                 registered_at=registered_at.timestamp())


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
              client=None, slurm: dict[str, dict] | None = None, run_recoveries: bool = False,
              time_left_s: float | None = None, while_waiting=None) -> dict:
    """Declare dead workers lost and pass their running jobs through the failure handlers.

    With a Slurm client: one squeue and at most one sacct call refresh every active allocation of the
    workflow and every allocation a live worker runs in; jobs left running by an allocation that ended
    get the return code its end implies (TIMEOUT 152, CANCELLED 143, out of memory 137, ...). Jobs of
    other lost workers get ExitCode.WORKER_LOST. `slurm` is what the cluster watcher's one pass already
    learned (slurm id → state): then this workflow asks Slurm nothing itself. Jobs a dead worker held but
    never started (its start journal says so) go back to ready, untouched.

    User code runs only with `run_recoveries` (torc run, torc worker, torc watch): orphans' recovery scripts,
    each at most once per failed attempt and within its time limit (and `time_left_s`). Listing and status
    commands leave those jobs waiting for the next such command. `while_waiting` is called every few
    seconds while a script runs (a worker keeps its heartbeat).
    """
    report = {"lost_workers": 0, "orphaned_jobs": 0, "released": 0, "recoveries_run": 0}
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
    done = finish_orphans(db, workflow_id, exit_codes, ended_states=slurm_ended, run_recoveries=run_recoveries,
                          time_left_s=time_left_s, while_waiting=while_waiting)
    report.update(done)
    return report


def _journals(db: Database, workflow_id: int, jobs: list[dict], ended_states: dict[str, str]) -> dict:
    """worker id → (what its start journal says, or None when it cannot be believed; why)."""
    host = socket.gethostname()
    wanted: dict[int, set[int]] = {}
    for j in jobs:
        if j["recorded_return_code"] is None:
            wanted.setdefault(j["worker_id"], set()).add(j["id"])
    owner_uid = None
    verdicts = {}
    for worker_id, ids in wanted.items():
        w = next(j for j in jobs if j["worker_id"] == worker_id)
        path = w["start_journal"]
        if not path:
            verdicts[worker_id] = (None, "the worker kept no start journal")
            continue
        trusted, why = journal_trust(same_host=w["hostname"] == host,
                                     allocation_end=ended_states.get(w["slurm_job_id"] or ""))
        if not trusted:
            verdicts[worker_id] = (None, why)
            continue
        if owner_uid is None:
            try:
                ident = _owner_identity(db, workflow_id)
                owner_uid = ident.uid if ident is not None else os.geteuid()
            except TorcError as e:
                verdicts[worker_id] = (None, f"start journal not read: {e}")
                continue
        facts, how = read_journal(path, ids, owner_uid=owner_uid)
        verdicts[worker_id] = (facts, f"{how}; {why}" if facts is not None else how)
    return verdicts


def finish_orphans(db: Database, workflow_id: int, exit_codes: dict[str, int], *,
                   ended_states: dict[str, str] | None = None, run_recoveries: bool = False,
                   time_left_s: float | None = None, while_waiting=None) -> dict:
    """Jobs left running by stopped workers: release those never started, record the others through the
    failure handlers, and (with `run_recoveries`) run the recovery scripts they wait on."""
    wf = db.workflow(workflow_id)
    report = {"orphaned_jobs": 0, "released": 0, "recoveries_run": 0}
    waiting = []     # (job, attempt, script, timeout): recorded, waiting on their recovery script
    with db.conn.transaction():
        jobs = db.all("orphaned_jobs", workflow_id=workflow_id)
        if not jobs:
            return report
        rules = db.failure_rules(workflow_id)
        verdicts = _journals(db, workflow_id, jobs, ended_states or {})
        steps, unstarted, recorded_now = [], {}, []
        for j in jobs:
            key = (j["id"], j["run_id"], j["attempt_id"])
            facts, _why = verdicts.get(j["worker_id"], (None, ""))
            recorded = j["recorded_return_code"]
            if recorded is None and facts is not None and key not in facts.starts:
                unstarted.setdefault(j["worker_id"], []).append(j["id"])
                continue
            killed, note = True, None
            if recorded is not None:
                rc = recorded
            elif facts is not None and key in facts.ends and not facts.ends[key][1]:
                rc, killed = facts.ends[key][0], False   # it ended on its own; the worker could not record it
                note = {"source": "start journal: the worker saw this exit but could not record it"}
            else:
                rc = exit_codes.get(j["slurm_job_id"] or "", ExitCode.WORKER_LOST)
            attempt = Attempt(j["id"], j["run_id"], j["attempt_id"], j["worker_id"], return_code=rc,
                              started_at=j["started_at"], completed_at=datetime.now(timezone.utc))
            hid = j["failure_handler_id"]
            plan = plan_outcome(attempt, killed=killed,
                                handler_rules=rules.get(hid, ()) if hid is not None else None,
                                use_pending_failed=wf["use_pending_failed"],
                                apply_handlers=wf["canceled_at"] is None,
                                record_result=recorded is None,
                                interrupted_attempts=j["interrupted_attempts"], note=note)
            steps += plan.steps
            if plan.recovery_script:
                waiting.append((j, attempt, plan.recovery_script, plan.recovery_timeout_s))
            if plan.steps:
                recorded_now.append(j["id"])
        for name, params in steps:
            db.one(name, **params)
        report["orphaned_jobs"] = len(recorded_now)
        for worker_id, ids in unstarted.items():
            why = verdicts[worker_id][1]
            released = db.all("release_unstarted", workflow_id=workflow_id, worker_id=worker_id, job_ids=ids,
                              detail=Jsonb({"reason": "its worker died before starting it", "evidence": why}))
            report["released"] += len(released)
        if recorded_now or unstarted:   # jobs only waiting on a recovery script changed nothing
            db.event(workflow_id, "orphans_reconciled", detail={
                "jobs": recorded_now, "released": sorted(i for v in unstarted.values() for i in v),
                "start_journals": {str(k): v[1] for k, v in verdicts.items()}})
    if run_recoveries:
        report["recoveries_run"] = run_orphan_recoveries(db, wf, waiting, time_left_s=time_left_s,
                                                         while_waiting=while_waiting)
    if report["orphaned_jobs"] or report["released"]:
        db.notify_ready(workflow_id)
    return report


def run_orphan_recoveries(db: Database, wf: dict, waiting: list, *, time_left_s: float | None = None,
                          while_waiting=None) -> int:
    """Run the recovery scripts orphaned jobs wait on, each claimed in the database first (at most once per
    failed attempt, whoever else is trying). A claim whose runner died (expired) or whose worker is gone
    ends the job's recovery as interrupted: pending_failed, a person decides."""
    ran = 0
    as_owner = _owner_identity(db, wf["id"]) if waiting else None
    me = f"{socket.gethostname()}:{os.getpid()}"
    for j, attempt, script, timeout_s in waiting:
        if time_left_s is not None:
            timeout_s = max(1, min(timeout_s, int(time_left_s)))
        with db.conn.transaction():
            name, params = recovery_claim_step(attempt, me, timeout_s, None)
            claimed = db.one(name, **params)["recorded"]
        if not claimed:
            claim = db.one("recovery_claim", job_id=attempt.job_id, run_id=attempt.run_id,
                           attempt_id=attempt.attempt_id)
            if claim is not None and (claim["expired"] or claim["worker_id"] == j["worker_id"]):
                who = f"worker {claim['worker_id']}" if claim["worker_id"] else claim["claimed_by"]
                db.finish(wf["id"], recovery_interrupted(
                    attempt, script, f"its runner ({who}) died while the recovery script ran; it runs at most "
                                     f"once per attempt").steps)
            continue   # another runner has it (or the job moved on)
        rc, timed_out = run_recovery_here(wf, j, attempt, script, redact(db.url), as_owner=as_owner,
                                          timeout_s=timeout_s, while_waiting=while_waiting)
        db.finish(wf["id"], after_recovery(attempt, rc, script, timed_out_after_s=timed_out).steps)
        ran += 1
    return ran


def _owner_identity(db: Database, workflow_id: int):
    """User code runs only as its owner: when this process acts for another role (the cluster watcher), the
    owner's Unix identity to run recovery scripts as (root drops to it; anyone else is refused)."""
    from torc_hpc.slurm.owner import submitter_for

    return submitter_for(db.one("workflow_owner", workflow_id=workflow_id)["owner"], db.one("whoami")["role"])


def run_recovery_here(wf: dict, job: dict, attempt: Attempt, script: str, api_url: str = "",
                      as_owner=None, timeout_s: int = RECOVERY_TIMEOUT_S,
                      while_waiting=None) -> tuple[int, int | None]:
    """Run a recovery script on this host as the workflow's owner, in its own process group, for at most
    `timeout_s` (then the whole group is killed). Returns (return code, timeout_s if it timed out)."""
    workdir = wf["working_dir"] if wf["working_dir"] and os.path.isdir(wf["working_dir"]) else None
    out_dir = Path(workdir or ".") / wf["output_dir"] / "job_stdio"
    stem = logs.stem("recovery", wf["id"], job["id"], attempt.run_id, attempt.attempt_id)
    from torc_hpc.slurm.owner import run_as_kwargs

    as_user = run_as_kwargs(as_owner)
    env = dict(as_user.pop("env", os.environ), TORC_WORKFLOW_ID=str(wf["id"]), TORC_JOB_ID=str(job["id"]),
               TORC_JOB_NAME=job["name"], TORC_ATTEMPT_ID=str(attempt.attempt_id),
               TORC_RUN_ID=str(attempt.run_id), TORC_RETURN_CODE=str(attempt.return_code),
               TORC_OUTPUT_DIR=str(out_dir.parent.resolve()), TORC_API_URL=api_url)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        out, err = open(out_dir / f"{stem}.o", "w"), open(out_dir / f"{stem}.e", "w")
    except OSError as e:
        log.warning("cannot create the recovery script's log files (%s)", e)
        return ExitCode.START_FAILED, None
    with out, err:
        try:
            proc = subprocess.Popen(["bash", "-c", script], cwd=workdir, env=env, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True, **as_user)
        except OSError as e:
            err.write(f"torc could not start the recovery script: {e}\n")
            return ExitCode.START_FAILED, None
        deadline = time.monotonic() + timeout_s
        rc, timed_out = None, None
        while rc is None:
            try:
                rc = proc.wait(timeout=max(0.0, min(5.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    timed_out = timeout_s
                    break
                if while_waiting is not None:
                    while_waiting()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)   # the script's whole group: what it left too
        if rc is None:
            rc = proc.wait()
        return rc, timed_out
