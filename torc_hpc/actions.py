"""Firing workflow actions: claim once, run the commands or submit the allocations, record it as events.

The decisions (which action may fire now, for whom) are torc_hpc.core.actions; this module is the shell:
the claim (`claim_action`: fired_at set only if it was NULL and the trigger still holds), the work, and
the events `action_started`, then `action_completed`, `action_failed` (with the output's tail) or
`action_skipped` (with the reason).

Workers fire actions through `WorkerActions`: created only when the workflow has pending actions (most
have none: then the worker does nothing more than one query at start, on its own connection before its
database thread takes it over), it fires the start triggers before the worker claims, fires due actions from a thread of its own while jobs run (woken by the worker
after each batch of finishes, else every POLL_S), and the completion triggers when the worker leaves. It
has its own short-lived database connection, open only while the workflow has actions left to fire.
The watcher calls `fire` once per cycle (schedule_nodes only).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from torc_hpc.core import actions as core
from torc_hpc.core.actions import Action, Phase, Runner
from torc_hpc.db.repo import Database
from torc_hpc.errors import SlurmError, TorcError

log = logging.getLogger("torc.actions")

NORMAL_ENDS = ("done", "idle")   # worker stop reasons after which completion actions still run
POLL_S = 2.0     # a worker looks for due actions this often at most, unless poked
SETTLE_S = 0.2   # after a poke: the batch that poked is usually committed by then


@dataclass
class Context:
    """Who fires, and what that runner has: the jobs' environment, a Slurm client, a worker's -j."""

    runner: Runner
    worker_id: int | None = None
    env: dict | None = None                 # run_commands: the environment jobs get (TORC_* included)
    output_dir: Path | None = None          # where an action's full output is written
    client: object | None = None            # schedule_nodes: a SlurmClient (None: the default, if any)
    timeout_s: float = field(default_factory=lambda: float(os.environ.get("TORC_ACTION_TIMEOUT_S",
                                                                          core.DEFAULT_TIMEOUT_S)))

    @property
    def fired_by(self) -> str:
        return f"{self.runner.value} {self.worker_id}" if self.worker_id else self.runner.value


def pending(db: Database, workflow_id: int) -> list[Action]:
    return [Action(**r) for r in db.all("pending_actions", workflow_id=workflow_id)]


def fire(db: Database, workflow_id: int, phase: Phase, ctx: Context, stop=None) -> list[dict]:
    """Fire every action that is due for this runner now; returns what happened to each (for reports).
    `stop()` true: fire no further action (a worker stopping early)."""
    done = []
    for p in core.plan(pending(db, workflow_id), phase, ctx.runner):
        if stop is not None and stop():
            break
        outcome = _fire_one(db, workflow_id, p, ctx)
        if outcome is not None:
            done.append(outcome)
    return done


def _fire_one(db: Database, workflow_id: int, p: core.Plan, ctx: Context) -> dict | None:
    a = p.action
    what = {"position": a.position, "trigger_type": a.trigger_type, "action_type": a.action_type,
            "fired_by": ctx.fired_by}
    if a.action_type == "finalize_dataset":
        return _finalize_dataset(db, workflow_id, a, ctx)
    with db.conn.transaction():
        if p.claim and db.one("claim_action", workflow_id=workflow_id, action_id=a.id,
                              fired_by=ctx.fired_by) is None:
            return None           # another runner fired it, or its trigger no longer holds
        if p.skip_reason:
            db.event(workflow_id, "action_skipped", worker_id=ctx.worker_id, detail={**what, "reason": p.skip_reason})
            return {**what, "outcome": "skipped", "reason": p.skip_reason}
        db.event(workflow_id, "action_started", worker_id=ctx.worker_id, detail=what)
    log.info("workflow %s: firing %s", workflow_id, a.label)
    try:
        if a.action_type == "run_commands":
            result = _run_commands(db, workflow_id, a, ctx)
        else:
            result = _schedule_nodes(db, workflow_id, a, ctx)
    except (TorcError, OSError) as e:
        result = {"outcome": "failed", "error": str(e)}
    kind = "action_completed" if result["outcome"] == "completed" else "action_failed"
    with db.conn.transaction():
        db.event(workflow_id, kind, worker_id=ctx.worker_id, detail={**what, **result})
    return {**what, **result}


# ---- run_commands --------------------------------------------------------------------------------------

def _run_commands(db: Database, workflow_id: int, a: Action, ctx: Context) -> dict:
    """The commands one after another with bash in the workflow's directory, as this process's user (the
    owner: only workers run them); the first that fails (or outlives the time limit) fails the action."""
    wf = db.workflow(workflow_id)
    cwd = wf["working_dir"] if wf["working_dir"] and os.path.isdir(wf["working_dir"]) else None
    env = dict(ctx.env or os.environ)
    env["TORC_ACTION_TRIGGER"] = a.trigger_type
    log_path = None
    if ctx.output_dir is not None:
        log_path = Path(ctx.output_dir) / "job_stdio" / f"action_wf{workflow_id}_p{a.position}_r{wf['run_id']}.log"
    output = []
    deadline = time.monotonic() + ctx.timeout_s
    commands = a.config.get("commands") or []
    for n, command in enumerate(commands):
        left = deadline - time.monotonic()
        rc, text = _run(command, cwd, env, left)
        output.append(text)
        if rc != 0:
            _write_log(log_path, output)
            why = (f"timed out after {ctx.timeout_s:.0f}s (TORC_ACTION_TIMEOUT_S)" if rc is None
                   else f"exited {rc}")
            return {"outcome": "failed", "command": n + 1, "commands": len(commands), "return_code": rc,
                    "error": f"command {n + 1} of {len(commands)} {why}", "output_tail": core.tail("".join(output)),
                    "log": str(log_path) if log_path else None}
    _write_log(log_path, output)
    return {"outcome": "completed", "commands": len(commands), "output_tail": core.tail("".join(output)),
            "log": str(log_path) if log_path else None}


def _run(command: str, cwd: str | None, env: dict, timeout_s: float) -> tuple[int | None, str]:
    """One command in its own process group; on timeout the whole group is killed. Returns (rc or None
    on timeout, combined output)."""
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    _RUNNING.add(proc)
    try:
        out, _ = proc.communicate(timeout=max(0.0, timeout_s))
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
        return None, out.decode(errors="replace")
    except BaseException:   # Ctrl-C while a start action runs: its commands go with us
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise
    finally:
        _RUNNING.discard(proc)


_RUNNING: set = set()   # action commands running now (a worker stopping early kills their process groups)


def kill_running() -> None:
    """Stop every action command this process runs (SIGKILL to its process group)."""
    for proc in list(_RUNNING):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _write_log(path: Path | None, output: list[str]) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(output))
    except OSError as e:
        log.warning("could not write the action's output to %s: %s", path, e)


# ---- schedule_nodes ------------------------------------------------------------------------------------

def _schedule_nodes(db: Database, workflow_id: int, a: Action, ctx: Context) -> dict:
    """num_allocations allocations of the named slurm_schedulers entry, through the submission path every
    allocation takes (values checked and quoted, the script written and submitted as the owner).
    start_one_worker_per_node: a worker on every node (srun); otherwise one worker for the allocation.
    max_parallel_jobs: the workers' -j."""
    from torc_hpc.slurm import allocations as allocs
    from torc_hpc.slurm.client import default_client

    client = ctx.client or default_client()
    if client is None:
        return {"outcome": "failed", "error": "Slurm's tools (sbatch) are not on PATH where this runs"}
    cfg = a.config
    name = cfg.get("scheduler")
    schedulers = {s["name"]: s for s in db.all("list_slurm_schedulers", workflow_id=workflow_id)}
    sch = schedulers.get(name)
    if sch is None:
        return {"outcome": "failed", "error": f"the workflow has no slurm_schedulers entry named {name!r}"}
    allocs._check_scheduler(workflow_id, sch)
    count = core.allocation_count(cfg)
    opts = allocs.SubmitOptions(max_parallel_jobs=cfg.get("max_parallel_jobs"),
                                source=f"{a.label} of workflow {workflow_id}")
    defaults = (db.one("workflow_slurm_defaults", workflow_id=workflow_id) or {}).get("slurm_defaults") or {}
    waiting = allocs.waiting_work(db, workflow_id)
    w = waiting.get(name) or _merged(waiting.values())
    request, problems = allocs.request_for(name, w, sch, opts, client.partition_shape(sch["partition"]), count,
                                           defaults)
    request = replace(request, one_worker=not cfg.get("start_one_worker_per_node"))
    submitted = []
    for _ in range(count):
        try:
            s = allocs.submit(db, workflow_id, client, replace(request), opts, submitted_by="action",
                              reason=a.label)
        except SlurmError as e:
            return {"outcome": "failed", "error": f"sbatch refused the allocation: {e.stderr.strip() or e}",
                    "allocations": submitted}
        submitted.append({k: s[k] for k in ("id", "slurm_job_id", "sbatch_args")})
    out = {"outcome": "completed", "scheduler": name, "allocations": submitted}
    if problems:
        out["warning"] = "; ".join(problems)
    return out


def _merged(items) -> "allocs.Waiting":
    from torc_hpc.core.allocation import Waiting

    items = list(items)
    return Waiting(jobs=sum(w.jobs for w in items), cpus=sum(w.cpus for w in items),
                   max_cpus=max((w.max_cpus for w in items), default=1),
                   memory_bytes=sum(w.memory_bytes for w in items),
                   max_memory_bytes=max((w.max_memory_bytes for w in items), default=2**20),
                   max_runtime_s=max((w.max_runtime_s for w in items), default=0),
                   max_gpus=max((w.max_gpus for w in items), default=0), ready=sum(w.ready for w in items))


# ---- finalize_dataset (torc's own action) ----------------------------------------------------------------

def _finalize_dataset(db: Database, workflow_id: int, a: Action, ctx: Context) -> dict | None:
    """Every writer of the dataset finished: walk its directory (bounded) and record the file count, the
    size and the fingerprint its hash_mode names, with an event — or, when a writer did not complete, why
    not. Claimed first, like every action, so one worker does it."""
    cfg = a.config
    with db.conn.transaction():
        if db.one("claim_action", workflow_id=workflow_id, action_id=a.id, fired_by=ctx.fired_by) is None:
            return None
    left = db.one("dataset_writers_left", dataset_id=cfg["dataset_id"])
    wf = db.workflow(workflow_id)
    root = Path(cfg["path"])
    if not root.is_absolute():
        root = Path(wf["working_dir"] or ".") / root
    detail = {"dataset": cfg["dataset"], "path": str(root), "hash_mode": cfg["hash_mode"], "fired_by": ctx.fired_by}
    if left["not_completed"]:
        out = {"finalized": False, "file_count": None, "total_bytes": None, "digest": None,
               "note": f"{left['not_completed']} of its {left['writers']} writer(s) did not complete"}
    else:
        out = fingerprint(root, cfg["hash_mode"])
        out["finalized"] = True
    with db.conn.transaction():
        db.one("record_dataset", workflow_id=workflow_id, dataset_id=cfg["dataset_id"], worker_id=ctx.worker_id,
               finalized=out["finalized"], file_count=out["file_count"], total_bytes=out["total_bytes"],
               digest=out["digest"], note=out["note"], detail=Jsonb({**detail, **out}))
    return {**detail, **out, "outcome": "completed" if out["finalized"] else "skipped"}


def fingerprint(root: Path, hash_mode: str) -> dict:
    """file_count, total_bytes, digest and a note (why it is partial), walking at most core.datasets.MAX_FILES
    regular files under root (symbolic links are not followed)."""
    import hashlib

    from torc_hpc.core import datasets as ds

    entries, notes = [], []
    total = 0
    if not root.is_dir():
        return {"file_count": 0, "total_bytes": 0, "digest": None, "note": f"{root} is not a directory"}
    stack = [root]
    while stack and len(entries) < ds.MAX_FILES:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        entries.append((os.path.relpath(e.path, root), st.st_size, st.st_mtime_ns))
                        total += st.st_size
                        if len(entries) >= ds.MAX_FILES:
                            notes.append(f"stopped after {ds.MAX_FILES:,} files (core.datasets.MAX_FILES)")
                            break
        except OSError as e:
            notes.append(f"could not read {top}: {e.strerror}")
    digest = None
    if hash_mode == "content" and total <= ds.MAX_CONTENT_BYTES:
        pairs = []
        for rel, _, _ in entries:
            h = hashlib.sha256()
            try:
                with open(root / rel, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            except OSError as e:
                notes.append(f"could not read {rel}: {e.strerror}")
                continue
            pairs.append((rel, h.hexdigest()))
        digest = ds.content_digest(pairs)
    elif hash_mode in ("manifest", "content"):
        if hash_mode == "content":
            notes.append(f"{total:,} bytes is more than content hashing reads "
                         f"(core.datasets.MAX_CONTENT_BYTES); manifest fingerprint instead")
        digest = ds.manifest_digest(entries)
    return {"file_count": len(entries), "total_bytes": total, "digest": digest, "note": "; ".join(notes) or None}


# ---- in a worker ---------------------------------------------------------------------------------------

class WorkerActions:
    """A worker's share of its workflow's actions (see the module's docstring). Use `begin`, which
    returns None when the workflow has no pending action."""

    def __init__(self, database_url: str, workflow_id: int, ctx: Context):
        self.url = database_url
        self.workflow_id = workflow_id
        self.ctx = ctx
        self.db: Database | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._abort = False     # stopping early: fire nothing more
        self._thread: threading.Thread | None = None

    @staticmethod
    def needed(db: Database, workflow_ids: list[int]) -> list[int]:
        """Which of these workflows have an action left to fire (one indexed query)."""
        if not workflow_ids:
            return []
        return [r["workflow_id"] for r in db.all("workflows_with_pending_actions", workflow_ids=workflow_ids)]

    @classmethod
    def begin(cls, database_url: str, workflow_id: int, ctx: Context) -> "WorkerActions":
        """Open this worker's actions connection, fire the start triggers (the worker claims nothing before
        they are done) and watch for the others."""
        self = cls(database_url, workflow_id, ctx)
        self.db = Database(database_url)
        self._fire(Phase.START)
        self._thread = threading.Thread(target=self._poll, name="torc-actions", daemon=True)
        self._thread.start()
        return self

    def poke(self) -> None:
        """Jobs finished: an action may be due (cheap; called by the worker loop after each batch)."""
        self._wake.set()

    def end(self, reason: str = "done") -> None:
        """The worker is leaving. After a normal end (nothing left, idle): let a running action finish, then
        fire what is due now, the completion triggers included. After any other (walltime, scancel, Ctrl-C,
        cancel, lost, an error): stop the running action's commands and fire nothing more — the allocation
        or the person is not waiting."""
        self._stopping = True
        self._wake.set()
        if reason not in NORMAL_ENDS:
            self._abort = True
            kill_running()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._close()
            return
        if self._thread is not None:
            self._thread.join()
        try:
            if self.db is None:
                self.db = Database(self.url)
            self._fire(Phase.STOP)
        finally:
            self._close()

    def _fire(self, phase: Phase) -> list[dict]:
        try:
            return fire(self.db, self.workflow_id, phase, self.ctx, stop=lambda: self._abort)
        except psycopg.Error as e:   # actions never take the worker down; the next poll or runner retries
            log.warning("workflow %s: could not fire actions (%s)", self.workflow_id, str(e).strip())
            self._close()
            return []

    def _poll(self) -> None:
        while not self._stopping:
            if self._wake.wait(POLL_S):
                time.sleep(SETTLE_S)   # the worker pokes before its batch commits; let it land
            self._wake.clear()
            if self._stopping:
                return
            if self.db is None:
                try:
                    self.db = Database(self.url)
                except psycopg.Error:
                    continue
            self._fire(Phase.POLL)
            try:
                left = pending(self.db, self.workflow_id) if self.db is not None else None
            except psycopg.Error:
                self._close()
                continue
            if left is not None and not core.still_possible(left, self.ctx.runner):
                self._close()     # nothing can fire before the worker leaves: free the connection
                return

    def _close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except psycopg.Error:
                pass
            self.db = None
