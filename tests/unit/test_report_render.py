"""The HTML report as a pure function of its data: one bar per attempt, the failure list, resource plots,
the DAG drawn or staged, nothing fetched from anywhere, and its size for 10,000 jobs."""

import re
from array import array
from datetime import datetime, timedelta, timezone

from torc_hpc.report.data import Attempt, Job, ReportData
from torc_hpc.report.render import render

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
WF = {"id": 7, "name": "sweep <&>", "run_id": 1, "created_at": T0, "spec_path": "/x/sweep.yaml", "canceled_at": None,
      "output_dir": "out", "working_dir": "/x"}


def synthetic(n_jobs: int, *, failed_every: int = 50, workers: int = 4, chain: bool = False) -> ReportData:
    jobs, attempts = [], []
    for i in range(n_jobs):
        jid = 1000 + i
        failed = i % failed_every == 7
        status = "failed" if failed else "completed"
        jobs.append(Job(jid, f"sim_{i:05d}", status, 2 if failed else 1, 3 if failed else 0, 1, 0,
                        2**30, 600, None, 1 + i % workers, 1))
        start = T0 + timedelta(seconds=i * 0.5)
        if failed:
            attempts.append(Attempt(jid, 1, 1, "failed", 3, start, start + timedelta(seconds=2), 2.0, 2**28, 1.5,
                                    1 + i % workers))
            start += timedelta(seconds=3)
        attempts.append(Attempt(jid, 1, 2 if failed else 1, status, 3 if failed else 0, start,
                                start + timedelta(seconds=4 + i % 7), 4.0 + i % 7, (i % 9 + 1) * 2**27,
                                3.0, 1 + i % workers))
    failures = [{"id": j.id, "name": j.name, "status": "failed", "return_code": 3, "run_id": 1, "attempt_id": 2,
                 "decision": "failed: exit code 3 and no failure handler", "stderr_tail": "boom <b>\nline 2",
                 "logs": {"stderr": f"/x/out/job_stdio/job_wf7_j{j.id}_r1_a2.e"}}
                for j in jobs if j.status == "failed"]
    parents = array("q", (1000 + i for i in range(n_jobs - 1)) if chain else ())
    children = array("q", (1001 + i for i in range(n_jobs - 1)) if chain else ())
    return ReportData(
        workflow=WF, generated_at=T0 + timedelta(hours=2),
        counts={"completed": n_jobs - len(failures), "failed": len(failures)}, jobs=jobs, attempts=attempts,
        attempts_truncated=False, parents=parents, children=children,
        workers=[{"id": w, "hostname": f"node{w}", "pid": 100 + w, "slurm_job_id": None} for w in range(1, workers + 1)],
        allocations=[], failures={"total": len(failures), "jobs": failures[:200]},
        failure_events=[{"id": k, "ts": T0, "job_id": f["id"], "kind": "failed", "attempt_id": 2, "run_id": 1,
                         "detail": {"return_code": 3, "reason": "exit code 3 and no failure handler"}}
                        for k, f in enumerate(failures)],
        retries=0)


def test_one_bar_per_attempt_and_the_failure_list():
    d = synthetic(300)
    html = render(d)
    timeline = html[html.index("<svg id='timeline'"):]
    timeline = timeline[:timeline.index("</svg>")]
    bars = re.findall(r"<rect class='b (\w+)'", timeline)
    assert len(bars) == len(d.attempts) == 306
    assert bars.count("retried") == 6 and bars.count("fail") == 6      # first attempts retried, second ones failed
    assert html.count("<li class='failure'") == 6
    assert "boom &lt;b&gt;" in html and "sweep &lt;&amp;&gt;" in html   # everything user-written is escaped
    lanes = re.findall(r"<text x='4' y='\d+'>worker (\d) · node\d</text>", html)
    assert sorted(lanes) == ["1", "2", "3", "4"]


def test_self_contained_no_script_and_no_remote_resource():
    html = render(synthetic(50))
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html


def test_a_small_dag_is_drawn_and_a_large_one_becomes_stages():
    small = render(synthetic(20, chain=True))
    assert small.count("<g class='node'>") == 20 and small.count("class='edge'") == 19
    large = render(synthetic(400, chain=False))
    assert "<table id='stages'>" in large and "sim_# ×400" in large


def test_resource_plots_flag_jobs_above_their_request():
    d = synthetic(30)
    d.attempts = [a._replace(peak_memory_bytes=2**28) for a in d.attempts]      # everyone used 256 MiB of 1 GiB
    html = render(d)
    assert "<path class='pt over'" not in html and re.search(r"memory: 30 jobs[^<]*<b>0</b> above it", html)
    d.attempts[3] = d.attempts[3]._replace(peak_memory_bytes=3 * 2**30)      # but one used 3 GiB
    html = render(d)
    assert "<path class='pt over'" in html and re.search(r"memory: 30 jobs[^<]*<b>1</b> above it", html)
    assert "<h3>memory: closest to or above the request</h3>" in html and "sim_00003" in html


def test_report_size_for_10000_jobs_stays_small():
    html = render(synthetic(10_000))
    size = len(html.encode())
    print(f"report for 10,000 jobs / {10_000 + 200} attempts: {size / 2**20:.2f} MiB")
    assert size < 3 * 2**20
