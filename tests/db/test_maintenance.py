"""Maintenance and retention: reset touches only what it resets and what those jobs blocked; cancel and
delete work in bounded chunks and finish after an interruption; prune and archive."""

from __future__ import annotations

import gzip
import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from torc_hpc import retention
from torc_hpc.core.states import JobStatus
from torc_hpc.db import Attempt, Database
from torc_hpc.db.queries import q
from torc_hpc.db.repo import finish_step
from torc_hpc.errors import NotFound, TorcError
from tests.conftest import wait_for
from tests.helpers import create, job_ids, statuses

GIB = 1024**3


def _worker(db, wf):
    return db.register_worker(wf, hostname="t", pid=1, num_cpus=64, num_gpus=0, memory_bytes=64 * GIB)


def _claim(db, wf, wid, names):
    got = {j["name"]: j for j in db.claim(wf, wid, cpus=64, gpus=0, memory=64 * GIB, limit=1000)}
    missing = set(names) - set(got)
    assert not missing, f"not claimable: {missing}"
    return got


def _attempt(j, wid, rc=0):
    return Attempt(j["id"], j["run_id"], j["attempt_id"], wid, return_code=rc)


def _versions(db, wf) -> dict[str, str]:
    """Each job's row version (xmin changes whenever the row is rewritten)."""
    return {r["name"]: r["v"] for r in db.conn.execute(
        "SELECT name, xmin::text AS v FROM jobs WHERE workflow_id = %s", (wf,)).fetchall()}


def _counts(db, wf) -> dict[str, int]:
    return {r["name"]: r["unfinished_parents"] for r in db.conn.execute(
        "SELECT name, unfinished_parents FROM jobs WHERE workflow_id = %s", (wf,)).fetchall()}


# a → b → c → d in the middle of a wider DAG: b fails, c and d are canceled by the cascade, o (opted out)
# runs anyway, p (opted out) completed; x_* are ready and y_* wait for the running r: none of them is
# related to b and none may be rewritten by a reset of b.
MID = {"name": "mid", "jobs": [
    {"name": "a", "command": "x"},
    {"name": "r", "command": "x"},
    {"name": "b", "command": "x", "depends_on": ["a"]},
    {"name": "c", "command": "x", "depends_on": ["b"]},
    {"name": "d", "command": "x", "depends_on": ["c", "a"]},
    {"name": "o", "command": "x", "depends_on": ["b", "r"], "cancel_on_blocking_job_failure": False},
    {"name": "p", "command": "x", "depends_on": ["b"], "cancel_on_blocking_job_failure": False},
    {"name": "x_{i}", "command": "x", "parameters": {"i": "1:20"}},
    {"name": "y_{i}", "command": "x", "depends_on": ["r"], "parameters": {"i": "1:20"}},
]}


def _mid_with_b_failed(db):
    wf = create(db, MID)
    wid = _worker(db, wf)
    # claim a and r only (x_* stay ready, untouched)
    got = {j["name"]: j for j in db.claim(wf, wid, cpus=2, gpus=0, memory=64 * GIB, limit=2)}
    assert set(got) == {"a", "r"}
    db.finish(wf, [finish_step("completed", _attempt(got["a"], wid))])
    b = {j["name"]: j for j in db.claim(wf, wid, cpus=1, gpus=0, memory=64 * GIB, limit=1)}["b"]
    db.finish(wf, [finish_step("failed", _attempt(b, wid, rc=1), status=JobStatus.FAILED)])
    s = statuses(db, wf)
    assert s["c"] == s["d"] == "canceled" and s["p"] == "ready" and s["o"] == "blocked"
    p = {j["name"]: j for j in db.claim(wf, wid, cpus=64, gpus=0, memory=64 * GIB, limit=100)}["p"]
    db.finish(wf, [finish_step("completed", _attempt(p, wid))])
    # the rest of the x_* claimed above went back to ready: release them so they are plain ready jobs
    db.conn.execute("UPDATE jobs SET status = 'ready', worker_id = NULL WHERE workflow_id = %s "
                    "AND name LIKE 'x\\_%%' AND status = 'running'", (wf,))
    return wf, wid


def test_failed_only_reset_rewrites_only_targets_and_their_waiting_children(db):
    wf, _ = _mid_with_b_failed(db)
    before = _versions(db, wf)
    row = db.reset_status(wf, failed_only=True)
    after = _versions(db, wf)
    rewritten = {n for n in before if before[n] != after[n]}
    # b failed, c and d canceled: the targets. o waited only for r after b failed: it waits for b again.
    assert rewritten == {"b", "c", "d", "o"}, rewritten
    assert row["reset"] == 3 and row["recounted"] == 1
    s, n = statuses(db, wf), _counts(db, wf)
    assert s["b"] == "ready" and n["b"] == 0               # a completed
    assert s["c"] == "blocked" and n["c"] == 1              # b
    assert s["d"] == "blocked" and n["d"] == 1              # c (a completed)
    assert s["o"] == "blocked" and n["o"] == 2              # b again, and r still running
    assert s["p"] == "completed"                            # opted out and ran: left alone
    assert all(s[f"x_{i}"] == "ready" for i in range(1, 21))
    kinds = {r["name"]: r["kind"] for r in db.conn.execute(
        "SELECT j.name, e.kind FROM events e JOIN jobs j ON j.id = e.job_id WHERE e.workflow_id = %s "
        "AND e.run_id = %s", (wf, row["run_id"])).fetchall()}
    assert kinds == {"b": "reset", "c": "reset", "d": "reset"}  # o stayed blocked: no transition


def test_reset_of_given_jobs_takes_their_canceled_descendants_and_reblocks_opt_outs(db):
    wf, wid = _mid_with_b_failed(db)
    ids = job_ids(db, wf)
    # r completes: o (opted out of b's failure) becomes ready
    r = db.conn.execute("SELECT attempt_id FROM jobs WHERE id = %s", (ids["r"],)).fetchone()
    db.finish(wf, [finish_step("completed", Attempt(ids["r"], 1, r["attempt_id"], wid))])
    assert statuses(db, wf)["o"] == "ready"
    before = _versions(db, wf)
    with db.conn.transaction():
        row = db.reset_jobs(wf, [ids["b"]], reason="test")
    after = _versions(db, wf)
    assert {n for n in before if before[n] != after[n]} == {"b", "c", "d", "o"}
    assert row["reset"] == 3
    s = statuses(db, wf)
    assert s["o"] == "blocked" and _counts(db, wf)["o"] == 1
    ev = db.conn.execute("SELECT from_status::text, to_status::text, kind FROM events WHERE job_id = %s "
                         "ORDER BY id DESC LIMIT 1", (ids["o"],)).fetchone()
    assert ev == {"from_status": "ready", "to_status": "blocked", "kind": "reblocked"}


def test_full_reset_leaves_never_run_jobs_alone(db):
    wf = create(db, {"name": "full", "jobs": [
        {"name": "a", "command": "x"},
        {"name": "b", "command": "x", "depends_on": ["a"]},
        {"name": "w_{i}", "command": "x", "parameters": {"i": "1:10"}, "priority": -1},
        {"name": "v_{i}", "command": "x", "depends_on": ["w_{i}"], "parameters": {"i": "1:10"}}]})
    wid = _worker(db, wf)
    a = {j["name"]: j for j in db.claim(wf, wid, cpus=1, gpus=0, memory=GIB, limit=1)}["a"]
    db.finish(wf, [finish_step("completed", _attempt(a, wid))])
    before = _versions(db, wf)
    row = db.reset_status(wf, failed_only=False)
    after = _versions(db, wf)
    assert {n for n in before if before[n] != after[n]} == {"a", "b"}
    assert row["reset"] == 1 and row["recounted"] == 1
    s = statuses(db, wf)
    assert s["a"] == "ready" and s["b"] == "blocked"


def test_reset_does_not_lose_a_completion_that_races_it(db, db_url):
    """A worker completes a parent of a child the reset recounts, while the reset runs. Under READ
    COMMITTED the reset would overwrite the decrement with a count from before the completion (the child
    would wait forever); REPEATABLE READ makes the reset retry instead."""
    wf = create(db, {"name": "race", "jobs": [
        {"name": "t", "command": "x"}, {"name": "p", "command": "x"},
        {"name": "c", "command": "x", "depends_on": ["t", "p"], "cancel_on_blocking_job_failure": False}]})
    wid = _worker(db, wf)
    got = _claim(db, wf, wid, ["t", "p"])
    db.finish(wf, [finish_step("failed", _attempt(got["t"], wid, rc=1), status=JobStatus.FAILED)])
    assert _counts(db, wf)["c"] == 1 and statuses(db, wf)["c"] == "blocked"   # waits for p only
    other = Database(db_url)
    done = {}
    try:
        with other.conn.transaction():
            other.one("finish_completed", **finish_step("completed", _attempt(got["p"], wid))[1])
            t = threading.Thread(target=lambda: done.setdefault("row", db.reset_status(wf, failed_only=True)))
            t.start()
            wait_for(lambda: db_waiting_on_lock(other, db), timeout=10, what="the reset to wait for the child")
        t.join(timeout=30)
    finally:
        other.close()
    assert done["row"]["reset"] == 1
    # t is reset (unfinished again), p completed: c waits for t only
    assert statuses(db, wf)["c"] == "blocked" and _counts(db, wf)["c"] == 1


def db_waiting_on_lock(observer: Database, waiter: Database) -> bool:
    row = observer.conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                (waiter.conn.info.backend_pid,)).fetchone()
    return bool(row and row["wait_event_type"] == "Lock")


def test_reset_plan_reads_only_the_targets_and_their_edges(db):
    wf = create(db, {"name": "big", "jobs": [
        {"name": "j_{i}", "command": "x", "parameters": {"i": "1:20000"}},
        {"name": "k_{i}", "command": "x", "depends_on": ["j_{i}"], "parameters": {"i": "1:20000"}}]})
    db.conn.execute("UPDATE jobs SET status = 'failed' WHERE workflow_id = %s AND name IN ('j_5', 'j_7')", (wf,))
    db.conn.execute("ANALYZE jobs")
    db.conn.execute("ANALYZE job_dependencies")
    for params in ({"statuses": ["failed", "canceled", "terminated", "pending_failed"], "job_ids": None},
                   {"statuses": None, "job_ids": [job_ids(db, wf)["j_5"]]}):
        plan = "\n".join(r["QUERY PLAN"] for r in db.conn.execute(
            "EXPLAIN " + q("reset_jobs"), {"workflow_id": wf, "reason": "t", **params}).fetchall())
        assert "Seq Scan on jobs" not in plan, plan
        assert "Seq Scan on job_dependencies" not in plan, plan


# ---- cancel -----------------------------------------------------------------------------------------

def test_cancel_works_in_chunks_each_with_its_events(db):
    wf = create(db, {"name": "c", "jobs": [
        {"name": "a_{i}", "command": "x", "parameters": {"i": "1:13"}},
        {"name": "b_{i}", "command": "x", "depends_on": ["a_{i}"], "parameters": {"i": "1:10"}}]})
    assert db.cancel_workflow(wf, chunk=4) == 23
    assert set(statuses(db, wf).values()) == {"canceled"}
    # jobs and events of one chunk share a transaction id; no transaction canceled more than 4 jobs
    per_tx = db.conn.execute(
        "SELECT xmin::text AS tx, count(*) AS n FROM events WHERE workflow_id = %s AND kind = 'canceled' "
        "GROUP BY 1", (wf,)).fetchall()
    assert sum(r["n"] for r in per_tx) == 23 and max(r["n"] for r in per_tx) <= 4 and len(per_tx) >= 6
    jobs_tx = {r["tx"] for r in db.conn.execute("SELECT xmin::text AS tx FROM jobs WHERE workflow_id = %s",
                                                (wf,)).fetchall()}
    assert jobs_tx == {r["tx"] for r in per_tx}
    assert db.conn.execute("SELECT count(*) AS n FROM events WHERE workflow_id = %s AND kind = 'workflow_canceled'",
                           (wf,)).fetchone()["n"] == 1


def test_an_interrupted_cancel_stops_claims_and_a_rerun_finishes_it(db):
    wf = create(db, {"name": "c", "jobs": [{"name": "a_{i}", "command": "x", "parameters": {"i": "1:30"}}]})
    wid = _worker(db, wf)
    # what a cancel does before it dies after its second chunk
    with db.conn.transaction():
        db.one("mark_workflow_canceled", workflow_id=wf)
    after = ""
    for _ in range(2):
        with db.conn.transaction():
            after = db.one("cancel_jobs_chunk", workflow_id=wf, chunk=5, after=after)["last"]
    assert db.claim(wf, wid, cpus=64, gpus=0, memory=GIB, limit=10) == []
    assert db.heartbeat(wid)["workflow_canceled"]
    assert db.status_counts(wf)["ready"] == 20
    assert db.cancel_workflow(wf, chunk=5) == 20
    assert db.status_counts(wf)["canceled"] == 30


def test_cancel_waits_for_a_job_a_finisher_holds(db, db_url):
    wf = create(db, {"name": "c", "jobs": [{"name": "a_{i}", "command": "x", "parameters": {"i": "1:8"}}]})
    other = Database(db_url)
    try:
        tx = other.conn.transaction()
        tx.__enter__()
        other.conn.execute("SELECT id FROM jobs WHERE workflow_id = %s AND name = 'a_3' FOR UPDATE", (wf,))
        threading.Timer(0.5, lambda: tx.__exit__(None, None, None)).start()
        n = db.cancel_workflow(wf, chunk=3)
    finally:
        time.sleep(0.6)
        other.close()
    assert n == 8 and set(statuses(db, wf).values()) == {"canceled"}


def test_cancel_and_delete_chunks_walk_an_index(db):
    create(db, {"name": "other", "jobs": [{"name": "j_{i}", "command": "x", "parameters": {"i": "1:20000"}}]})
    wf = create(db, {"name": "big", "jobs": [{"name": "j_{i}", "command": "x", "parameters": {"i": "1:20000"}}]})
    db.conn.execute("ANALYZE jobs")
    plan = "\n".join(r["QUERY PLAN"] for r in db.conn.execute(
        "EXPLAIN " + q("cancel_jobs_chunk"), {"workflow_id": wf, "chunk": 5000, "after": "j_5000"}).fetchall())
    assert "Seq Scan on jobs" not in plan, plan
    plan = "\n".join(r["QUERY PLAN"] for r in db.conn.execute(
        "EXPLAIN " + q("delete_workflow_jobs_chunk"), {"workflow_id": wf, "chunk": 5000, "after": "j_5000"}).fetchall())
    assert "Seq Scan" not in plan, plan


# ---- delete -----------------------------------------------------------------------------------------

def _ran(db, n_jobs=40, n_workers=30):
    """A workflow that ran: results, events, many worker rows, a failure handler."""
    wf = create(db, {"name": "ran", "failure_handlers": [{"name": "h", "rules": [
        {"match_all_exit_codes": True, "max_retries": 2}]}], "jobs": [
        {"name": "j_{i}", "command": "x", "failure_handler": "h", "parameters": {"i": f"1:{n_jobs}"}}]})
    wids = [_worker(db, wf) for _ in range(n_workers)]
    k = 0
    while True:
        wid = wids[k % n_workers]
        k += 1
        jobs = db.claim(wf, wid, cpus=2, gpus=0, memory=64 * GIB, limit=2)
        if not jobs:
            break
        db.finish(wf, [finish_step("completed", _attempt(j, wid)) for j in jobs])
    for wid in wids:
        db.stop_worker(wf, wid, "done")
    return wf


_OWNED = ("jobs", "job_dependencies", "results", "events", "workers", "failure_handlers", "allocations",
          "slurm_schedulers", "watch_state")


def _owned_rows(db, wf) -> dict[str, int]:
    return {t: db.conn.execute(f"SELECT count(*) AS n FROM {t} WHERE workflow_id = %s", (wf,)).fetchone()["n"]
            for t in _OWNED}


def _seq_scans(db, table: str) -> int:
    db.conn.execute("SELECT pg_stat_force_next_flush()")
    db.conn.execute("SELECT pg_stat_clear_snapshot()")
    return db.conn.execute("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = %s",
                           (table,)).fetchone()["seq_scan"]


def test_delete_removes_everything_and_does_not_scan_per_worker(db):
    keep = _ran(db, n_jobs=10, n_workers=2)
    wf = _ran(db, n_jobs=60, n_workers=80)
    kept = _owned_rows(db, keep)
    assert _owned_rows(db, wf)["workers"] == 80
    jobs_scans, results_scans = _seq_scans(db, "jobs"), _seq_scans(db, "results")
    counts = db.delete_workflow(wf, chunk=7)
    # With ON DELETE SET NULL from jobs/results to workers this was one scan of each table per worker.
    assert _seq_scans(db, "jobs") - jobs_scans < 20
    assert _seq_scans(db, "results") - results_scans < 20
    assert counts["jobs"] == 60 and counts["results"] == 60
    assert all(n == 0 for n in _owned_rows(db, wf).values())
    assert db.one("get_workflow", workflow_id=wf) is None
    assert _owned_rows(db, keep) == kept
    with pytest.raises(NotFound):
        db.delete_workflow(wf)


def test_an_interrupted_delete_leaves_a_marked_workflow_nobody_uses_and_a_rerun_finishes(db):
    wf = _ran(db, n_jobs=30, n_workers=3)
    create_more = create(db, {"name": "w", "jobs": [{"name": "z", "command": "x"}]})
    db.conn.execute("UPDATE jobs SET status = 'ready' WHERE workflow_id = %s", (wf,))
    wid = _worker(db, wf)
    with db.conn.transaction():
        db.one("mark_workflow_deleting", workflow_id=wf, unchanged_since_event=None)
    with db.conn.transaction():
        db.one("delete_workflow_jobs_chunk", workflow_id=wf, chunk=10, after="")
    with db.conn.transaction():
        db.one("delete_workflow_events_chunk", workflow_id=wf, chunk=10, after=0)
    # the half-deleted workflow: nobody claims, commands refuse it, workers are told to stop
    assert db.claim(wf, wid, cpus=64, gpus=0, memory=GIB, limit=10) == []
    assert db.heartbeat(wid)["workflow_canceled"]
    for action in (lambda: db.workflow(wf), lambda: db.reset_status(wf, failed_only=True),
                   lambda: db.cancel_workflow(wf)):
        with pytest.raises(NotFound, match="being deleted"):
            action()
    with db.conn.transaction():  # even the statement alone does not revive it
        assert db.one("reset_jobs", workflow_id=wf, statuses=["ready"], job_ids=None, reason="t")["reset"] == 0
    db.delete_workflow(wf)
    assert all(n == 0 for n in _owned_rows(db, wf).values())
    assert statuses(db, create_more) == {"z": "ready"}


def test_no_foreign_key_makes_a_worker_or_handler_delete_scan_jobs_or_results(db):
    fks = db.conn.execute("""
        SELECT conrelid::regclass::text AS tbl, confrelid::regclass::text AS ref FROM pg_constraint
        WHERE contype = 'f' AND confrelid IN ('workers'::regclass, 'failure_handlers'::regclass)
          AND conrelid IN ('jobs'::regclass, 'results'::regclass)""").fetchall()
    assert fks == []


# ---- prune ------------------------------------------------------------------------------------------

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,expected", [
    ("90d", NOW - timedelta(days=90)),
    ("12h", NOW - timedelta(hours=12)),
    ("2w", NOW - timedelta(weeks=2)),
    ("2025-01-01", datetime(2025, 1, 1, tzinfo=timezone.utc)),
    ("2025-01-01T06:30", datetime(2025, 1, 1, 6, 30, tzinfo=timezone.utc)),
    ("2025-01-01T06:30+02:00", datetime(2025, 1, 1, 4, 30, tzinfo=timezone.utc)),
])
def test_parse_cutoff(text, expected):
    assert retention.parse_cutoff(text, NOW, local_tz=timezone.utc) == expected


@pytest.mark.parametrize("text", ["yesterday", "90", "2025-13-01", "2026-01-01"])
def test_parse_cutoff_rejects_what_it_cannot_read_or_the_future(text):
    with pytest.raises(TorcError):
        retention.parse_cutoff(text, NOW, local_tz=timezone.utc)


def test_prune_deletes_old_events_in_chunks_and_keeps_the_rest(db):
    wf = _ran(db, n_jobs=20, n_workers=2)
    total = db.conn.execute("SELECT count(*) AS n FROM events").fetchone()["n"]
    ids = [r["id"] for r in db.conn.execute("SELECT id FROM events ORDER BY id").fetchall()]
    old = set(ids[:25]) | {ids[-3]}  # one old event out of id order
    db.conn.execute("UPDATE events SET ts = now() - interval '10 days' WHERE id = ANY(%s)", (list(old),))
    cutoff = datetime.now(timezone.utc) - timedelta(days=5)
    dry = retention.prune_events(db, cutoff, dry_run=True)
    assert dry["events_older"] == len(old) and dry["events_deleted"] == 0
    out = retention.prune_events(db, cutoff, chunk=4)
    assert out["events_deleted"] == len(old) and out["chunks"] >= 7
    left = {r["id"] for r in db.conn.execute("SELECT id FROM events").fetchall()}
    assert left == set(ids) - old and len(left) == total - len(old)
    assert db.status_counts(wf)["completed"] == 20


def test_prune_chunk_walks_the_primary_key(db):
    db.conn.execute("INSERT INTO workflows (name, spec) VALUES ('e', '{}')")
    wf = db.conn.execute("SELECT max(id) AS id FROM workflows").fetchone()["id"]
    db.conn.execute("INSERT INTO events (workflow_id, kind, ts) SELECT %s, 'x', now() - g * interval '1 s' "
                    "FROM generate_series(1, 50000) g", (wf,))
    db.conn.execute("ANALYZE events")
    plan = "\n".join(r["QUERY PLAN"] for r in db.conn.execute(
        "EXPLAIN " + q("prune_events_chunk"),
        {"before": datetime.now(timezone.utc) - timedelta(hours=3), "after": 1000, "upto": 40000,
         "chunk": 20000}).fetchall())
    assert "events_pkey" in plan and "Seq Scan on events" not in plan, plan
    plan = "\n".join(r["QUERY PLAN"] for r in db.conn.execute(
        "EXPLAIN " + q("prune_events_range"), {"before": datetime.now(timezone.utc) - timedelta(hours=13)}))
    assert "events_ts_brin" in plan, plan


# ---- archive ----------------------------------------------------------------------------------------

def test_archive_exports_every_row_then_deletes(db, tmp_path):
    wf = _ran(db, n_jobs=25, n_workers=3)
    wf_spec = create(db, {"name": "deps", "jobs": [{"name": "a", "command": "x"},
                                                   {"name": "b", "command": "x", "depends_on": ["a"]}]})
    before = _owned_rows(db, wf)
    jobs_before = {r["id"]: r for r in db.conn.execute("SELECT * FROM jobs WHERE workflow_id = %s", (wf,))}
    path = tmp_path / "wf.json.gz"
    r = retention.archive_workflow(db, wf, path, fetch=7)
    assert r.deleted and path.exists() and r.bytes == path.stat().st_size
    assert not (tmp_path / "wf.json.gz.partial").exists()
    assert all(n == 0 for n in _owned_rows(db, wf).values())
    sections: dict[str, list] = {}
    for section, row in retention.read_archive(path):
        sections.setdefault(section, []).append(row)
    header = sections["header"][0]
    assert header["format"] == "torc-archive" and header["workflow_id"] == wf
    assert sections["workflow"][0]["id"] == wf and sections["workflow"][0]["spec"]["name"] == "ran"
    counts = sections["counts"][0]
    for table in ("jobs", "results", "events", "workers", "failure_handlers", "failure_handler_rules"):
        assert len(sections.get(table, [])) == counts[table], table
    for table in ("jobs", "results", "events", "workers", "failure_handlers"):
        assert counts[table] == before[table], table
    assert {j["id"]: j["name"] for j in sections["jobs"]} == {i: j["name"] for i, j in jobs_before.items()}
    assert {j["status"] for j in sections["jobs"]} == {"completed"}
    # plain JSON as well (jq, json.load)
    doc = json.loads(gzip.open(path, "rt").read())
    assert len(doc["results"]) == 25 and doc["failure_handler_rules"][0]["match_all_exit_codes"] is True
    # an uncompressed file, edges included, kept in the database with delete=False
    plain = tmp_path / "deps.json"
    retention.archive_workflow(db, wf_spec, plain, delete=False)
    doc = json.loads(plain.read_text())
    assert len(doc["job_dependencies"]) == 1 and doc["counts"]["jobs"] == 2
    assert db.workflow(wf_spec)["id"] == wf_spec


def test_archive_refuses_running_work_an_existing_file_and_a_change_during_export(db, tmp_path):
    wf = create(db, {"name": "busy", "jobs": [{"name": "a", "command": "x"}, {"name": "b", "command": "x"}]})
    wid = _worker(db, wf)
    with pytest.raises(TorcError, match="running job"):
        retention.archive_workflow(db, wf, tmp_path / "a.json")
    db.stop_worker(wf, wid, "done")
    with pytest.raises(TorcError, match="cannot write the archive"):
        retention.archive_workflow(db, wf, tmp_path / "no" / "such" / "dir.json")
    (tmp_path / "exists.json").write_text("{}")
    with pytest.raises(TorcError, match="exists"):
        retention.archive_workflow(db, wf, tmp_path / "exists.json")
    last = db.one("archive_quiet", workflow_id=wf)["last_event_id"]
    db.event(wf, "something_happened")
    with pytest.raises(TorcError, match="changed while it was being exported"):
        db.delete_workflow(wf, unchanged_since_event=last)
    assert db.workflow(wf)["deleting_at"] is None and db.status_counts(wf)["ready"] == 2


def test_cli_archive_delete_cancel_and_prune(torc, db):
    wf = create(db, {"name": "cli", "jobs": [{"name": "a_{i}", "command": "x", "parameters": {"i": "1:5"}}]})
    out = torc.json("workflows", "cancel", wf)
    assert out["canceled_jobs"] == 5
    out = torc.json("workflows", "archive", wf, "-o", "a.json")
    assert out["deleted"] and out["counts"]["jobs"] == 5 and (torc.cwd / "a.json").exists()
    wf2 = create(db, {"name": "cli2", "jobs": [{"name": "b", "command": "x"}]})
    assert torc.json("workflows", "delete", wf2, "--yes")["deleted"]["jobs"] == 1
    out = torc.json("db", "prune", "--events-before", "2000-01-01", "--dry-run")
    assert out["events_older"] == 0 and out["dry_run"]
    bad = torc("db", "prune", "--events-before", "last week", check=False)
    assert bad.returncode != 0 and "cannot read the date" in bad.stderr
