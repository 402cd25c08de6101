"""Mutated JSON5 and KDL specs (seeded, bounded): every one is accepted or refused with a SpecError, none
crashes and none takes long (the KDL scanner's patterns and the parse-error search are linear)."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from torc_hpc.errors import SpecError
from torc_hpc.spec import expand_workflow, load_spec_text

SPECS = Path(__file__).parent / "specs"
CHARS = list('{}"#/-*\\;=()\n rtx0123.[],:\'')


class _Slow(Exception):
    pass


def _mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(text) + 1)
        op = rng.random()
        if op < 0.4:
            text = text[:i] + rng.choice(CHARS) + text[i:]
        elif op < 0.8:
            text = text[:i] + text[i + 1:]
        else:
            text = text[:i] + text[i:i + 20] + text[i:]
    return text


@pytest.mark.parametrize("suffix", [".kdl", ".json5"])
def test_mutated_specs_never_crash_or_hang(suffix):
    sources = sorted(SPECS.glob(f"*{suffix}"))
    rng = random.Random(20261127)

    def slow(*_):
        raise _Slow

    previous = signal.signal(signal.SIGALRM, slow)
    try:
        for n in range(400):
            src = rng.choice(sources)
            text = _mutate(rng, src.read_text())
            signal.alarm(5)
            try:
                spec, loc = load_spec_text(text, f"m{suffix}")
                expand_workflow(spec, loc, f"m{suffix}")
            except SpecError:
                pass
            except _Slow:
                pytest.fail(f"mutation {n} of {src.name} took over 5 s:\n{text}")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)


# Found by the fuzzing above (with Torc's own examples as seeds), kept as fixed cases.
UNCLOSED_ANNOTATION = 'name "x"\n' + 'slurm_scheduler ("s" {\n    walltime "01:00:00\n}\n' + 'job "a" {\n    command "true"\n}\n' * 200


def test_unclosed_annotation_with_quotes_after_it_is_refused_quickly():
    def slow(*_):
        raise _Slow

    previous = signal.signal(signal.SIGALRM, slow)
    signal.alarm(5)
    try:
        with pytest.raises(SpecError, match="invalid KDL"):
            load_spec_text(UNCLOSED_ANNOTATION, "s.kdl")
    except _Slow:
        pytest.fail("the KDL scanner backtracked on an unclosed annotation")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_zip_of_unequal_file_parameters_is_a_located_problem():
    text = ("name: z\nfiles:\n  - name: f_{a}_{b}\n    path: p\n    parameter_mode: zip\n"
            "    parameters: {a: '1:2', b: '1:3'}\njobs:\n  - {name: j, command: 'true'}\n")
    spec, loc = load_spec_text(text, "z.yaml")
    with pytest.raises(SpecError) as e:
        expand_workflow(spec, loc, "z.yaml")
    assert e.value.problems[0].field == "files[0].parameter_mode" and e.value.problems[0].line == 5
