"""`torc watch --ai-recovery`: when to run the agent (pure, table-tested), the run lease, and the real thing
end to end: `torc watch WF --once --ai-recovery --ai-agent CMD` with a deterministic agent written with the
MCP SDK's client; a missing, failing or hanging agent is one line and the jobs stay pending."""

from __future__ import annotations

import json
import shlex
import sys
import time
from datetime import datetime, timedelta, timezone

import psutil
import pytest

from tests.mcp.conftest import REGEX_AGENT, events_of, jobs_of
from torc_hpc.db import Database
from torc_hpc.watch.ai_recovery import DEFAULT_AGENT, Snapshot, agent_argv, decide, mcp_config, server_command

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


@pytest.mark.parametrize("snap, now, run, why", [
    (Snapshot(0), T0, False, "no pending_failed"),
    # the cluster watcher looking at someone else's workflow: never (the owner's watcher does it)
    (Snapshot(2, owned=False, newest_pending_at=T0 - MIN), T0, False, "only as the workflow's owner"),
    (Snapshot(2, newest_pending_at=T0 - MIN), T0, True, "2 job(s) pending_failed"),
    (Snapshot(2, newest_pending_at=T0 - MIN, lease_expires_at=T0 + MIN, last_started_at=T0 - MIN), T0, False,
     "in progress"),
    # an expired lease (its watcher died mid-run, long ago) does not block
    (Snapshot(2, newest_pending_at=T0 - 90 * MIN, lease_expires_at=T0 - 60 * MIN, last_started_at=T0 - 80 * MIN),
     T0, True, "still pending_failed"),
    # the last run saw these jobs and ended 10 min ago: wait
    (Snapshot(2, newest_pending_at=T0 - 30 * MIN, last_started_at=T0 - 20 * MIN, last_finished_at=T0 - 10 * MIN,
              last_outcome="failed"), T0, False, "already saw these 2 job(s)"),
    # a missing agent command looked at nothing: try again next cycle (the person may have fixed it)
    (Snapshot(2, newest_pending_at=T0 - 30 * MIN, last_started_at=T0 - 20 * MIN, last_finished_at=T0 - 20 * MIN,
              last_outcome="missing"), T0, True, "2 job(s) pending_failed"),
    # ... until retry_after (60 min) has passed
    (Snapshot(2, newest_pending_at=T0 - 90 * MIN, last_started_at=T0 - 80 * MIN, last_finished_at=T0 - 70 * MIN),
     T0, True, "still pending_failed"),
    # a job that appeared after the last run started: run again at once
    (Snapshot(3, newest_pending_at=T0 - MIN, last_started_at=T0 - 20 * MIN, last_finished_at=T0 - 10 * MIN), T0,
     True, "some new since the last agent run"),
])
def test_decide_when_to_run_the_agent(snap, now, run, why):
    d = decide(snap, now, retry_after_s=3600)
    assert d.run is run and why in d.reason


def test_agent_command_line_and_config_keep_passwords_off_disk():
    assert agent_argv(None, "PROMPT", "/tmp/c.json") == [*DEFAULT_AGENT, "-p", "PROMPT", "--mcp-config", "/tmp/c.json"]
    assert DEFAULT_AGENT[0] == "claude" and "mcp__torc" in DEFAULT_AGENT
    assert agent_argv("my-agent --model 'big one'", "P", "c") == ["my-agent", "--model", "big one", "-p", "P",
                                                                 "--mcp-config", "c"]
    with pytest.raises(ValueError):
        agent_argv("  ", "P", "c")
    for url in ("postgresql://alice:s3cret@db/torc", "host=db user=alice password=s3cret dbname=torc"):
        config, env = mcp_config(url, ["/venv/bin/torc", "mcp"])
        text = json.dumps(config)
        assert "s3cret" not in text and env == {"TORC_DATABASE_URL": url}
        server = config["mcpServers"]["torc"]
        assert server["command"] == "/venv/bin/torc" and server["args"] == ["mcp"]
        assert server["env"]["TORC_DATABASE_URL"] == "${TORC_DATABASE_URL}"
    config, _ = mcp_config("postgresql://alice@db/torc", ["torc", "mcp"])
    assert config["mcpServers"]["torc"]["env"]["TORC_DATABASE_URL"] == "postgresql://alice@db/torc"
    # This installation's own `torc`, whatever torc_hpc folder the agent's working directory holds.
    cmd = server_command()
    assert cmd[-1] == "mcp" and (cmd[0].endswith("/torc") or "-I" in cmd)


def test_the_lease_admits_one_run_and_survives_a_crashed_holder(db):
    from tests.helpers import create

    wf = create(db, {"name": "lease", "jobs": [{"name": "a", "command": "true"}]})
    acquire = dict(workflow_id=wf, now=T0, expires_at=T0 + 10 * MIN)
    assert db.one("ai_recovery_acquire", holder="h1", **acquire)["runs"] == 1
    assert db.one("ai_recovery_acquire", holder="h2", **acquire) is None                  # held
    assert db.one("ai_recovery_release", workflow_id=wf, holder="h2", outcome="ok", now=T0) is None   # not theirs
    later = dict(workflow_id=wf, now=T0 + 11 * MIN, expires_at=T0 + 21 * MIN)
    assert db.one("ai_recovery_acquire", holder="h2", **later)["runs"] == 2               # h1 died: expired
    assert db.one("ai_recovery_release", workflow_id=wf, holder="h1", outcome="ok", now=T0) is None  # too late
    assert db.one("ai_recovery_release", workflow_id=wf, holder="h2", outcome="timeout", now=T0 + 12 * MIN)
    row = db.one("ai_recovery_snapshot", workflow_id=wf)
    assert row["holder"] is None and row["lease_expires_at"] is None and row["last_outcome"] == "timeout"
    assert db.one("ai_recovery_acquire", holder="h3", **later)["runs"] == 3               # free again


def _agent(*extra: str) -> str:
    return shlex.join([sys.executable, str(REGEX_AGENT), *extra])


def _watch(torc, wf, *args):
    proc = torc("watch", wf, "--once", "--ai-recovery", "--format", "json", *args, check=False, timeout=180)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def _statuses(torc, wf):
    return {j["name"]: j["status"] for j in jobs_of(torc, wf).values()}


def test_regex_agent_resolves_pending_jobs_end_to_end(torc, pending):
    wf, jobs = pending
    # A password in the database URL (trust authentication ignores it) must not reach the disk.
    torc.env["TORC_DATABASE_URL"] = torc.url + " password=not-on-disk"
    saved = torc.cwd / "seen-config.json"
    rc, report = _watch(torc, wf, "--ai-agent", _agent("--save-config", str(saved)))
    agent = report["ai_agent"]
    assert agent["ran"] and agent["outcome"] == "ok" and agent["exit_code"] == 0, agent
    assert agent["pending_before"] == 2 and agent["pending_after"] == 0
    assert rc == 0 and report["attention"] == []
    assert report["counts"] == {"ready": 1, "failed": 1, "canceled": 1, "blocked": 1}
    seen = saved.read_text()
    assert "not-on-disk" not in seen and "${TORC_DATABASE_URL}" in seen
    out = open(agent["output"]).read()
    assert f"job {jobs['fetch']['id']}: retry" in out and f"job {jobs['parse']['id']}: fail" in out

    events = events_of(torc, wf)
    kinds = [e["kind"] for e in events]
    assert kinds.index("ai_agent_started") < kinds.index("retry") and "ai_agent_finished" in kinds
    retry = next(e for e in events if e["kind"] == "retry")
    assert retry["detail"]["decided_by"] == "regex-agent" and "ConnectionError" in retry["detail"]["reason"]

    # Nothing left to decide: the next cycle does not start the agent again.
    rc, report = _watch(torc, wf, "--ai-agent", _agent())
    assert report["ai_agent"] is None
    proc = torc("run", str(wf), "--format", "json", check=False)
    assert json.loads(proc.stdout.strip().splitlines()[-1])["counts"] == {"completed": 2, "failed": 1, "canceled": 1}


@pytest.mark.parametrize("agent, outcome, words, again", [
    ("/nonexistent/ai-agent", "missing", "was not found", "2 job(s) pending_failed"),
    (None, "failed", "failed (exit 3)", "already saw these 2 job(s)"),
])
def test_missing_or_failing_agent_is_one_line_and_jobs_stay_pending(torc, pending, agent, outcome, words, again):
    wf, _ = pending
    rc, report = _watch(torc, wf, "--ai-agent", agent or _agent("--exit", "3"))
    assert rc == 1 and report["ai_agent"]["outcome"] == outcome
    agent_lines = [a for a in report["attention"] if a.startswith("AI agent")]
    assert len(agent_lines) == 1 and words in agent_lines[0] and "2 job(s) stay pending_failed" in agent_lines[0]
    assert _statuses(torc, wf) == {"fetch": "pending_failed", "parse": "pending_failed", "after_fetch": "blocked",
                                   "after_parse": "blocked"}
    # A failed agent is not started again on the same jobs at once (cron every few minutes must not loop
    # on it); a missing one is tried again next cycle (and says so again).
    rc, second = _watch(torc, wf, "--ai-agent", agent or _agent("--exit", "3"))
    assert second["ai_agent"]["ran"] is (outcome == "missing") and again in second["ai_agent"]["reason"]
    # In table form (what a person or cron mail sees): one line about the agent.
    table = torc("watch", wf, "--once", "--ai-recovery", "--ai-agent", "/nonexistent/ai-agent", check=False)
    assert table.returncode == 1 and "AI agent" in table.stdout


def test_a_hanging_agent_is_stopped_at_its_time_limit(torc, pending):
    wf, _ = pending
    marker = f"--sleep 120.{wf}"
    started = time.monotonic()
    rc, report = _watch(torc, wf, "--ai-agent", _agent(*marker.split()), "--ai-timeout", "2")
    assert time.monotonic() - started < 60
    assert rc == 1 and report["ai_agent"]["outcome"] == "timeout"
    assert any("time limit (2s)" in a for a in report["attention"])
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if f"120.{wf}" in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []
    assert set(_statuses(torc, wf).values()) == {"pending_failed", "blocked"}


def test_an_agent_run_in_progress_elsewhere_is_not_doubled(torc, pending):
    wf, _ = pending
    with Database(torc.url) as db:   # another watcher holds the lease (its agent is still running)
        now = datetime.now(timezone.utc)
        db.one("ai_recovery_acquire", workflow_id=wf, holder="elsewhere:1:x", now=now, expires_at=now + 10 * MIN)
    rc, report = _watch(torc, wf, "--ai-agent", _agent())
    assert report["ai_agent"]["ran"] is False and "in progress" in report["ai_agent"]["reason"]
    assert set(_statuses(torc, wf).values()) == {"pending_failed", "blocked"}


def test_cron_mode_triages_workflows_whose_only_open_jobs_are_pending(torc):
    torc.write("lone.yaml", "name: lone\nuse_pending_failed: true\njobs:\n"
                            "  - {name: flaky, command: \"echo 'ConnectionError: Connection refused' >&2; exit 2\"}\n")
    proc = torc("run", "lone.yaml", "--format", "json", check=False)
    wf = json.loads(proc.stdout.strip().splitlines()[-1])["workflow_id"]
    assert _statuses(torc, wf) == {"flaky": "pending_failed"}
    quiet = torc("watch", "--all", "--once", check=False)
    assert quiet.returncode == 0 and quiet.stdout == ""         # without --ai-recovery cron ignores it
    cron = torc("watch", "--all", "--once", "--ai-recovery", "--ai-agent", _agent(), check=False, timeout=180)
    assert cron.returncode == 0, cron.stdout + cron.stderr
    assert _statuses(torc, wf) == {"flaky": "ready"}


def test_ai_agent_needs_ai_recovery(torc, pending):
    wf, _ = pending
    proc = torc("watch", wf, "--once", "--ai-agent", "claude", check=False)
    assert proc.returncode == 2 and "--ai-recovery" in proc.stderr


def test_the_demo_example_runs_as_the_readme_says(torc):
    from tests.unit.test_examples import ROOT

    proc = torc("run", str(ROOT / "examples/yaml/ai_recovery_demo.yaml"), "--format", "json", check=False)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    wf = summary["workflow_id"]
    assert summary["counts"] == {"pending_failed": 2, "blocked": 2}
    rc, report = _watch(torc, wf, "--ai-agent", _agent())
    assert rc == 0 and report["ai_agent"]["outcome"] == "ok"
    proc = torc("run", str(wf), "--format", "json", check=False)
    assert json.loads(proc.stdout.strip().splitlines()[-1])["counts"] == {"completed": 2, "failed": 1, "canceled": 1}
    assert _statuses(torc, wf) == {"fetch_inputs": "completed", "simulate": "completed", "parse_config": "failed",
                                   "report": "canceled"}
