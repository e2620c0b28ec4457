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
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Shared by the clients: when to stop, and how many requests went out.
struct Budget {
    until: Instant,
    max: Option<u64>,
    sent: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
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

struct Client {
    http: reqwest::Client,
    url: String,
    budget: Arc<Budget>,
    stats: Stats,
    /// Open loop: the interval between this client's requests and when the next one is due.
    pace: Option<(Duration, Instant)>,
    next_id: u64,
    /// A standing legacy session (mixed scenario).
    session: Option<String>,
}

impl Client {
    /// Send one request (if the budget allows) and record it; `None` when the run is over.
    async fn exchange(&mut self, method: reqwest::Method, body: Option<String>, headers: &[(&str, &str)], accept: &str, expect: Expect) -> Option<(Outcome, reqwest::header::HeaderMap)> {
        if !self.budget.take() {
            return None;
        }
        let start = match &mut self.pace {
            Some((interval, due)) => {
                tokio::time::sleep_until((*due).into()).await;
                let start = *due;
                *due += *interval;
                start
            }
            None => Instant::now(),
        };
        let mut request = self.http.request(method, &self.url).header("accept", accept);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (outcome, response_headers) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) => (scenario::judge(status, &body, expect), headers),
                    Err(e) if e.is_timeout() => (Outcome::Timeout, headers),
                    Err(_) => (Outcome::Connection, headers),
                }
            }
            Err(e) if e.is_timeout() => (Outcome::Timeout, Default::default()),
            Err(_) => (Outcome::Connection, Default::default()),
        };
        let served_by = response_headers.get("x-served-by").and_then(|v| v.to_str().ok());
        self.stats.record(start.elapsed(), outcome.clone(), served_by);
        if outcome != Outcome::Ok {
            self.budget.errors.fetch_add(1, Ordering::Relaxed);
        }
        Some((outcome, response_headers))
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    async fn stateless(&mut self) -> Option<()> {
        let body = scenario::echo(self.id());
        self.exchange(reqwest::Method::POST, Some(body), &[], "application/json", Expect::Result).await.map(|_| ())
    }

    async fn modern(&mut self) -> Option<()> {
        let body = scenario::modern_echo(self.id());
        self.exchange(reqwest::Method::POST, Some(body), scenario::MODERN_HEADERS, "application/json, text/event-stream", Expect::Result).await.map(|_| ())
    }

    async fn stream(&mut self) -> Option<()> {
        let body = scenario::progress(self.id());
        self.exchange(reqwest::Method::POST, Some(body), &[], "application/json, text/event-stream", Expect::Result).await.map(|_| ())
    }

    /// initialize → the session id (`None` when the run ended or no session came back).
    async fn open_session(&mut self) -> Option<Option<String>> {
        let (outcome, headers) =
            self.exchange(reqwest::Method::POST, Some(scenario::initialize()), &[], "application/json, text/event-stream", Expect::Result).await?;
        let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if outcome != Outcome::Ok {
            return Some(None);
        }
        let with = [("mcp-session-id", session.as_deref().unwrap_or("")), ("mcp-protocol-version", "2025-06-18")];
        let headers: &[(&str, &str)] = if session.is_some() { &with } else { &with[1..] };
        self.exchange(reqwest::Method::POST, Some(scenario::INITIALIZED.into()), headers, "application/json, text/event-stream", Expect::Status(202)).await?;
        Some(session)
    }

    async fn call_in_session(&mut self, session: Option<&str>) -> Option<()> {
        let body = scenario::echo(self.id());
        let with = [("mcp-session-id", session.unwrap_or("")), ("mcp-protocol-version", "2025-06-18")];
        let headers: &[(&str, &str)] = if session.is_some() { &with } else { &with[1..] };
        self.exchange(reqwest::Method::POST, Some(body), headers, "application/json, text/event-stream", Expect::Result).await.map(|_| ())
    }

    async fn legacy_session(&mut self, calls: u64) -> Option<()> {
        let session = self.open_session().await?;
        for _ in 0..calls {
            self.call_in_session(session.as_deref()).await?;
        }
        if let Some(id) = session {
            self.exchange(reqwest::Method::DELETE, None, &[("mcp-session-id", &id)], "application/json", Expect::Status(200)).await?;
        }
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

    async fn run(mut self, scenario: Scenario, calls: u64) -> Stats {
        let mut i = 0u64;
        loop {
            i += 1;
            let more = match scenario {
                Scenario::Stateless => self.stateless().await,
                Scenario::Modern => self.modern().await,
                Scenario::Stream => self.stream().await,
                Scenario::LegacySession => self.legacy_session(calls).await,
                Scenario::Mixed => self.mixed(i).await,
            };
            if more.is_none() {
                return self.stats;
            }
        }
    }
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
        let done = ((elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)) * width as f64) as usize;
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
    let budget = Arc::new(Budget { until: started + total, max: args.requests, sent: AtomicU64::new(0), errors: AtomicU64::new(0), stop: AtomicBool::new(false) });
    let pace = args.rate.map(|rate| Duration::from_secs_f64(concurrency as f64 / rate.max(0.001)));
    let mut clients = Vec::with_capacity(concurrency);
    for n in 0..concurrency {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(args.timeout))
            .pool_max_idle_per_host(1)
            .build()
            .expect("an HTTP client");
        // Open loop: the clients' schedules are staggered evenly over one interval.
        let pace = pace.map(|interval| (interval, started + interval.mul_f64(n as f64 / concurrency as f64)));
        let client = Client { http, url: args.url.clone(), budget: budget.clone(), stats: Stats::default(), pace, next_id: 0, session: None };
        clients.push(tokio::spawn(client.run(args.scenario, args.calls_per_session)));
    }
    let bar = tokio::spawn(progress(budget.clone(), started, total));
    let mut stats = Stats::default();
    for client in clients {
        stats.merge(&client.await.expect("a client task"));
    }
    let elapsed = started.elapsed();
    budget.stop.store(true, Ordering::Relaxed);
    let _ = bar.await;
    let run = json!({
        "scenario": clap::ValueEnum::to_possible_value(&args.scenario).map(|v| v.get_name().to_owned()),
        "url": args.url,
        "concurrency": concurrency,
        "rate": args.rate,
        "duration_s": args.duration,
        "requests_max": args.requests,
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
