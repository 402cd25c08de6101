"""Claims: never twice, resource-aware, served by the partial index."""

import random
import threading

from torc_hpc.db import Attempt, Database
from torc_hpc.db.repo import finish_step
from tests.helpers import create

GIB = 1024**3


def test_no_job_is_claimed_twice_under_concurrency(db, db_url):
    n_jobs, n_workers = 4000, 8
    wf = create(db, {"name": "many", "jobs": [{"name": "j_{i}", "command": "true",
                                               "parameters": {"i": f"1:{n_jobs}"}}]})
    claimed: list[list[int]] = [[] for _ in range(n_workers)]
    errors = []

    def claimer(k: int):
        try:
            with Database(db_url) as mine:
                wid = mine.register_worker(wf, hostname="test", pid=k, num_cpus=64, num_gpus=0, memory_bytes=64 * GIB)
                rng = random.Random(k)
                while True:
                    jobs = mine.claim(wf, wid, cpus=64, gpus=0, memory=64 * GIB, limit=rng.randint(1, 16))
                    if not jobs:
                        return
                    claimed[k].extend(j["id"] for j in jobs)
                    mine.finish(wf, [finish_step("completed", Attempt(j["id"], j["run_id"], j["attempt_id"], wid))
                                     for j in jobs])
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=claimer, args=(k,)) for k in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    everything = [i for c in claimed for i in c]
    assert len(everything) == n_jobs
    assert len(set(everything)) == n_jobs, "a job was claimed twice"
    assert sum(1 for c in claimed if c) >= 2, "only one claimer got work: the test did not race"
    assert db.status_counts(wf)["completed"] == n_jobs
    r = db.conn.execute("SELECT count(*) AS n, count(DISTINCT job_id) AS d FROM results WHERE workflow_id = %s",
                        (wf,)).fetchone()
    assert r["n"] == r["d"] == n_jobs
    ev = db.conn.execute("SELECT count(*) AS n FROM events WHERE workflow_id = %s AND kind = 'claimed'",
                         (wf,)).fetchone()
    assert ev["n"] == n_jobs


def test_claim_respects_resources_priority_and_time(db):
    wf = create(db, {"name": "res", "jobs": [
        {"name": "big", "command": "x", "resource_requirements": {"num_cpus": 8, "memory": "1g"}},
        {"name": "fat", "command": "x", "resource_requirements": {"num_cpus": 1, "memory": "100g"}},
        {"name": "long", "command": "x", "resource_requirements": {"runtime": "PT10H"}},
        {"name": "gpu", "command": "x", "resource_requirements": {"num_gpus": 1}},
        {"name": "urgent", "command": "x", "priority": 10, "resource_requirements": {"num_cpus": 2}},
        {"name": "s1", "command": "x"}, {"name": "s2", "command": "x"}, {"name": "s3", "command": "x"},
    ]})
    wid = db.register_worker(wf, hostname="t", pid=1, num_cpus=4, num_gpus=0, memory_bytes=16 * GIB)
    got = db.claim(wf, wid, cpus=4, gpus=0, memory=16 * GIB, limit=10, time_left_s=3600)
    # urgent first (priority), then small ones until the 4 CPUs are used.
    assert [j["name"] for j in got] == ["urgent", "s1", "s2"]
    assert db.claim(wf, wid, cpus=1, gpus=0, memory=16 * GIB, limit=10, time_left_s=3600)[0]["name"] == "s3"
    assert db.claim(wf, wid, cpus=4, gpus=0, memory=16 * GIB, limit=10, time_left_s=3600) == []
    longs = db.claim(wf, wid, cpus=4, gpus=1, memory=16 * GIB, limit=10, time_left_s=11 * 3600)
    assert sorted(j["name"] for j in longs) == ["gpu", "long"]


def test_canceled_workflow_yields_no_claims(db):
    wf = create(db, {"name": "c", "jobs": [{"name": "a", "command": "x"}]})
    wid = db.register_worker(wf, hostname="t", pid=1, num_cpus=4, num_gpus=0, memory_bytes=GIB)
    db.cancel_workflow(wf)
    assert db.claim(wf, wid, cpus=4, gpus=0, memory=GIB, limit=5) == []


def test_claim_uses_the_partial_ready_index(db):
    wf = create(db, {"name": "big", "jobs": [
        {"name": "j_{i}", "command": "true", "parameters": {"i": "1:20000"}},
        {"name": "after_{i}", "command": "true", "depends_on": ["j_{i}"], "parameters": {"i": "1:20000"}}]})
    db.conn.execute("ANALYZE jobs")
    from torc_hpc.db.queries import q

    plan = "\n".join(r["QUERY PLAN"] for r in db.conn.execute(
        "EXPLAIN " + q("claim_jobs"),
        {"workflow_id": wf, "worker_id": 1, "cpus": 4, "gpus": 0, "memory": GIB * 8, "limit": 4,
         "time_left_s": 10**6, "scheduler": None, "window": 1000, "job_cpus": 2, "job_gpus": 0,
         "job_memory": GIB * 4, "label_key": "", "with_outputs": False}).fetchall())
    assert "jobs_ready_idx" in plan, plan
    assert "Seq Scan on jobs" not in plan, plan


def test_a_claim_whose_answer_was_lost_is_given_back(db, db_url):
    """The claim commits, then the connection breaks before the worker reads the answer: after
    reconnecting, the worker must not leave those jobs `running` under itself unknown to it."""
    from torc_hpc.db.repo import NO_LIMIT_S
    from torc_hpc.worker.pump import Pump

    wf = create(db, {"name": "lost", "jobs": [{"name": "j_{i}", "command": "true", "parameters": {"i": "1:6"}}]})
    pump = Pump(db_url, wf, claim_params=lambda: None, wake=lambda: None)
    pump.connect()
    wid = pump.register(hostname="test", pid=1, num_cpus=64, num_gpus=0, memory_bytes=64 * GIB)
    real_finish, answers = pump.db.finish, []

    def finish_losing_the_first_answer(*args, **kwargs):
        result = real_finish(*args, **kwargs)  # committed
        if not answers:
            answers.append(result)
            db.conn.execute("SELECT pg_terminate_backend(%s)", (pump.db.conn.info.backend_pid,))
            pump.db.conn.execute("SELECT 1")  # the broken connection surfaces here, as it would on read
        return result

    pump.db.finish = finish_losing_the_first_answer
    try:
        got = pump._batch([], [], {"cpus": 64, "gpus": 0, "memory": 64 * GIB, "limit": 3,
                                   "time_left_s": NO_LIMIT_S, "scheduler": None}, heartbeat=False)
    finally:
        pump.stop()
    lost = {j["id"] for j in answers[0]["claimed"]}
    got = {j["id"] for j in pump.claimed}
    assert len(lost) == 3 and len(got) == 3
    running = {r["id"] for r in db.conn.execute(
        "SELECT id FROM jobs WHERE worker_id = %s AND status = 'running'", (wid,)).fetchall()}
    assert running == got, "jobs are running under the worker without it knowing"
    released = {r["job_id"] for r in db.conn.execute(
        "SELECT job_id FROM events WHERE workflow_id = %s AND kind = 'released'", (wf,)).fetchall()}
    assert released == lost
    assert pump.released_unacknowledged == 3


def _rows_read_from(plan: dict, index: str) -> int:
    """Rows the plan's scans of `index` produced (EXPLAIN ANALYZE, JSON)."""
    own = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1) if plan.get("Index Name") == index else 0
    return own + sum(_rows_read_from(p, index) for p in plan.get("Plans", []))


def test_a_claim_for_which_nothing_fits_stops_after_its_window(db):
    """Issue 11 item 3: 3,000 ready jobs too big for this worker ahead of one that fits. A claim with a window
    reads at most that many entries of jobs_ready_idx and finds nothing; only a claim without one (the
    worker's occasional deep look) walks past them and finds the small job."""
    from torc_hpc.db.queries import q

    wf = create(db, {"name": "window", "jobs": [
        {"name": "big_{i}", "command": "x", "resource_requirements": {"num_cpus": 64}, "parameters": {"i": "1:3000"}},
        {"name": "small", "command": "x", "priority": -1}]})
    wid = db.register_worker(wf, hostname="t", pid=1, num_cpus=1, num_gpus=0, memory_bytes=16 * GIB)
    db.conn.execute("ANALYZE jobs")
    params = {"workflow_id": wf, "worker_id": wid, "cpus": 1, "gpus": 0, "memory": 16 * GIB, "limit": 2,
              "time_left_s": 10**6, "scheduler": None, "window": 1000, "job_cpus": 1, "job_gpus": 0,
              "job_memory": 16 * GIB, "label_key": "", "with_outputs": False}
    with db.conn.transaction(force_rollback=True):
        plan = db.conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + q("claim_jobs"), params).fetchone()["QUERY PLAN"]
    assert _rows_read_from(plan[0]["Plan"], "jobs_ready_idx") <= 1000
    assert db.claim(wf, wid, cpus=1, gpus=0, memory=16 * GIB, limit=2, window=1000) == []
    assert [j["name"] for j in db.claim(wf, wid, cpus=1, gpus=0, memory=16 * GIB, limit=2, window=None)] == ["small"]
