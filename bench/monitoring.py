"""Resource-monitor storage: bytes per job-hour of time series in PostgreSQL (resource_samples and
attempt_resources, with their indexes and TOAST), written through the worker's own queries.

`python -m bench monitoring [JOBS] [INTERVAL_S]`: JOBS one-hour attempts sampled every INTERVAL_S seconds
(default 200 and 10, Torc's default interval), flushed every 300 s as the worker does; realistic values (a CPU %
that wanders, memory that ramps with noise, 1–3 processes). Not a timing: the figure is deterministic, so it
can run anywhere. Peer: the raw sample payload (10 bytes per sample: real + bigint/2 + smallint).
"""

from __future__ import annotations

import random
import tempfile

from bench.common import create_workflow, emit, fresh_database
from torc_hpc.core.monitoring import Samples, summarize
from torc_hpc.db import Database


def main(jobs: int = 200, interval_s: int = 10) -> dict:
    spec = f"name: mon\njobs:\n  - name: t_{{i}}\n    command: /bin/true\n    parameters: {{i: '1:{jobs}'}}\n"
    rng = random.Random(1)
    per_hour = 3600 // interval_s
    flush_every = max(1, 300 // interval_s)
    with fresh_database("monitoring") as url:
        wf = create_workflow(url, spec, tempfile.mkdtemp(prefix="torc-bench-mon-"))
        with Database(url) as db:
            ids = [r["id"] for r in db.all("list_jobs", workflow_id=wf, status=None)]

            def size() -> int:
                return db.one("monitoring_storage_bytes")["bytes"]

            before = size()
            for job_id in ids:
                s = Samples(float(interval_s))
                key = {"workflow_id": wf, "job_id": job_id, "run_id": 1, "attempt_id": 1}
                cpu, mem = rng.uniform(20, 100), rng.uniform(1e8, 4e9)
                with db.conn.transaction():
                    for i in range(per_hour):
                        cpu = min(800.0, max(0.0, cpu + rng.gauss(0, 15)))
                        mem = max(1e6, mem * (1 + rng.gauss(0.001, 0.01)))
                        s.add(1.7e9 + i * interval_s, cpu, int(mem), rng.randint(1, 3), int(mem))
                        if s.pending() >= flush_every:
                            db.run("insert_resource_samples", **key, **s.take_chunk(frozenset(
                                {"cpu_percent", "memory_bytes", "num_processes"})))
                    chunk = s.take_chunk(frozenset({"cpu_percent", "memory_bytes", "num_processes"}))
                    if chunk:
                        db.run("insert_resource_samples", **key, **chunk)
                    db.run("insert_attempt_resources", **key, **summarize(s, 3600.0, 3600.0, None))
            after = size()
    per_job_hour = (after - before) / jobs
    raw = per_hour * 10
    return emit({"name": "monitoring_bytes_per_job_hour", "value": per_job_hour, "unit": "bytes/job-hour",
                 "peer": f"raw samples ({per_hour} × 10 bytes)", "peer_value": raw, "ratio": per_job_hour / raw,
                 "target": "≈ the raw payload (no row per sample)", "interval_s": interval_s, "jobs": jobs,
                 "samples_per_job_hour": per_hour, "meets_target": per_job_hour <= 3 * raw})
