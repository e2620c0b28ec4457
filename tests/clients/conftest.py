"""Shared fixtures for the SDK client tests (run once per Python SDK generation).

`mcp_url` is the endpoint under test: $MCP_TEST_URL when set, otherwise a fresh mcp-backend
started from $MCP_BACKEND_BIN on a free loopback port. $MCP_TEST_TARGET says what is behind it:
`backend` (one stateless replica, the default), `edge` (mcp-edge over 3 bundled replicas) or
`edge-fastmcp` (mcp-edge over 3 fastmcp replicas); the wire assertions follow from it. With
$MCP_TEST_HTTP2=1 the clients made by `Wire.client` and `endpoint` speak HTTP/2 only (ALPN over https://, prior
knowledge over http://), and the wire must show it. Over https:// the clients trust the
authority in $SSL_CERT_FILE.
"""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import free_port, wait_until  # noqa: E402

TARGET = os.environ.get("MCP_TEST_TARGET", "backend")
BEHIND_EDGE = TARGET.startswith("edge")
# mcp-edge serves a legacy session's GET stream when its replicas announce changes (the bundled
# mcp-backend does; the fastmcp template declares no listChanged, so GET stays 405 there).
PUSH = BEHIND_EDGE and "fastmcp" not in TARGET
HTTP2 = os.environ.get("MCP_TEST_HTTP2") == "1"
# The `info://server` resource names the server that answered.
SERVER_NAMES = {"mcp-backend", "fastmcp-template"}


@pytest.fixture
def anyio_backend():
    return "asyncio"


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
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{port}", "--replica-id", "pytest", "--conformance-fixtures"],
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(base), 10, "mcp-backend /healthz")
        yield f"{base}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def endpoint(url: str):
    """What a test's SDK 2.x `Client` connects to: the URL itself (the SDK makes its own HTTP
    client), or with $MCP_TEST_HTTP2 a transport whose HTTP client speaks HTTP/2 only, with the
    SDK's own timeouts (30 s, 300 s to read a stream)."""
    if not HTTP2:
        return url
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    return streamable_http_client(url, http_client=Wire().client(timeout=httpx2.Timeout(30, read=300)))


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
                "version": response.http_version,
            }
        )

    def client(self, **kwargs):
        """An HTTP client whose every response this records (HTTP/2 only with $MCP_TEST_HTTP2)."""
        import httpx2  # the SDK 2.x's client library (the 1.x tests use httpx and record their own way)

        return httpx2.AsyncClient(event_hooks={"response": [self.on_response]}, http2=HTTP2,
                                  http1=not HTTP2, **kwargs)

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


def assert_wire(wire: Wire, legacy: bool):
    """What a client run must show on the wire, given the target and the client's era.

    A bare stateless replica: no session ever, GET and DELETE 405. Behind mcp-edge: the GET
    listen stream is served (200) when the replicas announce changes, and a legacy
    client gets one session id minted on initialize and keeps it throughout (DELETE ends it with
    200), a 2026-07-28 client never sees one, and the requests spread over all 3 replicas.
    """
    assert wire.posts(), "the client sent no POST"
    versions = {e["version"] for e in wire.exchanges}
    assert versions == {"HTTP/2" if HTTP2 else "HTTP/1.1"}, f"HTTP versions on the wire: {versions}"
    for e in wire.exchanges:
        assert e["status"] < 500, f"server error on the wire: {e}"
        if e["method"] == "POST":
            assert e["status"] in (200, 202), f"unexpected status: {e}"
        elif e["method"] == "GET":
            want = 200 if PUSH and legacy else 405
            assert e["status"] == want, f"GET must be {want}: {e}"
    sessions = {e["session"] for e in wire.exchanges if e["session"]}
    deletes = [e for e in wire.exchanges if e["method"] == "DELETE"]
    if not BEHIND_EDGE or not legacy:
        assert not sessions, f"no session id may be issued here: {sessions}"
        assert all(e["status"] == 405 for e in deletes), deletes
    else:
        assert len(sessions) == 1, f"a legacy client keeps one session id: {sessions}"
        (session,) = sessions
        after_init = [e for e in wire.exchanges if e["mcp_method"] != "initialize"]
        assert all(e["sent_session"] == session for e in after_init), "every later request carried the session id"
        assert all(e["status"] == 200 for e in deletes), deletes
    if BEHIND_EDGE:
        assert len(wire.replicas()) == 3, f"requests must reach all 3 replicas: {wire.replicas()}"
    else:
        assert len(wire.replicas()) <= 1
