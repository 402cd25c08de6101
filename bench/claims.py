"""2. Claim and complete without processes: W concurrent workers claiming and completing no-op jobs.

Each worker is a process with its own connection doing what a real worker's database thread does:
one transaction per batch that records the previous batch's completions and claims the next batch.
Peer in the same run: `pgbench -N` tps with the same number of clients on the same server.
Target: jobs/s ≥ 3 × pgbench -N tps.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

from bench.common import emit, fresh_database, owner_url, pgbench_tps, server_version

BIG = 2**50


def _worker(url: str, wf: int, batch: int, start, out) -> None:
    from torc_hpc.db import Attempt, Database
    from torc_hpc.db.repo import finish_step

    with Database(url, migrate=False) as db:
        wid = db.register_worker(wf, hostname="bench", pid=os.getpid(), num_cpus=batch, num_gpus=0,
                                 memory_bytes=BIG)
        claim = {"cpus": BIG, "gpus": 0, "memory": BIG, "limit": batch, "time_left_s": 10**9, "scheduler": None}
        start.wait()
        done = 0
        jobs = db.finish(wf, [], worker_id=wid, claim=claim)["claimed"]
        while jobs:
            steps = [finish_step("completed", Attempt(j["id"], j["run_id"], j["attempt_id"], wid)) for j in jobs]
            done += len(jobs)
            jobs = db.finish(wf, steps, worker_id=wid, claim=claim)["claimed"]
        out.put(done)


def main(n: int = 100_000, workers: int = 2, batch: int = 256, cpu_meter=None) -> dict:
    """cpu_meter: a function returning a started bench.pgcpu.ServerCpu (private servers only): then the
    PostgreSQL CPU the claims and completions cost is reported too (less noisy than jobs/s)."""
    from torc_hpc.db import Database
    from torc_hpc.spec import expand_workflow, load_spec_text

    with fresh_database("claims") as url:
        spec = f"name: claims\njobs:\n  - name: t_{{i}}\n    command: 'true'\n    parameters: {{i: '1:{n}'}}\n"
        s, loc = load_spec_text(spec, "claims.yaml")
        with Database(url) as db:
            wf = db.create_workflow(expand_workflow(s, loc), spec_path=None, working_dir="/tmp")
        with Database(owner_url(url)) as db:
            db.conn.execute("VACUUM ANALYZE jobs")
        ctx = mp.get_context("spawn")
        start, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(url, wf, batch, start, out)) for _ in range(workers)]
        for p in procs:
            p.start()
        time.sleep(1.5)  # let every worker connect and register
        meter = cpu_meter() if cpu_meter else None
        t0 = time.perf_counter()
        start.set()
        total = sum(out.get() for _ in procs)
        seconds = time.perf_counter() - t0
        for p in procs:
            p.join()
        cpu = meter.stop() if meter else None
        with Database(url) as db:
            counts = db.status_counts(wf)
        assert total == n and counts["completed"] == n, (total, counts)
        tps = pgbench_tps(owner_url(url), clients=workers, seconds=10, extra=["-N"])
        value = n / seconds
        return emit({"name": "claim_complete", "value": value, "unit": "jobs/s",
                     "peer": f"pgbench -N ({workers} clients)",
                     "peer_value": tps, "ratio": value / tps, "target": "≥ 3 × pgbench -N tps",
                     "meets_target": value >= 3 * tps, "workers": workers, "batch": batch, "jobs": n,
                     "server": server_version(url),
                     **({"postgres_cpu_ms_per_1000_jobs": cpu.client_s * 1e6 / n} if cpu else {})})


if __name__ == "__main__":
    main()
