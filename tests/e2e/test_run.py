"""End to end through the real `torc` CLI and real processes: retries, recovery, pending_failed,
cancel cascade, reset, logs, Ctrl-C and kill -9."""

import json
import os
import signal
import textwrap
import time

import psutil

from torc_hpc.db import Database
from tests.conftest import wait_for

# Fails with exit code $1 until attempt $2, then succeeds; prints its environment for the checks.
FLAKY = textwrap.dedent("""\
    #!/usr/bin/env bash
    code=$1; ok_from=$2
    env | grep '^TORC_' | sort
    if [ "$TORC_ATTEMPT_ID" -lt "$ok_from" ]; then echo "failing with $code" >&2; exit "$code"; fi
    echo success
    """)
RECOVER = textwrap.dedent("""\
    #!/usr/bin/env bash
    echo "$TORC_JOB_NAME attempt=$TORC_ATTEMPT_ID rc=$TORC_RETURN_CODE out=$TORC_OUTPUT_DIR" >> recovered.txt
    exit ${RECOVERY_EXIT:-0}
    """)


def spec(torc, body: str, name="wf.yaml"):
    torc.write("flaky.sh", FLAKY, executable=True)
    torc.write("recover.sh", RECOVER, executable=True)
    return torc.write(name, textwrap.dedent(body))


def run_json(torc, target, *extra):
    proc = torc("run", target, "--format", "json", *extra, check=False)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def jobs(torc, wf):
    return {j["name"]: j for j in torc.json("jobs", "list", wf)}


def results(torc, wf):
    return torc.json("results", "list", wf)


def test_retry_with_recovery_script_until_success(torc):
    spec(torc, """
        name: retry
        failure_handlers:
          - name: h
            rules:
              - exit_codes: [10, 11]
                recovery_script: ./recover.sh
                max_retries: 3
        jobs:
          - name: sim
            command: ./flaky.sh 10 3
            failure_handler: h
          - name: after
            command: echo after
            depends_on: [sim]
        """)
    rc, summary = run_json(torc, "wf.yaml")
    assert rc == 0 and summary["all_completed"], summary
    wf = summary["workflow_id"]
    j = jobs(torc, wf)
    assert j["sim"]["status"] == "completed" and j["sim"]["attempt_id"] == 3
    assert j["after"]["status"] == "completed"
    sim = [r for r in results(torc, wf) if r["job_name"] == "sim"]
    assert [(r["attempt_id"], r["status"], r["return_code"]) for r in sim] == [
        (1, "failed", 10), (2, "failed", 10), (3, "completed", 0)]
    # tiny jobs peak below the worker's own footprint: their peak is unknown (None), never the worker's
    assert all(r["peak_memory_bytes"] is None or 0 < r["peak_memory_bytes"] < 50 * 2**20 for r in sim)
    assert all(r["cpu_time_s"] is not None for r in sim)
    stdio = torc.cwd / "torc_output" / "job_stdio"
    sim_id = j["sim"]["id"]
    for a in (1, 2, 3):
        assert (stdio / f"job_wf{wf}_j{sim_id}_r1_a{a}.o").exists()
        assert (stdio / f"job_wf{wf}_j{sim_id}_r1_a{a}.e").exists()
    assert (stdio / f"recovery_wf{wf}_j{sim_id}_r1_a1.o").exists()
    assert "failing with 10" in (stdio / f"job_wf{wf}_j{sim_id}_r1_a1.e").read_text()
    out3 = (stdio / f"job_wf{wf}_j{sim_id}_r1_a3.o").read_text()
    assert f"TORC_JOB_ID={sim_id}" in out3 and "TORC_ATTEMPT_ID=3" in out3 and f"TORC_WORKFLOW_ID={wf}" in out3
    assert "TORC_JOB_NAME=sim" in out3 and "TORC_OUTPUT_DIR=" in out3 and "TORC_API_URL=" in out3
    recovered = (torc.cwd / "recovered.txt").read_text().splitlines()
    assert [line.split()[1:3] for line in recovered] == [["attempt=1", "rc=10"], ["attempt=2", "rc=10"]]
    kinds = [e["kind"] for e in torc.json("events", "list", wf) if e["job_name"] == "sim"]
    assert kinds.count("retry") == 2 and kinds.count("claimed") == 3 and kinds[-1] == "completed"


def test_max_retries_exhausted_fails_and_cancels_dependents(torc):
    spec(torc, """
        name: exhaust
        failure_handlers:
          - name: h
            rules: [{exit_codes: [12], max_retries: 2}]
        jobs:
          - {name: a, command: ./flaky.sh 12 99, failure_handler: h}
          - {name: b, command: "true", depends_on: [a]}
          - {name: c, command: "true", depends_on: [b]}
          - {name: d, command: "true", depends_on: [a], cancel_on_blocking_job_failure: false}
        """)
    rc, summary = run_json(torc, "wf.yaml")
    assert rc == 1 and not summary["all_completed"]
    j = jobs(torc, summary["workflow_id"])
    assert j["a"]["status"] == "failed" and j["a"]["attempt_id"] == 2 and j["a"]["return_code"] == 12
    assert j["b"]["status"] == j["c"]["status"] == "canceled"
    assert j["d"]["status"] == "completed"


def test_recovery_script_failure_fails_the_job(torc):
    spec(torc, """
        name: recfail
        failure_handlers:
          - name: h
            rules: [{exit_codes: [10], recovery_script: ./recover.sh, max_retries: 5}]
        jobs:
          - {name: a, command: ./flaky.sh 10 99, failure_handler: h}
        """)
    torc.env["RECOVERY_EXIT"] = "3"
    rc, summary = run_json(torc, "wf.yaml")
    assert rc == 1
    wf = summary["workflow_id"]
    assert jobs(torc, wf)["a"]["status"] == "failed"
    assert len(results(torc, wf)) == 1
    assert any(e["kind"] == "recovery_failed" for e in torc.json("events", "list", wf))


def test_unmatched_exit_goes_pending_failed_then_a_person_decides(torc):
    spec(torc, """
        name: pending
        failure_handlers:
          - name: h
            rules: [{exit_codes: [10], max_retries: 3}]
        jobs:
          - {name: a, command: ./flaky.sh 1 2, failure_handler: h}
          - {name: b, command: "true", depends_on: [a]}
        """)
    rc, summary = run_json(torc, "wf.yaml")
    wf = summary["workflow_id"]
    assert rc == 1 and summary["counts"] == {"pending_failed": 1, "blocked": 1}
    j = jobs(torc, wf)
    assert j["b"]["status"] == "blocked"   # not canceled: the decision is still open
    torc("jobs", "retry", wf, j["a"]["id"])
    rc, summary = run_json(torc, str(wf))
    assert rc == 0 and summary["counts"] == {"completed": 2}
    assert jobs(torc, wf)["a"]["attempt_id"] == 2


def test_pending_failed_then_fail_cascades(torc):
    spec(torc, """
        name: pending2
        use_pending_failed: true
        jobs:
          - {name: a, command: "exit 4"}
          - {name: b, command: "true", depends_on: [a]}
        """)
    rc, summary = run_json(torc, "wf.yaml")
    wf = summary["workflow_id"]
    assert summary["counts"] == {"pending_failed": 1, "blocked": 1}
    torc("jobs", "fail", wf, jobs(torc, wf)["a"]["id"])
    j = jobs(torc, wf)
    assert j["a"]["status"] == "failed" and j["b"]["status"] == "canceled"


def test_no_handler_fails_immediately(torc):
    spec(torc, """
        name: plain
        jobs:
          - {name: a, command: "exit 4"}
          - {name: b, command: "true", depends_on: [a]}
        """)
    rc, summary = run_json(torc, "wf.yaml")
    assert rc == 1 and summary["counts"] == {"failed": 1, "canceled": 1}


def test_reset_failed_only_and_run_again(torc):
    spec(torc, """
        name: reset
        jobs:
          - {name: ok, command: "true"}
          - {name: once, command: "test -e fixed || exit 7"}
          - {name: after, command: "true", depends_on: [once]}
        """)
    rc, summary = run_json(torc, "wf.yaml")
    wf = summary["workflow_id"]
    assert summary["counts"] == {"completed": 1, "failed": 1, "canceled": 1}
    (torc.cwd / "fixed").touch()
    out = torc.json("workflows", "reset-status", wf, "--failed-only")
    assert out == {"id": wf, "run_id": 2, "reset": 2}
    rc, summary = run_json(torc, str(wf))
    assert rc == 0 and summary["run_id"] == 2
    j = jobs(torc, wf)
    assert j["once"]["attempt_id"] == 1
    assert (torc.cwd / "torc_output" / "job_stdio" / f"job_wf{wf}_j{j['once']['id']}_r2_a1.o").exists()
    runs = {(r["job_name"], r["run_id"]) for r in results(torc, wf)}
    assert ("ok", 2) not in runs and ("once", 1) in runs and ("once", 2) in runs


def test_bad_spec_writes_nothing(torc):
    torc.write("bad.yaml", "name: bad\njobs:\n  - name: a\n    command: x\n    failure_handler: nope\n")
    proc = torc("workflows", "create", "bad.yaml", check=False)
    assert proc.returncode == 2
    assert "bad.yaml:5" in proc.stderr and "job 'a'" in proc.stderr and "failure_handler" in proc.stderr
    assert torc.json("workflows", "list") == []


def _running(url, wf, n):
    with Database(url) as db:
        return db.status_counts(wf)["running"] >= n


def test_ctrl_c_stops_running_jobs_and_a_plain_run_resumes(torc):
    """Ctrl-C is not a failure of the job (issue 9, item 11): the attempt keeps a true result row
    (terminated, 143), the job goes back to ready, its dependents wait, and `torc run WF` carries on."""
    torc.write("wf.yaml", textwrap.dedent("""
        name: sigint
        jobs:
          - {name: "slow_{i}", command: "[ $TORC_ATTEMPT_ID -gt 1 ] || exec sleep 60", parameters: {i: "1:2"}}
          - {name: next, command: "true", depends_on: ["slow_1"]}
        """))
    wf = torc.json("workflows", "create", "wf.yaml")["id"]
    proc = torc.popen("run", wf, "--max-parallel-jobs", "2", "--format", "json")
    wait_for(lambda: _running(torc.url, wf, 2), what="two running jobs")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    j = jobs(torc, wf)
    assert j["slow_1"]["status"] == j["slow_2"]["status"] == "ready"
    assert j["slow_1"]["attempt_id"] == 2 and j["slow_1"]["return_code"] == 143
    assert j["next"]["status"] == "blocked"
    assert {(r["status"], r["return_code"]) for r in results(torc, wf)} == {("terminated", 143)}
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "60"]]
    code, summary = run_json(torc, wf)
    assert code == 0 and summary["counts"] == {"completed": 3}


def test_kill_9_worker_is_reconciled_by_next_command(torc):
    torc.write("wf.yaml", textwrap.dedent("""
        name: kill9
        failure_handlers:
          - name: lost
            rules: [{exit_codes: [154], max_retries: 2}]
        jobs:
          - {name: retried, command: "sleep 61", failure_handler: lost}
          - {name: plain, command: "sleep 62"}
        """))
    wf = torc.json("workflows", "create", "wf.yaml")["id"]
    proc = torc.popen("run", wf, "--max-parallel-jobs", "2")
    wait_for(lambda: _running(torc.url, wf, 2), what="two running jobs")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    j = jobs(torc, wf)   # the next command that touches the workflow repairs it
    assert j["retried"]["status"] == "ready" and j["retried"]["attempt_id"] == 2
    assert j["plain"]["status"] == "terminated" and j["plain"]["return_code"] == 154
    assert {(r["job_name"], r["status"], r["return_code"]) for r in results(torc, wf)} == {
        ("retried", "terminated", 154), ("plain", "terminated", 154)}
    time.sleep(0.3)
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] in (["sleep", "61"], ["sleep", "62"])]
    assert not leftovers, "the dead worker's job processes were left running"
    kinds = [e["kind"] for e in torc.json("events", "list", wf)]
    assert "worker_lost" in kinds


def test_cancel_from_another_terminal_stops_the_run(torc):
    torc.write("wf.yaml", textwrap.dedent("""
        name: cancel
        jobs:
          - {name: slow, command: "sleep 60"}
          - {name: later, command: "true", depends_on: [slow]}
        """))
    wf = torc.json("workflows", "create", "wf.yaml")["id"]
    proc = torc.popen("run", wf, "--format", "json")
    wait_for(lambda: _running(torc.url, wf, 1), what="a running job")
    torc("workflows", "cancel", wf)
    proc.communicate(timeout=40)
    assert proc.returncode == 1
    j = jobs(torc, wf)
    assert j["slow"]["status"] == "terminated" and j["later"]["status"] == "canceled"


def _kill_torc_backends(url) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True, application_name="test-killer") as c:
        return c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND application_name = 'torc'").fetchone()[0]


def test_a_database_restart_mid_run_is_survived(torc):
    torc.write("wf.yaml", textwrap.dedent("""
        name: restart
        jobs:
          - {name: "slow_{i}", command: "sleep 2", parameters: {i: "1:2"}}
          - {name: after, command: "true", depends_on: ["slow_1", "slow_2"]}
        """))
    wf = torc.json("workflows", "create", "wf.yaml")["id"]
    proc = torc.popen("run", wf, "--max-parallel-jobs", "2", "--format", "json")
    wait_for(lambda: _running(torc.url, wf, 2), what="two running jobs")
    assert _kill_torc_backends(torc.url) == 1   # the worker's one connection, as a restart would kill it
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["counts"] == {"completed": 3}
    assert len(results(torc, wf)) == 3


def test_losing_the_database_stops_jobs_and_the_next_command_repairs(torc):
    torc.env["TORC_DB_RECONNECT_SECONDS"] = "0"   # give up at once: the database stays away
    torc.write("wf.yaml", textwrap.dedent("""
        name: dblost
        jobs:
          - {name: "slow_{i}", command: "sleep 63", parameters: {i: "1:2"}}
          - {name: after, command: "true", depends_on: ["slow_1"]}
        """))
    wf = torc.json("workflows", "create", "wf.yaml")["id"]
    proc = torc.popen("run", wf, "--max-parallel-jobs", "2")
    wait_for(lambda: _running(torc.url, wf, 2), what="two running jobs")
    assert _kill_torc_backends(torc.url) == 1
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "lost the database" in err and "Traceback" not in err
    time.sleep(0.3)
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "63"]]
    j = jobs(torc, wf)   # the next command finds the dead worker and records its jobs
    assert j["slow_1"]["status"] == j["slow_2"]["status"] == "terminated"
    assert j["slow_1"]["return_code"] == 154 and j["after"]["status"] == "canceled"
