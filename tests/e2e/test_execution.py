"""What the worker does with Torc's stored fields at spawn and exit, through the real CLI and processes:
env, invocation_script, labels, declared outputs (156), stdio modes with delete_on_success, GPU devices."""

import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

from tests.e2e.test_run import jobs, run_json


def write(torc, name, body):
    return torc.write(name, textwrap.dedent(body))


def test_env_invocation_script_and_interpreter_on_path(torc):
    write(torc, "wrap.sh", """\
        #!/usr/bin/env bash
        echo "wrapped: $*" > "wrapped_$TORC_JOB_NAME.txt"
        exec "$@"
        """).chmod(0o755)
    bindir = torc.cwd / "mybin"
    bindir.mkdir()
    (bindir / "only_here").write_text("#!/bin/sh\necho only_here ran > only_here.txt\n")
    (bindir / "only_here").chmod(0o755)
    write(torc, "wf.yaml", f"""\
        name: env
        env: {{WF_VAR: from-workflow, SHARED: workflow}}
        jobs:
          - name: plain
            command: bash -c 'echo "$WF_VAR $SHARED $TORC_JOB_NAME" > plain.txt; command -v torc > which.txt; command -v python3 > python.txt; torc user-data --help > help.txt'
          - name: own
            env: {{SHARED: job, JOB_VAR: "1"}}
            command: bash -c 'echo "$WF_VAR $SHARED $JOB_VAR" > own.txt'
          - name: wrapped
            invocation_script: ./wrap.sh
            command: touch wrapped_ran
          - name: prologue
            invocation_script: "export FROM_PROLOGUE=yes\\n"
            command: bash -c 'echo "$FROM_PROLOGUE" > prologue.txt'
          - name: own_path
            env: {{PATH: "{bindir}:/usr/bin:/bin"}}
            command: only_here
        """)
    rc, s = run_json(torc, "wf.yaml")
    assert rc == 0, s
    cwd = torc.cwd
    assert (cwd / "plain.txt").read_text().split() == ["from-workflow", "workflow", "plain"]
    assert (cwd / "own.txt").read_text().split() == ["from-workflow", "job", "1"]
    # a `torc` running the worker's own torc comes first on PATH (`torc user-data …` works without activating
    # torc's virtualenv), and nothing else of that virtualenv shadows the user's programs
    assert Path((cwd / "which.txt").read_text().strip()) == cwd / "torc_output" / "bin" / "torc"
    assert "user-data" in (cwd / "help.txt").read_text()
    assert (cwd / "python.txt").read_text().strip() == (shutil.which("python3", path=torc.env["PATH"]) or "")
    assert (cwd / "wrapped_wrapped.txt").read_text().strip() == "wrapped: touch wrapped_ran"
    assert (cwd / "wrapped_ran").exists()
    assert (cwd / "prologue.txt").read_text().strip() == "yes"
    assert (cwd / "only_here.txt").exists()   # found on the job's own PATH, not the worker's


def test_labels_route_jobs_to_matching_runs(torc):
    write(torc, "wf.yaml", """\
        name: labels
        jobs:
          - name: cpu_job
            command: touch cpu_done
          - name: gpu_job
            label: gpu
            command: touch gpu_done
          - name: after
            depends_on: [gpu_job]
            command: touch after_done
        """)
    rc, s = run_json(torc, "wf.yaml")
    assert rc == 1 and s["ready_for_other_labels"] == ["gpu"], s
    cwd = torc.cwd
    assert (cwd / "cpu_done").exists() and not (cwd / "gpu_done").exists()
    table = torc("run", "last", check=False)
    assert "--label gpu" in table.stdout, table.stdout
    rc, s = run_json(torc, "last", "--label", "gpu")
    assert (cwd / "gpu_done").exists()
    assert not (cwd / "after_done").exists()       # unlabeled: not for the gpu run
    rc, s = run_json(torc, "last")
    assert rc == 0 and (cwd / "after_done").exists(), s


def test_missing_declared_output_fails_with_156_through_handlers(torc):
    write(torc, "wf.yaml", """\
        name: outputs
        files:
          - {name: good_out, path: good.txt}
          - {name: bad_out, path: never_written.txt}
          - {name: also_bad, path: sub/also.txt}
        failure_handlers:
          - name: again
            rules: [{exit_codes: [156], max_retries: 2}]
        jobs:
          - name: writer
            command: bash -c 'echo hi > good.txt'
            output_files: [good_out]
          - name: liar
            command: "true"
            output_files: [bad_out, also_bad]
            failure_handler: again
          - name: reader
            command: cat good.txt
            input_files: [good_out]
        """)
    rc, s = run_json(torc, "wf.yaml")
    assert rc == 1
    js = jobs(torc, s["workflow_id"])
    assert js["writer"]["status"] == "completed" and js["reader"]["status"] == "completed"
    assert js["liar"]["status"] == "failed" and js["liar"]["return_code"] == 156
    attempts = [r for r in torc.json("results", "list", "last") if r["job_name"] == "liar"]
    assert [r["return_code"] for r in attempts] == [156, 156]          # retried once by its handler
    err = torc("logs", "last", "liar", "--stderr").stdout
    assert "never_written.txt" in err and "sub/also.txt" in err and "156" in err
    events = [e for e in torc.json("events", "list", "last") if e["job_name"] == "liar" and e["kind"] == "failed"]
    assert "never_written.txt" in events[-1]["detail"]["message"], events


def test_stdio_modes_and_delete_on_success(torc):
    write(torc, "wf.yaml", """\
        name: stdio
        execution_config: {stdio: {mode: combined}}
        jobs:
          - {name: comb, command: "bash -c 'echo out; echo err >&2'"}
          - {name: sep, command: "bash -c 'echo out; echo err >&2'", stdio: {mode: separate}}
          - {name: noout, command: "bash -c 'echo out; echo err >&2'", stdio: {mode: no_stdout}}
          - {name: noerr, command: "bash -c 'echo out; echo err >&2'", stdio: {mode: no_stderr}}
          - {name: quiet, command: "bash -c 'echo out; echo err >&2'", stdio: {mode: none}}
          - {name: tidy, command: "bash -c 'echo out; echo err >&2'", stdio: {mode: separate, delete_on_success: true}}
          - {name: tidy_fail, command: "bash -c 'echo out; echo err >&2; exit 3'",
             stdio: {mode: separate, delete_on_success: true}}
        """)
    rc, s = run_json(torc, "wf.yaml")
    assert rc == 1
    d = torc.cwd / "torc_output" / "job_stdio"
    by = {j["name"]: j for j in torc.json("jobs", "list", "last")}

    def files(name):
        stem = f"job_wf{s['workflow_id']}_j{by[name]['id']}_r1_a1"
        return sorted(p.name.removeprefix(stem) for p in d.glob(stem + ".*"))

    assert files("comb") == [".log"]
    assert sorted((d / f"job_wf{s['workflow_id']}_j{by['comb']['id']}_r1_a1.log").read_text().split()) == ["err", "out"]
    assert files("sep") == [".e", ".o"]
    assert files("noout") == [".e"] and files("noerr") == [".o"]
    assert files("quiet") == [] and files("tidy") == [] and files("tidy_fail") == [".e", ".o"]
    # listings know which files exist
    assert by["comb"]["logs"]["stdout"] == by["comb"]["logs"]["stderr"] and by["comb"]["logs"]["stdout"].endswith(".log")
    assert by["quiet"]["logs"]["stdout"] is None and "none" in by["quiet"]["logs"]["not_kept"]["stdout"]
    assert by["noout"]["logs"]["stdout"] is None and by["noout"]["logs"]["stderr"].endswith(".e")
    assert "deleted" in by["tidy"]["logs"]["not_kept"]["stderr"]
    assert "not_kept" not in by["tidy_fail"]["logs"]
    # torc logs says so instead of failing on a missing file
    out = torc("logs", "last", "quiet")
    assert "not kept" in out.stderr and "none" in out.stderr
    out = torc("logs", "last", "tidy")
    assert "deleted" in out.stderr
    assert sorted(torc("logs", "last", "comb").stdout.split()) == ["err", "out"]
    assert torc("logs", "last", "noout", "--stderr").stdout.strip() == "err"
    info = json.loads(torc("logs", "last", "quiet", "--format", "json").stdout)
    assert info["stdio_mode"] == "none" and info["not_kept"]


def test_mcp_job_logs_says_when_a_log_was_not_kept(torc, db):
    from torc_hpc import job_ops
    from torc_hpc.errors import NotFound

    write(torc, "wf.yaml", """\
        name: stdio
        jobs:
          - {name: quiet, command: "echo hi", stdio: {mode: none}}
          - {name: comb, command: "echo hi", stdio: {mode: combined}}
        """)
    rc, s = run_json(torc, "wf.yaml")
    by = {j["name"]: j["id"] for j in torc.json("jobs", "list", "last")}
    try:
        job_ops.job_logs(db, by["quiet"], stream="stdout")
        raise AssertionError("expected NotFound")
    except NotFound as e:
        assert "not kept" in str(e) and "none" in str(e)
    got = job_ops.job_logs(db, by["comb"], stream="stdout")
    assert got["text"] == "hi" and got["path"].endswith(".log")


def test_gpu_jobs_never_share_a_device(torc):
    """Jobs record the devices they got and when they held them. Two jobs whose time windows overlap must
    hold disjoint devices, and each job its requested number of distinct ones. Pool: 4 devices through
    CUDA_VISIBLE_DEVICES (no GPU here); -j 3 runs three jobs at once, asking 1 or 2 devices each, so an
    allocator handing out the same device twice is caught."""
    write(torc, "gpu.sh", """\
        #!/usr/bin/env bash
        start=$(date +%s.%N)
        sleep 0.3
        end=$(date +%s.%N)
        echo "$TORC_JOB_NAME $1 $CUDA_VISIBLE_DEVICES $start $end" >> gpu_log.txt
        """).chmod(0o755)
    jobs_yaml = "\n".join(
        f"  - {{name: g{i}, command: './gpu.sh {1 + i % 2}', resource_requirements: {{num_gpus: {1 + i % 2}}}}}"
        for i in range(12))
    write(torc, "wf.yaml", "name: gpus\njobs:\n" + jobs_yaml + "\n")
    torc.env["CUDA_VISIBLE_DEVICES"] = "0,1,2,3"
    rc, s = run_json(torc, "wf.yaml", "-j", "2")
    assert rc == 0, s
    rows = []
    for line in (torc.cwd / "gpu_log.txt").read_text().splitlines():
        name, want, devices, start, end = line.split()
        devs = devices.split(",")
        assert len(devs) == int(want) == len(set(devs)), line
        assert set(devs) <= {"0", "1", "2", "3"}, line
        rows.append((name, set(devs), float(start), float(end)))
    assert len(rows) == 12
    overlapping = 0
    for i, (n1, d1, s1, e1) in enumerate(rows):
        for n2, d2, s2, e2 in rows[i + 1:]:
            if s1 < e2 and s2 < e1:
                overlapping += 1
                assert not (d1 & d2), f"{n1} and {n2} ran at the same time on {d1 & d2}"
    assert overlapping >= 3, "jobs did not run concurrently: the test proves nothing"


def test_one_worker_applies_each_served_workflows_own_settings(torc, db):
    """A worker serving two workflows: each job gets its own workflow's env, stdio mode, output check and
    monitoring; the plain workflow gets none of the other's."""
    from tests.e2e.test_multi_workflow_worker import _create

    fancy, fancy_dir = _create(torc, "fancy", spec=textwrap.dedent("""\
        name: fancy
        env: {FLAVOUR: fancy}
        execution_config: {limit_resources: false, stdio: {mode: combined}}
        resource_monitor: {sample_interval_seconds: 1, jobs: {enabled: true}}
        files: [{name: out, path: never.txt}]
        jobs:
          - {name: f1, command: "bash -c 'echo ${FLAVOUR:-none} > flavour.txt; sleep 1.5'"}
          - {name: f2, command: "true", output_files: [out]}
        """))
    plain, plain_dir = _create(torc, "plain", spec=textwrap.dedent("""\
        name: plain
        jobs:
          - {name: p1, command: "bash -c 'echo ${FLAVOUR:-none} > flavour.txt; sleep 1.5'"}
        """))
    torc("worker", "--workflows", f"{fancy},{plain}", "-j", "3", "--idle-timeout", "10")
    assert (fancy_dir / "flavour.txt").read_text().strip() == "fancy"
    assert (plain_dir / "flavour.txt").read_text().strip() == "none"
    assert sorted(p.suffix for p in (fancy_dir / "torc_output" / "job_stdio").glob("job_*")) == [".log", ".log"]
    assert sorted(p.suffix for p in (plain_dir / "torc_output" / "job_stdio").glob("job_*")) == [".e", ".o"]
    status = {r["name"]: (r["status"], r["return_code"]) for r in db.all("list_jobs", workflow_id=fancy, status=None)}
    assert status == {"f1": ("completed", 0), "f2": ("failed", 156)}
    monitored = {r["job_name"] for r in db.all("attempt_resource_summaries", workflow_id=fancy, limit=10)}
    assert monitored == {"f1", "f2"}
    assert db.all("attempt_resource_summaries", workflow_id=plain, limit=10) == []
