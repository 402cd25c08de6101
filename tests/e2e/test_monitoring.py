"""Resource monitoring, memory limits and a job's own peak memory, with real processes.

The peak-memory checks compare with GNU time (`/usr/bin/time -f %M`, the maximum resident set size the
kernel reports for the command, measured from a ~1 MB parent so its own pollution is ~1 MB): a job that
peaks above the worker's own footprint must match it within 5 % + 2 MiB (the interpreter's start-up varies
by a few hundred KiB between runs, and page-cache pages counted in RSS vary with what is cached); a small job
(`true`) must never be reported with the worker's ~60 MB: either unknown (NULL) or within 2 MiB of GNU time.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.e2e.test_run import run_json

ALLOC = textwrap.dedent("""\
    import sys, time
    mb, hold = int(sys.argv[1]), float(sys.argv[2])
    b = bytearray(mb * 1024 * 1024)
    for i in range(0, len(b), 4096):
        b[i] = 1
    end = time.time() + hold
    while time.time() < end:
        pass
    """)
MIB = 2**20


def gnu_time_max_rss(cwd, *argv) -> int:
    if not os.path.exists("/usr/bin/time"):
        pytest.skip("GNU time (/usr/bin/time) is not installed: apt-get install time")
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], cwd=cwd, capture_output=True, text=True, check=True)
    return int(proc.stderr.strip().splitlines()[-1]) * 1024


def results_by_job(torc):
    return {r["job_name"]: r for r in torc.json("results", "list", "last")}


def test_peak_memory_is_the_jobs_own_not_the_workers(torc, db):
    """Issue 9 item 10: `true` used to report the worker's ~57 MB (posix_spawn's vfork makes exec record the
    worker's memory into the child's ru_maxrss)."""
    torc.write("alloc.py", ALLOC)
    py = sys.executable
    torc.write("wf.yaml", textwrap.dedent(f"""\
        name: peaks
        jobs:
          - {{name: tiny, command: "true"}}
          - {{name: big, command: "{py} alloc.py 200 0.2", resource_requirements: {{memory: 1g}}}}
        """))
    rc, s = run_json(torc, "wf.yaml", "-j", "1")
    assert rc == 0, s
    got = results_by_job(torc)
    ref_true = gnu_time_max_rss(torc.cwd, shutil.which("true"))
    ref_big = gnu_time_max_rss(torc.cwd, py, "alloc.py", "200", "0.2")
    tiny = got["tiny"]["peak_memory_bytes"]
    assert tiny is None or abs(tiny - ref_true) <= 2 * MIB, (tiny, ref_true)
    big = got["big"]["peak_memory_bytes"]
    assert big is not None and abs(big - ref_big) <= 0.05 * ref_big + 2 * MIB, (big, ref_big)


def test_monitored_jobs_get_a_summary_a_series_and_their_own_small_peak(torc, db):
    torc.write("alloc.py", ALLOC)
    py = sys.executable
    torc.write("wf.yaml", textwrap.dedent(f"""\
        name: monitored
        resource_monitor:
          sample_interval_seconds: 1
          flush_interval_seconds: 1
          jobs: {{enabled: true, granularity: time_series}}
        jobs:
          - {{name: hog, command: "{py} alloc.py 150 3.5", resource_requirements: {{memory: 1g}}}}
          - {{name: small, command: "{py} alloc.py 20 2.5"}}
          - {{name: instant, command: "true"}}
        """))
    rc, s = run_json(torc, "wf.yaml", "-j", "3")
    assert rc == 0, s
    wf = s["workflow_id"]
    rows = {r["job_name"]: r for r in db.all("attempt_resource_summaries", workflow_id=wf, limit=100)}
    assert set(rows) == {"hog", "small", "instant"}
    hog = rows["hog"]
    assert hog["samples"] >= 2 and hog["interval_s"] == 1
    # (the first sample may come while it still fills its 150 MB: the average is only bounded by the peak)
    assert 150 * MIB <= hog["memory_peak_bytes"] <= 400 * MIB
    assert 5 * MIB <= hog["memory_avg_bytes"] <= hog["memory_peak_bytes"]
    assert hog["cpu_percent_peak"] > 0 and hog["cpu_percent_avg"] > 0 and hog["processes_peak"] == 1
    assert rows["instant"]["samples"] == 0
    chunks = db.all("attempt_resource_series", workflow_id=wf, job_ids=[hog["job_id"]])
    assert len(chunks) >= 2, "flush_interval_seconds 1: the samples are written while the job runs"
    assert [c["chunk"] for c in chunks] == list(range(len(chunks)))
    n = sum(len(c["memory_kib"]) for c in chunks)
    assert n == hog["samples"] and all(len(c["cpu_percent"]) == len(c["memory_kib"]) for c in chunks)
    assert max(k for c in chunks for k in c["memory_kib"]) * 1024 >= 150 * MIB
    # a job below the worker's footprint: its own peak comes from the samples (VmHWM), close to GNU time's
    small = results_by_job(torc)["small"]["peak_memory_bytes"]
    ref = gnu_time_max_rss(torc.cwd, py, "alloc.py", "20", "0.1")
    assert small is not None and abs(small - ref) <= 0.05 * ref + 2 * MIB, (small, ref)
    # the report plots them (inline SVG, no script)
    out = torc.json("report", "last", "-o", str(torc.cwd / "r.html"))
    html = (torc.cwd / "r.html").read_text()
    assert "<section id='monitoring'>" in html and "<script" not in html
    assert html.count("<figure class='series-fig'") == 2      # hog and small have samples; instant none
    assert "<polyline class='mem'" in html and "<polyline class='cpu'" in html
    assert out["path"].endswith("r.html")


def test_limit_resources_kills_a_job_over_its_memory_request(torc):
    torc.write("alloc.py", ALLOC)
    py = sys.executable
    torc.write("wf.yaml", textwrap.dedent(f"""\
        name: limits
        execution_config: {{limit_resources: true, oom_exit_code: 99}}
        jobs:
          - {{name: greedy, command: "{py} alloc.py 300 30", resource_requirements: {{memory: 100m}}}}
          - {{name: modest, command: "{py} alloc.py 20 2", resource_requirements: {{memory: 500m}}}}
        """))
    rc, s = run_json(torc, "wf.yaml", "-j", "2")
    assert rc == 1
    jobs = {j["name"]: j for j in torc.json("jobs", "list", "last")}
    assert jobs["modest"]["status"] == "completed"
    assert jobs["greedy"]["status"] == "terminated" and jobs["greedy"]["return_code"] == 99, jobs["greedy"]
    greedy = results_by_job(torc)["greedy"]
    assert greedy["exec_time_s"] < 20, "killed at the first samples over the limit, not at the end"
    ev = [e for e in torc.json("events", "list", "last") if e["job_name"] == "greedy" and e["kind"] == "terminated"]
    assert "limit_resources" in ev[-1]["detail"]["message"] and "exceeded its request" in ev[-1]["detail"]["message"]


def test_no_monitor_thread_without_monitoring(torc):
    """Plain workflows pay nothing for monitoring: their worker runs one thread fewer than a monitored one
    (counted from a job: the threads of its parent, the worker)."""
    count = "bash -c 'sleep 0.3; ls /proc/$PPID/task | wc -l > threads_$TORC_WORKFLOW_ID.txt'"
    torc.write("plain.yaml", f"name: plain\njobs:\n  - {{name: look, command: \"{count}\"}}\n")
    torc.write("mon.yaml", f"name: mon\nresource_monitor: {{jobs: {{enabled: true}}}}\n"
                           f"jobs:\n  - {{name: look, command: \"{count}\"}}\n")
    rc1, s1 = run_json(torc, "plain.yaml")
    rc2, s2 = run_json(torc, "mon.yaml")
    assert rc1 == rc2 == 0
    plain = int((torc.cwd / f"threads_{s1['workflow_id']}.txt").read_text())
    monitored = int((torc.cwd / f"threads_{s2['workflow_id']}.txt").read_text())
    assert monitored == plain + 1, (plain, monitored)
