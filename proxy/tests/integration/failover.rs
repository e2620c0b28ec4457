//! Replicas that come, go and die: DNS discovery against a DNS server the test runs on
//! loopback, replicas SIGKILLed and restarted under load, a rolling restart, mcp-edge's own
//! SIGTERM during a stream. Every replica is a real mcp-backend process on 127.0.0.0/8; every
//! loop is bounded in time.

use std::{
    net::Ipv4Addr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::common::*;
use serde_json::{Value, json};

async fn served_by(edge: &Edge, n: u64) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let a = post(
            &edge.url,
            &[JSON, BOTH],
            call(i, "echo", json!({"message": "hi"})),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        out.push(a.served_by());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_follows_dns_records() {
    let port = free_port();
    let mut backends =
        [2u8, 3, 4].map(|last| Backend::spawn(&format!("b{last}"), loopback(last, port)));
    for b in &backends {
        b.ready().await;
    }
    let dns = Dns::start(vec![
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
    ])
    .await;
    let edge = discovering(&dns, port).await;
    wait_replicas(&edge, 2, 2).await;
    let seen = served_by(&edge, 6).await;
    assert_eq!(seen.iter().filter(|s| *s == "b2").count(), 3, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "b3").count(), 3, "{seen:?}");

    // A record appears: the replica joins after its health check and takes its share.
    dns.set(&[
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
        Ipv4Addr::new(127, 0, 0, 4),
    ]);
    wait_replicas(&edge, 3, 3).await;
    let seen = served_by(&edge, 9).await;
    assert_eq!(seen.iter().filter(|s| *s == "b4").count(), 3, "{seen:?}");

    // A record disappears while a stream is open on its replica: no new requests reach it, and
    // the stream finishes.
    let (stream, on) = loop {
        let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"progress","arguments":{"steps":6,"interval_ms":250},"_meta":{"progressToken":"p"}}});
        let response = reqwest::Client::new()
            .post(&edge.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let on = response.headers()["x-served-by"]
            .to_str()
            .unwrap()
            .to_owned();
        if on == "b3" {
            break (response, on);
        }
    };
    let events = tokio::spawn(events(stream));
    dns.set(&[Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 4)]);
    wait_replicas(&edge, 2, 2).await;
    let seen = served_by(&edge, 8).await;
    assert!(
        !seen.contains(&on),
        "a removed replica took new requests: {seen:?}"
    );
    let events = events.await.unwrap();
    assert_eq!(events.len(), 7, "6 progress notifications and the result");
    assert_eq!(
        events[6].1["result"]["content"][0]["text"],
        "completed 6 steps"
    );

    // No records at all (scaled to zero): nothing to serve, readiness says so.
    dns.set(&[]);
    wait_replicas(&edge, 0, 0).await;
    let a = post(
        &edge.url,
        &[JSON, BOTH],
        call(1, "echo", json!({"message": "hi"})),
    )
    .await;
    assert_eq!((a.status, a.error_code()), (503, -32603));
    backends.iter_mut().for_each(Backend::kill);
}

/// Load from `tasks` clients until `until`: half stateless, half in legacy sessions. Returns
/// (requests, failures with what went wrong).
async fn load(edge: &Edge, tasks: usize, until: Instant) -> (u64, Vec<String>) {
    // No client lists tools here: mcp-edge reads each replica's tools/list at its first passing
    // health check, so it knows `echo` (read-only, idempotent) may move to another replica.
    wait_for(10, "mcp-edge to know the replicas' tools", || async {
        metric(edge, "mcp_edge_tools_known ").await != 0.0
    })
    .await;
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let session = if t % 2 == 1 {
            Some(open_session(edge, "2025-06-18").await)
        } else {
            None
        };
        let (url, sent, failures) = (edge.url.clone(), sent.clone(), failures.clone());
        handles.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut i = 0u64;
            while Instant::now() < until {
                i += 1;
                let mut request = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream");
                if let Some(token) = &session {
                    request = request.header("mcp-session-id", token);
                }
                let body = call(i, "echo", json!({"message": format!("{t}-{i}")}));
                let outcome = match request.body(body).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let text = r.text().await.unwrap_or_default();
                        let v: Value = serde_json::from_str(&text).unwrap_or_default();
                        if status == 200 && v["result"]["content"][0]["text"] == format!("{t}-{i}")
                        {
                            None
                        } else {
                            Some(format!("{status}: {text}"))
                        }
                    }
                    Err(e) => Some(format!("transport: {e}")),
                };
                sent.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = outcome {
                    failures.lock().unwrap().push(f);
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    (sent.load(Ordering::Relaxed), failures)
}

/// Three mcp-backend processes, ready, and mcp-edge in front of them.
async fn three_backends() -> (Vec<Backend>, Edge) {
    let backends: Vec<Backend> = (1..=3)
        .map(|i| Backend::spawn(&format!("b{i}"), loopback(1, free_port())))
        .collect();
    for b in &backends {
        b.ready().await;
    }
    let args: Vec<String> = backends
        .iter()
        .flat_map(|b| ["--backend".to_owned(), b.url()])
        .collect();
    let edge = start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    (backends, edge)
}

fn assert_none_failed(what: &str, sent: u64, failures: &[String]) {
    println!("{sent} requests {what}, {} failed", failures.len());
    assert!(sent > 1000, "too little load to mean anything: {sent}");
    assert!(
        failures.is_empty(),
        "{} of {sent} failed {what}, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_costs_no_request() {
    let (mut backends, edge) = three_backends().await;
    let seconds = 60;
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let killer = async {
        // One replica SIGKILLed every 10 s (b1, b2, b3, b1, …) and started again at once.
        for k in 0..(seconds / 10) {
            let at = start + Duration::from_secs(5 + 10 * k);
            tokio::time::sleep_until(at.into()).await;
            backends[(k % 3) as usize].restart();
        }
    };
    let ((sent, failures), ()) = tokio::join!(load(&edge, 6, until), killer);
    assert_none_failed(
        &format!("in {seconds} s with a replica SIGKILLed every 10 s"),
        sent,
        &failures,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_costs_no_request() {
    let (mut backends, edge) = three_backends().await;
    // Each replica in turn: SIGTERM (it drains), a new process on its address, ready again.
    let roll = async {
        for backend in backends.iter_mut() {
            assert!(
                backend.terminate().success(),
                "{} drained and exited 0",
                backend.id
            );
            *backend = Backend::spawn(&backend.id, backend.addr);
            backend.ready().await;
            wait_replicas(&edge, 3, 3).await;
        }
        Instant::now()
    };
    let until = Instant::now() + Duration::from_secs(20);
    let ((sent, failures), rolled) = tokio::join!(load(&edge, 6, until), roll);
    assert!(rolled < until, "the roll took longer than the load ran");
    assert_none_failed("during a rolling restart of 3 replicas", sent, &failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_a_killed_replica_ends_with_an_error() {
    let (mut backends, edge) = three_backends().await;
    let body = json!({"jsonrpc":"2.0","id":"s-1","method":"tools/call","params":{"name":"progress","arguments":{"steps":20,"interval_ms":200},"_meta":{"progressToken":"p"}}});
    let mut response = reqwest::Client::new()
        .post(&edge.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let on = response.headers()["x-served-by"]
        .to_str()
        .unwrap()
        .to_owned();
    let first = response.chunk().await.unwrap().expect("a first event");
    assert!(String::from_utf8_lossy(&first).contains("notifications/progress"));
    backends.iter_mut().find(|b| b.id == on).unwrap().kill();
    let mut rest = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    let last = rest.trim_end().rsplit("data: ").next().unwrap();
    let last: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {rest}"));
    assert_eq!(last["id"], "s-1", "{rest}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_nothing_in_flight_exits_without_waiting_out_the_grace_period() {
    let mut edge = start(&["--grace-seconds", "60"]).await;
    // A kept-alive connection that is waiting for its next request does not hold the exit.
    let kept = reqwest::Client::new();
    let a = kept
        .post(&edge.url)
        .header("content-type", "application/json")
        .body(call(1, "echo", json!({"message":"x"})))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 200);
    unsafe { libc::kill(edge.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = edge.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "mcp-edge still running 30 s after SIGTERM with nothing in flight (grace 60 s)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "mcp-edge exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_stream_finish() {
    let mut edge = start(&["--grace-seconds", "5"]).await;
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"progress","arguments":{"steps":8,"interval_ms":250},"_meta":{"progressToken":"p"}}});
    let mut response = reqwest::Client::new()
        .post(&edge.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let mut seen = String::from_utf8_lossy(&response.chunk().await.unwrap().unwrap()).into_owned();
    unsafe { libc::kill(edge.child.id() as i32, libc::SIGTERM) };
    // Draining: readiness 503 while the stream goes on.
    let admin = edge.admin.clone();
    wait_for(5, "readiness 503", || {
        let admin = admin.clone();
        async move {
            client()
                .get(format!("{admin}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 503)
        }
    })
    .await;
    while let Some(chunk) = response.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("completed 8 steps"),
        "the stream was cut: {seen}"
    );
    let status = edge.child.wait().unwrap();
    assert!(status.success(), "mcp-edge exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_with_no_other_replica_to_try_counts_no_retry() {
    let bad = breaking_replica().await;
    let edge = start(&["--backend", &bad]).await;
    wait_replicas(&edge, 1, 1).await;
    // ping is safe to repeat, so it would move on, but there is no other replica.
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let a = post(&edge.url, &[JSON, BOTH], ping.to_owned()).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(metric(&edge, "mcp_edge_retries_total").await, 0.0);
}
