"""The official Python SDK 2.x `Client`, in each of its connection modes."""

import json
from typing import Literal

import pytest
from conftest import SERVER_NAMES, TARGET, Wire, assert_wire, endpoint
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio

def text_of(result) -> str:
    return result.content[0].text


@pytest.mark.parametrize("mode", ["auto", "legacy", "2026-07-28"])
async def test_walkthrough(mcp_url, mode):
    wire = Wire()
    http = wire.client(timeout=30)
    async with Client(streamable_http_client(mcp_url, http_client=http), mode=mode) as client:
        if mode == "legacy":
            assert client.protocol_version.startswith("2025-"), client.protocol_version
        else:
            assert client.protocol_version == "2026-07-28"

        tools = await client.list_tools()
        names = {t.name for t in tools.tools}
        expected = {"echo"} if TARGET == "edge-fastmcp" else {"echo", "sleep", "progress", "payload"}
        assert expected <= names
        echo = next(t for t in tools.tools if t.name == "echo")
        assert echo.annotations.read_only_hint and echo.annotations.idempotent_hint

        result = await client.call_tool("echo", {"message": "hello", "repeat": 2})
        assert not result.is_error
        assert text_of(result) == "hello\nhello"

        failed = await client.call_tool("echo", {"message": ""})
        assert failed.is_error
        assert "must not be empty" in text_of(failed)

        info = await client.read_resource("info://server")
        body = json.loads(info.contents[0].text)
        assert body["name"] in SERVER_NAMES

        prompt = await client.get_prompt("code_review", {"language": "rust"})
        assert "rust" in prompt.messages[0].content.text

    methods = [e["mcp_method"] for e in wire.posts()]
    first = {"auto": "server/discover", "legacy": "initialize", "2026-07-28": "tools/list"}[mode]
    assert methods[0] == first, methods
    assert_wire(wire, legacy=(mode == "legacy"))


@pytest.mark.skipif(TARGET == "edge-fastmcp", reason="the progress helper is a tool of the bundled backend")
async def test_progress_notifications_arrive(mcp_url):
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total))

    async with Client(endpoint(mcp_url), mode="legacy") as client:
        result = await client.call_tool(
            "progress", {"steps": 3, "interval_ms": 10}, progress_callback=on_progress
        )
    assert text_of(result) == "completed 3 steps"
    assert seen == [(1.0, 3.0), (2.0, 3.0), (3.0, 3.0)]


@pytest.mark.skipif(TARGET == "edge-fastmcp", reason="the MRTR fixture is a tool of the bundled backend")
async def test_multi_round_trip_request(mcp_url):
    """A 2026-07-28 tool that needs user input: the SDK answers input_required and retries."""
    from mcp.types import ElicitResult

    asked = []

    async def elicit(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"name": "Ada"})

    async with Client(endpoint(mcp_url), mode="2026-07-28", elicitation_callback=elicit) as client:
        result = await client.call_tool("test_input_required_result_elicitation", {})
    assert asked == ["What is your name?"]
    assert text_of(result) == "Hello, Ada!"


ASKING = TARGET in ("backend", "edge")


async def _answer_model(context, params):
    from mcp.types import CreateMessageResult, TextContent

    _answer_model.asked.append(params.messages[0].content.text)
    return CreateMessageResult(role="assistant", content=TextContent(type="text", text="Paris"), model="m")


async def _answer_user(context, params):
    from mcp.types import ElicitResult

    _answer_user.asked.append(params.message)
    if "color" in params.message:
        return ElicitResult(action="accept", content={"color": "blue"})
    return ElicitResult(action="accept", content={"name": "Ada", "response": "yes", "confirmed": True})


async def _answer_roots(context):
    from mcp.types import ListRootsResult, Root

    _answer_roots.asked.append(True)
    return ListRootsResult(roots=[Root(uri="file:///work", name="work")])


def _modes():
    # A legacy client can be asked only through mcp-edge's bridge (a stateless replica cannot
    # receive its answer); 2026-07-28 clients are asked directly too (multi round-trip).
    return ["2026-07-28"] if TARGET == "backend" else ["legacy", "2026-07-28"]


@pytest.mark.skipif(not ASKING, reason="the asking tools are the bundled backend's")
@pytest.mark.parametrize("mode", _modes())
@pytest.mark.parametrize(
    "tool,args,expected,asks",
    [
        ("test_sampling", {"prompt": "Capital of France?"}, "LLM response: Paris", ["model"]),
        ("test_elicitation", {"message": "Who are you?"}, "User response: action=accept", ["user"]),
        ("summarize", {"text": "a long text"}, "summary: Paris", ["model"]),
        ("confirm", {"action": "delete 3 files"}, "confirmed: delete 3 files", ["user"]),
        ("test_input_required_result_multiple_inputs", {}, "Every input answered", ["user", "model", "roots"]),
        ("test_input_required_result_multi_round", {}, "color blue", ["user", "user"]),
    ],
)
async def test_tools_that_ask_the_client(mcp_url, mode, tool, args, expected, asks):
    """Sampling, elicitation and roots: one question, several in one round, two rounds."""
    for callback in (_answer_model, _answer_user, _answer_roots):
        callback.asked = []
    async with Client(
        endpoint(mcp_url),
        mode=mode,
        sampling_callback=_answer_model,
        elicitation_callback=_answer_user,
        list_roots_callback=_answer_roots,
    ) as client:
        if mode == "legacy":
            assert client.protocol_version.startswith("2025-")
        result = await client.call_tool(tool, args)
    assert not result.is_error, text_of(result)
    assert expected in text_of(result), text_of(result)
    seen = (["model"] * len(_answer_model.asked) + ["user"] * len(_answer_user.asked)
            + ["roots"] * len(_answer_roots.asked))
    assert sorted(seen) == sorted(asks), seen


@pytest.mark.skipif(TARGET == "edge-fastmcp", reason="the fastmcp template announces no changes")
async def test_a_listen_hears_a_change_made_on_each_replica(mcp_url):
    """`Client.listen` through mcp-edge: a change on whichever replica the trigger reached arrives.

    The three triggers go round robin, so behind mcp-edge each lands on another replica."""
    import anyio
    from mcp.client.subscriptions import ResourceUpdated, ToolsListChanged

    async with Client(endpoint(mcp_url), mode="2026-07-28") as client:
        async with client.listen(tools_list_changed=True, resource_subscriptions=["test://watched-resource"]) as sub:
            assert sub.honored.tools_list_changed
            assert sub.honored.resource_subscriptions == ["test://watched-resource"]
            for _ in range(3):
                await client.call_tool("test_trigger_tool_change", {})
                with anyio.fail_after(1):
                    assert isinstance(await anext(sub), ToolsListChanged)
            await client.call_tool("test_trigger_resource_update", {})
            with anyio.fail_after(1):
                event = await anext(sub)
            assert isinstance(event, ResourceUpdated) and event.uri == "test://watched-resource", event


def _tasks_extension(progress: list):
    """The tasks extension (SEP-2663) on the SDK's own extension hooks: advertised with every
    request, a `resultType: "task"` answer to `call_tool` claimed and resolved by polling
    `tasks/get` (Mcp-Name carries the task id), at the interval the server suggests."""
    from typing import Any

    import anyio
    import mcp_types
    from mcp.client.extension import ClientExtension, ResultClaim
    from pydantic import Field, TypeAdapter

    class Created(mcp_types.Result):
        result_type: Literal["task"]
        task_id: str
        poll_interval_ms: int | None = None

    class TaskParams(mcp_types.RequestParams):
        task_id: str = Field(alias="taskId")

    class GetTask(mcp_types.Request[TaskParams, Literal["tasks/get"]]):
        method: Literal["tasks/get"] = "tasks/get"
        name_param = "taskId"

    async def resolve(created: Created, ctx) -> mcp_types.CallToolResult:
        any_dict = TypeAdapter(dict[str, Any])
        while True:
            await anyio.sleep((created.poll_interval_ms or 1000) / 1000)
            request = GetTask(params=TaskParams(taskId=created.task_id))
            task = await ctx.session.send_request(request, any_dict)
            assert task["taskId"] == created.task_id, task
            if task["status"] == "completed":
                return mcp_types.CallToolResult.model_validate(task["result"])
            assert task["status"] == "working", task
            progress.append(task.get("statusMessage"))

    class Tasks(ClientExtension):
        identifier = "io.modelcontextprotocol/tasks"

        def claims(self):
            return [ResultClaim(result_type="task", model=Created, resolve=resolve)]

    return Tasks()


@pytest.mark.skipif(TARGET == "edge-fastmcp", reason="the task fixtures are tools of the bundled backend")
async def test_long_running_calls_run_as_tasks_through_the_sdk_s_extension_hook(mcp_url):
    """`Client(extensions=[tasks])`: `call_tool` gets a task id and polls it to its result.

    Behind mcp-edge the calls spread over the replicas and every poll must reach the task's own
    replica (another one would answer -32602, failing the call)."""
    import anyio

    progress: list = []
    results: dict = {}
    async with Client(endpoint(mcp_url), mode="2026-07-28", extensions=[_tasks_extension(progress)]) as client:

        async def compute(i: int):
            result = await client.call_tool("slow_compute", {"seconds": 1, "label": f"c{i}"})
            results[i] = text_of(result)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for i in range(12):
                    group.start_soon(compute, i)
            report = await client.call_tool("report", {"topic": "tasks", "sections": 5, "section_ms": 600})
    replicas = set()
    for i, text in results.items():
        assert text.startswith(f"slow_compute(c{i}) finished after 1s on "), text
        replicas.add(text.rsplit(" ", 1)[1])
    if TARGET.startswith("edge"):
        assert len(replicas) == 3, replicas
    assert not report.is_error and text_of(report).startswith("# tasks\n"), text_of(report)
    assert any(p and p.startswith("section ") for p in progress), progress
