//! What each scenario sends, and how an answer is judged. Nothing but a 2xx carrying the
//! expected JSON-RPC result counts as a success: an HTTP error status, a JSON-RPC error, a tool
//! result with `isError`, a timeout and a broken connection are each counted as what they are.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// tools/call echo, the template's request shape (Accept: application/json, no version header).
    Stateless,
    /// initialize, notifications/initialized, N tools/call echo in the session, DELETE.
    LegacySession,
    /// 2026-07-28 tools/call echo: MCP-Protocol-Version, Mcp-Method, Mcp-Name and `_meta`.
    Modern,
    /// tools/call progress over SSE (5 notifications, then the result).
    Stream,
    /// 70 % stateless, 15 % modern, 10 % calls in a legacy session, 5 % stream.
    Mixed,
    /// legacy-session with a client that declared sampling at initialize: mcp-edge bridges its
    /// calls over 2026-07-28 replicas (echo asks nothing, so this is the bridge's cost alone).
    Bridged,
    /// A legacy session DELETEd at one address, then used at the next until refused (404):
    /// how long a DELETE takes to reach the other mcp-edge processes (with `--spread`).
    Revoke,
}

/// How one exchange ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    Http(u16),
    JsonRpc(i64),
    ToolError,
    /// 2xx, but not the answer expected (no result, unreadable body).
    Malformed,
    Timeout,
    Connection,
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Http(status) => format!("http_{status}"),
            Outcome::JsonRpc(code) => format!("jsonrpc_{code}"),
            Outcome::ToolError => "tool_is_error".into(),
            Outcome::Malformed => "malformed".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Connection => "connection".into(),
        }
    }
}

/// What a request expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A JSON-RPC result (JSON, or the last message of an SSE stream).
    Result,
    /// Only a status in this class (notifications: 202; DELETE: 200).
    Status(u16),
}

/// Judge a complete answer.
pub fn judge(status: u16, body: &[u8], expect: Expect) -> Outcome {
    match expect {
        Expect::Status(want) if status == want => return Outcome::Ok,
        Expect::Status(_) => return Outcome::Http(status),
        Expect::Result if !(200..300).contains(&status) => return Outcome::Http(status),
        Expect::Result => {}
    }
    let Some(message) = last_message(body) else {
        return Outcome::Malformed;
    };
    if let Some(code) = message
        .get("error")
        .map(|e| e["code"].as_i64().unwrap_or(0))
    {
        return Outcome::JsonRpc(code);
    }
    match message.get("result") {
        Some(result) if result.get("isError") == Some(&Value::Bool(true)) => Outcome::ToolError,
        Some(_) => Outcome::Ok,
        None => Outcome::Malformed,
    }
}

/// The JSON-RPC response in a body: the JSON itself, or the last `data:` message of an SSE stream
/// that carries a result or an error.
pub fn last_message(body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).ok();
    }
    text.split("\n\n")
        .filter_map(|event| {
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            serde_json::from_str::<Value>(&data).ok()
        })
        .filter(|m| m.get("result").is_some() || m.get("error").is_some())
        .last()
}

pub fn echo(id: u64) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}).to_string()
}

pub fn modern_echo(id: u64) -> String {
    let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}});
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"},"_meta":meta}}).to_string()
}

pub const MODERN_HEADERS: &[(&str, &str)] = &[
    ("mcp-protocol-version", "2026-07-28"),
    ("mcp-method", "tools/call"),
    ("mcp-name", "echo"),
];

pub fn initialize() -> String {
    initialize_with(json!({}))
}

/// initialize for a client declaring `capabilities`.
pub fn initialize_with(capabilities: Value) -> String {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":capabilities,"clientInfo":{"name":"mcp-load","version":"1"}}}).to_string()
}

pub const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

pub fn progress(id: u64) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"progress","arguments":{"steps":5,"interval_ms":0},"_meta":{"progressToken":id}}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_expected_answer_is_a_success() {
        let ok = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#;
        assert_eq!(judge(200, ok, Expect::Result), Outcome::Ok);
        assert_eq!(judge(502, ok, Expect::Result), Outcome::Http(502));
        assert_eq!(
            judge(
                200,
                br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"x"}}"#,
                Expect::Result
            ),
            Outcome::JsonRpc(-32602)
        );
        assert_eq!(
            judge(
                200,
                br#"{"jsonrpc":"2.0","id":1,"result":{"isError":true}}"#,
                Expect::Result
            ),
            Outcome::ToolError
        );
        assert_eq!(judge(200, b"", Expect::Result), Outcome::Malformed);
        assert_eq!(judge(202, b"", Expect::Status(202)), Outcome::Ok);
        assert_eq!(judge(404, b"{}", Expect::Status(200)), Outcome::Http(404));
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"content\":[]}}\n\n";
        assert_eq!(judge(200, sse, Expect::Result), Outcome::Ok);
        let cut = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";
        assert_eq!(
            judge(200, cut, Expect::Result),
            Outcome::Malformed,
            "a stream without its result"
        );
    }
}
