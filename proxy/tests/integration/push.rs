//! Server push over stateless replicas, byte by byte with a raw client: a 2026-07-28 listen
//! and a legacy GET stream fed by one listen per replica per mcp-edge process, changes on
//! every replica reaching every listener, resource subscriptions across processes, replicas
//! that die and join, and shutdown.

use serde_json::{Value, json};

use crate::common::*;

const MODERN: &str = "2026-07-28";
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

fn meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}})
}

/// Open a 2026-07-28 listen with `filter` at `url`.
pub(crate) async fn listen(url: &str, id: Value, filter: Value) -> Stream {
    let body = json!({"jsonrpc":"2.0","id":id,"method":"subscriptions/listen","params":{"_meta":meta(),"notifications":filter}});
    let response = client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    Stream::from(response)
}

/// Open a legacy session's GET stream.
async fn get_stream(url: &str, token: &str) -> Stream {
    let response = client()
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    Stream::from(response)
}

/// Run conformance tool `tool` on the replica at `base` (its own URL: the change happens there).
async fn trigger(base: &str, tool: &str, args: Value) {
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":args,"_meta":meta()}});
    let a = post(
        &format!("{base}/mcp"),
        &[
            JSON,
            BOTH,
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", tool),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

pub(crate) async fn legacy_session(edge: &Edge) -> String {
    open_session(edge, "2025-11-25").await
}

pub(crate) async fn subscribe(url: &str, token: &str, method: &str, uri: &str) -> Answer {
    let body = json!({"jsonrpc":"2.0","id":5,"method":method,"params":{"uri":uri}});
    post(
        url,
        &[JSON, BOTH, ("mcp-session-id", token)],
        body.to_string(),
    )
    .await
}

/// The replica's `/stats` field `open_streams` (its listen streams among them).
async fn open_streams(base: &str) -> u64 {
    get_json(&format!("{base}/stats")).await["open_streams"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_is_acknowledged_for_every_replica_and_hears_a_change_on_each_of_them() {
    let edge = start(&[]).await;
    let mut stream = listen(
        &edge.url,
        json!("l-1"),
        json!({"toolsListChanged": true, "promptsListChanged": true, "resourceSubscriptions": ["test://watched-resource"]}),
    )
    .await;
    assert_eq!(stream.header("x-accel-buffering"), "no");
    let ack = stream.next().await.expect("the acknowledgement");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], "l-1");
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "promptsListChanged": true, "resourceSubscriptions": ["test://watched-resource"]})
    );
    // Right after the acknowledgement, a change on each replica in turn reaches the stream.
    for (_, base) in &edge.replicas {
        trigger(base, "test_trigger_tool_change", json!({})).await;
        let note = stream.next().await.expect("the change");
        assert_eq!(note["method"], "notifications/tools/list_changed");
        assert_eq!(note["params"]["_meta"][SUBSCRIPTION_ID], "l-1");
    }
    trigger(
        &edge.replicas[1].1,
        "test_trigger_resource_update",
        json!({}),
    )
    .await;
    let note = stream.next().await.expect("the update");
    assert_eq!(note["method"], "notifications/resources/updated");
    assert_eq!(note["params"]["uri"], "test://watched-resource");
    // Nothing it did not ask for: another URI, a resource-list change.
    trigger(
        &edge.replicas[2].1,
        "test_trigger_resource_update",
        json!({"uri": "test://other"}),
    )
    .await;
    trigger(&edge.replicas[0].1, "test_trigger_prompt_change", json!({})).await;
    let next = stream.next().await.expect("the prompt change");
    assert_eq!(
        next["method"], "notifications/prompts/list_changed",
        "{next}"
    );
    // A second listener shares the replicas' streams: still one per replica.
    let mut second = listen(&edge.url, json!(2), json!({"toolsListChanged": true})).await;
    assert_eq!(
        second.next().await.unwrap()["params"]["_meta"][SUBSCRIPTION_ID],
        2
    );
    for (_, base) in &edge.replicas {
        assert_eq!(open_streams(base).await, 1, "one listen stream per replica");
    }
    assert_eq!(
        metric(&edge, "mcp_edge_push_listeners{era=\"2026-07-28\"}").await,
        2.0
    );
    trigger(&edge.replicas[0].1, "test_trigger_tool_change", json!({})).await;
    assert_eq!(
        second.next().await.unwrap()["params"]["_meta"][SUBSCRIPTION_ID],
        2
    );
    assert_eq!(
        stream.next().await.unwrap()["method"],
        "notifications/tools/list_changed"
    );
    // Closing both is their cancel: the replicas' streams close a moment after the last.
    drop((stream, second));
    wait_for(20, "the replicas' listen streams to close", || async {
        let mut open = 0;
        for (_, base) in &edge.replicas {
            open += open_streams(base).await;
        }
        open == 0
    })
    .await;
    assert_eq!(
        metric(&edge, "mcp_edge_push_listeners{era=\"2026-07-28\"}").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_listen_filter_is_400_and_never_reaches_a_replica() {
    let edge = start(&[]).await;
    let before = total_requests(&edge).await;
    for params in [
        json!({"_meta": meta()}),
        json!({"_meta": meta(), "notifications": {"toolsListChanged": "yes"}}),
        json!({"_meta": meta(), "notifications": {"resourceSubscriptions": "test://a"}}),
    ] {
        let body = json!({"jsonrpc":"2.0","id":9,"method":"subscriptions/listen","params":params});
        let a = post(
            &edge.url,
            &[
                JSON,
                BOTH,
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "subscriptions/listen"),
            ],
            body.to_string(),
        )
        .await;
        assert_eq!((a.status, a.error_code()), (400, -32602), "{}", a.body);
        assert_eq!(a.json()["id"], 9);
    }
    assert_eq!(total_requests(&edge).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_get_stream_hears_list_changes_and_the_uris_its_session_subscribed() {
    let edge = start(&[]).await;
    let token = legacy_session(&edge).await;
    let mut stream = get_stream(&edge.url, &token).await;
    assert_eq!(stream.header("x-accel-buffering"), "no");
    let again = send(
        reqwest::Method::GET,
        &edge.url,
        &[("accept", "text/event-stream"), ("mcp-session-id", &token)],
        "",
    )
    .await;
    assert_eq!(
        again.status, 409,
        "one GET stream per session: {}",
        again.body
    );
    let a = subscribe(
        &edge.url,
        &token,
        "resources/subscribe",
        "test://watched-resource",
    )
    .await;
    assert_eq!(
        (a.status, a.json()),
        (200, json!({"jsonrpc":"2.0","id":5,"result":{}}))
    );
    let (r1, r2) = (&edge.replicas[0].1, &edge.replicas[1].1);
    trigger(
        r1,
        "test_trigger_resource_update",
        json!({"uri": "test://other"}),
    )
    .await;
    trigger(r2, "test_trigger_resource_update", json!({})).await;
    let note = stream.next().await.unwrap();
    assert_eq!(
        note,
        json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"test://watched-resource"}}),
        "legacy shape, no subscriptionId; the other URI was not sent"
    );
    trigger(r1, "test_trigger_tool_change", json!({})).await;
    assert_eq!(
        stream.next().await.unwrap(),
        json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"})
    );
    let a = subscribe(
        &edge.url,
        &token,
        "resources/unsubscribe",
        "test://watched-resource",
    )
    .await;
    assert_eq!(a.status, 200);
    trigger(r2, "test_trigger_resource_update", json!({})).await;
    trigger(r2, "test_trigger_prompt_change", json!({})).await;
    assert_eq!(
        stream.next().await.unwrap()["method"],
        "notifications/prompts/list_changed",
        "no update after unsubscribe"
    );
    let bad = subscribe(&edge.url, &token, "resources/subscribe", "").await;
    assert_eq!(bad.error_code(), -32602);
    // DELETE ends the session and its stream.
    assert_eq!(delete_session(&edge.url, &token).await.status, 200);
    assert_eq!(
        stream.next().await,
        None,
        "the stream ends with the session"
    );
    // Without a session a GET is still 405.
    let none = send(
        reqwest::Method::GET,
        &edge.url,
        &[("accept", "text/event-stream")],
        "",
    )
    .await;
    assert_eq!(none.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_at_one_process_reaches_the_get_stream_at_its_peer() {
    let (a, b) = peers().await;
    let token = legacy_session(&a).await;
    let mut stream = get_stream(&a.url, &token).await;
    let answer = subscribe(
        &b.url,
        &token,
        "resources/subscribe",
        "test://watched-resource",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Each process runs its own embedded replicas: the change is made on one of a's.
    trigger(&a.replicas[2].1, "test_trigger_resource_update", json!({})).await;
    let note = stream.next().await.unwrap();
    assert_eq!(note["params"]["uri"], "test://watched-resource", "{note}");
    assert_eq!(
        metric(&a, "mcp_edge_push_resource_subscriptions").await,
        1.0
    );
    assert_eq!(
        metric(&b, "mcp_edge_push_resource_subscriptions").await,
        1.0
    );
    assert_eq!(delete_session(&b.url, &token).await.status, 200);
    assert_eq!(
        stream.next().await,
        None,
        "the DELETE at b ends the stream at a"
    );
    wait_for(5, "the subscription to be forgotten at a", || async {
        metric(&a, "mcp_edge_push_resource_subscriptions").await == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_survive_a_replica_that_dies_and_hear_one_that_joins() {
    let ports: Vec<_> = (0..3).map(|_| free_port()).collect();
    let at = |i: usize| std::net::SocketAddr::from(([127, 0, 0, 1], ports[i]));
    let mut r1 = Backend::spawn("r1", at(0));
    let r2 = Backend::spawn("r2", at(1));
    r1.ready().await;
    r2.ready().await;
    let urls: Vec<String> = (0..3).map(|i| format!("http://{}/mcp", at(i))).collect();
    let args: Vec<&str> = urls
        .iter()
        .flat_map(|u| ["--backend", u.as_str()])
        .collect();
    let edge = start(&args).await;
    let mut modern = listen(&edge.url, json!(1), json!({"toolsListChanged": true})).await;
    assert_eq!(
        modern.next().await.unwrap()["method"],
        "notifications/subscriptions/acknowledged"
    );
    let token = legacy_session(&edge).await;
    let mut legacy = get_stream(&edge.url, &token).await;
    let series = |i: usize| {
        format!(
            "mcp_edge_push_upstream_streams{{replica=\"127.0.0.1:{}\"}}",
            ports[i]
        )
    };
    // The client's acknowledgement needs one replica's listen, not every one: r2's must be
    // open before r2's change is made (a change no listen hears is not replayed). Under a
    // loaded machine it once was not, and the change never came.
    wait_for(20, "r2's upstream listen", || async {
        metric(&edge, &series(1)).await == 1.0
    })
    .await;
    // r1 dies: both streams go on, and r2's changes still arrive.
    r1.kill();
    trigger(
        &format!("http://{}", r2.addr),
        "test_trigger_tool_change",
        json!({}),
    )
    .await;
    assert_eq!(
        modern.next().await.unwrap()["method"],
        "notifications/tools/list_changed"
    );
    assert_eq!(
        legacy.next().await.unwrap()["method"],
        "notifications/tools/list_changed"
    );
    // r3 joins (its first health check passes): one hint per listened type, then its changes.
    let r3 = Backend::spawn("r3", at(2));
    r3.ready().await;
    let hint = modern.next().await.unwrap();
    assert_eq!(
        hint["method"], "notifications/tools/list_changed",
        "the joining replica's hint"
    );
    assert_eq!(hint["params"]["_meta"][SUBSCRIPTION_ID], 1);
    for _ in 0..3 {
        let m = legacy.next().await.unwrap()["method"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(m.ends_with("/list_changed"), "{m}");
    }
    assert_eq!(
        metric(&edge, &series(2)).await,
        1.0,
        "a listen stream held to r3"
    );
    // The new replica's changes: each listener hears its own kind.
    let r3_base = format!("http://{}", r3.addr);
    for (tool, stream, method) in [
        (
            "test_trigger_prompt_change",
            &mut legacy,
            "notifications/prompts/list_changed",
        ),
        (
            "test_trigger_tool_change",
            &mut modern,
            "notifications/tools/list_changed",
        ),
    ] {
        trigger(&r3_base, tool, json!({})).await;
        assert_eq!(stream.next().await.unwrap()["method"], method, "{tool}");
    }
    assert_eq!(metric(&edge, &series(0)).await, 0.0, "none to the dead r1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_listen_with_its_response_and_a_get_stream_cleanly() {
    let mut edge = start(&["--grace-seconds", "5"]).await;
    let mut modern = listen(&edge.url, json!("bye"), json!({"toolsListChanged": true})).await;
    modern.next().await.unwrap();
    let token = legacy_session(&edge).await;
    let mut legacy = get_stream(&edge.url, &token).await;
    unsafe { libc::kill(edge.child.id() as i32, libc::SIGTERM) };
    let end = modern.next().await.expect("the listen's response");
    assert_eq!(end["id"], "bye");
    assert_eq!(end["result"]["resultType"], "complete");
    assert_eq!(end["result"]["_meta"][SUBSCRIPTION_ID], "bye");
    assert_eq!(modern.next().await, None);
    assert_eq!(legacy.next().await, None);
    let status = edge.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
