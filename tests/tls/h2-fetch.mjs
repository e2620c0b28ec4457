// Preloaded (`node --import`) so that every fetch in the process speaks HTTP/2 over TLS: Node's
// own fetch offers only HTTP/1.1 in ALPN. The TypeScript SDK and the conformance suite call the
// global fetch; here it is undici's (the same implementation, its npm release, installed by
// scripts/setup) with a dispatcher that offers h2. Certificates: NODE_EXTRA_CA_CERTS, as for
// Node's own fetch.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { rootCertificates } from "node:tls";

const tools = process.env.MCP_EDGE_TOOLS ?? path.resolve(import.meta.dirname, "../../.tools");
const { Agent, fetch, setGlobalDispatcher } = createRequire(path.join(tools, "node", "package.json"))("undici");

const extra = process.env.NODE_EXTRA_CA_CERTS;
const ca = extra ? [...rootCertificates, readFileSync(extra, "utf8")] : undefined;
setGlobalDispatcher(new Agent({ allowH2: true, connect: { ca } }));
globalThis.fetch = fetch;
