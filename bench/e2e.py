"""1. End to end: N `/bin/true` jobs, no dependencies, one local worker on all cores.

Peers in the same run: the same N tasks through HyperQueue (its LocalCluster: a real server and worker),
and the bare limit, `subprocess.run(["/bin/true"])` from a thread pool of one thread per core.
Target: torc ≥ 1.5 × HyperQueue and ≥ 50 % of the bare limit, with every transition durable.

With stdio modes (`python -m bench e2e N ROUNDS separate,combined,none`) each round runs torc once per mode
(Torc's execution_config.stdio: `combined` creates one log file per job instead of two, `none` none), so the
cost of creating log files shows beside the bare limit; the headline figure stays the first mode's.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import Timer, create_workflow, emit, fresh_database, owner_url, server_version
from torc_hpc.db import Database


def settle(seconds: float = 5) -> None:
    os.sync()
    time.sleep(seconds)


def bare(n: int) -> float:
    cores = os.cpu_count() or 1
    with Timer() as t, ThreadPoolExecutor(cores) as pool:
        list(pool.map(lambda _: subprocess.run(["/bin/true"]), range(n)))
    return n / t.seconds


def bare_with_logs(n: int, d: str) -> float:
    """The bare limit plus what every torc attempt also has: its own stdout and stderr files."""
    cores = os.cpu_count() or 1
    with Timer() as t, ThreadPoolExecutor(cores) as pool:
        def one(i):
            with open(f"{d}/t{i}.o", "wb") as o, open(f"{d}/t{i}.e", "wb") as e:
                subprocess.run(["/bin/true"], stdout=o, stderr=e)
        list(pool.map(one, range(n)))
    return n / t.seconds


def hyperqueue(n: int, d: str) -> float | None:
    try:
        from hyperqueue import Job, LocalCluster
    except ImportError:
        return None
    with LocalCluster(server_dir=d) as cluster:
        cluster.start_worker()
        client = cluster.client()
        # HyperQueue writes each task's stdout/stderr to %{CWD}/%{TASK_ID}.std*, like torc's per-attempt
        # files; point its working directory into the temporary directory, not the caller's.
        job = Job(default_workdir=d)
        for _ in range(n):
            job.program(["/bin/true"])
        with Timer() as t:
            submitted = client.submit(job)
            client.wait_for_jobs([submitted])
    return n / t.seconds


def torc(n: int, d: str, stdio: str = "separate") -> tuple[float, dict]:
    from torc_hpc.worker.local import run_local

    spec = f"name: e2e\njobs:\n  - name: t_{{i}}\n    command: /bin/true\n    parameters: {{i: '1:{n}'}}\n"
    if stdio != "separate":
        # limit_resources: false, or Torc's default would start the memory monitor (not what is measured)
        spec += f"execution_config:\n  limit_resources: false\n  stdio: {{mode: {stdio}}}\n"
    with fresh_database("e2e") as url:
        wf = create_workflow(url, spec, d, "e2e.yaml")
        with Database(owner_url(url)) as db:
            db.conn.execute("CHECKPOINT")  # CREATE DATABASE and the COPY leave dirty buffers behind
        settle()
        with Timer() as t:
            run_local(url, wf)
        with Database(url) as db:
            counts = db.status_counts(wf)
            results = db.conn.execute("SELECT count(*) AS n FROM results WHERE workflow_id = %s", (wf,)).fetchone()["n"]
            events = db.conn.execute("SELECT count(*) AS n FROM events WHERE workflow_id = %s", (wf,)).fetchone()["n"]
        assert counts["completed"] == n, counts
        return n / t.seconds, {"results": results, "events": events, "server": server_version(url)}


def main(n: int = 10_000, rounds: int = 3, stdio: str = "separate") -> dict:
    """`python -m bench e2e [N] [ROUNDS] [MODES]`. Bare, bare-with-logs and torc run in alternating rounds and
    each round's torc is compared with that round's bare: this machine's speed drifts by ±20 % over
    minutes, which comparing against a run from a minute earlier would report as torc's. HyperQueue
    (40–60 s per run) runs once. The medians are the result; every round is in the JSON."""
    # No file is deleted before all phases have run: deleting files makes the next creations slow for
    # minutes (ext4 without a journal skips each recently deleted inode while allocating, for 60–300 s:
    # measured 40 µs → 500 µs per file here), so whoever ran after a deletion paid for it. Between
    # phases the disk is synced and left to settle.
    modes = [m.strip() for m in str(stdio).split(",") if m.strip()]
    unknown = [m for m in modes if m not in ("separate", "combined", "no_stdout", "no_stderr", "none")]
    if unknown or not modes:
        raise SystemExit(f"unknown stdio mode(s) {unknown}: separate, combined, no_stdout, no_stderr, none")
    wait_out_previous_cleanup()
    scratch = tempfile.mkdtemp(prefix="torc-bench-e2e-")
    per_round = []
    try:
        hq = hyperqueue(n, _phase_dir(scratch, "hyperqueue"))
        for r in range(rounds):
            settle()
            b = bare(n)
            settle()
            bl = bare_with_logs(n, _phase_dir(scratch, f"bare_with_logs_{r}"))
            row = {"bare": b, "bare_with_logs": bl}
            for k, mode in enumerate(modes):
                settle()
                v, info = torc(n, _phase_dir(scratch, f"torc_{mode}_{r}"), mode)
                row[f"torc_{mode}"] = v
                row[f"ratio_to_bare_{mode}"] = v / b
                if k == 0:
                    value = v
                    row.update({"torc": v, "ratio_to_bare": v / b, "ratio_to_bare_with_logs": v / bl})
                print(f"# round {r + 1}/{rounds}: torc ({mode}) {v:.0f} jobs/s, bare {b:.0f}, bare with logs "
                      f"{bl:.0f} → {v / b:.3f} × bare", file=sys.stderr)
            per_round.append(row)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        Path(CLEANUP_MARKER).touch()
    med = {k: statistics.median(r[k] for r in per_round) for k in per_round[0]}
    value = med["torc"]
    peer, peer_value = ("hyperqueue", hq) if hq else ("bare subprocess.run", med["bare"])
    return emit({
        "name": "e2e_true_jobs", "value": value, "unit": "jobs/s", "peer": peer, "peer_value": peer_value,
        "ratio": value / peer_value, "target": "≥ 1.5 × hyperqueue and ≥ 0.5 × bare",
        "bare_value": med["bare"], "ratio_to_bare": med["ratio_to_bare"],
        "bare_with_logs_value": med["bare_with_logs"], "ratio_to_bare_with_logs": med["ratio_to_bare_with_logs"],
        "hyperqueue_value": hq, "jobs": n, "rounds": per_round, "stdio_modes": modes,
        "stdio": {m: {"value": med[f"torc_{m}"], "ratio_to_bare": med[f"ratio_to_bare_{m}"],
                      "ratio_to_first_mode": med[f"torc_{m}"] / med[f"torc_{modes[0]}"]} for m in modes},
        "meets_target": (hq is None or value >= 1.5 * hq) and med["ratio_to_bare"] >= 0.5, **info})


# When this benchmark last deleted its files, so that the next run can wait out the window in which
# ext4 without a journal makes new files expensive (see main()).
CLEANUP_MARKER = os.path.join(tempfile.gettempdir(), "torc-bench-e2e.last-cleanup")
REUSE_WINDOW_S = 300


def wait_out_previous_cleanup() -> None:
    try:
        ago = time.time() - os.stat(CLEANUP_MARKER).st_mtime
    except FileNotFoundError:
        return
    if 0 <= ago < REUSE_WINDOW_S:
        left = REUSE_WINDOW_S - ago
        print(f"# the previous e2e run deleted its files {ago:.0f} s ago; waiting {left:.0f} s more (on ext4 "
              f"without a journal, creating files stays slow for up to {REUSE_WINDOW_S} s after many "
              f"deletions, which would skew every contender that writes log files)", file=sys.stderr)
        time.sleep(left)


def _phase_dir(scratch: str, name: str) -> str:
    path = os.path.join(scratch, name)
    os.mkdir(path)
    return path


if __name__ == "__main__":
    main()
