//! mcp-edge as users run it: the real binary on loopback, in front of its embedded replicas (or
//! of replicas the test starts), driven over HTTP.

use std::{
    collections::HashMap,
    process::Command,
    time::{Duration, Instant},
};

use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_session_is_minted_kept_and_spread_over_every_replica() {
    let edge = start(&[]).await;
    assert_eq!(
        edge.replicas
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        ["r1", "r2", "r3"]
    );
    let token = open_session(&edge, "2025-06-18").await;
    let before = stats(&edge).await;
    let mut served = HashMap::<String, u32>::new();
    for i in 1..=9 {
        let a = post(
            &edge.url,
            &[JSON, BOTH, ("mcp-session-id", &token)],
            call(i, "echo", json!({"message": "hi"})),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["result"]["content"][0]["text"], "hi");
        assert_eq!(
            a.session().as_deref(),
            Some(token.as_str()),
            "the client keeps one session id"
        );
        *served.entry(a.served_by()).or_default() += 1;
    }
    assert_eq!(
        served,
        HashMap::from([("r1".into(), 3), ("r2".into(), 3), ("r3".into(), 3)]),
        "strict round robin"
    );
    let after = stats(&edge).await;
    for (id, s) in &after {
        let b = &before[id];
        assert_eq!(
            s["with_session_header"], b["with_session_header"],
            "{id} saw an Mcp-Session-Id"
        );
        assert_eq!(
            s["without_version_header"], b["without_version_header"],
            "{id} got no MCP-Protocol-Version from the session"
        );
    }
    // DELETE ends the session at the proxy; every later use is 404.
    let deleted = delete_session(&edge.url, &token).await;
    assert_eq!(deleted.status, 200);
    let gone = post(
        &edge.url,
        &[JSON, BOTH, ("mcp-session-id", &token)],
        call(10, "echo", json!({"message": "x"})),
    )
    .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["id"], 10);
    assert!(
        gone.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("initialize")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_is_answered_at_the_edge() {
    let edge = start(&[]).await;
    let token = open_session(&edge, "2025-06-18").await;
    let before = total_requests(&edge).await;
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}",
        "a".repeat(4 << 20)
    );
    let v26 = ("mcp-protocol-version", "2026-07-28");
    let modern = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"},
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}})
    .to_string();
    let cases: Vec<(&str, Answer, u16, Option<i64>)> = vec![
        (
            "origin",
            post(
                &edge.url,
                &[JSON, ("origin", "http://evil.example.com")],
                call(1, "echo", json!({"message":"x"})),
            )
            .await,
            403,
            Some(-32600),
        ),
        (
            "content type",
            post(
                &edge.url,
                &[("content-type", "text/plain")],
                call(1, "echo", json!({})),
            )
            .await,
            415,
            Some(-32600),
        ),
        (
            "too large",
            post(&edge.url, &[JSON], big).await,
            413,
            Some(-32600),
        ),
        (
            "malformed",
            post(&edge.url, &[JSON], "{\"jsonrpc\":").await,
            400,
            Some(-32700),
        ),
        (
            "invalid UTF-8",
            post(&edge.url, &[JSON], vec![b'{', 0xff, b'}']).await,
            400,
            Some(-32700),
        ),
        (
            "not JSON-RPC",
            post(
                &edge.url,
                &[JSON],
                r#"{"jsonrpc":"2.0","id":[1],"method":"x"}"#,
            )
            .await,
            400,
            Some(-32600),
        ),
        (
            "accept",
            post(
                &edge.url,
                &[JSON, ("accept", "text/html")],
                call(1, "echo", json!({})),
            )
            .await,
            406,
            Some(-32600),
        ),
        (
            "batch in 2025-06-18",
            post(
                &edge.url,
                &[JSON, ("mcp-session-id", &token)],
                format!("[{}]", call(1, "echo", json!({}))),
            )
            .await,
            400,
            Some(-32600),
        ),
        (
            "unknown session",
            post(
                &edge.url,
                &[JSON, ("mcp-session-id", "forged")],
                call(1, "echo", json!({})),
            )
            .await,
            404,
            Some(-32600),
        ),
        (
            "header mismatch",
            post(
                &edge.url,
                &[JSON, BOTH, v26, ("mcp-method", "tools/list")],
                modern.clone(),
            )
            .await,
            400,
            Some(-32020),
        ),
        (
            "GET stream refusing SSE",
            send(
                reqwest::Method::GET,
                &edge.url,
                &[("mcp-session-id", &token), ("accept", "application/json")],
                "",
            )
            .await,
            406,
            Some(-32600),
        ),
        (
            "DELETE without session",
            send(reqwest::Method::DELETE, &edge.url, &[], "").await,
            405,
            Some(-32600),
        ),
        (
            "other path",
            post(
                &edge.url.replace("/mcp", "/other"),
                &[JSON],
                call(1, "echo", json!({})),
            )
            .await,
            404,
            Some(-32601),
        ),
    ];
    for (what, answer, status, code) in &cases {
        assert_eq!(answer.status, *status, "{what}: {}", answer.body);
        if let Some(code) = code {
            assert_eq!(answer.error_code(), *code, "{what}");
            assert!(
                !answer.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .is_empty()
            );
        }
    }
    assert_eq!(
        total_requests(&edge).await,
        before,
        "no replica may see a rejected request"
    );
    // The edge still serves after all of that.
    let ok = post(
        &edge.url,
        &[JSON, BOTH, ("mcp-session-id", &token)],
        call(2, "echo", json!({"message":"still here"})),
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_version_is_answered_by_the_replicas_in_turn() {
    let edge = start(&[]).await;
    let version = edge.url.replace("/mcp", "/version");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let a = send(reqwest::Method::GET, &version, &[], "").await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["name"], "mcp-backend");
        assert_eq!(
            a.json()["replica_id"],
            a.served_by(),
            "X-Served-By names the replica that answered"
        );
        assert!(
            !a.json()["hostname"].as_str().unwrap().is_empty(),
            "the template's quick start reads .hostname"
        );
        seen.push(a.served_by());
    }
    seen.sort();
    assert_eq!(seen, ["r1", "r2", "r3"], "round robin, as every request");
    let post = send(reqwest::Method::POST, &version, &[JSON], "{}").await;
    assert_eq!(
        (post.status, post.headers["allow"].to_str().unwrap()),
        (405, "GET")
    );
    assert_eq!(post.error_code(), -32600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_requests_pass_untouched_and_never_get_a_session() {
    let edge = start(&[]).await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}});
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_custom_headers","arguments":{"region":"us-west1"},"_meta":meta}}).to_string();
    // Mcp-Param-Region must reach the replica untouched: the replica checks it against the body.
    let headers = [
        JSON,
        BOTH,
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "test_custom_headers"),
        ("mcp-param-region", "us-west1"),
        ("mcp-session-id", "ignored"),
    ];
    let a = post(&edge.url, &headers, body.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["result"]["content"][0]["text"], "region=us-west1");
    assert!(a.session().is_none(), "2026-07-28 never gets a session id");
    let wrong = [
        JSON,
        BOTH,
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "test_custom_headers"),
        ("mcp-param-region", "eu-west1"),
    ];
    let a = post(&edge.url, &wrong, body).await;
    assert_eq!(
        (a.status, a.error_code()),
        (400, -32020),
        "the replica saw the header as sent: {}",
        a.body
    );
    // A discover goes through, round robin.
    let discover =
        json!({"jsonrpc":"2.0","id":2,"method":"server/discover","params":{"_meta":meta}})
            .to_string();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let a = post(
            &edge.url,
            &[
                JSON,
                BOTH,
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "server/discover"),
            ],
            discover.clone(),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        seen.insert(a.served_by());
    }
    assert_eq!(seen.len(), 3);
}

/// Requests sent back to back on one connection, before the answers (HTTP/1.1 pipelining, and
/// what a fast client does right after a bodiless 202): each is answered, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    use std::io::{Read, Write};
    let edge = start(&[]).await;
    let addr = edge
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let request = |body: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let notification = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let wire = [
        request(&call(1, "echo", json!({"message":"a"}))),
        request(notification),
        request(&call(2, "echo", json!({"message":"b"}))),
    ]
    .concat();
    let answers = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(wire.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(r#""id":2"#) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    })
    .await
    .unwrap();
    let statuses: Vec<&str> = answers
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answers[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "202", "200"], "{answers}");
    assert!(
        answers.find(r#""id":1"#) < answers.find(r#""id":2"#),
        "{answers}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_pingoras_replay_buffer_arrive_intact() {
    let edge = start(&[]).await;
    for size in [100 * 1024, 1024 * 1024] {
        let message: String = (0..size)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let a = post(
            &edge.url,
            &[JSON, ("accept", "application/json")],
            call(1, "echo", json!({"message": message})),
        )
        .await;
        assert_eq!(a.status, 200, "{size} bytes");
        assert_eq!(
            a.json()["result"]["content"][0]["text"].as_str().unwrap(),
            message,
            "{size} bytes changed on the way"
        );
    }
}

/// Read an SSE response event by event, with the time each event arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events_pass_one_by_one() {
    let edge = start(&[]).await;
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"progress","arguments":{"steps":5,"interval_ms":200},"_meta":{"progressToken":"p"}}});
    let response = client()
        .post(&edge.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = events(response).await;
    assert_eq!(events.len(), 6, "5 progress notifications and the result");
    let first = events[0].0;
    let fifth = events[4].0;
    // Buffering would deliver everything at once; produced 200 ms apart, the spread must show.
    assert!(
        fifth.duration_since(first) >= Duration::from_millis(600),
        "events arrived together: {:?}",
        fifth.duration_since(first)
    );
    for pair in events[..5].windows(2) {
        assert!(
            pair[1].0.duration_since(pair[0].0) >= Duration::from_millis(100),
            "two events arrived together"
        );
    }
    assert_eq!(
        events[5].1["result"]["content"][0]["text"],
        "completed 5 steps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_the_replica_running_the_request() {
    let edge = start(&[]).await;
    let token = open_session(&edge, "2025-06-18").await;
    let mut streams = Vec::new();
    for id in 1..=3u64 {
        let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"progress","arguments":{"steps":30,"interval_ms":100},"_meta":{"progressToken":id}}});
        let mut response = client()
            .post(&edge.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &token)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let owner = response.headers()["x-served-by"]
            .to_str()
            .unwrap()
            .to_owned();
        // The first event proves the stream is open at the replica (and at the edge).
        assert!(response.chunk().await.unwrap().is_some());
        streams.push((id, owner, response));
    }
    let owners: std::collections::HashSet<&str> = streams.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(owners.len(), 3, "three streams, three replicas");
    for (id, owner, _) in &streams {
        // Round robin would send three cancels to three consecutive replicas; each must reach its owner.
        for _ in 0..2 {
            let cancel = json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":id,"reason":"test"}});
            let a = post(
                &edge.url,
                &[JSON, BOTH, ("mcp-session-id", &token)],
                cancel.to_string(),
            )
            .await;
            assert_eq!(a.status, 202, "{}", a.body);
            assert_eq!(&a.served_by(), owner, "cancel for request {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_move_on_and_no_replica_means_503() {
    let dead = free_port();
    let live = start(&[]).await;
    let (_, base) = &live.replicas[0];
    let edge = start(&[
        "--backend",
        &format!("http://127.0.0.1:{dead}/mcp"),
        "--backend",
        &format!("{base}/mcp"),
    ])
    .await;
    for i in 0..6 {
        let a = post(
            &edge.url,
            &[JSON, BOTH],
            call(i, "echo", json!({"message":"x"})),
        )
        .await;
        assert_eq!(
            a.status, 200,
            "a failed connect must move to the next replica: {}",
            a.body
        );
    }
    let none = start(&["--backend", &format!("http://127.0.0.1:{dead}/mcp")]).await;
    // Once the health check has seen the only replica fail, readiness and requests say so.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client()
        .get(format!("{}/readyz", none.admin))
        .send()
        .await
        .unwrap()
        .status()
        != 503
    {
        assert!(
            Instant::now() < deadline,
            "readiness never reported the dead replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = post(
        &none.url,
        &[JSON, BOTH],
        call(7, "echo", json!({"message":"x"})),
    )
    .await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.json()["id"], 7);
    a.error_code();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_closes_the_replicas_stream() {
    let edge = start(&[]).await;
    let open = |edge: &Edge| {
        let urls: Vec<String> = edge
            .replicas
            .iter()
            .map(|(_, base)| format!("{base}/stats"))
            .collect();
        async move {
            let mut n = 0;
            for url in urls {
                n += get_json(&url).await["open_streams"].as_u64().unwrap();
            }
            n
        }
    };
    // 100 steps 50 ms apart: left alone, the stream would run for 5 s.
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"progress","arguments":{"steps":100,"interval_ms":50},"_meta":{"progressToken":"p"}}});
    let mut response = client()
        .post(&edge.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(response.chunk().await.unwrap().is_some());
    assert_eq!(open(&edge).await, 1, "the replica holds the stream");
    drop(response);
    let deadline = Instant::now() + Duration::from_secs(2);
    while open(&edge).await != 0 {
        assert!(
            Instant::now() < deadline,
            "the replica's stream outlived its client: not closed by mcp-edge"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A minimal replica that streams the way stateful MCP servers do: its tool call answers over
/// SSE with an event id and a server→client request, it records the client's answers, and a
/// GET with Last-Event-ID resumes (echoing the id it received). The bundled backend is
/// stateless and does neither, so this is how the stream rules are seen end to end.
mod streaming_replica {
    use std::sync::{Arc, Mutex};

    use axum::{Router, extract::State, http::HeaderMap, response::IntoResponse, routing::get};
    use serde_json::{Value, json};

    #[derive(Clone)]
    pub struct Replica {
        pub name: String,
        pub answers: Arc<Mutex<Vec<String>>>,
    }

    fn sse(name: &str, body: String) -> axum::response::Response {
        (
            [("content-type", "text/event-stream"), ("x-served-by", name)],
            body,
        )
            .into_response()
    }

    async fn post(State(r): State<Replica>, body: String) -> axum::response::Response {
        let message: Value = serde_json::from_str(&body).unwrap();
        let served = [("x-served-by", r.name.clone())];
        match message["method"].as_str() {
            Some("initialize") => {
                let result = json!({"jsonrpc":"2.0","id":message["id"],"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"streaming-replica","version":"1"}}});
                (served, axum::Json(result)).into_response()
            }
            Some("tools/call") => {
                let ask = json!({"jsonrpc":"2.0","id":format!("ask-{}", r.name),"method":"sampling/createMessage","params":{"messages":[],"maxTokens":1}});
                let done = json!({"jsonrpc":"2.0","id":message["id"],"result":{"content":[]}});
                sse(
                    &r.name,
                    format!("id: 5\ndata: {ask}\n\nid: 6\ndata: {done}\n\n"),
                )
            }
            Some(_) => (axum::http::StatusCode::ACCEPTED, served).into_response(),
            None => {
                r.answers
                    .lock()
                    .unwrap()
                    .push(message["id"].as_str().unwrap_or_default().to_owned());
                (axum::http::StatusCode::ACCEPTED, served).into_response()
            }
        }
    }

    async fn resume(State(r): State<Replica>, headers: HeaderMap) -> axum::response::Response {
        let last = headers
            .get("last-event-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let note =
            json!({"jsonrpc":"2.0","method":"notifications/message","params":{"resumedFrom":last}});
        sse(&r.name, format!("id: 7\ndata: {note}\n\n"))
    }

    pub async fn start(name: &str) -> (Replica, String) {
        let replica = Replica {
            name: name.to_owned(),
            answers: Arc::default(),
        };
        let app = Router::new()
            .route("/mcp", axum::routing::post(post).get(resume))
            .route("/readyz", get(|| async { "ok" }))
            .with_state(replica.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (replica, url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_resumptions_go_back_to_the_streams_replica() {
    let mut replicas = Vec::new();
    let mut args = Vec::new();
    for name in ["s1", "s2", "s3"] {
        let (replica, url) = streaming_replica::start(name).await;
        replicas.push(replica);
        args.push("--backend".to_owned());
        args.push(url);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let edge = start(&args).await;
    let init = post(&edge.url, &[JSON, BOTH], initialize("2025-06-18")).await;
    let token = init.session().expect("a minted session");
    for round in 1..=3u64 {
        let call = post(
            &edge.url,
            &[JSON, BOTH, ("mcp-session-id", &token)],
            call(round, "anything", json!({})),
        )
        .await;
        assert_eq!(call.status, 200);
        let owner = call.served_by();
        // Event ids come back as <replica>/<id> (the edge's replica id); the question passes.
        let event_id = call
            .body
            .lines()
            .find_map(|l| l.strip_prefix("id: "))
            .unwrap()
            .to_owned();
        let (prefix, original) = event_id.split_once('/').unwrap();
        assert_eq!(original, "5");
        assert!(
            edge.replicas.iter().any(|(id, _)| id == prefix),
            "{prefix} is not a replica id"
        );
        assert!(call.body.contains(r#""method":"sampling/createMessage""#));
        assert!(
            call.body
                .contains(&format!(r#""id":{round},"jsonrpc":"2.0","result""#)),
            "the stream arrived whole: {}",
            call.body
        );
        let replica_name = call
            .body
            .split("\"ask-")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(
            replica_name, owner,
            "the question came from the replica that served the call"
        );
        // The client's answer goes to the replica that asked, whatever round robin would say.
        let answer = json!({"jsonrpc":"2.0","id":format!("ask-{replica_name}"),"result":{"role":"assistant","content":{"type":"text","text":"ok"}}});
        let a = post(
            &edge.url,
            &[JSON, BOTH, ("mcp-session-id", &token)],
            answer.to_string(),
        )
        .await;
        assert_eq!(a.status, 202, "{}", a.body);
        assert_eq!(
            a.served_by(),
            owner,
            "round {round}: the answer went elsewhere"
        );
        let asked = replicas.iter().find(|r| r.name == replica_name).unwrap();
        assert_eq!(
            asked.answers.lock().unwrap().last().map(String::as_str),
            Some(format!("ask-{replica_name}").as_str())
        );
        // A resumption with the rewritten id goes to the same replica, with its own id restored.
        let resumed = send(
            reqwest::Method::GET,
            &edge.url,
            &[
                ("mcp-session-id", &token),
                ("last-event-id", &event_id),
                ("accept", "text/event-stream"),
            ],
            "",
        )
        .await;
        assert_eq!(resumed.status, 200, "{}", resumed.body);
        assert_eq!(resumed.served_by(), owner);
        assert!(
            resumed.body.contains(r#""resumedFrom":"5""#),
            "{}",
            resumed.body
        );
    }
    // Resuming from a replica that is not in the set cannot be served by another.
    let gone = send(
        reqwest::Method::GET,
        &edge.url,
        &[
            ("mcp-session-id", &token),
            ("last-event-id", "127.0.0.1:1/5"),
        ],
        "",
    )
    .await;
    assert_eq!(gone.status, 404, "{}", gone.body);
}

#[test]
fn help_groups_every_flag_as_the_configuration_guide_does() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-edge"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for env in ["MCP_EDGE_BACKENDS", "MCP_EDGE_SESSION_KEY_FILE"] {
        assert!(help.contains(env), "--help lacks {env}");
    }
    // --help: "Heading:" lines, then "  --flag ..." lines (the first word of an option line).
    let mut in_help: Vec<(String, String)> = Vec::new();
    let mut heading = String::new();
    for line in help.lines() {
        if let Some(h) = line.strip_suffix(':').filter(|h| !h.starts_with(' ')) {
            heading = h.to_owned();
        } else if let Some(flag) = line.trim_start().strip_prefix("--") {
            let flag = flag.split([' ', '=', '<']).next().unwrap_or("");
            if !["help", "version"].contains(&flag) {
                in_help.push((heading.clone(), flag.to_owned()));
            }
        }
    }
    // docs/configuration.md: "### Heading", then table rows starting "| `--flag`".
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap();
    let mut in_guide: Vec<(String, String)> = Vec::new();
    let mut heading = String::new();
    for line in guide.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            heading = h.to_owned();
        } else if let Some(row) = line.strip_prefix("| `--") {
            let flag = row.split('`').next().unwrap_or("");
            in_guide.push((heading.clone(), flag.to_owned()));
        }
    }
    assert!(in_help.len() > 40, "{in_help:?}");
    assert_eq!(
        in_guide, in_help,
        "docs/configuration.md lists the flags, in --help's groups and order"
    );
}

/// Legacy sessions live in sealed tokens: any process with the key serves them, nothing else
/// does, and a DELETE reaches the peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_live_in_their_tokens() {
    use mcp_edge::session::{Keys, Profile, Sessions, unix_now};
    let key = "5a".repeat(32);
    let (a_admin, b_admin) = (free_port(), free_port());
    let a = start_on(
        free_port(),
        a_admin,
        &[
            "--session-key",
            &key,
            "--peer",
            &format!("127.0.0.1:{b_admin}"),
        ],
    )
    .await;
    let b = start_on(
        free_port(),
        b_admin,
        &[
            "--session-key",
            &key,
            "--peer",
            &format!("localhost:{a_admin}"),
        ],
    )
    .await;
    let call_on = |edge: &Edge, token: &str, id: u64| {
        let (url, token) = (edge.url.clone(), token.to_owned());
        async move {
            post(
                &url,
                &[JSON, BOTH, ("mcp-session-id", &token)],
                call(id, "echo", json!({"message": "hi"})),
            )
            .await
        }
    };

    // One client alternating between two processes: the session simply continues.
    let token = open_session(&a, "2025-06-18").await;
    for i in 1..=6 {
        let answer = call_on(if i % 2 == 0 { &a } else { &b }, &token, i).await;
        assert_eq!(answer.status, 200, "call {i}: {}", answer.body);
        assert_eq!(answer.session().as_deref(), Some(token.as_str()));
    }

    // A process started later (a restart) serves it too; so does one rotated to a new key.
    let later = start(&["--session-key", &key]).await;
    assert_eq!(call_on(&later, &token, 7).await.status, 200);
    let rotated = start(&[
        "--session-key",
        &"6b".repeat(32),
        "--session-key-previous",
        &key,
    ])
    .await;
    assert_eq!(call_on(&rotated, &token, 8).await.status, 200);
    let rotated_token = open_session(&rotated, "2025-06-18").await;
    assert_eq!(
        call_on(&a, &rotated_token, 9).await.status,
        404,
        "the old key does not open the new key's tokens"
    );

    // Foreign, tampered, truncated, expired: 404 with a JSON-RPC error carrying the request id.
    let foreign = start(&["--session-key", &"7c".repeat(32)]).await;
    let mut tampered = token.clone().into_bytes();
    tampered[token.len() / 2] = if tampered[token.len() / 2] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let tampered = String::from_utf8(tampered).unwrap();
    let key_bytes: [u8; 32] = hex::decode(&key).unwrap().try_into().unwrap();
    let minter = Sessions::new(
        Keys::new(&key_bytes, None),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
        1000,
    );
    let (day_old, _) = minter
        .mint_at(
            unix_now() - 25 * 3600,
            "2025-06-18",
            None,
            b"",
            Profile::default(),
        )
        .unwrap();
    let (hour_old, _) = minter
        .mint_at(
            unix_now() - 3600,
            "2025-06-18",
            None,
            b"",
            Profile::default(),
        )
        .unwrap();
    let before = total_requests(&a).await;
    for (edge, bad, what) in [
        (&foreign, token.as_str(), "a foreign key"),
        (&a, tampered.as_str(), "tampered"),
        (&a, &token[..token.len() - 3], "truncated"),
        (&a, "0123456789abcdef", "not a token"),
        (&a, day_old.as_str(), "past the default 24 h lifetime"),
    ] {
        let answer = call_on(edge, bad, 42).await;
        assert_eq!(answer.status, 404, "{what}: {}", answer.body);
        assert_eq!(
            (answer.json()["id"].as_u64(), answer.error_code()),
            (Some(42), -32600),
            "{what}"
        );
        assert!(
            answer.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("initialize"),
            "{what}"
        );
    }
    assert_eq!(
        total_requests(&a).await,
        before,
        "no replica saw a refused token"
    );
    assert_eq!(
        call_on(&b, &hour_old, 10).await.status,
        200,
        "within the default lifetime"
    );
    let short = start(&["--session-key", &key, "--session-lifetime-seconds", "1800"]).await;
    assert_eq!(
        call_on(&short, &hour_old, 11).await.status,
        404,
        "past a configured lifetime"
    );

    // DELETE ends the session on this process at once, and on its peer soon after.
    let token = open_session(&b, "2025-06-18").await;
    assert_eq!(call_on(&a, &token, 12).await.status, 200);
    let delete = delete_session(&b.url, &token).await;
    assert_eq!(delete.status, 200);
    assert_eq!(
        call_on(&b, &token, 13).await.status,
        404,
        "deleted on this process"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while call_on(&a, &token, 14).await.status != 404 {
        assert!(
            Instant::now() < deadline,
            "the peer never learned of the DELETE"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What holds without a peer link: a process that was not told still serves the session
    // until its lifetime ends (docs/routing.md, "Sessions").
    assert_eq!(call_on(&later, &token, 15).await.status, 200);
}

/// `mcp-edge health` and `mcp-backend health`: the container health checks, without curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_subcommands_report_readiness() {
    let edge = start(&[]).await;
    let admin_addr = edge.admin.trim_start_matches("http://").to_owned();
    let health = |bin: std::path::PathBuf, env: (&str, &str)| {
        Command::new(bin)
            .arg("health")
            .env(env.0, env.1)
            .output()
            .unwrap()
    };
    let ok = health(
        env!("CARGO_BIN_EXE_mcp-edge").into(),
        ("MCP_EDGE_ADMIN_LISTEN", &admin_addr),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let dead = format!("127.0.0.1:{}", free_port());
    assert_eq!(
        health(
            env!("CARGO_BIN_EXE_mcp-edge").into(),
            ("MCP_EDGE_ADMIN_LISTEN", &dead)
        )
        .status
        .code(),
        Some(1)
    );
    let replica = edge.replicas[0].1.trim_start_matches("http://").to_owned();
    assert!(
        health(backend_bin(), ("MCP_BACKEND_LISTEN", &replica))
            .status
            .success()
    );
    assert_eq!(
        health(backend_bin(), ("MCP_BACKEND_LISTEN", &dead))
            .status
            .code(),
        Some(1)
    );
}

/// Bearer tokens: 401 with a challenge and a JSON-RPC error before any replica sees the request;
/// a session answers only to the token that opened it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_guard_the_endpoint_and_bind_sessions() {
    let (a, b) = ("token-a-0123456789abcdef", "token-b-0123456789abcdef");
    let edge = start(&["--auth-tokens", &format!("{a},{b}")]).await;
    let before = total_requests(&edge).await;
    for (header, what) in [
        (None, "no token"),
        (Some("Bearer wrong-wrong-wrong-wrong"), "a wrong token"),
        (Some("Basic dXNlcjpwYXNz"), "another scheme"),
    ] {
        let mut headers = vec![JSON, BOTH];
        if let Some(h) = header {
            headers.push(("authorization", h));
        }
        let answer = post(
            &edge.url,
            &headers,
            call(5, "echo", json!({"message": "hi"})),
        )
        .await;
        assert_eq!(answer.status, 401, "{what}");
        assert!(
            answer.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer realm=\"mcp-edge\""),
            "{what}"
        );
        assert_eq!(answer.error_code(), -32600, "{what}");
        assert!(
            answer.json()["id"].is_null(),
            "the body of an unauthenticated request is not read: {what}"
        );
    }
    assert_eq!(
        total_requests(&edge).await,
        before,
        "no replica saw an unauthenticated request"
    );

    let bearer_a = format!("Bearer {a}");
    let bearer_b = format!("Bearer {b}");
    let init = post(
        &edge.url,
        &[JSON, BOTH, ("authorization", &bearer_a)],
        initialize("2025-06-18"),
    )
    .await;
    assert_eq!(init.status, 200, "{}", init.body);
    let token = init.session().unwrap();
    let with = |bearer: &str| {
        let (url, bearer, token) = (edge.url.clone(), bearer.to_owned(), token.clone());
        async move {
            post(
                &url,
                &[
                    JSON,
                    BOTH,
                    ("authorization", &bearer),
                    ("mcp-session-id", &token),
                ],
                call(6, "echo", json!({"message": "hi"})),
            )
            .await
        }
    };
    assert_eq!(with(&bearer_a).await.status, 200);
    assert_eq!(
        with(&bearer_b).await.status,
        404,
        "a session opened with A is not B's"
    );
    let admin = client()
        .get(format!("{}/readyz", edge.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200, "health endpoints need no token");
}

/// CORS (mcp_protocol::cors's table): a page of an allowed origin gets its preflight answered
/// at the edge without a token, and can read every answer — the 401's challenge and the
/// session id included; another origin is refused with no CORS header; requests without
/// Origin get none; no replica sees a preflight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_an_allowed_origin_is_answered_its_preflight_and_reads_every_answer() {
    let token = "token-cors-0123456789abcdef";
    let edge = start(&[
        "--allowed-origins",
        "https://app.example",
        "--auth-tokens",
        token,
    ])
    .await;
    let before = total_requests(&edge).await;
    let page = ("origin", "https://app.example");
    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());
    let header = |answer: &Answer, name: &str| {
        answer
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let options = reqwest::Method::OPTIONS;

    let preflight = send(
        options.clone(),
        &edge.url,
        &[
            page,
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type, authorization, mcp-session-id, mcp-protocol-version, x-other",
            ),
        ],
        "",
    )
    .await;
    assert_eq!(preflight.status, 204, "{}", preflight.body);
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        "https://app.example"
    );
    assert!(header(&preflight, "access-control-allow-methods").contains("POST"));
    assert_eq!(
        header(&preflight, "access-control-allow-headers"),
        "content-type, authorization, mcp-session-id, mcp-protocol-version",
        "x-other is not one of Streamable HTTP's headers"
    );
    assert_eq!(header(&preflight, "access-control-max-age"), "600");
    assert!(header(&preflight, "vary").contains("Origin"));

    let denied = post(&edge.url, &[JSON, BOTH, page], initialize("2025-06-18")).await;
    assert_eq!(denied.status, 401);
    assert_eq!(
        header(&denied, "access-control-allow-origin"),
        "https://app.example"
    );
    assert!(header(&denied, "access-control-expose-headers").contains("WWW-Authenticate"));
    assert_eq!(
        total_requests(&edge).await,
        before,
        "no replica saw the preflight or the unauthenticated request"
    );

    let opened = post(
        &edge.url,
        &[JSON, BOTH, page, auth],
        initialize("2025-06-18"),
    )
    .await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert!(opened.session().is_some());
    assert_eq!(
        header(&opened, "access-control-allow-origin"),
        "https://app.example"
    );
    assert!(header(&opened, "access-control-expose-headers").contains("Mcp-Session-Id"));
    assert!(header(&opened, "vary").contains("Origin"));
    // A streamed answer (the session's GET stream) and an answer made at the path check too.
    let session = opened.session().unwrap();
    let stream = client()
        .get(&edge.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header(page.0, page.1)
        .header(auth.0, auth.1)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    drop(stream);
    let elsewhere = post(
        &edge.url.replace("/mcp", "/other"),
        &[JSON, BOTH, page, auth],
        "{}",
    )
    .await;
    assert_eq!(elsewhere.status, 404);
    assert_eq!(
        header(&elsewhere, "access-control-allow-origin"),
        "https://app.example"
    );

    let before = total_requests(&edge).await;
    let other = ("origin", "https://evil.example");
    let refused = send(
        options.clone(),
        &edge.url,
        &[other, ("access-control-request-method", "POST")],
        "",
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(refused.headers.get("access-control-allow-origin").is_none());
    assert!(
        !refused.body.contains("app.example"),
        "a preflight, before the token check, is not told the list: {}",
        refused.body
    );
    let refused = post(
        &edge.url,
        &[JSON, BOTH, other, auth],
        initialize("2025-06-18"),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(refused.headers.get("access-control-allow-origin").is_none());

    let plain = send(options, &edge.url, &[], "").await;
    assert_eq!(plain.status, 204);
    assert_eq!(header(&plain, "allow"), "GET, POST, DELETE, OPTIONS");
    assert!(
        plain.headers.get("content-length").is_none(),
        "a 204 says no length"
    );
    assert_eq!(
        total_requests(&edge).await,
        before,
        "no replica saw a refused origin or an OPTIONS"
    );
    let no_origin = post(&edge.url, &[JSON, BOTH, auth], initialize("2025-06-18")).await;
    assert_eq!(no_origin.status, 200);
    assert!(
        no_origin
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );
}
