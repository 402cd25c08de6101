"""Every read and state change torc makes, as short transactions over the named queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import contextlib
import json
import logging
import secrets
import time

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from torc_hpc.core.failure import FailureRule
from torc_hpc import limits
from torc_hpc.core.states import RESETTABLE_FAILED, JobStatus, can_transition
from torc_hpc.core.units import parse_duration
from torc_hpc.db import migrate as migrations
from torc_hpc.db.connection import connect, connect_retrying, resolve_url
from torc_hpc.db.queries import q
from torc_hpc.errors import DatabaseError, NotFound, TorcError

log = logging.getLogger("torc.db")

_CREATE_LOCK = 7_415_002  # serialises job-id reservation between concurrent creates
NO_LIMIT_S = 2**31 - 1

# Lock-order conflicts between concurrent completions are rare and harmless to retry.
retry_conflicts = retry(
    retry=retry_if_exception_type((psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)),
    stop=stop_after_attempt(8), wait=wait_random_exponential(multiplier=0.01, max=0.5), reraise=True)


@dataclass(slots=True)
class Attempt:
    """One attempt of a job as the worker saw it; the parameters of the finish_* queries."""

    job_id: int
    run_id: int
    attempt_id: int
    worker_id: int | None
    return_code: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    exec_time_s: float | None = None
    peak_memory_bytes: int | None = None
    cpu_time_s: float | None = None

    def params(self) -> dict:
        return {"job_id": self.job_id, "run_id": self.run_id, "attempt_id": self.attempt_id,
                "worker_id": self.worker_id, "return_code": self.return_code,
                "started_at": self.started_at, "completed_at": self.completed_at,
                "exec_time_s": self.exec_time_s, "peak_memory_bytes": self.peak_memory_bytes,
                "cpu_time_s": self.cpu_time_s}


_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str | None) -> str:
    """A value in COPY's text format."""
    if value is None:
        return _NULL
    return value.translate(_COPY_ESCAPES) if ("\\" in value or "\t" in value or "\n" in value or "\r" in value) \
        else value


class Database:
    """A connection to torc's database, migrated on first use. With `retry_s`, a refused connection (too
    many connections, a server restarting) is retried with back-off for that long before giving up."""

    def __init__(self, url: str | None = None, *, migrate: bool = True, retry_s: float = 0, plan_once: bool = False):
        self.url = resolve_url(url)
        self.plan_once = plan_once   # see connection.connect: a worker's connection plans each statement once
        self.conn = (connect_retrying(self.url, within_s=retry_s, plan_once=plan_once) if retry_s > 0
                     else connect(self.url, plan_once=plan_once))
        if migrate and migrations.pending(self.conn):
            migrations.migrate(self.conn)

    def close(self) -> None:
        self.conn.close()

    def broken(self, exc: BaseException) -> bool:
        """Whether `exc` means the connection itself is gone (server restart, failover, terminated backend)
        rather than a statement failing on a working connection."""
        if not isinstance(exc, psycopg.OperationalError):
            return False
        state = getattr(exc, "sqlstate", None) or ""
        # 08xxx: connection exceptions; 57P01-03: admin/crash shutdown, cannot connect now (restarting).
        return bool(self.conn.broken or self.conn.closed or state.startswith("08")
                    or state in ("57P01", "57P02", "57P03"))

    def reconnect_after(self, exc: BaseException, deadline: float) -> bool:
        """After `exc`, if the connection itself broke, reconnect (with back-off) until `deadline`
        (time.monotonic()). True: connected again, retry the operation. False: not a broken connection,
        or the deadline passed."""
        if not self.broken(exc) or time.monotonic() >= deadline:
            return False
        with contextlib.suppress(Exception):
            self.conn.close()
        try:
            self.conn = connect_retrying(self.url, within_s=deadline - time.monotonic(), what="reconnect",
                                         plan_once=self.plan_once)
        except DatabaseError:
            return False
        log.warning("reconnected to the database after: %s", str(exc).strip().splitlines()[0])
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def stream(self, query: str, /, *, itersize: int = 2000, first: int = 50, **params):
        """Rows of a named query as they arrive: a server-side (named) cursor inside one read transaction.
        The first `first` rows come in a small fetch (they are on screen at once), then `itersize` at a time,
        so a million-row listing starts immediately and holds one batch in memory. Leave the loop (or close
        the generator) to end the transaction."""
        with self.conn.transaction():
            self.conn.execute(q("no_jit_for_this_transaction"))
            with self.conn.cursor(name="torc_stream") as cur:
                cur.execute(q(query), params)
                size = first
                while rows := cur.fetchmany(size):
                    yield from rows
                    size = itersize

    def one(self, query: str, /, **params) -> dict | None:
        return self.conn.execute(q(query), params).fetchone()

    def run(self, query: str, /, **params) -> int:
        """Execute a named statement that returns no rows; returns the affected row count."""
        return self.conn.execute(q(query), params).rowcount

    def all(self, query: str, /, **params) -> list[dict]:
        return self.conn.execute(q(query), params).fetchall()

    # ---- workflows -------------------------------------------------------------------------

    def create_workflow(self, expanded, *, spec_path: str | None, working_dir: str,
                        output_dir: str = "torc_output", spec_sha256: str | None = None) -> int:
        """Insert a whole expanded workflow in one transaction; jobs and edges go through COPY.
        spec_sha256: the spec file's content hash (finds an unfinished run of the same file)."""
        spec = expanded.spec
        jobs = expanded.jobs
        with self.conn.transaction():
            wf = self.one("insert_workflow", name=spec.name, description=spec.description,
                          spec=Jsonb(spec.model_dump(mode="json", exclude_defaults=True)),
                          spec_path=spec_path, use_pending_failed=spec.use_pending_failed,
                          output_dir=output_dir, working_dir=working_dir, spec_sha256=spec_sha256)
            wf_id = wf["id"]
            self._store_workflow_fields(wf_id, spec)
            handler_ids = {}
            for h in spec.failure_handlers:
                hid = self.one("insert_failure_handler", workflow_id=wf_id, name=h.name)["id"]
                handler_ids[h.name] = hid
                for pos, rule in enumerate(h.rules):
                    self.conn.execute(q("insert_failure_rule"), {
                        "handler_id": hid, "position": pos, "exit_codes": rule.exit_codes,
                        "match_all_exit_codes": rule.match_all_exit_codes,
                        "recovery_script": rule.recovery_script, "max_retries": rule.max_retries,
                        "recovery_timeout_s": rule.recovery_timeout_s})
            for sch in spec.slurm_schedulers:
                self.conn.execute(q("insert_slurm_scheduler"), {
                    "workflow_id": wf_id, "name": sch.name, "account": sch.account, "partition": sch.partition,
                    "walltime_s": parse_duration(sch.walltime), "nodes": sch.nodes,
                    "cpus_per_node": sch.cpus_per_node, "mem": sch.mem, "qos": sch.qos, "gres": sch.gres,
                    "extra": sch.extra, "tmp": sch.tmp, "ntasks_per_node": sch.ntasks_per_node,
                    "serialize_allocations": sch.serialize_allocations})
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
            first = self.one("reserve_job_ids", count=len(jobs))["first_id"]
            in_degree = expanded.in_degree
            # COPY text built by hand in large chunks: write_row per job costs more than the server's work.
            # COPY FROM refuses tables under row-level security: a role other than the schema owner COPYs
            # into private staging tables and moves the rows with one INSERT each (the policies check them).
            staged = self.one("rls_active")["active"]
            if staged:
                self.run("stage_jobs")
                self.run("stage_edges")
            # Torc's per-job fields are columns only when some job uses them: plain workflows COPY as before.
            extras = any(j.extra is not None for j in jobs)
            wf_env = spec.env or None
            with self.conn.cursor().copy(
                f"COPY {'torc_stage_jobs' if staged else 'jobs'} (id, workflow_id, name, command, status, unfinished_parents, priority, num_cpus, "
                "num_gpus, num_nodes, memory_bytes, runtime_s, resource_requirements, failure_handler_id, "
                "cancel_on_blocking_job_failure, scheduler, ready_at"
                + (", invocation_script, env, label, stdio_mode, delete_stdio_on_success" if extras else "")
                + ") FROM STDIN") as copy:
                chunk = []
                for i, j in enumerate(jobs):
                    n = in_degree[i]
                    hid = handler_ids.get(j.failure_handler) if j.failure_handler else None
                    tail = "\n"
                    if extras:
                        env = None if j.env is None or j.env == wf_env else json.dumps(j.env)
                        tail = (f"\t{_copy_text(j.invocation_script)}\t{_copy_text(env)}\t{_copy_text(j.label)}\t"
                                f"{_NULL if j.stdio_mode == 'separate' else j.stdio_mode}\t"
                                f"{'t' if j.delete_stdio_on_success else 'f'}\n")
                    chunk.append(
                        f"{first + i}\t{wf_id}\t{_copy_text(j.name)}\t{_copy_text(j.command)}\t"
                        f"{'blocked' if n else 'ready'}\t{n}\t{j.priority}\t{j.num_cpus}\t{j.num_gpus}\t"
                        f"{j.num_nodes}\t{j.memory_bytes}\t{j.runtime_s}\t{_copy_text(j.resource_requirements)}\t"
                        f"{_NULL if hid is None else hid}\t{'t' if j.cancel_on_blocking_job_failure else 'f'}\t"
                        f"{_copy_text(j.scheduler)}\t{_NULL if n else 'now'}{tail}")
                    if len(chunk) >= 20_000:
                        copy.write("".join(chunk))
                        chunk = []
                copy.write("".join(chunk))
            if expanded.edge_count:
                with self.conn.cursor().copy(
                        f"COPY {'torc_stage_edges' if staged else 'job_dependencies'} (workflow_id, parent_id, child_id) "
                        "FROM STDIN") as copy:
                    chunk = []
                    for p, c in zip(expanded.parents, expanded.children):
                        chunk.append(f"{wf_id}\t{first + p}\t{first + c}\n")
                        if len(chunk) >= 50_000:
                            copy.write("".join(chunk))
                            chunk = []
                    copy.write("".join(chunk))
            if staged:
                self.run("unstage_jobs")
                self.run("unstage_edges")
            self._store_workflow_data(wf_id, expanded, first)
            self.event(wf_id, "created", detail={"jobs": len(jobs), "dependencies": expanded.edge_count,
                                                 "spec_path": spec_path})
        return wf_id

    def _store_workflow_fields(self, wf_id: int, spec) -> None:
        """Torc's workflow-level fields (stored and shown; the spec's `user` never decides ownership)."""
        def dumped(model):
            return Jsonb(model.model_dump(mode="json")) if model is not None else None

        self.run("set_workflow_compat", workflow_id=wf_id, project=spec.project, spec_user=spec.user,
                 metadata=Jsonb(spec.metadata) if spec.metadata is not None else None,
                 slurm_defaults=Jsonb(spec.slurm_defaults) if spec.slurm_defaults else None,
                 env=Jsonb(spec.env) if spec.env else None,
                 execution_config=dumped(spec.execution_config), resource_monitor=dumped(spec.resource_monitor))

    def _store_workflow_data(self, wf_id: int, expanded, first_job_id: int) -> None:
        """Files, user_data, datasets (with who reads and writes them) and actions: one statement per table."""
        jobs = expanded.jobs
        kinds = (("files", "insert_files", "insert_job_files", "input_files", "output_files"),
                 ("user_data", "insert_user_data", "insert_job_user_data", "input_user_data", "output_user_data"),
                 ("datasets", "insert_datasets", "insert_job_datasets", "input_datasets", "output_datasets"))
        for kind, insert, insert_refs, inputs, outputs in kinds:
            items = getattr(expanded, kind)
            if not items:
                continue
            names = [x.name for x in items]
            if kind == "files":
                params = {"paths": [x.path for x in items], "mtimes": [x.st_mtime for x in items],
                          "must_exist": [x.must_exist for x in items]}
            elif kind == "user_data":
                params = {"datas": [Jsonb(x.data) if x.data is not None else None for x in items],
                          "ephemeral": [x.is_ephemeral for x in items]}
            else:
                params = {"paths": [x.path for x in items], "hash_modes": [x.hash_mode for x in items],
                          "descriptions": [x.description for x in items]}
            ids = {r["name"]: r["id"] for r in self.all(insert, workflow_id=wf_id, names=names, **params)}
            job_ids, item_ids, directions = [], [], []
            for n, j in enumerate(jobs):
                for direction, attr in (("input", inputs), ("output", outputs)):
                    for name in getattr(j, attr):
                        job_ids.append(first_job_id + n)
                        item_ids.append(ids[name])
                        directions.append(direction)
            if job_ids:
                self.run(insert_refs, workflow_id=wf_id, job_ids=job_ids, item_ids=item_ids, directions=directions)
            if kind == "datasets":
                self._dataset_finalizers(wf_id, items, ids, job_ids, item_ids, directions)
        for a in expanded.actions:
            config = {"commands": a.commands, "scheduler": a.scheduler, "num_allocations": a.num_allocations,
                      "start_one_worker_per_node": a.start_one_worker_per_node,
                      "max_parallel_jobs": a.max_parallel_jobs, "persistent": a.persistent}
            action_id = self.one("insert_action", workflow_id=wf_id, position=a.spec_index,
                                 trigger_type=a.trigger_type, action_type=a.action_type,
                                 config=Jsonb({k: v for k, v in config.items() if v is not None}),
                                 selected_count=len(a.job_indexes))["id"]
            if a.job_indexes:
                job_ids = [first_job_id + k for k in a.job_indexes]
                self.run("insert_action_jobs", workflow_id=wf_id, action_id=action_id, job_ids=job_ids)
                self.run("mark_action_jobs", workflow_id=wf_id, action_id=action_id, job_ids=job_ids)
        if expanded.spec.dynamic_jobs is not None:
            self.run("set_dynamic_jobs", workflow_id=wf_id, max_iterations=expanded.spec.dynamic_jobs.max_iterations)
        if expanded.actions or expanded.datasets:  # jobs created ready have reached on_jobs_ready already
            self.run("recount_actions", workflow_id=wf_id, rearm=False, full=False)

    def _dataset_finalizers(self, wf_id: int, datasets, ids: dict, job_ids, item_ids, directions) -> None:
        """Each dataset that some job writes gets torc's own on_jobs_complete action over its writers (position
        -1 - i): the worker that sees them all finished fingerprints it (torc_hpc.actions)."""
        writers: dict[int, list[int]] = {}
        for job_id, item_id, direction in zip(job_ids, item_ids, directions):
            if direction == "output":
                writers.setdefault(item_id, []).append(job_id)
        for i, d in enumerate(datasets):
            jobs = writers.get(ids[d.name])
            if not jobs:
                continue
            config = {"dataset_id": ids[d.name], "dataset": d.name, "path": d.path, "hash_mode": d.hash_mode}
            action_id = self.one("insert_action", workflow_id=wf_id, position=-1 - i,
                                 trigger_type="on_jobs_complete", action_type="finalize_dataset",
                                 config=Jsonb(config), selected_count=len(jobs))["id"]
            self.run("insert_action_jobs", workflow_id=wf_id, action_id=action_id, job_ids=jobs)
            self.run("mark_action_jobs", workflow_id=wf_id, action_id=action_id, job_ids=jobs)

    def event(self, workflow_id: int, kind: str, *, job_id=None, from_status=None, to_status=None,
              attempt_id=None, run_id=None, worker_id=None, detail: dict | None = None) -> None:
        self.conn.execute(q("insert_event"), {
            "workflow_id": workflow_id, "job_id": job_id, "kind": kind, "from_status": from_status,
            "to_status": to_status, "attempt_id": attempt_id, "run_id": run_id, "worker_id": worker_id,
            "detail": Jsonb(detail) if detail is not None else None})

    def workflow(self, workflow_id: int, *, deleting_ok: bool = False) -> dict:
        row = self.one("get_workflow", workflow_id=workflow_id)
        if row is None:
            raise NotFound(f"workflow {workflow_id} does not exist (see `torc workflows list`)")
        if row.get("deleting_at") is not None and not deleting_ok:
            raise NotFound(f"workflow {workflow_id} is being deleted (since {row['deleting_at']:%Y-%m-%d %H:%M:%S}); "
                           f"finish with `torc workflows delete {workflow_id} --yes`")
        return row

    def failure_rules(self, workflow_id: int) -> dict[int, tuple[FailureRule, ...]]:
        """handler id → its rules, in order."""
        rules: dict[int, list[FailureRule]] = {}
        for r in self.all("load_failure_rules", workflow_id=workflow_id):
            rules.setdefault(r["handler_id"], []).append(FailureRule(
                exit_codes=tuple(r["exit_codes"]), match_all_exit_codes=r["match_all_exit_codes"],
                recovery_script=r["recovery_script"], max_retries=r["max_retries"],
                recovery_timeout_s=r["recovery_timeout_s"]))
        return {k: tuple(v) for k, v in rules.items()}

    def status_counts(self, workflow_id: int) -> dict[str, int]:
        counts = {s.value: 0 for s in JobStatus}
        for r in self.all("status_counts", workflow_id=workflow_id):
            counts[r["status"]] = r["n"]
        return counts

    def cancel_workflow(self, workflow_id: int, *, chunk: int = limits.CANCEL_CHUNK_JOBS) -> int:
        """Cancel a workflow: first mark it (claims stop, idle workers wake through NOTIFY and leave, busy
        ones stop their jobs at the next heartbeat), then cancel the jobs that have not started in chunks of
        at most `chunk`, each chunk's updates and events in one short transaction. A crash between chunks
        leaves a canceled workflow with jobs still waiting; a re-run finishes it. Returns jobs canceled."""
        self.workflow(workflow_id)
        with self.conn.transaction():
            wf = self.one("mark_workflow_canceled", workflow_id=workflow_id)
            if wf is None:
                raise NotFound(f"workflow {workflow_id} does not exist (see `torc workflows list`)")
            self.event(workflow_id, "workflow_canceled", run_id=wf["run_id"], detail={"chunk": chunk})
            self.notify_ready(workflow_id)  # idle workers wake, see the cancel and leave
        total, passes = 0, 0
        while True:
            after = ""
            while True:  # one pass over the workflow's jobs, in name order
                with self.conn.transaction():
                    row = self.one("cancel_jobs_chunk", workflow_id=workflow_id, chunk=chunk, after=after)
                total += row["canceled"]
                if row["scanned"] < chunk:
                    break
                after = row["last"]
            # A job a finisher held during the pass (turning it ready) may be left: another pass, after a
            # moment. A reset that un-canceled the workflow meanwhile ends the loop (left is false).
            passes += 1
            if not self.one("cancel_jobs_left", workflow_id=workflow_id)["left"] or passes >= 50:
                break
            time.sleep(0.05)
        return total

    def delete_workflow(self, workflow_id: int, *, chunk: int = limits.DELETE_CHUNK_ROWS,
                        unchanged_since_event: int | None = None) -> dict:
        """Delete a workflow and everything it owns in bounded transactions: mark it (deleting_at and
        canceled_at: nobody claims, commands refuse it), then its jobs in chunks of `chunk` (each with their
        results and incoming edges), its events in chunks of `chunk`, then the workflow row with its small
        tables. A crash at any point leaves a marked workflow that a re-run of delete finishes. With
        `unchanged_since_event` (archive), the mark is refused if the workflow has an event newer than that
        id. Returns rows deleted per table."""
        self.workflow(workflow_id, deleting_ok=True)
        with self.conn.transaction():
            if self.one("mark_workflow_deleting", workflow_id=workflow_id,
                        unchanged_since_event=unchanged_since_event) is None:
                if unchanged_since_event is not None:
                    raise TorcError(f"workflow {workflow_id} changed while it was being exported; it was not "
                                    f"deleted. Run the archive again once nothing runs in it.")
                raise NotFound(f"workflow {workflow_id} does not exist (see `torc workflows list`)")
            self.notify_ready(workflow_id)  # idle workers wake, see the cancel and leave
        counts = {"jobs": 0, "results": 0, "dependencies": 0, "events": 0}
        after = ""
        while True:  # jobs in name order, each chunk with their results and incoming edges
            with self.conn.transaction():
                row = self.one("delete_workflow_jobs_chunk", workflow_id=workflow_id, chunk=chunk, after=after)
            for k in ("jobs", "results", "dependencies"):
                counts[k] += row[k]
            if row["jobs"] < chunk:
                break
            after = row["last"]
        after_id = 0
        while True:
            with self.conn.transaction():
                row = self.one("delete_workflow_events_chunk", workflow_id=workflow_id, chunk=chunk, after=after_id)
            counts["events"] += row["events"]
            if row["events"] < chunk:
                break
            after_id = row["last"]
        with self.conn.transaction():
            self.one("delete_workflow_row", workflow_id=workflow_id)
        return counts

    @retry_conflicts
    def reset_status(self, workflow_id: int, *, failed_only: bool) -> dict:
        """Start a new run: reset the failed, canceled, terminated and pending_failed jobs (failed_only), or
        every job that ran or waits for a retry. Only those jobs and their blocked or ready children are
        rewritten. Returns run_id, reset (jobs reset) and recounted (children whose count changed)."""
        self.workflow(workflow_id)
        with self.repeatable_read():
            running = self.one("count_running", workflow_id=workflow_id)["n"]
            if running and not failed_only:
                raise DatabaseError(
                    f"workflow {workflow_id} has {running} running job(s); wait for them or "
                    f"`torc workflows cancel {workflow_id}` before a full reset")
            if failed_only:
                statuses = sorted(s.value for s in RESETTABLE_FAILED)
            else:
                statuses = [s.value for s in JobStatus if s not in (JobStatus.RUNNING, JobStatus.DISABLED)]
            reason = "reset-status --failed-only" if failed_only else "reset-status"
            row = self.one("reset_jobs", workflow_id=workflow_id, statuses=statuses, job_ids=None, reason=reason)
            if row["run_id"] is None:
                raise NotFound(f"workflow {workflow_id} is being deleted; finish with "
                               f"`torc workflows delete {workflow_id} --yes`")
            self.rearm_actions(workflow_id, full=not failed_only)
            self.run("reset_ephemeral_user_data", workflow_id=workflow_id)
            self.event(workflow_id, "workflow_reset", run_id=row["run_id"],
                       detail={"failed_only": failed_only, "jobs_reset": row["reset"],
                               "children_recounted": row["recounted"]})
            self.notify_ready(workflow_id)
        return row

    @contextlib.contextmanager
    def repeatable_read(self):
        """A transaction at REPEATABLE READ: what every reset needs, so that a worker completing a parent
        meanwhile cannot lose its decrement (wrap the caller in retry_conflicts)."""
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    def reset_jobs(self, workflow_id: int, job_ids: list[int], *, reason: str) -> dict:
        """Reset the given jobs and their canceled descendants (within the caller's transaction if one is
        open; REPEATABLE READ is the caller's to set there). Returns run_id, reset and recounted."""
        row = self.one("reset_jobs", workflow_id=workflow_id, statuses=None, job_ids=job_ids, reason=reason)
        self.rearm_actions(workflow_id, full=False)
        return row

    def rearm_actions(self, workflow_id: int, *, full: bool) -> None:
        """After a reset, in its transaction: recount the workflow's actions from their jobs' statuses and
        re-arm those the reset made pending again (docs/torc-compat.md §4.3). No actions: one index probe."""
        self.one("recount_actions", workflow_id=workflow_id, rearm=True, full=full)

    def release_jobs(self, workflow_id: int, worker_id: int, job_ids: list[int]) -> list[int]:
        """Give jobs a worker claimed but never ran back: ready again, same attempt, event `released`."""
        with self.conn.transaction():
            released = [r["id"] for r in self.all("release_jobs", workflow_id=workflow_id, worker_id=worker_id,
                                                  job_ids=job_ids)]
            self.notify_ready(workflow_id)
        return released

    def notify_ready(self, workflow_id: int) -> None:
        self.conn.execute(q("notify_ready"), {"workflow_id": workflow_id})

    def listen_ready(self, workflow_id: int, listener: psycopg.Connection | None = None) -> None:
        """LISTEN (on `listener`, default this connection) on the channel where the workflow's "jobs became
        ready" notifications arrive. The name is read from the workflow: a random token only its readers see."""
        row = self.one("notify_channel", workflow_id=workflow_id)
        if row is None:
            raise NotFound(f"workflow {workflow_id} does not exist (see `torc workflows list`)")
        (listener or self.conn).execute(sql.SQL("LISTEN {}").format(sql.Identifier(row["notify_channel"])))

    # ---- workers ---------------------------------------------------------------------------

    def register_worker(self, workflow_id: int, *, hostname: str, pid: int, num_cpus: int, num_gpus: int,
                        memory_bytes: int, slurm_job_id: str | None = None,
                        end_time: datetime | None = None, token: str | None = None,
                        start_journal: str | None = None) -> int:
        """Register a worker. `token` (random when not given) goes into its jobs' environment as
        TORC_WORKER_TOKEN; the cleanup after a lost worker kills only processes that carry it."""
        with self.conn.transaction():
            wid = self.one("register_worker", workflow_id=workflow_id, hostname=hostname, pid=pid,
                           slurm_job_id=slurm_job_id, num_cpus=num_cpus, num_gpus=num_gpus,
                           memory_bytes=memory_bytes, end_time=end_time,
                           token=token or secrets.token_hex(16))["id"]
            if start_journal:   # where it journals the jobs it starts (read after it dies: reconcile.py)
                self.run("set_start_journal", worker_id=wid, path=start_journal)
            self.event(workflow_id, "worker_started", worker_id=wid,
                       detail={"hostname": hostname, "pid": pid, "slurm_job_id": slurm_job_id})
        return wid

    def heartbeat(self, worker_id: int) -> dict:
        return self.one("heartbeat", worker_id=worker_id) or {"workflow_canceled": True, "declared_lost": True}

    def stop_worker(self, workflow_id: int, worker_id: int, reason: str, unrunnable: list[str] | None = None) -> None:
        detail = {"reason": reason}
        if unrunnable:
            detail["ready_jobs_too_large_for_this_worker"] = unrunnable
        with self.conn.transaction():
            self.conn.execute(q("stop_worker"), {"worker_id": worker_id, "reason": reason})
            self.event(workflow_id, "worker_stopped", worker_id=worker_id, detail=detail)

    # ---- claims and completions ------------------------------------------------------------

    def claim(self, workflow_id: int, worker_id: int, *, cpus: int, gpus: int, memory: int, limit: int,
              time_left_s: int = NO_LIMIT_S, scheduler: str | None = None, window: int | None = None,
              job_cpus: int | None = None, job_gpus: int | None = None, job_memory: int | None = None,
              label: str | None = None, with_outputs: bool = False) -> list[dict]:
        """Claim up to `limit` ready jobs whose summed requests fit cpus/gpus/memory, looking at the first
        `window` ready jobs in claim order (None: all of them); job_*: the most one job may ask (default: the
        same bounds); only jobs with `label` (None: unlabeled ones)."""
        if limit <= 0:
            return []
        return self.all("claim_jobs", **_job_bounds({
            "workflow_id": workflow_id, "worker_id": worker_id, "cpus": cpus, "gpus": gpus, "memory": memory,
            "limit": limit, "time_left_s": min(time_left_s, NO_LIMIT_S), "scheduler": scheduler, "window": window,
            "job_cpus": job_cpus, "job_gpus": job_gpus, "job_memory": job_memory, "label": label,
            "with_outputs": with_outputs}))

    @retry_conflicts
    def finish(self, workflow_id: int, steps: list[tuple[str, dict]], *, worker_id: int | None = None,
               claim: dict | None = None, heartbeat: bool = False,
               serving: list[tuple[int, int]] | None = None, notify: list[int] | None = None) -> dict:
        """Apply several finish_* steps in one transaction (a worker batches its completions), optionally
        claim more jobs and refresh the worker's heartbeat in the same transaction: one commit per batch.

        Each step is (query name, params). `serving`: (workflow id, worker row) of every workflow a worker
        serves when it serves several (the claim then spans them: claim_jobs_multi; the heartbeat refreshes
        every row). Returns totals of rows finished and jobs made ready, the claimed jobs, and (with
        `heartbeat`) the heartbeat's answer, one row per workflow. Idle workers are woken (NOTIFY on each of
        `notify`, default the workflow) only when this batch left more jobs ready than it claimed itself: a
        worker completing a chain claims the next link in the same transaction, and waking every listener for
        it would be a storm of empty claims.
        """
        totals = {"finished": 0, "newly_ready": 0, "canceled": 0, "stale": [], "claimed": [], "heartbeat": None}
        serving = serving or [(workflow_id, worker_id)]
        # Completions always go through the batch statement, even one: a worker plans one statement, not two
        # (one per worker row: each result names the row of its own workflow).
        completed: dict[int | None, list[dict]] = {}
        for name, p in steps:
            if name == "finish_completed":
                completed.setdefault(p["worker_id"], []).append(p)
        others = [(name, p) for name, p in steps if name != "finish_completed"]
        # Pipeline mode: every statement goes out at once, then one wait for the results and one for COMMIT.
        with self.conn.pipeline(), self.conn.transaction():
            pending = []
            for wid, batch in completed.items():
                # The common case, exits 0, in one statement for the whole batch.
                pending.append((None, self.conn.execute(q("finish_completed_batch"), {
                    "worker_id": wid,
                    "job_ids": [p["job_id"] for p in batch], "run_ids": [p["run_id"] for p in batch],
                    "attempt_ids": [p["attempt_id"] for p in batch],
                    "started": [p["started_at"] for p in batch],
                    "completed": [p["completed_at"] for p in batch],
                    "exec_time": [p["exec_time_s"] for p in batch],
                    "peak_memory": [p["peak_memory_bytes"] for p in batch],
                    "cpu_time": [p["cpu_time_s"] for p in batch]})))
            for name, params in others:
                pending.append((params["job_id"], self.conn.execute(q(name), params)))
            beat = self.conn.execute(q("heartbeat_many"), {"worker_ids": [w for _, w in serving]}) \
                if heartbeat else None
            claim_cursor = None
            if claim is not None and claim["limit"] > 0:
                args = _job_bounds({"window": None, "label": None, "with_outputs": False, **claim,
                                    "time_left_s": min(claim["time_left_s"], NO_LIMIT_S)})
                if len(serving) > 1:
                    claim_cursor = self.conn.execute(q("claim_jobs_multi"), {
                        "rotate": 0, **args, "workflow_ids": [w for w, _ in serving],
                        "worker_ids": [k for _, k in serving]})
                else:
                    claim_cursor = self.conn.execute(q("claim_jobs"), {
                        **args, "workflow_id": serving[0][0], "worker_id": serving[0][1]})
            for job_id, cur in pending:
                row = cur.fetchone()
                if job_id is None:
                    totals["stale"].extend(row["stale"])
                elif row.get("finished", row.get("recorded", 1)) == 0:
                    totals["stale"].append(job_id)
                totals["finished"] += row.get("finished", 0)
                totals["newly_ready"] += row.get("newly_ready", 0) or 0
                totals["canceled"] += row.get("canceled", 0) or 0
            if claim_cursor is not None:
                totals["claimed"] = claim_cursor.fetchall()
            if beat is not None:
                totals["heartbeat"] = beat.fetchall()
            if totals["newly_ready"] > len(totals["claimed"]):
                for wf in notify or [workflow_id]:
                    self.notify_ready(wf)
        return totals


def label_key(label: str | None) -> str:
    """A worker's label as the ready-jobs index keys it (jobs.label_key): '' for unlabeled. Computed here,
    not with coalesce() in SQL: row-level security keeps a COALESCE out of index conditions (migration 0020)."""
    return label or ""


def _job_bounds(params: dict) -> dict:
    """claim_jobs' per-job bounds (job_cpus, job_gpus, job_memory) default to the claim's budget; the label
    becomes its label_key."""
    params["label_key"] = label_key(params.pop("label", None))
    for k in ("cpus", "gpus", "memory"):
        if params.get(f"job_{k}") is None:
            params[f"job_{k}"] = params[k]
    return params


def finish_step(kind: str, attempt: Attempt, *, status: JobStatus | None = None,
                attempt_status: JobStatus | None = None, from_status: JobStatus = JobStatus.RUNNING,
                record_result: bool = True, event_kind: str | None = None, detail: dict | None = None
                ) -> tuple[str, dict]:
    """Build one step for Database.finish. kind: completed | failed | retry | pending_failed | recovering."""
    p = attempt.params()
    target = {"completed": JobStatus.COMPLETED, "retry": JobStatus.READY, "pending_failed": JobStatus.PENDING_FAILED,
              "failed": status or JobStatus.FAILED}.get(kind)
    if target is not None and not can_transition(from_status, target):
        raise ValueError(f"a job cannot go from {from_status.value} to {target.value}")
    if kind == "completed":
        return "finish_completed", p
    p.update(attempt_status=(attempt_status or status or JobStatus.FAILED).value,
             record_result=record_result, from_status=from_status.value,
             detail=Jsonb(detail or {}))
    if kind == "failed":
        status = status or JobStatus.FAILED
        p.update(status=status.value, event_kind=event_kind or status.value)
        return "finish_failed", p
    if kind == "retry":
        return "finish_retry", p
    if kind == "pending_failed":
        return "finish_pending_failed", p
    if kind == "recovering":
        return "record_attempt_result", p
    raise ValueError(f"unknown finish kind {kind!r}")
