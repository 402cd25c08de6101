"""One worker serving several workflows of its owner (issue 11 item 5, the worker's side):
`torc worker --workflows 3,7,9` and `torc worker --all-mine`. Real `torc worker` processes, real jobs."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg

from tests.conftest import wait_for

SPEC = textwrap.dedent("""
    name: wf_{tag}
    jobs:
      - {{name: "j_{{i}}", command: "bash -c 'pwd > where_$TORC_JOB_NAME.txt; echo $TORC_WORKFLOW_ID $TORC_WORKER_ID'",
          parameters: {{i: "1:{n}"}}}}
    """)


def _create(torc, tag: str, n: int = 4, spec: str | None = None) -> tuple[int, Path]:
    """A workflow created from its own directory (its working directory), like a person would."""
    d = torc.cwd / tag
    d.mkdir()
    (d / "wf.yaml").write_text(spec or SPEC.format(tag=tag, n=n))
    proc = subprocess.run([sys.executable, "-m", "torc_hpc.cli.app", "workflows", "create", "wf.yaml",
                           "--format", "json"], cwd=d, env=torc.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["id"], d


def _q(url: str, sql: str, *args):
    with psycopg.connect(url, autocommit=True) as c:
        cur = c.execute(sql, args)
        return cur.fetchall() if cur.description else None


def test_a_worker_serves_several_workflows_each_job_in_its_own_directory(torc):
    made = [_create(torc, tag) for tag in ("a", "b", "c")]
    ids = [wf for wf, _ in made]
    proc = torc("worker", "--workflows", ",".join(map(str, ids)), "-j", "2", "--idle-timeout", "10")
    assert "stopped (done)" in proc.stdout and "'completed': 12" in proc.stdout, proc.stdout
    rows = _q(torc.url, "SELECT id, workflow_id, pid, token, stop_reason FROM workers ORDER BY workflow_id")
    assert [r[1] for r in rows] == ids and len({r[2] for r in rows}) == 1 and len({r[3] for r in rows}) == 1
    assert {r[4] for r in rows} == {"done"}
    worker_of = {r[1]: r[0] for r in rows}
    for wf, d in made:
        for i in range(1, 5):
            assert (d / f"where_j_{i}.txt").read_text().strip() == str(d)   # ran in its own workflow's directory
        outs = sorted((d / "torc_output" / "job_stdio").glob(f"job_wf{wf}_*.o"))
        assert len(outs) == 4   # its logs in its own output directory
        assert {tuple(o.read_text().split()) for o in outs} == {(str(wf), str(worker_of[wf]))}   # its TORC_* values
    # every job was claimed, and its result recorded, under the worker's row for its own workflow
    bad = _q(torc.url, "SELECT count(*) FROM results r JOIN workers k ON k.id = r.worker_id "
                       "WHERE k.workflow_id <> r.workflow_id")
    assert bad == [(0,)]


def test_claims_take_turns_between_the_workflows(db):
    """claim_jobs_multi: each workflow offers its head, and the offers are taken round-robin, starting at a
    different workflow on each claim."""
    from tests.helpers import create

    GIB = 1024**3
    wfs = [create(db, {"name": f"t{k}", "jobs": [{"name": "j_{i}", "command": "true", "parameters": {"i": "1:10"}}]})
           for k in range(3)]
    rows = [db.register_worker(wf, hostname="t", pid=1, num_cpus=64, num_gpus=0, memory_bytes=64 * GIB) for wf in wfs]
    serving = list(zip(wfs, rows))
    claim = {"cpus": 64, "gpus": 0, "memory": 64 * GIB, "limit": 6, "time_left_s": 10**6, "scheduler": None}
    got = db.finish(wfs[0], [], claim={**claim, "rotate": 0}, serving=serving)["claimed"]
    per = {wf: [j for j in got if j["workflow_id"] == wf] for wf in wfs}
    assert [len(v) for v in per.values()] == [2, 2, 2]
    assert all(j["claimed_by"] == dict(serving)[j["workflow_id"]] for j in got)
    firsts = set()
    for rotate in range(3):
        one = db.finish(wfs[0], [], claim={**claim, "limit": 1, "rotate": rotate}, serving=serving)["claimed"]
        firsts.add(one[0]["workflow_id"])
    assert firsts == set(wfs)   # each claim starts at another workflow
    owners = _rows(db, "SELECT DISTINCT e.worker_id, j.workflow_id FROM events e JOIN jobs j ON j.id = e.job_id "
                       "WHERE e.kind = 'claimed'")
    assert owners == {(w, wf) for wf, w in serving}


def _rows(db, sql):
    return {tuple(r.values()) for r in db.conn.execute(sql).fetchall()}


def test_all_mine_serves_workflows_with_ready_jobs_also_ones_created_meanwhile(torc):
    gate = torc.cwd / "gate"
    first, _ = _create(torc, "first", spec=textwrap.dedent(f"""
        name: first
        jobs:
          - {{name: slow, command: "while [ ! -e {gate} ]; do sleep 0.05; done"}}
        """))
    done_before, _ = _create(torc, "finished", n=1)
    torc("run", str(done_before))   # nothing ready: not served
    proc = torc.popen("worker", "--all-mine", "-j", "2", "--idle-timeout", "20")
    try:
        wait_for(lambda: _q(torc.url, "SELECT count(*) FROM jobs WHERE status = 'running'")[0][0] == 1,
                 what="the slow job running")
        later, _ = _create(torc, "later", n=3)   # created while the worker runs
        gate.touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    counts = dict(_q(torc.url, "SELECT workflow_id, count(*) FILTER (WHERE status = 'completed') FROM jobs GROUP BY 1"))
    assert counts == {first: 1, done_before: 1, later: 3}
    served = {r[0] for r in _q(torc.url, "SELECT workflow_id FROM workers WHERE token IN "
                                         "(SELECT token FROM workers WHERE workflow_id = %s)", first)}
    assert served == {first, later}   # the finished workflow had nothing ready: no row for it


def test_a_worker_refuses_workflows_that_are_not_its_owners(torc):
    mine, _ = _create(torc, "mine", n=1)
    theirs, _ = _create(torc, "theirs", n=1)
    _q(torc.url, "UPDATE workflows SET owner = 'someone_else' WHERE id = %s", theirs)
    proc = torc("worker", "--workflows", f"{mine},{theirs}", check=False)
    assert proc.returncode == 3 and f"workflow(s) {theirs} do not exist or are not yours" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _q(torc.url, "SELECT count(*) FROM workers") == [(0,)]   # nothing registered


def test_canceling_one_served_workflow_stops_only_its_jobs(torc):
    slow = textwrap.dedent("""
        name: {tag}
        jobs:
          - {{name: "s_{{i}}", command: "sleep {secs}", parameters: {{i: "1:2"}}}}
        """)
    keep, _ = _create(torc, "keep", spec=slow.format(tag="keep", secs=4))
    stop, _ = _create(torc, "stop", spec=slow.format(tag="stop", secs=60))
    proc = torc.popen("worker", "--workflows", f"{keep},{stop}", "-j", "4", "--idle-timeout", "20")
    try:
        wait_for(lambda: _q(torc.url, "SELECT count(*) FROM jobs WHERE status = 'running'")[0][0] == 4,
                 what="four running jobs")
        torc("workflows", "cancel", str(stop))
        t0 = time.monotonic()
        wait_for(lambda: _q(torc.url, "SELECT count(*) FROM jobs WHERE workflow_id = %s AND status = 'running'",
                            stop)[0][0] == 0, timeout=30, what="the canceled workflow's jobs stopped")
        stopped_in = time.monotonic() - t0
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    status = dict(_q(torc.url, "SELECT workflow_id || ':' || status::text, count(*) FROM jobs GROUP BY 1"))
    assert status == {f"{keep}:completed": 2, f"{stop}:terminated": 2}, status
    assert stopped_in < 15   # at the next heartbeat (10 s), not when the others end
    reasons = dict(_q(torc.url, "SELECT workflow_id, stop_reason FROM workers"))
    assert reasons == {keep: "done", stop: "workflow_canceled"}
