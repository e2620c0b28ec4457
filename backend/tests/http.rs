//! The backend over real HTTP on loopback: the seed's request shape, both eras, every rejection
//! with its status and JSON-RPC error, operations endpoints, and the graceful drain.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use mcp_backend::Config;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Replica {
    url: String,
    base: String,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn replica(id: &str) -> Replica {
    let mut config = Config::embedded(id);
    config.grace_seconds = 5.0;
    config.conformance_fixtures = true;
    let stop = CancellationToken::new();
    let (addr, handle) = mcp_backend::spawn(config, stop.clone()).await.unwrap();
    Replica {
        url: format!("http://{addr}/mcp"),
        base: format!("http://{addr}"),
        stop,
        handle,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client().post(url).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

const JSON: (&str, &str) = ("content-type", "application/json");
const ACCEPT_JSON: (&str, &str) = ("accept", "application/json");
const ACCEPT_BOTH: (&str, &str) = ("accept", "application/json, text/event-stream");

fn echo_call(id: u64) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello","repeat":2}}}).to_string()
}

fn error_of(body: &str) -> (i64, String, Value) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(v["jsonrpc"], "2.0", "{body}");
    (
        v["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no error code: {body}")),
        v["error"]["message"].as_str().unwrap().to_owned(),
        v["id"].clone(),
    )
}

#[tokio::test]
async fn seed_request_shape_gets_json() {
    let r = replica("seed").await;
    // Exactly what the template's load test sends: JSON-only Accept, no protocol version header.
    let (status, headers, body) = post(&r.url, &[JSON, ACCEPT_JSON], echo_call(1)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-served-by"], "seed");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["content"][0]["text"], "hello\nhello");
    assert_eq!(v["result"]["isError"], false);
    assert!(
        headers.get("mcp-session-id").is_none(),
        "a stateless server never mints a session"
    );
}

#[tokio::test]
async fn echo_tool_errors_are_results_with_is_error() {
    let r = replica("r").await;
    for (args, needle) in [
        (json!({"message": ""}), "must not be empty"),
        (json!({"message": "x", "repeat": 11}), "between 1 and 10"),
        (json!({"message": "x", "repeat": 0}), "between 1 and 10"),
    ] {
        let body = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":args}});
        let (status, _, text) = post(&r.url, &[JSON, ACCEPT_JSON], body.to_string()).await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["result"]["isError"], true, "{text}");
        assert!(
            v["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{text}"
        );
    }
}

#[tokio::test]
async fn legacy_initialize_is_answered_but_not_required() {
    let r = replica("r").await;
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let (status, headers, body) = post(&r.url, &[JSON, ACCEPT_BOTH], init.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.get("mcp-session-id").is_none());
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(v["result"]["serverInfo"]["name"], "mcp-backend");
    // No initialize first: a call with a legacy version header still works.
    let (status, _, body) = post(
        &r.url,
        &[JSON, ACCEPT_BOTH, ("mcp-protocol-version", "2025-11-25")],
        echo_call(2),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The initialized notification is accepted with 202 and no body.
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let (status, _, body) = post(&r.url, &[JSON, ACCEPT_BOTH], note.to_string()).await;
    assert_eq!((status, body.as_str()), (202, ""));
}

fn modern(method: &str, params: Value) -> String {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc":"2.0","id":9,"method":method,"params":params}).to_string()
}

#[tokio::test]
async fn modern_discover_and_call() {
    let r = replica("r").await;
    let v26 = ("mcp-protocol-version", "2026-07-28");
    let (status, _, body) = post(
        &r.url,
        &[JSON, ACCEPT_BOTH, v26, ("mcp-method", "server/discover")],
        modern("server/discover", json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let versions = v["result"]["supportedVersions"].as_array().unwrap();
    assert!(versions.contains(&json!("2026-07-28")) && versions.contains(&json!("2025-03-26")));
    let call = modern(
        "tools/call",
        json!({"name":"echo","arguments":{"message":"m"}}),
    );
    let (status, _, body) = post(
        &r.url,
        &[
            JSON,
            ACCEPT_BOTH,
            v26,
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        call.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""text":"m""#), "{body}");
    // Header and body disagree: 400 / -32020 before the tool runs.
    let (status, _, body) = post(
        &r.url,
        &[
            JSON,
            ACCEPT_BOTH,
            v26,
            ("mcp-method", "tools/call"),
            ("mcp-name", "other"),
        ],
        call,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_of(&body).0, -32020);
}

#[tokio::test]
async fn every_bad_input_gets_its_status_and_a_jsonrpc_error() {
    let r = replica("r").await;
    // Malformed JSON → 400 / -32700.
    let (status, _, body) = post(&r.url, &[JSON], "{\"jsonrpc\":").await;
    assert_eq!((status, error_of(&body).0), (400, -32700), "{body}");
    // Invalid UTF-8 → 400 / -32700 with a message saying so.
    let (status, _, body) = post(&r.url, &[JSON], vec![b'{', 0xff, 0xfe, b'}']).await;
    let (code, message, _) = error_of(&body);
    assert_eq!((status, code), (400, -32700));
    assert!(message.contains("UTF-8"), "{message}");
    // Wrong content type → 415.
    let (status, _, body) = post(&r.url, &[("content-type", "text/plain")], echo_call(1)).await;
    assert_eq!(status, 415);
    assert!(error_of(&body).1.contains("application/json"));
    // Missing content type → 415.
    let (status, _, _) = post(&r.url, &[], echo_call(1)).await;
    assert_eq!(status, 415);
    // Accept allowing neither JSON nor SSE → 406.
    let (status, _, body) = post(&r.url, &[JSON, ("accept", "text/html")], echo_call(1)).await;
    assert_eq!(status, 406);
    error_of(&body);
    // Unsupported protocol version → 400 / -32022 with data.supported, id kept.
    let (status, _, body) = post(
        &r.url,
        &[JSON, ("mcp-protocol-version", "1999-01-01")],
        echo_call(41),
    )
    .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32022);
    assert_eq!(v["id"], 41);
    assert_eq!(v["error"]["data"]["requested"], "1999-01-01");
    assert!(
        v["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-06-18"))
    );
    // Body over the limit (4 MiB default) → 413.
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}",
        "a".repeat(4 * 1024 * 1024)
    );
    let (status, _, body) = post(&r.url, &[JSON], big).await;
    assert_eq!(status, 413);
    assert!(error_of(&body).1.contains("4194304"));
    // Origin not allowed → 403.
    let (status, _, body) = post(
        &r.url,
        &[JSON, ("origin", "http://evil.example.com")],
        echo_call(1),
    )
    .await;
    assert_eq!(status, 403);
    assert!(error_of(&body).1.contains("evil.example.com"));
    // A loopback origin is fine.
    let (status, _, _) = post(
        &r.url,
        &[JSON, ("origin", "http://localhost:3000")],
        echo_call(1),
    )
    .await;
    assert_eq!(status, 200);
    // Unknown method → a JSON-RPC error, not a crash.
    let (status, _, body) = post(
        &r.url,
        &[JSON, ACCEPT_BOTH],
        r#"{"jsonrpc":"2.0","id":5,"method":"no/such"}"#,
    )
    .await;
    assert!(status == 200 || status == 404, "{status} {body}");
    assert_eq!(error_of(&body).0, -32601);
    // A batch outside 2025-03-26 → 400.
    let (status, _, body) = post(
        &r.url,
        &[JSON, ("mcp-protocol-version", "2025-06-18")],
        format!("[{}]", echo_call(1)),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_of(&body).1.contains("2025-03-26"));
}

#[tokio::test]
async fn batches_are_answered_in_2025_03_26() {
    let r = replica("r").await;
    let batch = format!(
        "[{},{},{}]",
        echo_call(1),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        echo_call(2)
    );
    let (status, _, body) = post(&r.url, &[JSON, ACCEPT_JSON], batch).await;
    assert_eq!(status, 200, "{body}");
    let answers: Vec<Value> = serde_json::from_str(&body).unwrap();
    let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(2)], "{body}");
    let notes = r#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
    let (status, _, body) = post(&r.url, &[JSON], notes).await;
    assert_eq!((status, body.as_str()), (202, ""));
}

#[tokio::test]
async fn get_and_delete_are_405_with_allow() {
    let r = replica("r").await;
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response = client()
            .request(method.clone(), &r.url)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "POST");
        assert_eq!(response.headers()["x-served-by"], "r");
        error_of(&response.text().await.unwrap());
    }
}

#[tokio::test]
async fn progress_streams_over_sse_and_collapses_for_json_only_clients() {
    let r = replica("r").await;
    let call = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"progress","arguments":{"steps":3,"interval_ms":5},"_meta":{"progressToken":"p"}}}).to_string();
    let (status, headers, body) = post(&r.url, &[JSON, ACCEPT_BOTH], call.clone()).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(body.matches("notifications/progress").count(), 3, "{body}");
    assert!(body.contains("completed 3 steps"));
    let (status, headers, body) = post(&r.url, &[JSON, ACCEPT_JSON], call).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "completed 3 steps");
}

#[tokio::test]
async fn payload_returns_exact_size() {
    let r = replica("r").await;
    let call = json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"payload","arguments":{"bytes":100000}}}).to_string();
    let (_, _, body) = post(&r.url, &[JSON, ACCEPT_JSON], call).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["result"]["content"][0]["text"].as_str().unwrap().len(),
        100_000
    );
}

#[tokio::test]
async fn operations_endpoints() {
    let r = replica("ops").await;
    let health = client()
        .get(format!("{}/healthz", r.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = client()
        .get(format!("{}/readyz", r.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let version: Value = client()
        .get(format!("{}/version", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["name"], "mcp-backend");
    assert_eq!(version["replica_id"], "ops");
    assert_eq!(
        version["protocol_versions"],
        json!(["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"])
    );
    let stats: Value = client()
        .get(format!("{}/stats", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["mcp_requests"], 0);
    post(&r.url, &[JSON, ACCEPT_JSON], echo_call(1)).await;
    let stats: Value = client()
        .get(format!("{}/stats", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["mcp_requests"], 1);
    let missing = client()
        .get(format!("{}/nope", r.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn request_state_opens_on_another_replica_with_the_same_key() {
    let key = "11".repeat(32);
    let mut urls = Vec::new();
    for id in ["a", "b"] {
        let mut config = Config::embedded(id);
        config.state_key = Some(key.clone());
        config.conformance_fixtures = true;
        let (addr, _) = mcp_backend::spawn(config, CancellationToken::new())
            .await
            .unwrap();
        urls.push(format!("http://{addr}/mcp"));
    }
    let v26 = ("mcp-protocol-version", "2026-07-28");
    let hdrs = [
        JSON,
        ACCEPT_BOTH,
        v26,
        ("mcp-method", "tools/call"),
        ("mcp-name", "test_input_required_result_request_state"),
    ];
    let first = modern(
        "tools/call",
        json!({"name":"test_input_required_result_request_state","arguments":{}}),
    );
    let (_, _, body) = post(&urls[0], &hdrs, first).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"]["resultType"], "input_required", "{body}");
    let state = v["result"]["requestState"].as_str().unwrap().to_owned();
    let retry = modern(
        "tools/call",
        json!({"name":"test_input_required_result_request_state","arguments":{},
               "inputResponses":{"confirm":{"action":"accept","content":{"ok":true}}},"requestState":state}),
    );
    let (_, _, body) = post(&urls[1], &hdrs, retry).await;
    assert!(
        body.contains("state-ok"),
        "retry on the other replica failed: {body}"
    );
}

/// Start a `progress` call over SSE and return once its first event arrived: from then on the
/// request is provably inside the handler. The caller reads the rest of the stream.
async fn start_streaming_call(url: &str) -> reqwest::Response {
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"progress","arguments":{"steps":5,"interval_ms":100},"_meta":{"progressToken":"d"}}});
    let mut response = client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().expect("a first SSE event");
    assert!(String::from_utf8_lossy(&first).contains("notifications/progress"));
    response
}

async fn rest_of(mut response: reqwest::Response) -> String {
    let mut text = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn drain_finishes_in_flight_requests_and_refuses_new_connections() {
    let r = replica("drain").await;
    let addr = r.base.trim_start_matches("http://").to_owned();
    let stream = start_streaming_call(&r.url).await;
    r.stop.cancel();
    let refused_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpStream::connect(&addr).await {
            Err(_) => break,
            Ok(_) if Instant::now() > refused_deadline => {
                panic!("listener still accepting after stop")
            }
            Ok(_) => tokio::task::yield_now().await,
        }
    }
    let rest = rest_of(stream).await;
    assert!(
        rest.contains("completed 5 steps"),
        "in-flight stream must finish: {rest}"
    );
    tokio::time::timeout(Duration::from_secs(5), r.handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn draining_replica_reports_not_ready() {
    use tower::ServiceExt;
    let readiness = mcp_backend::http::Readiness::default();
    let app = mcp_backend::http::router(
        mcp_backend::Backend::new("r", None, mcp_backend::catalog::Catalog::Template),
        mcp_backend::http::HttpOptions {
            replica_id: "r".into(),
            body_limit: 1024,
            allowed_origins: vec![],
            readiness: readiness.clone(),
            streams: CancellationToken::new(),
        },
    );
    let get = || {
        http::Request::get("/readyz")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    assert_eq!(app.clone().oneshot(get()).await.unwrap().status(), 200);
    readiness.drain();
    assert_eq!(app.oneshot(get()).await.unwrap().status(), 503);
}

#[test]
fn binary_help_documents_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-backend"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--replica-id",
        "--body-limit",
        "--grace-seconds",
        "--allowed-origins",
        "--state-key",
        "MCP_BACKEND_LISTEN",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn binary_exits_zero_on_sigterm_after_finishing_in_flight_work() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-backend"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--replica-id",
            "term",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while client()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "backend did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stream = start_streaming_call(&url).await;
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let rest = rest_of(stream).await;
        assert!(
            rest.contains("completed 5 steps"),
            "in-flight stream must finish: {rest}"
        );
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "backend did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}
