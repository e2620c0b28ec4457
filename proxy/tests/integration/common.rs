//! Helpers shared by the integration tests: mcp-edge (and mcp-backend) as real processes on
//! loopback, requests, answers, SSE events.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

pub struct Edge {
    pub url: String,
    pub admin: String,
    /// Replica id → base URL (http://host:port).
    pub replicas: Vec<(String, String)>,
    pub child: Child,
    /// What mcp-edge printed on stdout after its banner (the access log).
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// What mcp-edge prints on stderr (its log), shown when a test fails.
    stderr: Option<Collected>,
}

impl Drop for Edge {
    fn drop(&mut self) {
        // A failing test says whether mcp-edge had exited, and what it logged.
        let exited = self.child.try_wait().ok().flatten();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let (true, Some(stderr)) = (std::thread::panicking(), self.stderr.take()) {
            let _ = stderr.reader.join();
            let log = stderr.lines.lock().unwrap();
            let tail = &log[log.len().saturating_sub(40)..];
            eprintln!(
                "mcp-edge {}; last lines of its log:\n{}",
                exited.map_or("was still running".to_owned(), |s| format!(
                    "had exited: {s}"
                )),
                tail.join("\n")
            );
        }
    }
}

/// A child's output lines, read in the background until it closes.
struct Collected {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

fn collect(lines: impl Iterator<Item = std::io::Result<String>> + Send + 'static) -> Collected {
    let collected = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = collected.clone();
    let reader = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
    Collected {
        lines: collected,
        reader,
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start mcp-edge with `args`, wait until it printed its replicas and its admin answers.
pub async fn start(args: &[&str]) -> Edge {
    start_on(free_port(), free_port(), args).await
}

/// [`start`] on given ports (MCP, admin).
pub async fn start_on(port: u16, admin: u16, args: &[&str]) -> Edge {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-edge"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
            "--log",
            "warn",
        ])
        .args(["--health-interval-ms", "200", "--grace-seconds", "1"])
        .args(args)
        // The bundled replicas serve the fixtures the tests call (`test_*` tools).
        .env("MCP_BACKEND_CONFORMANCE_FIXTURES", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut replicas = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("replica ") {
            let id = rest.split_whitespace().next().unwrap().to_owned();
            let url = rest.rsplit(' ').next().unwrap();
            replicas.push((id, url.trim_end_matches("/mcp").to_owned()));
        }
        if line.contains("worker threads") {
            break;
        }
    }
    let stdout = collect(lines).lines;
    let stderr = Some(collect(
        BufReader::new(child.stderr.take().unwrap()).lines(),
    ));
    let edge = Edge {
        url: format!("http://127.0.0.1:{port}/mcp"),
        admin: format!("http://127.0.0.1:{admin}"),
        replicas,
        child,
        stdout,
        stderr,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let healthz = format!("{}/healthz", edge.admin);
    while client()
        .get(&healthz)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "mcp-edge did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    health_reads_done(&edge.replicas).await;
    edge
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn served_by(&self) -> String {
        self.headers
            .get("x-served-by")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
    pub fn session(&self) -> Option<String> {
        self.headers
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned())
    }
    pub fn error_code(&self) -> i64 {
        self.json()["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no JSON-RPC error: {}", self.body))
    }
}

pub async fn send(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Answer {
    let mut request = client().request(method, url).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

pub async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<reqwest::Body>) -> Answer {
    send(reqwest::Method::POST, url, headers, body).await
}

pub const JSON: (&str, &str) = ("content-type", "application/json");
pub const BOTH: (&str, &str) = ("accept", "application/json, text/event-stream");

pub fn call(id: u64, tool: &str, args: Value) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
        .to_string()
}

pub fn initialize(version: &str) -> String {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":version,"capabilities":{},"clientInfo":{"name":"edge-test","version":"1"}}}).to_string()
}

/// GET `url`, its body as JSON.
pub async fn get_json(url: &str) -> Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// mcp-edge's Prometheus text scrape.
pub async fn scrape(edge: &Edge) -> String {
    client()
        .get(format!("{}/metrics", edge.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one series in mcp-edge's Prometheus text scrape (0 when absent).
pub async fn metric(edge: &Edge, series: &str) -> f64 {
    scrape(edge)
        .await
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

pub async fn stats(edge: &Edge) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for (id, base) in &edge.replicas {
        out.insert(id.clone(), get_json(&format!("{base}/stats")).await);
    }
    out
}

pub async fn total_requests(edge: &Edge) -> u64 {
    stats(edge)
        .await
        .values()
        .map(|s| s["mcp_requests"].as_u64().unwrap())
        .sum()
}

/// Until every replica that answers `/stats` has served the `tools/list` mcp-edge sends it at
/// its first passing health check (no client has sent anything yet), so that request counts
/// taken later see only the test's requests. A replica that does not answer is not waited for.
async fn health_reads_done(replicas: &[(String, String)]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for (_, base) in replicas {
        loop {
            let served = match client().get(format!("{base}/stats")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["mcp_requests"].as_u64()),
                Err(_) => break,
            };
            if served.is_none_or(|n| n > 0) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// DELETE the session `token` names, at `url`.
pub async fn delete_session(url: &str, token: &str) -> Answer {
    send(
        reqwest::Method::DELETE,
        url,
        &[("mcp-session-id", token)],
        "",
    )
    .await
}

pub async fn open_session(edge: &Edge, version: &str) -> String {
    let a = post(&edge.url, &[JSON, BOTH], initialize(version)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["result"]["protocolVersion"], version);
    let token = a.session().expect("mcp-edge mints a session on initialize");
    assert!(token.len() <= 256, "{}", token.len());
    assert!(token.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    token
}

pub async fn events(mut response: reqwest::Response) -> Vec<(Instant, Value)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        let now = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    out.push((now, serde_json::from_str(data.trim()).unwrap()));
                }
            }
        }
    }
    out
}

/// The mcp-backend binary built next to mcp-edge (`cargo test --workspace` builds both).
pub fn backend_bin() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_mcp-edge")).with_file_name("mcp-backend");
    assert!(
        path.exists(),
        "{} is missing: build the workspace (cargo test --workspace)",
        path.display()
    );
    path
}

/// Poll `check` until it holds, failing with `what` after `secs`.
pub async fn wait_for<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An SSE response read event by event.
pub struct Stream {
    response: reqwest::Response,
    pending: String,
    /// Everything received, to check what the stream carried.
    pub raw: String,
}

impl Stream {
    pub async fn open(edge: &Edge, token: &str, body: Value) -> Self {
        let response = client()
            .post(&edge.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", token)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        Self::from(response)
    }

    /// A response already received (its status checked by the caller).
    pub fn from(response: reqwest::Response) -> Self {
        Self {
            response,
            pending: String::new(),
            raw: String::new(),
        }
    }

    pub fn header(&self, name: &str) -> String {
        self.response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn content_type(&self) -> String {
        self.header("content-type")
    }

    /// The next message (comments skipped); `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Value> {
        match self.within(Duration::from_secs(20)).await {
            Some(next) => next,
            None => panic!("no event within 20 s: {}", self.raw),
        }
    }

    /// [`Stream::next`], or `None` when nothing came within `limit`.
    pub async fn within(&mut self, limit: Duration) -> Option<Option<Value>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                    .collect();
                if !data.is_empty() {
                    return Some(Some(serde_json::from_str(&data.join("\n")).unwrap()));
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(chunk))) => {
                    let text = String::from_utf8_lossy(&chunk).into_owned();
                    self.raw.push_str(&text);
                    self.pending.push_str(&text);
                }
                Ok(_) => return Some(None),
            }
        }
    }
}

/// Two mcp-edge processes on one session key, each the other's `--peer`.
pub async fn peers() -> (Edge, Edge) {
    let key = "ab".repeat(32);
    let (admin_a, admin_b) = (free_port(), free_port());
    let (peer_a, peer_b) = (
        format!("127.0.0.1:{admin_a}"),
        format!("127.0.0.1:{admin_b}"),
    );
    let a = start_on(
        free_port(),
        admin_a,
        &["--session-key", &key, "--peer", &peer_b],
    )
    .await;
    let b = start_on(
        free_port(),
        admin_b,
        &["--session-key", &key, "--peer", &peer_a],
    )
    .await;
    (a, b)
}

/// One mcp-backend process.
pub struct Backend {
    pub id: String,
    pub addr: SocketAddr,
    child: Child,
}

impl Backend {
    pub fn spawn(id: &str, addr: SocketAddr) -> Self {
        Self::with_grace(id, addr, 1)
    }

    /// [`Backend::spawn`] with a drain of `grace` seconds after SIGTERM.
    pub fn with_grace(id: &str, addr: SocketAddr, grace: u32) -> Self {
        let child = Command::new(backend_bin())
            .args([
                "--listen",
                &addr.to_string(),
                "--replica-id",
                id,
                "--grace-seconds",
                &grace.to_string(),
                "--log",
                "error",
                "--conformance-fixtures",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            id: id.to_owned(),
            addr,
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub async fn ready(&self) {
        let url = format!("http://{}/readyz", self.addr);
        wait_for(20, &format!("{} to be ready", self.id), || {
            let url = url.clone();
            async move {
                client()
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        })
        .await;
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; the exit status once it drained.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.wait().unwrap()
    }

    pub fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Its exit status, if it exits within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        *self = Self::spawn(&self.id, self.addr);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

// ----- DNS discovery: replicas on 127.0.0.0/8 named by a DNS server the test runs -------------

pub fn loopback(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), port))
}

pub async fn ready_replicas(admin: &str) -> (u64, u64) {
    match client().get(format!("{admin}/readyz")).send().await {
        Ok(r) => {
            let v: Value = r.json().await.unwrap_or_default();
            (
                v["healthy_replicas"].as_u64().unwrap_or(0),
                v["replicas"].as_u64().unwrap_or(0),
            )
        }
        Err(_) => (0, 0),
    }
}

pub async fn wait_replicas(edge: &Edge, healthy: u64, total: u64) {
    let admin = edge.admin.clone();
    wait_for(
        20,
        &format!("{healthy} of {total} replicas healthy"),
        || {
            let admin = admin.clone();
            async move { ready_replicas(&admin).await == (healthy, total) }
        },
    )
    .await;
}

/// A DNS server on loopback answering A queries for one name from a list the test changes.
/// mcp-edge finding its replicas (`tasks.backend.test:port`) by asking `dns`, every 200 ms.
pub async fn discovering(dns: &Dns, port: u16) -> Edge {
    let discover = format!("dns://tasks.backend.test:{port}/mcp");
    let dns_server = dns.addr.to_string();
    start(&[
        "--discover",
        &discover,
        "--dns-server",
        &dns_server,
        "--discover-interval-ms",
        "200",
    ])
    .await
}

pub struct Dns {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<Ipv4Addr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Dns {
    pub async fn start(records: Vec<Ipv4Addr>) -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let records = Arc::new(Mutex::new(records));
        let shared = records.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let reply = answer(&buf[..n], &shared.lock().unwrap());
                if let Some(answer) = reply {
                    let _ = socket.send_to(&answer, from).await;
                }
            }
        });
        Self {
            addr,
            records,
            task,
        }
    }

    pub fn set(&self, records: &[Ipv4Addr]) {
        *self.records.lock().unwrap() = records.to_vec();
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answer to one query: every record for an A question, none for anything else (NOERROR).
fn answer(query: &[u8], records: &[Ipv4Addr]) -> Option<Vec<u8>> {
    let mut i = 12;
    while *query.get(i)? != 0 {
        i += 1 + query[i] as usize;
    }
    let question_end = i + 5;
    let qtype = u16::from_be_bytes([*query.get(i + 1)?, *query.get(i + 2)?]);
    let answers: &[Ipv4Addr] = if qtype == 1 { records } else { &[] };
    let mut out = Vec::with_capacity(question_end + answers.len() * 16);
    out.extend_from_slice(&query[..2]);
    out.extend_from_slice(&[0x81, 0x80, 0, 1]);
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(query.get(12..question_end)?);
    for ip in answers {
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

/// A replica that passes its health checks (`GET /readyz`: 200) but breaks every MCP request
/// before answering a byte: its URL.
pub async fn breaking_replica() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 << 10 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if head.starts_with(b"GET /readyz") {
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                    let _ = conn.write_all(ok).await;
                }
                // Anything else: the connection dropped, no byte of an answer.
            });
        }
    });
    url
}
