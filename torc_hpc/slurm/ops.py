"""Slurm operations the CLI and the watcher call."""

from __future__ import annotations

from pathlib import Path

from torc_hpc.db.repo import Database
from torc_hpc.errors import SlurmError, TorcError
from torc_hpc.slurm import allocations
from torc_hpc.slurm.client import CliSlurmClient, SlurmClient, default_client


def require_client() -> SlurmClient:
    client = default_client()
    if client is None:
        raise TorcError("Slurm's tools (sbatch, squeue, sacct, scancel) are not on PATH here; run this on a "
                        "login node, or use `torc run` to run on this machine")
    return client


def submit_for_workflow(db: Database, workflow_id: int, client: SlurmClient, opts, count: int, *,
                        submitted_by: str, reason: str | None = None,
                        only_scheduler: str | None | bool = False) -> dict:
    requests = allocations.plan_requests(db, workflow_id, opts, client, count, only_scheduler)
    if submitted_by == "submit-slurm":
        save_submit_options(db, workflow_id, opts)
    if not requests:
        raise TorcError(f"workflow {workflow_id} has no ready or blocked jobs: nothing to submit for")
    warnings = []
    if isinstance(client, CliSlurmClient):
        node_list = client.partition_shape(requests[0].partition).nodes
        w = allocations.database_reachability_warning(db.url, node_list)
        if w:
            warnings.append(w)
    submitted = []
    for req in requests:
        try:
            submitted.append(allocations.submit(db, workflow_id, client, req, opts, submitted_by=submitted_by,
                                                reason=reason))
        except SlurmError as e:
            wf = db.workflow(workflow_id)
            raise TorcError(f"sbatch refused the allocation: {e.stderr.strip() or e}\n"
                            f"  the script is kept in {Path(wf['working_dir'] or '.') / wf['output_dir'] / 'slurm'} ; "
                            f"check --account/--partition/--qos against `sacctmgr show assoc user=$USER`") from e
    return {"allocations": submitted, "warnings": warnings}


def submit_start_actions(db: Database, workflow_id: int, client: SlurmClient) -> dict | None:
    """Fire the spec's schedule_nodes actions that are due at the start (once each, as the watcher would).
    None when there are none; else the allocations they submitted, as submit_for_workflow reports them."""
    from torc_hpc.actions import Context, fire
    from torc_hpc.core.actions import Phase, Runner

    fired = fire(db, workflow_id, Phase.START, Context(Runner.SUBMIT, client=client))
    if not fired:
        return None
    failed = [f for f in fired if f["outcome"] == "failed"]
    if failed and not any(f.get("allocations") for f in fired):
        raise TorcError(f"workflow {workflow_id}: action {failed[0]['position'] + 1} (schedule_nodes) failed: "
                        f"{failed[0]['error']}; see `torc workflows show {workflow_id}`")
    return {"allocations": [a for f in fired for a in f.get("allocations") or []],
            "warnings": [f"action {f['position'] + 1}: {f.get('error') or f.get('warning')}" for f in fired
                         if f.get("error") or f.get("warning")],
            "actions": fired}


def cancel_allocations(db: Database, workflow_id: int, client: SlurmClient | None) -> list[str]:
    if client is None:
        return []
    ids = [a["slurm_job_id"] for a in db.all("active_allocations", workflow_id=workflow_id)]
    if ids:
        client.cancel(ids)
        db.event(workflow_id, "allocations_canceled", detail={"slurm_job_ids": ids})
    return ids


def save_submit_options(db: Database, workflow_id: int, opts) -> None:
    """Remember what the user asked sbatch for, so the watcher submits alike."""
    from dataclasses import asdict

    from psycopg.types.json import Jsonb

    saved = {k: (str(v) if k == "template" else v) for k, v in asdict(opts).items()
             if v is not None and k != "source"}
    db.run("save_submit_options", workflow_id=workflow_id, options=Jsonb(saved))
