//! JSON-RPC error responses made at the HTTP layer, before a message reaches rmcp: an HTTP
//! status with mcp-protocol's one error body ([`RpcError`]).

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
pub use mcp_protocol::error::{
    HEADER_MISMATCH, INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError,
    UNSUPPORTED_PROTOCOL_VERSION,
};
use mcp_protocol::post::Rejection;
use serde_json::Value;

/// An HTTP status with a JSON-RPC error object as its body.
#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: StatusCode,
    pub error: RpcError,
}

impl HttpError {
    pub fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            error: RpcError::new(code, message),
        }
    }

    pub fn with_id(mut self, id: Option<&Value>) -> Self {
        if let Some(id) = id {
            self.error.id = Some(id.to_string());
        }
        self
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.error.data = Some(data);
        self
    }
}

impl From<Rejection> for HttpError {
    fn from(rejection: Rejection) -> Self {
        Self {
            status: StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::BAD_REQUEST),
            error: rejection.error,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, mcp_protocol::headers::JSON)],
            self.error.body(),
        )
            .into_response()
    }
}
