"""The first hour through the real CLI: logs by job name, `last`, end-of-run summaries with the failures and
the next commands, no duplicate workflow from a second `torc run SPEC`, plans that write nothing, the config
file, help that teaches, tables that fit 80 columns, and failure lines above the live progress on a terminal."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time

FLAKY = textwrap.dedent("""\
    #!/usr/bin/env bash
    # exits $1 until attempt $2, then succeeds; says which attempt it is on both streams
    echo "out of attempt $TORC_ATTEMPT_ID"
    echo "err of attempt $TORC_ATTEMPT_ID" >&2
    if [ "$TORC_ATTEMPT_ID" -lt "$2" ]; then echo "giving up with $1" >&2; exit "$1"; fi
    """)

SPEC = """\
name: ux
failure_handlers:
  - name: h
    rules: [{exit_codes: [10], max_retries: 3}]
jobs:
  - {name: flaky, command: ./flaky.sh 10 2, failure_handler: h}
  - {name: undecided, command: ./flaky.sh 7 99, failure_handler: h}
  - {name: broken, command: ./flaky.sh 3 99}
  - {name: after_broken, command: "true", depends_on: [broken]}
"""


def setup(torc, spec=SPEC, name="wf.yaml"):
    torc.write("flaky.sh", FLAKY, executable=True)
    return torc.write(name, spec)


def run_json(torc, *args):
    proc = torc("run", *args, "--format", "json", check=False)
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_logs_by_name_attempt_and_stream(torc):
    setup(torc)
    rc, s = run_json(torc, "wf.yaml")
    wf = s["workflow_id"]
    assert rc == 1
    out = torc("logs", "last", "flaky").stdout                       # latest attempt: stderr, then stdout
    assert out.index("==> stderr") < out.index("err of attempt 2") < out.index("==> stdout") \
        < out.index("out of attempt 2")
    assert torc("logs", str(wf), "flaky", "--attempt", "1", "--stderr").stdout == \
        "err of attempt 1\ngiving up with 10\n"
    assert torc("logs", "last", "flaky", "--stdout", "--tail", "1").stdout == "out of attempt 2\n"
    info = torc.json("logs", "last", "flaky", "--attempt", "1")
    assert (info["attempt_id"], info["run_id"], info["job_name"]) == (1, 1, "flaky")
    assert info["tails"]["stderr"].endswith("giving up with 10") and os.path.exists(info["logs"]["stderr"])
    job_id = info["job_id"]
    assert torc("logs", "last", str(job_id), "--stderr").stdout == "err of attempt 2\n"   # an id works too
    missing = torc("logs", "last", "nope", check=False)
    assert missing.returncode == 3 and "has no job 'nope'" in missing.stderr
    never = torc("logs", "last", "after_broken", check=False)
    assert never.returncode == 3 and "never ran" in never.stderr
    absent = torc("logs", "last", "flaky", "--attempt", "5", check=False)
    assert absent.returncode == 3 and "its attempts: run 1 attempt 2, run 1 attempt 1" in absent.stderr

    jobs = {j["name"]: j for j in torc.json("jobs", "list", "last")}
    assert jobs["flaky"]["logs"]["stderr"].endswith(f"job_wf{wf}_j{job_id}_r1_a2.e")
    assert os.path.exists(jobs["flaky"]["logs"]["stdout"]) and jobs["after_broken"]["logs"] is None
    attempts = torc.json("results", "list", "last", "--job", "flaky")
    assert [(r["attempt_id"], r["status"]) for r in attempts] == [(1, "failed"), (2, "completed")]
    assert all(os.path.exists(r["logs"]["stderr"]) for r in attempts)
    lines = torc("results", "list", "last", "--format", "jsonl", "--limit", "2", "--offset", "1").stdout.splitlines()
    assert len(lines) == 2 and all(json.loads(x)["job_name"] for x in lines)

    retry = torc("jobs", "retry", "last", "undecided")               # decide by name
    assert "ready again" in retry.stdout
    assert {j["name"]: j["status"] for j in torc.json("jobs", "list", "last")}["undecided"] == "ready"


def test_end_of_run_summary_names_failures_and_the_next_commands(torc):
    setup(torc)
    proc = torc("run", "wf.yaml", check=False)
    out = proc.stdout
    assert proc.returncode == 1
    wf = re.search(r"created workflow (\d+)", out).group(1)
    assert "2 job(s) failed, terminated or await a decision" in out
    assert re.search(r"✗ undecided \(id \d+\) pending_failed · exit 7 · attempt 1", out)
    assert "→ pending_failed: no rule matched exit code 7; awaiting a decision" in out
    assert re.search(r"✗ broken \(id \d+\) failed · exit 3", out) and "│ giving up with 3" in out
    assert f"torc logs {wf} undecided" in out and f"torc jobs retry {wf} undecided" in out
    assert f"torc workflows reset-status {wf} --failed-only && torc run {wf}" in out
    s = torc.json("workflows", "status", wf)
    assert s["failures"]["total"] == 2 and s["failures"]["jobs"][1]["stderr_tail"].endswith("giving up with 3")
    assert s["next_steps"][0] == {"command": f"torc logs {wf} undecided", "why": "stderr of its latest attempt"}


def test_a_second_run_of_the_same_file_names_the_unfinished_workflow(torc):
    setup(torc)
    rc, first = run_json(torc, "wf.yaml")
    again = torc("run", "wf.yaml", check=False)
    assert again.returncode == 1 and again.stdout == ""
    assert f"workflow {first['workflow_id']} (ux) was created from wf.yaml" in again.stderr
    assert "--new" in again.stderr and "reset-status" in again.stderr
    assert len(torc.json("workflows", "list")) == 1
    rc, second = run_json(torc, "wf.yaml", "--new")
    assert second["workflow_id"] != first["workflow_id"]
    setup(torc, SPEC.replace("max_retries: 3", "max_retries: 4"))    # other content: a new workflow, no question
    rc, third = run_json(torc, "wf.yaml")
    assert third["workflow_id"] not in (first["workflow_id"], second["workflow_id"])


def test_plan_and_dry_run_validate_and_write_nothing(torc):
    setup(torc, textwrap.dedent("""\
        name: plan
        failure_handlers: [{name: h, rules: [{exit_codes: [1], max_retries: 2}]}]
        jobs:
          - {name: prep, command: "true"}
          - name: sim_{i}
            command: "true"
            depends_on: [prep]
            failure_handler: h
            parameters: {i: "1:40"}
            resource_requirements: {num_cpus: 4, memory: 8g, runtime: PT2H}
          - {name: report, command: "true", depends_on: ["sim_{i}"], parameters: {i: "1:40"}}
        """))
    p = json.loads(torc("run", "wf.yaml", "--dry-run", "--format", "json").stdout)
    assert p["written"] is False and p["jobs"] == 42 and p["stages_total"] == 3
    assert [s["jobs"] for s in p["stages"]] == [1, 40, 1]
    assert p["cpu_hours"] == 1 + 40 * 4 * 2 + 1 and p["jobs_with_handlers"] == 40
    assert p["largest_job"]["num_cpus"] == 4
    table = torc("workflows", "plan", "wf.yaml", "--no-slurm").stdout
    assert "42 job(s)" in table and "sim_{i} ×40" in table and "nothing was written" in table
    assert torc.json("workflows", "list") == []
    torc.write("bad.yaml", "name: bad\njobs:\n  - {name: a, command: x, failure_handler: nope}\n")
    bad = torc("workflows", "plan", "bad.yaml", check=False)
    assert bad.returncode == 2 and "bad.yaml:3, job 'a', field 'failure_handler'" in bad.stderr


def test_config_file_precedence_and_no_password_shown(torc):
    cfg = torc.write("torc.toml", textwrap.dedent("""\
        database_url = "postgresql://me:s3cret@dbhost/torc"
        output_dir = "from_config"
        [slurm]
        account = "file_account"
        partition = "file_partition"
        """))
    env = {k: v for k, v in torc.env.items() if k != "TORC_DATABASE_URL"}
    env.update(TORC_CONFIG=str(cfg), TORC_SLURM_PARTITION="env_partition")
    proc = subprocess.run([sys.executable, "-m", "torc_hpc.cli.app", "config", "show", "--format", "json"],
                          cwd=torc.cwd, env=env, capture_output=True, text=True, check=True)
    assert "s3cret" not in proc.stdout
    shown = {s["key"]: (s["value"], s["source"]) for s in json.loads(proc.stdout)["settings"]}
    assert shown["database_url"] == ("postgresql://me@dbhost/torc", f"config {cfg}")
    assert shown["slurm.account"] == ("file_account", f"config {cfg}")
    assert shown["slurm.partition"] == ("env_partition", "env TORC_SLURM_PARTITION")
    assert shown["slurm.qos"] == (None, "default")
    table = subprocess.run([sys.executable, "-m", "torc_hpc.cli.app", "--database-url", "postgresql://a:pw@h/x",
                            "config", "show"], cwd=torc.cwd, env=env, capture_output=True, text=True, check=True)
    assert "pw@" not in table.stdout and re.search(r"database_url\s+postgresql://a@h/x\s+flag", table.stdout)
    # the config's output_dir is used (the database comes from TORC_DATABASE_URL, which wins over the file)
    torc.env["TORC_CONFIG"] = str(cfg)
    setup(torc, "name: c\njobs:\n  - {name: a, command: 'echo hi'}\n")
    rc, s = run_json(torc, "wf.yaml")
    assert rc == 0 and s["logs"] == str(torc.cwd / "from_config" / "job_stdio")
    bad = torc.write("bad.toml", "[slurm]\naccont = 'x'\n")
    torc.env["TORC_CONFIG"] = str(bad)
    err = torc("workflows", "list", check=False)
    assert err.returncode == 2 and f"{bad}: unknown key 'slurm.accont'" in err.stderr


def _commands(cmd, path=()):
    subs = getattr(cmd, "commands", None)
    if not subs:
        yield path, cmd
        return
    for name, sub in subs.items():
        yield from _commands(sub, path + (name,))


def test_help_describes_every_option_and_shows_an_example():
    from torc_hpc.cli.app import command

    missing, no_example = [], []
    for path, cmd in _commands(command()):
        if "Example" not in (cmd.help or ""):
            no_example.append(" ".join(path))
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "option" and not (p.help or "").strip():
                missing.append(f"{' '.join(path)} {p.opts[0]}")
    assert no_example == [] and missing == []


def test_help_has_no_bool_placeholders_and_fits_80_columns(torc):
    for args in (("--help",), ("run", "--help"), ("watch", "--help"), ("logs", "--help"), ("jobs", "list", "--help")):
        out = subprocess.run(
            [sys.executable, "-m", "torc_hpc.cli.app", *args], env=dict(torc.env, COLUMNS="80"),
            capture_output=True, text=True, check=True).stdout
        assert "<bool>" not in out and all(len(line) <= 80 for line in out.splitlines()), args


def test_tables_fit_80_columns_without_breaking_words(torc):
    names = ", ".join(f"{{name: a_really_quite_long_job_name_for_a_narrow_terminal_{i}, command: 'true'}}"
                      for i in range(3))
    setup(torc, f"name: narrow\njobs: [{names}]\n")
    run_json(torc, "wf.yaml")
    torc.env["COLUMNS"] = "80"
    for args in (("jobs", "list", "last"), ("results", "list", "last"), ("events", "list", "last"),
                 ("workflows", "list")):
        lines = torc(*args).stdout.splitlines()
        assert lines and all(len(line) <= 80 for line in lines), (args, lines)
    jobs = torc("jobs", "list", "last").stdout.splitlines()
    assert all(re.search(r"\bcompleted\b", line) for line in jobs[1:]) and all("…" in line for line in jobs[1:])
    wide = torc("jobs", "list", "last", "--wide").stdout.splitlines()     # every column, at its own width
    assert "command" in wide[0] and all(re.search(r"\bcompleted\b.*\btrue$", line) for line in wide[1:])
    wide = torc("workflows", "list", "--wide").stdout.splitlines()        # short listings too
    assert "canceled" in wide[0] and re.search(r"\bnarrow\b", wide[1]), wide


def test_errors_are_not_hard_wrapped_when_not_a_terminal(torc):
    setup(torc, "name: e\njobs:\n  - {name: a, command: 'true'}\n")
    run_json(torc, "wf.yaml")
    torc.env["COLUMNS"] = "40"
    name = "a_job_name_that_does_not_exist_and_is_long_enough_to_wrap_twice"
    err = torc("logs", "last", name, check=False).stderr
    assert err.count("\n") == 1 and name in err and "see `torc jobs list" in err


def test_failures_print_one_line_above_the_progress_on_a_terminal(torc):
    setup(torc, textwrap.dedent("""\
        name: tty
        failure_handlers: [{name: h, rules: [{exit_codes: [10], max_retries: 3}]}]
        jobs:
          - {name: flaky, command: "./flaky.sh 10 3", failure_handler: h}
          - {name: slow, command: "sleep 2"}
        """))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "torc_hpc.cli.app", "run", "wf.yaml"], cwd=torc.cwd,
                            env=dict(torc.env, COLUMNS="100", TERM="xterm"), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert proc.returncode == 0, text
    assert "✗ flaky attempt 1 exit 10 → retried: rule 1 matched exit code 10; attempt 1 of 3" in text
    assert "✗ flaky attempt 2 exit 10 → retried" in text
    assert "workflow" in text and "2 completed" in text


def test_logs_follow_prints_while_the_attempt_runs_and_stops_when_it_ends(torc):
    from tests.conftest import wait_for

    setup(torc, "name: follow\njobs:\n  - {name: ticker, command: 'for i in 1 2 3 4; do echo tick $i; sleep 0.7; done'}\n")
    runner = torc.popen("run", "wf.yaml", "--format", "json")
    try:
        wait_for(lambda: torc("jobs", "list", "last", "--format", "json", check=False).stdout.count('"running"'),
                 timeout=60, what="the job to start")
        follow = torc("logs", "last", "ticker", "--follow", "--stdout", timeout=60)
        assert follow.stdout.splitlines() == ["tick 1", "tick 2", "tick 3", "tick 4"]
    finally:
        runner.wait(timeout=60)
    assert runner.returncode == 0


def test_logs_recovery_shows_the_attempt_whose_recovery_script_ran(torc):
    """The recovery script runs after attempt N fails and writes recovery_…_aN; the job's latest attempt (N+1)
    has none, so `--recovery` without --attempt shows the latest attempt that has recovery logs."""
    setup(torc, textwrap.dedent("""\
        name: rec
        failure_handlers:
          - name: h
            rules: [{exit_codes: [10], recovery_script: "echo fixing after $TORC_ATTEMPT_ID", max_retries: 3}]
        jobs:
          - {name: flaky, command: ./flaky.sh 10 2, failure_handler: h}
        """))
    rc, s = run_json(torc, "wf.yaml")
    assert rc == 0 and s["counts"] == {"completed": 1}
    out = torc("logs", "last", "flaky", "--recovery", "--stdout").stdout
    assert out == "fixing after 1\n"
    info = torc.json("logs", "last", "flaky", "--recovery")
    assert info["attempt_id"] == 1 and info["tails"]["recovery_stdout"] == "fixing after 1"
    assert torc.json("logs", "last", "flaky")["attempt_id"] == 2          # the job's own logs: still the latest


def test_last_is_a_workflow_for_torc_worker_too(torc):
    setup(torc, "name: w\njobs:\n  - {name: a, command: 'echo hi'}\n")
    torc("workflows", "create", "wf.yaml")
    proc = torc("worker", "last", "--idle-timeout", "1", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [j["status"] for j in torc.json("jobs", "list", "last")] == ["completed"]
    bad = torc("worker", "first", check=False)
    assert bad.returncode != 0 and "'first' is not a workflow" in bad.stderr
