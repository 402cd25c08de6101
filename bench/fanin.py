"""5. Fan-in: completing a parent of a 100,000-parent fan-in costs what it costs in a 10-job workflow.

Each completion is one transaction (result, status, event, the child's parent count decremented);
it touches only the job's own children, whatever the workflow's size. Measured: median time of one
completion among the 100,000 parents (value) vs among the 9 parents of 10-job workflows (peer).
Target: value / peer ≤ 1.5 (the JSON's ratio is peer / value, so ≥ 0.67 meets it).
"""

from __future__ import annotations

import statistics
import time

from bench.common import emit, fresh_database, server_version
from torc_hpc.db import Attempt, Database
from torc_hpc.db.repo import finish_step
from torc_hpc.spec import expand_workflow, load_spec_text

BIG = 2**50


def _spec(parents: int) -> str:
    return (f"name: fan\njobs:\n  - name: p_{{i}}\n    command: 'true'\n    parameters: {{i: '1:{parents}'}}\n"
            f"  - name: child\n    command: 'true'\n    depends_on: ['p_{{i}}']\n    parameters: {{i: '1:{parents}'}}\n")


def _complete(db: Database, wf: int, count: int) -> list[float]:
    wid = db.register_worker(wf, hostname="bench", pid=1, num_cpus=1, num_gpus=0, memory_bytes=BIG)
    times = []
    claim = {"cpus": BIG, "gpus": 0, "memory": BIG, "limit": 1, "time_left_s": 10**9, "scheduler": None}
    for _ in range(count):
        (job,) = db.claim(wf, wid, **claim)
        t = time.perf_counter()
        db.finish(wf, [finish_step("completed", Attempt(job["id"], job["run_id"], job["attempt_id"], wid))])
        times.append((time.perf_counter() - t) * 1000)
    return times


def main(parents: int = 100_000, samples: int = 500) -> dict:
    with fresh_database("fanin") as url, Database(url) as db:
        s, loc = load_spec_text(_spec(parents), "fan.yaml")
        big = db.create_workflow(expand_workflow(s, loc), spec_path=None, working_dir="/tmp")
        small_wfs = []
        s10, loc10 = load_spec_text(_spec(9), "fan10.yaml")
        for _ in range(samples // 9 + 1):
            small_wfs.append(db.create_workflow(expand_workflow(s10, loc10), spec_path=None, working_dir="/tmp"))
        db.conn.execute("VACUUM ANALYZE")
        small = []
        for wf in small_wfs:
            small += _complete(db, wf, 9)
        large = _complete(db, big, samples)
        child = db.conn.execute("SELECT unfinished_parents FROM jobs WHERE workflow_id = %s AND name = 'child'",
                                (big,)).fetchone()["unfinished_parents"]
        assert child == parents - samples, child
        v, p = statistics.median(large), statistics.median(small[:samples])
        return emit({"name": "fan_in_completion", "value": v, "unit": "ms (median per completion)",
                     "peer": "same completion in a 10-job workflow", "peer_value": p, "ratio": p / v,
                     "cost_ratio": v / p, "target": "cost_ratio ≤ 1.5", "meets_target": v / p <= 1.5,
                     "parents": parents, "samples": samples, "server": server_version(url)})


if __name__ == "__main__":
    main()
