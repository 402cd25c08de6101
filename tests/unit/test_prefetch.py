"""How deep a worker prefetches: about PREFETCH_WINDOW_S of work beyond its slots, 2× to PREFETCH_MAX×."""

import pytest

from torc_hpc.worker.loop import PREFETCH_MAX, prefetch_factor


@pytest.mark.parametrize("avg_runtime_s, factor", [
    (None, 2),        # nothing measured yet: the slots and as many waiting
    (3600.0, 2),      # long jobs: never hold more than one waiting per slot
    (1.0, 2),
    (0.25, 2),        # one waiting job per slot already covers the window
    (0.05, 6),        # 50 ms jobs: 5 waiting per slot
    (0.01, 26),       # 10 ms jobs: 25 waiting per slot = 250 ms
    (0.001, PREFETCH_MAX),  # 1 ms jobs
    (0.0001, PREFETCH_MAX),
    (0.0, PREFETCH_MAX),
])
def test_prefetch_factor(avg_runtime_s, factor):
    assert prefetch_factor(avg_runtime_s) == factor
