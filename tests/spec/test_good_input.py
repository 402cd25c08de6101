"""Inputs near the bounds that must be accepted, and the equivalences the hardened parsers keep."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.spec.test_bad_input import BAD, WALL_TIMEOUT, _limits, _rows
from torc_hpc.errors import SpecError
from torc_hpc.spec import ExpansionLimits, expand_workflow, load_spec, load_spec_text
from torc_hpc.spec.formats.json_format import JsonFormat
from torc_hpc.spec.formats.yaml_format import build
from torc_hpc.spec.regexes import NameIndex, compile_regex, literal_prefix

ROOT = Path(__file__).resolve().parents[2]


def load(text: str, path="wf.yaml", base_dir=None, limits=None):
    spec, loc = load_spec_text(textwrap.dedent(text), path, base_dir)
    return expand_workflow(spec, loc, path, limits)


def cli(url: str, cwd: Path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, TORC_DATABASE_URL=url)
    return subprocess.run([sys.executable, "-m", "torc_hpc.cli.app", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=WALL_TIMEOUT, preexec_fn=_limits)


# ---- recovery scripts that bash runs fine ------------------------------------------------------

@pytest.mark.parametrize("script", ["true # it's fine", "FOO=1 true", "cd /tmp && ls", "echo \"it's\"",
                                    "if true; then echo ok; fi", "[ -d /tmp ] || exit 1"])
def test_recovery_scripts_bash_accepts(script):
    wf = load(f"""
        name: w
        failure_handlers:
          - name: h
            rules: [{{exit_codes: [1], recovery_script: {yaml.safe_dump(script).splitlines()[0]}, max_retries: 1}}]
        jobs:
          - {{name: a, command: 'true', failure_handler: h}}
        """)
    assert wf.spec.failure_handlers[0].rules[0].recovery_script == script


# ---- the YAML builder reads what yaml.safe_load reads ----------------------------------------------

TRICKY = """
defaults: &defaults {num_cpus: 2, memory: 4g}
big:
  <<: *defaults
  memory: 8g
both:
  <<: [*defaults, {runtime: PT1H, num_cpus: 9}]
list: &l [1, 2.5, .inf, -.inf, ~, null, yes, no, on, off, true, 0o17, 0x1f, 1_000, "007", '1:2']
again: *l
when: 2024-01-02
block: |
  line one
  line two
folded: >
  one
  two
empty_map: {}
empty_list: []
"a key with: colon": v
? explicit
: value
"""


@pytest.mark.parametrize("text", [TRICKY] + [p.read_text() for p in sorted((ROOT / "examples/yaml").glob("*.yaml"))],
                         ids=["tricky"] + [p.name for p in sorted((ROOT / "examples/yaml").glob("*.yaml"))])
def test_yaml_builder_matches_safe_load(text):
    assert build(text) == yaml.safe_load(text)


def test_line_index_points_at_keys_and_items():
    index = {}
    build("name: w\njobs:\n  - name: a\n    command: x\n  - {name: b,\n     command: y}\n", index)
    assert index[("jobs", 0)] == 3 and index[("jobs", 0, "command")] == 4
    assert index[("jobs", 1)] == 5 and index[("jobs", 1, "command")] == 6


def test_json_errors_are_located_by_line(tmp_path):
    p = tmp_path / "wf.json"
    p.write_text('{\n  "name": "w",\n  "jobs": [\n    {"name": "a",\n     "comand": "x"}\n  ]\n}\n')
    with pytest.raises(SpecError) as e:
        load_spec(p)
    lines = {(q.field, q.line) for q in e.value.problems}
    assert ("comand", 5) in lines and ("command", 4) in lines
    assert JsonFormat().line_index(p.read_text())[("jobs", 0, "comand")] == 5


def test_bom_and_tabs_in_json_are_fine(tmp_path):
    p = tmp_path / "wf.yaml"
    p.write_bytes(b"\xef\xbb\xbfname: w\njobs:\n  - {name: a, command: 'true'}\n")
    assert load_spec(p)[0].name == "w"
    q = tmp_path / "wf.json"
    q.write_text('{\n\t"name": "w",\n\t"jobs": [{"name": "a", "command": "true"}]\n}\n')
    assert load_spec(q)[0].jobs[0].name == "a"


# ---- limits: exact at the bound ------------------------------------------------------------------

def test_job_limit_is_exact():
    text = "name: w\njobs:\n  - name: a_{i}\n    command: 'true'\n    parameters: {i: '1:100'}\n"
    assert len(load(text, limits=ExpansionLimits(max_jobs=100)).jobs) == 100
    with pytest.raises(SpecError, match="more than the limit of 99"):
        load(text, limits=ExpansionLimits(max_jobs=99))


def test_dependency_limit_is_exact():
    text = """
        name: w
        jobs:
          - {name: p, command: 'true'}
          - name: c_{i}
            command: 'true'
            depends_on: [p]
            parameters: {i: '1:10'}
        """
    assert load(text, limits=ExpansionLimits(max_dependencies=10)).edge_count == 10
    with pytest.raises(SpecError, match="--max-dependencies"):
        load(text, limits=ExpansionLimits(max_dependencies=9))


def test_max_jobs_flag_raises_the_limit(db_url, tmp_path):
    proc = cli(db_url, tmp_path, "workflows", "create", BAD / "twenty_jobs.yaml", "--max-jobs", "20")
    assert proc.returncode == 0, proc.stderr
    assert _rows(db_url) == (1, 20)


# ---- regular expressions ---------------------------------------------------------------------

def test_catastrophic_pattern_matches_in_linear_time(db_url, tmp_path):
    """(a+)+$ against 30-character names: RE2 answers at once (Python's re would not finish)."""
    spec = tmp_path / "redos.yaml"
    spec.write_text("name: r\njobs:\n  - name: 'a{i}'\n    command: 'true'\n"
                    f"    parameters: {{i: \"['{'a' * 29}', '{'a' * 30}', '{'a' * 28}b']\"}}\n"
                    "  - name: collect\n    command: 'true'\n    depends_on_regexes: ['(a+)+$']\n")
    proc = cli(db_url, tmp_path, "workflows", "create", spec)  # under 5 s of CPU and 500 MB
    assert proc.returncode == 0, proc.stderr
    wf = load_spec(spec)
    assert len(expand_workflow(*wf).edges) == 2  # the two names of a's only, not the one ending in b


@pytest.mark.parametrize("pattern", [r"sim_.*", r"sim_\d+", r"sim_1.*", r"(?i)SIM_2.*", r"sim_1|post", r"si?m_3",
                                     r"^sim_4.*", r"s*im_5", r"sim_[0-9]{2}", r"post", r".*_7", r"sim_\.", r"sim_1+"])
def test_regex_matches_agree_with_python_re(pattern):
    names = [f"sim_{i}" for i in range(120)] + ["post", "sim_", "si_3", "im_5", "sim_11x"]
    expected = sorted(n for n, name in enumerate(names) if re.search(pattern, name))
    index = NameIndex(names)
    got = sorted(index.matches(compile_regex(pattern), index.span(literal_prefix(pattern))))
    assert got == expected


@pytest.mark.parametrize("pattern,prefix", [("^sim_.*", "sim_"), ("^ab?c", "a"), ("^abc*", "ab"), ("^a+b", "a"),
                                            ("^x|y", ""), ("^(?i)abc", ""), ("^run_", "run_"), ("^ab{2}", "a"),
                                            ("sim_.*", ""), ("run_", "")])
def test_literal_prefix_is_conservative(pattern, prefix):
    assert literal_prefix(pattern) == prefix
