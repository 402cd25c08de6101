"""A real `torc mcp` server started by the MCP SDK's stdio client, and a workflow with two pending_failed
jobs: one whose stderr looks transient (it succeeds when retried), one whose stderr looks permanent."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import Implementation

HERE = Path(__file__).resolve().parent
REGEX_AGENT = HERE / "regex_agent.py"

# Fails on its first attempt like a service that was down, succeeds on the next.
FETCH = textwrap.dedent("""\
    #!/usr/bin/env bash
    if [ "$TORC_ATTEMPT_ID" -lt 2 ]; then
      echo "Traceback (most recent call last):" >&2
      echo "ConnectionError: Connection refused" >&2
      exit 1
    fi
    echo fetched
    """)
# Fails every time, like a bug in the code.
PARSE = textwrap.dedent("""\
    #!/usr/bin/env bash
    echo '  File "parse.py", line 3' >&2
    echo "SyntaxError: invalid syntax" >&2
    exit 1
    """)
SPEC = textwrap.dedent("""\
    name: triage
    use_pending_failed: true
    jobs:
      - {name: fetch, command: ./fetch.sh}
      - {name: parse, command: ./parse.sh}
      - {name: after_fetch, command: "echo done", depends_on: [fetch]}
      - {name: after_parse, command: "echo done", depends_on: [parse]}
    """)


def make_pending_workflow(torc) -> tuple[int, dict[str, dict]]:
    """Run the triage workflow until it stops with fetch and parse pending_failed; returns (wf, jobs by name)."""
    import json

    torc.write("fetch.sh", FETCH, executable=True)
    torc.write("parse.sh", PARSE, executable=True)
    torc.write("triage.yaml", SPEC)
    proc = torc("run", "triage.yaml", "--new", "--format", "json", check=False)   # --new: called twice per test
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["counts"] == {"pending_failed": 2, "blocked": 2}, summary
    jobs = jobs_of(torc, summary["workflow_id"])
    return summary["workflow_id"], jobs


@pytest.fixture
def pending(torc):
    return make_pending_workflow(torc)


def server_params(torc) -> StdioServerParameters:
    """`torc mcp` as an agent starts it: the same Python, the test's database, the workflow's directory."""
    return StdioServerParameters(command=sys.executable, args=["-m", "torc_hpc.cli.app", "mcp"],
                                 env={"TORC_DATABASE_URL": torc.url, "PATH": os.environ.get("PATH", "")},
                                 cwd=str(torc.cwd))


def with_client(torc, body, *, name: str = "pytest-agent", mode: str = "legacy"):
    """Start `torc mcp` through the SDK's stdio client (initialize handshake, as Claude Code does), run
    `await body(client)`, and return what it returns."""
    async def main():
        async with Client(server_params(torc), client_info=Implementation(name=name, version="1.0"),
                          mode=mode, read_timeout_seconds=60) as client:
            return await body(client)

    return anyio.run(main)


def data(result) -> dict:
    """A tool result's JSON (structured content)."""
    assert result.structured_content is not None, result.content
    return result.structured_content


def jobs_of(torc, wf: int) -> dict[str, dict]:
    """The workflow's jobs by name, read in-process (cheaper than a `torc jobs list` subprocess)."""
    from torc_hpc.db import Database

    with Database(torc.url, migrate=False) as db:
        return {j["name"]: j for j in db.all("list_jobs", workflow_id=wf, status=None)}


def events_of(torc, wf: int) -> list[dict]:
    from torc_hpc.db import Database

    with Database(torc.url, migrate=False) as db:
        return db.all("list_events", workflow_id=wf, after_id=0, limit=100_000)
