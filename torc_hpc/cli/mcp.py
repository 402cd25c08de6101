"""`torc mcp`: serve torc's tools to an AI agent over MCP (stdio)."""

from __future__ import annotations

from torc_hpc.cli.common import state


def mcp():
    """Serve torc's MCP tools on stdin/stdout for an AI agent (Claude Code, VS Code, any MCP client).

    The agent starts this command itself; it talks JSON-RPC on stdin/stdout and logs to stderr. It uses the
    usual database (TORC_DATABASE_URL, --database-url, or the embedded server) as your database role, so the
    agent sees and changes exactly what you may. Tools: get_workflow_status, list_pending_failed_jobs,
    classify_and_resolve_failures, list_failed_jobs, list_jobs_by_status, get_job_details, get_job_logs,
    check_resource_utilization, update_job_resources, restart_jobs, cancel_jobs, resubmit_workflow,
    create_workflow_from_spec. Register it once (see README, "AI-assisted recovery").

    Example: `claude mcp add torc -- torc mcp`
    """
    from torc_hpc.mcp.server import serve_stdio

    serve_stdio(state.url)
