"""Every example spec validates and expands (recovery scripts are checked relative to the repo root,
where the README runs them from)."""

from pathlib import Path

import pytest

from torc_hpc.spec import expand_workflow, load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "yaml").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid(path):
    spec, loc = load_spec(path, base_dir=ROOT)
    wf = expand_workflow(spec, loc, str(path))
    assert wf.jobs


def test_simulation_example_shape():
    spec, loc = load_spec(ROOT / "examples/yaml/failure_handler_simulation.yaml", base_dir=ROOT)
    wf = expand_workflow(spec, loc)
    assert len(wf.jobs) == 10 and wf.edge_count == 9 and wf.jobs[-1].name == "summarize"
