"""Listings stream from a server-side cursor in id order and their plans start at once (no sort of the whole
workflow), also with stale statistics; `last`, job names and the spec hash resolve; failure reads use the
partial index on failure events."""

import json

import pytest

from tests.helpers import create, expanded
from torc_hpc import workflows as ops
from torc_hpc.db.queries import q
from torc_hpc.errors import NotFound


def _sweep(n: int) -> dict:
    return {"name": f"sweep{n}", "jobs": [{"name": "j_{i:06d}", "command": "true", "parameters": {"i": f"1:{n}"}}]}


def _cursor_plan(db, name: str, **params) -> str:
    """The plan PostgreSQL picks for the query as a cursor (cursor_tuple_fraction: the first rows matter)."""
    with db.conn.transaction():
        rows = db.conn.execute("EXPLAIN (FORMAT JSON) DECLARE c CURSOR FOR " + q(name), params).fetchall()
    return json.dumps(rows[0]["QUERY PLAN"])


def _fill_results(db, wf: int) -> None:
    db.conn.execute("""
        INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status, started_at, exec_time_s)
        SELECT workflow_id, id, 1, 1, 0, 'completed', now(), 1.0 FROM jobs WHERE workflow_id = %s""", (wf,))


@pytest.mark.parametrize("stale", [False, True])
def test_listing_plans_start_without_sorting_the_workflow(db, stale):
    """The first row comes without a sort of the whole workflow, and a workflow behind a large one is found
    through (workflow_id, id), not by walking the large one's rows in primary-key order."""
    early = create(db, _sweep(200))
    _fill_results(db, early)
    if stale:
        db.conn.execute("ANALYZE jobs; ANALYZE results")   # statistics know only the first workflow
    big = create(db, _sweep(30_000))
    _fill_results(db, big)
    late = create(db, _sweep(300))
    _fill_results(db, late)
    if not stale:
        db.conn.execute("ANALYZE jobs; ANALYZE results")
    for wf in (big, late):
        plan = _cursor_plan(db, "stream_jobs", workflow_id=wf, run_id=1, status=None, limit=None, offset=0)
        assert '"Node Type": "Sort"' not in plan, plan
        plan = _cursor_plan(db, "stream_results", workflow_id=wf, job_id=None, limit=None, offset=0)
        assert '"Node Type": "Sort"' not in plan, plan
    assert "jobs_workflow_id_idx" in _cursor_plan(db, "stream_jobs", workflow_id=late, run_id=1, status=None,
                                                  limit=None, offset=0)
    assert "results_workflow_id_idx" in _cursor_plan(db, "stream_results", workflow_id=late, job_id=None,
                                                     limit=None, offset=0)


def test_stream_reads_every_row_in_order_in_one_transaction(db):
    wf = create(db, _sweep(5000))
    rows = db.stream("stream_jobs", itersize=700, workflow_id=wf, run_id=1, status=None, limit=None, offset=0)
    first = next(rows)
    assert db.conn.info.transaction_status.name == "INTRANS"       # the cursor lives in a read transaction
    ids = [first["id"]] + [r["id"] for r in rows]
    assert len(ids) == 5000 and ids == sorted(ids)
    assert db.conn.info.transaction_status.name == "IDLE"          # and it ended with the loop
    page = list(db.stream("stream_jobs", workflow_id=wf, run_id=1, status="ready", limit=10, offset=4990))
    assert [r["name"] for r in page] == [f"j_{i:06d}" for i in range(4991, 5001)]


def test_job_rows_name_their_latest_attempts_logs(db):
    wf = create(db, {"name": "w", "jobs": [{"name": "a", "command": "true"}, {"name": "b", "command": "true"}]})
    ids = {r["name"]: r["id"] for r in db.all("list_jobs", workflow_id=wf, status=None)}
    db.conn.execute("INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status) "
                    "VALUES (%s, %s, 1, 1, 3, 'failed'), (%s, %s, 1, 2, 0, 'completed')",
                    (wf, ids["a"], wf, ids["a"]))
    rows = {r["name"]: r for r in db.stream("stream_jobs", workflow_id=wf, run_id=1, status=None, limit=None,
                                             offset=0)}
    assert (rows["a"]["log_run_id"], rows["a"]["log_attempt_id"]) == (1, 2)
    assert rows["b"]["log_attempt_id"] is None


def test_last_and_job_names_resolve(db):
    with pytest.raises(NotFound, match="no workflow yet"):
        ops.resolve_workflow(db, "last")
    first = create(db, {"name": "one", "jobs": [{"name": "7", "command": "true"}, {"name": "x", "command": "true"}]})
    second = create(db, {"name": "two", "jobs": [{"name": "x", "command": "true"}]})
    assert ops.resolve_workflow(db, "last") == second and ops.resolve_workflow(db, f" {first} ") == first
    with pytest.raises(NotFound, match="'sweep' is not a workflow"):
        ops.resolve_workflow(db, "sweep")
    x = ops.resolve_job(db, first, "x")
    assert x["name"] == "x" and ops.resolve_job(db, first, str(x["id"]))["id"] == x["id"]
    assert ops.resolve_job(db, first, "7")["name"] == "7"      # digits that are no id of this workflow: a name
    with pytest.raises(NotFound, match="has no job 'nope'"):
        ops.resolve_job(db, first, "nope")
    with pytest.raises(NotFound):
        ops.resolve_job(db, second, str(x["id"]))                # another workflow's job id is not ours


def test_unfinished_workflow_of_the_same_file_is_found_by_path_and_content(db, tmp_path):
    spec = tmp_path / "wf.yaml"
    spec.write_text("name: w\njobs:\n  - {name: a, command: 'true'}\n")
    assert ops.unfinished_from_spec(db, spec) == []
    wf = ops.create_from_file(db, spec)
    assert [w["id"] for w in ops.unfinished_from_spec(db, spec)] == [wf]
    spec.write_text("name: w\njobs:\n  - {name: a, command: 'false'}\n")       # other content: not the same
    assert ops.unfinished_from_spec(db, spec) == []
    spec.write_text("name: w\njobs:\n  - {name: a, command: 'true'}\n")
    db.conn.execute("UPDATE jobs SET status = 'completed' WHERE workflow_id = %s", (wf,))
    assert ops.unfinished_from_spec(db, spec) == []                             # finished: not in the way


def test_failure_reads_use_the_partial_index(db):
    wf = create(db, _sweep(2000))
    db.conn.execute("""INSERT INTO events (workflow_id, job_id, kind, attempt_id, run_id)
                       SELECT workflow_id, id, 'claimed', 1, 1 FROM jobs WHERE workflow_id = %s""", (wf,))
    db.conn.execute("ANALYZE events")
    for name, params in (("failure_events_after", {"after_id": 0, "limit": 50}),
                         ("recent_failure_events", {"limit": 5}),
                         ("report_failure_events", {"limit": 1000})):
        plan = "\n".join(r["QUERY PLAN"] for r in db.conn.execute("EXPLAIN " + q(name),
                                                                    {"workflow_id": wf, **params}))
        assert "events_failures_idx" in plan, (name, plan)


def test_failure_report_names_jobs_decisions_and_stderr(db, tmp_path):
    wf = db.create_workflow(expanded({"name": "w", "jobs": [{"name": f"j{i}", "command": "x"} for i in range(12)]}),
                            spec_path=None, working_dir=str(tmp_path))
    jobs = db.all("list_jobs", workflow_id=wf, status=None)
    for j in jobs:
        db.conn.execute("UPDATE jobs SET status = 'failed', return_code = 3 WHERE id = %s", (j["id"],))
        db.conn.execute("INSERT INTO results (workflow_id, job_id, run_id, attempt_id, return_code, status) "
                        "VALUES (%s, %s, 1, 1, 3, 'failed')", (wf, j["id"]))
        db.event(wf, "failed", job_id=j["id"], attempt_id=1, run_id=1,
                 detail={"return_code": 3, "reason": "exit code 3 and no failure handler"})
    stderr = tmp_path / "torc_output" / "job_stdio" / f"job_wf{wf}_j{jobs[0]['id']}_r1_a1.e"
    stderr.parent.mkdir(parents=True)
    stderr.write_text("".join(f"line {i}\n" for i in range(20)) + "Error: \x1b[31mboom\x1b[0m\n")
    s = ops.summary(db, wf)
    f = s["failures"]
    assert f["total"] == 12 and len(f["jobs"]) == 10
    first = f["jobs"][0]
    assert first["decision"] == "failed: exit code 3 and no failure handler"
    assert first["stderr_tail"].splitlines() == ["line 16", "line 17", "line 18", "line 19",
                                                 "Error: \ufffd[31mboom\ufffd[0m"]
    assert f["jobs"][1]["stderr_tail"] is None                      # no file: said, not invented
    steps = [x["command"] for x in ops.next_steps(s)]
    assert steps[0] == f"torc logs {wf} j0"
    assert f"torc workflows reset-status {wf} --failed-only && torc run {wf}" in steps
