//! The admin listener: `/healthz` (the process is up and its MCP listener accepts), `/readyz`
//! (it can serve: a healthy replica exists and it is not shutting down), `/metrics` (Prometheus,
//! [`crate::telemetry::metrics`]), and what peers tell each other ([`crate::session::peers`]):
//! `POST /sessions/revoke` (a DELETE), `/bridge/deliver` and `/bridge/cancel` (a bridged
//! call's answer and cancel), `/push/subscribe` (a legacy `resources/subscribe`). It runs
//! beside pingora, not as one of its services, so that it still answers (503) while pingora
//! drains.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;
use axum::{
    Router,
    extract::State,
    http::{StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use pingora::{server::ShutdownWatch, services::background::BackgroundService};

use crate::{
    session::{Sessions, peers::REVOKE_PATH},
    telemetry::metrics::{Event, Metrics},
    upstream::Replicas,
};

/// Where the process is in its life: serving once the MCP listener accepts connections,
/// draining once shutdown starts. Health is 503 before the first; readiness also after the second.
#[derive(Clone, Default)]
pub struct Lifecycle(Arc<[AtomicBool; 2]>);

impl Lifecycle {
    pub fn is_serving(&self) -> bool {
        self.0[0].load(Ordering::SeqCst)
    }
    pub fn is_draining(&self) -> bool {
        self.0[1].load(Ordering::SeqCst)
    }
}

/// Drives [`Lifecycle`]: waits (up to a minute) for the MCP listener to accept a connection,
/// then for pingora's shutdown broadcast; then ends the process as soon as no request or
/// stream is left ([`crate::drain`]), or when the grace period is over.
pub struct LifecycleWatch {
    pub lifecycle: Lifecycle,
    pub listen: std::net::SocketAddr,
    pub drain: Arc<crate::drain::Drain>,
    pub grace: std::time::Duration,
    pub bridges: Arc<crate::bridge::Bridges>,
    pub push: Arc<crate::push::Push>,
}

#[async_trait]
impl BackgroundService for LifecycleWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut probe = self.listen;
        if probe.ip().is_unspecified() {
            probe.set_ip(if probe.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while tokio::net::TcpStream::connect(probe).await.is_err()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.lifecycle.0[0].store(true, Ordering::SeqCst);
        let _ = shutdown.changed().await;
        self.lifecycle.0[1].store(true, Ordering::SeqCst);
        tracing::info!(
            busy = self.drain.busy(),
            "shutdown: readiness now 503, in-flight requests may finish"
        );
        let started = std::time::Instant::now();
        // Listen streams never finish by themselves: they end now (2026-07-28 ones with their
        // response), and their clients listen again at another process.
        self.push.end_all();
        // Bridged calls waiting for a person get the grace period, less a moment to tell
        // their clients to repeat the call elsewhere (rather than a reset).
        let bridges = self.bridges.clone();
        let notice = self
            .grace
            .saturating_sub(std::time::Duration::from_millis(500));
        tokio::spawn(async move {
            tokio::time::sleep(notice).await;
            bridges.end_all();
        });
        if self.drain.wait_idle(self.grace).await {
            tracing::info!(after = ?started.elapsed(), "shutdown: nothing left in flight, exiting");
        } else {
            tracing::warn!(
                busy = self.drain.busy(),
                "shutdown: grace period over, exiting with requests still in flight"
            );
        }
        // pingora would sleep out the whole grace period; the access log is flushed at exit.
        std::process::exit(0);
    }
}

pub struct Admin {
    pub replicas: Arc<Replicas>,
    pub sessions: Arc<Sessions>,
    pub metrics: Arc<Metrics>,
    pub streams: Arc<crate::inflight::Streams>,
    pub tools: Arc<crate::tools::KnownTools>,
    pub owners: Arc<crate::inflight::Owners>,
    pub rate_limit: Option<Arc<crate::ratelimit::RateLimit>>,
    pub access: Option<crate::telemetry::access::AccessLog>,
    pub lifecycle: Lifecycle,
    pub bridges: Arc<crate::bridge::Bridges>,
    pub push: Arc<crate::push::Push>,
    pub tasks: Arc<crate::tasks::TaskCounts>,
}

fn json(status: u16, body: String) -> Response {
    (
        StatusCode::from_u16(status).expect("a valid status"),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

impl Admin {
    /// Serve the admin endpoints on `listener` from a thread of their own, until the process
    /// exits: unlike pingora's services they keep answering through the shutdown grace period,
    /// so `/readyz` can say 503 while in-flight requests finish.
    pub fn spawn(self, listener: std::net::TcpListener) -> std::io::Result<()> {
        listener.set_nonblocking(true)?;
        let admin = Arc::new(self);
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route(REVOKE_PATH, post(revoke))
            .route(crate::session::peers::DELIVER_PATH, post(deliver))
            .route(crate::session::peers::CANCEL_PATH, post(cancel))
            .route(crate::session::peers::SUBSCRIBE_PATH, post(subscribe))
            .fallback(|uri: Uri| async move {
                json(404, format!(r#"{{"error":"no admin endpoint at {}: try /healthz, /readyz or /metrics"}}"#, uri.path()))
            })
            .with_state(admin);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("mcp-edge-admin".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    if let Err(e) = axum::serve(listener, app).await {
                        tracing::error!(error = %e, "admin listener failed");
                    }
                })
            })?;
        Ok(())
    }
}

async fn healthz(State(admin): State<Arc<Admin>>) -> Response {
    if admin.lifecycle.is_serving() {
        json(200, r#"{"status":"ok"}"#.to_owned())
    } else {
        json(503, r#"{"status":"starting"}"#.to_owned())
    }
}

async fn readyz(State(admin): State<Arc<Admin>>) -> Response {
    let healthy = admin.replicas.healthy_count();
    let total = admin.replicas.all().len();
    let (status, state) = if !admin.lifecycle.is_serving() {
        (503, "starting")
    } else if admin.lifecycle.is_draining() {
        (503, "draining")
    } else if healthy == 0 {
        (503, "no healthy replica")
    } else {
        (200, "ready")
    };
    json(
        status,
        format!(r#"{{"status":"{state}","healthy_replicas":{healthy},"replicas":{total}}}"#),
    )
}

/// A peer's DELETE: the body is the session's token (at most 256 characters).
async fn revoke(State(admin): State<Arc<Admin>>, body: Bytes) -> Response {
    let token = std::str::from_utf8(&body[..body.len().min(1024)])
        .unwrap_or("")
        .trim();
    if let Some(uid) = admin.sessions.revoke_token(token) {
        admin.bridges.end_session(&uid);
        admin.push.end_session(&uid);
        admin.metrics.count(Event::SessionRevoked);
        json(200, r#"{"revoked":true}"#.to_owned())
    } else {
        json(
            404,
            r#"{"error":"not a session token of this key"}"#.to_owned(),
        )
    }
}

/// The session a peer names with its token in `Mcp-Session-Id` (holding it is the proof).
fn peer_session(admin: &Admin, headers: &axum::http::HeaderMap) -> Option<crate::session::Uid> {
    let token = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
    admin.sessions.uid_of(token.unwrap_or(""))
}

fn not_our_token() -> Response {
    json(
        404,
        r#"{"error":"not a session token of this key"}"#.to_owned(),
    )
}

/// A peer's client answer to a bridge question: the session's token in `Mcp-Session-Id`, the
/// answer as the body. 200 when a call of this process took it, 404 otherwise.
async fn deliver(
    State(admin): State<Arc<Admin>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let Some(uid) = peer_session(&admin, &headers) else {
        return not_our_token();
    };
    let id = match mcp_protocol::classify(&body) {
        Ok(m) if m.kind == mcp_protocol::Kind::Response => m.id.map(str::to_owned),
        _ => None,
    };
    let Some(id) = id else {
        return json(
            400,
            r#"{"error":"the body is not a JSON-RPC response"}"#.to_owned(),
        );
    };
    match admin.bridges.deliver(&uid, &id, body) {
        crate::bridge::Delivery::Local => json(200, r#"{"delivered":true}"#.to_owned()),
        _ => json(
            404,
            r#"{"error":"no bridged call of this process waits for this answer"}"#.to_owned(),
        ),
    }
}

/// A peer's client cancel that named no call there: 200 when it ends a bridged call here.
async fn cancel(
    State(admin): State<Arc<Admin>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let Some(uid) = peer_session(&admin, &headers) else {
        return not_our_token();
    };
    let cancels = mcp_protocol::classify(&body)
        .ok()
        .and_then(|m| m.cancels.map(str::to_owned));
    match cancels {
        Some(id) if admin.bridges.cancel(&uid, &id) => {
            json(200, r#"{"cancelled":true}"#.to_owned())
        }
        _ => json(
            404,
            r#"{"error":"no bridged call of this process has this id"}"#.to_owned(),
        ),
    }
}

/// A peer's legacy `resources/subscribe` or `unsubscribe` (the body), for the session whose token
/// is in `Mcp-Session-Id`: applied here, so that this process's GET stream of the session, if
/// it has it, hears the URI's updates. 200 once applied.
async fn subscribe(
    State(admin): State<Arc<Admin>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
    let Some((uid, expires)) = admin.sessions.expiry_of(token.unwrap_or("")) else {
        return not_our_token();
    };
    let method = mcp_protocol::classify(&body)
        .ok()
        .and_then(|m| m.method.map(|m| m.into_owned()));
    let subscribe = match method.as_deref() {
        Some("resources/subscribe") => true,
        Some("resources/unsubscribe") => false,
        _ => {
            return json(
                400,
                r#"{"error":"the body is not resources/subscribe or resources/unsubscribe"}"#
                    .to_owned(),
            );
        }
    };
    match crate::push::stream::subscription(&admin.push, (uid, expires), subscribe, &body).await {
        Ok(()) => json(200, r#"{"applied":true}"#.to_owned()),
        Err(reply) => json(
            409,
            serde_json::json!({"error": reply.error.map(|e| e.message)}).to_string(),
        ),
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    let gauges = crate::telemetry::metrics::Gauges {
        open_streams: admin.streams.open_now(),
        tools_known: admin.tools.len(),
        sessions: admin.sessions.stats(),
        worker_tasks: crate::downstream::listen::worker_tasks(),
        owners: admin.owners.sizes(),
        rate_limit_callers: admin.rate_limit.as_ref().map(|r| r.callers()),
        access_log_dropped: admin.access.as_ref().map(|a| a.dropped()),
        replicas: admin
            .replicas
            .all()
            .iter()
            .map(|r| (r.id.clone(), r.addr, r.is_healthy()))
            .collect(),
    };
    let mut text = admin.metrics.render(&gauges);
    text.push_str(&admin.bridges.render());
    text.push_str(&admin.push.render());
    text.push_str(&admin.tasks.render());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
