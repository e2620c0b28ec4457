//! What the proxy learns about tools from the `tools/list` results passing through it: which
//! ones declare themselves safe to repeat (`readOnlyHint` or `idempotentHint`), for
//! [`crate::route::retry_is_safe`]; and which arguments a tool mirrors into `Mcp-Param-*`
//! headers (`x-mcp-header` on a top-level property of its input schema), which the bridge must
//! send with a 2026-07-28 call. Every replica serves the same tools, so one table serves all.

use dashmap::DashMap;
use serde::Deserialize;

use crate::telemetry::registry::{Encoder, Source};

/// Largest `tools/list` response read for annotations; a bigger one is passed on unread.
pub const LIST_LIMIT: usize = 4 << 20;

#[derive(Default)]
pub struct KnownTools {
    known: DashMap<Box<str>, Known, foldhash::fast::RandomState>,
}

/// A tool a replica listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// It declared itself read-only or idempotent: a retry elsewhere changes nothing.
    pub safe: bool,
}

/// One tool, as far as the proxy cares.
#[derive(Debug, Clone, Default)]
struct Known {
    safe: bool,
    /// (header name after `Mcp-Param-`, argument name).
    headers: Box<[(Box<str>, Box<str>)]>,
}

impl KnownTools {
    /// How many tools' annotations are known.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// What the replicas said of tool `name` in `tools/list` (`None`: none listed it). One
    /// lookup serves every question a request asks of it.
    pub fn listed(&self, name: &str) -> Option<Listed> {
        self.known.get(name).map(|k| Listed { safe: k.safe })
    }

    /// The `Mcp-Param-*` headers tool `name` declares: (header suffix, argument name).
    pub fn headers(&self, name: &str) -> Vec<(Box<str>, Box<str>)> {
        self.known
            .get(name)
            .map(|k| k.headers.to_vec())
            .unwrap_or_default()
    }

    /// Learn from a `tools/list` response body (JSON, or SSE whose last message is the result).
    /// Returns how many tools it named.
    pub fn learn(&self, body: &[u8]) -> usize {
        let Some(json) = mcp_protocol::sse::response_json(body) else {
            return 0;
        };
        let Ok(response) = serde_json::from_slice::<Response>(&json) else {
            return 0;
        };
        let tools = response.result.map(|r| r.tools).unwrap_or_default();
        for tool in &tools {
            let safe = tool
                .annotations
                .as_ref()
                .is_some_and(|a| a.read_only_hint == Some(true) || a.idempotent_hint == Some(true));
            let headers = tool
                .input_schema
                .as_ref()
                .and_then(|s| s.get("properties"))
                .and_then(serde_json::Value::as_object)
                .map(|props| {
                    props
                        .iter()
                        .filter_map(|(arg, schema)| {
                            let header = schema.get("x-mcp-header")?.as_str()?;
                            Some((header.into(), arg.as_str().into()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            self.known
                .insert(tool.name.as_str().into(), Known { safe, headers });
        }
        tools.len()
    }
}

#[derive(Deserialize)]
struct Response {
    result: Option<ListResult>,
}

#[derive(Deserialize)]
struct ListResult {
    #[serde(default)]
    tools: Vec<Tool>,
}

#[derive(Deserialize)]
struct Tool {
    name: String,
    annotations: Option<Annotations>,
    #[serde(rename = "inputSchema")]
    input_schema: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Annotations {
    read_only_hint: Option<bool>,
    idempotent_hint: Option<bool>,
}

impl Source for KnownTools {
    fn collect(&self, out: &mut Encoder) {
        out.gauge(
            "mcp_edge_tools_known",
            "Tools whose annotations this process has read (safe to repeat or not).",
            self.len(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_hints_from_json_and_sse() {
        let known = KnownTools::default();
        let list = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
            {"name":"echo","inputSchema":{},"annotations":{"readOnlyHint":true,"idempotentHint":true}},
            {"name":"put","inputSchema":{},"annotations":{"idempotentHint":true,"readOnlyHint":false}},
            {"name":"delete","inputSchema":{},"annotations":{"destructiveHint":true}},
            {"name":"plain","inputSchema":{}}]}}"#;
        assert_eq!(known.learn(list.as_bytes()), 4);
        let is_safe = |name: &str| known.listed(name).is_some_and(|t| t.safe);
        assert!(is_safe("echo") && is_safe("put"));
        assert!(!is_safe("delete") && !is_safe("plain") && !is_safe("unknown"));
        let sse = r#"event: message
data: {"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo","inputSchema":{}}]}}

"#;
        assert_eq!(known.learn(sse.as_bytes()), 1);
        let is_safe = |name: &str| known.listed(name).is_some_and(|t| t.safe);
        assert!(
            !is_safe("echo"),
            "a tool that dropped its hints is no longer repeated"
        );
        assert_eq!(
            known.learn(b"{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":1,\"message\":\"x\"}}"),
            0
        );
        assert_eq!(known.learn(b"not json"), 0);
    }

    #[test]
    fn learns_the_headers_a_tool_mirrors_its_arguments_into() {
        let known = KnownTools::default();
        let list = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
            {"name":"geo","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"q":{"type":"string"}}}}]}}"#;
        known.learn(list.as_bytes());
        assert_eq!(
            known.headers("geo"),
            vec![("Region".into(), "region".into())]
        );
        assert!(known.headers("other").is_empty());
    }
}
