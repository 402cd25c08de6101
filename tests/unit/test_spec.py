"""Spec parsing, expansion and every located error."""

import json
import textwrap

import pytest

from torc_hpc.errors import SpecError
from torc_hpc.spec import expand_workflow, load_spec, load_spec_text


def load(text: str, path="wf.yaml", base_dir=None):
    spec, loc = load_spec_text(textwrap.dedent(text), path, base_dir)
    return expand_workflow(spec, loc, path)


def problems(text: str, path="wf.yaml", base_dir=None):
    with pytest.raises(SpecError) as e:
        load(text, path, base_dir)
    return e.value.problems


def test_aggregate_depends_on_every_combination():
    wf = load("""
        name: sim
        jobs:
          - name: sim_m{model}_s{scenario}
            command: run {model} {scenario}
            parameters: {model: "0:2", scenario: "0:2"}
          - name: aggregate
            command: echo done
            depends_on:
              - sim_m{model}_s{scenario}
            parameters: {model: "0:2", scenario: "0:2"}
        """)
    names = [j.name for j in wf.jobs]
    assert len(names) == 10 and names[-1] == "aggregate"
    assert sorted(p for p, c in wf.edges if c == 9) == list(range(9))
    assert wf.in_degree[9] == 9
    assert wf.jobs[4].command == "run 1 1"


def test_parameterized_dependencies_pair_up():
    wf = load("""
        name: p
        jobs:
          - name: pre_{i}
            command: prep {i}
            parameters: {i: "1:3"}
          - name: run_{i:03d}
            command: go {i}
            depends_on:
              - pre_{i}
            parameters: {i: "1:3"}
        """)
    by_name = {j.name: n for n, j in enumerate(wf.jobs)}
    assert "run_001" in by_name
    assert (by_name["pre_2"], by_name["run_002"]) in wf.edges
    assert len(wf.edges) == 3


def test_zip_regex_and_resources():
    wf = load("""
        name: z
        resource_requirements:
          - {name: big, num_cpus: 4, memory: 8g, runtime: "02:00:00"}
        jobs:
          - name: t_{a}_{b}
            command: x
            parameter_mode: zip
            parameters: {a: "[1,2]", b: "['x','y']"}
            resource_requirements: big
          - name: inline
            command: y
            resource_requirements: {num_cpus: 2, memory: 100m, runtime: PT5M}
            depends_on_regexes: ["t_\\\\d_.*"]
        """)
    assert [j.name for j in wf.jobs] == ["t_1_x", "t_2_y", "inline"]
    assert wf.jobs[0].num_cpus == 4 and wf.jobs[0].memory_bytes == 8 * 1024**3 and wf.jobs[0].runtime_s == 7200
    assert wf.jobs[2].num_cpus == 2 and wf.jobs[2].runtime_s == 300
    assert sorted(wf.edges) == [(0, 2), (1, 2)]


def test_json_spec(tmp_path):
    p = tmp_path / "wf.json"
    p.write_text(json.dumps({"name": "j", "jobs": [{"name": "a", "command": "true"},
                                                   {"name": "b", "command": "true", "depends_on": ["a"]}]}))
    spec, loc = load_spec(p)
    assert len(expand_workflow(spec, loc, str(p)).edges) == 1


def test_unknown_key_names_job_field_and_line():
    (p,) = problems("""
        name: w
        jobs:
          - name: a
            command: x
            comand: y
        """)
    assert p.job == "a" and p.field == "comand" and p.line == 6 and "unknown key" in p.message
    assert str(p).startswith("wf.yaml:6, job 'a', field 'comand'")


def test_unknown_failure_handler():
    (p,) = problems("""
        name: w
        failure_handlers:
          - name: real
            rules: [{exit_codes: [1], max_retries: 2}]
        jobs:
          - name: a
            command: x
            failure_handler: typo
        """)
    assert p.job == "a" and p.field == "failure_handler" and p.line == 9
    assert "typo" in p.message and "real" in p.message


def test_unknown_dependency():
    (p,) = problems("""
        name: w
        jobs:
          - name: a
            command: x
            depends_on: [nope]
        """)
    assert p.job == "a" and p.field == "depends_on" and p.line == 6 and "nope" in p.message


def test_cycle_is_printed():
    (p,) = problems("""
        name: w
        jobs:
          - {name: a, command: x, depends_on: [c]}
          - {name: b, command: x, depends_on: [a]}
          - {name: c, command: x, depends_on: [b]}
          - {name: d, command: x, depends_on: [c]}
        """)
    assert "dependency cycle" in p.message
    chain = p.message.split(": ", 1)[1].split(" -> ")
    assert chain[0] == chain[-1] and set(chain) == {"a", "b", "c"}


def test_duplicate_names():
    probs = problems("""
        name: w
        jobs:
          - {name: a, command: x}
          - name: a
            command: y
        """)
    assert any("duplicate job name 'a'" in p.message and p.line == 5 for p in probs)


def test_duplicate_names_from_parameters():
    probs = problems("""
        name: w
        jobs:
          - name: job_{i}
            command: x
            parameters: {i: "0:1"}
          - name: job_1
            command: y
        """)
    assert any("duplicate job name 'job_1'" in p.message for p in probs)


def test_name_using_some_parameters_is_one_job_per_value_of_those():
    """Torc's docs: a name without a parameter's placeholder stands for every value of it (the union of
    the dependencies); its command may use only the name's parameters."""
    wf = load("""
        name: w
        jobs:
          - name: sim_{i}_{k}
            command: x
            parameters: {i: "0:1", k: "0:2"}
          - name: report_{i}
            command: echo {i}
            depends_on: ["sim_{i}_{k}"]
            parameters: {i: "0:1", k: "0:2"}
        """)
    names = [j.name for j in wf.jobs]
    assert names[-2:] == ["report_0", "report_1"] and len(names) == 8
    assert sorted(names[p] for p, c in wf.edges if names[c] == "report_1") == ["sim_1_0", "sim_1_1", "sim_1_2"]
    (p,) = problems("""
        name: w
        jobs:
          - name: report_{i}
            command: echo {k}
            parameters: {i: "0:1", k: "0:2"}
        """)
    assert "does not use {k}" in p.message and p.field == "command"


def test_bad_range():
    (p,) = problems("""
        name: w
        jobs:
          - name: a_{i}
            command: x
            parameters:
              i: "0:10:0"
        """)
    assert p.field == "parameters.i" and p.line == 7 and "step of 0" in p.message


def test_negative_max_retries():
    (p,) = problems("""
        name: w
        failure_handlers:
          - name: h
            rules:
              - exit_codes: [1]
                max_retries: -1
        jobs:
          - {name: a, command: x, failure_handler: h}
        """)
    assert p.line == 7 and "max_retries" in (p.field or "")


def test_recovery_script_missing_and_not_executable(tmp_path):
    (tmp_path / "noexec.sh").write_text("#!/bin/sh\n")
    probs = problems("""
        name: w
        failure_handlers:
          - name: h
            rules:
              - {exit_codes: [1], recovery_script: ./missing.sh, max_retries: 2}
              - {exit_codes: [2], recovery_script: ./noexec.sh, max_retries: 2}
              - {exit_codes: [3], recovery_script: "true", max_retries: 2}
        jobs:
          - {name: a, command: x, failure_handler: h}
        """, base_dir=tmp_path)
    msgs = sorted(str(p) for p in probs)
    assert len(probs) == 2
    assert any("./missing.sh" in m and "not found" in m for m in msgs)
    assert any("chmod +x ./noexec.sh" in m for m in msgs)
    assert {p.line for p in probs} == {6, 7}


def test_unquoted_placeholder_in_flow_list_gets_a_hint():
    (p,) = problems("name: w\njobs:\n  - name: b_{i}\n    command: x\n    depends_on: [a_{i}]\n")
    assert p.line == 5 and "must be quoted" in p.message


def test_invalid_yaml_is_located():
    (p,) = problems("name: w\njobs: [\n")
    assert "invalid YAML" in p.message and p.line


def test_memory_and_runtime_errors():
    probs = problems("""
        name: w
        jobs:
          - name: a
            command: x
            resource_requirements: {memory: lots, runtime: whenever}
        """)
    fields = {p.field for p in probs}
    assert fields == {"resource_requirements.memory", "resource_requirements.runtime"}


def test_missing_file():
    with pytest.raises(SpecError, match="file not found"):
        load_spec("/nonexistent/wf.yaml")


def test_problems_are_capped_and_counted():
    with pytest.raises(SpecError) as e:
        load("""
            name: w
            jobs:
              - name: c_{i}
                command: x
                parameters: {i: "0:999"}
                depends_on: ["missing_{i}"]
            """)
    assert e.value.total == 1000 and len(e.value.problems) == 100
    assert "… and 900 more" in str(e.value)


def test_size_is_refused_from_counts_before_expanding():
    """10¹⁸ combinations would never finish expanding: the count alone refuses them."""
    (p,) = problems("""
        name: w
        jobs:
          - name: a_{i}_{j}_{k}
            command: x
            parameters: {i: "1:1000000", j: "1:1000000", k: "1:1000000"}
        """)
    assert p.field == "parameters" and p.line == 6 and "--max-jobs" in p.message
    assert "1,000,000 values of i × 1,000,000 values of j × 1,000,000 values of k" in p.message


def test_duplicate_yaml_keys_are_refused():
    (p,) = problems("""
        name: w
        jobs:
          - name: a
            command: x
            priority: 1
            priority: 2
        """)
    assert p.line == 7 and "'priority' appears twice" in p.message and p.field == "jobs[0].priority"


def test_integers_must_fit_their_columns():
    probs = problems("""
        name: w
        jobs:
          - name: a
            command: x
            priority: 2147483648
            resource_requirements: {num_cpus: 2147483647, memory: 9223372036854775807, runtime: 2147483647}
        """)
    assert [(p.field, p.line) for p in probs] == [("priority", 6)]


def test_zip_of_huge_and_small_ranges_is_refused_by_counts():
    (p,) = problems("""
        name: w
        jobs:
          - name: a_{i}_{j}
            command: x
            parameter_mode: zip
            parameters: {i: "0:100000000000000000000", j: "0:1"}
        """)
    assert p.field == "parameter_mode" and "i=more than 1,000,000,000,000,000,000, j=2" in p.message
