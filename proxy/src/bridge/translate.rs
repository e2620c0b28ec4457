//! Legacy ↔ 2026-07-28, pure: a legacy call rewritten as a 2026-07-28 request (its `_meta`
//! and headers), the replica's answer read (complete, input required, error) and turned back
//! into the legacy shape, an input request turned into a legacy server→client request the
//! session's revision can express, and a client's answer turned into an input response.
//!
//! The request body is edited at its top level and in `params` only, as raw JSON: `arguments`
//! and everything else pass byte for byte.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Deserialize;
use serde_json::{Map, Value, json, value::RawValue};

use crate::session::{Profile, profile};

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

type Raw = Box<RawValue>;
/// An object's members, values unparsed.
type RawMap = std::collections::BTreeMap<String, Raw>;

fn raw(value: &Value) -> Raw {
    RawValue::from_string(value.to_string()).expect("a serialized value is valid JSON")
}

/// What every round's `_meta` says for the client.
pub struct Meta<'a> {
    pub profile: &'a Profile,
    /// The session's legacy revision (capabilities a revision lacks are not declared).
    pub version: &'a str,
    /// The log level the client asked for (legacy: `logging/setLevel`); replicas send log
    /// notifications only when one is set.
    pub log_level: &'a str,
}

/// A round after the first: its own id, this round's answers, the replica's state.
pub struct Retry<'a> {
    pub id: &'a str,
    pub responses: &'a Map<String, Value>,
    pub state: Option<&'a RawValue>,
}

/// The 2026-07-28 body of a legacy call: `_meta` carries the revision, the client's
/// capabilities and info, and the log level (overriding any the client set itself); a retry
/// replaces the id and adds `inputResponses` and `requestState`. `Err`: not a JSON-RPC object.
pub fn modern_body(
    body: &[u8],
    meta: &Meta<'_>,
    retry: Option<&Retry<'_>>,
) -> Result<Vec<u8>, String> {
    let parsed: RawMap =
        serde_json::from_slice(body).map_err(|e| format!("the call is not a JSON object: {e}"))?;
    let mut params: RawMap = match parsed.get("params") {
        Some(p) => {
            serde_json::from_str(p.get()).map_err(|e| format!("params is not an object: {e}"))?
        }
        None => RawMap::new(),
    };
    let mut m: Map<String, Value> = match params.get("_meta") {
        Some(m) => serde_json::from_str(m.get()).unwrap_or_default(),
        None => Map::new(),
    };
    m.insert(META_VERSION.into(), json!(mcp_protocol::version::MODERN));
    m.insert(
        META_CAPABILITIES.into(),
        meta.profile.capabilities_json(meta.version),
    );
    m.insert(META_INFO.into(), meta.profile.info_json());
    m.insert(META_LOG_LEVEL.into(), json!(meta.log_level));
    params.insert("_meta".into(), raw(&Value::Object(m)));
    let mut top = parsed;
    if let Some(retry) = retry {
        params.insert(
            "inputResponses".into(),
            raw(&Value::Object(retry.responses.clone())),
        );
        match retry.state {
            Some(state) => params.insert("requestState".into(), state.to_owned()),
            None => params.remove("requestState"),
        };
        top.insert("id".into(), raw(&json!(retry.id)));
    }
    let params = object(params.iter());
    top.insert(
        "params".into(),
        RawValue::from_string(params).map_err(|e| e.to_string())?,
    );
    Ok(object(top.iter()).into_bytes())
}

/// A JSON object written from raw members (the values pass as they are).
fn object<'a>(members: impl Iterator<Item = (&'a String, &'a Raw)>) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(key.as_str()).to_string());
        out.push(':');
        out.push_str(value.get());
    }
    out.push('}');
    out
}

/// The 2026-07-28 request headers of a call: `Mcp-Method`, `Mcp-Name`, and the `Mcp-Param-*`
/// of `declared` (header suffix, argument) present in the call's arguments as primitives.
pub fn headers(
    body: &[u8],
    method: &str,
    declared: &[(Box<str>, Box<str>)],
) -> Vec<(String, String)> {
    #[derive(Deserialize)]
    struct Call {
        #[serde(default)]
        params: Option<Params>,
    }
    #[derive(Deserialize)]
    struct Params {
        name: Option<String>,
        uri: Option<String>,
        #[serde(default)]
        arguments: Option<Map<String, Value>>,
    }
    let mut out = vec![("mcp-method".to_owned(), method.to_owned())];
    let params = serde_json::from_slice::<Call>(body)
        .ok()
        .and_then(|c| c.params);
    let Some(params) = params else { return out };
    let name = if method == "resources/read" {
        &params.uri
    } else {
        &params.name
    };
    if let Some(name) = name {
        out.push(("mcp-name".to_owned(), header_value(name)));
    }
    if let Some(arguments) = &params.arguments {
        for (header, arg) in declared {
            let value = match arguments.get(&**arg) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            out.push((
                format!(
                    "{}{}",
                    mcp_protocol::headers::PARAM_PREFIX,
                    header.to_ascii_lowercase()
                ),
                header_value(&value),
            ));
        }
    }
    out
}

/// A value as an HTTP header value: as is when it is visible ASCII with inner spaces only,
/// else `=?base64?…?=` (the 2026-07-28 transport's Value Encoding).
pub fn header_value(value: &str) -> String {
    let b = value.as_bytes();
    let needs = matches!(b.first(), Some(b' ' | b'\t'))
        || matches!(b.last(), Some(b' ' | b'\t'))
        || value.chars().any(|c| !(' '..='~').contains(&c))
        || (value.starts_with("=?base64?") && value.ends_with("?="));
    if needs {
        format!("=?base64?{}?=", STANDARD.encode(value))
    } else {
        value.to_owned()
    }
}

/// What a replica's final message said.
#[derive(Debug)]
pub enum Outcome {
    /// The result, still in the 2026-07-28 shape.
    Complete(Raw),
    /// The questions (key, `{method, params}`) and the state to echo.
    InputRequired {
        requests: Vec<(String, Value)>,
        state: Option<Raw>,
    },
    /// A JSON-RPC error: its code and the error object.
    Error(i64, Raw),
}

/// Read a replica's final message (a JSON-RPC response); `Err` when it is none.
pub fn outcome(message: &[u8]) -> Result<Outcome, String> {
    #[derive(Deserialize)]
    struct Response {
        result: Option<Raw>,
        error: Option<Raw>,
    }
    #[derive(Deserialize)]
    struct Peek {
        #[serde(rename = "resultType")]
        result_type: Option<String>,
        #[serde(rename = "inputRequests", default)]
        input_requests: Option<Map<String, Value>>,
        #[serde(rename = "requestState", default)]
        request_state: Option<Raw>,
    }
    #[derive(Deserialize)]
    struct Code {
        code: i64,
    }
    let response: Response = serde_json::from_slice(message)
        .map_err(|e| format!("the replica's answer is not JSON-RPC: {e}"))?;
    match (response.result, response.error) {
        (_, Some(error)) => {
            let code = serde_json::from_str::<Code>(error.get())
                .map_or(mcp_protocol::error::INTERNAL_ERROR, |c| c.code);
            Ok(Outcome::Error(code, error))
        }
        (Some(result), None) => {
            let peek: Peek = serde_json::from_str(result.get()).unwrap_or(Peek {
                result_type: None,
                input_requests: None,
                request_state: None,
            });
            if peek.result_type.as_deref() == Some("input_required") {
                let requests = peek
                    .input_requests
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                Ok(Outcome::InputRequired {
                    requests,
                    state: peek.request_state,
                })
            } else {
                Ok(Outcome::Complete(result))
            }
        }
        (None, None) => Err("the replica's answer has neither result nor error".into()),
    }
}

/// A 2026-07-28 result in the legacy shape: no `resultType`; for `tools/call`, a
/// `structuredContent` that is not an object (legacy schemas require one) leaves, and its JSON
/// text leads `content` unless it is there already.
pub fn downgrade(method: &str, result: &RawValue) -> Raw {
    let Ok(mut map) = serde_json::from_str::<Map<String, Value>>(result.get()) else {
        return result.to_owned();
    };
    map.remove("resultType");
    if method == "tools/call"
        && let Some(structured) = map
            .get("structuredContent")
            .filter(|v| !v.is_object())
            .cloned()
    {
        map.remove("structuredContent");
        let text = structured.to_string();
        let content = map.entry("content").or_insert_with(|| json!([]));
        if let Value::Array(blocks) = content
            && !blocks
                .iter()
                .any(|b| b.get("text").and_then(Value::as_str) == Some(text.as_str()))
        {
            blocks.insert(0, json!({"type": "text", "text": text}));
        }
    }
    raw(&Value::Object(map))
}

/// A JSON-RPC response to the client's request `id` (raw JSON).
pub fn response(id: &str, result: &RawValue) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#, result.get()).into_bytes()
}

/// A JSON-RPC error answer to the client's request `id`, from a whole error object.
pub fn error_response(id: &str, error: &RawValue) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{}}}"#, error.get()).into_bytes()
}

/// A JSON-RPC error object of the bridge's own.
pub fn error(code: i64, message: &str, data: Option<Value>) -> Raw {
    let mut e = json!({"code": code, "message": message});
    if let Some(data) = data {
        e["data"] = data;
    }
    raw(&e)
}

/// An input request as the legacy server→client request `id` (raw JSON), adapted to the
/// session's revision; `Err`: the client did not declare it, or the revision cannot say it.
pub fn ask(id: &str, request: &Value, version: &str, profile: &Profile) -> Result<Vec<u8>, String> {
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let mut params = request.get("params").cloned().unwrap_or_else(|| json!({}));
    match method {
        "sampling/createMessage" => {
            if !profile.has(profile::SAMPLING) {
                return Err(format!(
                    "the replica asked {method} but the client did not declare sampling"
                ));
            }
            if params.get("tools").is_some() && !profile.has(profile::SAMPLING_TOOLS) {
                return Err("the replica asked for sampling with tools but the client did not declare sampling.tools".into());
            }
        }
        "elicitation/create" => {
            if !profile.has(profile::ELICITATION) {
                return Err(format!(
                    "the replica asked {method} but the client did not declare elicitation"
                ));
            }
            let mode = params
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("form")
                .to_owned();
            match (version, mode.as_str()) {
                ("2025-03-26", _) => {
                    return Err("the replica asked for elicitation, which protocol 2025-03-26 does not have".into());
                }
                ("2025-06-18", "form") => {
                    if let Some(p) = params.as_object_mut() {
                        p.remove("mode");
                    }
                }
                ("2025-06-18", _) => {
                    return Err(format!(
                        "the replica asked for {mode} elicitation, which protocol 2025-06-18 does not have"
                    ));
                }
                (_, "url") if !profile.has(profile::ELICITATION_URL) => {
                    return Err("the replica asked for url elicitation but the client did not declare elicitation.url".into());
                }
                (_, "form")
                    if !profile.has(profile::ELICITATION_FORM)
                        && profile.has(profile::ELICITATION_URL) =>
                {
                    return Err(
                        "the replica asked for form elicitation but the client declared url only"
                            .into(),
                    );
                }
                _ => {}
            }
        }
        "roots/list" => {
            if !profile.has(profile::ROOTS) {
                return Err(
                    "the replica asked roots/list but the client did not declare roots".into(),
                );
            }
        }
        other => {
            return Err(format!(
                "the replica asked {other:?}, which is not an input request"
            ));
        }
    }
    let message = json!({"jsonrpc": "2.0", "id": Value::Null, "method": method, "params": params});
    // The id is raw JSON already: put it in place of the null.
    let text = message
        .to_string()
        .replacen(r#""id":null"#, &format!(r#""id":{id}"#), 1);
    Ok(text.into_bytes())
}

/// A client's answer to a question.
#[derive(Debug)]
pub enum Answer {
    /// Its result, the input response.
    Result(Value),
    /// It answered with a JSON-RPC error (the call is abandoned).
    Error(Value),
}

/// Read a client's answer body; `None` when it is not a JSON-RPC response.
pub fn answer(body: &[u8]) -> Option<Answer> {
    #[derive(Deserialize)]
    struct Response {
        result: Option<Value>,
        error: Option<Value>,
    }
    match serde_json::from_slice::<Response>(body).ok()? {
        Response { error: Some(e), .. } => Some(Answer::Error(e)),
        Response {
            result: Some(r), ..
        } => Some(Answer::Result(r)),
        _ => None,
    }
}

/// The progress value of a `notifications/progress` message, with its token (raw JSON).
pub fn progress(message: &[u8]) -> Option<(String, f64)> {
    #[derive(Deserialize)]
    struct Note<'a> {
        method: &'a str,
        #[serde(borrow)]
        params: Option<P<'a>>,
    }
    #[derive(Deserialize)]
    struct P<'a> {
        #[serde(borrow, rename = "progressToken")]
        token: &'a RawValue,
        progress: f64,
    }
    let note: Note<'_> = serde_json::from_slice(message).ok()?;
    if note.method != "notifications/progress" {
        return None;
    }
    note.params.map(|p| (p.token.get().to_owned(), p.progress))
}

/// `notifications/cancelled` for a question the client will not need to answer.
pub fn cancelled(id: &str, reason: &str) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":{}}}}}"#,
        json!(reason)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::profile::{ELICITATION, ELICITATION_FORM, ROOTS, SAMPLING};

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_legacy_call_becomes_a_2026_request_with_its_meta() {
        let p = Profile::declaring(SAMPLING | ELICITATION);
        let meta = Meta {
            profile: &p,
            version: "2025-11-25",
            log_level: "debug",
        };
        let body = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t","arguments":{"a":[1, 2]},"_meta":{"progressToken":7,"io.modelcontextprotocol/logLevel":"error"}}}"#;
        let out = parse(&modern_body(body, &meta, None).unwrap());
        assert_eq!(out["id"], 2);
        assert_eq!(out["params"]["arguments"], json!({"a": [1, 2]}));
        let m = &out["params"]["_meta"];
        assert_eq!(m["progressToken"], 7);
        assert_eq!(m[META_VERSION], "2026-07-28");
        assert_eq!(
            m[META_CAPABILITIES],
            json!({"sampling": {}, "elicitation": {}})
        );
        assert_eq!(m[META_INFO], json!({"name": "c", "version": "1"}));
        assert_eq!(m[META_LOG_LEVEL], "debug");
        let bare = parse(
            &modern_body(
                br#"{"jsonrpc":"2.0","id":"x","method":"prompts/get","params":{"name":"p"}}"#,
                &meta,
                None,
            )
            .unwrap(),
        );
        assert_eq!(bare["params"]["_meta"][META_VERSION], "2026-07-28");
        let none = parse(
            &modern_body(
                br#"{"jsonrpc":"2.0","id":1,"method":"resources/read"}"#,
                &meta,
                None,
            )
            .unwrap(),
        );
        assert!(none["params"]["_meta"].is_object());
    }

    #[test]
    fn a_retry_has_its_own_id_the_answers_and_the_state() {
        let p = Profile::declaring(ELICITATION);
        let meta = Meta {
            profile: &p,
            version: "2025-06-18",
            log_level: "info",
        };
        let mut responses = Map::new();
        responses.insert("k".into(), json!({"action": "accept"}));
        let state = RawValue::from_string(r#""s1""#.into()).unwrap();
        let body = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t","requestState":"old"}}"#;
        let retry = Retry {
            id: "b.2",
            responses: &responses,
            state: Some(&state),
        };
        let out = parse(&modern_body(body, &meta, Some(&retry)).unwrap());
        assert_eq!(out["id"], "b.2");
        assert_eq!(
            out["params"]["inputResponses"],
            json!({"k": {"action": "accept"}})
        );
        assert_eq!(out["params"]["requestState"], "s1");
        let stateless = Retry {
            id: "b.3",
            responses: &responses,
            state: None,
        };
        let out = parse(&modern_body(body, &meta, Some(&stateless)).unwrap());
        assert!(
            out["params"].get("requestState").is_none(),
            "never echo a state the replica did not send"
        );
    }

    #[test]
    fn headers_name_the_call_and_the_declared_arguments() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"geo","arguments":{"region":"eu west ","n":3,"flag":true,"obj":{}}}}"#;
        let declared: Vec<(Box<str>, Box<str>)> = vec![
            ("Region".into(), "region".into()),
            ("N".into(), "n".into()),
            ("Flag".into(), "flag".into()),
            ("Obj".into(), "obj".into()),
            ("Missing".into(), "missing".into()),
        ];
        assert_eq!(
            headers(body, "tools/call", &declared),
            vec![
                ("mcp-method".into(), "tools/call".into()),
                ("mcp-name".into(), "geo".into()),
                (
                    "mcp-param-region".into(),
                    format!("=?base64?{}?=", STANDARD.encode("eu west "))
                ),
                ("mcp-param-n".into(), "3".into()),
                ("mcp-param-flag".into(), "true".into()),
            ]
        );
        let read = br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"test://caf\u00e9"}}"#;
        assert_eq!(
            headers(read, "resources/read", &[])[1].1,
            format!("=?base64?{}?=", STANDARD.encode("test://café"))
        );
    }

    #[test]
    fn header_values_follow_the_value_encoding_table() {
        assert_eq!(header_value("us-west1"), "us-west1");
        assert_eq!(header_value("Hello World"), "Hello World");
        assert_eq!(header_value("日本語"), "=?base64?5pel5pys6Kqe?=");
        assert_eq!(header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(header_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(
            header_value("=?base64?x?="),
            format!("=?base64?{}?=", STANDARD.encode("=?base64?x?="))
        );
    }

    #[test]
    fn outcomes_are_read_from_the_final_message() {
        let done =
            outcome(br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[]}}"#)
                .unwrap();
        assert!(matches!(done, Outcome::Complete(_)));
        let asked = outcome(br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{"k":{"method":"roots/list"}},"requestState":"s"}}"#).unwrap();
        let Outcome::InputRequired { requests, state } = asked else {
            panic!()
        };
        assert_eq!(requests[0].0, "k");
        assert_eq!(state.unwrap().get(), r#""s""#);
        let failed = outcome(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32021,"message":"m","data":{"requiredCapabilities":{}}}}"#).unwrap();
        let Outcome::Error(code, error) = failed else {
            panic!()
        };
        assert_eq!(code, -32021);
        assert!(error.get().contains("requiredCapabilities"));
        assert!(outcome(b"{}").is_err() && outcome(b"nope").is_err());
    }

    #[test]
    fn results_are_downgraded_to_the_legacy_shape() {
        let r = RawValue::from_string(r#"{"resultType":"complete","content":[{"type":"text","text":"hi"}],"structuredContent":{"a":1}}"#.into()).unwrap();
        let d = parse(downgrade("tools/call", &r).get().as_bytes());
        assert!(d.get("resultType").is_none());
        assert_eq!(d["structuredContent"], json!({"a": 1}));
        let arr = RawValue::from_string(
            r#"{"resultType":"complete","content":[],"structuredContent":[1,2]}"#.into(),
        )
        .unwrap();
        let d = parse(downgrade("tools/call", &arr).get().as_bytes());
        assert!(d.get("structuredContent").is_none());
        assert_eq!(d["content"][0]["text"], "[1,2]");
        let read =
            RawValue::from_string(r#"{"resultType":"complete","contents":[],"ttlMs":0}"#.into())
                .unwrap();
        assert_eq!(
            parse(downgrade("resources/read", &read).get().as_bytes()),
            json!({"contents": [], "ttlMs": 0})
        );
    }

    #[test]
    fn questions_are_adapted_to_the_revision_and_never_undeclared() {
        let form = json!({"method": "elicitation/create", "params": {"mode": "form", "message": "m", "requestedSchema": {}}});
        let caps = Profile::declaring(ELICITATION | SAMPLING);
        let asked = parse(&ask(r#""q""#, &form, "2025-11-25", &caps).unwrap());
        assert_eq!(
            (asked["id"].clone(), asked["params"]["mode"].clone()),
            (json!("q"), json!("form"))
        );
        let old = parse(&ask("7", &form, "2025-06-18", &caps).unwrap());
        assert!(
            old["params"].get("mode").is_none(),
            "2025-06-18 has no mode"
        );
        assert_eq!(old["id"], 7);
        assert!(ask("1", &form, "2025-03-26", &caps).is_err());
        let url = json!({"method": "elicitation/create", "params": {"mode": "url", "message": "m", "url": "https://x", "elicitationId": "e"}});
        assert!(
            ask("1", &url, "2025-11-25", &caps).is_err(),
            "url mode was not declared"
        );
        assert!(
            ask(
                "1",
                &url,
                "2025-11-25",
                &Profile::declaring(ELICITATION | profile::ELICITATION_URL)
            )
            .is_ok()
        );
        assert!(
            ask(
                "1",
                &form,
                "2025-11-25",
                &Profile::declaring(ELICITATION | profile::ELICITATION_URL)
            )
            .is_err()
        );
        assert!(
            ask(
                "1",
                &form,
                "2025-11-25",
                &Profile::declaring(ELICITATION | ELICITATION_FORM)
            )
            .is_ok()
        );
        let roots = json!({"method": "roots/list"});
        assert!(
            ask("1", &roots, "2025-11-25", &caps).is_err(),
            "roots not declared"
        );
        assert!(ask("1", &roots, "2025-11-25", &Profile::declaring(ROOTS)).is_ok());
        assert!(ask("1", &json!({"method": "ping"}), "2025-11-25", &caps).is_err());
    }

    #[test]
    fn answers_progress_and_cancellations() {
        assert!(matches!(
            answer(br#"{"jsonrpc":"2.0","id":"q","result":{"action":"accept"}}"#),
            Some(Answer::Result(_))
        ));
        assert!(matches!(
            answer(br#"{"jsonrpc":"2.0","id":"q","error":{"code":-1,"message":"no"}}"#),
            Some(Answer::Error(_))
        ));
        assert!(answer(br#"{"jsonrpc":"2.0","method":"x"}"#).is_none());
        assert_eq!(
            progress(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":50,"total":100}}"#),
            Some((r#""t""#.into(), 50.0))
        );
        assert_eq!(
            progress(br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#),
            None
        );
        assert_eq!(
            parse(&cancelled(r#""q""#, "timed out")),
            json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"q","reason":"timed out"}})
        );
    }
}
