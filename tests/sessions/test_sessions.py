"""Sessions that survive: the official Python client (mcp 2.x, legacy mode) through mcp-edge
processes that restart, alternate, and front stateful replicas.
"""

import asyncio
import json
import time
from contextlib import AsyncExitStack

import httpx2
import pytest
from conftest import free_port, get_json
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio


class Wire:
    """Every HTTP exchange: verb, port, status, the session ids sent and received, the method."""

    def __init__(self):
        self.exchanges = []

    async def on_response(self, response):
        try:
            body = json.loads(response.request.content or b"null")
        except (ValueError, RuntimeError):
            body = None
        self.exchanges.append(
            {
                "verb": response.request.method,
                "port": response.request.url.port,
                "status": response.status_code,
                "sent": response.request.headers.get("mcp-session-id"),
                "got": response.headers.get("mcp-session-id"),
                "served_by": response.headers.get("x-served-by"),
                "method": body.get("method") if isinstance(body, dict) else None,
            }
        )

    def sessions(self):
        return {e["got"] for e in self.exchanges if e["got"]} | {e["sent"] for e in self.exchanges if e["sent"]}

    def methods(self):
        return [e["method"] for e in self.exchanges if e["verb"] == "POST"]

    def assert_clean(self):
        """No error on the wire: POSTs 200/202, the GET listen stream 200 (mcp-edge serves it)."""
        for e in self.exchanges:
            if e["verb"] == "POST":
                assert e["status"] in (200, 202), e
            elif e["verb"] == "GET":
                assert e["status"] == 200, e


class Alternate(httpx2.AsyncBaseTransport):
    """Sends each request to the next port in turn: one client, several mcp-edge processes."""

    def __init__(self, ports):
        self.inner = httpx2.AsyncHTTPTransport()
        self.ports = ports
        self.sent = 0

    async def handle_async_request(self, request):
        port = self.ports[self.sent % len(self.ports)]
        self.sent += 1
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self):
        await self.inner.aclose()


def text(result) -> str:
    assert not result.is_error, result
    return result.content[0].text


async def echo(client, message):
    assert text(await client.call_tool("echo", {"message": message})) == message


async def test_restart_in_the_middle_of_a_legacy_session(edges, key):
    edge = edges(key)
    port, admin = edge.port, edge.admin
    wire = Wire()
    http = httpx2.AsyncClient(event_hooks={"response": [wire.on_response]}, timeout=30)
    async with Client(streamable_http_client(edge.url, http_client=http), mode="legacy") as client:
        await echo(client, "before the restart")
        assert edge.stop() == 0
        edges(key, port=port, admin=admin)  # the same address, a new process: it never saw the session
        await echo(client, "after the restart")
        tools = await client.list_tools()
        assert any(t.name == "echo" for t in tools.tools)
    wire.assert_clean()
    assert wire.methods().count("initialize") == 1, wire.methods()
    assert len(wire.sessions()) == 1, "one session id throughout"
    assert [e["status"] for e in wire.exchanges if e["verb"] == "DELETE"] == [200]


async def test_one_client_alternating_between_two_processes(edges, key):
    a_admin, b_admin = free_port(), free_port()
    a = edges(key, ["--peer", f"127.0.0.1:{b_admin}"], admin=a_admin)
    b = edges(key, ["--peer", f"127.0.0.1:{a_admin}"], admin=b_admin)
    wire = Wire()
    transport = Alternate([a.port, b.port])
    http = httpx2.AsyncClient(transport=transport, event_hooks={"response": [wire.on_response]}, timeout=30)
    async with Client(streamable_http_client(a.url, http_client=http), mode="legacy") as client:
        for i in range(6):
            await echo(client, f"call {i}")
    wire.assert_clean()
    (token,) = wire.sessions()
    posts = [e for e in wire.exchanges if e["verb"] == "POST"]
    assert {e["port"] for e in posts} == {a.port, b.port}, "both processes served the session"
    assert all(e["got"] == token for e in posts), "the same id from both"
    # The client's DELETE reached one process; the other hears of it from its peer.
    (delete,) = [e for e in wire.exchanges if e["verb"] == "DELETE"]
    assert delete["status"] == 200
    deadline = time.monotonic() + 5
    for edge in (a, b):
        while True:
            reuse = httpx2.post(
                edge.url,
                headers={"mcp-session-id": token, "content-type": "application/json", "accept": "application/json, text/event-stream"},
                content=json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
            )
            if reuse.status_code == 404 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert reuse.status_code == 404, f"port {edge.port}: the deleted session still works"
        assert reuse.json()["id"] == 7


async def open_session(stack: AsyncExitStack, url: str):
    wire = Wire()
    http = httpx2.AsyncClient(event_hooks={"response": [wire.on_response]}, timeout=30)
    client = await stack.enter_async_context(Client(streamable_http_client(url, http_client=http), mode="legacy"))
    return client, wire


async def whoami(client) -> dict:
    return json.loads(text(await client.call_tool("whoami", {})))


async def counts(client, n: int) -> list[int]:
    return [int(text(await client.call_tool("count", {}))) for _ in range(n)]


async def test_stateful_replicas_keep_their_sessions(edges, key, stateful_replicas):
    edge = edges(key, [arg for r in stateful_replicas for arg in ("--backend", r.url)])
    by_name = {r.name: r for r in stateful_replicas}
    async with AsyncExitStack() as stack:
        # Contexts are entered in this task (anyio requires it); the calls below run concurrently.
        sessions = [await open_session(stack, edge.url) for _ in range(3)]

        async def exercise(client, wire):
            first = await whoami(client)
            assert await counts(client, 5) == [1, 2, 3, 4, 5], "every call reached the process keeping the count"
            assert await whoami(client) == first, "the session stayed on its replica"
            (token,) = wire.sessions()
            assert first["session_id"] and first["session_id"] != token, "the replica sees its own id"
            assert first["session_id"] not in token, "the replica's id never reaches the client"
            served = {e["served_by"] for e in wire.exchanges if e["verb"] == "POST"}
            assert served == {by_name[first["replica"]].url.removeprefix("http://").removesuffix("/mcp")}, served
            return first["replica"]

        placed = await asyncio.gather(*(exercise(c, w) for c, w in sessions))
        assert sorted(placed) == ["s1", "s2", "s3"], "round robin placed one session on each replica"

        # Kill the replica holding the first session: that session is gone (404, the Python
        # client surfaces it), the others carry on, and a new session starts on a live replica.
        victim = by_name[placed[0]]
        victim.kill()
        with pytest.raises(Exception, match="Session not found"):
            await sessions[0][0].call_tool("count", {})
        for client, _ in sessions[1:]:
            assert (await counts(client, 1)) == [6]
        client, wire = await open_session(stack, edge.url)
        again = await whoami(client)
        assert again["replica"] != victim.name
        assert await counts(client, 2) == [1, 2]
    assert get_json(f"{edge.admin_url}/healthz") == {"status": "ok"}
