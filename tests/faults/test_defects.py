"""One test per defect of issue 9 ("Faults"), each through the real CLI, real processes and a real
PostgreSQL. Each fails on the code before its fix (the defect is named in its docstring)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import wait_for
from tests.helpers import create, statuses
from torc_hpc.db import Database


def _jobs(torc, wf):
    return {j["name"]: j for j in torc.json("jobs", "list", wf)}


def _results(torc, wf):
    return torc.json("results", "list", wf)


def _events(torc, wf, kind=None):
    return [e for e in torc.json("events", "list", wf) if kind is None or e["kind"] == kind]


def _procs(*cmdline):
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == list(cmdline)]


def _kill_all(*cmdline):
    for p in _procs(*cmdline):
        p.kill()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_jobs_held_but_never_started_go_back_to_ready_after_kill_9(torc):
    """Item 1: a worker claims ahead of its slots; after kill -9 the held jobs were recorded terminated
    (154), lost a retry and canceled their dependents. Now: ready, same attempt, no result, no cascade."""
    torc.write("wf.yaml", textwrap.dedent("""
        name: held
        jobs:
          - {name: "j_{i}", command: "echo $TORC_JOB_NAME >> started.txt; exec sleep 71", parameters: {i: "1:3"}}
          - {name: "after_{i}", command: "true", depends_on: ["j_{i}"], parameters: {i: "1:3"}}
        """))
    wf = torc.json("workflows", "create", "wf.yaml")["id"]
    proc = torc.popen("run", wf, "-j", "1")
    try:
        wait_for(lambda: _lines(torc.cwd / "started.txt"), what="a started job")
        with Database(torc.url) as db:   # one started, and at least one held beyond the single slot
            wait_for(lambda: db.status_counts(wf)["running"] >= 2, what="a held job")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        _kill_all("sleep", "71")
    started = _lines(torc.cwd / "started.txt")
    assert len(started) == 1
    j = _jobs(torc, wf)   # the next command repairs
    ran = started[0]
    assert j[ran]["status"] == "terminated" and j[ran]["return_code"] == 154
    held = [n for n in ("j_1", "j_2", "j_3") if n != ran]
    for n in held:
        assert j[n]["status"] == "ready" and j[n]["attempt_id"] == 1, j[n]
        assert j[n.replace("j_", "after_")]["status"] == "blocked"
    assert [r["job_name"] for r in _results(torc, wf)] == [ran]
    released = _events(torc, wf, "released")
    assert released and {e["job_name"] for e in released} <= set(held)
    assert "start journal" in json.dumps(released[0]["detail"])


def test_a_worker_that_gives_up_on_the_database_leaves_the_same_truth(torc):
    """Item 1, second half: the database stays away past the reconnect window; the worker stops its jobs
    and exits. The started job is recorded (154), the held one goes back to ready."""
    torc.env["TORC_DB_RECONNECT_SECONDS"] = "0"
    torc.write("wf.yaml", textwrap.dedent("""
        name: dbgone
        jobs:
          - {name: "j_{i}", command: "echo $TORC_JOB_NAME >> started.txt; exec sleep 72", parameters: {i: "1:2"}}
        """))
    wf = torc.json("workflows", "create", "wf.yaml")["id"]
    proc = torc.popen("run", wf, "-j", "1")
    try:
        wait_for(lambda: _lines(torc.cwd / "started.txt"), what="a started job")
        with Database(torc.url) as db:
            wait_for(lambda: db.status_counts(wf)["running"] >= 2, what="a held job")
        import psycopg

        with psycopg.connect(torc.url, autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND application_name = 'torc'")
        out, err = proc.communicate(timeout=60)
    finally:
        _kill_all("sleep", "72")
    assert proc.returncode != 0 and "Traceback" not in err
    ran = _lines(torc.cwd / "started.txt")[0]
    j = _jobs(torc, wf)
    other = "j_2" if ran == "j_1" else "j_1"
    assert j[ran]["status"] == "terminated" and j[ran]["return_code"] == 154
    assert j[other]["status"] == "ready" and j[other]["attempt_id"] == 1
    assert [r["job_name"] for r in _results(torc, wf)] == [ran]


def test_status_runs_no_user_code_and_a_recovery_script_runs_at_most_once(torc):
    """Items 2 and 3: after the worker died while a recovery script ran, each `workflows status` ran the
    orphan's script again (several at once). Now status runs nothing; the next runs see the claim of the
    dead worker and do not run it again: the job awaits a decision (pending_failed)."""
    torc.write("wf.yaml", textwrap.dedent("""
        name: rec
        failure_handlers:
          - name: h
            rules: [{exit_codes: [10], recovery_script: "echo $TORC_ATTEMPT_ID >> rec.log; sleep 73", max_retries: 3}]
        jobs:
          - {name: flaky, command: "exit 10", failure_handler: h}
          - {name: child, command: "true", depends_on: [flaky]}
        """))
    wf = torc.json("workflows", "create", "wf.yaml")["id"]
    proc = torc.popen("run", wf)
    try:
        wait_for(lambda: _lines(torc.cwd / "rec.log"), what="the recovery script")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        statuses_ = [torc.popen("workflows", "status", wf) for _ in range(3)]
        for p in statuses_:
            p.communicate(timeout=60)
            assert p.returncode in (0, 1)
        assert _lines(torc.cwd / "rec.log") == ["1"], "a status command ran user code"
        runs = [torc.popen("run", wf, "--format", "json") for _ in range(3)]
        for p in runs:
            p.communicate(timeout=90)
    finally:
        _kill_all("sleep", "73")
    assert _lines(torc.cwd / "rec.log") == ["1"]
    j = _jobs(torc, wf)
    assert j["flaky"]["status"] == "pending_failed" and j["child"]["status"] == "blocked"
    (ev,) = [e for e in _events(torc, wf, "pending_failed") if (e["detail"] or {}).get("recovery_interrupted")]
    assert "at most once" in ev["detail"]["reason"]


def test_concurrent_runners_run_an_orphans_recovery_script_once(db, db_url, tmp_path):
    """Item 2: an orphan waiting on its recovery script (recorded, script not started), four runners at once:
    the script runs exactly once and the job is retried once."""
    from torc_hpc.core.states import JobStatus
    from torc_hpc.db.repo import Attempt, finish_step
    from torc_hpc.reconcile import reconcile

    log = tmp_path / "ran.log"
    wf = create(db, {"name": "orph", "failure_handlers": [{"name": "h", "rules": [
        {"exit_codes": [10], "max_retries": 3, "recovery_script": f"echo x >> {log}; sleep 1"}]}],
        "jobs": [{"name": "a", "command": "exit 10", "failure_handler": "h"}]}, working_dir=str(tmp_path))
    wid = db.register_worker(wf, hostname="elsewhere", pid=1, num_cpus=1, num_gpus=0, memory_bytes=2**30)
    (job,) = db.claim(wf, wid, cpus=1, gpus=0, memory=2**30, limit=1)
    attempt = Attempt(job["id"], job["run_id"], 1, wid, return_code=10, started_at=job["started_at"])
    db.finish(wf, [finish_step("recovering", attempt, attempt_status=JobStatus.FAILED)])
    with db.conn.transaction():
        db.one("mark_worker_lost", worker_id=wid, reason="lost")
    reports = []

    def runner():
        with Database(db_url) as mine:
            reports.append(reconcile(mine, wf, run_recoveries=True))

    threads = [threading.Thread(target=runner) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert _lines(log) == ["x"]
    assert sum(r["recoveries_run"] for r in reports) == 1
    (row,) = db.all("list_jobs", workflow_id=wf, status=None)
    assert row["status"] == "ready" and row["attempt_id"] == 2


def test_a_hanging_recovery_script_is_killed_at_its_time_limit(torc):
    """Item 4: a recovery script that hangs kept `torc run` waiting forever. Now its rule's
    recovery_timeout kills its process group; the recovery fails and the event says so."""
    torc.write("wf.yaml", textwrap.dedent("""
        name: hang
        failure_handlers:
          - name: h
            rules: [{exit_codes: [10], recovery_script: "sleep 74 & sleep 75", recovery_timeout: 2, max_retries: 3}]
        jobs:
          - {name: stuck, command: "exit 10", failure_handler: h}
        """))
    start = time.monotonic()
    try:
        proc = torc("run", "wf.yaml", "--format", "json", check=False, timeout=60)
    finally:
        leftovers = _procs("sleep", "74") + _procs("sleep", "75")
        _kill_all("sleep", "74")
        _kill_all("sleep", "75")
    assert time.monotonic() - start < 45
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert not leftovers, "the recovery script's process group outlived its time limit"
    wf = json.loads(proc.stdout.strip().splitlines()[-1])["workflow_id"]
    assert _jobs(torc, wf)["stuck"]["status"] == "failed"
    (ev,) = _events(torc, wf, "recovery_failed")
    assert ev["detail"]["timed_out"] is True and "2 s" in ev["detail"]["reason"]


def test_an_orphans_recovery_script_is_bounded_too(tmp_path):
    """Item 4 for scripts run outside a worker: the group is killed at the limit and the time-out reported."""
    from torc_hpc.db.repo import Attempt
    from torc_hpc.reconcile import run_recovery_here

    wf = {"id": 1, "working_dir": str(tmp_path), "output_dir": "out"}
    start = time.monotonic()
    try:
        rc, timed_out = run_recovery_here(wf, {"id": 5, "name": "x"}, Attempt(5, 1, 1, None, return_code=10),
                                          "sleep 76 & sleep 77", timeout_s=1)
        leftovers = _procs("sleep", "76")
    finally:
        _kill_all("sleep", "76")
    assert timed_out == 1 and rc != 0 and time.monotonic() - start < 10
    assert not leftovers


def test_log_files_that_cannot_be_created_fail_that_job_not_the_worker(torc):
    """Item 6: a deleted output directory crashed the worker (traceback, jobs left running). Now the job
    that cannot get its log files fails with a result and an event saying why; the run ends cleanly."""
    torc.write("wf.yaml", textwrap.dedent("""
        name: nologs
        jobs:
          - {name: wipe, command: "rm -rf torc_output"}
          - {name: victim, command: "true", depends_on: [wipe]}
        """))
    proc = torc("run", "wf.yaml", "--format", "json", check=False, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    wf = json.loads(proc.stdout.strip().splitlines()[-1])["workflow_id"]
    j = _jobs(torc, wf)
    assert j["wipe"]["status"] == "completed"
    assert j["victim"]["status"] == "failed" and j["victim"]["return_code"] == 127
    assert not [x for x in j.values() if x["status"] == "running"]
    (ev,) = _events(torc, wf, "failed")
    assert "could not start" in ev["detail"]["start_error"]
    assert [r["return_code"] for r in _results(torc, wf) if r["job_name"] == "victim"] == [127]


def test_an_unusable_output_directory_is_one_clear_error_and_creates_nothing(torc):
    """Item 6, at start: no workflow row for a run whose logs cannot be written."""
    torc.write("wf.yaml", "name: ro\njobs:\n  - {name: a, command: 'true'}\n")
    proc = torc("run", "wf.yaml", "--output-dir", "/dev/null/logs", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "cannot write job logs" in proc.stderr + proc.stdout and "nothing was created" in proc.stderr + proc.stdout
    assert torc.json("workflows", "list") == []


def test_a_zombie_worker_is_dead(db):
    """Item 7: a killed but unreaped worker process counted as alive, so nothing was repaired."""
    import socket

    from torc_hpc.reconcile import reconcile

    zombie = subprocess.Popen(["sleep", "78"])
    try:
        zombie.send_signal(signal.SIGKILL)
        wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, what="a zombie")
        wf = create(db, {"name": "z", "jobs": [{"name": "a", "command": "true"}]})
        db.register_worker(wf, hostname=socket.gethostname(), pid=zombie.pid, num_cpus=1, num_gpus=0,
                           memory_bytes=2**30)
        assert reconcile(db, wf)["lost_workers"] == 1
    finally:
        zombie.wait()


def test_a_job_larger_than_the_machine_is_reported_and_the_run_ends(torc):
    """Item 9: a job asking for more CPUs than the machine has (but within the prefetch budget) was claimed
    and showed `running 1` forever. Now the run ends at once, names what the job needs and what the machine
    has, and does not suggest that `torc run WF` would continue."""
    cpus = os.cpu_count() * 2
    torc.write("wf.yaml", textwrap.dedent(f"""
        name: big
        jobs:
          - {{name: small, command: "true"}}
          - {{name: huge, command: "true", resource_requirements: {{num_cpus: {cpus}}}}}
          - {{name: after, command: "true", depends_on: [huge]}}
        """))
    proc = torc("run", "wf.yaml", "--format", "json", check=False, timeout=60)
    s = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 1
    assert s["counts"] == {"completed": 1, "ready": 1, "blocked": 1}
    assert s["unrunnable"] == ["huge"] and s["unrunnable_jobs"][0]["num_cpus"] == cpus
    assert s["capacity"]["cpus"] == os.cpu_count()
    assert not [x for x in s["next_steps"] if x["command"] == f"torc run {s['workflow_id']}"]
    table = torc("run", str(s["workflow_id"]), check=False, timeout=60).stdout
    assert f"huge needs {cpus} CPUs" in table and f"{os.cpu_count()} CPUs" in table


def test_an_interrupt_does_not_use_up_the_retries(torc):
    """Item 11: interrupted attempts keep their result but not count against max_retries."""
    torc.write("wf.yaml", textwrap.dedent("""
        name: budget
        failure_handlers:
          - name: h
            rules: [{exit_codes: [3], max_retries: 2}]
        jobs:
          - {name: a, command: "echo go > go.txt; [ $TORC_ATTEMPT_ID -gt 1 ] && exit 3; exec sleep 79", failure_handler: h}
          - {name: b, command: "true", depends_on: [a]}
        """))
    wf = torc.json("workflows", "create", "wf.yaml")["id"]
    proc = torc.popen("run", wf)
    try:
        wait_for(lambda: (torc.cwd / "go.txt").exists(), what="the job to start")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        _kill_all("sleep", "79")
    assert _jobs(torc, wf)["b"]["status"] == "blocked"
    torc("run", wf, check=False, timeout=60)
    r = sorted((x["attempt_id"], x["status"], x["return_code"]) for x in _results(torc, wf))
    # attempt 1 interrupted; 2 and 3 are the two tries max_retries: 2 allows
    assert r == [(1, "terminated", 143), (2, "failed", 3), (3, "failed", 3)]
    j = _jobs(torc, wf)
    assert j["a"]["status"] == "failed" and j["b"]["status"] == "canceled"


def test_a_jobs_leftover_processes_are_killed_when_it_ends(torc):
    """Item 13: processes a job left in its process group outlived it and the run."""
    torc.write("wf.yaml", "name: bg\njobs:\n  - {name: a, command: 'sleep 80 & echo started'}\n")
    try:
        proc = torc("run", "wf.yaml", check=False, timeout=60)
        time.sleep(0.2)
        leftovers = _procs("sleep", "80")
    finally:
        _kill_all("sleep", "80")
    assert proc.returncode == 0, proc.stderr
    assert not leftovers
