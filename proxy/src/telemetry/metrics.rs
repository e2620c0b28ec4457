//! Prometheus metrics, served as text at the admin listener's `/metrics`.
//!
//! Every series is bounded: methods are those of mcp-protocol's method table (others count as
//! `other`), tool names only those a replica listed in `tools/list`, the first [`TOOL_LABELS`]
//! of them (names a client made up, and later ones, count as `other`),
//! eras and status classes are fixed sets, and replicas are the configured or discovered
//! ones (plus `edge` for what the proxy answered itself). Counting is a sharded map update per
//! request; nothing is formatted until a scrape.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use dashmap::DashMap;

use super::registry::{Encoder, Kind, Source};
use crate::session::ReplicaId;

/// Distinct tool names that get their own label; later ones are counted as `other`.
pub const TOOL_LABELS: usize = 200;

/// The label of every tool name that gets none of its own.
static OTHER: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "other".into());

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

/// One request, as the access log and the metrics see it.
pub struct Request<'a> {
    pub method: &'static str,
    pub tool: Option<&'a str>,
    /// Whether a replica listed the tool in `tools/list` (only then is it a label of its own).
    pub listed: bool,
    pub era: &'static str,
    pub status: u16,
    pub replica: Option<&'a ReplicaId>,
    pub elapsed: Duration,
}

/// One series of `mcp_edge_requests_total`. Strings are shared (`Arc`): building a key
/// allocates nothing.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RequestKey {
    method: &'static str,
    tool: Option<Arc<str>>,
    era: &'static str,
    class: u8,
    replica: Option<ReplicaId>,
}

/// Events counted outside requests.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    SessionMinted,
    SessionRevoked,
    SessionExpired,
    /// A request moved to another replica (or a new connection) after its connection broke.
    Retry,
    Ejection,
    RateLimited,
    HeaderTimeout,
    /// A request at a peer endpoint without a valid peer proof (403).
    PeerRefused,
}

/// Every event counter: its name and help, in the order of [`Event`] (a test checks).
const EVENTS: &[(Event, &str, &str)] = &[
    (
        Event::SessionMinted,
        "mcp_edge_sessions_minted_total",
        "Legacy sessions started (tokens sealed).",
    ),
    (
        Event::SessionRevoked,
        "mcp_edge_sessions_revoked_total",
        "Legacy sessions ended here: DELETE, their stateful owner forgot them, or a peer's revocation.",
    ),
    (
        Event::SessionExpired,
        "mcp_edge_sessions_expired_total",
        "Requests with a session token past its lifetime or idle timeout.",
    ),
    (
        Event::Retry,
        "mcp_edge_retries_total",
        "Requests sent again after a connection broke before any response byte.",
    ),
    (
        Event::Ejection,
        "mcp_edge_replica_ejections_total",
        "Replicas taken out of rotation after consecutive failed requests.",
    ),
    (
        Event::RateLimited,
        "mcp_edge_rate_limited_total",
        "Requests refused with 429 by the rate limit.",
    ),
    (
        Event::HeaderTimeout,
        "mcp_edge_header_timeouts_total",
        "Connections closed by the header deadline: a request's headers incomplete, or a kept-alive connection idle, for --header-timeout-ms.",
    ),
    (
        Event::PeerRefused,
        "mcp_edge_peer_requests_refused_total",
        "Requests at the peer endpoints without a valid Mcp-Edge-Peer proof (403).",
    ),
];

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    // foldhash: the series key is hashed on every request, SipHash cost more than the count.
    requests: DashMap<RequestKey, AtomicU64, foldhash::fast::RandomState>,
    latency: DashMap<&'static str, Histogram, foldhash::fast::RandomState>,
    events: [AtomicU64; EVENTS.len()],
    tools: RwLock<std::collections::HashSet<Arc<str>, foldhash::fast::RandomState>>,
    /// Per-client budgets that ran out (shared with the modules that spend them).
    pub spent: Arc<crate::budget::Spent>,
}

impl Metrics {
    pub fn count(&self, event: Event) {
        self.events[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The tool label: the name when a replica listed it and it is among the first
    /// [`TOOL_LABELS`] such, else `other`.
    fn tool_label(&self, tool: &str, listed: bool) -> Arc<str> {
        if !listed || tool.len() > crate::budget::NAME_LIMIT {
            return OTHER.clone();
        }
        if let Some(t) = self.tools.read().expect("not poisoned").get(tool) {
            return t.clone();
        }
        let mut tools = self.tools.write().expect("not poisoned");
        if let Some(t) = tools.get(tool) {
            return t.clone();
        }
        if tools.len() >= TOOL_LABELS {
            return OTHER.clone();
        }
        let label: Arc<str> = tool.into();
        tools.insert(label.clone());
        label
    }

    pub fn request(&self, r: &Request) {
        let key = RequestKey {
            method: r.method,
            tool: r.tool.map(|t| self.tool_label(t, r.listed)),
            era: r.era,
            class: (r.status / 100).min(5) as u8,
            replica: r.replica.cloned(),
        };
        if let Some(counter) = self.requests.get(&key) {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            self.requests
                .entry(key)
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
        match self.latency.get(r.method) {
            Some(h) => h.observe(r.elapsed),
            None => self.latency.entry(r.method).or_default().observe(r.elapsed),
        }
    }
}

impl Source for Metrics {
    /// The request counters and latencies, the event counters, the budgets that ran out.
    fn collect(&self, out: &mut Encoder) {
        let mut rows: Vec<_> = self
            .requests
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort_by(|a, b| {
            (a.0.method, &a.0.tool, a.0.era, a.0.class, &a.0.replica).cmp(&(
                b.0.method,
                &b.0.tool,
                b.0.era,
                b.0.class,
                &b.0.replica,
            ))
        });
        let mut family = out.family(
            "mcp_edge_requests_total",
            Kind::Counter,
            "Requests answered, by MCP method, tool, protocol era, status class and replica (`edge`: answered by the proxy itself).",
        );
        for (k, n) in rows {
            let status = format!("{}xx", k.class);
            family.sample(
                &[
                    ("method", k.method),
                    ("tool", k.tool.as_deref().unwrap_or("")),
                    ("era", k.era),
                    ("status", &status),
                    ("replica", k.replica.as_deref().unwrap_or("edge")),
                ],
                n,
            );
        }
        let mut family = out.family(
            "mcp_edge_request_duration_seconds",
            Kind::Histogram,
            "Time from the request's headers to the end of its answer, by MCP method.",
        );
        let mut methods: Vec<_> = self.latency.iter().map(|e| *e.key()).collect();
        methods.sort();
        for method in methods {
            let Some(h) = self.latency.get(method) else {
                continue;
            };
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let le = bound.to_string();
                family.suffixed("_bucket", &[("method", method), ("le", &le)], cumulative);
            }
            let count = h.count.load(Ordering::Relaxed);
            family.suffixed("_bucket", &[("method", method), ("le", "+Inf")], count);
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            family.suffixed("_sum", &[("method", method)], sum);
            family.suffixed("_count", &[("method", method)], count);
        }
        for &(event, name, help) in EVENTS {
            out.counter(
                name,
                help,
                self.events[event as usize].load(Ordering::Relaxed),
            );
        }
        let mut family = out.family(
            "mcp_edge_client_limits_total",
            Kind::Counter,
            "Clients cut or refused because a per-client budget ran out (docs/operating.md: Per-client bounds).",
        );
        for (limit, label) in crate::budget::LIMITS {
            family.sample(&[("limit", label)], self.spent.get(limit));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::registry::Registry;

    fn render(metrics: &Arc<Metrics>) -> String {
        let mut registry = Registry::default();
        registry.register(metrics.clone());
        registry.render()
    }

    #[test]
    fn every_client_limit_is_a_series() {
        let m = Arc::new(Metrics::default());
        m.spent.count(crate::budget::Limit::SendTime);
        let text = render(&m);
        assert!(text.contains(r#"mcp_edge_client_limits_total{limit="send_time"} 1"#));
        assert!(text.contains(r#"mcp_edge_client_limits_total{limit="head_bytes"} 0"#));
    }

    #[test]
    fn only_listed_tool_names_of_bounded_length_become_labels() {
        let m = Arc::new(Metrics::default());
        let call = |name: &str, listed: bool| {
            m.request(&Request {
                method: "tools/call",
                tool: Some(name),
                listed,
                era: "legacy",
                status: 200,
                replica: None,
                elapsed: Duration::from_millis(1),
            })
        };
        for i in 0..TOOL_LABELS + 10 {
            call(&format!("tool{i}"), true);
        }
        assert_eq!(
            m.requests.len(),
            TOOL_LABELS + 1,
            "the first {TOOL_LABELS} tools, then other"
        );
        let made_up = "x".repeat(256 << 10);
        for _ in 0..50 {
            call(&made_up, false);
        }
        call(&"y".repeat(crate::budget::NAME_LIMIT + 1), true);
        assert_eq!(m.requests.len(), TOOL_LABELS + 1, "all counted as other");
        let text = render(&m);
        assert!(text.len() < 64 << 10, "{} bytes", text.len());
    }

    #[test]
    fn the_text_format_counts_and_escapes() {
        let m = Arc::new(Metrics::default());
        let replica: ReplicaId = "r\"1".into();
        for status in [200, 200, 404] {
            m.request(&Request {
                method: "ping",
                tool: None,
                listed: false,
                era: "2026-07-28",
                status,
                replica: Some(&replica),
                elapsed: Duration::from_millis(2),
            });
        }
        m.count(Event::SessionMinted);
        let text = render(&m);
        assert!(text.contains(r#"mcp_edge_requests_total{method="ping",tool="",era="2026-07-28",status="2xx",replica="r\"1"} 2"#), "{text}");
        assert!(text.contains(r#"status="4xx",replica="r\"1"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"mcp_edge_request_duration_seconds_bucket{method="ping",le="0.0025"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"mcp_edge_request_duration_seconds_count{method="ping"} 3"#),
            "{text}"
        );
        assert!(text.contains("mcp_edge_sessions_minted_total 1"), "{text}");
    }

    #[test]
    fn every_event_has_its_row_in_order() {
        for (i, (event, name, _)) in EVENTS.iter().enumerate() {
            assert_eq!(*event as usize, i, "{name}");
        }
        assert_eq!(
            EVENTS.last().map(|e| e.0 as usize),
            Some(Event::PeerRefused as usize)
        );
    }
}
