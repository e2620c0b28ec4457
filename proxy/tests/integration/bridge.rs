//! The cross-era bridge over the embedded (2026-07-28) replicas, byte by byte with a raw
//! client: what a legacy client that declared sampling, elicitation or roots sees, and every
//! way a bridged call can end.

use serde_json::{Value, json};

use crate::common::*;

/// A legacy session whose client declared `capabilities`.
async fn session(edge: &Edge, version: &str, capabilities: Value) -> String {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":version,"capabilities":capabilities,"clientInfo":{"name":"bridge-test","version":"1"}}});
    let a = post(&edge.url, &[JSON, BOTH], init.to_string()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.session().expect("a session")
}

async fn answer(edge: &Edge, token: &str, id: &Value, result: Value) -> Answer {
    let body = json!({"jsonrpc":"2.0","id":id,"result":result});
    post(
        &edge.url,
        &[JSON, BOTH, ("mcp-session-id", token)],
        body.to_string(),
    )
    .await
}

fn tool_call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
}

fn text_of(message: &Value) -> String {
    message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_legacy_client_that_declared_sampling_is_asked_on_the_calls_stream() {
    let edge = start(&[]).await;
    let token = session(&edge, "2025-11-25", json!({"sampling":{},"elicitation":{}})).await;
    let mut stream = Stream::open(
        &edge,
        &token,
        tool_call(2, "test_sampling", json!({"prompt":"Test prompt"})),
    )
    .await;
    assert!(stream.content_type().starts_with("text/event-stream"));
    let ask = stream.next().await.expect("a question");
    assert_eq!(ask["method"], "sampling/createMessage");
    assert_eq!(ask["params"]["maxTokens"], 100);
    assert!(
        ask["id"].as_str().unwrap().starts_with("mcp-edge:"),
        "{ask}"
    );
    let reply = answer(&edge, &token, &ask["id"], json!({"role":"assistant","content":{"type":"text","text":"from the client"},"model":"m","stopReason":"endTurn"})).await;
    assert_eq!((reply.status, reply.body.as_str()), (202, ""));
    let done = stream.next().await.expect("the result");
    assert_eq!(done["id"], 2);
    assert_eq!(text_of(&done), "LLM response: from the client");
    assert!(done["result"].get("resultType").is_none(), "legacy shape");
    assert!(
        stream.next().await.is_none(),
        "the stream ends with the result"
    );
    assert!(
        !stream.raw.lines().any(|l| l.starts_with("id:")),
        "no event ids: a bridged stream cannot be resumed"
    );
    assert_eq!(
        metric(&edge, "mcp_edge_bridged_total{outcome=\"complete\"}").await,
        1.0
    );
    assert_eq!(
        metric(&edge, "mcp_edge_bridge_answers_total{delivery=\"local\"}").await,
        1.0
    );
    // The access log line of the call names its rounds and the replicas that ran them.
    let line = || {
        edge.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["tool"] == "test_sampling")
    };
    wait_for(5, "the call's access log line", || async {
        line().is_some()
    })
    .await;
    let line = line().unwrap();
    assert_eq!(line["rounds"], 2, "{line}");
    assert_eq!(
        line["replicas"].as_str().unwrap().split(',').count(),
        2,
        "{line}"
    );
}

#[tokio::test]
async fn several_questions_and_rounds_are_spread_over_the_replicas() {
    let edge = start(&[]).await;
    let token = session(
        &edge,
        "2025-11-25",
        json!({"sampling":{},"elicitation":{},"roots":{"listChanged":true}}),
    )
    .await;
    let before = stats(&edge).await;
    let mut stream = Stream::open(
        &edge,
        &token,
        tool_call(3, "test_input_required_result_multiple_inputs", json!({})),
    )
    .await;
    let mut asked = Vec::new();
    for _ in 0..3 {
        asked.push(stream.next().await.expect("three questions"));
    }
    let methods: Vec<&str> = asked
        .iter()
        .map(|q| q["method"].as_str().unwrap())
        .collect();
    for method in ["elicitation/create", "sampling/createMessage", "roots/list"] {
        assert!(methods.contains(&method), "{methods:?}");
    }
    for q in &asked {
        let result = match q["method"].as_str().unwrap() {
            "elicitation/create" => json!({"action":"accept","content":{"name":"Ada"}}),
            "sampling/createMessage" => {
                json!({"role":"assistant","content":{"type":"text","text":"hi"},"model":"m"})
            }
            _ => json!({"roots":[{"uri":"file:///tmp","name":"tmp"}]}),
        };
        assert_eq!(answer(&edge, &token, &q["id"], result).await.status, 202);
    }
    let done = stream.next().await.unwrap();
    assert_eq!(
        text_of(&done),
        "Every input answered; the call is complete."
    );

    let mut stream = Stream::open(
        &edge,
        &token,
        tool_call(4, "test_input_required_result_multi_round", json!({})),
    )
    .await;
    let step1 = stream.next().await.unwrap();
    answer(
        &edge,
        &token,
        &step1["id"],
        json!({"action":"accept","content":{"name":"Ada"}}),
    )
    .await;
    let step2 = stream.next().await.unwrap();
    assert_ne!(step1["id"], step2["id"]);
    assert!(
        step2["params"]["message"]
            .as_str()
            .unwrap()
            .contains("Step 2")
    );
    answer(
        &edge,
        &token,
        &step2["id"],
        json!({"action":"accept","content":{"color":"blue"}}),
    )
    .await;
    let done = stream.next().await.unwrap();
    assert!(text_of(&done).contains("color blue"), "{done}");
    let after = stats(&edge).await;
    let grew = after
        .iter()
        .filter(|(id, s)| s["mcp_requests"].as_u64() > before[*id]["mcp_requests"].as_u64())
        .count();
    assert!(grew >= 2, "5 rounds went to {grew} replica(s)");
}

#[tokio::test]
async fn a_client_that_declared_nothing_keeps_the_direct_path() {
    let edge = start(&[]).await;
    let token = session(&edge, "2025-11-25", json!({})).await;
    let a = post(
        &edge.url,
        &[JSON, BOTH, ("mcp-session-id", &token)],
        tool_call(1, "test_sampling", json!({})).to_string(),
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("this server is stateless"), "{}", a.body);
    assert_eq!(metric(&edge, "mcp_edge_bridges").await, 0.0);
}

#[tokio::test]
async fn a_replica_that_needs_another_capability_is_a_json_rpc_error_not_a_4xx() {
    let edge = start(&[]).await;
    let token = session(&edge, "2025-11-25", json!({"elicitation":{}})).await;
    let a = post(
        &edge.url,
        &[JSON, BOTH, ("mcp-session-id", &token)],
        tool_call(5, "test_sampling", json!({})).to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["id"], 5);
    assert_eq!(a.error_code(), -32021);
}

#[tokio::test]
async fn a_question_the_client_did_not_declare_is_never_sent() {
    let edge = start(&[]).await;
    let token = session(&edge, "2025-11-25", json!({"elicitation":{}})).await;
    // This fixture asks for elicitation, sampling and roots whatever the client declared.
    let a = post(
        &edge.url,
        &[JSON, BOTH, ("mcp-session-id", &token)],
        tool_call(6, "test_input_required_result_multiple_inputs", json!({})).to_string(),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.error_code(), -32603);
    assert!(a.body.contains("did not declare"), "{}", a.body);
    assert!(
        !a.body.contains("mcp-edge:"),
        "no question went out: {}",
        a.body
    );
}

#[tokio::test]
async fn an_answer_with_an_error_abandons_the_call_and_cancels_the_rest() {
    let edge = start(&[]).await;
    let token = session(
        &edge,
        "2025-11-25",
        json!({"sampling":{},"elicitation":{},"roots":{}}),
    )
    .await;
    let mut stream = Stream::open(
        &edge,
        &token,
        tool_call(7, "test_input_required_result_multiple_inputs", json!({})),
    )
    .await;
    let first = stream.next().await.unwrap();
    for _ in 0..2 {
        stream.next().await.unwrap();
    }
    let error =
        json!({"jsonrpc":"2.0","id":first["id"],"error":{"code":-1,"message":"user said no"}});
    assert_eq!(
        post(
            &edge.url,
            &[JSON, BOTH, ("mcp-session-id", &token)],
            error.to_string()
        )
        .await
        .status,
        202
    );
    let mut cancelled = 0;
    let done = loop {
        let m = stream.next().await.unwrap();
        if m["method"] == "notifications/cancelled" {
            cancelled += 1;
            continue;
        }
        break m;
    };
    assert_eq!(cancelled, 2, "the two other questions are withdrawn");
    assert_eq!(done["id"], 7);
    assert_eq!(done["error"]["code"], -32603);
    assert_eq!(
        done["error"]["data"]["clientError"]["message"],
        "user said no"
    );
}

#[tokio::test]
async fn an_unanswered_question_times_out_with_a_cancel_and_an_error() {
    let edge = start(&["--bridge-input-timeout-seconds", "1"]).await;
    let token = session(&edge, "2025-06-18", json!({"elicitation":{}})).await;
    let mut stream = Stream::open(
        &edge,
        &token,
        tool_call(8, "test_elicitation", json!({"message":"hi"})),
    )
    .await;
    let ask = stream.next().await.unwrap();
    assert!(
        ask["params"].get("mode").is_none(),
        "2025-06-18 has no elicitation mode: {ask}"
    );
    // A forged id and another call's id are taken (202) and change nothing.
    let forged = json!("mcp-edge:0000000000000001:00000000000000000000000000000001:0");
    assert_eq!(
        answer(&edge, &token, &forged, json!({"action":"accept"}))
            .await
            .status,
        202
    );
    let cancel = stream.next().await.unwrap();
    assert_eq!(cancel["method"], "notifications/cancelled");
    assert_eq!(cancel["params"]["requestId"], ask["id"]);
    let done = stream.next().await.unwrap();
    assert_eq!(
        (done["id"].clone(), done["error"]["code"].clone()),
        (json!(8), json!(-32001))
    );
    assert_eq!(
        metric(&edge, "mcp_edge_bridged_total{outcome=\"timeout\"}").await,
        1.0
    );
    // The answer arrives late: 202, and nobody takes it.
    assert_eq!(
        answer(
            &edge,
            &token,
            &ask["id"],
            json!({"action":"accept","content":{"response":"x"}})
        )
        .await
        .status,
        202
    );
    assert!(metric(&edge, "mcp_edge_bridge_answers_total{delivery=\"late\"}").await >= 2.0);
}

#[tokio::test]
async fn the_clients_cancel_ends_the_stream_without_a_result() {
    let edge = start(&[]).await;
    let token = session(&edge, "2025-11-25", json!({"elicitation":{}})).await;
    let mut stream = Stream::open(&edge, &token, tool_call(9, "test_elicitation", json!({}))).await;
    let ask = stream.next().await.unwrap();
    let cancel = json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9,"reason":"user"}});
    assert_eq!(
        post(
            &edge.url,
            &[JSON, BOTH, ("mcp-session-id", &token)],
            cancel.to_string()
        )
        .await
        .status,
        202
    );
    let withdrawn = stream.next().await.unwrap();
    assert_eq!(
        (
            withdrawn["method"].clone(),
            withdrawn["params"]["requestId"].clone()
        ),
        (json!("notifications/cancelled"), ask["id"].clone())
    );
    assert!(stream.next().await.is_none(), "no result after a cancel");
    assert_eq!(
        metric(&edge, "mcp_edge_bridged_total{outcome=\"cancelled\"}").await,
        1.0
    );
}

#[tokio::test]
async fn ending_the_session_or_hanging_up_ends_its_bridged_calls() {
    let edge = start(&[]).await;
    let token = session(&edge, "2025-11-25", json!({"elicitation":{}})).await;
    let mut stream =
        Stream::open(&edge, &token, tool_call(10, "test_elicitation", json!({}))).await;
    stream.next().await.unwrap();
    assert_eq!(delete_session(&edge.url, &token).await.status, 200);
    let mut last = stream.next().await.unwrap();
    if last["method"] == "notifications/cancelled" {
        last = stream.next().await.unwrap();
    }
    assert_eq!(last["error"]["code"], -32603);
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("session ended")
    );

    let token = session(&edge, "2025-11-25", json!({"elicitation":{}})).await;
    let mut stream =
        Stream::open(&edge, &token, tool_call(11, "test_elicitation", json!({}))).await;
    stream.next().await.unwrap();
    assert_eq!(metric(&edge, "mcp_edge_bridges").await, 1.0);
    drop(stream);
    wait_for(10, "the hung-up call to end", || async {
        metric(&edge, "mcp_edge_bridges").await == 0.0
    })
    .await;
    assert_eq!(
        metric(&edge, "mcp_edge_bridged_total{outcome=\"client_gone\"}").await,
        1.0
    );
}

#[tokio::test]
async fn past_max_bridges_a_call_is_refused_with_a_json_rpc_error() {
    let edge = start(&["--max-bridges", "1"]).await;
    let token = session(&edge, "2025-11-25", json!({"elicitation":{}})).await;
    let mut first = Stream::open(&edge, &token, tool_call(12, "test_elicitation", json!({}))).await;
    first.next().await.unwrap();
    let second = post(
        &edge.url,
        &[JSON, BOTH, ("mcp-session-id", &token)],
        tool_call(13, "test_elicitation", json!({})).to_string(),
    )
    .await;
    assert_eq!(second.status, 200);
    assert_eq!(second.error_code(), -32603);
    assert!(
        second.body.contains("too many bridged calls"),
        "{}",
        second.body
    );
    assert_eq!(
        metric(&edge, "mcp_edge_bridged_total{outcome=\"refused\"}").await,
        1.0
    );
}

#[tokio::test]
async fn an_answer_that_reaches_another_edge_is_delivered_over_the_peer_link() {
    let (a, b) = peers().await;
    let token = session(&a, "2025-11-25", json!({"sampling":{}})).await;
    let mut stream = Stream::open(
        &a,
        &token,
        tool_call(14, "test_sampling", json!({"prompt":"p"})),
    )
    .await;
    let ask = stream.next().await.unwrap();
    let reply = answer(
        &b,
        &token,
        &ask["id"],
        json!({"role":"assistant","content":{"type":"text","text":"via b"},"model":"m"}),
    )
    .await;
    assert_eq!(reply.status, 202);
    let done = stream.next().await.unwrap();
    assert_eq!(text_of(&done), "LLM response: via b");
    assert_eq!(
        metric(&b, "mcp_edge_bridge_answers_total{delivery=\"peer\"}").await,
        1.0
    );
}

#[tokio::test]
async fn with_the_bridge_off_calls_take_the_direct_path() {
    let edge = start(&["--bridge", "off"]).await;
    let token = session(&edge, "2025-11-25", json!({"sampling":{}})).await;
    let a = post(
        &edge.url,
        &[JSON, BOTH, ("mcp-session-id", &token)],
        tool_call(1, "test_sampling", json!({})).to_string(),
    )
    .await;
    assert!(a.body.contains("this server is stateless"), "{}", a.body);
}

#[tokio::test]
async fn sessions_sealed_without_a_profile_still_open_and_are_not_bridged() {
    // --session-format 1: what a process of the release before the bridge seals.
    let key = "cd".repeat(32);
    let old = start(&["--session-key", &key, "--session-format", "1"]).await;
    let new = start(&["--session-key", &key]).await;
    let token = session(&old, "2025-11-25", json!({"sampling":{}})).await;
    let a = post(
        &new.url,
        &[JSON, BOTH, ("mcp-session-id", &token)],
        tool_call(1, "test_sampling", json!({})).to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "a format-1 token opens on the new release");
    assert!(
        a.body.contains("this server is stateless"),
        "not bridged: {}",
        a.body
    );
}

#[tokio::test]
async fn a_drain_tells_a_waiting_call_to_repeat_itself_elsewhere() {
    let mut edge = start(&["--grace-seconds", "2"]).await;
    let token = session(&edge, "2025-11-25", json!({"elicitation":{}})).await;
    let mut stream =
        Stream::open(&edge, &token, tool_call(16, "test_elicitation", json!({}))).await;
    let ask = stream.next().await.unwrap();
    unsafe { libc::kill(edge.child.id() as i32, libc::SIGTERM) };
    let withdrawn = stream.next().await.unwrap();
    assert_eq!(withdrawn["params"]["requestId"], ask["id"]);
    let last = stream.next().await.unwrap();
    assert_eq!(
        (last["id"].clone(), last["error"]["code"].clone()),
        (json!(16), json!(-32603))
    );
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{last}"
    );
    assert!(edge.child.wait().unwrap().success());
}

#[tokio::test]
async fn a_replica_that_dies_mid_round_ends_the_call_with_an_error() {
    let port = free_port();
    let mut replica = Backend::spawn("solo", std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    replica.ready().await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let edge = start(&["--backend", &url]).await;
    wait_replicas(&edge, 1, 1).await;
    let token = session(&edge, "2025-11-25", json!({"sampling":{}})).await;
    let call = json!({"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"progress","arguments":{"steps":50,"interval_ms":100},"_meta":{"progressToken":"p"}}});
    let mut stream = Stream::open(&edge, &token, call).await;
    let progress = stream.next().await.unwrap();
    assert_eq!(
        progress["method"], "notifications/progress",
        "relayed as it comes"
    );
    replica.kill();
    let mut last = stream.next().await.unwrap();
    while last["method"] == "notifications/progress" {
        last = stream.next().await.unwrap();
    }
    assert_eq!(
        (last["id"].clone(), last["error"]["code"].clone()),
        (json!(17), json!(-32603))
    );
    let message = last["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("127.0.0.1:{port}")),
        "names the replica: {last}"
    );
}

#[tokio::test]
async fn a_bridged_call_carries_the_headers_its_tool_mirrors_its_arguments_into() {
    let edge = start(&[]).await;
    let token = session(&edge, "2025-11-25", json!({"sampling":{}})).await;
    // test_custom_headers declares x-mcp-header "Region": a 2026-07-28 replica refuses the call
    // without Mcp-Param-Region (-32020), so this passes only if the bridge sent it.
    let a = post(
        &edge.url,
        &[JSON, BOTH, ("mcp-session-id", &token)],
        tool_call(
            18,
            "test_custom_headers",
            json!({"region":"eu-west 1","query":"q"}),
        )
        .to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["result"]["content"][0]["text"],
        "region=eu-west 1",
        "{}",
        a.body
    );
    assert_eq!(
        metric(&edge, "mcp_edge_bridged_total{outcome=\"complete\"}").await,
        1.0
    );
}

#[tokio::test]
async fn a_call_waiting_for_its_client_keeps_its_stream_alive() {
    // A keep-alive comment every 15 s while the question is open (intermediaries and Node's
    // fetch cut quiet streams); the input timeout ends the wait after 17.
    let edge = start(&["--bridge-input-timeout-seconds", "17"]).await;
    let token = session(&edge, "2025-11-25", json!({"elicitation":{}})).await;
    let mut stream =
        Stream::open(&edge, &token, tool_call(19, "test_elicitation", json!({}))).await;
    stream.next().await.unwrap();
    let cancel = stream.next().await.unwrap();
    assert_eq!(cancel["method"], "notifications/cancelled");
    assert!(
        stream.raw.contains(": keep-alive\n\n"),
        "no keep-alive in {}",
        stream.raw
    );
}

#[tokio::test]
async fn a_session_ended_at_another_edge_ends_its_bridged_calls_here() {
    let (a, b) = peers().await;
    let token = session(&a, "2025-11-25", json!({"elicitation":{}})).await;
    let mut stream = Stream::open(&a, &token, tool_call(20, "test_elicitation", json!({}))).await;
    stream.next().await.unwrap();
    assert_eq!(delete_session(&b.url, &token).await.status, 200);
    let mut last = stream.next().await.unwrap();
    if last["method"] == "notifications/cancelled" {
        last = stream.next().await.unwrap();
    }
    assert_eq!(last["error"]["code"], -32603, "{last}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("session ended")
    );
}

#[tokio::test]
async fn a_duplicated_answer_is_dropped_and_the_call_completes() {
    let edge = start(&[]).await;
    let token = session(&edge, "2025-11-25", json!({"sampling":{}})).await;
    let mut stream = Stream::open(
        &edge,
        &token,
        tool_call(2, "test_sampling", json!({"prompt":"Test prompt"})),
    )
    .await;
    let ask = stream.next().await.expect("a question");
    let result = json!({"role":"assistant","content":{"type":"text","text":"first"},"model":"m","stopReason":"endTurn"});
    // The same answer twice, the second while the next round runs: the first one wins.
    for _ in 0..2 {
        let reply = answer(&edge, &token, &ask["id"], result.clone()).await;
        assert_eq!(reply.status, 202);
    }
    let done = stream.next().await.expect("the result");
    assert_eq!(text_of(&done), "LLM response: first", "{done}");
    assert_eq!(
        metric(&edge, "mcp_edge_bridged_total{outcome=\"complete\"}").await,
        1.0
    );
    assert_eq!(
        metric(&edge, "mcp_edge_bridge_answers_total{delivery=\"local\"}").await,
        1.0,
        "the first answer was taken, the second dropped"
    );
}

#[tokio::test]
async fn an_answer_up_to_the_body_limit_crosses_to_the_peer_holding_the_call() {
    let (a, b) = peers().await;
    let token = session(&a, "2025-11-25", json!({"sampling":{}})).await;
    let mut stream = Stream::open(
        &a,
        &token,
        tool_call(2, "test_sampling", json!({"prompt":"Test prompt"})),
    )
    .await;
    let ask = stream.next().await.expect("a question");
    let big = "b".repeat(3 << 20);
    let result = json!({"role":"assistant","content":{"type":"text","text":big},"model":"m","stopReason":"endTurn"});
    let reply = answer(&b, &token, &ask["id"], result).await;
    assert_eq!(reply.status, 202);
    let done = stream.next().await.expect("the result");
    assert_eq!(text_of(&done).len(), "LLM response: ".len() + big.len());
    assert_eq!(
        metric(&b, "mcp_edge_bridge_answers_total{delivery=\"peer\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridged_round_that_breaks_moves_on_and_counts_a_retry_and_an_ejection() {
    let port = free_port();
    let good = Backend::spawn("good", std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    good.ready().await;
    let good_url = format!("http://127.0.0.1:{port}/mcp");
    let bad_url = breaking_replica().await;
    // --bridge on: the breaking replica, which never says it speaks 2026-07-28, runs rounds too.
    let edge = start(&[
        "--backend",
        &good_url,
        "--backend",
        &bad_url,
        "--bridge",
        "on",
        "--eject-after",
        "1",
    ])
    .await;
    wait_replicas(&edge, 2, 2).await;
    wait_for(20, "echo's annotations (safe to repeat) read", || async {
        metric(&edge, "mcp_edge_tools_known").await > 0.0
    })
    .await;
    let token = session(&edge, "2025-11-25", json!({"sampling":{}})).await;
    // Round robin: within a few calls a round lands on the breaking replica.
    for i in 1..=6u64 {
        let a = post(
            &edge.url,
            &[JSON, BOTH, ("mcp-session-id", &token)],
            tool_call(i, "echo", json!({"message":"m"})).to_string(),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(text_of(&a.json()), "m", "the call completed: {}", a.body);
        if metric(&edge, "mcp_edge_retries_total").await >= 1.0 {
            break;
        }
    }
    assert!(metric(&edge, "mcp_edge_retries_total").await >= 1.0);
    assert!(metric(&edge, "mcp_edge_replica_ejections_total").await >= 1.0);
    assert!(metric(&edge, "mcp_edge_bridged_total{outcome=\"complete\"}").await >= 1.0);
}
