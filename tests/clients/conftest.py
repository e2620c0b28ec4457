"""Shared fixtures for the SDK client tests (run once per Python SDK generation).

`mcp_url` is the endpoint under test: $MCP_TEST_URL when set (e.g. mcp-edge), otherwise a
fresh mcp-backend started from $MCP_BACKEND_BIN on a free loopback port.
"""

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):
    """Poll `predicate` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def mcp_url():
    url = os.environ.get("MCP_TEST_URL")
    if url:
        yield url
        return
    binary = os.environ.get("MCP_BACKEND_BIN")
    if not binary:
        pytest.fail("set MCP_TEST_URL or MCP_BACKEND_BIN (scripts/test does)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{port}", "--replica-id", "pytest"],
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(base), 10, "mcp-backend /healthz")
        yield f"{base}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


class Wire:
    """Every HTTP exchange a client made: method, status, and the headers that matter."""

    def __init__(self):
        self.exchanges = []

    async def on_response(self, response):
        self.exchanges.append(
            {
                "method": response.request.method,
                "status": response.status_code,
                "served_by": response.headers.get("x-served-by"),
                "session": response.headers.get("mcp-session-id"),
                "sent_session": response.request.headers.get("mcp-session-id"),
                "mcp_method": _body_method(response.request),
            }
        )

    def posts(self):
        return [e for e in self.exchanges if e["method"] == "POST"]

    def replicas(self):
        return {e["served_by"] for e in self.exchanges if e["served_by"]}


def _body_method(request):
    try:
        body = json.loads(request.content or b"null")
    except (ValueError, RuntimeError):
        return None
    if isinstance(body, dict):
        return body.get("method")
    return None


def assert_stateless_wire(wire: Wire):
    """What every client run must show on the wire against a stateless endpoint."""
    assert wire.posts(), "the client sent no POST"
    for e in wire.exchanges:
        assert e["status"] < 500, f"server error on the wire: {e}"
        if e["method"] == "POST":
            assert e["status"] in (200, 202), f"unexpected status: {e}"
        else:
            assert e["status"] == 405, f"GET/DELETE must be 405 on a stateless server: {e}"
