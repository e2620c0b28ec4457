//! JSON-RPC error objects: the codes MCP uses, and the one body every rejection is written as.

use bytes::Bytes;
use serde_json::{Value, json};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// JSON-RPC's implementation-defined server error, used for answers about limits (429).
pub const LIMITED: i64 = -32000;
/// 2026-07-28: a header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// The SDKs' code for a request that ran out of time.
pub const REQUEST_TIMEOUT: i64 = -32001;

/// A JSON-RPC error response: code, a message a person can act on, the request's id.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// The request id as raw JSON text (`1`, `"abc"`), when the request had one.
    pub id: Option<String>,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            id: None,
            data: None,
        }
    }

    pub fn with_id(mut self, id: Option<&str>) -> Self {
        self.id = id.map(str::to_owned);
        self
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The response object: `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…,"data":…}}`.
    pub fn body(&self) -> Bytes {
        let id: Value = self
            .id
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw).ok())
            .unwrap_or(Value::Null);
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        let body = json!({ "jsonrpc": "2.0", "id": id, "error": error });
        Bytes::from(serde_json::to_vec(&body).expect("a JSON value serialises"))
    }
}

/// The code that fits an HTTP error status when the error has no better one.
pub fn code_for_status(status: u16) -> i64 {
    match status {
        404 | 405 => METHOD_NOT_FOUND,
        500.. => INTERNAL_ERROR,
        _ => INVALID_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_keeps_the_request_id_and_data() {
        let error = RpcError::new(INVALID_REQUEST, "unknown session")
            .with_id(Some("\"abc\""))
            .with_data(json!({"x":1}));
        let v: Value = serde_json::from_slice(&error.body()).unwrap();
        assert_eq!(v["id"], "abc");
        assert_eq!(v["error"]["code"], -32600);
        assert_eq!(v["error"]["data"]["x"], 1);
        let v: Value = serde_json::from_slice(&RpcError::new(PARSE_ERROR, "bad").body()).unwrap();
        assert_eq!(v["id"], Value::Null);
    }
}
