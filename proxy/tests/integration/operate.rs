//! Operating mcp-edge safely, on the real binary: metrics move with traffic, the access log,
//! rate limits, header and stream limits, a slow-headers client, and hostile requests.

use std::{
    io::{Read, Write},
    time::{Duration, Instant},
};

use crate::common::*;
use serde_json::{Value, json};

/// A `progress` call over SSE: `steps` notifications `interval_ms` apart, then the result.
fn progress(id: u64, steps: u64, interval_ms: u64) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"progress","arguments":{"steps":steps,"interval_ms":interval_ms},"_meta":{"progressToken":id}}}).to_string()
}

/// POST `body` accepting SSE, in `session` if given; the response as it starts.
async fn open_stream(edge: &Edge, body: String, session: Option<&str>) -> reqwest::Response {
    let mut request = client()
        .post(&edge.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(token) = session {
        request = request.header("mcp-session-id", token);
    }
    request.body(body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_traffic_flows() {
    let edge = start(&[]).await;
    let calls = r#"mcp_edge_requests_total{method="tools/call",tool="echo",era="legacy",status="2xx",replica="r1"}"#;
    let before = metric(&edge, calls).await;
    for id in 0..6 {
        assert_eq!(
            post(
                &edge.url,
                &[JSON, BOTH],
                call(id, "echo", json!({"message":"m"}))
            )
            .await
            .status,
            200
        );
    }
    // A request is counted when it is logged, just after its answer is written: wait for it.
    wait_for(5, "2 of 6 calls counted on r1 (round robin)", || async {
        metric(&edge, calls).await - before == 2.0
    })
    .await;
    let not_found = r#"mcp_edge_requests_total{method="none",tool="",era="unknown",status="4xx",replica="edge"}"#;
    post(&edge.url.replace("/mcp", "/nope"), &[JSON], "{}").await;
    wait_for(5, "the edge's own 404 counted", || async {
        metric(&edge, not_found).await == 1.0
    })
    .await;
    let timed = r#"mcp_edge_request_duration_seconds_count{method="tools/call"}"#;
    wait_for(5, "6 call latencies", || async {
        metric(&edge, timed).await == 6.0
    })
    .await;

    let token = open_session(&edge, "2025-06-18").await;
    assert_eq!(metric(&edge, "mcp_edge_sessions_minted_total").await, 1.0);
    assert_eq!(delete_session(&edge.url, &token).await.status, 200);
    assert_eq!(metric(&edge, "mcp_edge_sessions_revoked_total").await, 1.0);
    assert_eq!(
        metric(&edge, r#"mcp_edge_replica_healthy{replica="r2","#).await,
        0.0,
        "label set includes the address"
    );
    let text = client()
        .get(format!("{}/metrics", edge.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("mcp_edge_replica_healthy{") && l.ends_with(" 1"))
            .count(),
        3,
        "{text}"
    );

    // An open stream shows, then goes.
    let stream = open_stream(&edge, progress(50, 3, 200), None).await;
    wait_for(5, "the stream in the gauge", || async {
        metric(&edge, "mcp_edge_open_streams").await == 1.0
    })
    .await;
    events(stream).await;
    wait_for(5, "the stream to leave the gauge", || async {
        metric(&edge, "mcp_edge_open_streams").await == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operating_guide_documents_exactly_the_families_metrics_shows() {
    // The rate limit and TLS on, so that every family the process can show is there.
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/localhost.pem");
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/localhost-key.pem"
    );
    let edge = start(&["--rate-limit", "1000", "--tls-cert", cert, "--tls-key", key]).await;
    let text = scrape(&edge).await;
    let mut shown: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    shown.sort_unstable();
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operating.md"))
            .unwrap();
    let mut documented: Vec<&str> = guide
        .lines()
        .filter_map(|l| l.strip_prefix("| `mcp_edge_"))
        .filter_map(|l| l.split('`').next())
        .collect();
    documented.sort_unstable();
    let shown: Vec<String> = shown
        .iter()
        .map(|n| n.trim_start_matches("mcp_edge_").to_owned())
        .collect();
    assert!(shown.len() > 30, "{text}");
    assert_eq!(
        documented, shown,
        "docs/operating.md's metric table against /metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_a_json_line_per_request() {
    let edge = start(&[]).await;
    let token = open_session(&edge, "2025-06-18").await;
    assert_eq!(
        post(
            &edge.url,
            &[JSON, BOTH, ("mcp-session-id", &token)],
            call(7, "echo", json!({"message":"m"}))
        )
        .await
        .status,
        200
    );
    let lines = || {
        edge.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["tool"] == "echo")
            .collect::<Vec<_>>()
    };
    wait_for(5, "the access log line of the call", || async {
        !lines().is_empty()
    })
    .await;
    let line = &lines()[0];
    assert_eq!(line["method"], "tools/call");
    assert_eq!(line["era"], "legacy");
    assert_eq!(line["status"], 200);
    assert!(line["replica"].as_str().unwrap().starts_with('r'));
    assert!(
        line["latency_us"].as_u64().is_some()
            && line["bytes_in"].as_u64().unwrap() > 0
            && line["bytes_out"].as_u64().unwrap() > 0
    );
    let tag = line["session"].as_str().unwrap();
    assert_eq!(tag.len(), 8, "a short hash");
    let all = edge.stdout.lock().unwrap().join("\n");
    assert!(!all.contains(&token), "the token never reaches the log");
    assert!(line["timestamp"].as_str().is_some());

    let quiet = start(&["--access-log", "off"]).await;
    post(
        &quiet.url,
        &[JSON, BOTH],
        call(1, "echo", json!({"message":"m"})),
    )
    .await;
    assert!(quiet.stdout.lock().unwrap().is_empty(), "--access-log off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_refuses_then_recovers() {
    let edge = start(&["--rate-limit", "4", "--rate-limit-burst", "2"]).await;
    let before = total_requests(&edge).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for id in 0..3 {
        let a = post(
            &edge.url,
            &[JSON, BOTH],
            call(id, "echo", json!({"message":"m"})),
        )
        .await;
        statuses.push(a.status);
        if a.status == 429 {
            refused = Some(a);
        }
    }
    assert_eq!(statuses, [200, 200, 429], "a burst of 2");
    let refused = refused.unwrap();
    assert_eq!(refused.error_code(), -32000);
    assert_eq!(refused.headers.get("retry-after").unwrap(), "1");
    assert_eq!(
        total_requests(&edge).await - before,
        2,
        "the refused request never reached a replica"
    );
    assert_eq!(metric(&edge, "mcp_edge_rate_limited_total").await, 1.0);
    wait_for(5, "the bucket to refill", || async {
        post(
            &edge.url,
            &[JSON, BOTH],
            call(9, "echo", json!({"message":"m"})),
        )
        .await
        .status
            == 200
    })
    .await;

    // With authentication, each credential has its own bucket.
    let auth = start(&[
        "--rate-limit",
        "1",
        "--rate-limit-burst",
        "1",
        "--auth-tokens",
        "alpha-0123456789,beta-01234567890",
    ])
    .await;
    let alpha = ("authorization", "Bearer alpha-0123456789");
    let beta = ("authorization", "Bearer beta-01234567890");
    assert_eq!(
        post(
            &auth.url,
            &[JSON, BOTH, alpha],
            call(1, "echo", json!({"message":"m"}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(
            &auth.url,
            &[JSON, BOTH, alpha],
            call(2, "echo", json!({"message":"m"}))
        )
        .await
        .status,
        429
    );
    assert_eq!(
        post(
            &auth.url,
            &[JSON, BOTH, beta],
            call(3, "echo", json!({"message":"m"}))
        )
        .await
        .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_cut_off() {
    let edge = start(&["--header-timeout-ms", "300"]).await;
    let addr = edge
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    // `after_a_request`: the slow headers are the second request's on a kept-alive connection.
    let trickle = |after_a_request: bool| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            if after_a_request {
                let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
                let request = format!(
                    "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(request.as_bytes()).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 1024];
                while !got.ends_with(b"}") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "closed before the first answer");
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(
                    got.starts_with(b"HTTP/1.1 200"),
                    "{}",
                    String::from_utf8_lossy(&got)
                );
            }
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            s.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\n").unwrap();
            let start = Instant::now();
            // One header line every 50 ms, for at most 5 s: the proxy must close first.
            while start.elapsed() < Duration::from_secs(5) {
                if s.write_all(b"x-slow: 1\r\n").is_err() {
                    return Some(start.elapsed());
                }
                match s.read(&mut [0u8; 64]) {
                    Ok(0) | Err(_) if s.peer_addr().is_err() => return Some(start.elapsed()),
                    Ok(0) => return Some(start.elapsed()),
                    _ => {}
                }
            }
            None
        })
    };
    for (after_a_request, timeouts) in [(false, 1.0), (true, 2.0)] {
        let after = trickle(after_a_request)
            .await
            .unwrap()
            .expect("the connection was still open after 5 s");
        assert!(
            after < Duration::from_secs(3),
            "cut after {after:?} (after a request: {after_a_request})"
        );
        assert_eq!(
            metric(&edge, "mcp_edge_header_timeouts_total").await,
            timeouts
        );
    }
    assert_eq!(
        post(
            &edge.url,
            &[JSON, BOTH],
            call(1, "echo", json!({"message":"m"}))
        )
        .await
        .status,
        200,
        "others are served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limits_are_refused() {
    let edge = start(&["--max-streams", "1"]).await;
    let first = open_stream(&edge, progress(1, 3, 300), None).await;
    assert_eq!(first.status(), 200);
    let second = open_stream(&edge, progress(2, 3, 300), None).await;
    assert_eq!(second.status(), 503);
    let body: Value = second.json().await.unwrap();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(2), json!(-32000))
    );
    assert_eq!(
        events(first).await.len(),
        4,
        "the first stream is untouched: 3 progress events and the result"
    );
    wait_for(5, "room for a stream again", || async {
        open_stream(&edge, progress(3, 1, 10), None).await.status() == 200
    })
    .await;
}

/// Hostile requests: each gets its documented status and a JSON-RPC error, no replica sees
/// any, and the proxy keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_errors_and_never_reach_a_replica() {
    let edge = start(&["--max-header-bytes", "8192", "--max-headers", "50"]).await;
    let token = open_session(&edge, "2025-06-18").await;
    let before = total_requests(&edge).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_params = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{}{}}}"#,
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let huge_number = format!(
        r#"{{"jsonrpc":"2.0","id":1{},"method":"ping"}}"#,
        "0".repeat(5000)
    );
    let long_header = "v".repeat(10_000);
    let many: Vec<(String, String)> = (0..60).map(|i| (format!("x-h{i}"), "1".into())).collect();
    let many_ref: Vec<(&str, &str)> = many
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .chain([JSON, BOTH])
        .collect();
    let forged = "A".repeat(88);
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let cases: Vec<(&str, Answer, u16, i64)> = vec![
        (
            "truncated JSON",
            post(&edge.url, &[JSON, BOTH], r#"{"jsonrpc":"2.0","id":1,"meth"#).await,
            400,
            -32700,
        ),
        (
            "empty body",
            post(&edge.url, &[JSON, BOTH], "").await,
            400,
            -32700,
        ),
        (
            "null body",
            post(&edge.url, &[JSON, BOTH], "null").await,
            400,
            -32600,
        ),
        (
            "id an object",
            post(
                &edge.url,
                &[JSON, BOTH],
                r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
            )
            .await,
            400,
            -32600,
        ),
        (
            "id a boolean",
            post(
                &edge.url,
                &[JSON, BOTH],
                r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
            )
            .await,
            400,
            -32600,
        ),
        (
            "method a number",
            post(
                &edge.url,
                &[JSON, BOTH],
                r#"{"jsonrpc":"2.0","id":1,"method":42}"#,
            )
            .await,
            400,
            -32600,
        ),
        (
            "jsonrpc 1.0",
            post(
                &edge.url,
                &[JSON, BOTH],
                r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            )
            .await,
            400,
            -32600,
        ),
        (
            "duplicate keys",
            post(
                &edge.url,
                &[JSON, BOTH],
                r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            )
            .await,
            400,
            -32600,
        ),
        (
            "invalid UTF-8 in a string",
            post(
                &edge.url,
                &[JSON, BOTH],
                [
                    &br#"{"jsonrpc":"2.0","id":1,"method":"p"#[..],
                    &[0xc3, 0x28],
                    b"\"}",
                ]
                .concat(),
            )
            .await,
            400,
            -32700,
        ),
        (
            "nesting 10 000 deep",
            post(&edge.url, &[JSON, BOTH], deep).await,
            400,
            -32700,
        ),
        (
            "params nested 10 000 deep",
            post(&edge.url, &[JSON, BOTH], deep_params).await,
            400,
            -32700,
        ),
        (
            "a 5000-digit number",
            post(&edge.url, &[JSON, BOTH], huge_number).await,
            400,
            -32600,
        ),
        (
            "batch from a 2025-06-18 client",
            post(
                &edge.url,
                &[JSON, BOTH, ("mcp-protocol-version", "2025-06-18")],
                format!("[{ping}]"),
            )
            .await,
            400,
            -32600,
        ),
        (
            "batch in a 2025-06-18 session",
            post(
                &edge.url,
                &[JSON, BOTH, ("mcp-session-id", &token)],
                format!("[{ping},{ping}]"),
            )
            .await,
            400,
            -32600,
        ),
        (
            "a 2025-03-26 batch of numbers",
            post(&edge.url, &[JSON, BOTH], "[1,2,3]").await,
            400,
            -32600,
        ),
        (
            "an empty batch",
            post(&edge.url, &[JSON, BOTH], "[]").await,
            400,
            -32600,
        ),
        (
            "a batch with one bad message",
            post(
                &edge.url,
                &[JSON, BOTH],
                format!(r#"[{ping},{{"jsonrpc":"2.0","id":true,"method":"ping"}}]"#),
            )
            .await,
            400,
            -32600,
        ),
        (
            "a batch inside a batch",
            post(&edge.url, &[JSON, BOTH], format!("[[{ping}]]")).await,
            400,
            -32600,
        ),
        (
            "forged session token",
            post(&edge.url, &[JSON, BOTH, ("mcp-session-id", &forged)], ping).await,
            404,
            -32600,
        ),
        (
            "a 10 KB header",
            post(&edge.url, &[JSON, BOTH, ("x-long", &long_header)], ping).await,
            431,
            -32600,
        ),
        (
            "62 headers",
            post(&edge.url, &many_ref, ping).await,
            431,
            -32600,
        ),
        (
            "body over the limit",
            post(&edge.url, &[JSON, BOTH], "x".repeat(5 << 20)).await,
            413,
            -32600,
        ),
    ];
    for (what, answer, status, code) in &cases {
        assert_eq!(answer.status, *status, "{what}: {}", answer.body);
        assert_eq!(answer.error_code(), *code, "{what}: {}", answer.body);
        assert!(
            !answer.json()["error"]["message"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "{what}"
        );
    }
    assert_eq!(
        total_requests(&edge).await,
        before,
        "no replica may see a hostile request"
    );
    let ok = post(
        &edge.url,
        &[JSON, BOTH, ("mcp-session-id", &token)],
        call(2, "echo", json!({"message":"still here"})),
    )
    .await;
    assert_eq!(ok.status, 200, "the proxy keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holds_at_most_its_streams() {
    let edge = start(&["--max-streams-per-session", "1"]).await;
    let token = open_session(&edge, "2025-06-18").await;
    let first = open_stream(&edge, progress(1, 3, 300), Some(&token)).await;
    assert_eq!(first.status(), 200);
    let second = open_stream(&edge, progress(2, 3, 300), Some(&token)).await;
    assert_eq!(second.status(), 429);
    let body: Value = second.json().await.unwrap();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(2), json!(-32000))
    );
    // Another session, and plain calls in this one, are not affected.
    let other = open_session(&edge, "2025-06-18").await;
    assert_eq!(
        open_stream(&edge, progress(3, 1, 10), Some(&other))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(
            &edge.url,
            &[JSON, BOTH, ("mcp-session-id", &token)],
            call(4, "echo", json!({"message":"m"}))
        )
        .await
        .status,
        200
    );
    assert_eq!(events(first).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_slower_than_the_first_byte_timeout_gets_504() {
    let edge = start(&["--first-byte-timeout-seconds", "1"]).await;
    let started = Instant::now();
    let slow = post(
        &edge.url,
        &[JSON, BOTH],
        call(1, "sleep", json!({"ms": 3000})),
    )
    .await;
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert_eq!(
        (slow.json()["id"].clone(), slow.error_code()),
        (json!(1), -32603)
    );
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(
        post(
            &edge.url,
            &[JSON, BOTH],
            call(2, "sleep", json!({"ms": 100}))
        )
        .await
        .status,
        200,
        "within the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_tracked_session_cap_ended_sessions_stay_refused_and_others_still_work() {
    let edge = start(&["--max-tracked-sessions", "4"]).await;
    let in_session = |token: String| {
        let url = edge.url.clone();
        async move {
            post(
                &url,
                &[
                    JSON,
                    BOTH,
                    ("mcp-session-id", &token),
                    ("mcp-protocol-version", "2025-06-18"),
                ],
                call(1, "echo", json!({"message":"m"})),
            )
            .await
            .status
        }
    };
    let mut ended = Vec::new();
    for _ in 0..10 {
        let token = open_session(&edge, "2025-06-18").await;
        let deleted = delete_session(&edge.url, &token).await;
        // 404 once a fold's watermark covers tokens of this very second: ended either way.
        assert!(matches!(deleted.status, 200 | 404), "{}", deleted.status);
        ended.push(token);
    }
    assert!(metric(&edge, "mcp_edge_session_revocations").await <= 4.0);
    assert!(
        metric(&edge, "mcp_edge_session_revocation_watermark_seconds").await > 0.0,
        "revocations past the cap were folded into the watermark"
    );
    for token in ended {
        assert_eq!(
            in_session(token).await,
            404,
            "an ended session never reopens"
        );
    }
    // The watermark covers tokens up to the last folded one's second: one minted later opens.
    // Sessions past the idle table's cap are served untracked.
    let deadline = Instant::now() + Duration::from_secs(5);
    let fresh = loop {
        let token = open_session(&edge, "2025-06-18").await;
        if in_session(token.clone()).await == 200 {
            break token;
        }
        assert!(
            Instant::now() < deadline,
            "a new session opens past the watermark within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut open = vec![fresh];
    for _ in 0..5 {
        open.push(open_session(&edge, "2025-06-18").await);
    }
    assert_eq!(metric(&edge, "mcp_edge_sessions_tracked").await, 4.0);
    assert!(metric(&edge, "mcp_edge_sessions_untracked_total").await >= 2.0);
    for token in open {
        assert_eq!(
            in_session(token).await,
            200,
            "untracked sessions are served"
        );
    }
}

/// The request head of a POST whose body never completes (`declared` bytes promised, one sent),
/// and the status and JSON body mcp-edge answers once its body deadline passes.
async fn stalled_body(edge: &Edge, headers: &str, declared: usize) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = edge
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {declared}\r\n\r\n{{"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut raw))
        .await
        .expect("answered within the body deadline and a margin")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.lines().nth(1).unwrap_or_default().to_owned()
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers: Default::default(),
        body,
    }
}

/// docs/operating.md's "Errors made at the edge", row by row: each row's request is sent here
/// (or, where it needs a replica that keeps sessions, named with the test that sends it), and
/// gets the status and JSON-RPC code the row says; the rows that say no replica sees them reach
/// none. A row added to the guide without its case here, or a case whose row was reworded,
/// fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_errors_table_in_the_operating_guide_is_what_the_edge_answers() {
    let edge = start(&[
        "--auth-tokens",
        "a-sixteen-char-token,another-sixteen-token",
        "--max-headers",
        "50",
        "--body-limit",
        "4096",
        "--body-timeout-seconds",
        "1",
        "--session-rate-limit",
        "0.1",
    ])
    .await;
    // A replica that breaks every request (not ejected by this test's two requests), one that
    // is never healthy (a closed port), and one slower than the first-byte timeout.
    let bad = breaking_replica().await;
    let broken = start(&["--backend", &bad, "--eject-after", "5"]).await;
    wait_replicas(&broken, 1, 1).await;
    let closed = format!("http://127.0.0.1:{}/mcp", free_port());
    let none = start(&["--backend", &closed]).await;
    wait_replicas(&none, 0, 1).await;
    let slow = start(&["--first-byte-timeout-seconds", "1"]).await;
    const AUTH: (&str, &str) = ("authorization", "Bearer a-sixteen-char-token");
    let ping = r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;
    let init = initialize("2025-06-18");
    let session = post(&edge.url, &[JSON, BOTH, AUTH], init.clone()).await;
    let session = session.session().expect("a session");
    let limited = ("authorization", "Bearer another-sixteen-token");
    assert_eq!(
        post(&edge.url, &[JSON, BOTH, limited], init.clone())
            .await
            .status,
        200
    );
    let before = total_requests(&edge).await;

    let many: Vec<(String, String)> = (0..60).map(|i| (format!("x-h{i}"), "1".into())).collect();
    let many: Vec<(&str, &str)> = many
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .chain([JSON, BOTH, AUTH])
        .collect();
    let other_path = edge.url.replace("/mcp", "/other");
    let modern = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    let batch = format!("[{ping}]");
    let no_session = [JSON, BOTH, AUTH];
    let with_session = [JSON, BOTH, AUTH, ("mcp-session-id", session.as_str())];
    let checked: Vec<(&str, Answer)> = vec![
        (
            "request head over `--max-headers` or `--max-header-bytes`",
            post(&edge.url, &many, ping).await,
        ),
        ("another path", post(&other_path, &no_session, ping).await),
        (
            "no or wrong bearer token (when authentication is on)",
            post(&edge.url, &[JSON, BOTH], ping).await,
        ),
        (
            "past the caller's rate limit, or its rate of new legacy sessions",
            post(&edge.url, &[JSON, BOTH, limited], init.clone()).await,
        ),
        (
            "`Origin` not allowed",
            post(
                &edge.url,
                &[JSON, BOTH, AUTH, ("origin", "https://evil.example")],
                ping,
            )
            .await,
        ),
        (
            "not `application/json`",
            post(
                &edge.url,
                &[("content-type", "text/plain"), BOTH, AUTH],
                ping,
            )
            .await,
        ),
        (
            "`Accept` allows neither JSON nor SSE",
            post(&edge.url, &[JSON, ("accept", "text/html"), AUTH], ping).await,
        ),
        (
            "body over the limit",
            post(&edge.url, &no_session, "x".repeat(8192)).await,
        ),
        (
            "body not complete within `--body-timeout-seconds`",
            stalled_body(&edge, "Authorization: Bearer a-sixteen-char-token\r\n", 100).await,
        ),
        (
            "malformed JSON, invalid UTF-8, nested deeper than 128",
            post(&edge.url, &no_session, r#"{"jsonrpc":"2.0","id":7,"meth"#).await,
        ),
        (
            "JSON but not a JSON-RPC message (wrong `id` or `method` types, duplicate keys, …)",
            post(
                &edge.url,
                &no_session,
                r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            )
            .await,
        ),
        (
            "batch outside a 2025-03-26 session",
            post(&edge.url, &with_session, batch).await,
        ),
        (
            "2026-07-28 header/body mismatch",
            post(
                &edge.url,
                &[
                    JSON,
                    BOTH,
                    AUTH,
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "tools/call"),
                ],
                modern,
            )
            .await,
        ),
        (
            "unknown, tampered, foreign-key, expired or deleted session token",
            post(
                &edge.url,
                &[JSON, BOTH, AUTH, ("mcp-session-id", "bogus")],
                ping,
            )
            .await,
        ),
        (
            "`GET` with nothing to serve it (no resumable stream, no stateful session, no fan-out); `DELETE` without a session",
            send(reqwest::Method::DELETE, &edge.url, &[AUTH], "").await,
        ),
    ];
    assert_eq!(
        total_requests(&edge).await,
        before,
        "the requests down to the 405 reach no replica"
    );
    let get = send(
        reqwest::Method::GET,
        &edge.url,
        &[AUTH, ("accept", "text/event-stream")],
        "",
    )
    .await;
    assert_eq!(
        (get.status, get.error_code()),
        (405, -32600),
        "GET: {}",
        get.body
    );
    let mut checked = checked;
    checked.extend([
        (
            "no healthy replica",
            post(&none.url, &[JSON, BOTH], ping).await,
        ),
        (
            "a replica failed after the request was sent, and repeating it is not safe",
            post(
                &broken.url,
                &[JSON, BOTH],
                call(7, "echo", json!({"message": "m"})),
            )
            .await,
        ),
        (
            "a replica did not answer within `--first-byte-timeout-seconds`",
            post(
                &slow.url,
                &[JSON, BOTH],
                call(7, "sleep", json!({"ms": 3000})),
            )
            .await,
        ),
    ]);
    let elsewhere = [(
        "a session whose stateful replica is gone or unreachable",
        "tests/sessions/test_sessions.py::test_stateful_replicas_keep_their_sessions",
    )];

    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operating.md"))
            .unwrap();
    let table = guide
        .split("## Errors made at the edge")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap();
    let number = |cell: &str| -> i64 {
        let digits: String = cell
            .trim()
            .chars()
            .take_while(|c| *c == '-' || c.is_ascii_digit())
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no number in {cell:?}"))
    };
    let mut rows = Vec::new();
    for line in table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| request |"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
        let (row, status, code) = (cells[0].trim(), number(cells[1]), number(cells[2]));
        rows.push(row);
        if elsewhere.iter().any(|(r, _)| *r == row) {
            continue;
        }
        let Some((_, answer)) = checked.iter().find(|(r, _)| *r == row) else {
            panic!("docs/operating.md's row {row:?} has no case in this test");
        };
        assert_eq!(
            (i64::from(answer.status), answer.error_code()),
            (status, code),
            "{row}: {}",
            answer.body
        );
        if cells[2].contains("`id` null") {
            assert_eq!(answer.json()["id"], Value::Null, "{row}");
        }
        if cells[1].contains("Retry-After") {
            assert!(answer.headers.contains_key("retry-after"), "{row}");
        }
    }
    let cases = checked
        .iter()
        .map(|(row, _)| row)
        .chain(elsewhere.iter().map(|(row, _)| row));
    for case in cases {
        assert!(
            rows.contains(case),
            "the case {case:?} has no row in docs/operating.md"
        );
    }
}
