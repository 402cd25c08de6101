"""`torc report` in a real browser: Debian's Chromium loads the file headless with no network at all, and the
DOM it built has one timeline bar per attempt and the failure list; a screenshot is kept in the test's
output directory."""

import json
import os
import re
import shutil
import subprocess
import textwrap

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--mute-audio",
         # belt and braces beside the empty network namespace: no name resolves, no proxy answers
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--window-size=1280,2000"]


def _install_chromium() -> str | None:
    """Debian's chromium, installed here when root (the test set-up), else a reason to skip."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and this is not a root Debian machine to apt-get it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", "chromium"]
    if subprocess.run(cmd, env=env, capture_output=True, timeout=1200).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            pytest.skip(f"apt-get install chromium failed: {proc.stderr.strip()[-300:]}")
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium():
    return _install_chromium()


def _offline(argv: list[str]) -> list[str]:
    """Run in a network namespace of its own (no interface but loopback) when we may."""
    if shutil.which("unshare") and subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0:
        return ["unshare", "--net", *argv]
    return argv


def _browser(chromium, tmp_path, *args) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(_offline([chromium, *FLAGS, f"--user-data-dir={profile}", *args]), capture_output=True,
                          text=True, timeout=180)


SPEC = textwrap.dedent("""\
    name: report_demo
    failure_handlers:
      - name: h
        rules: [{exit_codes: [10], max_retries: 3}]
    jobs:
      - name: sim_{i}
        command: "bash -c 'echo working {i}; sleep 0.{i}; if [ {i} -eq 3 ] && [ $TORC_ATTEMPT_ID -lt 3 ]; then echo flaky >&2; exit 10; fi; if [ {i} -eq 4 ]; then echo Traceback: it broke >&2; exit 2; fi'"
        failure_handler: h
        parameters: {i: "1:5"}
        resource_requirements: {num_cpus: 1, memory: 100m, runtime: PT1M}
      - {name: summary, command: "echo done", depends_on: ["sim_{i}"], parameters: {i: "1:5"}}
    """)


def test_the_report_opens_offline_with_a_bar_per_attempt_and_the_failures(torc, chromium, tmp_path):
    torc.write("wf.yaml", SPEC)
    torc("run", "wf.yaml", "--format", "json", "-j", "2", check=False)
    attempts = torc.json("results", "list", "last")
    jobs = {j["name"]: j for j in torc.json("jobs", "list", "last")}
    failed = [n for n, j in jobs.items() if j["status"] in ("failed", "terminated", "pending_failed")]
    assert len(attempts) == 5 + 2 and failed == ["sim_4"]            # sim_3 needed three attempts; summary never ran

    out = torc.json("report", "last", "-o", str(tmp_path / "report.html"))
    assert out["bytes"] == (tmp_path / "report.html").stat().st_size and out["attempts"] == len(attempts)

    page = f"file://{tmp_path / 'report.html'}"
    dom = _browser(chromium, tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    timeline = html[html.index('<svg id="timeline"'):]
    timeline = timeline[:timeline.index("</svg>")]
    bars = re.findall(r'<rect class="b (\w+)"', timeline)
    assert len(bars) == len(attempts)
    assert sorted(bars) == sorted(["ok"] * 4 + ["retried"] * 2 + ["fail"])   # sim_3's first two were retried
    failures = re.findall(r'<li class="failure" data-job="(\d+)">(.*?)</li>', html, re.S)
    assert [int(j) for j, _ in failures] == [jobs["sim_4"]["id"]]   # ...and sim_4 is the one failure listed
    assert "Traceback: it broke" in failures[0][1] and "no rule matched exit code 2" in failures[0][1]
    assert "rule 1 matched exit code 10" in html                      # the handler's decisions are there

    shot = tmp_path / "report.png"
    proc = _browser(chromium, tmp_path, f"--screenshot={shot}", page)
    assert proc.returncode == 0 and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    print(f"screenshot: {shot}")
    assert json.loads(json.dumps(out))["path"].endswith("report.html")


MONITORED = textwrap.dedent("""\
    name: monitored_report
    resource_monitor:
      sample_interval_seconds: 1
      jobs: {enabled: true, granularity: time_series}
    jobs:
      - name: busy
        command: "bash -c 'end=$((SECONDS+3)); while [ $SECONDS -lt $end ]; do :; done'"
    """)


def test_the_report_draws_the_monitored_samples(torc, chromium, tmp_path):
    """resource_monitor's samples become an inline SVG chart that Chromium renders with no script."""
    torc.write("wf.yaml", MONITORED)
    torc("run", "wf.yaml", "--format", "json")
    torc.json("report", "last", "-o", str(tmp_path / "report.html"))
    page = f"file://{tmp_path / 'report.html'}"
    dom = _browser(chromium, tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<script" not in html
    section = html[html.index('<section id="monitoring">'):]
    section = section[:section.index("</section>")]
    assert re.search(r'<table id="monitor-summary">.*<td>busy</td>', section, re.S)
    chart = section[section.index('<svg class="series"'):]
    points = re.findall(r'<polyline class="cpu" points="([^"]+)"', chart)
    assert points and len(points[0].split()) >= 2          # at least two samples drawn as a line
    shot = tmp_path / "monitored.png"
    proc = _browser(chromium, tmp_path, f"--screenshot={shot}", page)
    assert proc.returncode == 0 and shot.stat().st_size > 10_000, proc.stderr[-2000:]
