// Helpers the TypeScript SDK tests share: the SDK from .tools, waiting with a deadline, and a
// fetch that records every exchange.
import { createRequire } from "node:module";
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
