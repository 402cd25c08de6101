"""Tables that fit a terminal and never break a word; human units; streamed JSON that parses."""

import io
import json
from datetime import datetime, timezone

import pytest

from torc_hpc.cli.output import Col, Format, TableWriter, cell, fit, measured_cols, stream_rows
from torc_hpc.core.units import human_bytes, human_duration


@pytest.mark.parametrize("n, text", [(0, "0 B"), (512, "512 B"), (1536, "1.5 KiB"), (10 * 2**20, "10 MiB"),
                                     (1.5 * 2**30, "1.5 GiB"), (2**40 * 3, "3.0 TiB"), (None, "")])
def test_human_bytes(n, text):
    assert human_bytes(n) == text


@pytest.mark.parametrize("s, text", [(0.0042, "4ms"), (3.25, "3.2s"), (45, "45s"), (65, "1m05s"),
                                     (7380, "2h03m"), (3 * 86400 + 4 * 3600, "3d04h"), (None, "")])
def test_human_duration(s, text):
    assert human_duration(s) == text


def test_fit_cuts_with_an_ellipsis():
    assert fit("completed", 9) == "completed"
    assert fit("completed", 6) == "compl…"
    assert fit("x", 0) == ""


def test_cells_are_one_line():
    assert cell("a\nb\tc") == "a b c"
    assert cell(2 * 2**30, "bytes") == "2.0 GiB"
    assert cell({"a": 1}) == '{"a":1}'


def _rows(n):
    return [{"id": 1000 + i, "name": f"simulation_with_a_rather_long_name_{i:04d}", "status": "pending_failed",
             "attempt_id": 1, "return_code": 137, "memory_bytes": 3 * 2**30, "runtime_s": 5400} for i in range(n)]


COLS = [Col("id", "id", 8, "int"), Col("name", "name", 16, flex=True), Col("status", "status", 14, "status"),
        Col("attempt_id", "att", 3, "int"), Col("return_code", "rc", 3, "int"),
        Col("memory_bytes", "mem", 8, "bytes"), Col("runtime_s", "runtime", 7, "duration"),
        Col("command", "command", 20, wide=True, flex=True)]


def test_a_streamed_table_fits_80_columns_without_breaking_words():
    out = io.StringIO()
    w = TableWriter([c for c in COLS if not c.wide], out, total_width=80)
    w.header()
    for r in _rows(3):
        w.row(r)
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert "pending_failed" in lines[1] and "3.0 GiB" in lines[1] and "1h30m" in lines[1]
    assert "…" in lines[1]                   # the long name is cut, not wrapped onto a second line
    assert len(lines) == 4


def test_narrow_terminals_shrink_the_flexible_column_first():
    out = io.StringIO()
    TableWriter([c for c in COLS if not c.wide], out, total_width=60).row(_rows(1)[0])
    line = out.getvalue().rstrip("\n")
    assert len(line) <= 60 and "1000" in line and "137" in line


def test_json_streams_one_valid_array_and_jsonl_one_object_per_line():
    out = io.StringIO()
    n = stream_rows(iter(_rows(5)), COLS, Format.json, out=out)
    assert n == 5 and [r["id"] for r in json.loads(out.getvalue())] == [1000, 1001, 1002, 1003, 1004]
    out = io.StringIO()
    stream_rows(iter([]), COLS, Format.json, out=out)
    assert json.loads(out.getvalue()) == []
    out = io.StringIO()
    stream_rows(iter(_rows(3)), COLS, Format.jsonl, out=out,
                as_json=lambda r: {"id": r["id"], "at": datetime(2024, 1, 1, tzinfo=timezone.utc)})
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and json.loads(lines[0]) == {"id": 1000, "at": "2024-01-01T00:00:00+00:00"}


def test_wide_adds_columns_and_measured_columns_fit_their_values():
    out = io.StringIO()
    stream_rows(iter([{**_rows(1)[0], "command": "python simulate.py"}]), COLS, Format.table, wide=True, out=out)
    assert "command" in out.getvalue().splitlines()[0]
    cols = measured_cols([{"id": 7, "name": "ab"}, {"id": 12345, "name": "abcdef"}], ["id", "name"])
    assert [(c.header, c.width, c.kind) for c in cols] == [("id", 5, "int"), ("name", 6, "text")]


def test_listing_log_paths_are_the_ones_logs_py_names():
    from torc_hpc import logs
    from torc_hpc.cli.jobs import log_paths

    wf = {"id": 3, "output_dir": "out", "working_dir": "/work/here"}
    assert log_paths(wf)(42, 2, 3) == logs.attempt_logs(wf, 42, 2, 3).as_dict()
