"""Torc's fields in PostgreSQL: what creation stores (files, user_data, datasets, actions, per-job and
per-workflow fields), the create-time check of input files, `torc user-data` as a job uses it, and the
pure pieces the worker will call (declared outputs, return code 156)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from torc_hpc.core.outputs import OUTPUT_MISSING, missing_outputs, missing_outputs_message
from torc_hpc.core.states import ExitCode
from torc_hpc.errors import SpecError
from torc_hpc.workflows import create_from_file

SPECS = Path(__file__).parent / "specs"


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """The corpus copied to a scratch directory that is also the working directory."""
    for p in SPECS.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy)(p, tmp_path / p.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _rows(db, sql: str, *params):
    return [dict(r) for r in db.conn.execute(sql, params).fetchall()]


def _one(db, sql: str, *params) -> dict:
    return _rows(db, sql, *params)[0]


def test_files_are_stored_with_readers_writers_and_edges(db, corpus):
    (corpus / "data").mkdir()
    (corpus / "data" / "seed.txt").write_text("seed\n")
    wf = create_from_file(db, corpus / "files_dag.yaml")
    files = {r["name"]: r["path"] for r in _rows(db, "SELECT name, path FROM files WHERE workflow_id = %s", wf)}
    assert files == {"seed": "data/seed.txt", "half_left": "out/half_left.txt", "half_right": "out/half_right.txt",
                     "joined": "out/joined.txt"}
    refs = {(r["job"], r["file"], r["direction"]) for r in _rows(db, """
        SELECT j.name AS job, f.name AS file, jf.direction FROM job_files jf
        JOIN jobs j ON j.id = jf.job_id JOIN files f ON f.id = jf.file_id WHERE jf.workflow_id = %s""", wf)}
    assert ("split", "seed", "input") in refs and ("split", "half_left", "output") in refs
    assert ("join", "half_right", "input") in refs and ("join", "joined", "output") in refs
    edges = {(r["p"], r["c"]) for r in _rows(db, """
        SELECT p.name AS p, c.name AS c FROM job_dependencies d JOIN jobs p ON p.id = d.parent_id
        JOIN jobs c ON c.id = d.child_id WHERE d.workflow_id = %s""", wf)}
    assert edges == {("split", "polish_left"), ("split", "polish_right"), ("split", "join")}
    split = _one(db, "SELECT id, command FROM jobs WHERE workflow_id = %s AND name = 'split'", wf)
    assert "cp data/seed.txt out/half_left.txt" in split["command"]
    outputs = db.all("job_output_paths", job_id=split["id"])
    assert [(r["name"], r["path"]) for r in outputs] == [("half_left", "out/half_left.txt"),
                                                         ("half_right", "out/half_right.txt")]


def test_missing_input_file_is_refused_at_create_and_nothing_is_written(db, corpus):
    with pytest.raises(SpecError) as e:
        create_from_file(db, corpus / "files_external_input.yaml")
    msg = str(e.value)
    assert "input file 'config' (inputs/settings.ini) does not exist" in msg and "job 'render'" in msg
    assert e.value.problems[0].line == 5 and e.value.problems[0].field == "files[0].path"
    assert _one(db, "SELECT count(*) AS n FROM workflows")["n"] == 0
    (corpus / "inputs").mkdir()
    (corpus / "inputs" / "settings.ini").write_text("[x]\n")
    assert create_from_file(db, corpus / "files_external_input.yaml")


def test_stored_fields_and_show(db, corpus, torc):
    wf = create_from_file(db, corpus / "stored_fields.yaml")
    d = db.one("workflow_details", workflow_id=wf)
    assert (d["project"], d["spec_user"], d["metadata"]) == ("compat-suite", "someone_else",
                                                              {"owner_team": "research", "revision": 3})
    assert d["owner"] != "someone_else"  # the spec's user never owns anything
    wrapped = _one(db, "SELECT invocation_script, label, stdio_mode, env FROM jobs WHERE workflow_id = %s "
                   "AND name = 'wrapped'", wf)
    assert wrapped["invocation_script"].startswith("bash -c") and wrapped["stdio_mode"] is None
    assert _one(db, "SELECT label FROM jobs WHERE workflow_id = %s AND name = 'routed'", wf)["label"] == "special"
    shown = torc.json("workflows", "show", wf)
    assert shown["project"] == "compat-suite" and shown["spec_user"] == "someone_else"
    listed = torc.json("workflows", "list", "--project", "compat-suite")
    assert [w["id"] for w in listed] == [wf] and torc.json("workflows", "list", "--project", "other") == []


def test_env_stdio_and_slurm_fields_are_stored(db, corpus):
    os.makedirs("/tmp/torc-compat-vars", exist_ok=True)
    wf = create_from_file(db, corpus / "env_variables.yaml")
    env = {r["name"]: r["env"] for r in _rows(db, "SELECT name, env FROM jobs WHERE workflow_id = %s", wf)}
    assert env["make_1"] == {"STAGE": "v7", "SHARED": "from_job"}
    assert env["make_table"] is None  # the workflow's env alone: workflows.env
    assert _one(db, "SELECT env FROM workflows WHERE id = %s", wf)["env"] == {"STAGE": "v7", "SHARED": "from_workflow"}
    wf = create_from_file(db, corpus / "stdio.yaml")
    stdio = {r["name"]: (r["stdio_mode"], r["delete_stdio_on_success"])
             for r in _rows(db, "SELECT name, stdio_mode, delete_stdio_on_success FROM jobs WHERE workflow_id = %s", wf)}
    assert stdio == {"normal": ("combined", True), "chatty": ("none", True), "keep_err": ("no_stdout", False)}
    wf = create_from_file(db, corpus / "scheduler_fields_slurm.yaml")
    sched = {r["name"]: r for r in db.all("list_slurm_schedulers", workflow_id=wf)}
    assert (sched["scratchy"]["tmp"], sched["scratchy"]["ntasks_per_node"]) == ("10G", 4)
    assert sched["chain"]["serialize_allocations"] is True
    assert db.one("workflow_slurm_defaults", workflow_id=wf)["slurm_defaults"] == {
        "account": "torc_test", "mail-type": "END", "constraint": "cpu"}


def test_actions_are_stored_with_the_jobs_they_wait_for(db, corpus):
    wf = create_from_file(db, corpus / "actions.yaml")
    acts = db.all("list_actions", workflow_id=wf)
    assert [(a["trigger_type"], a["selected_count"]) for a in acts] == [
        ("on_workflow_start", 0), ("on_jobs_ready", 3), ("on_jobs_complete", 1), ("on_workflow_complete", 0)]
    assert acts[0]["config"]["commands"] == ["mkdir -p out", "echo started > out/log.txt"]
    waits = sorted(r["name"] for r in _rows(db, """
        SELECT j.name FROM action_jobs aj JOIN jobs j ON j.id = aj.job_id
        JOIN workflow_actions a ON a.id = aj.action_id WHERE a.workflow_id = %s AND a.position = 1""", wf))
    assert waits == ["step_1", "step_2", "step_3"]


def test_user_data_get_set_from_a_job_and_ephemeral_reset(db, corpus, torc):
    wf = create_from_file(db, corpus / "user_data.yaml")
    assert torc.json("user-data", "get", wf, "defaults")["data"] == {"threads": 2, "mode": "fast"}
    tune = _one(db, "SELECT id FROM jobs WHERE workflow_id = %s AND name = 'tune'", wf)["id"]
    # Inside a job: the workflow comes from TORC_WORKFLOW_ID, the writer from TORC_JOB_ID.
    torc.env.update(TORC_WORKFLOW_ID=str(wf), TORC_JOB_ID=str(tune))
    torc("user-data", "set", "knobs", "--data", '{"threads": 4}')
    torc("user-data", "update", "defaults", "--data", '{"threads": 8}')
    assert json.loads(torc("user-data", "get", "knobs").stdout) == {"threads": 4}
    row = db.one("get_user_data", workflow_id=wf, name="knobs")
    assert row["updated_by_job"] == tune and row["updated_at"] is not None
    events = _rows(db, "SELECT job_id, detail FROM events WHERE workflow_id = %s AND kind = 'user_data_set'", wf)
    assert [(e["job_id"], e["detail"]["name"]) for e in events] == [(tune, "knobs"), (tune, "defaults")]
    bad = torc("user-data", "set", "knobs", "--data", "{not json", check=False)
    assert bad.returncode == 1 and "--data must be JSON" in bad.stderr
    missing = torc("user-data", "get", "nope", check=False)
    assert missing.returncode == 1 and "has no user_data 'nope'" in missing.stderr and "knobs" in missing.stderr
    db.reset_status(wf, failed_only=False)  # ephemeral values return to their spec value, others stay
    assert db.one("get_user_data", workflow_id=wf, name="defaults")["data"] == {"threads": 2, "mode": "fast"}
    assert db.one("get_user_data", workflow_id=wf, name="knobs")["data"] == {"threads": 4}
    del torc.env["TORC_WORKFLOW_ID"]
    lost = torc("user-data", "get", "knobs", check=False)
    assert lost.returncode == 1 and "TORC_WORKFLOW_ID" in lost.stderr


def test_kdl_and_json5_specs_create_like_yaml(db, corpus):
    (corpus / "data").mkdir()
    (corpus / "data" / "seed.txt").write_text("seed\n")
    counts = []
    for name in ("files_dag.yaml", "files_dag.json5", "files_dag.kdl"):
        wf = create_from_file(db, corpus / name)
        counts.append((_one(db, "SELECT count(*) AS n FROM job_dependencies WHERE workflow_id = %s", wf)["n"],
                       _one(db, "SELECT count(*) AS n FROM job_files WHERE workflow_id = %s", wf)["n"]))
    assert len(set(counts)) == 1 and counts[0][0] == 3


@pytest.mark.parametrize("exists, missing", [({"/w/out/a.txt", "/abs/b.txt"}, []),
                                              ({"/w/out/a.txt"}, [("b", "/abs/b.txt")]),
                                              (set(), [("a", "out/a.txt"), ("b", "/abs/b.txt")])])
def test_missing_outputs_is_pure_and_relative_to_the_working_dir(exists, missing):
    declared = [("a", "out/a.txt"), ("b", "/abs/b.txt")]
    assert missing_outputs(declared, "/w", exists.__contains__) == missing


def test_missing_outputs_message_and_code():
    assert OUTPUT_MISSING == ExitCode.OUTPUT_MISSING == 156
    msg = missing_outputs_message([(f"f{i}", f"out/{i}") for i in range(12)])
    assert "12 declared output file(s)" in msg and "f0 (out/0)" in msg and "and 2 more" in msg and "156" in msg


def test_archive_keeps_and_delete_removes_torc_tables(db, corpus, tmp_path):
    from torc_hpc import retention

    (corpus / "data").mkdir()
    (corpus / "data" / "seed.txt").write_text("seed\n")
    wf = create_from_file(db, corpus / "files_dag.yaml")
    wf_ud = create_from_file(db, corpus / "user_data.yaml")
    wf_act = create_from_file(db, corpus / "actions.yaml")
    tables = ("files", "job_files", "user_data", "job_user_data", "workflow_actions", "action_jobs")
    sections: dict[str, list] = {}
    for w in (wf, wf_ud, wf_act):
        path = tmp_path / f"wf{w}.json"
        assert retention.archive_workflow(db, w, path).deleted
        for section, row in retention.read_archive(path):
            sections.setdefault(section, []).append(row)
    assert {t: len(sections.get(t, [])) for t in tables} == {"files": 4, "job_files": 8, "user_data": 2,
                                                             "job_user_data": 4, "workflow_actions": 4,
                                                             "action_jobs": 4}
    for t in tables:
        assert _one(db, f"SELECT count(*) AS n FROM {t}")["n"] == 0, t
