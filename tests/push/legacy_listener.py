"""A legacy client (the Python SDK 1.x `ClientSession`) holding its session's GET stream.

    python legacy_listener.py URL [URI]

Initializes, waits for its GET stream to be served (200), subscribes to URI (default
test://watched-resource), prints `ready`, then one JSON line per server notification it
receives: {"method": ..., "params": ..., "t": unix seconds}. Ends after 60 s or when stdin closes.
"""

import json
import sys
import time

import anyio
import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url: str, uri: str) -> None:
    get_ok = anyio.Event()

    async def on_response(response):
        if response.request.method == "GET" and response.status_code == 200:
            get_ok.set()

    def factory(headers=None, timeout=None, auth=None) -> httpx.AsyncClient:
        client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
        client.event_hooks["response"].append(on_response)
        return client

    async def handler(message):
        if isinstance(message, types.ServerNotification):
            note = message.root.model_dump(mode="json", exclude_none=True)
            print(json.dumps({"method": note["method"], "params": note.get("params"), "t": time.time()}), flush=True)

    async with streamablehttp_client(url, httpx_client_factory=factory) as (read, write, _):
        async with ClientSession(read, write, message_handler=handler) as session:
            await session.initialize()
            with anyio.fail_after(10):
                await get_ok.wait()
            await session.subscribe_resource(uri)
            print("ready", flush=True)
            with anyio.move_on_after(60):
                await anyio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "test://watched-resource")
