//! Hostile clients: each per-client budget holds (docs/operating.md: Per-client bounds). Every case here failed on
//! 28943d5: labels from made-up tool names, a client that never reads, a body that stops
//! arriving, a head past the limits buffered by pingora, subscriptions that switched push off
//! for everyone, peer endpoints open to any token holder, a duplicated bridge answer. All
//! traffic is loopback; every loop is bounded in count and time.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    common::*,
    push::{legacy_session, listen, subscribe},
};

/// The MCP listener's `host:port`.
fn authority(edge: &Edge) -> String {
    edge.url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned()
}

/// Read what the server sends until it closes the connection, or `limit` passes (`None`).
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(_) => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_tool_names_are_counted_as_other_and_never_grow_the_metrics() {
    let edge = start(&[]).await;
    wait_for(10, "the replicas' tools/list to be read", || async {
        metric(&edge, "mcp_edge_tools_known").await > 0.0
    })
    .await;
    let before = scrape(&edge).await.len();
    for i in 0..50 {
        let name = format!("{i}{}", "x".repeat(256 << 10));
        let a = post(&edge.url, &[JSON, BOTH], call(i, &name, json!({}))).await;
        assert_eq!(a.status, 200, "the replica answers an unknown tool itself");
    }
    let a = post(
        &edge.url,
        &[JSON, BOTH],
        call(99, "echo", json!({"message": "m"})),
    )
    .await;
    assert_eq!(a.status, 200);
    // A request is counted once its answer is written: the scrape may come first.
    wait_for(10, "the echo call counted under its own label", || async {
        scrape(&edge).await.contains(r#"tool="echo""#)
    })
    .await;
    let text = scrape(&edge).await;
    assert!(
        text.len() < before + 4096,
        "the scrape grew from {before} to {} bytes",
        text.len()
    );
    assert!(text.contains(r#"tool="other""#), "{text}");
    let log = edge.stdout.lock().unwrap().join("\n");
    assert!(
        log.lines().all(|l| l.len() < 4096),
        "access log lines are bounded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_after_the_send_timeout() {
    let edge = start(&["--send-timeout-seconds", "2"]).await;
    let addr = authority(&edge);
    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || {
        // The 16 MiB answer does not fit in the sockets' buffers: a client that reads nothing
        // blocks mcp-edge's writes.
        let mut s = TcpStream::connect(addr).unwrap();
        let body = call(1, "payload", json!({"bytes": 16 << 20}));
        let request = format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).unwrap();
        // Nothing is read until mcp-edge has given up on this client.
        s
    })
    .await
    .unwrap();
    wait_for(30, "the send timeout to cut the client", || async {
        metric(&edge, r#"mcp_edge_client_limits_total{limit="send_time"}"#).await >= 1.0
    })
    .await;
    let cut_after = started.elapsed();
    let mut s = closed;
    let got =
        tokio::task::spawn_blocking(move || read_until_closed(&mut s, Duration::from_secs(20)))
            .await
            .unwrap()
            .expect("the connection is closed");
    assert!(
        got.len() < 16 << 20,
        "the client got {} bytes, not the whole answer",
        got.len()
    );
    assert!(cut_after < Duration::from_secs(30), "{cut_after:?}");
    assert_eq!(
        post(
            &edge.url,
            &[JSON, BOTH],
            call(2, "echo", json!({"message": "m"}))
        )
        .await
        .status,
        200,
        "others are served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_gets_408_and_never_reaches_a_replica() {
    let edge = start(&["--body-timeout-seconds", "1"]).await;
    let before = total_requests(&edge).await;
    let addr = authority(&edge);
    let got = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
            .unwrap();
        read_until_closed(&mut s, Duration::from_secs(10))
    })
    .await
    .unwrap()
    .expect("answered and closed within 10 s");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("--body-timeout-seconds"), "{text}");
    assert_eq!(
        metric(&edge, r#"mcp_edge_client_limits_total{limit="body_time"}"#).await,
        1.0
    );
    assert_eq!(total_requests(&edge).await, before, "no replica saw it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_past_the_limits_gets_431_before_it_ends_however_it_starts() {
    let edge = start(&[]).await;
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let before_it = [
        String::new(),
        // Blank lines before the request line, which the parser skips.
        "\r\n\r\n".to_owned(),
        // A whole request first: the big head is pipelined behind it.
        format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{ping}",
            ping.len()
        ),
    ];
    for (case, before) in before_it.into_iter().enumerate() {
        let addr = authority(&edge);
        let got = tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(before.as_bytes()).unwrap();
            s.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\n").unwrap();
            // 64 KiB of one header, never ended: pingora alone would buffer up to 1 MiB of it.
            let line = format!("x-big: {}\r\n", "a".repeat(1024));
            for _ in 0..64 {
                if s.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
            read_until_closed(&mut s, Duration::from_secs(10))
        })
        .await
        .unwrap()
        .expect("answered and closed within 10 s");
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("HTTP/1.1 431"), "case {case}: {text}");
        assert_eq!(
            metric(&edge, r#"mcp_edge_client_limits_total{limit="head_bytes"}"#).await,
            (case + 1) as f64
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_at_its_lifetime() {
    let edge = start(&["--max-stream-seconds", "1"]).await;
    let started = Instant::now();
    let mut stream = listen(&edge.url, json!(1), json!({"toolsListChanged": true})).await;
    let ack = stream.next().await.unwrap();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    // The keep-alive is 15 s: the stream ends on its own deadline, with the listen's response
    // (as at a shutdown: the client listens again).
    let last = stream.within(Duration::from_secs(10)).await;
    let Some(Some(last)) = last else {
        panic!("no last message after {:?}: {last:?}", started.elapsed());
    };
    assert_eq!(last["id"], 1, "{last}");
    assert!(last.get("result").is_some(), "{last}");
    assert!(
        matches!(stream.within(Duration::from_secs(5)).await, Some(None)),
        "the stream ended after its response"
    );
    wait_for(5, "the lifetime to be counted", || async {
        metric(
            &edge,
            r#"mcp_edge_client_limits_total{limit="stream_lifetime"}"#,
        )
        .await
            == 1.0
    })
    .await;
    wait_for(5, "the stream slot to be given back", || async {
        metric(&edge, "mcp_edge_open_streams").await == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_past_their_share_are_refused_and_push_keeps_working_for_others() {
    let edge = start(&[]).await;
    let mut refused = 0;
    // 20 sessions × 9 subscriptions of 2 000-character URIs: 9 × 2 000 passes a session's
    // 16 KiB, and 20 sessions' 8 pass the 256 KiB every upstream listen may ask for.
    for s in 0..20 {
        let token = legacy_session(&edge).await;
        for u in 0..9 {
            let uri = format!("test://{s}/{u}/{}", "u".repeat(2000));
            let a = subscribe(&edge.url, &token, "resources/subscribe", &uri).await;
            assert_eq!(a.status, 200, "{}", a.body);
            if a.json()["error"]["code"] == json!(-32603) {
                refused += 1;
            }
        }
    }
    assert!(refused >= 20 + 3, "{refused} refused");
    assert!(metric(&edge, "mcp_edge_push_subscriptions_refused_total").await >= 3.0);
    assert!(metric(&edge, "mcp_edge_push_wanted_bytes").await <= (256 << 10) as f64);
    // A client arriving now is still served: its listen is acknowledged by every replica.
    let mut stream = listen(&edge.url, json!(7), json!({"toolsListChanged": true})).await;
    let ack = stream.next().await.unwrap();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    // A listen asking for more than a session's share is refused with the reason.
    let uris: Vec<String> = (0..65).map(|i| format!("test://many/{i}")).collect();
    let body = json!({"jsonrpc":"2.0","id":8,"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"notifications":{"resourceSubscriptions":uris}}});
    let a = post(
        &edge.url,
        &[
            JSON,
            BOTH,
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "subscriptions/listen"),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("at most 64"), "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_endpoints_take_only_proven_peers_and_the_admin_404_reflects_nothing() {
    let (a, b) = peers().await;
    let token = open_session(&a, "2025-06-18").await;
    for path in [
        "/sessions/revoke",
        "/bridge/deliver",
        "/bridge/cancel",
        "/push/subscribe",
    ] {
        let body = if path == "/sessions/revoke" {
            token.clone()
        } else {
            r#"{"jsonrpc":"2.0","id":"mcp-edge:1","result":{}}"#.to_owned()
        };
        let answer = post(
            &format!("{}{path}", b.admin),
            &[("mcp-session-id", &token), ("mcp-edge-peer", "1.00")],
            body,
        )
        .await;
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
    }
    assert!(metric(&b, "mcp_edge_peer_requests_refused_total").await >= 4.0);
    let echo = |edge: &Edge, id| {
        let (url, token) = (edge.url.clone(), token.clone());
        async move {
            post(
                &url,
                &[JSON, BOTH, ("mcp-session-id", &token)],
                call(id, "echo", json!({"message": "still here"})),
            )
            .await
            .status
        }
    };
    assert_eq!(echo(&b, 1).await, 200, "the session was not revoked");
    // A real DELETE still reaches the peer, proven.
    assert_eq!(delete_session(&a.url, &token).await.status, 200);
    wait_for(5, "the peer to end the session", || async {
        echo(&b, 2).await == 404
    })
    .await;
    let probe = "/<script>alert(1)</script>";
    let answer = send(
        reqwest::Method::GET,
        &format!("{}{probe}", a.admin),
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 404);
    assert!(!answer.body.contains("script"), "{}", answer.body);
}

#[test]
fn a_peer_list_without_a_session_key_is_refused_at_start() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-edge"))
        .args(["--peer", "127.0.0.1:9", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "mcp-edge started without the key its peers need: {stderr}"
    );
    assert!(stderr.contains("--peer needs"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_starting_sessions_past_its_rate_gets_429_and_others_still_start_theirs() {
    let edge = start(&[
        "--auth-tokens",
        "alpha-token-0123456789,beta-token-0123456789",
        "--session-rate-limit",
        "1",
    ])
    .await;
    let init = |token: &'static str| {
        let url = edge.url.clone();
        async move {
            let bearer = format!("Bearer {token}");
            post(
                &url,
                &[JSON, BOTH, ("authorization", &bearer)],
                initialize("2025-06-18"),
            )
            .await
        }
    };
    // Ten seconds' worth at once, then the rate: the eleventh within a second is refused.
    for _ in 0..10 {
        assert_eq!(init("alpha-token-0123456789").await.status, 200);
    }
    let refused = init("alpha-token-0123456789").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.headers.get("retry-after").is_some());
    assert_eq!(refused.json()["id"], 0, "{}", refused.body);
    assert!(refused.session().is_none());
    assert_eq!(
        init("beta-token-0123456789").await.status,
        200,
        "another caller has its own share"
    );
    let text = scrape(&edge).await;
    assert!(
        text.contains(r#"mcp_edge_client_limits_total{limit="session_starts"} 1"#),
        "{text}"
    );
    assert!(text.contains("mcp_edge_sessions_minted_total 11"), "{text}");
    assert!(
        text.contains(r#"method="initialize",tool="",era="legacy",status="4xx",replica="edge"} 1"#),
        "the refused initialize never reached a replica: {text}"
    );
}
