"""`torc watch` as a person sees it: counts, running jobs, recent failures, the next decision with its
countdown, fitting 80 columns; and the loop wakes at once on NOTIFY instead of sleeping its interval."""

import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
from rich.console import Console

from tests.helpers import create
from torc_hpc import workflows as ops
from torc_hpc.cli.watch import DEFAULT_POLL_S, notify_sleep, render_watch
from torc_hpc.watch import cycle


def test_the_view_shows_what_runs_what_failed_and_when_the_next_decision_is(db):
    wf = create(db, {"name": "watched", "jobs": [{"name": f"job_{i}", "command": "true"} for i in range(4)]})
    wid = db.register_worker(wf, hostname="node-a", pid=1, num_cpus=4, num_gpus=0, memory_bytes=2**34)
    claimed = db.claim(wf, wid, cpus=1, gpus=0, memory=2**34, limit=1)
    other = [j for j in db.all("list_jobs", workflow_id=wf, status="ready")][0]
    db.event(wf, "retry", job_id=other["id"], attempt_id=2, run_id=1,
             detail={"return_code": 10, "reason": "rule 1 matched exit code 10; attempt 1 of 3"})
    db.conn.execute("INSERT INTO allocations (workflow_id, walltime_s, submitted_by, state, slurm_job_id, nodes, "
                    "cpus_per_node, mem) VALUES (%s, 3600, 'test', 'running', '4711', 1, 8, '16G'), "
                    "(%s, 600, 'test', 'ended', '4700', 1, 8, '16G')", (wf, wf))
    db.conn.execute("UPDATE allocations SET sacct_state = 'TIMEOUT' WHERE slurm_job_id = '4700'")
    now = datetime.now(timezone.utc)
    r = cycle.run_once(db, wf, None, cycle.WatchConfig(), now=now)
    r.decision = {"submit": False, "rule": "cooldown", "reason": "cooldown after the last submission",
                  "wait_until": now + timedelta(seconds=125)}
    console = Console(record=True, width=80, color_system=None)
    console.print(render_watch(db.workflow(wf), r, ops.watch_details(db, wf), auto_schedule=True, now=now,
                               next_cycle_in=3, width=80))
    text = console.export_text()
    assert f"workflow {wf} (watched)" in text and "refresh in 3s" in text
    assert "1/4" not in text and "0/4" in text and "running 1" in text and "ready 3" in text
    assert "next decision: wait (in 2m05s) — cooldown after the last submission" in text
    assert "running (1 of 1, longest first)" in text and claimed[0]["name"] in text and "node-a" in text
    assert "recent failures" in text and other["name"] in text and "retried: rule 1 matched exit code 10" in text
    allocations = text[text.index("allocations ("):text.index("running (")]
    assert "1 active of 2" in allocations and allocations.index("4711") < allocations.index("4700")
    assert "running" in allocations and "TIMEOUT" in allocations and "1×8 CPUs 16G" in allocations
    assert all(len(line) <= 80 for line in text.splitlines())


def test_the_loop_wakes_on_notify(db, db_url):
    assert DEFAULT_POLL_S <= 5          # a 20-second workflow is seen running and finishing
    wf = create(db, {"name": "w", "jobs": [{"name": "a", "command": "true"}]})
    sleep = notify_sleep(db, wf)

    def notify():
        with psycopg.connect(db_url, autocommit=True) as c:
            c.execute("SELECT pg_notify(notify_channel, '') FROM workflows WHERE id = %s", (wf,))

    threading.Timer(0.5, notify).start()
    start = time.monotonic()
    sleep(120)
    assert time.monotonic() - start < 60, "the NOTIFY did not end the wait"
