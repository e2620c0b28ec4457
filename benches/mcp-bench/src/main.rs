//! mcp-load: drive an MCP endpoint with one of the [`scenario`]s, closed loop (a fixed number of
//! clients, each sending its next request when the last is answered) or open loop (a fixed
//! request rate; latency counts from when a request was due, so a stalled server cannot hide
//! its queue), for a duration or a request count. Reports throughput, latency percentiles,
//! errors by kind and the replica distribution; `--json` for machines.

mod report;
mod scenario;

use std::{
    io::IsTerminal,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use report::Stats;
use scenario::{Expect, Outcome, Scenario};
use serde_json::json;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Drive an MCP endpoint and report what came back. Every answer that is not the expected
/// JSON-RPC result counts as an error, by kind.
#[derive(Debug, Clone, Parser)]
#[command(name = "mcp-load", version, about, long_about)]
struct Args {
    /// The MCP endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8150/mcp")]
    url: String,
    #[arg(long, value_enum, default_value = "stateless")]
    scenario: Scenario,
    /// Concurrent clients (each with its own connection).
    #[arg(short, long, default_value_t = 50)]
    concurrency: usize,
    /// Open loop: requests per second over all clients. None: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// How long to run, in seconds (with --requests: whichever ends first).
    #[arg(short, long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many requests.
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Seconds before an unanswered request counts as a timeout.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// legacy-session: tools/call requests per session.
    #[arg(long, default_value_t = 10)]
    calls_per_session: u64,
    /// legacy-session: leave each session without a DELETE, as a client that goes away does
    /// (the proxy's idle timeout ends it).
    #[arg(long)]
    abandon: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// A header sent with every request, `Name: value` (repeatable), e.g. `Authorization: Bearer …`.
    /// `{client}` in the value becomes the client's number (0, 1, …): one token per client.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Resolve the URL's host before every connection and spread the clients over all of its
    /// addresses (client i takes address i mod n), as DNS round robin spreads real clients.
    /// Without it, each connection takes the first address that accepts.
    #[arg(long)]
    spread: bool,
    /// Send a request again, on a new connection, when its connection failed before any
    /// response arrived (refused, reset, or closed while idle), up to this many times. Such
    /// requests count once, as what their last try got; the report counts the retries.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Print a progress line (JSON: elapsed_s, sent, errors, replicas seen) on stderr every this many seconds,
    /// also when stderr is not a terminal (a terminal gets a progress bar anyway).
    #[arg(long, value_name = "SECONDS")]
    progress_interval: Option<f64>,
}

fn parse_header(text: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not `Name: value`"))?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|e| format!("header name {name:?}: {e}"))?;
    let value =
        http::HeaderValue::from_str(value.trim()).map_err(|e| format!("header value: {e}"))?;
    Ok((name, value))
}

/// Shared by the clients: when to stop, and how many requests went out.
struct Budget {
    until: Instant,
    max: Option<u64>,
    sent: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    /// Every replica that has answered so far (for the progress lines).
    replicas: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Budget {
    /// Take one request from the budget; `false` when the run is over.
    fn take(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.until {
            return false;
        }
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        if self.max.is_some_and(|max| n >= max) {
            self.stop.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// `headers` with `{client}` in their values replaced by client `n`'s number.
fn own_headers(
    headers: &[(http::HeaderName, http::HeaderValue)],
    n: usize,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = match value.to_str() {
                Ok(text) if text.contains("{client}") => {
                    http::HeaderValue::from_str(&text.replace("{client}", &n.to_string()))
                        .unwrap_or_else(|_| value.clone())
                }
                _ => value.clone(),
            };
            (name.clone(), value)
        })
        .collect()
}

/// Where requests go: one TCP connection per client, opened again after it breaks.
struct Target {
    host: String,
    port: u16,
    authority: http::HeaderValue,
    path: http::Uri,
    timeout: Duration,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    spread: bool,
    retries: u32,
}

impl Target {
    fn parse(url: &str, timeout: Duration) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("bad --url {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("--url must be http:// (got {url:?})"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--url {url:?} has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(80);
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| format!("bad path: {e}"))?;
        let authority =
            http::HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        Ok(Target {
            host,
            port,
            authority,
            path,
            timeout,
            headers: Vec::new(),
            spread: false,
            retries: 0,
        })
    }
}

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// Open a connection to the target (the connection's driver runs as its own task). With
/// `--spread`, to address `(client + attempt) mod n` of the host's addresses, looked up anew.
async fn connect(target: &Target, client: usize, attempt: u32) -> std::io::Result<Sender> {
    let stream = if target.spread {
        let mut addrs: Vec<std::net::SocketAddr> =
            tokio::net::lookup_host((target.host.as_str(), target.port))
                .await?
                .collect();
        addrs.sort();
        let addr = addrs
            .get((client + attempt as usize) % addrs.len().max(1))
            .copied();
        tokio::net::TcpStream::connect(
            addr.ok_or_else(|| std::io::Error::other("the host has no address"))?,
        )
        .await?
    } else {
        tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?
    };
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// How an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    Timeout,
    /// The connection failed before any response arrived: safe to send again (`--retries`).
    BeforeResponse,
    /// The response began and then broke.
    Broken,
}

/// One request and its whole response body.
async fn send(
    connection: &mut Option<Sender>,
    target: &Target,
    client: usize,
    attempt: u32,
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<(u16, http::HeaderMap, bytes::Bytes), Failed> {
    use http_body_util::BodyExt;
    let exchange = async {
        if connection.as_ref().is_none_or(|c| c.is_closed()) {
            *connection = Some(
                connect(target, client, attempt)
                    .await
                    .map_err(|_| Failed::BeforeResponse)?,
            );
        }
        let sender = connection.as_mut().expect("connected");
        sender.ready().await.map_err(|_| Failed::BeforeResponse)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| Failed::BeforeResponse)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|_| Failed::Broken)?.to_bytes();
        Ok((parts.status.as_u16(), parts.headers, body))
    };
    let result = match tokio::time::timeout(target.timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(Failed::Timeout),
    };
    if result.is_err() {
        // A broken or timed-out exchange leaves the connection unusable.
        *connection = None;
    }
    result
}

struct Client {
    /// This client's number (which address it takes with `--spread`).
    n: usize,
    target: Arc<Target>,
    connection: Option<Sender>,
    budget: Arc<Budget>,
    stats: Stats,
    /// Open loop: the interval between this client's requests and when the next one is due.
    pace: Option<(Duration, Instant)>,
    next_id: u64,
    /// A standing legacy session (mixed scenario).
    session: Option<String>,
    /// Added to the client's number when it picks an address (`--spread`): the revoke scenario
    /// moves to the next address.
    offset: usize,
    /// `--header`s, `{client}` replaced by this client's number.
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Client {
    /// Send one request (if the budget allows) and record it; `None` when the run is over.
    async fn exchange(
        &mut self,
        method: http::Method,
        body: Option<String>,
        headers: &[(&str, &str)],
        accept: &str,
        expect: Expect,
    ) -> Option<(Outcome, http::HeaderMap)> {
        let start = self.start().await?;
        let sent = self.attempt(method, body, headers, accept).await;
        let (outcome, response_headers) = match sent {
            Ok((status, headers, body)) => (scenario::judge(status, &body, expect), headers),
            Err(Failed::Timeout) => (Outcome::Timeout, Default::default()),
            Err(Failed::BeforeResponse | Failed::Broken) => {
                (Outcome::Connection, Default::default())
            }
        };
        let served_by = response_headers
            .get("x-served-by")
            .and_then(|v| v.to_str().ok());
        self.record(start, outcome.clone(), served_by);
        Some((outcome, response_headers))
    }

    /// Take a request from the budget and wait for its turn (open loop); `None`: the run is over.
    async fn start(&mut self) -> Option<Instant> {
        if !self.budget.take() {
            return None;
        }
        Some(match &mut self.pace {
            Some((interval, due)) => {
                tokio::time::sleep_until((*due).into()).await;
                let start = *due;
                *due += *interval;
                start
            }
            None => Instant::now(),
        })
    }

    fn record(&mut self, start: Instant, outcome: Outcome, served_by: Option<&str>) {
        if outcome != Outcome::Ok {
            self.budget.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(replica) = served_by.filter(|r| !self.stats.served_by.contains_key(*r)) {
            self.budget
                .replicas
                .lock()
                .expect("not poisoned")
                .insert(replica.to_owned());
        }
        self.stats.record(start.elapsed(), outcome, served_by);
    }

    /// One request on this client's connection, sent again after a connection that failed
    /// before any response (up to `--retries`).
    async fn attempt(
        &mut self,
        method: http::Method,
        body: Option<String>,
        headers: &[(&str, &str)],
        accept: &str,
    ) -> Result<(u16, http::HeaderMap, bytes::Bytes), Failed> {
        let body = body.map(bytes::Bytes::from).unwrap_or_default();
        let mut attempt = 0;
        loop {
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(self.target.path.clone())
                .header("host", self.target.authority.clone())
                .header("accept", accept);
            if !body.is_empty() {
                request = request.header("content-type", "application/json");
            }
            for (name, value) in &self.headers {
                request = request.header(name, value);
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let request = request
                .body(http_body_util::Full::new(body.clone()))
                .expect("a valid request");
            match send(
                &mut self.connection,
                &self.target,
                self.n + self.offset,
                attempt,
                request,
            )
            .await
            {
                Err(Failed::BeforeResponse) if attempt < self.target.retries => {
                    attempt += 1;
                    self.stats.retried += 1;
                }
                sent => return sent,
            }
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    async fn stateless(&mut self) -> Option<()> {
        let body = scenario::echo(self.id());
        self.exchange(
            http::Method::POST,
            Some(body),
            &[],
            "application/json",
            Expect::Result,
        )
        .await
        .map(|_| ())
    }

    async fn modern(&mut self) -> Option<()> {
        let body = scenario::modern_echo(self.id());
        self.exchange(
            http::Method::POST,
            Some(body),
            scenario::MODERN_HEADERS,
            "application/json, text/event-stream",
            Expect::Result,
        )
        .await
        .map(|_| ())
    }

    async fn stream(&mut self) -> Option<()> {
        let body = scenario::progress(self.id());
        self.exchange(
            http::Method::POST,
            Some(body),
            &[],
            "application/json, text/event-stream",
            Expect::Result,
        )
        .await
        .map(|_| ())
    }

    /// initialize → the session id (`None` when the run ended or no session came back).
    async fn open_session(&mut self) -> Option<Option<String>> {
        self.open_session_as(false).await
    }

    /// A session whose client declared sampling (`bridged`) or nothing.
    async fn open_session_as(&mut self, bridged: bool) -> Option<Option<String>> {
        let init = if bridged {
            scenario::initialize_with(serde_json::json!({"sampling": {}}))
        } else {
            scenario::initialize()
        };
        let (outcome, headers) = self
            .exchange(
                http::Method::POST,
                Some(init),
                &[],
                "application/json, text/event-stream",
                Expect::Result,
            )
            .await?;
        let session = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if outcome != Outcome::Ok {
            return Some(None);
        }
        let with = [
            ("mcp-session-id", session.as_deref().unwrap_or("")),
            ("mcp-protocol-version", "2025-06-18"),
        ];
        let headers: &[(&str, &str)] = if session.is_some() { &with } else { &with[1..] };
        self.exchange(
            http::Method::POST,
            Some(scenario::INITIALIZED.into()),
            headers,
            "application/json, text/event-stream",
            Expect::Status(202),
        )
        .await?;
        Some(session)
    }

    async fn call_in_session(&mut self, session: Option<&str>) -> Option<()> {
        let body = scenario::echo(self.id());
        let with = [
            ("mcp-session-id", session.unwrap_or("")),
            ("mcp-protocol-version", "2025-06-18"),
        ];
        let headers: &[(&str, &str)] = if session.is_some() { &with } else { &with[1..] };
        self.exchange(
            http::Method::POST,
            Some(body),
            headers,
            "application/json, text/event-stream",
            Expect::Result,
        )
        .await
        .map(|_| ())
    }

    async fn legacy_session(&mut self, calls: u64, abandon: bool, bridged: bool) -> Option<()> {
        let session = self.open_session_as(bridged).await?;
        for _ in 0..calls {
            self.call_in_session(session.as_deref()).await?;
        }
        if let (Some(id), false) = (session, abandon) {
            self.exchange(
                http::Method::DELETE,
                None,
                &[("mcp-session-id", &id)],
                "application/json",
                Expect::Status(200),
            )
            .await?;
        }
        Some(())
    }

    /// A session opened and DELETEd at one address, then used at the next one until that
    /// mcp-edge refuses it (404): recorded as one request whose latency is how long the DELETE
    /// took to reach the other process (`--spread` over several mcp-edge processes).
    async fn revoke(&mut self) -> Option<()> {
        self.offset = 0;
        self.connection = None;
        let Some(session) = self.open_session().await? else {
            return Some(());
        };
        let (deleted, _) = self
            .exchange(
                http::Method::DELETE,
                None,
                &[("mcp-session-id", &session)],
                "application/json",
                Expect::Status(200),
            )
            .await?;
        if deleted != Outcome::Ok {
            return Some(());
        }
        let start = self.start().await?;
        self.offset = 1;
        self.connection = None;
        let deadline = Instant::now() + REVOKE_DEADLINE;
        let headers = [
            ("mcp-session-id", session.as_str()),
            ("mcp-protocol-version", "2025-06-18"),
        ];
        let outcome = loop {
            let id = self.id();
            let outcome = match self
                .attempt(
                    http::Method::POST,
                    Some(scenario::echo(id)),
                    &headers,
                    "application/json, text/event-stream",
                )
                .await
            {
                Ok((404, _, _)) => break Outcome::Ok,
                Ok((status, _, _)) => Outcome::Http(status),
                Err(Failed::Timeout) => Outcome::Timeout,
                Err(_) => Outcome::Connection,
            };
            if Instant::now() >= deadline {
                break outcome;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        self.record(start, outcome, None);
        Some(())
    }

    async fn mixed(&mut self, i: u64) -> Option<()> {
        match i % 20 {
            0..14 => self.stateless().await,
            14..17 => self.modern().await,
            17..19 => {
                if self.session.is_none() {
                    self.session = self.open_session().await?;
                }
                let session = self.session.clone();
                self.call_in_session(session.as_deref()).await
            }
            _ => self.stream().await,
        }
    }

    async fn run(mut self, scenario: Scenario, calls: u64, abandon: bool) -> Stats {
        let mut i = 0u64;
        loop {
            i += 1;
            let more = match scenario {
                Scenario::Stateless => self.stateless().await,
                Scenario::Modern => self.modern().await,
                Scenario::Stream => self.stream().await,
                Scenario::LegacySession => self.legacy_session(calls, abandon, false).await,
                Scenario::Bridged => self.legacy_session(calls, abandon, true).await,
                Scenario::Mixed => self.mixed(i).await,
                Scenario::Revoke => self.revoke().await,
            };
            if more.is_none() {
                return self.stats;
            }
        }
    }
}

/// How long the revoke scenario waits for the other process to refuse a DELETEd session.
const REVOKE_DEADLINE: Duration = Duration::from_secs(5);

/// `--progress-interval`: a JSON line on stderr every `interval`, until the run ends.
async fn progress_lines(budget: Arc<Budget>, started: Instant, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let replicas: Vec<String> = budget
            .replicas
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect();
        let line = json!({"elapsed_s": started.elapsed().as_secs_f64(), "sent": budget.sent.load(Ordering::Relaxed), "errors": budget.errors.load(Ordering::Relaxed), "replicas": replicas});
        eprintln!("{line}");
        if budget.stop.load(Ordering::Relaxed) || Instant::now() >= budget.until {
            return;
        }
    }
}

/// SIGTERM or Ctrl-C ends the run early: no new request, the ones in flight finish, the report
/// is printed.
async fn stop_on_signal(budget: Arc<Budget>) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    budget.stop.store(true, Ordering::Relaxed);
}

/// A progress line on a terminal, twice a second, until the run ends.
async fn progress(budget: Arc<Budget>, started: Instant, total: Duration) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let elapsed = started.elapsed().min(total);
        let sent = budget.sent.load(Ordering::Relaxed);
        let width = 30;
        let done =
            ((elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)) * width as f64) as usize;
        eprint!(
            "\r[{}{}] {:5.1} s  {sent} req  {:.0} req/s  {} errors ",
            "=".repeat(done.min(width)),
            " ".repeat(width - done.min(width)),
            elapsed.as_secs_f64(),
            (sent - last) as f64 * 2.0,
            budget.errors.load(Ordering::Relaxed)
        );
        last = sent;
        if budget.stop.load(Ordering::Relaxed) || elapsed >= total {
            eprintln!();
            return;
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let concurrency = args.concurrency.max(1);
    let total = Duration::from_secs_f64(args.duration.max(0.001));
    let started = Instant::now();
    let budget = Arc::new(Budget {
        until: started + total,
        max: args.requests,
        sent: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        replicas: Default::default(),
    });
    let pace = args
        .rate
        .map(|rate| Duration::from_secs_f64(concurrency as f64 / rate.max(0.001)));
    let target = match Target::parse(&args.url, Duration::from_secs_f64(args.timeout)) {
        Ok(target) => Arc::new(Target {
            headers: args.headers.clone(),
            spread: args.spread,
            retries: args.retries,
            ..target
        }),
        Err(e) => {
            eprintln!("mcp-load: {e}");
            std::process::exit(2);
        }
    };
    let mut clients = Vec::with_capacity(concurrency);
    for n in 0..concurrency {
        // Open loop: the clients' schedules are staggered evenly over one interval.
        let pace = pace.map(|interval| {
            (
                interval,
                started + interval.mul_f64(n as f64 / concurrency as f64),
            )
        });
        let client = Client {
            n,
            target: target.clone(),
            connection: None,
            budget: budget.clone(),
            stats: Stats::default(),
            pace,
            next_id: 0,
            session: None,
            offset: 0,
            headers: own_headers(&target.headers, n),
        };
        clients.push(tokio::spawn(client.run(
            args.scenario,
            args.calls_per_session,
            args.abandon,
        )));
    }
    let bar = tokio::spawn(progress(budget.clone(), started, total));
    let lines = args.progress_interval.map(|s| {
        tokio::spawn(progress_lines(
            budget.clone(),
            started,
            Duration::from_secs_f64(s.max(0.05)),
        ))
    });
    tokio::spawn(stop_on_signal(budget.clone()));
    let mut stats = Stats::default();
    for client in clients {
        stats.merge(&client.await.expect("a client task"));
    }
    let elapsed = started.elapsed();
    budget.stop.store(true, Ordering::Relaxed);
    let _ = bar.await;
    if let Some(lines) = lines {
        lines.abort();
    }
    let run = json!({
        "scenario": clap::ValueEnum::to_possible_value(&args.scenario).map(|v| v.get_name().to_owned()),
        "url": args.url,
        "concurrency": concurrency,
        "rate": args.rate,
        "duration_s": args.duration,
        "requests_max": args.requests,
        "spread": args.spread,
        "retries_max": args.retries,
    });
    let report = stats.to_json(run, elapsed);
    if args.json {
        println!("{report}");
    } else {
        print!("{}", report::text(&report));
    }
    if stats.errors() > 0 {
        std::process::exit(1);
    }
}
