"""4. Dependency latency: a 500-job chain run by one local worker; the median time from a parent's end
(its result's completed_at) to its child's start (the child's result started_at).

Peer: Torc's background unblock interval (30 s), the delay its design puts on the same step.
Target: ≤ 50 ms.
"""

from __future__ import annotations

import statistics
import tempfile

from bench.common import Timer, create_workflow, emit, fresh_database, server_version
from torc_hpc.db import Database

TORC_UNBLOCK_INTERVAL_MS = 30_000


def main(n: int = 500) -> dict:
    from torc_hpc.worker.local import run_local

    spec = {"name": "chain", "jobs": [{"name": "step_0", "command": "true"}] + [
        {"name": f"step_{i}", "command": "true", "depends_on": [f"step_{i - 1}"]} for i in range(1, n)]}
    import json

    with fresh_database("latency") as url, tempfile.TemporaryDirectory() as d:
        wf = create_workflow(url, json.dumps(spec), d, "chain.json")
        with Timer() as t:
            run_local(url, wf)
        with Database(url) as db:
            rows = db.conn.execute("""
                SELECT extract(epoch FROM c.started_at - p.completed_at) * 1000 AS ms
                FROM job_dependencies d
                JOIN results p ON p.job_id = d.parent_id
                JOIN results c ON c.job_id = d.child_id
                WHERE d.workflow_id = %s""", (wf,)).fetchall()
        gaps = sorted(float(r["ms"]) for r in rows)
        assert len(gaps) == n - 1, len(gaps)
        median = statistics.median(gaps)
        return emit({"name": "dependency_latency", "value": median, "unit": "ms (median)",
                     "peer": "Torc unblock interval", "peer_value": TORC_UNBLOCK_INTERVAL_MS,
                     "ratio": TORC_UNBLOCK_INTERVAL_MS / median, "target": "≤ 50 ms", "meets_target": median <= 50,
                     "p90_ms": gaps[int(0.9 * len(gaps))], "max_ms": gaps[-1], "chain": n,
                     "total_s": t.seconds, "server": server_version(url)})


if __name__ == "__main__":
    main()
