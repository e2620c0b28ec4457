"""The fastmcp 4.1 client (built on the Python SDK 2.x)."""

import json

import httpx2
import pytest
from conftest import SERVER_NAMES, Wire, assert_wire
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

pytestmark = pytest.mark.anyio


async def test_walkthrough(mcp_url):
    wire = Wire()

    def factory(**kwargs) -> httpx2.AsyncClient:
        kwargs.pop("follow_redirects", None)
        return wire.client(**kwargs)

    async with Client(StreamableHttpTransport(mcp_url, httpx_client_factory=factory)) as client:
        tools = await client.list_tools()
        assert "echo" in {t.name for t in tools}
        result = await client.call_tool("echo", {"message": "hello", "repeat": 2})
        assert result.content[0].text == "hello\nhello"
        failed = await client.call_tool("echo", {"message": ""}, raise_on_error=False)
        assert failed.is_error
        contents = await client.read_resource("info://server")
        assert json.loads(contents[0].text)["name"] in SERVER_NAMES
        prompt = await client.get_prompt("code_review", {"language": "rust"})
        assert "rust" in prompt.messages[0].content.text
    legacy = wire.posts()[0]["mcp_method"] == "initialize"
    assert_wire(wire, legacy=legacy)
