//! Every answer the proxy makes itself: an HTTP status and, where a body is allowed, a JSON-RPC
//! error object carrying the request's id and a message a person can act on.

use bytes::Bytes;
use serde_json::{Value, json};

pub use mcp_backend::jsonrpc::{
    HEADER_MISMATCH, INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
};

/// JSON-RPC's implementation-defined server error, used for answers about limits (429).
pub const LIMITED: i64 = -32000;

/// An answer made at the edge, before (or instead of) any replica.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub code: i64,
    pub message: String,
    /// The request id as raw JSON text, when the request had one.
    pub id: Option<String>,
    pub data: Option<Value>,
    /// Extra response headers (e.g. `Allow`).
    pub headers: Vec<(&'static str, String)>,
    /// 2xx answers without a JSON-RPC error (DELETE of a session, 202 for notifications).
    pub success: bool,
}

impl Reply {
    pub fn error(status: u16, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            id: None,
            data: None,
            headers: Vec::new(),
            success: false,
        }
    }

    /// A bodiless success (e.g. 200 for a DELETE that ended a session).
    pub fn ok(status: u16) -> Self {
        Self {
            success: true,
            ..Self::error(status, 0, "")
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

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The JSON-RPC body, or `None` for a bodiless success.
    pub fn body(&self) -> Option<Bytes> {
        if self.success {
            return None;
        }
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
        Some(Bytes::from(
            serde_json::to_vec(&body).expect("a JSON value serialises"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_keeps_the_request_id_and_data() {
        let reply = Reply::error(404, INVALID_REQUEST, "unknown session")
            .with_id(Some("\"abc\""))
            .with_data(json!({"x":1}));
        let v: Value = serde_json::from_slice(&reply.body().unwrap()).unwrap();
        assert_eq!(v["id"], "abc");
        assert_eq!(v["error"]["code"], -32600);
        assert_eq!(v["error"]["data"]["x"], 1);
        let v: Value =
            serde_json::from_slice(&Reply::error(400, PARSE_ERROR, "bad").body().unwrap()).unwrap();
        assert_eq!(v["id"], Value::Null);
        assert!(Reply::ok(200).body().is_none());
    }
}
