"""3. Create: a parameterized workflow of 1,000,001 jobs and 1,000,000 dependency edges, from the spec file
to committed rows (parse, expand, validate, cycle check, COPY).

Runs in a child process so its peak RSS is the creation's alone. Peer (the machine's limit in the same
run): COPY of the same number of rows of the same width into a plain table with no indexes.
Target: ≤ 60 s and ≤ 1 GiB peak RSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from bench.common import emit, fresh_database, server_version

def spec_for(jobs: int) -> str:
    """The creation benchmark's shape for about `jobs` jobs: half producers, half consumers reading two
    neighbouring producers (jobs // 2 + 1 producers ready, jobs // 2 consumers blocked)."""
    half = jobs // 2
    return f"""\
name: pairs_{jobs}
description: {half + 1:,} producers, {half:,} consumers each reading two neighbours
jobs:
  - name: produce_{{i:06d}}
    command: ./produce --part {{i}}
    parameters: {{i: "0:{half}"}}
  - name: combine_{{i:06d}}
    command: ./combine --left {{i}} --right {{j}}
    parameter_mode: zip
    depends_on: ["produce_{{i:06d}}", "produce_{{j:06d}}"]
    parameters: {{i: "0:{half - 1}", j: "1:{half}"}}
"""


SPEC = spec_for(1_000_000)

CHILD = r"""
import json, resource, sys, time
from torc_hpc.db import Database
from torc_hpc.spec import expand_workflow, load_spec
t0 = time.perf_counter()
spec, loc = load_spec(sys.argv[2])
wf = expand_workflow(spec, loc, sys.argv[2])
t1 = time.perf_counter()
with Database(sys.argv[1]) as db:
    wf_id = db.create_workflow(wf, spec_path=sys.argv[2], working_dir="/tmp")
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t0, "expand_s": t1 - t0, "insert_s": t2 - t1, "jobs": len(wf.jobs),
                  "edges": len(wf.edges), "workflow_id": wf_id,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def copy_limit(url: str, jobs: int, edges: int) -> float:
    """Seconds to COPY rows of the same shape into unindexed tables: what the server alone needs."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE UNLOGGED TABLE IF NOT EXISTS copy_limit_jobs (id bigint, wf bigint, name text, command text, "
                  "status text, n int, p int, c int, g int, nodes int, mem bigint, rt int)")
        c.execute("CREATE UNLOGGED TABLE IF NOT EXISTS copy_limit_edges (wf bigint, p bigint, c bigint)")
        t = time.perf_counter()
        with c.transaction(), c.cursor().copy("COPY copy_limit_jobs FROM STDIN") as cp:
            for i in range(jobs):
                cp.write_row((i, 1, f"produce_{i:06d}", f"./produce --part {i}", "ready", 0, 0, 1, 0, 1, 2**30, 3600))
        with c.transaction(), c.cursor().copy("COPY copy_limit_edges FROM STDIN") as cp:
            for i in range(edges):
                cp.write_row((1, i, i + 1))
        return time.perf_counter() - t


def main() -> dict:
    with fresh_database("create") as url, tempfile.TemporaryDirectory() as d:
        spec_path = os.path.join(d, "million.yaml")
        with open(spec_path, "w") as f:
            f.write(SPEC)
        out = subprocess.run([sys.executable, "-c", CHILD, url, spec_path], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        limit = copy_limit(url, r["jobs"], r["edges"])
        return emit({"name": "create_1m", "value": r["seconds"], "unit": "s", "peer": "bare COPY of the same rows",
                     "peer_value": limit, "ratio": limit / r["seconds"], "target": "≤ 60 s and ≤ 1 GiB peak RSS",
                     "meets_target": r["seconds"] <= 60 and r["peak_rss_bytes"] <= 2**30,
                     "peak_rss_mib": r["peak_rss_bytes"] / 2**20, "expand_s": r["expand_s"],
                     "insert_s": r["insert_s"], "jobs": r["jobs"], "edges": r["edges"], "server": server_version(url)})


if __name__ == "__main__":
    main()
