"""One change, heard by listeners at two mcp-edge processes (issue 19's acceptance check).

    python across.py --listen URL_A --get URL_B --replica URL --legacy PYTHON_1X

A 2026-07-28 client (the Python SDK 2.x `Client.listen`) listens at mcp-edge A; a legacy client
(the Python SDK 1.x, `legacy_listener.py` run by PYTHON_1X) holds its GET stream at mcp-edge B and
subscribed to test://watched-resource. A tool-list change made directly on one replica
(`--replica`, so it happens there and nowhere else) must reach both within 1 s, and an update of
the subscribed resource must reach the legacy client within 1 s. Prints each latency; exits 1
when a notification is missing or late.
"""

import argparse
import functools
import json
import pathlib
import subprocess
import sys
import time

import anyio
import httpx2
from mcp import Client
from mcp.client.subscriptions import ToolsListChanged

LIMIT = 1.0
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


async def trigger(replica: str, tool: str, args: dict) -> float:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args, "_meta": META}}
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": tool,
    }
    t0 = time.time()
    async with httpx2.AsyncClient(timeout=10) as http:
        r = await http.post(replica, headers=headers, content=json.dumps(body))
    assert r.status_code == 200, r.text
    return t0


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--get", required=True)
    p.add_argument("--replica", required=True)
    p.add_argument("--legacy", required=True)
    a = p.parse_args()
    here = pathlib.Path(__file__).parent
    legacy = subprocess.Popen(
        [a.legacy, str(here / "legacy_listener.py"), a.get],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = anyio.create_memory_object_stream(64)

    def read_lines():
        for line in legacy.stdout:
            anyio.from_thread.run_sync(lines[0].send_nowait, line.strip())

    failures = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(anyio.to_thread.run_sync, read_lines, abandon_on_cancel=True))
            with anyio.fail_after(20):
                assert await lines[1].receive() == "ready"

            async def legacy_note(method: str) -> float:
                with anyio.fail_after(LIMIT + 1):
                    while True:
                        note = json.loads(await lines[1].receive())
                        if note["method"] == method:
                            return note["t"]

            async with Client(a.listen, mode="2026-07-28") as client:
                async with client.listen(tools_list_changed=True) as sub:
                    t0 = await trigger(a.replica, "test_trigger_tool_change", {})
                    with anyio.fail_after(LIMIT + 1):
                        assert isinstance(await anext(sub), ToolsListChanged)
                    modern = time.time() - t0
                    old = await legacy_note("notifications/tools/list_changed") - t0
                    t0 = await trigger(a.replica, "test_trigger_resource_update", {})
                    updated = await legacy_note("notifications/resources/updated") - t0
            for what, took in [
                ("tools/list_changed at mcp-edge A, 2026-07-28 listen (Python SDK 2.x)", modern),
                ("tools/list_changed at mcp-edge B, legacy GET stream (Python SDK 1.x)", old),
                ("resources/updated at mcp-edge B, legacy GET stream (Python SDK 1.x)", updated),
            ]:
                print(f"{what}: {took * 1000:.1f} ms")
                if took > LIMIT:
                    failures.append(what)
            tg.cancel_scope.cancel()
    finally:
        legacy.stdin.close()
        legacy.terminate()
        legacy.wait(timeout=10)
    if failures:
        print("later than 1 s:", failures)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
