"""`torc mcp`: an MCP server (stdio) whose tools let an AI agent inspect workflows and decide pending_failed
jobs through the same operations as the CLI. tools.py: names, schemas, descriptions; server.py: the server."""
