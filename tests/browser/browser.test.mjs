// A web page on another origin, in a real browser (Debian's chromium, headless, driven through
// the DevTools protocol by puppeteer-core), using the official TypeScript SDK's client against
// mcp-edge over TLS: ten long calls held open and tool calls beside them. A browser opens at most
// six HTTP/1.1 connections to one origin, so over HTTP/1.1 the calls made beside the ten wait
// for one of them to end; over HTTP/2 they share one connection and all run at once. Pages of
// origins not allowed are refused by CORS.
//
// Needs MCP_EDGE_BIN, and the certificates of tests/tls/ca.py in MCP_TEST_CERTS (scripts/test's
// browser stage makes them).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { freePort, startEdge } from "../support.mjs";

const tools = process.env.MCP_EDGE_TOOLS ?? path.resolve(import.meta.dirname, "../../.tools");
const require = createRequire(path.join(tools, "node", "package.json"));
const esbuild = require("esbuild");
const puppeteer = require("puppeteer-core");
const certs = process.env.MCP_TEST_CERTS;
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
const skip = !process.env.MCP_EDGE_BIN || !certs;

// The long calls: longer than the page needs to issue everything else.
const STREAMS = 10;
const SLEEP_MS = 4000;

let script, pages, browser, pageOrigin, otherOrigin;
const edges = [];

/** A page server: one origin for the allowed page, another for the refused one. */
function pageServer(port) {
  const server = http.createServer((request, response) => {
    if (request.url === "/page.js") {
      response.writeHead(200, { "content-type": "text/javascript" });
      return response.end(script);
    }
    response.writeHead(200, { "content-type": "text/html" });
    response.end('<!doctype html><title>mcp-edge browser test</title><script src="/page.js"></script>');
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

before(async () => {
  if (skip) return;
  const bundle = await esbuild.build({
    entryPoints: [path.join(import.meta.dirname, "page.mjs")],
    bundle: true, write: false, format: "iife", platform: "browser", target: "chrome120",
    nodePaths: [path.join(tools, "node", "node_modules")], logLevel: "error",
  });
  script = bundle.outputFiles[0].text;
  const [a, b] = [await freePort(), await freePort()];
  pages = [await pageServer(a), await pageServer(b)];
  // `localhost` and `127.0.0.1` are different origins; the edge allows only the first.
  pageOrigin = `http://localhost:${a}`;
  otherOrigin = `http://localhost:${b}`;
  // The browser trusts the test's certificate by its public key (no system store touched).
  const spki = new X509Certificate(readFileSync(path.join(certs, "edge.pem"))).publicKey.export({ type: "spki", format: "der" });
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", `--ignore-certificate-errors-spki-list=${createHash("sha256").update(spki).digest("base64")}`],
  });
});

after(async () => {
  await browser?.close();
  for (const server of pages ?? []) server.close();
  for (const edge of edges) edge.child.kill();
});

async function edge(http2) {
  const [port, admin] = [await freePort(), await freePort()];
  const started = await startEdge({
    port, admin,
    args: ["--tls-cert", path.join(certs, "edge.pem"), "--tls-key", path.join(certs, "edge-key.pem"),
      "--http2", String(http2), "--allowed-origins", pageOrigin],
  });
  edges.push(started);
  return { url: `https://127.0.0.1:${port}/mcp`, admin };
}

async function open(origin) {
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => typeof window.streamsAndCalls === "function");
  return page;
}

async function handshakes(admin) {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const count = (outcome) => Number(text.match(new RegExp(`mcp_edge_tls_handshakes_total\\{outcome="${outcome}"\\} (\\d+)`))?.[1] ?? 0);
  return { h2: count("h2"), http1: count("http1") };
}

test("over HTTP/2 the calls beside ten open streams all complete while the streams run", { skip }, async () => {
  const { url, admin } = await edge(true);
  const page = await open(pageOrigin);
  const run = await page.evaluate((u, o) => window.streamsAndCalls(u, o), url, { streams: STREAMS, ms: SLEEP_MS });
  await page.close();
  assert.ok(run.session, "the page read its Mcp-Session-Id (exposed by CORS)");
  assert.deepEqual(run.answers, ["call 0", "call 1", "call 2"]);
  const firstSleep = run.done.findIndex((d) => d.startsWith("sleep"));
  assert.deepEqual(run.done.slice(0, firstSleep), ["echo 0", "echo 1", "echo 2"], `completion order: ${run.done}`);
  assert.equal(run.done.filter((d) => d.startsWith("sleep")).length, STREAMS);
  const counted = await handshakes(admin);
  assert.equal(counted.http1, 0, "the browser spoke HTTP/2 only");
  assert.equal(counted.h2, 1, "over one connection");
});

test("over HTTP/1.1 the seventh request waits for one of the six connections", { skip }, async () => {
  const { url, admin } = await edge(false);
  const page = await open(pageOrigin);
  const run = await page.evaluate((u, o) => window.streamsAndCalls(u, o), url, { streams: STREAMS, ms: SLEEP_MS });
  await page.close();
  assert.ok(run.session);
  assert.deepEqual(run.answers, ["call 0", "call 1", "call 2"]);
  // The SDK's GET stream and five long calls hold the six connections; the first call beside
  // them completes only after a long call has ended and given its connection back.
  assert.ok(run.done[0].startsWith("sleep"), `completion order: ${run.done}`);
  const counted = await handshakes(admin);
  assert.equal(counted.h2, 0);
  assert.equal(counted.http1, 6, "six connections, the browser's most for one origin");
});

test("a page of an origin not allowed is refused by CORS, over either protocol", { skip }, async () => {
  for (const http2 of [true, false]) {
    const { url } = await edge(http2);
    const page = await open(otherOrigin);
    assert.equal(await page.evaluate((u) => window.refused(u), url), "refused: TypeError");
    const allowed = await open(pageOrigin);
    assert.match(await allowed.evaluate((u) => window.refused(u), url), /^answered 200/);
    await page.close();
    await allowed.close();
  }
});
