//! The admin listener: `/healthz` (the process is up), `/readyz` (it can serve: a healthy
//! replica exists and it is not shutting down), and `POST /sessions/revoke` (a peer's DELETE,
//! see [`crate::session::peers`]). `/metrics` comes later.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;
use http::Response;
use pingora::{
    apps::http_app::ServeHttp,
    protocols::http::ServerSession,
    server::ShutdownWatch,
    services::background::BackgroundService,
};

use crate::{
    session::{Sessions, peers::REVOKE_PATH},
    upstream::Replicas,
};

/// Set once shutdown starts; readiness then answers 503.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Flips [`Draining`] when pingora broadcasts shutdown.
pub struct DrainWatch(pub Draining);

#[async_trait]
impl BackgroundService for DrainWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let _ = shutdown.changed().await;
        self.0 .0.store(true, Ordering::SeqCst);
        tracing::info!("shutdown: readiness now 503, in-flight requests may finish");
    }
}

pub struct Admin {
    pub replicas: Arc<Replicas>,
    pub sessions: Arc<Sessions>,
    pub draining: Draining,
}

fn json(status: u16, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(body.into_bytes())
        .expect("a valid response")
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let healthy = self.replicas.healthy_count();
        let total = self.replicas.all().len();
        match session.req_header().uri.path() {
            "/healthz" => json(200, r#"{"status":"ok"}"#.to_owned()),
            "/readyz" => {
                let (status, state) = if self.draining.is_set() {
                    (503, "draining")
                } else if healthy == 0 {
                    (503, "no healthy replica")
                } else {
                    (200, "ready")
                };
                json(status, format!(r#"{{"status":"{state}","healthy_replicas":{healthy},"replicas":{total}}}"#))
            }
            REVOKE_PATH if session.req_header().method == http::Method::POST => {
                // A token is at most 256 characters; anything longer is not one.
                let mut body = Vec::new();
                while let Ok(Some(chunk)) = session.read_request_body().await {
                    body.extend_from_slice(&chunk);
                    if body.len() > 1024 {
                        break;
                    }
                }
                match std::str::from_utf8(&body).ok().map(|t| self.sessions.revoke_token(t.trim())) {
                    Some(true) => json(200, r#"{"revoked":true}"#.to_owned()),
                    _ => json(404, r#"{"error":"not a session token of this key"}"#.to_owned()),
                }
            }
            path => json(404, format!(r#"{{"error":"no admin endpoint at {path}: try /healthz or /readyz"}}"#)),
        }
    }
}
