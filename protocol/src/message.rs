//! What a POST body is, read without building a JSON tree ([`classify`]), which protocol era
//! it speaks ([`era`]), and the header rules of 2026-07-28 ([`header_mismatch`]).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::version::MODERN;

/// What kind of JSON-RPC message a body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    /// A response or error object: the client answering a server→client request.
    Response,
    /// A JSON array of messages (legal in 2025-03-26 only).
    Batch,
}

/// A classified POST body. Strings borrow from the body unless they held escapes.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub kind: Kind,
    pub method: Option<Cow<'a, str>>,
    /// The raw JSON text of `id` (`1`, `"abc"`), as the key for in-flight lookups.
    pub id: Option<&'a str>,
    /// `params.name` (tools/call, prompts/get), `params.uri` (resources/read) or
    /// `params.taskId` (tasks/get, tasks/update, tasks/cancel).
    pub name: Option<Cow<'a, str>>,
    /// `params.requestId` of a `notifications/cancelled`.
    pub cancels: Option<&'a str>,
    /// `initialize`'s `params.protocolVersion`.
    pub init_version: Option<Cow<'a, str>>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]` (2026-07-28 requests).
    pub meta_version: Option<Cow<'a, str>>,
    /// The request's `_meta` client capabilities declare the tasks extension (2026-07-28).
    pub declares_tasks: bool,
}

impl Message<'_> {
    pub fn is(&self, method: &str) -> bool {
        self.method.as_deref() == Some(method)
    }
    pub fn is_initialize(&self) -> bool {
        self.kind == Kind::Request && self.is("initialize")
    }
}

/// Whether one JSON-RPC message (an SSE event's data, a bridged round's answer) is a response
/// or error object: it has no `method`. Reads the top level only, builds no tree.
pub fn is_response(message: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(borrow, default)]
        method: Option<&'a RawValue>,
    }
    serde_json::from_slice::<Peek<'_>>(message).is_ok_and(|p| p.method.is_none())
}

/// Why a body is not a usable JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Not UTF-8, or not JSON at all (-32700).
    Parse(String),
    /// JSON, but not a JSON-RPC 2.0 message (-32600).
    NotJsonRpc(String),
}

/// A JSON string borrowed from the body when it has no escapes. (serde borrows a `Cow<str>`
/// only as a field of its own: inside an `Option` it would always allocate.)
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

fn cow(t: Option<Text<'_>>) -> Option<Cow<'_, str>> {
    t.map(|t| t.0)
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Text<'a>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Text<'a>>,
    #[serde(borrow, default)]
    params: Option<RawParams<'a>>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawParams<'a> {
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    uri: Option<Text<'a>>,
    #[serde(borrow, default, rename = "protocolVersion")]
    protocol_version: Option<Text<'a>>,
    /// Read leniently (as the capabilities below): a wrong type is the replica's to refuse.
    #[serde(borrow, default, rename = "taskId")]
    task_id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "requestId")]
    request_id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "_meta")]
    meta: Option<RawMeta<'a>>,
}

#[derive(Deserialize)]
struct RawMeta<'a> {
    #[serde(borrow, default, rename = "io.modelcontextprotocol/protocolVersion")]
    version: Option<Text<'a>>,
    #[serde(borrow, default, rename = "io.modelcontextprotocol/clientCapabilities")]
    capabilities: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawCapabilities<'a> {
    #[serde(borrow, default)]
    extensions: Option<RawExtensions<'a>>,
}

#[derive(Deserialize)]
struct RawExtensions<'a> {
    #[serde(borrow, default, rename = "io.modelcontextprotocol/tasks")]
    tasks: Option<&'a RawValue>,
}

/// Classify a POST body without building a JSON tree.
///
/// Fields the proxy does not route on are skipped; a wrong type for a field it does read
/// (`method` not a string, `id` not a string or integer) makes the message invalid.
pub fn classify(body: &[u8]) -> Result<Message<'_>, Invalid> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Invalid::Parse("request body is not valid UTF-8".into()))?;
    if nests_deeper_than(body, MAX_DEPTH) {
        return Err(Invalid::Parse(format!(
            "malformed JSON: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let first = text.bytes().find(|b| !b.is_ascii_whitespace());
    if first == Some(b'[') {
        // Every element must be a JSON-RPC message the edge would accept on its own; the
        // replica answers each one.
        let elements: Vec<&RawValue> = serde_json::from_str(text)
            .map_err(|e| Invalid::Parse(format!("malformed JSON: {e}")))?;
        if elements.is_empty() {
            return Err(Invalid::NotJsonRpc("an empty JSON-RPC batch".into()));
        }
        for (i, element) in elements.iter().enumerate() {
            let element = element.get();
            if element.starts_with('[') {
                return Err(Invalid::NotJsonRpc(format!(
                    "batch element {i} is itself a batch"
                )));
            }
            if !element.starts_with('{') {
                return Err(Invalid::NotJsonRpc(format!(
                    "batch element {i} is not a JSON-RPC message (an object): {element:.40}"
                )));
            }
            classify(element.as_bytes()).map_err(|why| {
                let (Invalid::Parse(m) | Invalid::NotJsonRpc(m)) = why;
                Invalid::NotJsonRpc(format!("batch element {i}: {m}"))
            })?;
        }
        return Ok(Message {
            kind: Kind::Batch,
            method: None,
            id: None,
            name: None,
            cancels: None,
            init_version: None,
            meta_version: None,
            declares_tasks: false,
        });
    }
    let raw: RawMessage<'_> = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            Invalid::NotJsonRpc(format!("not a JSON-RPC message: {e}"))
        } else {
            Invalid::Parse(format!("malformed JSON: {e}"))
        }
    })?;
    if raw.jsonrpc.as_ref().map(|t| &*t.0) != Some("2.0") {
        return Err(Invalid::NotJsonRpc("\"jsonrpc\" must be \"2.0\"".into()));
    }
    let id = match raw.id {
        None => None,
        Some(id) if is_valid_id(id.get()) => Some(id.get()),
        Some(id) => {
            return Err(Invalid::NotJsonRpc(format!(
                "\"id\" must be a string or an integer, got {}",
                id.get()
            )));
        }
    };
    let kind = match (&raw.method, id, raw.result.is_some() || raw.error.is_some()) {
        (Some(_), Some(_), _) => Kind::Request,
        (Some(_), None, _) => Kind::Notification,
        (None, Some(_), true) => Kind::Response,
        _ => {
            return Err(Invalid::NotJsonRpc(
                "a message needs a \"method\", or an \"id\" with \"result\" or \"error\"".into(),
            ));
        }
    };
    let params = raw.params;
    let (name, init_version, meta_version, cancels, declares_tasks) = match params {
        Some(p) => {
            let (version, capabilities) =
                p.meta.map_or((None, None), |m| (m.version, m.capabilities));
            let declares_tasks = capabilities
                .and_then(|c| serde_json::from_str::<RawCapabilities<'_>>(c.get()).ok())
                .and_then(|c| c.extensions)
                .is_some_and(|e| e.tasks.is_some());
            let task_id = p
                .task_id
                .and_then(|t| serde_json::from_str::<Text<'_>>(t.get()).ok());
            (
                cow(p.name.or(p.uri).or(task_id)),
                cow(p.protocol_version),
                cow(version),
                p.request_id.map(RawValue::get).filter(|r| is_valid_id(r)),
                declares_tasks,
            )
        }
        None => (None, None, None, None, false),
    };
    Ok(Message {
        kind,
        method: cow(raw.method),
        id,
        name,
        cancels,
        init_version,
        meta_version,
        declares_tasks,
    })
}

/// Deepest nesting of arrays and objects accepted: serde_json's own limit when it builds a
/// value, which the parts the classifier skips unread would otherwise not meet.
pub const MAX_DEPTH: usize = 128;

/// Whether arrays and objects nest deeper than `limit` (brackets inside strings do not count).
fn nests_deeper_than(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// JSON-RPC ids in MCP are strings or integers (never null, fractions or structures).
fn is_valid_id(raw: &str) -> bool {
    let raw = raw.trim();
    if raw.starts_with('"') {
        // A string whose escapes decode (no lone surrogate halves such as "\udda0").
        return !raw.contains('\\') || serde_json::from_str::<String>(raw).is_ok();
    }
    // Integers that fit 64 bits: what SDKs decode (a 5000-digit id is no id).
    raw.bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
        && raw.parse::<i64>().is_ok()
}

/// The protocol era of a request, as the proxy routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// 2025 revisions: sessions may exist. `None`: no version named anywhere.
    Legacy(Option<String>),
    /// 2026-07-28 and later: stateless, never a session.
    Modern(String),
}

impl Era {
    pub fn is_modern(&self) -> bool {
        matches!(self, Era::Modern(_))
    }
}

/// Decide the era from the body's `_meta`, `initialize` params and the version header.
pub fn era(message: Option<&Message<'_>>, header_version: Option<&str>) -> Era {
    if let Some(v) = message.and_then(|m| m.meta_version.as_deref()) {
        return Era::Modern(v.to_owned());
    }
    if let Some(m) = message.filter(|m| m.is_initialize()) {
        return Era::Legacy(m.init_version.as_deref().map(str::to_owned));
    }
    match header_version {
        Some(v) if v >= MODERN => Era::Modern(v.to_owned()),
        Some(v) => Era::Legacy(Some(v.to_owned())),
        None => Era::Legacy(None),
    }
}

/// A 2026-07-28 header/body disagreement (answered 400 / -32020 before any replica sees it).
pub fn header_mismatch(
    message: &Message<'_>,
    header_version: Option<&str>,
    header_method: Option<&str>,
    header_name: Option<&str>,
) -> Option<String> {
    if let (Some(meta), Some(header)) = (message.meta_version.as_deref(), header_version)
        && meta != header
    {
        return Some(format!(
            "MCP-Protocol-Version header ({header}) does not match _meta protocolVersion ({meta})"
        ));
    }
    if let (Some(header), Some(body)) = (header_method.map(str::trim), message.method.as_deref())
        && header != body
    {
        return Some(format!(
            "Mcp-Method header ({header}) does not match the body's method ({body})"
        ));
    }
    let names_target = message
        .method
        .as_deref()
        .is_some_and(crate::methods::is_named);
    if let (true, Some(header), Some(body)) = (
        names_target,
        header_name.map(str::trim),
        message.name.as_deref(),
    ) && header != body
    {
        return Some(format!(
            "Mcp-Name header ({header}) does not match the body ({body})"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_without_a_method_is_a_response() {
        assert!(is_response(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#));
        assert!(is_response(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"m"}}"#
        ));
        assert!(!is_response(
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"method":1}}"#
        ));
        assert!(!is_response(br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#));
        assert!(!is_response(b"not json"));
    }

    #[test]
    fn a_task_request_names_its_task_and_says_whether_it_declares_the_extension() {
        let m = classify(br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"r1/abc","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}}"#).unwrap();
        assert_eq!(
            (m.name.as_deref(), m.declares_tasks),
            (Some("r1/abc"), true)
        );
        assert!(
            header_mismatch(&m, Some("2026-07-28"), None, Some("r1/other")).is_some(),
            "Mcp-Name carries the task id"
        );
        let m = classify(br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"x","_meta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"other/ext":{}}}}}}"#).unwrap();
        assert!(!m.declares_tasks);
        // Wrong types are the replica's to refuse (-32602): still a message here.
        let m = classify(br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":7,"_meta":{"io.modelcontextprotocol/clientCapabilities":"none"}}}"#).unwrap();
        assert_eq!((m.name, m.declares_tasks), (None, false));
    }

    #[test]
    fn classifies_requests_notifications_responses_and_batches() {
        let m = classify(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}"#).unwrap();
        assert_eq!(
            (m.kind, m.method.as_deref(), m.id, m.name.as_deref()),
            (Kind::Request, Some("tools/call"), Some("7"), Some("echo"))
        );
        let m = classify(
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"abc"}}"#,
        )
        .unwrap();
        assert_eq!((m.kind, m.cancels), (Kind::Notification, Some("\"abc\"")));
        let m = classify(br#"{"jsonrpc":"2.0","id":"s1","result":{}}"#).unwrap();
        assert_eq!((m.kind, m.id), (Kind::Response, Some("\"s1\"")));
        let m = classify(br#" [{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap();
        assert_eq!(m.kind, Kind::Batch);
        let m = classify(br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"info://server"}}"#).unwrap();
        assert_eq!(m.name.as_deref(), Some("info://server"));
    }

    #[test]
    fn a_batch_is_refused_unless_every_element_is_a_json_rpc_message() {
        let not_messages = |body: &[u8]| match classify(body) {
            Err(Invalid::NotJsonRpc(m)) => m,
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        };
        assert_eq!(
            not_messages(b"[1,2,3]"),
            "batch element 0 is not a JSON-RPC message (an object): 1"
        );
        assert_eq!(not_messages(b"[]"), "an empty JSON-RPC batch");
        assert_eq!(
            not_messages(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},[]]"#),
            "batch element 1 is itself a batch"
        );
        let m = not_messages(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"1.0","id":2,"method":"ping"}]"#);
        assert!(m.starts_with("batch element 1:"), "{m}");
        let m = not_messages(br#"[{"jsonrpc":"2.0","id":{},"method":"ping"}]"#);
        assert!(m.contains("\"id\" must be a string or an integer"), "{m}");
        assert!(
            matches!(classify(b"[1,"), Err(Invalid::Parse(_))),
            "malformed JSON stays a parse error"
        );
        let m = classify(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#).unwrap();
        assert_eq!(m.kind, Kind::Batch);
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_body() {
        let m = classify(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","name":"x"}}"#).unwrap();
        for field in [&m.method, &m.name, &m.init_version] {
            assert!(matches!(field, Some(Cow::Borrowed(_))), "{field:?}");
        }
        let m = classify(br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call"}"#).unwrap();
        assert_eq!(
            m.method.as_deref(),
            Some("tools/call"),
            "escapes still decode"
        );
    }

    #[test]
    fn ids_must_decode() {
        // Found by the classify fuzz target: a string id with lone surrogate escapes.
        let lone = br#"{"jsonrpc":"2.0","id":"ta08\udda0\uda88","method":"ping"}"#;
        assert!(matches!(classify(lone), Err(Invalid::NotJsonRpc(_))));
        let paired = br#"{"jsonrpc":"2.0","id":"a\ud83d\ude00\n","method":"ping"}"#;
        assert_eq!(classify(paired).unwrap().id, Some(r#""a\ud83d\ude00\n""#));
        let cancel = br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"\udd0d"}}"#;
        assert_eq!(classify(cancel).unwrap().cancels, None);
    }

    #[test]
    fn deep_nesting_is_malformed_wherever_it_hides() {
        let deep = |n: usize| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":{}{}}}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert!(classify(deep(100).as_bytes()).is_ok());
        assert!(
            matches!(classify(deep(200).as_bytes()), Err(Invalid::Parse(_))),
            "inside skipped params"
        );
        let batch = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            matches!(classify(batch.as_bytes()), Err(Invalid::Parse(_))),
            "a batch"
        );
        // Brackets in strings are text.
        let text = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"s":"{}\"{}"}}}}"#,
            "[".repeat(500),
            "{".repeat(500)
        );
        assert!(classify(text.as_bytes()).is_ok());
    }

    #[test]
    fn reads_versions_from_initialize_and_meta() {
        let m = classify(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}"#).unwrap();
        assert!(m.is_initialize());
        assert_eq!(era(Some(&m), None), Era::Legacy(Some("2025-06-18".into())));
        let m = classify(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#).unwrap();
        assert_eq!(
            era(Some(&m), Some("2026-07-28")),
            Era::Modern("2026-07-28".into())
        );
        assert_eq!(
            era(None, Some("2025-11-25")),
            Era::Legacy(Some("2025-11-25".into()))
        );
        assert_eq!(era(None, None), Era::Legacy(None));
    }

    #[test]
    fn rejects_what_is_not_json_rpc() {
        assert!(matches!(classify(b"{\"jsonrpc\":"), Err(Invalid::Parse(_))));
        assert!(
            matches!(classify(&[b'{', 0xff, b'}']), Err(Invalid::Parse(m)) if m.contains("UTF-8"))
        );
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#),
            Err(Invalid::NotJsonRpc(_))
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#),
            Err(Invalid::NotJsonRpc(_))
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":1,"method":7}"#),
            Err(Invalid::NotJsonRpc(_))
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#),
            Err(Invalid::NotJsonRpc(_))
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":1}"#),
            Err(Invalid::NotJsonRpc(_))
        ));
        assert!(
            matches!(
                classify(br#"{"jsonrpc":"2.0","method":"a","method":"b"}"#),
                Err(Invalid::NotJsonRpc(_))
            ),
            "duplicate keys"
        );
        assert!(matches!(classify(b"42"), Err(Invalid::NotJsonRpc(_))));
    }

    #[test]
    fn header_rules_of_2026() {
        let m = classify(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#).unwrap();
        assert_eq!(
            header_mismatch(&m, Some("2026-07-28"), Some("tools/call"), Some("echo")),
            None
        );
        assert_eq!(
            header_mismatch(&m, Some("2026-07-28"), Some(" tools/call "), None),
            None,
            "whitespace is allowed"
        );
        assert!(
            header_mismatch(&m, Some("2026-07-28"), Some("tools/list"), None)
                .unwrap()
                .contains("Mcp-Method")
        );
        assert!(
            header_mismatch(&m, Some("2026-07-28"), Some("Tools/Call"), None).is_some(),
            "values are case-sensitive"
        );
        assert!(
            header_mismatch(&m, Some("2026-07-28"), None, Some("other"))
                .unwrap()
                .contains("Mcp-Name")
        );
        assert!(
            header_mismatch(&m, Some("2025-11-25"), None, None)
                .unwrap()
                .contains("MCP-Protocol-Version")
        );
    }
}
