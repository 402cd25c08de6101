"""Workflow actions run by `torc run` (issue 14): every trigger fires once, in the workflow's directory,
each firing and failure an event; schedule_nodes is skipped without Slurm; a reset re-arms what it makes
pending again; the claim lets exactly one of two concurrent firers through; finishing a job no action
waits for never touches workflow_actions."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import yaml

from torc_hpc.db import Database
from torc_hpc.db.queries import q
from tests.helpers import create, job_ids

SPECS = Path(__file__).resolve().parents[1] / "torc_compat" / "specs"


def _events(torc, wf, prefix="action_"):
    with Database(torc.url) as db:
        return [(r["kind"], r["detail"]) for r in db.conn.execute(
            "SELECT kind, detail FROM events WHERE workflow_id = %s AND kind LIKE %s ORDER BY id",
            (wf, prefix + "%")).fetchall()]


def _actions(torc, wf):
    with Database(torc.url) as db:
        return db.all("list_actions", workflow_id=wf)


def test_every_trigger_fires_once_in_order(torc):
    torc.write("actions.yaml", (SPECS / "actions.yaml").read_text())
    torc("run", "actions.yaml", timeout=120)
    assert (torc.cwd / "out/log.txt").read_text().splitlines() == [
        "started", "steps ready", "prep finished", "all done"]
    wf = torc.json("workflows", "list")[0]["id"]
    ev = _events(torc, wf)
    assert [k for k, _ in ev] == ["action_started", "action_completed"] * 4
    assert [d["trigger_type"] for k, d in ev if k == "action_completed"] == [
        "on_workflow_start", "on_jobs_ready", "on_jobs_complete", "on_workflow_complete"]
    acts = _actions(torc, wf)
    assert all(a["fired_at"] is not None and a["fired_by"].startswith("torc run") for a in acts)
    assert [(a["selected_count"], a["reached_count"]) for a in acts] == [(0, 0), (3, 3), (1, 1), (0, 0)]
    # running it again does not fire anything twice
    torc("run", str(wf), timeout=60)
    assert len(_events(torc, wf)) == 8


def test_a_failing_or_slow_command_fails_the_action_not_the_workflow(torc):
    spec = {"name": "bad_actions", "jobs": [{"name": "a", "command": "echo a"}],
            "actions": [{"trigger_type": "on_workflow_start", "action_type": "run_commands",
                         "commands": ["echo before", "echo oops >&2; exit 3", "echo never"]},
                        {"trigger_type": "on_jobs_complete", "action_type": "run_commands", "jobs": ["a"],
                         "commands": ["sleep 30"]}]}
    torc.write("bad.yaml", yaml.safe_dump(spec))
    torc.env["TORC_ACTION_TIMEOUT_S"] = "1"
    torc("run", "bad.yaml", timeout=60)          # exit 0: every job completed
    wf = torc.json("workflows", "list")[0]["id"]
    failed = [d for k, d in _events(torc, wf) if k == "action_failed"]
    assert [(d["position"], d["command"], d["return_code"]) for d in failed] == [(0, 2, 3), (1, 1, None)]
    assert "before" in failed[0]["output_tail"] and "oops" in failed[0]["output_tail"]
    assert "never" not in Path(failed[0]["log"]).read_text()
    assert "timed out after 1s" in failed[1]["error"]


def test_schedule_nodes_is_skipped_by_torc_run_with_the_reason(torc):
    spec = {"name": "sched", "jobs": [{"name": "a", "command": "true"}],
            "slurm_schedulers": [{"name": "big", "account": "acct", "nodes": 2, "walltime": "01:00:00"}],
            "actions": [{"trigger_type": "on_workflow_start", "action_type": "schedule_nodes",
                         "scheduler": "big", "scheduler_type": "slurm", "num_allocations": 2}]}
    torc.write("sched.yaml", yaml.safe_dump(spec))
    torc("run", "sched.yaml", timeout=60)
    wf = torc.json("workflows", "list")[0]["id"]
    ev = _events(torc, wf)
    assert [k for k, _ in ev] == ["action_skipped"]
    assert "submits no Slurm allocations" in ev[0][1]["reason"]


def test_reset_rearms_what_it_makes_pending_again(torc):
    spec = {"name": "rearm", "jobs": [{"name": "ok", "command": "true"},
                                      {"name": "bad", "command": "test -e fixed"}],
            "actions": [{"trigger_type": "on_workflow_start", "action_type": "run_commands",
                         "commands": ["echo start >> log"]},
                        {"trigger_type": "on_jobs_complete", "action_type": "run_commands", "jobs": ["ok"],
                         "commands": ["echo ok >> log"]},
                        {"trigger_type": "on_jobs_complete", "action_type": "run_commands", "jobs": ["bad"],
                         "commands": ["echo bad >> log"]},
                        {"trigger_type": "on_workflow_complete", "action_type": "run_commands",
                         "commands": ["echo end >> log"]}]}
    torc.write("rearm.yaml", yaml.safe_dump(spec))
    torc("run", "rearm.yaml", check=False, timeout=60)
    wf = torc.json("workflows", "list")[0]["id"]
    assert sorted((torc.cwd / "log").read_text().split()) == ["bad", "end", "ok", "start"]
    torc("workflows", "reset-status", wf, "--failed-only")
    armed = [a["fired_at"] is None for a in _actions(torc, wf)]
    assert armed == [False, False, True, True]   # start and the untouched job's action stay fired
    (torc.cwd / "fixed").write_text("")
    torc("run", str(wf), timeout=60)
    assert sorted((torc.cwd / "log").read_text().split()) == ["bad", "bad", "end", "end", "ok", "start"]
    torc("workflows", "reset-status", wf)         # a full reset re-arms everything
    assert all(a["fired_at"] is None for a in _actions(torc, wf))


def test_two_concurrent_claims_fire_an_action_once(db_url):
    with Database(db_url) as db:
        wf = create(db, {"name": "race", "jobs": [{"name": "a", "command": "true"}],
                         "actions": [{"trigger_type": "on_jobs_ready", "action_type": "run_commands",
                                      "jobs": ["a"], "commands": ["true"]}]})
        action_id = db.one("pending_actions", workflow_id=wf)["id"]
    barrier = threading.Barrier(2)
    got = []

    def claim(who):
        with psycopg.connect(db_url, autocommit=True) as c:
            barrier.wait()
            with c.transaction():
                row = c.execute(q("claim_action"), {"workflow_id": wf, "action_id": action_id,
                                                     "fired_by": who}).fetchone()
                got.append(row)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r is not None for r in got) == [False, True]


def test_finishing_a_job_no_action_waits_for_never_reads_workflow_actions(db):
    wf = create(db, {"name": "plain", "jobs": [{"name": "a", "command": "true"},
                                                {"name": "b", "command": "true", "depends_on": ["a"]},
                                                {"name": "c", "command": "true"}],
                     "actions": [{"trigger_type": "on_jobs_complete", "action_type": "run_commands",
                                  "jobs": ["c"], "commands": ["true"]}]})
    ids = job_ids(db, wf)
    db.conn.execute("UPDATE jobs SET status = 'running', started_at = now() WHERE id = %s", (ids["a"],))
    params = dict(job_id=ids["a"], attempt_id=1, run_id=1, worker_id=None, started_at=None, completed_at=None,
                  exec_time_s=0.1, peak_memory_bytes=None, cpu_time_s=None)
    with db.conn.transaction():
        plan = "\n".join(r["QUERY PLAN"] for r in db.conn.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + q("finish_completed"), params).fetchall())
        raise psycopg.Rollback()
    counted = plan[plan.index("CTE counted"):]
    scan = next(line for line in counted.splitlines() if "on workflow_actions a" in line and "Update" not in line)
    assert "never executed" in scan, plan


def test_ctrl_c_stops_a_running_action_and_fires_nothing_more(torc):
    import signal
    import time

    from tests.conftest import wait_for

    spec = {"name": "stop_early", "jobs": [{"name": "a", "command": "true"}, {"name": "b", "command": "sleep 60"}],
            "actions": [{"trigger_type": "on_jobs_complete", "action_type": "run_commands", "jobs": ["a"],
                         "commands": ["sleep 60; touch late"]},
                        {"trigger_type": "on_workflow_complete", "action_type": "run_commands",
                         "commands": ["touch end"]}]}
    torc.write("stop.yaml", yaml.safe_dump(spec))
    proc = torc.popen("run", "stop.yaml")
    wf = wait_for(lambda: (w := torc.json("workflows", "list")) and w[0]["id"], timeout=60, what="the workflow")
    wait_for(lambda: any(k == "action_started" for k, _ in _events(torc, wf)), timeout=60, what="the action")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=40)
    assert time.monotonic() - started < 30
    time.sleep(1)
    assert not (torc.cwd / "late").exists() and not (torc.cwd / "end").exists()
    kinds = [k for k, _ in _events(torc, wf)]
    assert kinds.count("action_started") == 1 and "action_completed" not in kinds
