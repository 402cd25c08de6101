"""`torc mcp`: the MCP server (official MCP Python SDK, stdio transport) over the tools in tools.py.

It connects to the database as its user (TORC_DATABASE_URL, --database-url, or the embedded server) and
never around that: with row-level security it sees exactly what that role sees. Tool calls run one at a
time on one connection, in a worker thread. A call's arguments are checked against the tool's schema
(array items that the operation checks one by one excepted, so their errors come back per item); torc's
own errors come back as MCP tool errors with the CLI's messages.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
from datetime import datetime

import anyio
import anyio.to_thread
import jsonschema
import mcp.types as types
import psycopg
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from torc_hpc.db.repo import Database
from torc_hpc.errors import DatabaseError, DecisionRejected, TorcError
from torc_hpc.mcp.tools import BY_NAME, INSTRUCTIONS, TOOLS, Tool
from torc_hpc.triage import Decider

log = logging.getLogger("torc.mcp")

SERVER_NAME = "torc"
UNKNOWN_CLIENT = "unknown MCP client"


def _plain(v):
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def _validator(tool: Tool) -> jsonschema.Draft202012Validator:
    """The tool's schema, less the item schemas of arrays the operation checks item by item."""
    schema = copy.deepcopy(tool.schema)
    for name in tool.per_item:
        schema["properties"][name].pop("items", None)
    return jsonschema.Draft202012Validator(schema)


_VALIDATORS = {t.name: _validator(t) for t in TOOLS}


def argument_problems(tool: Tool, arguments: dict) -> list[str]:
    """What is wrong with a call's arguments, one line each (empty: fine)."""
    problems = []
    for err in sorted(_VALIDATORS[tool.name].iter_errors(arguments), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path)
        msg = err.message if len(err.message) <= 300 else err.message[:300] + "…"
        problems.append(f"argument '{where}': {msg}" if where else msg)
    return problems


def _error(text: str, report: dict | None = None) -> types.CallToolResult:
    content = [types.TextContent(type="text", text=text)]
    if report is not None:
        data = json.loads(json.dumps(report, default=_plain))
        content.append(types.TextContent(type="text", text=json.dumps(data, indent=2)))
        return types.CallToolResult(content=content, structured_content=data, is_error=True)
    return types.CallToolResult(content=content, is_error=True)


class TorcMcp:
    """One server process: one database connection (opened on first use), one tool call at a time."""

    def __init__(self, url: str | None):
        self.url = url
        self._db: Database | None = None
        self._lock = anyio.Lock()
        self.server = Server(SERVER_NAME, version=_version(), instructions=INSTRUCTIONS,
                             on_list_tools=self.list_tools, on_call_tool=self.call_tool)

    def db(self) -> Database:
        if self._db is not None and (self._db.conn.closed or self._db.conn.broken):
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None
        if self._db is None:
            self._db = Database(self.url)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    async def list_tools(self, ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name=t.name, description=t.description, input_schema=t.schema)
                                            for t in TOOLS])

    async def call_tool(self, ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = BY_NAME.get(params.name)
        if tool is None:
            return _error(f"unknown tool {params.name!r}; tools: {', '.join(BY_NAME)}")
        arguments = params.arguments or {}
        problems = argument_problems(tool, arguments)
        if problems:
            return _error(f"{tool.name}: " + "; ".join(problems))
        decider = Decider("mcp", client_name(ctx))
        async with self._lock:
            return await anyio.to_thread.run_sync(functools.partial(self._run, tool, arguments, decider))

    def _run(self, tool: Tool, arguments: dict, decider: Decider) -> types.CallToolResult:
        try:
            result = tool.run(self.db(), arguments, decider)
        except DecisionRejected as e:
            return _error(str(e), e.report)
        except TorcError as e:
            return _error(str(e))
        except psycopg.Error as e:
            log.warning("%s: database error: %s", tool.name, e)
            return _error(str(DatabaseError(f"the database answered: {str(e).strip()}")))
        except Exception as e:  # noqa: BLE001 - a bug must not end the session; the agent gets one line
            log.exception("%s failed", tool.name)
            return _error(f"{tool.name} failed inside torc mcp ({type(e).__name__}: {e}); this is a bug in torc, "
                          f"its traceback is on the server's stderr")
        data = json.loads(json.dumps(result, default=_plain))
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(data, indent=2))],
                                    structured_content=data)


def client_name(ctx) -> str:
    """The client's name from the initialize handshake (or the request envelope on newer protocols)."""
    try:
        return ctx.session.client_params.client_info.name or UNKNOWN_CLIENT
    except AttributeError:
        return UNKNOWN_CLIENT


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torc-hpc")
    except PackageNotFoundError:
        return "0"


def serve_stdio(url: str | None) -> None:
    """Serve until the client closes stdin. While serving, stray writes to stdout go to stderr."""
    app = TorcMcp(url)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await app.server.run(read_stream, write_stream, app.server.create_initialization_options())

    try:
        anyio.run(main)
    finally:
        app.close()
