"""Issue 14's acceptance corpus: small specs written for torc-hpc that use Torc's spec fields the way Torc's
documentation describes them (see docs/torc-compat.md), in YAML, JSON, JSON5 and KDL.

Each test validates and expands one spec with torc-hpc's spec layer (no database) and checks what came out.
Tests for features that do not exist yet are marked ``xfail(strict=True)``: they must fail today, and the day
a feature lands its tests XPASS, which fails the run until the marker is removed.

Every assumption about names the implementation will introduce sits in the accessors right below; if the
implementation picks other names, change them there, not in the tests.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from torc_hpc.errors import SpecError
from torc_hpc.spec import expand_workflow, load_spec

SPECS = Path(__file__).parent / "specs"


def todo(feature: str):
    return pytest.mark.xfail(strict=True, reason=f"issue 14: {feature} not implemented yet")


# ---- accessors: the only place that knows the (future) attribute names -------------------------------
def expand(name: str):
    """Load + validate + expand a corpus spec, resolving relative paths from the corpus directory."""
    with contextlib.chdir(SPECS):
        spec, locator = load_spec(SPECS / name, base_dir=SPECS)
        return expand_workflow(spec, locator, str(SPECS / name))


def rejection(name: str) -> str:
    with pytest.raises(SpecError) as info:
        expand(name)
    return str(info.value)


def job_names(wf) -> list[str]:
    return sorted(j.name for j in wf.jobs)


def edges(wf) -> set[tuple[str, str]]:
    return {(wf.jobs[p].name, wf.jobs[c].name) for p, c in wf.edges}


def job(wf, name: str):
    return next(j for j in wf.jobs if j.name == name)


def env_of(j) -> dict:          # merged workflow env + job env
    return dict(j.env or {})


def stdio_of(j) -> tuple[str, bool]:   # (mode, delete_on_success) after workflow/job resolution
    return j.stdio_mode, j.delete_stdio_on_success


def files_of(wf) -> dict[str, str]:    # expanded files: name -> path
    return {f.name: f.path for f in wf.files}


def external_inputs(wf) -> set[str]:   # files some job reads and no job writes (must exist at create)
    return set(wf.external_inputs)


def user_data_of(wf) -> dict:          # expanded user_data: name -> initial JSON value
    return {u.name: u.data for u in wf.user_data}


def actions_of(wf) -> list[dict]:      # resolved actions, in spec order
    return [{"trigger": a.trigger_type, "kind": a.action_type, "jobs": sorted(a.job_names),
             "commands": list(a.commands or []), "scheduler": a.scheduler,
             "allocations": a.num_allocations, "worker_per_node": a.start_one_worker_per_node}
            for a in wf.actions]


# ---- formats -----------------------------------------------------------------------------------------
def _basic_checks(wf):
    assert job_names(wf) == ["fetch", "summarize"]
    assert edges(wf) == {("fetch", "summarize")}
    assert job(wf, "fetch").failure_handler == "flaky"
    assert job(wf, "fetch").memory_bytes == 64 * 2**20


@pytest.mark.parametrize("name", ["basic.yaml", "basic.json"])
def test_basic_yaml_json(name):
    _basic_checks(expand(name))


def test_basic_json5_means_the_same():
    _basic_checks(expand("basic.json5"))


def test_basic_kdl_means_the_same():
    _basic_checks(expand("basic.kdl"))


def test_kdl_legacy_spellings():
    wf = expand("kdl_legacy_spellings.kdl")
    assert edges(wf) == {("a", "b"), ("b", "c"), ("a", "d"), ("c", "d")}
    assert job(wf, "a").cancel_on_blocking_job_failure is True


def test_json5_syntax_error_is_located(tmp_path):
    bad = tmp_path / "bad.json5"
    bad.write_text("{\n  name: 'x',\n  jobs: [\n    {name: 'a' command: 'b'},\n  ],\n}\n")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    p = info.value.problems[0]
    assert p.line == 4 and "JSON5" in p.message


def test_kdl_unknown_node_is_located(tmp_path):
    bad = tmp_path / "bad.kdl"
    bad.write_text('name "x"\njob "a" {\n    command "echo a"\n    comand "typo"\n}\n')
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    p = info.value.problems[0]
    assert p.line == 4 and p.job == "a" and "comand" in p.message and "YAML" not in p.message


# ---- dependencies and parameters that already work -------------------------------------------------------
def test_name_without_placeholder_is_one_job_waiting_for_all():
    wf = expand("union_fan_in.yaml")
    assert job_names(wf) == ["combine", "part_1", "part_2", "part_3"]
    assert edges(wf) == {(f"part_{k}", "combine") for k in (1, 2, 3)}


def test_dependency_regex_matches_anywhere():
    wf = expand("regex_search.yaml")
    assert edges(wf) == {("train_1", "gather"), ("train_2", "gather")}


# ---- files -------------------------------------------------------------------------------------------
FILES_DAG_EDGES = {("split", "polish_left"), ("split", "polish_right"), ("split", "join")}


def test_files_make_edges_yaml():
    wf = expand("files_dag.yaml")
    assert job_names(wf) == ["join", "polish_left", "polish_right", "split"]
    assert edges(wf) == FILES_DAG_EDGES
    assert files_of(wf)["half_left"] == "out/half_left.txt"
    assert "cp data/seed.txt out/half_left.txt" in job(wf, "split").command
    assert external_inputs(wf) == {"seed"}


def test_files_make_edges_json5():
    assert edges(expand("files_dag.json5")) == FILES_DAG_EDGES


def test_files_make_edges_kdl():
    assert edges(expand("files_dag.kdl")) == FILES_DAG_EDGES


def test_file_read_but_never_written_is_an_external_input():
    wf = expand("files_external_input.yaml")
    assert external_inputs(wf) == {"config"}
    assert job(wf, "render").command == "cat inputs/settings.ini > out/report.txt"


def test_declared_and_mentioned_files_are_unioned():
    wf = expand("files_declared_and_mentioned.yaml")
    assert edges(wf) == {("make_first", "finish"), ("make_extra", "finish")}
    assert sorted(job(wf, "finish").input_files) == ["extra", "first"]


# ---- user_data ---------------------------------------------------------------------------------------
def test_user_data_edges_and_references():
    wf = expand("user_data.yaml")
    assert edges(wf) == {("tune", "run_a"), ("tune", "run_b")}
    assert job(wf, "run_a").command == "torc user-data get knobs"
    assert user_data_of(wf) == {"knobs": None, "defaults": {"threads": 2, "mode": "fast"}}


def test_user_data_kdl():
    wf = expand("user_data.kdl")
    assert edges(wf) == {("tune", "run_a"), ("tune", "run_b")}
    assert user_data_of(wf)["defaults"] == {"threads": 2, "mode": "fast"}


def test_user_data_parameterized():
    wf = expand("user_data_parameterized.yaml")
    assert user_data_of(wf) == {"cfg_small": {"label": "small", "depth": 3},
                                "cfg_large": {"label": "large", "depth": 3}}
    assert job_names(wf) == ["use_large", "use_small"]


# ---- actions -----------------------------------------------------------------------------------------
ACTIONS_LOCAL = [
    {"trigger": "on_workflow_start", "kind": "run_commands", "jobs": [],
     "commands": ["mkdir -p out", "echo started > out/log.txt"], "scheduler": None, "allocations": None,
     "worker_per_node": None},
    {"trigger": "on_jobs_ready", "kind": "run_commands", "jobs": ["step_1", "step_2", "step_3"],
     "commands": ["echo steps ready >> out/log.txt"], "scheduler": None, "allocations": None,
     "worker_per_node": None},
    {"trigger": "on_jobs_complete", "kind": "run_commands", "jobs": ["prep"],
     "commands": ["echo prep finished >> out/log.txt"], "scheduler": None, "allocations": None,
     "worker_per_node": None},
    {"trigger": "on_workflow_complete", "kind": "run_commands", "jobs": [],
     "commands": ["echo all done >> out/log.txt"], "scheduler": None, "allocations": None,
     "worker_per_node": None},
]


def test_actions_yaml():
    assert actions_of(expand("actions.yaml")) == ACTIONS_LOCAL


def test_actions_json5():
    assert actions_of(expand("actions.json5")) == ACTIONS_LOCAL


def test_actions_kdl():
    assert actions_of(expand("actions.kdl")) == ACTIONS_LOCAL


def test_schedule_nodes_defaults_to_one_allocation():
    acts = actions_of(expand("actions_slurm.yaml"))
    assert [(a["jobs"], a["scheduler"], a["allocations"], a["worker_per_node"]) for a in acts] == [
        (["warm"], "small_nodes", 1, False),
        (["crunch_1", "crunch_2", "crunch_3", "crunch_4"], "small_nodes", 2, True)]


def test_unknown_trigger_is_rejected_with_the_valid_ones():
    msg = rejection("actions_unknown_trigger.yaml")
    assert "on_jobs_started" in msg and "on_jobs_ready" in msg and "unknown key" not in msg


# ---- env and variables -------------------------------------------------------------------------------
def _env_variables_checks(wf):
    assert job_names(wf) == ["make_1", "make_2", "make_table"]
    assert job(wf, "make_1").command == "echo 1 v7 > /tmp/torc-compat-vars/out_1.txt && echo ${HOME}"
    assert job(wf, "make_table").command == "echo rows > /tmp/torc-compat-vars/table.csv"
    assert env_of(job(wf, "make_1")) == {"STAGE": "v7", "SHARED": "from_job"}
    assert env_of(job(wf, "make_table")) == {"STAGE": "v7", "SHARED": "from_workflow"}


def test_env_and_variables_yaml():
    _env_variables_checks(expand("env_variables.yaml"))


def test_env_and_variables_kdl():
    _env_variables_checks(expand("env_variables.kdl"))


def test_undefined_template_name_is_an_error():
    msg = rejection("variables_undefined.yaml")
    assert "{rot}" in msg and "unknown key" not in msg


def test_variable_colliding_with_parameter_is_an_error():
    msg = rejection("variables_collide.yaml")
    assert "'i'" in msg and "unknown key" not in msg


# ---- parameters ---------------------------------------------------------------------------------------
def test_parameter_value_forms():
    assert job_names(expand("params_forms.yaml")) == sorted([
        "words_train", "words_test", "native_adam", "native_sgd", "braces_1", "braces_2", "braces_3",
        "listed_bern", "listed_oslo", "rate_1.00e-03", "rate_1.00e-02", "whole_1", "whole_2.5"])


def test_shared_parameters():
    wf = expand("params_shared.yaml")
    trains = [f"train_s{s}_r{r}" for s in (8, 16) for r in (0, 1)]
    assert job_names(wf) == sorted(trains + ["eval_s8", "report"])
    assert edges(wf) == {(t, "report") for t in trains}


def test_parameters_from_csv():
    wf = expand("params_table_csv.yaml")
    assert job_names(wf) == ["run_high", "run_low", "run_mid"]
    assert job(wf, "run_mid").command == "echo alpha=0.5 steps=20"


def test_parameters_from_json():
    wf = expand("params_table_json.yaml")
    assert job(wf, "run_low").command == "echo alpha=0.1 steps=010"


def test_shared_parameter_table():
    wf = expand("params_table_shared.yaml")
    assert job_names(wf) == ["gather", "run_high", "run_low", "run_mid"]
    assert edges(wf) == {(f"run_{c}", "gather") for c in ("low", "mid", "high")}
    assert files_of(wf)["result_mid"] == "out/mid.txt"


def test_parameters_file_with_parameters_is_refused():
    msg = rejection("params_table_conflict.yaml")
    assert "parameters_file" in msg and "unknown key" not in msg


# ---- resource monitor, stdio, execution config ------------------------------------------------------
def test_resource_monitor_current_shape():
    mon = expand("monitor.yaml").spec.resource_monitor
    assert mon.sample_interval_seconds == 2
    assert mon.jobs.enabled is True and mon.jobs.granularity == "time_series"
    assert list(mon.metrics) == ["cpu_percent", "memory_bytes"]


def test_resource_monitor_legacy_shape():
    mon = expand("monitor_legacy.json5").spec.resource_monitor
    assert mon.jobs.enabled is True and mon.jobs.granularity == "summary"
    assert mon.sample_interval_seconds == 3


def test_resource_monitor_kdl():
    mon = expand("monitor.kdl").spec.resource_monitor
    assert mon.sample_interval_seconds == 4 and mon.jobs.enabled is True


STDIO = {"normal": ("combined", True), "chatty": ("none", True), "keep_err": ("no_stdout", False)}


def test_stdio_modes_yaml():
    wf = expand("stdio.yaml")
    assert {j.name: stdio_of(j) for j in wf.jobs} == STDIO


def test_stdio_modes_kdl():
    wf = expand("stdio.kdl")
    assert {j.name: stdio_of(j) for j in wf.jobs} == STDIO


def test_execution_config_direct_fields():
    ec = expand("execution_direct.yaml").spec.execution_config
    assert (ec.mode, ec.termination_signal, ec.sigterm_lead_seconds, ec.sigkill_headroom_seconds) == (
        "direct", "SIGINT", 20, 45)


# ---- scheduler fields, slurm_defaults ---------------------------------------------------------------
def test_scheduler_fields_and_defaults():
    spec = expand("scheduler_fields_slurm.yaml").spec
    sched = {s.name: s for s in spec.slurm_schedulers}
    assert sched["scratchy"].tmp == "10G" and sched["scratchy"].ntasks_per_node == 4
    assert sched["chain"].serialize_allocations is True
    assert dict(spec.slurm_defaults) == {"account": "torc_test", "mail-type": "END", "constraint": "cpu"}


def test_slurm_defaults_refuses_fields_torc_manages():
    msg = rejection("slurm_defaults_refused.yaml")
    assert "partition" in msg and "unknown key" not in msg


# ---- stored fields, nulls, defaults ------------------------------------------------------------------
def test_stored_fields():
    wf = expand("stored_fields.yaml")
    assert wf.spec.user == "someone_else" and wf.spec.project == "compat-suite"
    assert wf.spec.metadata == {"owner_team": "research", "revision": 3}
    wrapped = job(wf, "wrapped")
    assert wrapped.invocation_script.startswith("bash -c") and wrapped.priority == 5
    assert job(wf, "routed").label == "special"


def test_metadata_json_string():
    assert expand("metadata_string.json").spec.metadata == {"cost_center": "ops", "tier": 2}


def test_metadata_must_be_a_json_object():
    msg = rejection("metadata_bad.yaml")
    assert "metadata" in msg and "unknown key" not in msg


def test_nulls_mean_not_given():
    wf = expand("nulls.yaml")
    assert edges(wf) == {("first", "second")}


def test_rule_without_max_retries_allows_three_attempts():
    rule = expand("failure_default_retries.yaml").spec.failure_handlers[0].rules[0]
    assert rule.max_retries == 3


# ---- datasets, dynamic jobs ---------------------------------------------------------------------------
def test_datasets_fan_in():
    wf = expand("datasets.yaml")
    assert edges(wf) == {(f"write_{p}", "read_all") for p in (1, 2, 3)}
    assert job(wf, "read_all").command == "cat out/shards/*.txt"


def test_dynamic_jobs_cap_is_kept():
    assert expand("dynamic_jobs.yaml").spec.dynamic_jobs.max_iterations == 4


# ---- explicit "not supported: because" --------------------------------------------------------------
@pytest.mark.parametrize("name, key", [
    ("not_supported_access_groups.yaml", "access_groups"),
    ("not_supported_ro_crate.yaml", "enable_ro_crate"),
    ("not_supported_mode_slurm.yaml", "mode"),
    ("not_supported_slurm_config.yaml", "slurm_config"),
    ("not_supported_server.yaml", "start_server_on_head_node"),
])
def test_not_supported_says_why(name, key):
    msg = rejection(name)
    assert key in msg and "not supported" in msg and "because" in msg
    assert "unknown key" not in msg
