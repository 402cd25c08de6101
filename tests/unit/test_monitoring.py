"""Resource monitoring policies (core.monitoring) and a job's own peak memory (core.peak_memory): tables."""

import pytest

from torc_hpc.core import monitoring, peak_memory

MB = 2**20


@pytest.mark.parametrize("ru,worker,sampled,expected,source", [
    (57 * MB, 57 * MB, None, None, "unknown"),          # `true`: ru_maxrss is the worker's own peak
    (57 * MB, 58 * MB, None, None, "unknown"),          # the worker grew since: still not the job's
    (57 * MB, 57 * MB, 1 * MB, 1 * MB, "sampled"),      # the monitor saw the job's own VmHWM
    (210 * MB, 57 * MB, None, 210 * MB, "rusage"),      # above the worker: exact
    (210 * MB, 57 * MB, 205 * MB, 210 * MB, "rusage"),  # samples can only miss the peak, never exceed it
    (None, 57 * MB, 3 * MB, 3 * MB, "sampled"),
])
def test_own_peak(ru, worker, sampled, expected, source):
    assert peak_memory.own_peak(ru, worker, sampled) == expected
    assert peak_memory.source(ru, worker, sampled) == source


@pytest.mark.parametrize("rm,ec,expected", [
    (None, None, None),                                                     # nothing asked: no monitor at all
    ({"jobs": {"enabled": False}}, None, None),
    (None, {"limit_resources": False}, None),
    (None, {"limit_resources": True, "oom_exit_code": 99}, (2.0, False, False, True, 99)),
    ({"sample_interval_seconds": 5, "jobs": {"enabled": True, "granularity": "summary"}}, None,
     (5.0, True, False, False, 137)),
    ({"sample_interval_seconds": 1, "jobs": {"enabled": True, "granularity": "time_series"}},
     {"limit_resources": True}, (1.0, True, True, True, 137)),
])
def test_settings(rm, ec, expected):
    got = monitoring.settings(rm, ec)
    if expected is None:
        assert got is None
    else:
        assert (got.interval_s, got.summary, got.series, got.limit_memory, got.oom_exit_code) == expected


@pytest.mark.parametrize("rss,asked,over", [(101, 100, True), (100, 100, False), (10**9, 0, False),
                                              (10**9, None, False)])
def test_over_memory(rss, asked, over):
    assert monitoring.over_memory(rss, asked) is over


def test_samples_chunks_and_summary():
    s = monitoring.Samples(interval_s=2)
    s.add(1000.0, 50.0, 100 * MB, 1, 101 * MB)
    s.add(1002.0, 150.0, 300 * MB, 3, 250 * MB)
    chunk = s.take_chunk(frozenset({"memory_bytes", "cpu_percent"}))
    assert chunk == {"chunk": 0, "first_at": 1000.0, "interval_ms": 2000, "cpu_percent": [50.0, 150.0],
                     "memory_kib": [100 * 1024, 300 * 1024], "processes": None}
    assert s.take_chunk(frozenset(monitoring.METRICS)) is None
    s.add(1004.0, 100.0, 200 * MB, 2)
    assert s.take_chunk(frozenset(monitoring.METRICS))["chunk"] == 1
    summary = monitoring.summarize(s, cpu_time_s=6.0, exec_time_s=6.0, peak_memory_bytes=None)
    assert summary == {"samples": 3, "interval_s": 2, "cpu_percent_peak": 150.0, "cpu_percent_avg": 100.0,
                       "memory_peak_bytes": 300 * MB, "memory_avg_bytes": 200 * MB, "processes_peak": 3}
    assert s.own_peak == 250 * MB
    empty = monitoring.summarize(monitoring.Samples(interval_s=1), 0.01, 0.02, 1 * MB)
    assert empty["samples"] == 0 and empty["memory_peak_bytes"] == 1 * MB and empty["cpu_percent_avg"] == 50.0
