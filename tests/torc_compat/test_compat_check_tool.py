"""tools/torc_compat_check.py, run as a user runs it, on a directory with one good and two bad specs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "torc_compat_check.py"


def test_reports_per_file_per_format_and_fields(tmp_path):
    (tmp_path / "good.yaml").write_text("name: ok\njobs:\n  - {name: a, command: echo a}\n")
    (tmp_path / "bad.yaml").write_text(
        "name: bad\nnot_a_torc_key: p\njobs:\n  - {name: a, command: echo a, no_such_field: x}\n")
    (tmp_path / "bad.json").write_text('{"name": "b", "not_a_torc_key": "p", "jobs": [{"name": "a", "command": "x"}]}')
    out = subprocess.run([sys.executable, str(TOOL), str(tmp_path), "--json"],
                         capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout)
    by_name = {Path(f["path"]).name: f for f in report["files"]}
    assert by_name["good.yaml"]["accepted"] and by_name["good.yaml"]["jobs"] == 1
    assert not by_name["bad.yaml"]["accepted"]
    assert by_name["bad.yaml"]["first_error_field"] in ("not_a_torc_key", "jobs.no_such_field")
    assert by_name["bad.yaml"]["fields"] == ["jobs.no_such_field", "not_a_torc_key"]
    assert report["by_format"]["yaml"] == {"accepted": 1, "total": 2, "rate": 0.5}
    assert report["overall"]["accepted"] == 1 and report["overall"]["total"] == 3
    ranked = dict(map(tuple, report["any_problem_fields"]))
    assert ranked["not_a_torc_key"] == 2 and ranked["jobs.no_such_field"] == 1

    table = subprocess.run([sys.executable, str(TOOL), str(tmp_path)],
                           capture_output=True, text=True, timeout=120, check=True).stdout
    assert "ACCEPTED" in table and "REJECTED" in table and "1/3 (33 %)" in table


def test_run_mode_runs_accepted_specs_with_torc_run_and_says_why_they_failed(tmp_path, db_url):
    import os

    (tmp_path / "ok.yaml").write_text("name: ok\njobs:\n  - {name: a, command: echo a > a.txt}\n")
    (tmp_path / "missing.yaml").write_text("name: missing\njobs:\n  - {name: a, command: python3 no_such_script.py}\n")
    (tmp_path / "big.yaml").write_text("name: big\nresource_requirements:\n  - {name: huge, num_cpus: 4096}\n"
                                       "jobs:\n  - {name: a, command: 'true', resource_requirements: huge}\n")
    env = dict(os.environ, TORC_DATABASE_URL=db_url)
    out = subprocess.run([sys.executable, str(TOOL), str(tmp_path), "--json", "--run"], env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(out.stdout)
    runs = {Path(f["path"]).name: f["run"] for f in report["files"]}
    assert runs["ok.yaml"]["outcome"] == "completed" and runs["ok.yaml"]["counts"] == {"completed": 1}
    assert runs["big.yaml"]["outcome"] == "completed" and "-j 2" in runs["big.yaml"]["command"]
    assert runs["missing.yaml"]["outcome"] == "failed" and runs["missing.yaml"]["first_failed_job"] == "a"
    assert runs["missing.yaml"]["cause"] == "the example calls a program or file it does not ship"
    assert report["runs"]["without_slurm"]["completed"] == 2 and report["runs"]["without_slurm"]["total"] == 3
    assert not (tmp_path / "a.txt").exists()   # it ran in a temporary copy, not in place
