"""A stateful MCP server: the official Python SDK (mcp 2.x) in its default stateful mode.

It mints its own Mcp-Session-Id on initialize and keeps per-session state in this process, so
every request of a session must reach this replica. Used to test that mcp-edge pins such
sessions to their replica.

    python mcp_stateful_server.py --port 9001 --name s1
"""

import argparse

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--name", required=True, help="the replica's name, reported by `whoami`")
args = parser.parse_args()

mcp = MCPServer("mcp-stateful")
counts: dict[str, int] = {}


@mcp.tool()
def whoami(ctx: Context) -> dict:
    """This replica's name and the session id it sees on the request (its own)."""
    headers = ctx.headers or {}
    return {"replica": args.name, "session_id": headers.get("mcp-session-id")}


@mcp.tool()
def count(ctx: Context) -> int:
    """A counter kept in this process per session: 1, 2, 3… only if every call lands here."""
    session = (ctx.headers or {}).get("mcp-session-id", "")
    counts[session] = counts.get(session, 0) + 1
    return counts[session]


if __name__ == "__main__":
    app = mcp.streamable_http_app(streamable_http_path="/mcp")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
