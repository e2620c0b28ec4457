//! Sealing and opening a session token: the per-session cost of sessions without shared state.
//!
//!     cargo bench -p mcp-edge --bench session_token
//!
//! `seal`: a new session at initialize. `open`: every later request of the session (a stateless
//! replica's token, and a stateful replica's with its own session id inside). `open foreign`:
//! a token sealed by another key (two keys tried, both fail).

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_edge::session::{
    Owner,
    token::{Claims, Keys},
};

fn claims(owner: Option<Owner>) -> Claims {
    Claims {
        uid: [7; 16],
        issued: 1_790_000_000,
        version: "2025-06-18".into(),
        identity: vec![],
        owner,
        profile: Default::default(),
    }
}

fn bench(c: &mut Criterion) {
    let keys = Keys::new(&[1; 32], Some(&[2; 32]));
    let stateless = claims(None);
    let owned = claims(Some(Owner {
        replica: "10.0.1.23:8000".into(),
        session_id: "6f1c2a9e4b7d40c8a1e2f3b4c5d6e7f8".into(),
    }));
    let token = keys.seal(&stateless).unwrap();
    let owned_token = keys.seal(&owned).unwrap();
    let foreign = Keys::new(&[3; 32], None).seal(&stateless).unwrap();

    let mut group = c.benchmark_group("session token");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("seal", |b| {
        b.iter(|| keys.seal(black_box(&stateless)).unwrap())
    });
    group.bench_function("open", |b| b.iter(|| keys.open(black_box(&token)).unwrap()));
    group.bench_function("seal + open", |b| {
        b.iter(|| {
            keys.open(&keys.seal(black_box(&stateless)).unwrap())
                .unwrap()
        })
    });
    group.bench_function("seal + open, stateful owner", |b| {
        b.iter(|| keys.open(&keys.seal(black_box(&owned)).unwrap()).unwrap())
    });
    group.bench_function("open, stateful owner", |b| {
        b.iter(|| keys.open(black_box(&owned_token)).unwrap())
    });
    group.bench_function("open foreign (both keys fail)", |b| {
        b.iter(|| keys.open(black_box(&foreign)).is_none())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
