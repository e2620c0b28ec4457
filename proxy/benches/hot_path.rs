//! The per-request decisions of mcp-edge, without I/O: classifying a body, deciding its route,
//! opening its session token.
//!
//!     cargo bench -p mcp-edge --bench hot_path

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_edge::{
    route::{self, Facts, Request, SessionState, Verb},
    session::{Keys, ReplicaId, Sessions},
};
use mcp_protocol as mcp;

/// Nothing in flight, every replica alive, `echo` safe: the common case.
struct Quiet;

impl Facts for Quiet {
    fn streaming_owner(&self, _: &str) -> Option<ReplicaId> {
        None
    }
    fn answer_owner(&self, _: &str) -> Option<ReplicaId> {
        None
    }
    fn is_alive(&self, _: &str) -> bool {
        true
    }
    fn bridge_ready(&self) -> bool {
        true
    }
    fn bridged(&self, _: &str) -> bool {
        false
    }
    fn push_ready(&self) -> bool {
        true
    }
    fn task_home(&self, _: &str) -> bool {
        true
    }
}

const ECHO: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}"#;
const MODERN: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot path");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("classify tools/call", |b| {
        b.iter(|| mcp::classify(black_box(ECHO)).unwrap())
    });
    group.bench_function("classify 2026-07-28 tools/call", |b| {
        b.iter(|| mcp::classify(black_box(MODERN)).unwrap())
    });
    let message = mcp::classify(ECHO).unwrap();
    let none = SessionState::None;
    group.bench_function("route::decide + retry_is_safe", |b| {
        b.iter(|| {
            let request = Request {
                verb: Verb::Post,
                message: Some(black_box(&message)),
                session: &none,
                header_version: None,
                header_method: None,
                header_name: None,
                resume_from: None,
                resume_original: None,
                accepts_sse: true,
            };
            (
                route::decide(&request, &Quiet),
                route::retry_is_safe(&message, Some(mcp_edge::tools::Listed { safe: true })),
            )
        })
    });
    let sessions = Sessions::new(
        Keys::new(&[7; 32], None),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
        1000,
    );
    let (token, _) = sessions
        .mint("2025-06-18", None, b"", Default::default())
        .unwrap();
    group.bench_function("open a session token (with idle tracking)", |b| {
        b.iter(|| sessions.open(black_box(&token), b"").unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
