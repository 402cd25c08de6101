"""Memory, durations, parameter values and placeholder substitution."""

import pytest

from torc_hpc.core.units import format_duration, parse_duration, parse_memory
from torc_hpc.spec.params import combinations, parse_values, substitute


@pytest.mark.parametrize("text,expected", [
    ("2g", 2 * 1024**3), ("512M", 512 * 1024**2), ("1.5GiB", int(1.5 * 1024**3)), ("100k", 102400),
    ("1024", 1024), (4096, 4096), ("2 GB", 2 * 1024**3),
])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["two gigs", "-1g", "1x", ""])
def test_parse_memory_rejects(bad):
    with pytest.raises(ValueError):
        parse_memory(bad)


@pytest.mark.parametrize("text,expected", [
    ("PT30M", 1800), ("P1DT2H", 93600), ("PT1H30M15S", 5415), ("01:30:00", 5400), ("45:00", 2700),
    ("1-00:00:00", 86400), ("90", 90), (120, 120), ("P0DT1M", 60),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["soon", "PT", "1:2:3:4", "P"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration():
    assert format_duration(5400) == "01:30:00"
    assert format_duration(90061) == "1-01:01:01"


@pytest.mark.parametrize("raw,expected", [
    ("0:2", [0, 1, 2]),
    ("0:10:2", [0, 2, 4, 6, 8, 10]),
    ("5:1:-2", [5, 3, 1]),
    ("[1,5,10]", [1, 5, 10]),
    ("['a','b']", ["a", "b"]),
    ("0.0:1.0:0.25", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("0.1:0.3:0.1", [0.1, 0.2, 0.3]),  # no float drift: 3 values, not 2
    (7, [7]),
    ([1, "x"], [1, "x"]),
    ("hello", ["hello"]),
])
def test_parse_values(raw, expected):
    assert parse_values(raw) == expected


@pytest.mark.parametrize("bad", ["0:5:0", "5:0", "a:b", "[1,", "[]", "1:2:3:4"])
def test_parse_values_rejects(bad):
    with pytest.raises(ValueError):
        parse_values(bad)


def test_combinations_product_and_zip():
    assert combinations({"a": [1, 2], "b": ["x", "y"]}, "product") == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert combinations({"a": [1, 2], "b": ["x", "y"]}, "zip") == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    with pytest.raises(ValueError, match="equal length"):
        combinations({"a": [1, 2], "b": ["x"]}, "zip")


def test_substitute_leaves_shell_braces_alone():
    assert substitute("run {i:03d} ${HOME} {a,b} {unknown}", {"i": 7}) == "run 007 ${HOME} {a,b} {unknown}"
    assert substitute("lr={lr:.3f}", {"lr": 0.001}) == "lr=0.001"
