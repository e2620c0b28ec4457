//! JSON-RPC error responses made at the HTTP layer, before a message reaches rmcp.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::{Value, json};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INTERNAL_ERROR: i64 = -32603;
pub const HEADER_MISMATCH: i64 = -32020;
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// An HTTP status with a JSON-RPC error object as its body.
#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
    pub id: Value,
    pub data: Option<Value>,
}

impl HttpError {
    pub fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            id: Value::Null,
            data: None,
        }
    }

    pub fn with_id(mut self, id: Option<&Value>) -> Self {
        if let Some(id) = id {
            self.id = id.clone();
        }
        self
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn body(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        json!({ "jsonrpc": "2.0", "id": self.id, "error": error })
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).expect("a JSON value serialises");
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// The JSON-RPC code that fits an HTTP error status when the error has no better one.
pub fn code_for_status(status: StatusCode) -> i64 {
    match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => METHOD_NOT_FOUND,
        s if s.is_server_error() => INTERNAL_ERROR,
        _ => INVALID_REQUEST,
    }
}
