"""The pure planner of a `torc jobs spawn` batch: names, sibling edges, cycles, resources, shapes."""

import pytest

from torc_hpc.spec.models import ResourceRequirementsSpec
from torc_hpc.spec.spawn import SpawnRejected, plan_batch, resource_table

RR = resource_table({"resource_requirements": [{"name": "big", "num_cpus": 8, "memory": "4g", "runtime": "PT2H"}]})


def test_siblings_external_names_and_resources():
    jobs = plan_batch([{"name": "a", "command": "x", "resource_requirements": "big"},
                       {"name": "b", "command": "y", "depends_on": ["a", "done_before"], "priority": 5,
                        "cancel_on_blocking_job_failure": False}], RR)
    assert [(j.name, j.siblings, j.external) for j in jobs] == [("a", [], []), ("b", [0], ["done_before"])]
    assert (jobs[0].resources.num_cpus, jobs[0].resource_requirements) == (8, "big")
    assert (jobs[1].resources.num_cpus, jobs[1].priority, jobs[1].cancel_on_blocking_job_failure) == (1, 5, False)


@pytest.mark.parametrize("batch, message", [
    ({"name": "a"}, "must be a JSON list"),
    ([{"name": "a"}], "job 1: command"),
    ([{"name": "a", "command": "x", "surprise": 1}], "job 1: surprise"),
    ([{"name": "a", "command": "x"}, {"name": "a", "command": "y"}], "appears twice"),
    ([{"name": "a", "command": "x", "resource_requirements": "huge"}], "unknown resource_requirements 'huge'"),
    ([{"name": "a", "command": "x", "depends_on": ["a"]}], "depends on itself"),
    ([{"name": "a", "command": "x", "depends_on": ["c"]}, {"name": "b", "command": "y", "depends_on": ["a"]},
      {"name": "c", "command": "z", "depends_on": ["b"]}], "cycle: a → c → b → a"),
])
def test_bad_batches_are_refused_with_the_reason(batch, message):
    with pytest.raises(SpawnRejected) as e:
        plan_batch(batch, RR)
    assert message in str(e.value)


def test_an_inline_resource_spec_is_taken_as_is():
    [j] = plan_batch([{"name": "a", "command": "x", "resource_requirements": {"num_cpus": 2, "memory": "1m"}}], {})
    assert (j.resources.num_cpus, j.resources.memory_bytes, j.resource_requirements) == (2, 2**20, None)
    assert isinstance(j.resources, ResourceRequirementsSpec)
