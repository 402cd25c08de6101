"""Completion: unblocking by counts, the cancel cascade with opt-outs, retries, resets, fan-in races."""

import threading

from torc_hpc.core.states import JobStatus
from torc_hpc.db import Attempt, Database
from torc_hpc.db.queries import q
from torc_hpc.db.repo import finish_step
from tests.helpers import create, job_ids, statuses

GIB = 1024**3


def _worker(db, wf):
    return db.register_worker(wf, hostname="t", pid=1, num_cpus=64, num_gpus=0, memory_bytes=64 * GIB)


def _claim_all(db, wf, wid):
    return {j["name"]: j for j in db.claim(wf, wid, cpus=64, gpus=0, memory=64 * GIB, limit=64)}


def _attempt(j, wid, rc=0):
    return Attempt(j["id"], j["run_id"], j["attempt_id"], wid, return_code=rc)


DAG = {"name": "dag", "jobs": [
    {"name": "a", "command": "x"},
    {"name": "b", "command": "x", "depends_on": ["a"]},
    {"name": "c", "command": "x", "depends_on": ["b"]},
    {"name": "d", "command": "x", "depends_on": ["a"], "cancel_on_blocking_job_failure": False},
    {"name": "e", "command": "x", "depends_on": ["d"]},
    {"name": "f", "command": "x", "depends_on": ["b", "z"], "cancel_on_blocking_job_failure": False},
    {"name": "z", "command": "x"},
]}


def test_success_unblocks_children_in_the_same_transaction(db):
    wf = create(db, DAG)
    wid = _worker(db, wf)
    got = _claim_all(db, wf, wid)
    assert set(got) == {"a", "z"}
    res = db.finish(wf, [finish_step("completed", _attempt(got["a"], wid))])
    assert res["newly_ready"] == 2
    s = statuses(db, wf)
    assert s["b"] == s["d"] == "ready" and s["c"] == "blocked"


def test_failure_cascades_except_opt_outs(db):
    wf = create(db, DAG)
    wid = _worker(db, wf)
    got = _claim_all(db, wf, wid)
    db.finish(wf, [finish_step("completed", _attempt(got["z"], wid))])
    res = db.finish(wf, [finish_step("failed", _attempt(got["a"], wid, rc=1), status=JobStatus.FAILED)])
    s = statuses(db, wf)
    assert s["a"] == "failed"
    assert s["b"] == s["c"] == "canceled"          # transitively
    assert s["d"] == "ready"                      # opted out: runs anyway
    assert s["e"] == "blocked"                    # waits for d as usual
    assert s["f"] == "ready"                      # opted out of b's cancellation; z completed
    assert res["canceled"] == 2 and res["newly_ready"] == 2
    ev = db.conn.execute("SELECT job_id, kind FROM events WHERE workflow_id = %s AND kind = 'canceled'",
                         (wf,)).fetchall()
    assert len(ev) == 2


def test_pending_failed_keeps_children_blocked_and_retry_increments_attempt(db):
    wf = create(db, DAG)
    wid = _worker(db, wf)
    got = _claim_all(db, wf, wid)
    db.finish(wf, [finish_step("pending_failed", _attempt(got["a"], wid, rc=3))])
    s = statuses(db, wf)
    assert s["a"] == "pending_failed" and s["b"] == "blocked" and s["d"] == "blocked"
    db.finish(wf, [finish_step("retry", Attempt(got["a"]["id"], 1, 1, None, return_code=3),
                               from_status=JobStatus.PENDING_FAILED, record_result=False)])
    again = _claim_all(db, wf, wid)
    assert again["a"]["attempt_id"] == 2


def test_stale_finish_is_ignored(db):
    wf = create(db, DAG)
    wid = _worker(db, wf)
    got = _claim_all(db, wf, wid)
    ok = db.finish(wf, [finish_step("completed", _attempt(got["a"], wid))])
    again = db.finish(wf, [finish_step("completed", _attempt(got["a"], wid))])
    assert ok["stale"] == [] and again["stale"] == [got["a"]["id"]]
    assert db.conn.execute("SELECT count(*) AS n FROM results WHERE job_id = %s", (got["a"]["id"],)).fetchone()["n"] == 1


def test_reset_failed_only_recounts_parents(db):
    wf = create(db, DAG)
    wid = _worker(db, wf)
    got = _claim_all(db, wf, wid)
    db.finish(wf, [finish_step("completed", _attempt(got["z"], wid)),
                   finish_step("failed", _attempt(got["a"], wid, rc=1), status=JobStatus.FAILED)])
    row = db.reset_status(wf, failed_only=True)
    assert row["run_id"] == 2
    s = statuses(db, wf)
    assert s["a"] == "ready" and s["z"] == "completed"
    assert s["b"] == "blocked" and s["c"] == "blocked"
    # d (opted out, already ready) waits for a again after the recount
    assert s["d"] == "blocked"
    counts = {r["name"]: r for r in db.conn.execute(
        "SELECT name, unfinished_parents, attempt_id FROM jobs WHERE workflow_id = %s", (wf,)).fetchall()}
    assert counts["f"]["unfinished_parents"] == 1  # b only; z is completed


def test_fan_in_race_unblocks_exactly_once(db, db_url):
    n = 300
    wf = create(db, {"name": "fan", "jobs": [
        {"name": "p_{i}", "command": "x", "parameters": {"i": f"1:{n}"}},
        {"name": "child", "command": "x", "depends_on": ["p_{i}"], "parameters": {"i": f"1:{n}"}}]})
    errors = []

    def worker(k):
        try:
            with Database(db_url) as mine:
                wid = _worker(mine, wf)
                while True:
                    jobs = mine.claim(wf, wid, cpus=64, gpus=0, memory=64 * GIB, limit=3)
                    jobs = [j for j in jobs if j["name"] != "child"]
                    if not jobs:
                        return
                    mine.finish(wf, [finish_step("completed", _attempt(j, wid)) for j in jobs])
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    child = db.conn.execute("SELECT status::text, unfinished_parents FROM jobs WHERE workflow_id = %s AND name = 'child'",
                            (wf,)).fetchone()
    assert child["unfinished_parents"] == 0 and child["status"] in ("ready", "running")
    unblocks = db.conn.execute("SELECT count(*) AS n FROM events WHERE workflow_id = %s AND kind = 'unblocked'",
                               (wf,)).fetchone()["n"]
    assert unblocks == 1


def test_completion_touches_only_the_jobs_children(db):
    wf = create(db, {"name": "wide", "jobs": [
        {"name": "j_{i}", "command": "x", "parameters": {"i": "1:20000"}},
        {"name": "k_{i}", "command": "x", "depends_on": ["j_{i}"], "parameters": {"i": "1:20000"}}]})
    db.conn.execute("ANALYZE jobs")
    db.conn.execute("ANALYZE job_dependencies")
    ids = job_ids(db, wf)
    for name in ("finish_completed", "finish_failed"):
        plan = "\n".join(r["QUERY PLAN"] for r in db.conn.execute("EXPLAIN " + q(name), {
            "job_id": ids["j_5"], "run_id": 1, "attempt_id": 1, "worker_id": None, "return_code": 1,
            "started_at": None, "completed_at": None, "exec_time_s": None, "peak_memory_bytes": None,
            "cpu_time_s": None, "status": "failed", "attempt_status": "failed", "record_result": True,
            "event_kind": "failed", "from_status": "running", "detail": None}).fetchall())
        assert "Seq Scan on jobs" not in plan, plan
        assert "Seq Scan on job_dependencies" not in plan, plan


def test_commands_with_tabs_newlines_and_backslashes_survive_copy(db):
    cmd = 'printf "a\\tb\\\\n" && echo \'x\ty\'\necho done\\\\'
    wf = create(db, {"name": "esc", "jobs": [{"name": "weird\\name", "command": cmd}]})
    row = db.conn.execute("SELECT name, command FROM jobs WHERE workflow_id = %s", (wf,)).fetchone()
    assert row == {"name": "weird\\name", "command": cmd}
