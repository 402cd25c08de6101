"""The bad-input corpus: every spec in tests/spec/bad/ (and three generated because they are large by
nature) goes through the real CLI in a subprocess limited to 5 s of CPU and 500 MB of address space.
Each must end with exit code 2 (SpecError), its expected message, no traceback, and no row written.

The time limit is CPU time (RLIMIT_CPU), not wall-clock time, so that a busy shared machine cannot make
a case fail; a generous wall-clock timeout still catches a hang (sleeping or blocked).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from torc_hpc.limits import MAX_SPEC_BYTES

from tests.conftest import _with_db

BAD = Path(__file__).resolve().parent / "bad"
CPU_SECONDS = 5
MEMORY_BYTES = 500 * 10**6
WALL_TIMEOUT = 60

# file → fragment the error must contain (whitespace-normalized), in the order of make_corpus.py.
EXPECTED = {
    # the file itself
    "empty.yaml": "the spec is empty",
    "comments_only.yaml": "the spec is empty",
    "empty.json": "the spec is empty",
    "top_list.yaml": "must be a mapping with 'name' and 'jobs', not a list",
    "top_list.json": "must be a mapping with 'name' and 'jobs', not a list",
    "only_string.yaml": "not a single string",
    "only_number.json": "not a single int",
    "not_utf8.yaml": "not_utf8.yaml:1: the file is not UTF-8: byte 0xe9 at column 10",
    "utf16.yaml": "the file is UTF-16",
    "bom_then_typo.yaml": "bom_then_typo.yaml:4, job 'a', field 'comand': unknown key 'comand'",
    "tabs.yaml": "tabs.yaml:3: invalid YAML: found character that cannot start any token (a tab: indent YAML with spaces)",
    "nul_escape.json": "job 'a', field 'command': contains a NUL character",
    "nul_escape.yaml": "nul_escape.yaml:4, job 'a', field 'command': contains a NUL character",
    "nul_raw.yaml": "nul_raw.yaml:4: invalid YAML: character",
    "control_in_name.yaml": "field 'name': contains a control character",
    "deep_flow.yaml": "nested more than 64 levels deep (torc_hpc.limits.MAX_NESTING_DEPTH)",
    "deep_block.yaml": "deep_block.yaml:66, field 'jobs.k0.k1.k2.…(58 more)….k61.k62': lists and mappings are nested more than 64",
    "deep.json": "nested more than 64 levels deep (torc_hpc.limits.MAX_NESTING_DEPTH)",
    "deep_moderate.json": "nested more than 64 levels deep",
    "alias_bomb.yaml": "alias_bomb.yaml:8, field 'l6[0]': aliases (*name) stand for more than 1,000,000 values",
    "alias_self.yaml": "alias *j is used inside the node it names",
    "alias_undefined.yaml": "alias_undefined.yaml:5: alias *big names no anchor defined before it",
    "duplicate_key.yaml": "duplicate_key.yaml:5, field 'jobs[0].command': key 'command' appears twice in this mapping (lines 4 and 5)",
    "duplicate_key_top.yaml": "key 'jobs' appears twice in this mapping (lines 2 and 4)",
    "duplicate_key.json": "duplicate_key.json:4, field 'jobs[0].command': key 'command' appears twice in this object (lines 3 and 4)",
    "python_tag.yaml": "the YAML tag !!python/object/apply:os.system is not supported",
    "two_documents.yaml": "two_documents.yaml:4: a spec file holds one YAML document",
    "long_number.yaml": "long_number.yaml:5: a number of 5,000 characters is too long",
    "long_number.json": "a number of 5,000 characters is too long: numbers are at most 64 characters",
    "nan.json": "invalid JSON: NaN is not a JSON number",
    "invalid.json": "invalid.json:1: invalid JSON: Expecting value",
    "invalid.yaml": "invalid.yaml:4: invalid YAML",
    "unquoted_placeholder.yaml": "unquoted_placeholder.yaml:8: invalid YAML: did not find expected ',' or ']' (a {placeholder} inside [...] or {...} must be quoted",
    # numbers beyond PostgreSQL's columns
    "num_cpus_int4.yaml": "num_cpus_int4.yaml:5, job 'a', field 'resource_requirements.num_cpus': 99999999999 is too large: at most 2147483647 (PostgreSQL integer",
    "num_gpus_negative.yaml": "field 'resource_requirements.num_gpus': -1 is too small: at least 0",
    "priority_int4.json": "job 'a', field 'priority': -99999999999 is too small: at least -2147483648",
    "runtime_days.yaml": "runtime_days.yaml:5, job 'a', field 'resource_requirements.runtime': duration 'P99999999D' is more than 2,147,483,647 seconds",
    "runtime_clock.yaml": "duration '99999999:00:00' is more than 2,147,483,647 seconds",
    "runtime_float_overflow.yaml": "field 'resource_requirements.runtime': a duration is at most 64 characters",
    "memory_petabytes.yaml": "memory_petabytes.yaml:5, job 'a', field 'resource_requirements.memory': memory '99999999999999p' is more than 9,223,372,036,854,775,807 bytes",
    "memory_bytes.json": "memory 100000000000000000000 is more than 9,223,372,036,854,775,807 bytes",
    "max_retries_int4.yaml": "max_retries_int4.yaml:5, field 'failure_handlers[0].rules[0].max_retries': 99999999999 is too large",
    "exit_codes_int4.yaml": "field 'failure_handlers[0].rules[0].exit_codes[1]': 99999999999 is too large: at most 2147483647",
    "walltime_int4.yaml": "field 'slurm_schedulers[0].walltime': duration 'P99999999D' is more than 2,147,483,647 seconds",
    "slurm_nodes_int4.json": "field 'slurm_schedulers[0].nodes': 10000000000 is too large",
    # names and text
    "long_name.yaml": "long_name.yaml:3, job 'xxxxxxxx",
    "long_handler_name.yaml": "field 'failure_handlers[0].name': is too long: at most 512 characters (torc_hpc.limits.MAX_NAME_LENGTH)",
    "long_rendered_name.yaml": "is 604 characters long after its placeholders are filled; at most 512",
    "empty_name.yaml": "field 'name': String should have at least 1 character",
    "markup_in_name.yaml": "job '[/bold] [red]x', field 'comand': unknown key 'comand'",
    "sbatch_newline.yaml": "field 'slurm_schedulers[0].extra': contains a control character",
    # placeholders and format specs
    "format_d_on_string.yaml": "field 'name': '{i:d}' cannot format the value 'x' of parameter i: Unknown format code 'd'",
    "format_width.yaml": "the format spec ':>1500000000' asks for a width or precision of '1500000000'; at most 256 (torc_hpc.limits.MAX_FORMAT_WIDTH)",
    "format_precision.yaml": "field 'command': the format spec ':.999999999f' asks for a width or precision",
    "format_invalid.yaml": "'{i:zz}' cannot format the value 0 of parameter i",
    "format_char_overflow.yaml": "'{i:c}' cannot format the value 99999999 of parameter i",
    "unknown_placeholder.yaml": "job 'sim_{j}', field 'name': {j} is not a parameter of this job (its parameters are i)",
    "unknown_placeholder_dep.yaml": "field 'depends_on': {k} is not a parameter of this job",
    "single_job_command_param.yaml": "its command cannot use {i}",
    "parameter_bad_name.yaml": "field 'parameters.my-x': parameter names are identifiers",
    "parameter_bool.yaml": "field 'parameters.i': should be a valid string, a valid integer, a valid number or a valid list",
    "parameter_list_deep.yaml": "field 'parameters.i': cannot read list",
    "parameter_list_nested.yaml": "list values must be numbers or strings, not list",
    "range_nan.yaml": "cannot read range '0:nan': 'nan' is not a finite number",
    "zip_unequal.yaml": "parameter_mode zip needs parameters with equal numbers of values (i=3, j=4)",
    # expansion sizes (refused from the counts, before anything is expanded)
    "range_100m.yaml": "range_100m.yaml:5, job 'a_{i}', field 'parameters': expands to 100,000,001 jobs (100,000,001 values of i), more than the limit of 10,000,000 (torc_hpc.limits.MAX_JOBS); raise it with --max-jobs N",
    "product_20k_x_20k.yaml": "expands to 400,000,000 jobs (20,000 values of i × 20,000 values of j)",
    "float_range_1e8.yaml": "expands to 100,000,001 jobs",
    "range_exponent.yaml": "expands to more than 1,000,000,000,000,000,000 jobs",
    "single_job_product.yaml": "job 'aggregate', field 'parameters': expands to 400,000,000 combinations for its one job",
    "total_jobs.yaml": "field 'jobs': the workflow expands to 12,000,000 jobs",
    "many_dependencies.yaml": "field 'depends_on': the workflow's dependencies expand to 60,000,000 entries (this job: 1,000,000 × 60), more than the limit of 50,000,000 (torc_hpc.limits.MAX_DEPENDENCIES); raise it with --max-dependencies N",
    # regular expressions (RE2: linear time, bounded work)
    "regex_redos.yaml": "regex_redos.yaml:8, job 'collect', field 'depends_on_regexes': depends_on_regexes '(a+)+$' matches no job",
    "regex_lookahead.yaml": "bad regular expression '(?=a).*'",
    "regex_backreference.yaml": "(depends_on_regexes use RE2 syntax: no backreferences or lookaround)",
    "regex_too_long.yaml": "is too long: at most 1,000 characters (torc_hpc.limits.MAX_REGEX_LENGTH)",
    "regex_checks.yaml": "depends_on_regexes need 50,000,000 name checks",
    "regex_distinct.yaml": "depends_on_regexes make 10,001 different expressions",
    # the graph
    "cycle.yaml": "dependency cycle:",
    "self_dependency.yaml": "job 'a', field 'depends_on': a job cannot depend on itself",
    "unknown_dependency.json": "job 'a', field 'depends_on': depends on unknown job 'nope'",
    "duplicate_job_name.yaml": "duplicate job name 'a'",
    # the schema
    "missing_jobs.yaml": "field 'jobs': Field required",
    "jobs_empty.yaml": "field 'jobs': List should have at least 1 item",
    "jobs_string.yaml": "field 'jobs': should be a valid list",
    "unknown_top_key.yaml": "unknown_top_key.yaml:2, field 'job': unknown key 'job'",
    "thousands_of_problems.yaml": "3000 problem(s) in the workflow spec; nothing was written",
    "thousands_of_unknown_dependencies.yaml": "… and 4900 more (only the first 100 are listed, torc_hpc.limits.MAX_PROBLEMS)",
    "recovery_unparseable.yaml": "field 'failure_handlers[0].rules[0].recovery_script': handler 'h': cannot parse recovery_script",
    "recovery_missing.yaml": "recovery_script './no_such_script.sh' not found",
    "resource_unnamed.yaml": "resource_unnamed.yaml:3, field 'resource_requirements[0]': a named resource_requirements entry needs a name",
    "unknown_handler.yaml": "unknown failure handler 'nope'",
    "twenty_jobs.yaml": "expands to 20 jobs (20 values of i), more than the limit of 10 (torc_hpc.limits.MAX_JOBS); raise it with --max-jobs N",
    # JSON5 and KDL
    "json5_invalid.json5": 'json5_invalid.json5:4: invalid JSON5: Unexpected "c" at column 16',
    "json5_duplicate_key.json5": "json5_duplicate_key.json5:2, field 'name': key 'name' appears twice in this object (lines 1 and 2)",
    "json5_nan.json5": "json5_nan.json5:1: invalid JSON5: NaN is not a number any spec field takes",
    "json5_deep.json5": "json5_deep.json5:1, field 'jobs[0].parameters.x.…(58 more)…[0][0]': arrays and objects are nested more than 64 levels deep",
    "json5_long_number.json5": "json5_long_number.json5:2: a number of 100 characters is too long",
    "json5_unknown_key.json5": "json5_unknown_key.json5:6, job 'a', field 'comand': unknown key 'comand'",
    "kdl_invalid.kdl": "kdl_invalid.kdl:4: invalid KDL: Unexpected token",
    "kdl_unclosed.kdl": "kdl_unclosed.kdl:2: invalid KDL: Unexpected end of data (unclosed lists of children)",
    "kdl_unknown_node.kdl": "kdl_unknown_node.kdl:4, job 'a', field 'comand': unknown key 'comand'",
    "kdl_twice.kdl": "kdl_twice.kdl:4, field 'jobs[0].command': 'command' is given twice here",
    "kdl_duplicate_property.kdl": "kdl_duplicate_property.kdl:2: property 'path' appears twice on this node",
    "kdl_deep.kdl": "kdl_deep.kdl:2: nodes are nested more than 64 levels deep (torc_hpc.limits.MAX_NESTING_DEPTH)",
    "kdl_user_data_json.kdl": "kdl_user_data_json.kdl:3, field 'user_data[0].data': user_data 'data' must hold JSON",
    "kdl_nan.kdl": "kdl_nan.kdl:4, field 'jobs[0].priority': invalid KDL: nan is not a number any spec field takes",
    "kdl_long_number.kdl": "kdl_long_number.kdl:4: a number of 100 characters is too long",
    # Torc's fields
    "env_torc_variable.yaml": "env_torc_variable.yaml:5, job 'a', field 'env': env cannot set TORC_JOB_ID",
    "parameters_file_missing.yaml": "parameters_file_missing.yaml:5, job 'a_{x}', field 'parameters_file': no_such_table.csv not found",
    "input_file_unknown.yaml": "input_file_unknown.yaml:6, job 'a', field 'command': ${files.input.f2} names no entry of 'files' (known: f1)",
}

# Extra arguments for a case (the corpus file is only bad under them).
ARGS = {"twenty_jobs.yaml": ["--max-jobs", "10"]}

# Cases also run through `torc run` (the path that creates and runs).
RUN = ["range_100m.yaml", "alias_bomb.yaml", "regex_redos.yaml", "deep.json", "nul_escape.json",
       "memory_petabytes.yaml", "twenty_jobs.yaml", "json5_deep.json5", "kdl_deep.kdl"]


def _generated(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Cases too large to keep in the repository: written here, checked like the others."""
    big = tmp / "huge_file.yaml"
    with open(big, "w") as f:
        f.write("name: big\njobs:\n  - {name: a, command: 'true'}\n")
        f.write(("# " + "x" * 1022 + "\n") * (MAX_SPEC_BYTES // 1024 + 1024))
    line = tmp / "huge_line.yaml"
    line.write_text("name: n\njobs:\n  - name: a\n    command: echo " + "y" * 300_000 + "\n")
    param = tmp / "huge_parameter.yaml"
    param.write_text("name: n\njobs:\n  - name: a_{i}\n    command: 'true'\n    parameters:\n      i: '["
                     + ",".join(["1"] * 1_100_000) + "]'\n")
    return {
        "huge_file.yaml": (big, f"the file is larger than {MAX_SPEC_BYTES // 2**20} MiB (torc_hpc.limits.MAX_SPEC_BYTES)"),
        "huge_line.yaml": (line, "huge_line.yaml:4, job 'a', field 'command': is too long: at most 131,071 characters "
                                 "(torc_hpc.limits.MAX_COMMAND_BYTES)"),
        "huge_parameter.yaml": (param, "field 'parameters.i': is too long: at most 1,048,576 characters "
                                       "(torc_hpc.limits.MAX_PARAMETER_TEXT)"),
    }


def _limits() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


@pytest.fixture(scope="module")
def corpus_db(admin_url, template_db):
    """One database for the whole corpus: every case must leave it empty."""
    name = f"torc_spec_corpus_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _with_db(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return _generated(tmp_path_factory.mktemp("generated"))


def _rows(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT (SELECT count(*) FROM workflows), (SELECT count(*) FROM jobs)").fetchone()


def check_rejected(url: str, cwd: Path, command: list[str], spec: Path, fragment: str, extra: list[str]) -> None:
    env = dict(os.environ, TORC_DATABASE_URL=url, COLUMNS="200")
    argv = [sys.executable, "-m", "torc_hpc.cli.app", *command, str(spec), *extra]
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=WALL_TIMEOUT,
                          preexec_fn=_limits)
    out = proc.stdout + proc.stderr
    said = " ".join(out.split())
    assert "Traceback" not in out, out[-3000:]
    killed = {-signal.SIGXCPU: "the CPU-time limit", -signal.SIGKILL: "a kill (memory?)"}.get(proc.returncode, "")
    assert proc.returncode == 2, f"exit {proc.returncode} {killed}\n{out[-3000:]}"
    assert "nothing was written" in said
    assert " ".join(fragment.split()) in said, f"expected {fragment!r} in:\n{out[-3000:]}"
    assert _rows(url) == (0, 0), "a rejected spec wrote rows"


def test_corpus_is_complete():
    """Every file in the corpus has an expected message, and the corpus has at least 50 cases."""
    files = {p.name for p in BAD.iterdir()}
    assert files == set(EXPECTED), f"without expectation: {files - set(EXPECTED)}; missing: {set(EXPECTED) - files}"
    assert len(EXPECTED) >= 50


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_create_rejects(name, corpus_db, tmp_path):
    check_rejected(corpus_db, tmp_path, ["workflows", "create"], BAD / name, EXPECTED[name], ARGS.get(name, []))


@pytest.mark.parametrize("name", RUN)
def test_run_rejects(name, corpus_db, tmp_path):
    check_rejected(corpus_db, tmp_path, ["run"], BAD / name, EXPECTED[name], ARGS.get(name, []))


@pytest.mark.parametrize("name", ["range_100m.yaml", "twenty_jobs.yaml", "alias_bomb.yaml"])
def test_submit_slurm_rejects(name, corpus_db, tmp_path):
    """`torc submit-slurm SPEC` refuses the spec before anything is submitted (it needs Slurm's tools on
    PATH to start; the spec is read before any sbatch)."""
    if shutil.which("sbatch") is None:
        pytest.skip("Slurm's tools are not on PATH (tests/slurm/cluster-up.sh installs them)")
    check_rejected(corpus_db, tmp_path, ["submit-slurm"], BAD / name, EXPECTED[name], ARGS.get(name, []))


@pytest.mark.parametrize("name", ["huge_file.yaml", "huge_line.yaml", "huge_parameter.yaml"])
def test_create_rejects_generated(name, generated, corpus_db, tmp_path):
    path, fragment = generated[name]
    check_rejected(corpus_db, tmp_path, ["workflows", "create"], path, fragment, [])
