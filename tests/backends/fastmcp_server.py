"""A fastmcp stateless server with the template's surface: a backend we did not write.

Used as the third-party replica in tests and as the FastMCP template in benchmarks.

    python fastmcp_server.py --port 9001 [--sse]     # JSON responses unless --sse
"""

import argparse

import uvicorn
from fastmcp import FastMCP

mcp = FastMCP("fastmcp-template")


@mcp.tool(annotations={"readOnlyHint": True, "idempotentHint": True})
def echo(message: str, repeat: int = 1) -> str:
    """Echo a message back, repeated `repeat` times (1-10) joined by newlines."""
    if not message:
        raise ValueError("message must not be empty")
    if not 1 <= repeat <= 10:
        raise ValueError(f"repeat must be between 1 and 10, got {repeat}")
    return "\n".join([message] * repeat)


@mcp.resource("info://server")
def info() -> dict:
    """Name and version of this server."""
    return {"name": "fastmcp-template", "version": "1"}


@mcp.prompt
def code_review(language: str = "python") -> str:
    """Ask for a careful review of a piece of code."""
    return f"Please review the following {language} code."


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sse", action="store_true", help="answer with SSE instead of JSON")
    args = parser.parse_args()
    app = mcp.http_app(path="/mcp", stateless_http=True, json_response=not args.sse)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
