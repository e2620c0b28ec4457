"""The official Python SDK 1.x `streamablehttp_client` + `ClientSession`."""

import json

import httpx
import pytest
from conftest import BEHIND_EDGE, SERVER_NAMES, Wire, assert_wire
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
