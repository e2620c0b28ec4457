//! Long-running calls as tasks (the tasks extension) over stateless replicas, with a raw
//! client: a task id names its replica, so polls through either of two mcp-edge processes
//! (not peered: nothing is shared) reach it; a replica that dies takes its tasks with it and
//! says so; a draining one answers its tasks' polls until they end.

use std::{collections::HashMap, net::Ipv4Addr, time::Instant};

use serde_json::{Value, json};

use crate::common::*;

const MODERN: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}},
    })
}

/// A 2026-07-28 request declaring the tasks extension; `name` goes in `Mcp-Name`.
async fn request(url: &str, method: &str, name: &str, params: Value) -> Answer {
    let mut params = params;
    params["_meta"] = meta();
    let body = json!({"jsonrpc":"2.0","id":1,"method":method,"params":params});
    post(
        url,
        &[
            JSON,
            BOTH,
            ("mcp-protocol-version", MODERN),
            ("mcp-method", method),
            ("mcp-name", name),
        ],
        body.to_string(),
    )
    .await
}

/// Start `slow_compute` as a task: its id.
async fn create(url: &str, seconds: u64, label: String) -> String {
    let params = json!({"name": "slow_compute", "arguments": {"seconds": seconds, "label": label}});
    let answer = request(url, "tools/call", "slow_compute", params).await;
    let result = &answer.json()["result"];
    assert_eq!(result["resultType"], "task", "{}", answer.body);
    result["taskId"].as_str().unwrap().to_owned()
}

async fn get(url: &str, id: &str) -> Answer {
    request(url, "tasks/get", id, json!({"taskId": id})).await
}

/// Poll `id` at `url` until it has `status`; every answer from replica `from`, when given.
async fn until(url: &str, id: &str, status: &str, from: Option<&str>) {
    wait_for(10, &format!("{id} to be {status}"), || async move {
        let answer = get(url, id).await;
        if let Some(from) = from {
            assert_eq!(answer.served_by(), from, "{}", answer.body);
        }
        answer.json()["result"]["status"] == status
    })
    .await;
}

/// Three mcp-backend processes, and the edge arguments naming them.
fn replicas() -> (Vec<Backend>, Vec<String>) {
    let backends: Vec<Backend> = ["r1", "r2", "r3"]
        .iter()
        .map(|id| Backend::spawn(id, ([127, 0, 0, 1], free_port()).into()))
        .collect();
    let args = backends
        .iter()
        .flat_map(|b| ["--backend".to_owned(), b.url()])
        .collect();
    (backends, args)
}

/// Whether mcp-edge has the replica at `addr` (its id too, given by URL) in rotation.
async fn in_rotation(edge: &Edge, addr: &str) -> bool {
    let series = format!(r#"mcp_edge_replica_healthy{{replica="{addr}",address="{addr}"}}"#);
    metric(edge, &series).await == 1.0
}

async fn ready(backends: &[Backend]) {
    for b in backends {
        b.ready().await;
    }
}

#[tokio::test]
async fn fifty_tasks_polled_through_two_processes_each_reach_the_replica_that_runs_it() {
    let (backends, args) = replicas();
    ready(&backends).await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (a, b) = (start(&args).await, start(&args).await);
    // The replica behind each authority a task id names.
    let by_addr: HashMap<String, String> = backends
        .iter()
        .map(|b| (b.addr.to_string(), b.id.clone()))
        .collect();

    let ids = futures::future::join_all((0..50).map(|i| {
        let url = if i % 2 == 0 { &a.url } else { &b.url };
        create(url, 1, format!("t{i}"))
    }))
    .await;
    let mut per_replica = HashMap::<&str, usize>::new();
    for id in &ids {
        let (addr, raw) = id.split_once('/').expect("the id names its replica");
        assert!(!raw.is_empty() && by_addr.contains_key(addr), "{id}");
        *per_replica.entry(&by_addr[addr]).or_default() += 1;
    }
    assert_eq!(per_replica.len(), 3, "round robin: {per_replica:?}");

    // Every task polled through both processes in turn until it completes.
    let polls = futures::future::join_all(ids.iter().enumerate().map(|(i, id)| {
        let (a, b) = (&a.url, &b.url);
        let home = by_addr[id.split_once('/').unwrap().0].clone();
        async move {
            let mut polled = 0;
            loop {
                let url = if polled % 2 == 0 { a } else { b };
                let answer = get(url, id).await;
                polled += 1;
                assert_eq!(answer.served_by(), home, "{id}: {}", answer.body);
                let task = answer.json()["result"].clone();
                assert_eq!(task["taskId"], id.as_str(), "the id as the client knows it");
                match task["status"].as_str().unwrap() {
                    "working" => {
                        assert!(polled < 100, "{id} never completed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    "completed" => {
                        let text = task["result"]["content"][0]["text"].as_str().unwrap();
                        assert_eq!(
                            text,
                            format!("slow_compute(t{i}) finished after 1s on {home}")
                        );
                        return polled;
                    }
                    other => panic!("{id}: {other}: {task}"),
                }
            }
        }
    }))
    .await;
    assert!(
        polls.iter().all(|&n| n >= 2),
        "polled through both: {polls:?}"
    );

    for edge in [&a, &b] {
        assert_eq!(metric(edge, "mcp_edge_tasks_created_total").await, 25.0);
        let routed = metric(
            edge,
            r#"mcp_edge_task_requests_total{method="tasks/get",outcome="routed"}"#,
        )
        .await;
        assert!(routed >= 50.0, "{routed}");
    }
}

#[tokio::test]
async fn a_task_request_is_checked_and_restored_for_its_replica() {
    let (backends, args) = replicas();
    ready(&backends).await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let edge = start(&args).await;
    let id = create(&edge.url, 60, "cancelled".into()).await;

    // Mcp-Name must carry the id as the client knows it.
    let mismatch = request(&edge.url, "tasks/get", "other", json!({"taskId": id})).await;
    assert_eq!((mismatch.status, mismatch.error_code()), (400, -32020));
    // Cancel and update reach the replica with its own id (an unknown one would be -32602).
    let ack = request(&edge.url, "tasks/cancel", &id, json!({"taskId": id})).await;
    assert_eq!(
        ack.json()["result"],
        json!({"resultType": "complete"}),
        "{}",
        ack.body
    );
    let update = json!({"taskId": id, "inputResponses": {}});
    let ack = request(&edge.url, "tasks/update", &id, update).await;
    assert_eq!(
        ack.json()["result"]["resultType"],
        "complete",
        "{}",
        ack.body
    );
    until(&edge.url, &id, "cancelled", None).await;

    // An id mcp-edge did not give out goes to a replica, which does not know it.
    let foreign = get(&edge.url, "not-ours").await;
    assert_eq!(foreign.error_code(), -32602);
    // A client that did not declare the extension is refused by the replica (-32021).
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId": id,
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        JSON,
        BOTH,
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tasks/get"),
        ("mcp-name", &id),
    ];
    let undeclared = post(&edge.url, &headers, body.to_string()).await;
    assert_eq!(undeclared.error_code(), -32021, "{}", undeclared.body);
}

#[tokio::test]
async fn a_replica_that_dies_takes_its_tasks_and_says_so_while_the_others_complete() {
    let (mut backends, args) = replicas();
    ready(&backends).await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let edge = start(&args).await;
    let ids =
        futures::future::join_all((0..6).map(|i| create(&edge.url, 2, format!("d{i}")))).await;
    let home = |id: &str| id.split_once('/').unwrap().0.to_owned();
    let dead = home(&ids[0]);
    let victim = backends
        .iter()
        .position(|b| b.addr.to_string() == dead)
        .unwrap();
    backends[victim].kill();
    let killed = Instant::now();

    for id in &ids {
        let answer = get(&edge.url, id).await;
        if home(id) == dead {
            // Its very first poll after the death: the documented answer, at once.
            assert_eq!(answer.status, 200);
            let error = &answer.json()["error"];
            assert_eq!(error["code"], -32602, "{}", answer.body);
            assert!(
                error["message"].as_str().unwrap().contains("gone"),
                "{error}"
            );
        } else {
            assert_eq!(
                answer.json()["result"]["status"],
                "working",
                "{}",
                answer.body
            );
        }
    }
    eprintln!(
        "polls of the dead replica's tasks answered within {:?} of its death",
        killed.elapsed()
    );
    for id in ids.iter().filter(|id| home(id) != dead) {
        until(&edge.url, id, "completed", None).await;
    }
    // Once the health check noticed, the answer is made before any connection is tried.
    wait_for(10, "the replica to leave rotation", || async {
        !in_rotation(&edge, &dead).await
    })
    .await;
    let lost = ids.iter().filter(|id| home(id) == dead).count();
    let answer = get(&edge.url, &ids[0]).await;
    assert_eq!(answer.error_code(), -32602);
    assert_eq!(
        metric(&edge, "mcp_edge_tasks_lost_total").await,
        (lost + 1) as f64
    );
}

#[tokio::test]
async fn a_draining_replica_answers_its_tasks_polls_until_they_end_and_takes_no_new_work() {
    let addr = |_| std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut draining = Backend::with_grace("r1", addr(0), 20);
    let other = Backend::spawn("r2", addr(1));
    draining.ready().await;
    other.ready().await;
    let urls = [draining.url(), other.url()];
    let edge = start(&["--backend", &urls[0], "--backend", &urls[1]]).await;
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let id = create(&edge.url, 3, "drain".into()).await;
        if id.starts_with(&draining.addr.to_string()) {
            ids.push(id);
        }
    }
    draining.signal(libc::SIGTERM);
    // Readiness turns 503: new work goes to the other replica only.
    let gone = draining.addr.to_string();
    wait_for(10, "the draining replica to leave rotation", || async {
        !in_rotation(&edge, &gone).await
    })
    .await;
    for i in 0..4 {
        let id = create(&edge.url, 0, format!("new{i}")).await;
        assert!(id.starts_with(&other.addr.to_string()), "{id}");
    }
    // Its own tasks are still answered, by it, until they complete.
    for id in &ids {
        until(&edge.url, id, "completed", Some("r1")).await;
    }
    let exited = draining.wait_exit(std::time::Duration::from_secs(10));
    assert!(
        exited.is_some_and(|s| s.success()),
        "it exits once the tasks ended and were read, long before its 20 s grace: {exited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_dns_record_goes_while_it_drains_still_answers_its_tasks_polls() {
    let port = free_port();
    let mut leaving = Backend::with_grace("b2", loopback(2, port), 20);
    let staying = Backend::spawn("b3", loopback(3, port));
    leaving.ready().await;
    staying.ready().await;
    let dns = Dns::start(vec![
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
    ])
    .await;
    let edge = discovering(&dns, port).await;
    wait_replicas(&edge, 2, 2).await;
    let home = leaving.addr.to_string();
    let id = loop {
        let id = create(&edge.url, 3, "swarm".into()).await;
        if id.starts_with(&home) {
            break id;
        }
    };
    // Swarm's order: the task's record goes, then it is sent SIGTERM.
    dns.set(&[Ipv4Addr::new(127, 0, 0, 3)]);
    wait_replicas(&edge, 1, 1).await;
    leaving.signal(libc::SIGTERM);
    until(&edge.url, &id, "completed", Some("b2")).await;
    let exited = leaving.wait_exit(std::time::Duration::from_secs(10));
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    // Once it exited, the task is gone with it.
    wait_for(10, "the task to be reported gone", || {
        let (url, id) = (edge.url.clone(), id.clone());
        async move { get(&url, &id).await.json()["error"]["code"] == -32602 }
    })
    .await;
}
