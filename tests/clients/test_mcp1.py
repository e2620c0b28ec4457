"""The official Python SDK 1.x `streamablehttp_client` + `ClientSession`."""

import json
import os

import httpx
import pytest
from conftest import BEHIND_EDGE, PUSH, SERVER_NAMES, Wire, assert_wire
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared._httpx_utils import create_mcp_http_client

pytestmark = pytest.mark.anyio


async def test_walkthrough(mcp_url):
    wire = Wire()

    def factory(headers=None, timeout=None, auth=None) -> httpx.AsyncClient:
        client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
        client.event_hooks["response"].append(wire.on_response)
        return client

    async with streamablehttp_client(mcp_url, httpx_client_factory=factory) as (read, write, session_id):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.protocolVersion.startswith("2025-")

            tools = await session.list_tools()
            assert "echo" in {t.name for t in tools.tools}

            result = await session.call_tool("echo", {"message": "hello", "repeat": 2})
            assert not result.isError
            assert result.content[0].text == "hello\nhello"

            info = await session.read_resource("info://server")
            assert json.loads(info.contents[0].text)["name"] in SERVER_NAMES

            prompt = await session.get_prompt("code_review", {"language": "go"})
            assert "go" in prompt.messages[0].content.text
            assert (session_id() is not None) == BEHIND_EDGE

    assert wire.posts()[0]["mcp_method"] == "initialize"
    assert_wire(wire, legacy=True)


@pytest.mark.skipif(os.environ.get("MCP_TEST_TARGET") != "edge", reason="a legacy client is asked only through mcp-edge's bridge")
@pytest.mark.parametrize(
    "tool,args,expected,asks",
    [
        ("test_sampling", {"prompt": "Capital of France?"}, "LLM response: Paris", 1),
        ("test_elicitation", {"message": "Who are you?"}, "User response: action=accept", 1),
        ("test_input_required_result_multiple_inputs", {}, "Every input answered", 3),
        ("test_input_required_result_multi_round", {}, "color blue", 2),
    ],
)
async def test_tools_that_ask_the_client(mcp_url, tool, args, expected, asks):
    """ClientSession's callbacks answer mcp-edge's questions (one, several in a round, two rounds)."""
    from mcp import types

    asked = []

    async def sampling(context, params):
        asked.append("model")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="Paris"), model="m", stopReason="endTurn"
        )

    async def elicitation(context, params):
        asked.append("user")
        content = {"color": "blue"} if "color" in params.message else {"name": "Ada", "response": "yes"}
        return types.ElicitResult(action="accept", content=content)

    async def roots(context):
        asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri="file:///work", name="work")])

    async with streamablehttp_client(mcp_url) as (read, write, _):
        async with ClientSession(
            read, write, sampling_callback=sampling, elicitation_callback=elicitation, list_roots_callback=roots
        ) as session:
            await session.initialize()
            result = await session.call_tool(tool, args)
    assert not result.isError, result.content[0].text
    assert expected in result.content[0].text, result.content[0].text
    assert len(asked) == asks, asked


@pytest.mark.skipif(not PUSH, reason="a stateless replica offers no GET stream; mcp-edge feeds it")
async def test_the_get_stream_hears_list_changes_and_subscribed_updates(mcp_url):
    """The session's GET stream (opened by the SDK after initialize) carries a tool-list change
    and the update of a `resources/subscribe`d URI, whichever replica they happen on."""
    import anyio
    from mcp import types

    wire = Wire()
    send, received = anyio.create_memory_object_stream(16)

    def factory(headers=None, timeout=None, auth=None) -> httpx.AsyncClient:
        client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
        client.event_hooks["response"].append(wire.on_response)
        return client

    async def handler(message):
        if isinstance(message, types.ServerNotification):
            send.send_nowait(message.root)

    async with streamablehttp_client(mcp_url, httpx_client_factory=factory) as (read, write, _):
        async with ClientSession(read, write, message_handler=handler) as session:
            await session.initialize()
            with anyio.fail_after(5):
                while not any(e["method"] == "GET" and e["status"] == 200 for e in wire.exchanges):
                    await anyio.sleep(0.02)
            await session.subscribe_resource("test://watched-resource")
            for _ in range(3):
                await session.call_tool("test_trigger_tool_change", {})
                with anyio.fail_after(1):
                    assert isinstance(await received.receive(), types.ToolListChangedNotification)
            await session.call_tool("test_trigger_resource_update", {})
            with anyio.fail_after(1):
                note = await received.receive()
            assert isinstance(note, types.ResourceUpdatedNotification), note
            assert str(note.params.uri) == "test://watched-resource"
