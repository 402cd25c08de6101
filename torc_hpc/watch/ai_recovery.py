"""`torc watch --ai-recovery`: when pending_failed jobs appear, run an AI agent non-interactively with a
prompt and an MCP configuration that points at `torc mcp`; the agent's decisions arrive through the tools
(classify_and_resolve_failures), never through this module.

`decide` is the pure decision of whether to run the agent now. `run_if_due` is the shell around it: it
takes the workflow's lease (a row with an expiry, so a crashed watcher frees it and a transaction-mode
pooler is fine), writes the MCP configuration to a private temporary file (no password in it), runs the
agent in its own process group with a time limit, and gives the lease back with the outcome. A missing or
failing agent is one line in the cycle's report; the jobs stay pending_failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from torc_hpc import logs
from torc_hpc.db.repo import Database
from torc_hpc.limits import (AI_AGENT_LEASE_GRACE_S, AI_AGENT_OUTPUT_MAX_BYTES, AI_AGENT_RETRY_AFTER_S,
                             AI_AGENT_TIMEOUT_S)

log = logging.getLogger("torc.watch.ai")

# The Claude Code CLI, allowed to use torc's tools (and only the servers in our configuration) without
# asking: nobody is there to answer. We append `-p PROMPT --mcp-config FILE`, as to any --ai-agent command.
DEFAULT_AGENT = ("claude", "--strict-mcp-config", "--allowedTools", "mcp__torc")
SERVER_KEY = "torc"
URL_PLACEHOLDER = "${TORC_DATABASE_URL}"


@dataclass(frozen=True)
class AiRecovery:
    """The watcher's --ai-recovery options."""

    agent: str | None = None                 # --ai-agent: a command line; None: the Claude Code CLI
    timeout_s: int = AI_AGENT_TIMEOUT_S      # --ai-timeout
    retry_after_s: int = AI_AGENT_RETRY_AFTER_S


@dataclass(frozen=True)
class Snapshot:
    pending: int
    owned: bool = True                       # this database role owns the workflow
    newest_pending_at: datetime | None = None
    lease_expires_at: datetime | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_outcome: str | None = None


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str


def decide(s: Snapshot, now: datetime, retry_after_s: int = AI_AGENT_RETRY_AFTER_S) -> Decision:
    """Run the agent when jobs await a decision, this role owns the workflow, no run is in progress, and
    either no agent has looked at them yet (none ran, or its command was missing), some job appeared after
    the last run started, or the last run ended more than retry_after_s ago. Pure."""
    if s.pending == 0:
        return Decision(False, "no pending_failed jobs")
    if not s.owned:
        return Decision(False, "an agent runs only as the workflow's owner (it reads the owner's logs and decides "
                               "with the owner's rights): the owner runs `torc watch WF --ai-recovery`")
    if s.lease_expires_at is not None and s.lease_expires_at > now:
        return Decision(False, f"an agent run for this workflow is in progress (its lease ends "
                               f"{s.lease_expires_at.isoformat(timespec='seconds')})")
    if s.last_started_at is None or s.last_outcome == "missing":   # a missing agent saw nothing: try again
        return Decision(True, f"{s.pending} job(s) pending_failed")
    new_since = s.newest_pending_at is not None and s.newest_pending_at > s.last_started_at
    if new_since:
        return Decision(True, f"{s.pending} job(s) pending_failed, some new since the last agent run")
    ended = s.last_finished_at or s.last_started_at
    again = ended + timedelta(seconds=retry_after_s)
    if now < again:
        return Decision(False, f"the agent already saw these {s.pending} job(s) (last run: {s.last_outcome or 'ended'}); "
                               f"next try after {again.isoformat(timespec='seconds')}")
    return Decision(True, f"{s.pending} job(s) still pending_failed {retry_after_s}s after the last agent run")


def prompt(workflow_id: int, pending: int) -> str:
    """What the agent is asked to do (it reaches torc only through the MCP tools)."""
    return (
        f"You are triaging failed jobs of torc workflow {workflow_id} (workflow_id={workflow_id}). Nobody is "
        f"available to answer questions: decide on your own, using only the tools of the MCP server '{SERVER_KEY}'.\n"
        f"{pending} job(s) failed with an exit code that no failure-handler rule covers and wait in state "
        f"pending_failed; their dependents wait with them.\n"
        f"1. Call list_pending_failed_jobs with workflow_id={workflow_id} and read each job's stderr_tail and "
        f"stdout_tail (get_job_logs and check_resource_utilization give more when needed).\n"
        f"2. Decide per job: retry when the failure looks transient (network or service errors, timeouts, I/O "
        f"errors on shared storage, node or GPU failures, preemption; with more memory or runtime if it ran out "
        f"of them), fail when running it again cannot help (syntax or import errors, bad input or arguments, "
        f"assertion failures, missing files, permission denied).\n"
        f"3. Call classify_and_resolve_failures with workflow_id={workflow_id}, dry_run=false and one item per "
        f"job you are confident about, each with a short reason quoting the evidence. Leave out any job you are "
        f"unsure of: it stays pending_failed for a person. If the call reports problems, nothing was applied: "
        f"fix the items and call it again.\n"
        f"Finish with one line per job: its id, your decision and why.")


def server_command() -> list[str]:
    """How the agent starts `torc mcp` with this very installation: the `torc` script beside this Python
    (not `python -m`, which would import a torc_hpc folder in the agent's working directory first)."""
    script = Path(sys.executable).with_name("torc")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "mcp"]
    return [sys.executable, "-I", "-m", "torc_hpc.cli.app", "mcp"]


def mcp_config(url: str, command: list[str]) -> tuple[dict, dict[str, str]]:
    """The MCP configuration for the agent (`command`, i.e. `torc mcp`, with the watcher's database) and
    the environment variables the agent must get. A password never goes into the file: a database URL
    that has one is written as ${TORC_DATABASE_URL}, which the agent expands from its environment (Claude
    Code does). Pure."""
    try:
        has_password = bool(conninfo_to_dict(url).get("password"))
    except psycopg.ProgrammingError:
        has_password = True   # unreadable here: never write it out; the agent's environment carries it
    server = {"type": "stdio", "command": command[0], "args": command[1:],
              "env": {"TORC_DATABASE_URL": URL_PLACEHOLDER if has_password else url}}
    return {"mcpServers": {SERVER_KEY: server}}, {"TORC_DATABASE_URL": url}


def agent_argv(agent: str | None, prompt_text: str, config_path: str) -> list[str]:
    """The agent's command line: --ai-agent (split like a shell would, never run by one) or the Claude Code
    CLI, then `-p PROMPT --mcp-config FILE`."""
    base = shlex.split(agent) if agent else list(DEFAULT_AGENT)
    if not base:
        raise ValueError("--ai-agent is empty: give a command, e.g. --ai-agent 'claude --model sonnet'")
    return [*base, "-p", prompt_text, "--mcp-config", config_path]


def _snapshot(row: dict) -> Snapshot:
    return Snapshot(pending=row["pending"], owned=bool(row["owned"]), newest_pending_at=row["newest_pending_at"],
                    lease_expires_at=row["lease_expires_at"], last_started_at=row["last_started_at"],
                    last_finished_at=row["last_finished_at"], last_outcome=row["last_outcome"])


def run_if_due(db: Database, workflow_id: int, cfg: AiRecovery, now: datetime) -> dict:
    """Run the agent for this workflow if `decide` says so. Returns what happened: ran, reason, and after
    a run outcome (ok, failed, missing, timeout), exit_code, elapsed_s, output (its log), pending_before and
    pending_after, and message (one line for people)."""
    snap = _snapshot(db.one("ai_recovery_snapshot", workflow_id=workflow_id))
    decision = decide(snap, now, cfg.retry_after_s)
    report: dict = {"ran": False, "reason": decision.reason}
    if not decision.run:
        return report
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    lease = db.one("ai_recovery_acquire", workflow_id=workflow_id, holder=holder, now=now,
                   expires_at=now + timedelta(seconds=cfg.timeout_s + AI_AGENT_LEASE_GRACE_S))
    if lease is None:
        report["reason"] = "another watcher started an agent run for this workflow just now"
        return report
    wf = db.workflow(workflow_id)
    out_path = logs.ai_agent_log(wf, lease["runs"])
    outcome, exit_code, started = "failed", None, time.monotonic()
    try:
        argv_head = shlex.split(cfg.agent)[:1] if cfg.agent else [DEFAULT_AGENT[0]]
        db.event(workflow_id, "ai_agent_started", detail={"agent": argv_head[0] if argv_head else "", "holder": holder,
                                                          "pending_failed": snap.pending, "output": str(out_path)})
        outcome, exit_code = _run_agent(wf, cfg, snap.pending, db.url, out_path)
    finally:
        elapsed = round(time.monotonic() - started, 1)
        released = db.one("ai_recovery_release", workflow_id=workflow_id, holder=holder, outcome=outcome,
                          now=now + timedelta(seconds=elapsed))
        if released is None:
            log.warning("workflow %s: the agent lease expired and was taken over before the run ended", workflow_id)
    after = db.one("count_jobs_in_statuses", workflow_id=workflow_id, statuses=["pending_failed"])["n"]
    tail = logs.tail(out_path, lines=-1, max_bytes=AI_AGENT_OUTPUT_MAX_BYTES) or ""
    report.update(ran=True, outcome=outcome, exit_code=exit_code, elapsed_s=elapsed, output=str(out_path),
                  pending_before=snap.pending, pending_after=after,
                  message=_message(cfg, outcome, exit_code, elapsed, snap.pending, after, out_path))
    db.event(workflow_id, "ai_agent_finished",
             detail={"outcome": outcome, "exit_code": exit_code, "elapsed_s": elapsed, "pending_before": snap.pending,
                     "pending_after": after, "output": str(out_path), "output_tail": tail})
    return report


def _message(cfg: AiRecovery, outcome: str, exit_code, elapsed: float, before: int, after: int, out: Path) -> str:
    name = cfg.agent or " ".join(DEFAULT_AGENT[:1])
    left = f"{after} job(s) stay pending_failed"
    if outcome == "missing":
        hint = "install the Claude Code CLI, or give --ai-agent CMD" if not cfg.agent else "check --ai-agent"
        return f"AI agent `{name}` was not found ({hint}); {left}"
    if outcome == "timeout":
        return f"AI agent `{name}` was stopped at its time limit ({cfg.timeout_s}s); {left}; its output: {out}"
    if outcome == "failed":
        return f"AI agent `{name}` failed (exit {exit_code}) after {elapsed:.0f}s; {left}; its output: {out}"
    return f"AI agent decided {before - after} of {before} pending_failed job(s) in {elapsed:.0f}s; its output: {out}"


def _run_agent(wf: dict, cfg: AiRecovery, pending: int, url: str, out_path: Path) -> tuple[str, int | None]:
    """Start the agent with the configuration in a private file, wait up to the time limit, stop its whole
    process group after it. Returns (outcome, exit code)."""
    config, env_extra = mcp_config(url, server_command())
    workdir = wf["working_dir"] if wf["working_dir"] and os.path.isdir(wf["working_dir"]) else None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="torc-ai-") as tmp:
        config_path = Path(tmp) / "mcp.json"
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f, indent=2)
        argv = agent_argv(cfg.agent, prompt(wf["id"], pending), str(config_path))
        env = dict(os.environ, **env_extra)
        with open(out_path, "wb") as out:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=workdir, env=env, start_new_session=True)
            except FileNotFoundError:
                return "missing", None
            except OSError as e:
                out.write(f"torc: cannot start {argv[0]}: {e}\n".encode())
                return "failed", None
            try:
                code = proc.wait(timeout=cfg.timeout_s)
            except subprocess.TimeoutExpired:
                _stop_group(proc)
                return "timeout", proc.returncode
            _kill_group(proc)  # whatever the agent left running in its group (its `torc mcp`, ...)
            return ("ok" if code == 0 else "failed"), code


def _stop_group(proc: subprocess.Popen, grace_s: float = 5) -> None:
    """SIGTERM the agent's process group (it and the `torc mcp` it started), SIGKILL what is left after a
    grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
