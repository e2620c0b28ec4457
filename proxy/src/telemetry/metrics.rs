//! Prometheus metrics, served as text at the admin listener's `/metrics`.
//!
//! Every series is bounded: methods are those of mcp-protocol's method table (others count as
//! `other`), tool names only those a replica listed in `tools/list`, the first [`TOOL_LABELS`]
//! of them (names a client made up, and later ones, count as `other`),
//! eras and status classes are fixed sets, and replicas are the configured or discovered
//! ones (plus `edge` for what the proxy answered itself). Counting is a sharded map update per
//! request; nothing is formatted until a scrape.

use std::{
    fmt::Write,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use dashmap::DashMap;

use crate::session::{ReplicaId, SessionStats};

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
];

/// What the gauges show, read at the scrape by whoever owns each (`admin`).
#[derive(Debug, Default)]
pub struct Gauges {
    pub open_streams: usize,
    pub tools_known: usize,
    pub sessions: SessionStats,
    pub worker_tasks: usize,
    /// Streams owned, answers awaited, server→client requests forgotten (inflight::Owners).
    pub owners: (usize, usize, u64),
    /// `None`: no rate limit.
    pub rate_limit_callers: Option<usize>,
    /// `None`: no access log.
    pub access_log_dropped: Option<u64>,
    /// Each replica: id, address, whether it takes requests.
    pub replicas: Vec<(ReplicaId, std::net::SocketAddr, bool)>,
}

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

    /// The Prometheus text exposition of the counters, and of the gauges read at the scrape.
    pub fn render(&self, gauges: &Gauges) -> String {
        let Gauges {
            open_streams,
            tools_known,
            sessions,
            worker_tasks,
            owners: (streams_owned, answers_awaited, answers_forgotten),
            rate_limit_callers,
            access_log_dropped,
            replicas,
        } = gauges;
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP mcp_edge_requests_total Requests answered, by MCP method, tool, protocol era, status class and replica (`edge`: answered by the proxy itself).\n");
        out.push_str("# TYPE mcp_edge_requests_total counter\n");
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
        for (k, n) in rows {
            let _ = writeln!(
                out,
                r#"mcp_edge_requests_total{{method="{}",tool="{}",era="{}",status="{}xx",replica="{}"}} {n}"#,
                k.method,
                escape(k.tool.as_deref().unwrap_or("")),
                k.era,
                k.class,
                escape(k.replica.as_deref().unwrap_or("edge"))
            );
        }
        out.push_str("# HELP mcp_edge_request_duration_seconds Time from the request's headers to the end of its answer, by MCP method.\n");
        out.push_str("# TYPE mcp_edge_request_duration_seconds histogram\n");
        let mut methods: Vec<_> = self.latency.iter().map(|e| *e.key()).collect();
        methods.sort();
        for method in methods {
            let Some(h) = self.latency.get(method) else {
                continue;
            };
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    r#"mcp_edge_request_duration_seconds_bucket{{method="{method}",le="{bound}"}} {cumulative}"#
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                r#"mcp_edge_request_duration_seconds_bucket{{method="{method}",le="+Inf"}} {count}"#
            );
            let _ = writeln!(
                out,
                r#"mcp_edge_request_duration_seconds_sum{{method="{method}"}} {}"#,
                h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                r#"mcp_edge_request_duration_seconds_count{{method="{method}"}} {count}"#
            );
        }
        let series = |out: &mut String, name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        for &(event, name, help) in EVENTS {
            let count = self.events[event as usize].load(Ordering::Relaxed);
            series(&mut out, name, "counter", help, count);
        }
        series(
            &mut out,
            "mcp_edge_open_streams",
            "gauge",
            "SSE responses being relayed now.",
            *open_streams as u64,
        );
        series(
            &mut out,
            "mcp_edge_tools_known",
            "gauge",
            "Tools whose annotations this process has read (safe to repeat or not).",
            *tools_known as u64,
        );
        series(
            &mut out,
            "mcp_edge_streams_owned",
            "gauge",
            "Client requests streaming from a replica, with the replica a cancel goes to (one per open stream).",
            *streams_owned as u64,
        );
        series(
            &mut out,
            "mcp_edge_answers_awaited",
            "gauge",
            "Server-to-client requests waiting for the client's answer (at most 100000, each for at most 600 s).",
            *answers_awaited as u64,
        );
        series(
            &mut out,
            "mcp_edge_answers_forgotten_total",
            "counter",
            "Server-to-client requests not recorded (the cap) or forgotten unanswered.",
            *answers_forgotten,
        );
        if let Some(callers) = rate_limit_callers {
            series(
                &mut out,
                "mcp_edge_rate_limit_callers",
                "gauge",
                "Callers the rate limit tracks (at most 100000; past it, new callers share one bucket).",
                *callers as u64,
            );
        }
        if let Some(dropped) = access_log_dropped {
            series(
                &mut out,
                "mcp_edge_access_log_dropped_total",
                "counter",
                "Access log lines dropped because stdout fell 8 MiB behind.",
                *dropped,
            );
        }
        series(
            &mut out,
            "mcp_edge_worker_tasks",
            "gauge",
            "Tasks alive on the worker threads (connections, and the parts of streams).",
            *worker_tasks as u64,
        );
        series(
            &mut out,
            "mcp_edge_sessions_tracked",
            "gauge",
            "Legacy sessions tracked for the idle timeout (at most --max-tracked-sessions).",
            sessions.idle.tracked as u64,
        );
        series(
            &mut out,
            "mcp_edge_sessions_untracked_total",
            "counter",
            "Requests in legacy sessions served without idle tracking because the table was full.",
            sessions.idle.untracked,
        );
        series(
            &mut out,
            "mcp_edge_session_revocations",
            "gauge",
            "Ended sessions remembered until their tokens expire (at most --max-tracked-sessions).",
            sessions.revoked.held as u64,
        );
        series(
            &mut out,
            "mcp_edge_session_revocation_watermark_seconds",
            "gauge",
            "Tokens expiring no later than this Unix time are refused: revocations past the cap were folded (0: never).",
            sessions.revoked.watermark,
        );
        series(
            &mut out,
            "mcp_edge_session_revocation_folds_total",
            "counter",
            "Times the revocations reached the cap and their earliest-expiring bucket was folded into the watermark.",
            sessions.revoked.folded,
        );
        out.push_str("# HELP mcp_edge_replica_healthy 1 when the replica takes requests, 0 when it is out of rotation.\n");
        out.push_str("# TYPE mcp_edge_replica_healthy gauge\n");
        for (id, addr, healthy) in replicas {
            let _ = writeln!(
                out,
                r#"mcp_edge_replica_healthy{{replica="{}",address="{addr}"}} {}"#,
                escape(id),
                u8::from(*healthy)
            );
        }
        out.push_str("# HELP mcp_edge_client_limits_total Clients cut or refused because a per-client budget ran out (README: Per-client bounds).\n# TYPE mcp_edge_client_limits_total counter\n");
        for (limit, label) in crate::budget::LIMITS {
            let _ = writeln!(
                out,
                r#"mcp_edge_client_limits_total{{limit="{label}"}} {}"#,
                self.spent.get(limit)
            );
        }
        out
    }
}

/// A label value: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Append unlabelled series — (name, type, help, value) — in the Prometheus text format.
pub fn write_series(out: &mut String, series: &[(&str, &str, &str, u64)]) {
    use std::fmt::Write;
    for (name, kind, help, value) in series {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_limit_is_a_series() {
        let m = Metrics::default();
        m.spent.count(crate::budget::Limit::SendTime);
        let text = m.render(&Gauges::default());
        assert!(text.contains(r#"mcp_edge_client_limits_total{limit="send_time"} 1"#));
        assert!(text.contains(r#"mcp_edge_client_limits_total{limit="head_bytes"} 0"#));
    }

    #[test]
    fn only_listed_tool_names_of_bounded_length_become_labels() {
        let m = Metrics::default();
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
        let text = m.render(&Gauges::default());
        assert!(text.len() < 64 << 10, "{} bytes", text.len());
    }

    #[test]
    fn the_text_format_counts_and_escapes() {
        let m = Metrics::default();
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
        let text = m.render(&Gauges {
            replicas: vec![("r2".into(), "127.0.0.1:9".parse().unwrap(), true)],
            ..Gauges::default()
        });
        assert!(
            text.contains(r#"mcp_edge_replica_healthy{replica="r2",address="127.0.0.1:9"} 1"#),
            "{text}"
        );
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
            Some(Event::HeaderTimeout as usize)
        );
    }
}
