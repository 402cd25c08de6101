#!/usr/bin/env python3
"""A small deterministic "AI agent" for tests: it accepts what `torc watch --ai-recovery` gives an agent
(`-p PROMPT --mcp-config FILE`), starts the MCP server that configuration names with the official MCP SDK's
stdio client, and classifies pending_failed jobs by regular expressions over their stderr instead of a
model. Transient-looking errors are retried, permanent-looking ones failed, anything else left pending.

Extra options for tests: --exit N (exit with N after doing nothing), --sleep S (sleep first),
--save-config PATH (copy the MCP configuration it was given, to check what torc wrote to disk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import Implementation

TRANSIENT = re.compile(r"ConnectionError|Connection (refused|reset)|timed out|Temporary failure|"
                       r"Service Unavailable|\b503\b|Input/output error|NCCL", re.I)
PERMANENT = re.compile(r"SyntaxError|IndentationError|ImportError|ModuleNotFoundError|AssertionError|"
                       r"FileNotFoundError|Permission denied", re.I)
_VAR = re.compile(r"\$\{(\w+)\}")


def expand(value: str) -> str:
    """${VAR} from this process's environment, as Claude Code expands its MCP configuration."""
    return _VAR.sub(lambda m: os.environ.get(m.group(1), ""), value)


def classify(stderr: str) -> tuple[str, str] | None:
    if m := TRANSIENT.search(stderr):
        return "retry", f"transient: stderr says {m.group(0)!r}"
    if m := PERMANENT.search(stderr):
        return "fail", f"permanent: stderr says {m.group(0)!r}"
    return None


async def triage(config: dict, workflow_id: int) -> int:
    (name, server), = config["mcpServers"].items()
    params = StdioServerParameters(command=expand(server["command"]),
                                   args=[expand(a) for a in server.get("args", [])],
                                   env={k: expand(v) for k, v in server.get("env", {}).items()} | {
                                       "PATH": os.environ.get("PATH", "")})
    async with Client(params, client_info=Implementation(name="regex-agent", version="1.0"), mode="legacy",
                      read_timeout_seconds=60) as client:
        listing = await client.call_tool("list_pending_failed_jobs", {"workflow_id": workflow_id})
        if listing.is_error:
            print(f"list_pending_failed_jobs failed: {listing.content[0].text}")
            return 2
        items = []
        for job in listing.structured_content["pending_failed_jobs"]:
            decision = classify(job["stderr_tail"])
            if decision is None:
                print(f"job {job['job_id']}: no rule matches its stderr; leaving it pending")
                continue
            items.append({"job_id": job["job_id"], "action": decision[0], "reason": decision[1]})
        if not items:
            return 0
        for dry_run in (True, False):
            result = await client.call_tool("classify_and_resolve_failures",
                                            {"workflow_id": workflow_id, "classifications": items, "dry_run": dry_run})
            if result.is_error:
                print(f"classify_and_resolve_failures failed: {result.content[0].text}")
                return 3
        for item in items:
            print(f"job {item['job_id']}: {item['action']} ({item['reason']})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-p", dest="prompt", required=True)
    ap.add_argument("--mcp-config", required=True)
    ap.add_argument("--exit", type=int, default=None)
    ap.add_argument("--sleep", type=float, default=0)
    ap.add_argument("--save-config", default=None)
    args = ap.parse_args()
    if args.save_config:
        with open(args.mcp_config) as src, open(args.save_config, "w") as dst:
            dst.write(src.read())
    if args.sleep:
        time.sleep(args.sleep)
    if args.exit is not None:
        print(f"regex-agent: exiting with {args.exit} as told")
        return args.exit
    m = re.search(r"workflow_id=(\d+)", args.prompt)
    if not m:
        print("regex-agent: the prompt names no workflow_id")
        return 4
    with open(args.mcp_config) as f:
        config = json.load(f)
    return anyio.run(triage, config, int(m.group(1)))


if __name__ == "__main__":
    sys.exit(main())
