// The page a browser client runs: the official TypeScript SDK's client, bundled for the browser
// by the test (esbuild). The test calls these functions through the DevTools protocol.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

/**
 * A legacy session (the SDK reads its id through CORS), then `streams` long tool calls held open
 * at once (each `sleep` answers after `ms`), then tool calls beside them. Every completion is
 * recorded in order.
 */
window.streamsAndCalls = async (url, { streams, ms }) => {
  const done = [];
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: "mcp-edge-browser-test", version: "1.0.0" });
  await client.connect(transport);
  const session = transport.sessionId ?? null;
  const long = [];
  for (let i = 0; i < streams; i++) {
    const call = client.callTool({ name: "sleep", arguments: { ms } }, undefined, { timeout: 120000 });
    long.push(call.then(() => done.push(`sleep ${i}`)));
  }
  const answers = [];
  for (let i = 0; i < 3; i++) {
    const answer = await client.callTool({ name: "echo", arguments: { message: `call ${i}` } }, undefined, { timeout: 120000 });
    answers.push(answer.content[0].text);
    done.push(`echo ${i}`);
  }
  await Promise.all(long);
  await transport.terminateSession();
  await client.close();
  return { session, done, answers };
};

/** A page of an origin the edge does not allow: its request must fail as a CORS refusal. */
window.refused = async (url) => {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "refused", version: "1" } } }),
    });
    return `answered ${response.status}`;
  } catch (e) {
    return `refused: ${e.name}`;
  }
};
