// Helpers the TypeScript SDK tests share: the SDK from .tools, waiting with a deadline, and a
// fetch that records every exchange.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";

const tools = process.env.MCP_EDGE_TOOLS ?? path.resolve(import.meta.dirname, "../.tools");
const require = createRequire(path.join(tools, "node", "package.json"));
export const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
export const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");
export const {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} = require("@modelcontextprotocol/sdk/types.js");

/** A TCP port free on loopback right now. */
export function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Start mcp-edge ($MCP_EDGE_BIN) on loopback `port` and `admin` with `args` after them and `env`
 * added, and wait until every replica it has is healthy: `{ child, exited }` (a promise of the
 * exit code).
 */
export async function startEdge({ port, admin, args = [], env = {} }) {
  const child = spawn(process.env.MCP_EDGE_BIN, ["--listen", `127.0.0.1:${port}`, "--admin-listen", `127.0.0.1:${admin}`, "--grace-seconds", "1", "--health-interval-ms", "200", "--log", "error", ...args], {
    env: { ...process.env, ...env },
    stdio: "ignore",
  });
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  await waitFor(async () => {
    try {
      const state = await (await fetch(`http://127.0.0.1:${admin}/readyz`)).json();
      return state.status === "ready" && state.healthy_replicas === state.replicas;
    } catch {
      return false;
    }
  }, 30000, "mcp-edge to be ready");
  return { child, exited };
}

/** Poll `check` (sync or async) until it holds, failing with `what` after `ms`. */
export async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** A fetch that pushes {verb, status, method, servedBy, session} for every exchange onto `wire`. */
export function recordingFetch(wire) {
  return async (input, init) => {
    const response = await fetch(input, init);
    let method = null;
    try {
      method = JSON.parse(init?.body ?? "null")?.method ?? null;
    } catch {}
    wire.push({
      verb: init?.method ?? "GET",
      status: response.status,
      method,
      servedBy: response.headers.get("x-served-by"),
      session: response.headers.get("mcp-session-id"),
    });
    return response;
  };
}
