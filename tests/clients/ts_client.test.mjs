// The official TypeScript SDK 1.x client against the endpoint in MCP_TEST_URL.
// Run with Node 22's test runner: node --test tests/clients/ts_client.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Client,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  ResourceUpdatedNotificationSchema,
  StreamableHTTPClientTransport,
  ToolListChangedNotificationSchema,
  recordingFetch,
  waitFor,
} from "../support.mjs";

const url = process.env.MCP_TEST_URL;
const behindEdge = (process.env.MCP_TEST_TARGET ?? "backend").startsWith("edge");
const push = behindEdge && !(process.env.MCP_TEST_TARGET ?? "").includes("fastmcp");

test("TypeScript SDK client: initialize, list, call, read, prompt, terminate", { skip: !url }, async () => {
  const wire = [];
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch(wire) });
  const client = new Client({ name: "mcp-edge-ts-test", version: "1.0.0" });
  await client.connect(transport);

  const tools = await client.listTools();
  assert.ok(tools.tools.some((t) => t.name === "echo"));
  const echoed = await client.callTool({ name: "echo", arguments: { message: "hello", repeat: 2 } });
  assert.equal(echoed.isError, false);
  assert.equal(echoed.content[0].text, "hello\nhello");
  const info = await client.readResource({ uri: "info://server" });
  assert.ok(["mcp-backend", "fastmcp-template"].includes(JSON.parse(info.contents[0].text).name));
  const prompt = await client.getPrompt({ name: "code_review", arguments: { language: "typescript" } });
  assert.match(prompt.messages[0].content.text, /typescript/);

  // The SDK always opens the GET listen stream after `initialized`; a stateless server says 405,
  // mcp-edge serves it when its replicas announce changes (not the fastmcp template's).
  await waitFor(() => wire.some((e) => e.verb === "GET"), 5000, "the client's GET stream");
  assert.deepEqual(wire.filter((e) => e.verb === "GET").map((e) => e.status), [push ? 200 : 405]);

  const sessionId = transport.sessionId;
  await transport.terminateSession();
  await client.close();

  const deletes = wire.filter((e) => e.verb === "DELETE");
  assert.equal(Boolean(sessionId), behindEdge, "mcp-edge mints a session for this legacy client");
  if (sessionId) {
    // Behind mcp-edge, which minted the session: DELETE ends it, and the id is dead after.
    assert.deepEqual(deletes.map((e) => e.status), [200]);
    const reuse = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": sessionId },
      body: JSON.stringify({ jsonrpc: "2.0", id: 99, method: "tools/list" }),
    });
    assert.equal(reuse.status, 404);
    const error = await reuse.json();
    assert.equal(error.id, 99);
    assert.ok(error.error.message.length > 0);
    const sessions = new Set(wire.map((e) => e.session).filter(Boolean));
    assert.deepEqual([...sessions], [sessionId], "one session id throughout");
  } else {
    // The SDK sends DELETE only when it holds a session id; a stateless server issued none.
    assert.equal(deletes.length, 0);
  }
  for (const e of wire.filter((e) => e.verb === "POST")) {
    assert.ok([200, 202].includes(e.status), JSON.stringify(e));
  }
  assert.equal(wire.find((e) => e.verb === "POST").method, "initialize");
  const replicas = new Set(wire.map((e) => e.servedBy).filter(Boolean));
  process.stdout.write(`replicas seen: ${[...replicas].join(",")}\n`);
  assert.equal(replicas.size, behindEdge ? 3 : 1, `replicas seen: ${[...replicas]}`);
});

// Through mcp-edge, a legacy client that declared sampling, elicitation and roots is asked on
// the call's stream (the bridge runs the call as multi round-trip requests over the replicas).
const asking = [
  ["test_sampling", { prompt: "Capital of France?" }, /LLM response: Paris/, 1],
  ["test_elicitation", { message: "Who are you?" }, /User response: action=accept/, 1],
  ["test_input_required_result_multiple_inputs", {}, /Every input answered/, 3],
  ["test_input_required_result_multi_round", {}, /color blue/, 2],
];
for (const [tool, args, expected, questions] of asking) {
  test(`TypeScript SDK client with request handlers: ${tool}`, { skip: !url || process.env.MCP_TEST_TARGET !== "edge" }, async () => {
    const wire = [];
    const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch(wire) });
    const client = new Client(
      { name: "mcp-edge-ts-test", version: "1.0.0" },
      { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
    );
    const asked = [];
    client.setRequestHandler(CreateMessageRequestSchema, async () => {
      asked.push("model");
      return { role: "assistant", content: { type: "text", text: "Paris" }, model: "m", stopReason: "endTurn" };
    });
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push("user");
      const content = /color/.test(request.params.message) ? { color: "blue" } : { name: "Ada", response: "yes" };
      return { action: "accept", content };
    });
    client.setRequestHandler(ListRootsRequestSchema, async () => {
      asked.push("roots");
      return { roots: [{ uri: "file:///work", name: "work" }] };
    });
    await client.connect(transport);
    const result = await client.callTool({ name: tool, arguments: args });
    assert.equal(result.isError ?? false, false, JSON.stringify(result));
    assert.match(result.content[0].text, expected);
    assert.equal(asked.length, questions, asked.join(","));
    // The SDK's answer POST may settle just after the result it made possible.
    const answered = () => wire.filter((e) => e.verb === "POST" && e.method == null);
    await waitFor(() => answered().length === questions, 5000, "one answer POST per question");
    const answers = answered();
    for (const e of answers) assert.equal(e.status, 202, JSON.stringify(e));
    await transport.terminateSession();
    await client.close();
  });
}

test("TypeScript SDK client: the GET stream hears list changes and subscribed updates", { skip: !url || !push }, async () => {
  const wire = [];
  const got = [];
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch(wire) });
  const client = new Client({ name: "mcp-edge-ts-push", version: "1.0.0" });
  client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => got.push(n));
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => got.push(n));
  await client.connect(transport);
  await waitFor(() => wire.some((e) => e.verb === "GET" && e.status === 200), 5000, "the GET stream");
  await client.subscribeResource({ uri: "test://watched-resource" });
  // Three triggers, round robin: behind mcp-edge, one on each replica.
  for (let i = 1; i <= 3; i++) {
    await client.callTool({ name: "test_trigger_tool_change", arguments: {} });
    await waitFor(() => got.length === i, 1000, `tool-list change ${i}`);
    assert.equal(got[i - 1].method, "notifications/tools/list_changed");
  }
  await client.callTool({ name: "test_trigger_resource_update", arguments: {} });
  await waitFor(() => got.length === 4, 1000, "the resource update");
  assert.deepEqual(got[3].params, { uri: "test://watched-resource" });
  await transport.terminateSession();
  await client.close();
});
