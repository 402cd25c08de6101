"""Memory, durations, parameter values and placeholder substitution."""

import pytest

from torc_hpc.core.units import format_duration, parse_duration, parse_memory
from torc_hpc.spec.params import Template, combination_count, combinations, parameter_values


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
    assert list(parameter_values(raw)) == expected


@pytest.mark.parametrize("bad", ["0:5:0", "5:0", "a:b", "[1,", "[]", "1:2:3:4", "0:nan", "0:inf", "1.0:0.0",
                                 "[[1, 2]]", "[True]", "['a\\nb']", "[" * 10000, True])
def test_parse_values_rejects(bad):
    with pytest.raises(ValueError):
        parameter_values(bad)


@pytest.mark.parametrize("raw,count", [
    ("0:100000000", 100_000_001), ("0:1:0.00000001", 100_000_001), ("10:0:-3", 4), ("0:1e999999999", 10**18),
    ("0:1e30:1e-30", 10**18), ("-5:5", 11),
])
def test_counts_without_materializing(raw, count):
    values = parameter_values(raw)
    assert combination_count([values], "product") == count
    assert combination_count([values, values], "product") == min(count * count, 10**18)


def test_combinations_product_and_zip():
    assert list(combinations([[1, 2], ["x", "y"]], "product")) == [(1, "x"), (1, "y"), (2, "x"), (2, "y")]
    assert list(combinations([[1, 2], ["x", "y"]], "zip")) == [(1, "x"), (2, "y")]
    assert list(combinations([], "product")) == [()]
    with pytest.raises(ValueError):
        combination_count([[1, 2], ["x"]], "zip")


def test_templates_leave_shell_braces_alone():
    t = Template("run {i:03d} ${HOME} {a,b} {unknown} awk '{print}'", {"i": 0})
    assert t.render((7,)) == "run 007 ${HOME} {a,b} {unknown} awk '{print}'"
    assert t.unknown == ["HOME", "unknown", "print"]  # only names, depends_on… refuse these
    assert Template("lr={lr:.3f}", {"lr": 0}).render((0.001,)) == "lr=0.001"


@pytest.mark.parametrize("spec,ok", [(">8", True), ("08.3f", True), (">1500000000", False), (".999f", False),
                                     ("x>256", True), ("x>257", False), ("9" * 5000, False)])
def test_format_widths_are_bounded(spec, ok):
    assert (Template("{i:" + spec + "}", {"i": 0}).spec_problem() is None) is ok
