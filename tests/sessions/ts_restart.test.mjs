// The official TypeScript SDK client keeps its session while mcp-edge restarts underneath it.
// Run with Node 22's test runner; needs MCP_EDGE_BIN (scripts/test sets it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Client, StreamableHTTPClientTransport, freePort, recordingFetch, startEdge, waitFor } from "../support.mjs";

const binary = process.env.MCP_EDGE_BIN;


test("TypeScript SDK client: a legacy session continues across an mcp-edge restart", { skip: !binary }, async () => {
  const [port, admin] = [await freePort(), await freePort()];
  const key = randomBytes(32).toString("hex");
  let edge = await startEdge({ port, admin, env: { MCP_EDGE_SESSION_KEY: key } });
  const wire = [];
  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), { fetch: recordingFetch(wire) });
  const client = new Client({ name: "mcp-edge-restart-test", version: "1.0.0" });
  let clientErrors = [];
  client.onerror = (e) => clientErrors.push(e);
  try {
    await client.connect(transport);
    const before = await client.callTool({ name: "echo", arguments: { message: "before the restart" } });
    assert.equal(before.content[0].text, "before the restart");
    const sessionId = transport.sessionId;
    assert.ok(sessionId, "mcp-edge minted a session");

    edge.child.kill("SIGTERM");
    assert.equal(await edge.exited, 0, "mcp-edge exits 0 on SIGTERM");
    edge = await startEdge({ port, admin, env: { MCP_EDGE_SESSION_KEY: key } }); // the same address, a process that never saw the session

    const after = await client.callTool({ name: "echo", arguments: { message: "after the restart" } });
    assert.equal(after.isError, false);
    assert.equal(after.content[0].text, "after the restart");
    assert.equal(transport.sessionId, sessionId, "the same session");
    await transport.terminateSession();
    await client.close();

    assert.equal(wire.filter((e) => e.method === "initialize").length, 1, "no re-initialize");
    for (const e of wire) {
      if (e.verb === "POST" || e.verb === "DELETE") assert.ok([200, 202].includes(e.status), JSON.stringify(e));
    }
    assert.deepEqual(new Set(wire.map((e) => e.session).filter(Boolean)), new Set([sessionId]));
    assert.deepEqual(clientErrors, [], "the client reported no error");
  } finally {
    edge.child.kill("SIGKILL");
  }
});
