"""`torc jobs spawn`: a running job adds jobs to its workflow, blocked on itself, in one transaction.

Torc's dynamic_jobs (docs/torc-compat.md §4.16). The batch is planned by torc_hpc.spec.spawn (pure); here the
transaction: lock the caller (it must be running), treat a batch whose names all exist already as a repeat
(idempotent: nothing is written, the existing ids are returned), count the lineage's spawn against
dynamic_jobs.max_iterations, insert the jobs blocked on the caller (and on the siblings and completed jobs
they name) with their edges and events. The caller's own completion then unblocks them the usual way.
An empty batch marks the lineage converged. Spawned jobs get TORC_ORCHESTRATOR_LINEAGE_ID (Torc's) and
TORC_ORCHESTRATOR_GENERATION (which spawn made them; Torc's client derives it from its records) in their
environment (jobs.env, merged over the workflow's env). Every workflow may spawn (Torc's rule); the cap
is dynamic_jobs.max_iterations, 1000 when the spec says nothing.
"""

from __future__ import annotations

import json
import os

from psycopg.types.json import Jsonb

from torc_hpc.db.repo import _CREATE_LOCK, Database
from torc_hpc.errors import TorcError
from torc_hpc.spec.spawn import SpawnRejected, plan_batch, resource_table

LINEAGE_ENV = "TORC_ORCHESTRATOR_LINEAGE_ID"
GENERATION_ENV = "TORC_ORCHESTRATOR_GENERATION"   # which spawn of the lineage made the job (torc-hpc's own)
_DONE = ("completed", "disabled")


def caller_from_env() -> tuple[int, int]:
    """(workflow, job) of the job this command runs in: TORC_WORKFLOW_ID and TORC_JOB_ID."""
    wf, job = os.environ.get("TORC_WORKFLOW_ID", ""), os.environ.get("TORC_JOB_ID", "")
    if not (wf.isdigit() and job.isdigit()):
        raise TorcError("torc jobs spawn runs inside a job (TORC_WORKFLOW_ID and TORC_JOB_ID say which); "
                        "outside one, give --workflow and --job")
    return int(wf), int(job)


def spawn(db: Database, workflow_id: int, job_id: int, lineage: str, batch, state=None) -> dict:
    """Add `batch` (parsed JSON) to the workflow, blocked on job `job_id`. Returns what was done."""
    if not lineage or len(lineage) > 200 or any(c in lineage for c in "\0\n"):
        raise TorcError("--lineage must be a short name (1 to 200 characters, one line)")
    with db.conn.transaction():
        caller = db.one("lock_spawning_job", workflow_id=workflow_id, job_id=job_id)
        if caller is None:
            raise TorcError(f"job {job_id} is not in workflow {workflow_id}")
        if caller["status"] != "running":
            raise TorcError(f"job {job_id} ({caller['name']}) is {caller['status']}: only a running job spawns jobs")
        state_json = Jsonb(state) if state is not None else None
        if not batch:
            row = db.one("converge_lineage", workflow_id=workflow_id, lineage=lineage, state=state_json, job_id=job_id)
            db.event(workflow_id, "lineage_converged", job_id=job_id, run_id=caller["run_id"],
                     detail={"lineage": lineage, "iterations": row["iterations"]})
            return {"workflow_id": workflow_id, "lineage": lineage, "converged": True, "spawned": [],
                    "iteration": row["iterations"]}
        try:
            planned = plan_batch(batch, resource_table(caller["spec"]))
        except SpawnRejected as e:
            raise TorcError(f"nothing was spawned: {e}") from None
        names = [j.name for j in planned]
        external = sorted({n for j in planned for n in j.external})
        found = {r["name"]: r for r in db.all("jobs_by_names", workflow_id=workflow_id, names=names + external)}
        present = [n for n in names if n in found]
        if present and len(present) == len(names):   # a repeat of a call that committed: nothing to do
            return {"workflow_id": workflow_id, "lineage": lineage, "converged": False, "repeated": True,
                    "spawned": [{"id": found[n]["id"], "name": n} for n in names], "iteration": None}
        problems = [f"'{n}' already exists in the workflow" for n in present]
        for n in external:
            row = found.get(n)
            if row is None:
                problems.append(f"depends_on names '{n}', which is neither in the batch nor in the workflow")
            elif row["status"] not in _DONE:
                problems.append(f"depends_on names '{n}', which is {row['status']}: spawned jobs may wait for "
                                "the spawning job, each other and jobs that already completed")
        if problems:
            raise TorcError("nothing was spawned: " + "; ".join(problems))
        row = db.one("bump_lineage", workflow_id=workflow_id, lineage=lineage, state=state_json, job_id=job_id)
        cap = caller["dynamic_max_iterations"]
        if row["iterations"] > cap:
            raise TorcError(f"lineage '{lineage}' has spawned {cap} time(s), its cap (dynamic_jobs.max_iterations); "
                            "nothing was spawned. Converge (an empty batch) or raise the cap in the spec")
        db.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
        first = db.one("reserve_job_ids", count=len(planned))["first_id"]
        ids = [first + i for i in range(len(planned))]
        env = dict(caller["env"] or {})
        env[LINEAGE_ENV] = lineage
        env[GENERATION_ENV] = str(row["iterations"])
        rows = db.all("insert_spawned_jobs", workflow_id=workflow_id, job_id=job_id, lineage=lineage,
                      iteration=row["iterations"], run_id=caller["run_id"], env=Jsonb(env), ids=ids, names=names,
                      commands=[j.command for j in planned],
                      parents=[1 + len(j.siblings) for j in planned],
                      priorities=[j.priority for j in planned],
                      cpus=[j.resources.num_cpus for j in planned], gpus=[j.resources.num_gpus for j in planned],
                      nodes=[j.resources.num_nodes for j in planned],
                      memory=[j.resources.memory_bytes for j in planned],
                      runtime=[j.resources.runtime_seconds for j in planned],
                      rrs=[j.resource_requirements for j in planned],
                      cancels=[j.cancel_on_blocking_job_failure for j in planned])
        parents, children = [], []
        for i, j in enumerate(planned):
            parents.append(job_id)
            children.append(ids[i])
            for k in j.siblings:
                parents.append(ids[k])
                children.append(ids[i])
            for n in j.external:
                parents.append(found[n]["id"])
                children.append(ids[i])
        db.run("insert_spawned_edges", workflow_id=workflow_id, parents=parents, children=children)
    return {"workflow_id": workflow_id, "lineage": lineage, "converged": False, "iteration": row["iterations"],
            "spawned": rows}


def read_batch(text: str):
    """The batch from JSON text (a list of jobs)."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise TorcError(f"--jobs must be JSON (a list of jobs): {e}") from None
