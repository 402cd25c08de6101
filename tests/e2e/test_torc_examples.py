"""The examples for Torc's fields run to completion with `torc run`: a DAG made only of files, a pipeline
passing JSON values between jobs with `torc user-data` (the CLI itself, inside the jobs: the worker puts a
`torc` first on the jobs' PATH), and a monitored job whose samples the report plots."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _copy_examples(torc) -> None:
    shutil.copytree(ROOT / "examples", torc.cwd / "examples")
    # jobs that call `torc` find it without this interpreter's directory on PATH: the worker provides it
    torc.env["PATH"] = os.pathsep.join(p for p in torc.env.get("PATH", "").split(os.pathsep)
                                       if p != os.path.dirname(sys.executable))


def test_files_dag_example_runs_in_file_order(torc):
    _copy_examples(torc)
    torc("run", "examples/yaml/files_dag.yaml", timeout=180)
    assert torc.json("workflows", "status", "last")["counts"] == {"completed": 4}
    counts = (torc.cwd / "torc_output/files_dag/report.txt").read_text().split()
    assert counts == ["23", "4"]  # chars then lines of the upper-cased words (cat of count_chars, count_lines)
    wf = torc.json("workflows", "list")[0]["id"]
    files = {f["name"]: (f["writers"], f["readers"]) for f in torc.json("workflows", "show", wf)["files"]}
    assert files == {"words": (0, 1), "upper": (1, 2), "count_lines": (1, 1), "count_chars": (1, 1),
                     "report": (1, 0)}


def test_user_data_pipeline_example_passes_values_between_jobs(torc):
    _copy_examples(torc)
    torc("run", "examples/yaml/user_data_pipeline.yaml", timeout=180)
    assert torc.json("workflows", "status", "last")["counts"] == {"completed": 3}
    wf = torc.json("workflows", "list")[0]["id"]
    assert torc.json("user-data", "get", wf, "result")["data"] == {"value": 35}
    values = {r["name"]: r for r in torc.json("user-data", "list", wf)}
    assert values["settings"]["data"] == {"scale": 5} and values["result"]["updated_by_job"] is not None


def test_actions_example_fires_each_action_once_in_order(torc):
    _copy_examples(torc)
    torc("run", "examples/yaml/actions_pipeline.yaml", timeout=180)
    assert torc.json("workflows", "status", "last")["counts"] == {"completed": 7}
    assert (torc.cwd / "work/log.txt").read_text().splitlines() == [
        "started", "raw data complete: 3 parts", "total 21 bytes"]
    import tarfile

    with tarfile.open(torc.cwd / "archive/raw.tar.gz") as t:
        assert sorted(t.getnames()) == ["work/raw_1.txt", "work/raw_2.txt", "work/raw_3.txt"]
    wf = torc.json("workflows", "list")[0]["id"]
    acts = torc.json("workflows", "show", wf)["actions"]
    assert [a["trigger_type"] for a in acts] == ["on_workflow_start", "on_jobs_ready", "on_jobs_complete",
                                                 "on_workflow_complete"]
    assert all(a["fired_at"] for a in acts)
    kinds = [e["kind"] for e in torc.json("events", "list", wf) if e["kind"].startswith("action_")]
    assert kinds == ["action_started", "action_completed"] * 4


def test_monitored_job_example_is_sampled_limited_and_plotted(torc):
    _copy_examples(torc)
    proc = torc("run", "examples/yaml/monitored_job.yaml", "-j", "3", "--format", "json", check=False, timeout=240)
    jobs = {j["name"]: j for j in torc.json("jobs", "list", "last")}
    assert jobs["ramp"]["status"] == jobs["steady"]["status"] == "completed", proc.stdout
    assert jobs["capped"]["status"] == "terminated" and jobs["capped"]["return_code"] == 137
    attempts = [r for r in torc.json("results", "list", "last") if r["job_name"] == "capped"]
    assert len(attempts) == 2                              # its handler retried it once, then gave up
    torc("report", "last", "-o", "report.html")
    html = (torc.cwd / "report.html").read_text()
    assert "<section id='monitoring'>" in html and "<script" not in html
    ramp = html[html.index("data-job='" + str(jobs["ramp"]["id"]) + "'"):]
    assert "<polyline class='mem'" in ramp[:ramp.index("</figure>")]
