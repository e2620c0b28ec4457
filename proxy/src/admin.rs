//! The admin listener: `/healthz` (the process is up and its MCP listener accepts), `/readyz`
//! (it can serve: a healthy replica exists and it is not shutting down), `/metrics` (Prometheus,
//! [`crate::telemetry::metrics`]), and what peers tell each other ([`crate::session::peers`]):
//! `POST /sessions/revoke` (a DELETE), `/bridge/deliver` and `/bridge/cancel` (a bridged
//! call's answer and cancel), `/push/subscribe` (a legacy `resources/subscribe`), each taken only
//! with a peer's proof ([`crate::session::peers`]). It runs beside pingora, not as one of its
//! services, so that it still answers (503) while pingora drains.
//!
//! Its own bounds: at most [`CONNECTIONS`] connections at once (more wait in the backlog), each
//! read from for at most [`CONNECTION_TIME`] and written to for 10 s more (a head or body that
//! trickles, an idle keep-alive, a client that reads nothing: closed then), bodies up to
//! `--body-limit` (a bridged call's answer crosses whole), and a 404 that names no part of the
//! request. The port is for the cluster's own: probes, Prometheus, peers; one holder of it can
//! still take every connection for 30 s at a time.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use pingora::{server::ShutdownWatch, services::background::BackgroundService};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore},
};

use crate::{
    session::peers::{
        CANCEL_PATH, DELIVER_PATH, PROOF_HEADER, PeerKeys, REVOKE_PATH, SUBSCRIBE_PATH,
    },
    state,
    telemetry::{metrics::Event, registry::Registry},
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
    pub state: state::State,
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
        self.state.push.end_all();
        // Bridged calls waiting for a person get the grace period, less a moment to tell
        // their clients to repeat the call elsewhere (rather than a reset).
        let bridges = self.state.bridges.clone();
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
    /// What the process shares (the edge and the periodic jobs hold the same).
    pub state: state::State,
    /// Every family `/metrics` shows.
    pub registry: Registry,
    pub lifecycle: Lifecycle,
    /// What peers prove themselves with (`None`: no session key, no peer is taken).
    pub peer_keys: Option<PeerKeys>,
    /// Largest body taken (a bridged call's answer): `--body-limit`, and room for the rest.
    pub body_limit: usize,
}

/// Most admin connections served at once.
pub const CONNECTIONS: usize = 256;
/// How long an admin connection is read from, in all.
pub const CONNECTION_TIME: Duration = Duration::from_secs(30);

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
        let body_limit = self.body_limit + (64 << 10);
        let admin = Arc::new(self);
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route(REVOKE_PATH, post(revoke))
            .route(DELIVER_PATH, post(deliver))
            .route(CANCEL_PATH, post(cancel))
            .route(SUBSCRIBE_PATH, post(subscribe))
            .fallback(|| async {
                json(
                    404,
                    r#"{"error":"no admin endpoint at this path: try /healthz, /readyz or /metrics"}"#
                        .to_owned(),
                )
            })
            .layer(DefaultBodyLimit::max(body_limit))
            .with_state(admin);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("mcp-edge-admin".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(crate::memory::tidy());
                    let listener = Bounded {
                        listener: tokio::net::TcpListener::from_std(listener)
                            .expect("a tokio listener"),
                        slots: Arc::new(Semaphore::new(CONNECTIONS)),
                    };
                    if let Err(e) = axum::serve(listener, app).await {
                        tracing::error!(error = %e, "admin listener failed");
                    }
                })
            })?;
        Ok(())
    }
}

/// The admin listener with its bounds: a connection takes one of [`CONNECTIONS`] slots, and
/// is read from for at most [`CONNECTION_TIME`].
struct Bounded {
    listener: tokio::net::TcpListener,
    slots: Arc<Semaphore>,
}

impl axum::serve::Listener for Bounded {
    type Io = Timed;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Timed, std::net::SocketAddr) {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        crate::memory::served();
        let timed = Timed {
            stream,
            until: Box::pin(tokio::time::sleep(CONNECTION_TIME)),
            writes_until: Box::pin(tokio::time::sleep(
                CONNECTION_TIME + Duration::from_secs(10),
            )),
            _slot: slot,
        };
        (timed, addr)
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }
}

/// An admin connection: reads fail once its time is up, writes 10 s later (the server then
/// closes it).
struct Timed {
    stream: tokio::net::TcpStream,
    until: Pin<Box<tokio::time::Sleep>>,
    writes_until: Pin<Box<tokio::time::Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Timed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.until.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Timed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.writes_until.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
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
    let healthy = admin.state.replicas.healthy_count();
    let total = admin.state.replicas.all().len();
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

/// A peer's request, checked: its proof (the `Mcp-Edge-Peer` header over `path`, `token` and
/// `body`), then the session `token` seals — not ours, expired or ended: 404.
fn peer(
    admin: &Admin,
    path: &str,
    headers: &HeaderMap,
    token: &str,
    body: &[u8],
) -> Result<(crate::session::Uid, u64), Box<Response>> {
    let Some(keys) = &admin.peer_keys else {
        return Err(Box::new(json(
            403,
            r#"{"error":"this mcp-edge has no session key configured: it takes no peer requests"}"#
                .to_owned(),
        )));
    };
    let proof = headers.get(PROOF_HEADER).and_then(|v| v.to_str().ok());
    if let Err(refused) = keys.check(proof, path, token, body, crate::session::unix_now()) {
        admin.state.metrics.count(Event::PeerRefused);
        let body = serde_json::json!({ "error": refused.message() }).to_string();
        return Err(Box::new(json(403, body)));
    }
    admin.state.sessions.for_peer(token).ok_or_else(|| {
        Box::new(json(
            404,
            r#"{"error":"not a live session of this key"}"#.to_owned(),
        ))
    })
}

/// The session token a peer names in `Mcp-Session-Id`.
fn named(headers: &HeaderMap) -> &str {
    headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A peer's DELETE: the body is the session's token.
async fn revoke(State(admin): State<Arc<Admin>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = std::str::from_utf8(&body).unwrap_or("").trim();
    let (uid, _) = match peer(&admin, REVOKE_PATH, &headers, token, &body) {
        Ok(session) => session,
        Err(refused) => return *refused,
    };
    admin.state.sessions.revoke_token(token);
    admin.state.bridges.end_session(&uid);
    admin.state.push.end_session(&uid);
    admin.state.metrics.count(Event::SessionRevoked);
    json(200, r#"{"revoked":true}"#.to_owned())
}

/// A peer's client answer to a bridge question: the session's token in `Mcp-Session-Id`, the
/// answer as the body. 200 when a call of this process took it, 404 otherwise.
async fn deliver(State(admin): State<Arc<Admin>>, headers: HeaderMap, body: Bytes) -> Response {
    let (uid, _) = match peer(&admin, DELIVER_PATH, &headers, named(&headers), &body) {
        Ok(session) => session,
        Err(refused) => return *refused,
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
    match admin.state.bridges.deliver(&uid, &id, body) {
        crate::bridge::Delivery::Local => json(200, r#"{"delivered":true}"#.to_owned()),
        _ => json(
            404,
            r#"{"error":"no bridged call of this process waits for this answer"}"#.to_owned(),
        ),
    }
}

/// A peer's client cancel that named no call there: 200 when it ends a bridged call here.
async fn cancel(State(admin): State<Arc<Admin>>, headers: HeaderMap, body: Bytes) -> Response {
    let (uid, _) = match peer(&admin, CANCEL_PATH, &headers, named(&headers), &body) {
        Ok(session) => session,
        Err(refused) => return *refused,
    };
    let cancels = mcp_protocol::classify(&body)
        .ok()
        .and_then(|m| m.cancels.map(str::to_owned));
    match cancels {
        Some(id) if admin.state.bridges.cancel(&uid, &id) => {
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
async fn subscribe(State(admin): State<Arc<Admin>>, headers: HeaderMap, body: Bytes) -> Response {
    let session = match peer(&admin, SUBSCRIBE_PATH, &headers, named(&headers), &body) {
        Ok(session) => session,
        Err(refused) => return *refused,
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
    match crate::push::stream::subscription(&admin.state.push, session, subscribe, &body, None)
        .await
    {
        Ok(()) => json(200, r#"{"applied":true}"#.to_owned()),
        Err(reply) => json(
            409,
            serde_json::json!({"error": reply.error.map(|e| e.message)}).to_string(),
        ),
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    let text = admin.registry.render();
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
