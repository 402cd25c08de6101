"""The corpus specs must be well-formed in their own format, so that every xfail in test_torc_specs.py fails
for the missing feature and not for a typo in the spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

SPECS = Path(__file__).parent / "specs"


def _files(*suffixes):
    return sorted(p for p in SPECS.rglob("*") if p.suffix in suffixes)


@pytest.mark.parametrize("path", _files(".yaml"), ids=lambda p: p.name)
def test_yaml_is_wellformed(path):
    assert isinstance(yaml.safe_load(path.read_text()), dict)


@pytest.mark.parametrize("path", _files(".json"), ids=lambda p: p.name)
def test_json_is_wellformed(path):
    assert isinstance(json.loads(path.read_text()), (dict, list))


@pytest.mark.parametrize("path", _files(".json5"), ids=lambda p: p.name)
def test_json5_is_wellformed(path):
    json5 = pytest.importorskip("json5", reason="the json5 parser arrives with issue 14's JSON5 support")
    assert isinstance(json5.loads(path.read_text()), dict)


@pytest.mark.parametrize("path", _files(".kdl"), ids=lambda p: p.name)
def test_kdl_is_wellformed(path):
    ckdl = pytest.importorskip("ckdl", reason="the ckdl parser arrives with issue 14's KDL support")
    assert ckdl.parse(path.read_text(), version="any").nodes
