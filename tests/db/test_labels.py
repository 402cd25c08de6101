"""Label routing in the claim (Torc's `label`): a worker claims only its label's jobs, on the ready index."""

from torc_hpc.db.queries import q
from tests.helpers import create

GIB = 1024**3


def _claim(db, wf, wid, label=None, limit=100):
    return db.claim(wf, wid, cpus=64, gpus=0, memory=64 * GIB, limit=limit, label=label)


def test_workers_claim_only_their_label(db):
    wf = create(db, {"name": "labels", "jobs": [
        {"name": "plain_{i}", "command": "true", "parameters": {"i": "1:3"}},
        {"name": "gpu_{i}", "command": "true", "label": "gpu", "parameters": {"i": "1:2"}},
        {"name": "big", "command": "true", "label": "bigmem", "priority": 5},
    ]})
    wid = db.register_worker(wf, hostname="t", pid=1, num_cpus=64, num_gpus=0, memory_bytes=64 * GIB)
    assert sorted(j["name"] for j in _claim(db, wf, wid)) == ["plain_1", "plain_2", "plain_3"]
    assert _claim(db, wf, wid) == []
    assert sorted(j["name"] for j in _claim(db, wf, wid, "gpu")) == ["gpu_1", "gpu_2"]
    assert _claim(db, wf, wid, "GPU") == []            # exact and case-sensitive
    assert [j["name"] for j in _claim(db, wf, wid, "bigmem")] == ["big"]
    assert db.one("idle_probe", workflow_id=wf, label_key="")["ready"] is False


def test_run_leaves_jobs_for_other_labels_and_names_them(db):
    wf = create(db, {"name": "labels", "jobs": [
        {"name": "a", "command": "true", "label": "gpu"}, {"name": "b", "command": "true", "label": "x y"}]})
    assert db.one("idle_probe", workflow_id=wf, label_key="")["ready"] is False
    assert db.one("idle_probe", workflow_id=wf, label_key="gpu")["ready"] is True
    labels = sorted(r["label"] for r in db.all("ready_labels_elsewhere", workflow_id=wf, label_key=""))
    assert labels == ["gpu", "x y"]
    assert [r["label"] for r in db.all("ready_labels_elsewhere", workflow_id=wf, label_key="gpu")] == ["x y"]


def _plan(db, wf, label):
    return "\n".join(r["QUERY PLAN"] for r in db.conn.execute(
        "EXPLAIN " + q("claim_jobs"),
        {"workflow_id": wf, "worker_id": 1, "cpus": 4, "gpus": 0, "memory": GIB * 8, "limit": 4,
         "time_left_s": 10**6, "scheduler": None, "label_key": label or "", "with_outputs": False,
         "window": 1000, "job_cpus": 4, "job_gpus": 0, "job_memory": GIB * 8}).fetchall())


def test_labeled_and_unlabeled_claims_are_index_range_scans(db):
    """20,000 unlabeled and 20,000 labeled ready jobs: either claim reads the index within its label (the
    label is an Index Cond, not a filter over the other label's rows), with fresh and with stale statistics."""
    wf = create(db, {"name": "big", "jobs": [
        {"name": "u_{i}", "command": "true", "parameters": {"i": "1:20000"}},
        {"name": "l_{i}", "command": "true", "label": "gpu", "parameters": {"i": "1:20000"}}]})
    for analyzed in (False, True):
        if analyzed:
            db.conn.execute("ANALYZE jobs")
        for label in (None, "gpu"):
            plan = _plan(db, wf, label)
            assert "jobs_ready_idx" in plan, plan
            assert "Seq Scan on jobs" not in plan, plan
            lines = plan.splitlines()
            at = next(i for i, line in enumerate(lines) if "jobs_ready_idx" in line)
            assert "label_key" in lines[at + 1] and "Index Cond" in lines[at + 1], plan


def test_claim_reads_only_its_labels_buffers(db):
    """The claim for the small label touches a few pages, not the 20,000 other-label rows before it."""
    wf = create(db, {"name": "big", "jobs": [
        {"name": "u_{i}", "command": "true", "priority": 9, "parameters": {"i": "1:20000"}},
        {"name": "l_{i}", "command": "true", "label": "gpu", "parameters": {"i": "1:3"}}]})
    db.conn.execute("ANALYZE jobs")
    rows = db.conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS) " + q("claim_jobs"),
        {"workflow_id": wf, "worker_id": 1, "cpus": 4, "gpus": 0, "memory": GIB * 8, "limit": 4,
         "time_left_s": 10**6, "scheduler": None, "label_key": "gpu", "with_outputs": False,
         "window": 1000, "job_cpus": 4, "job_gpus": 0, "job_memory": GIB * 8}).fetchall()
    db.conn.rollback()
    text = "\n".join(r["QUERY PLAN"] for r in rows)
    scan = next(line for line in text.splitlines() if "jobs_ready_idx" in line)
    assert "rows=3" in scan, text
    assert "Rows Removed by Filter" not in text, text   # the old index filtered 20,000 unlabeled rows here
