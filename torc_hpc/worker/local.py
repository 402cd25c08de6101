"""`torc run`: one worker on this machine until nothing more can run."""

from __future__ import annotations

from typing import Callable

from torc_hpc.worker.loop import Worker, WorkerConfig, WorkerSummary
from torc_hpc.worker.resources import local_resources


def run_local(database_url: str, workflow_id: int, *, max_parallel_jobs: int | None = None,
              output_dir: str | None = None, on_tick: Callable | None = None,
              kill_grace_s: float = 5, label: str | None = None, gpus: int | None = None) -> WorkerSummary:
    cfg = WorkerConfig(workflow_id=workflow_id, database_url=database_url, resources=local_resources(gpus),
                       max_parallel_jobs=max_parallel_jobs, output_dir=output_dir, exit_when_done=True,
                       on_tick=on_tick, kill_grace_s=kill_grace_s, heartbeat_interval_s=5, label=label)
    return Worker(cfg).run()
