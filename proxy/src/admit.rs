//! The admit phase: checks that need only the request's head, in order, before its body is
//! read — header limits (431), path (404), a browser's CORS preflight (`OPTIONS`: 204, or 403
//! for an origin not allowed; before the bearer token, which a preflight never carries), bearer
//! token (401), rate (429), Origin (403), the replicas' `/version` (GET only, 405), and a
//! POST's Content-Type (415) and Accept (406).

use std::{net::SocketAddr, sync::Arc};

use mcp_protocol::{
    cors,
    error::{INVALID_REQUEST, METHOD_NOT_FOUND},
    post::{Origins, check_origin, check_post},
};
use pingora::http::RequestHeader;

use crate::{
    answer::Reply,
    auth::{Auth, Identity},
    budget::Caller,
    downstream::heads::{Heads, Routing},
    limits::Limits,
    ratelimit::{RateLimit, limited},
    route::Verb,
    telemetry::metrics::{Event, Metrics},
};

/// The replicas' build and identity (mcp-backend's `GET /version`): forwarded round robin, so
/// that `curl …/version` shows which replica answered, as it does in front of one replica.
pub const VERSION_PATH: &str = "/version";

/// What the admit phase checks against (one per process).
pub struct Admission {
    pub limits: Limits,
    pub path: String,
    pub auth: Option<Auth>,
    pub rate_limit: Option<Arc<RateLimit>>,
    pub origins: Origins,
    pub metrics: Arc<Metrics>,
}

/// What the checks let through.
pub struct Admitted {
    pub verb: Verb,
    /// `Content-Length`, when it is a number.
    pub declared: Option<usize>,
    /// The session token the client sent.
    pub token: Option<String>,
    /// The caller's credential binding (`None` without authentication).
    pub identity: Option<Identity>,
    /// Whose share of the per-caller budgets the request takes.
    pub caller: Caller,
    /// `GET /version`, not MCP.
    pub version_path: bool,
    /// The fields routing reads once the body is in (the head is read once, here).
    pub routing: Routing,
}

impl Admission {
    /// The checks, in order, over the request and its headers as [`Heads`] read them once;
    /// `Err`: the answer instead.
    pub fn admit(
        &self,
        request: &RequestHeader,
        heads: &Heads<'_>,
        client: Option<SocketAddr>,
    ) -> Result<Admitted, Reply> {
        if let Some(reply) = self.limits.check_headers(heads.count, heads.bytes) {
            return Err(reply);
        }
        let path = request.uri.path();
        let version_path = path == VERSION_PATH && self.path != VERSION_PATH;
        if path != self.path && !version_path {
            return Err(Reply::error(
                404,
                METHOD_NOT_FOUND,
                format!(
                    "no endpoint at {path}: MCP is served at {} (and the replicas' {VERSION_PATH})",
                    self.path
                ),
            ));
        }
        if request.method == http::Method::OPTIONS {
            return Err(self.options(request, heads.origin, version_path));
        }
        let identity = match &self.auth {
            Some(auth) => Some(auth.check(heads.authorization)?),
            None => None,
        };
        let caller = crate::budget::caller(identity.as_ref(), client.map(|a| a.ip()));
        self.check_rate(caller)?;
        check_origin(&self.origins, heads.origin)?;
        let verb = match request.method.as_str() {
            "POST" => Verb::Post,
            "GET" => Verb::Get,
            "DELETE" => Verb::Delete,
            _ => Verb::Other,
        };
        if version_path {
            if verb != Verb::Get {
                return Err(Reply::error(
                    405,
                    INVALID_REQUEST,
                    format!("{VERSION_PATH} takes GET"),
                )
                .with_header("allow", "GET"));
            }
            return Ok(Admitted {
                verb,
                declared: None,
                token: None,
                identity,
                caller,
                version_path,
                routing: Routing::default(),
            });
        }
        if verb == Verb::Post {
            check_post(heads.content_type, heads.accept)?;
        }
        Ok(Admitted {
            verb,
            declared: heads
                .content_length
                .and_then(|v| v.trim().parse::<usize>().ok()),
            token: heads.session.map(str::to_owned),
            identity,
            caller,
            version_path,
            routing: heads.routing(),
        })
    }

    /// The request's `Origin` when it is allowed: a page whose answers carry CORS headers
    /// (never the opaque origin `null`).
    pub fn page_origin(&self, heads: &Heads<'_>) -> Option<String> {
        let origin = heads
            .origin
            .filter(|o| *o != cors::OPAQUE && self.origins.allows(o))?;
        std::str::from_utf8(origin).ok().map(str::to_owned)
    }

    /// An `OPTIONS`: a browser's preflight (mcp_protocol::cors's table), or a plain one; at
    /// `/version` only GET.
    fn options(&self, request: &RequestHeader, origin: Option<&[u8]>, version: bool) -> Reply {
        if origin.is_some_and(|o| !self.origins.allows(o)) {
            // Answered before the bearer token: no word of the list (the 403 after it says it).
            return Reply::error(403, INVALID_REQUEST, "this Origin is not allowed here");
        }
        let (methods, allow) = if version {
            ("GET", "GET, OPTIONS")
        } else {
            (cors::METHODS, cors::ALLOW)
        };
        let asked = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        let Some(method) = origin.and(asked("access-control-request-method")) else {
            return Reply::ok(204).with_header("allow", allow);
        };
        let headers = cors::preflight(methods, method, asked("access-control-request-headers"));
        headers
            .into_iter()
            .fold(Reply::ok(204), |reply, (name, value)| {
                reply.with_header(name, value)
            })
    }

    /// The caller's rate limit: a 429 when exhausted.
    fn check_rate(&self, caller: Caller) -> Result<(), Reply> {
        let Some(limit) = &self.rate_limit else {
            return Ok(());
        };
        let Err(wait) = limit.check(caller, std::time::Instant::now()) else {
            return Ok(());
        };
        self.metrics.count(Event::RateLimited);
        Err(limited("rate limit", wait))
    }
}
