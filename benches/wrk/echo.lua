-- The seed template's request shape: tools/call echo, Accept: application/json, no version header.
-- With MCP_SESSION set, the same call in that legacy session, accepting SSE (benches/callgrind
-- --bridged mints one whose client declared sampling, so mcp-edge bridges the call).
-- Every response that is not HTTP 200 with a non-error tool result counts as bad.
wrk.method = "POST"
wrk.path = os.getenv("MCP_PATH") or "/mcp"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local session = os.getenv("MCP_SESSION")
if session then
  wrk.headers["Accept"] = "application/json, text/event-stream"
  wrk.headers["Mcp-Session-Id"] = session
  wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
end
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}'

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"isError":false', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("requests %d\nbad_responses %d\nerrors_socket %d\n", summary.requests, total,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write(string.format("latency_p50_us %d\nlatency_p99_us %d\n", latency:percentile(50), latency:percentile(99)))
end
