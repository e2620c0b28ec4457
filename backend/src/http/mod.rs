//! The HTTP edge of the backend: routes, and the checks rmcp answers in plain text or not at
//! all, so every rejection is a JSON-RPC error with the right status.
//!
//! ```text
//! POST /mcp ─▶ Origin ─▶ Content-Type (415) ─▶ Accept (406) ─▶ body ≤ limit (413)
//!           ─▶ JSON (400/-32700) ─▶ batch? split (2025-03-26 only) ─▶ version header (400/-32022)
//!           ─▶ rmcp (Accept widened to JSON+SSE) ─▶ plain-text errors → JSON-RPC,
//!              SSE collapsed to JSON for clients that accept only JSON
//! GET|DELETE /mcp ─▶ 405          /healthz /readyz /version ─▶ operations
//! ```

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use rmcp::transport::{
    StreamableHttpServerConfig, StreamableHttpService,
    streamable_http_server::session::never::NeverSessionManager,
};
use serde::Deserialize;
use serde_json::{Value, json, value::RawValue};
use tokio_util::sync::CancellationToken;

use mcp_protocol::{
    headers::{Accepts, JSON, SSE, accepts},
    post::{Origins, check_origin, check_post},
    sse::last_response,
    version::{DEFAULT_LEGACY as DEFAULT_VERSION, KNOWN as PROTOCOL_VERSIONS},
};

pub mod jsonrpc;

use self::jsonrpc::HttpError;
use crate::backend::{Backend, SERVER_NAME};

const BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");

/// Shared flag: false while serving, true once draining (readiness then answers 503).
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn drain(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the HTTP layer needs besides the MCP handler.
#[derive(Clone)]
pub struct HttpOptions {
    pub replica_id: String,
    pub body_limit: usize,
    pub allowed_origins: Vec<String>,
    pub readiness: Readiness,
    /// Cancelling it ends open SSE streams (used when the grace period runs out).
    pub streams: CancellationToken,
}

type Mcp = StreamableHttpService<Backend, NeverSessionManager>;
type McpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

#[derive(Clone)]
struct App {
    /// What reached this replica (GET /stats): lets operators and tests see what a proxy sent.
    stats: Arc<Stats>,
    mcp: Arc<Mcp>,
    served_by: HeaderValue,
    options: Arc<HttpOptions>,
    origins: Arc<Origins>,
}

/// The axum router for one replica.
pub fn router(backend: Backend, options: HttpOptions) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(options.body_limit)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_sse_retry(None)
        .with_cancellation_token(options.streams.clone());
    let service =
        StreamableHttpService::new(move || Ok(backend.clone()), Default::default(), config);
    let served_by = HeaderValue::from_str(&options.replica_id)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid-replica-id"));
    let app = App {
        stats: Arc::default(),
        mcp: Arc::new(service),
        served_by,
        origins: Arc::new(Origins::parse(&options.allowed_origins)),
        options: Arc::new(options),
    };
    Router::new()
        .route("/mcp", axum::routing::any(mcp))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/stats", get(stats))
        .fallback(not_found)
        .layer(axum::middleware::map_response_with_state(
            app.clone(),
            stamp,
        ))
        .with_state(app)
}

async fn stamp(State(app): State<App>, mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-served-by", app.served_by.clone());
    response
}

async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, JSON)], r#"{"status":"ok"}"#)
}

async fn readyz(State(app): State<App>) -> Response {
    if app.options.readiness.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, JSON)],
            r#"{"status":"draining"}"#,
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, JSON)], r#"{"status":"ready"}"#).into_response()
    }
}

async fn version(State(app): State<App>) -> impl IntoResponse {
    axum::Json(json!({
        "name": SERVER_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "replica_id": app.options.replica_id,
        // What the seed template's quick start reads (`curl …/version | jq .hostname`).
        "hostname": crate::config::hostname(),
        "protocol_versions": PROTOCOL_VERSIONS,
    }))
}

/// Counters behind GET /stats.
#[derive(Default)]
struct Stats {
    /// Requests to /mcp.
    mcp_requests: AtomicU64,
    /// …that carried an Mcp-Session-Id (this server never issues one).
    with_session_header: AtomicU64,
    /// …POSTs that named no MCP-Protocol-Version.
    without_version_header: AtomicU64,
    /// SSE responses still open (a gauge).
    open_streams: AtomicU64,
}

/// Decrements `open_streams` when the SSE body it travels with is dropped (finished, or the
/// client went away).
struct StreamGuard(Arc<Stats>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Count an SSE response as open until its body is dropped; other responses pass unchanged.
fn track_stream(stats: &Arc<Stats>, response: Response) -> Response {
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(SSE.as_bytes()));
    if !is_sse {
        return response;
    }
    use futures::StreamExt;
    stats.open_streams.fetch_add(1, Ordering::Relaxed);
    let guard = StreamGuard(stats.clone());
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _keep = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

async fn stats(State(app): State<App>) -> impl IntoResponse {
    let s = &app.stats;
    axum::Json(json!({
        "replica_id": app.options.replica_id,
        // What the seed template's quick start reads (`curl …/version | jq .hostname`).
        "hostname": crate::config::hostname(),
        "mcp_requests": s.mcp_requests.load(Ordering::Relaxed),
        "with_session_header": s.with_session_header.load(Ordering::Relaxed),
        "without_version_header": s.without_version_header.load(Ordering::Relaxed),
        "open_streams": s.open_streams.load(Ordering::Relaxed),
    }))
}

async fn not_found(request: Request) -> Response {
    HttpError::new(
        StatusCode::NOT_FOUND,
        jsonrpc::METHOD_NOT_FOUND,
        format!(
            "no endpoint at {}: MCP is served at POST /mcp",
            request.uri().path()
        ),
    )
    .into_response()
}

async fn mcp(State(app): State<App>, request: Request) -> Response {
    app.stats.mcp_requests.fetch_add(1, Ordering::Relaxed);
    if request.headers().contains_key("mcp-session-id") {
        app.stats
            .with_session_header
            .fetch_add(1, Ordering::Relaxed);
    }
    if request.method() == Method::POST && !request.headers().contains_key("mcp-protocol-version") {
        app.stats
            .without_version_header
            .fetch_add(1, Ordering::Relaxed);
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .map(HeaderValue::as_bytes);
    if let Err(rejection) = check_origin(&app.origins, origin) {
        return HttpError::from(rejection).into_response();
    }
    if request.method() != Method::POST {
        let mut response = HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            jsonrpc::INVALID_REQUEST,
            format!(
                "{} is not supported: this server is stateless and offers no {} stream or session; use POST",
                request.method(),
                if request.method() == Method::DELETE { "session to delete, nor any" } else { "GET" },
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    match post(&app, request).await {
        Ok(response) => track_stream(&app.stats, response),
        Err(response) => response,
    }
}

/// The few fields of a message the HTTP layer looks at, borrowed from the body.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    params: Option<PeekParams<'a>>,
}

#[derive(Deserialize)]
struct PeekParams<'a> {
    #[serde(borrow, rename = "_meta")]
    meta: Option<PeekMeta<'a>>,
}

#[derive(Deserialize)]
struct PeekMeta<'a> {
    #[serde(borrow, rename = "io.modelcontextprotocol/protocolVersion")]
    version: Option<&'a RawValue>,
}

fn request_id(peek: &Peek<'_>) -> Option<Value> {
    peek.id.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

async fn post(app: &App, request: Request) -> Result<Response, Response> {
    let (mut parts, body) = request.into_parts();
    let accept = accepts(parts.headers.get_all(header::ACCEPT));
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    check_post(content_type, accept).map_err(|r| HttpError::from(r).into_response())?;
    let limit = app.options.body_limit;
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                jsonrpc::INVALID_REQUEST,
                format!("request body exceeds the limit of {limit} bytes"),
            )
            .into_response());
        }
        Err(e) => {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                jsonrpc::INVALID_REQUEST,
                format!("could not read the request body: {e}"),
            )
            .into_response());
        }
    };
    let header_version = parts
        .headers
        .get("mcp-protocol-version")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));

    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        let version = header_version.unwrap_or(DEFAULT_VERSION).to_owned();
        return Ok(batch(app, parts, &bytes, &version).await);
    }
    let peek: Peek<'_> = serde_json::from_slice(&bytes).map_err(|e| parse_error(&bytes, e))?;
    let id = request_id(&peek);
    let meta_version = peek
        .params
        .as_ref()
        .and_then(|p| p.meta.as_ref())
        .and_then(|m| m.version);
    if let (Some(requested), None) = (header_version, meta_version)
        && !PROTOCOL_VERSIONS.contains(&requested)
    {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
            format!("unsupported MCP-Protocol-Version {requested:?}"),
        )
        .with_id(id.as_ref())
        .with_data(json!({ "supported": PROTOCOL_VERSIONS, "requested": requested }))
        .into_response());
    }
    parts.headers.insert(header::ACCEPT, BOTH);
    let response = app
        .mcp
        .handle(Request::from_parts(parts, Full::new(bytes)))
        .await;
    Ok(finish(response, accept, id.as_ref()).await)
}

fn parse_error(bytes: &[u8], e: serde_json::Error) -> Response {
    let message = match std::str::from_utf8(bytes) {
        Err(_) => "request body is not valid UTF-8".to_owned(),
        Ok(_) if e.is_data() => format!("not a JSON-RPC message: {e}"),
        Ok(_) => format!("malformed JSON: {e}"),
    };
    let (status, code) = if e.is_data() {
        (StatusCode::BAD_REQUEST, jsonrpc::INVALID_REQUEST)
    } else {
        (StatusCode::BAD_REQUEST, jsonrpc::PARSE_ERROR)
    };
    HttpError::new(status, code, message).into_response()
}

/// Post-process rmcp's answer: plain-text errors become JSON-RPC errors; an SSE answer becomes
/// one JSON response for a client that does not accept SSE.
async fn finish(response: Response<McpBody>, accept: Accepts, id: Option<&Value>) -> Response {
    let (parts, body) = response.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_json = content_type.starts_with(JSON);
    let is_sse = content_type.starts_with(SSE);
    if parts.status.is_client_error() || parts.status.is_server_error() {
        if !is_json {
            let text = collect(body).await;
            let message = String::from_utf8_lossy(&text).trim().to_owned();
            return HttpError::new(
                parts.status,
                mcp_protocol::error::code_for_status(parts.status.as_u16()),
                message,
            )
            .with_id(id)
            .into_response();
        }
    } else if is_sse && !accept.sse {
        let text = collect(body).await;
        return match last_response(&text) {
            Some(message) => {
                (parts.status, [(header::CONTENT_TYPE, JSON)], message).into_response()
            }
            None => HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                jsonrpc::INTERNAL_ERROR,
                "the handler produced no response message",
            )
            .with_id(id)
            .into_response(),
        };
    }
    Response::from_parts(parts, Body::new(body))
}

async fn collect(body: McpBody) -> Bytes {
    match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(never) => match never {},
    }
}

/// A JSON-RPC batch: allowed only in 2025-03-26, where each element is answered on its own and
/// the answers come back as one array (202 when the batch held no request).
async fn batch(app: &App, parts: http::request::Parts, bytes: &[u8], version: &str) -> Response {
    if version != DEFAULT_VERSION {
        return HttpError::new(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            format!("JSON-RPC batches are only allowed in protocol 2025-03-26, not {version}"),
        )
        .into_response();
    }
    let elements: Vec<&RawValue> = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return parse_error(bytes, e),
    };
    if elements.is_empty() {
        return HttpError::new(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "empty JSON-RPC batch",
        )
        .into_response();
    }
    let mut answers: Vec<Box<RawValue>> = Vec::new();
    for element in elements {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(parts.uri.clone());
        for (name, value) in &parts.headers {
            if name != header::CONTENT_LENGTH {
                request = request.header(name, value);
            }
        }
        let request = request
            .header(header::ACCEPT, BOTH)
            .body(Full::new(Bytes::copy_from_slice(element.get().as_bytes())))
            .expect("a request built from valid parts");
        let response = app.mcp.handle(request).await;
        let id = serde_json::from_str::<Peek<'_>>(element.get())
            .ok()
            .and_then(|p| request_id(&p));
        let response = finish(
            response,
            Accepts {
                json: true,
                sse: false,
            },
            id.as_ref(),
        )
        .await;
        if response.status() == StatusCode::ACCEPTED {
            continue;
        }
        let body = match response.into_body().collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => continue,
        };
        if let Ok(raw) = serde_json::from_slice::<Box<RawValue>>(&body) {
            answers.push(raw);
        }
    }
    if answers.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    let body = serde_json::to_vec(&answers).expect("raw JSON values serialise");
    ([(header::CONTENT_TYPE, JSON)], body).into_response()
}
