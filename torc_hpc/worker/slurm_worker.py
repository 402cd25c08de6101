"""`torc worker WF --slurm`: the worker inside an sbatch allocation."""

from __future__ import annotations

import logging
import os
import time

from torc_hpc.slurm.client import CliSlurmClient
from torc_hpc.worker.loop import Worker, WorkerConfig, WorkerSummary
from torc_hpc.worker.resources import local_resources, slurm_resources

log = logging.getLogger("torc.worker")

# A SIGTERM this close to the allocation's end is Slurm's walltime kill, not a scancel.
WALLTIME_SIGTERM_WINDOW_S = 120


def run_worker(database_url: str, workflow_id: int | None, *, slurm: bool, idle_timeout_s: float,
               walltime_buffer_s: float, scheduler: str | None = None,
               max_parallel_jobs: int | None = None, allocation_id: int | None = None,
               workflow_ids: tuple[int, ...] = (), all_mine: bool = False,
               label: str | None = None, gpus: int | None = None) -> WorkerSummary:
    """One worker for `workflow_id`, or for several workflows of its owner (`workflow_ids`, or every one with
    ready jobs: `all_mine`); only jobs with `label` (None: unlabeled ones); `gpus`: devices 0..N-1 to hand
    out when no variable lists them."""
    end_time = None
    slurm_job_id = None
    if slurm:
        slurm_job_id = os.environ.get("SLURM_JOB_ID")
        if not slurm_job_id:
            raise SystemExit("torc worker --slurm must run inside an allocation (SLURM_JOB_ID is not set)")
        resources = slurm_resources(gpus=gpus)
        end = CliSlurmClient().end_time(slurm_job_id)
        end_time = end.timestamp() if end else None
    else:
        resources = local_resources(gpus)

    def sigterm_reason() -> str:
        if end_time is not None and time.time() >= end_time - WALLTIME_SIGTERM_WINDOW_S:
            return "walltime"
        return "scancel"

    cfg = WorkerConfig(workflow_id=workflow_id, database_url=database_url, resources=resources,
                       max_parallel_jobs=max_parallel_jobs, end_time=end_time,
                       walltime_buffer_s=walltime_buffer_s, exit_when_done=True, idle_timeout_s=idle_timeout_s,
                       slurm_job_id=slurm_job_id, scheduler=scheduler,
                       sigterm_reason=sigterm_reason if slurm else None, kill_grace_s=3,
                       allocation_id=allocation_id if slurm else None, workflow_ids=tuple(workflow_ids),
                       all_mine=all_mine, label=label)
    log.info("worker for workflow(s) %s: %s, ends %s",
             "all of mine" if all_mine else ",".join(map(str, workflow_ids or [workflow_id])), resources, end_time)
    return Worker(cfg).run()
