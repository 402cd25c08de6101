"""6. Watcher snapshot: the queries of one `torc watch` cycle on a database holding 1,000,000 jobs
(300,000 completed, 1,000 ready retries). Slurm is not asked (that is sbatch/squeue time, not ours);
the allocation queries a cycle makes are included.

Peer in the same run: the same cycle for a 1,000-job workflow in the same database.
Target: ≤ 200 ms (median of 20 cycles).
"""

from __future__ import annotations

import statistics
import time

from bench.common import emit, fresh_database, server_version
from torc_hpc.core.autoschedule import Policy
from torc_hpc.db import Database
from torc_hpc.spec import expand_workflow, load_spec_text
from torc_hpc.watch import cycle


def _make(db: Database, n: int) -> int:
    s, loc = load_spec_text(f"name: big\njobs:\n  - name: j_{{i}}\n    command: 'true'\n"
                            f"    parameters: {{i: '1:{n}'}}\n", "big.yaml")
    wf = db.create_workflow(expand_workflow(s, loc), spec_path=None, working_dir="/tmp")
    done, retries = int(n * 0.3), max(1, n // 1000)
    db.conn.execute("""
        UPDATE jobs SET status = CASE WHEN id - m < %(done)s THEN 'completed'::job_status ELSE status END,
                        attempt_id = CASE WHEN id - m >= %(done)s AND id - m < %(done)s + %(retries)s THEN 2
                                          ELSE attempt_id END
        FROM (SELECT min(id) AS m FROM jobs WHERE workflow_id = %(wf)s) s
        WHERE workflow_id = %(wf)s AND id - m < %(done)s + %(retries)s""", {"done": done, "retries": retries, "wf": wf})
    return wf


def _cycle_ms(db: Database, wf: int, cfg) -> float:
    t = time.perf_counter()
    cycle.run_once(db, wf, None, cfg)
    db.all("active_allocations", workflow_id=wf)       # what refresh() reads before asking Slurm
    db.all("unjudged_allocations", workflow_id=wf)     # the back-off's judgement
    return (time.perf_counter() - t) * 1000


def main(n: int = 1_000_000, cycles: int = 20) -> dict:
    cfg = cycle.WatchConfig(auto_schedule=True, recover=True, policy=Policy())
    with fresh_database("snapshot") as url, Database(url) as db:
        big = _make(db, n)
        small = _make(db, 1000)
        db.conn.execute("VACUUM ANALYZE")
        for wf in (big, small):
            _cycle_ms(db, wf, cfg)  # warm the cache, as a long-running watcher's server would be
        big_ms = statistics.median(_cycle_ms(db, big, cfg) for _ in range(cycles))
        small_ms = statistics.median(_cycle_ms(db, small, cfg) for _ in range(cycles))
        return emit({"name": "watch_cycle_1m", "value": big_ms, "unit": "ms (median per cycle)",
                     "peer": "same cycle, 1,000-job workflow", "peer_value": small_ms, "ratio": small_ms / big_ms,
                     "target": "≤ 200 ms", "meets_target": big_ms <= 200, "jobs": n, "cycles": cycles,
                     "server": server_version(url)})


if __name__ == "__main__":
    main()
