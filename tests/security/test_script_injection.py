"""No value a user supplies ever becomes code in an sbatch script.

A corpus of hostile values (shell metacharacters, quotes, `#`, spaces, unicode) goes into every field that
reaches the script; the rendered script must pass `bash -n`, and running it must not run any planted
command. Values with newlines or other control characters are refused before anything is written, with an
error naming the field and where the value came from (the command line, the spec's slurm_schedulers, the
stored watch_state.submit_options).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from torc_hpc.core.allocation import Shape
from torc_hpc.slurm import allocations as allocs
from torc_hpc.slurm import script as scripts
from torc_hpc.slurm.script import ScriptValueError
from tests.helpers import create


def planted(marker: Path) -> list[str]:
    """Values that would create `marker` if any reached a shell unquoted."""
    m = str(marker)
    return [f"x; touch {m}", f"$(touch {m})", f"`touch {m}`", f"'; touch {m}; '", f'"; touch {m}; "',
            f"x #; touch {m}", f"a b && touch {m}", f"é ü 漢字 $(touch {m})", f"x\\'; touch {m} #",
            f"${{IFS}}touch${{IFS}}{m}", f"x | touch {m}", f"x > {m}", f"x' \"$(touch {m})\" '"]


def _render(tmp_path: Path, value: str, out_dir: Path) -> str:
    opts = allocs.SubmitOptions(account=value, partition=value, qos=value, gres=value,
                                extra=f"--comment={scripts.quote(value)} --constraint {scripts.quote(value)}")
    req = allocs.AllocationRequest(scheduler=value, account=opts.account, partition=opts.partition,
                                   shape=Shape(nodes=1, cpus_per_node=1, mem_mb_per_node=100, walltime_s=60),
                                   qos=opts.qos, gres=opts.gres, extra=scripts.check_options(
                                       __import__("shlex").split(opts.extra), "extra", "test"))
    url = f"host=127.0.0.1 dbname='{value.replace(chr(39), '')}' user=x"
    _, values = allocs.script_values(7, 3, req, opts, out_dir, url)
    return scripts.render(scripts.default_template(), values)


def test_hostile_values_stay_data(tmp_path):
    marker = tmp_path / "owned"
    for i, value in enumerate(planted(marker)):
        out_dir = tmp_path / f"out {i} $(touch {marker})" / "slurm"
        text = _render(tmp_path, value, out_dir)
        script = tmp_path / f"s{i}.sh"
        script.write_text(text)
        check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert check.returncode == 0, f"bash -n refused the script for {value!r}: {check.stderr}\n{text}"
        # Run it: the worker line fails at once outside an allocation (no SLURM_JOB_ID); nothing else runs.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert not marker.exists(), f"a planted command ran for {value!r}:\n{text}"
        # Every #SBATCH line is one line, starting with the directive.
        lines = [ln for ln in text.splitlines() if ln.startswith("#SBATCH")]
        assert len(lines) == 14, text


@pytest.mark.parametrize("bad", ["acct\ntouch /tmp/owned", "a\rb", "a\x00b", "a\x1b[2Jb", "a\u2028b",
                                 "a\u202eb", "a\u200bb", "a\x85b", "a\tb"])
@pytest.mark.parametrize("field", ["account", "partition", "qos", "gres", "walltime", "mem", "extra", "template"])
def test_control_characters_from_the_command_line_are_refused(field, bad):
    value = f"--comment={bad}" if field == "extra" else bad
    with pytest.raises(ScriptValueError) as e:
        allocs.SubmitOptions(**{field: value})
    msg = str(e.value)
    assert "from the command line" in msg and ("--sbatch-args" if field == "extra" else f"--{field}") in msg


def test_extra_arguments_cannot_replace_the_script_or_the_user():
    for extra in ("--uid=0", "--wrap='touch /tmp/x'", "--gid 0", "touch /tmp/x", "--bad!name=x"):
        with pytest.raises(ScriptValueError):
            allocs.SubmitOptions(extra=extra)


def test_spec_and_stored_values_are_checked_naming_their_source(db, tmp_path):
    from torc_hpc.watch import cycle

    wf = create(db, {"name": "s", "slurm_schedulers": [{"name": "big", "account": "acct", "walltime": "01:00:00"}],
                     "jobs": [{"name": "a", "command": "true", "scheduler": "big"}]}, working_dir=str(tmp_path))
    # A value that reached the table some other way (psql, an older torc): refused when it would be used.
    db.conn.execute("UPDATE slurm_schedulers SET account = %s WHERE workflow_id = %s", ("acct\ntouch /x", wf))

    class Shapes:  # only the partition's node shape is asked before the values are checked
        def partition_shape(self, partition):
            raise AssertionError("checked after the values")

    with pytest.raises(ScriptValueError) as e:
        allocs.plan_requests(db, wf, allocs.SubmitOptions(), Shapes(), 1)
    assert "slurm_schedulers entry 'big'" in str(e.value) and "account" in str(e.value)

    db.run("save_submit_options", workflow_id=wf, options=Jsonb({"qos": "q\n$(touch /x)"}))
    db.run("ensure_watch_state", workflow_id=wf)
    state = db.one("get_watch_state", workflow_id=wf)
    with pytest.raises(ScriptValueError) as e:
        cycle._submit_options(db, wf, cycle.WatchConfig(), state)
    assert "watch_state.submit_options" in str(e.value) and "--qos" in str(e.value)


def test_worker_url_names_the_owner_and_never_a_password():
    url = allocs.worker_url("postgresql://watcher:s3cret@db.example:5433/torc?sslmode=require&sslkey=/root/k",
                            "alice", same_role=False)
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    assert params["user"] == "alice" and "password" not in params and "sslkey" not in params
    assert params["host"] == "db.example" and params["port"] == "5433" and params["sslmode"] == "require"
    assert "s3cret" not in url


def test_cli_refuses_hostile_settings_before_writing_and_names_their_source(torc):
    """Through the real CLI: an output directory or a Slurm setting with a newline, from the command line, the
    environment or the config file, is refused before the workflow is created, naming where it came from."""
    torc.write("wf.yaml", "name: w\njobs:\n  - {name: a, command: 'true'}\n")
    hostile = "out\ntouch /tmp/owned"
    cfg = torc.write("torc.toml", '[slurm]\naccount = "acct\\ntouch /tmp/owned"\n')
    cases = [
        ({}, ["submit-slurm", "wf.yaml", "--account", "a", "-o", hostile], "--output-dir from the command line"),
        # also where Slurm's tools are missing: the value is refused first, not "no Slurm here"
        ({"TORC_NO_SLURM": "1"}, ["submit-slurm", "wf.yaml", "--account", "a", "-o", hostile],
         "--output-dir from the command line"),
        ({}, ["run", "wf.yaml", "-o", hostile], "--output-dir from the command line"),
        ({}, ["workflows", "create", "wf.yaml", "-o", hostile], "--output-dir from the command line"),
        ({"TORC_OUTPUT_DIR": hostile}, ["workflows", "create", "wf.yaml"], "TORC_OUTPUT_DIR from the environment"),
        ({"TORC_SLURM_PARTITION": "p\nq"}, ["submit-slurm", "wf.yaml", "--account", "a"],
         "TORC_SLURM_PARTITION from the environment"),
        ({"TORC_CONFIG": str(cfg)}, ["submit-slurm", "wf.yaml"], f"slurm.account from the config file {cfg}"),
        ({"TORC_CONFIG": str(cfg)}, ["workflows", "plan", "wf.yaml"], f"slurm.account from the config file {cfg}"),
    ]
    for env, args, source in cases:
        saved = dict(torc.env)
        torc.env.update(env)
        try:
            proc = torc(*args, check=False)
        finally:
            torc.env = saved
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert source in proc.stderr and "control character" in proc.stderr, (args, proc.stderr)
    assert torc.json("workflows", "list") == []        # nothing was created
