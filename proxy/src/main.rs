use std::{sync::Arc, time::Duration};

use clap::Parser;
use mcp_edge::{
    Config,
    access::AccessLog,
    admin::{Admin, Lifecycle, LifecycleWatch},
    config::Command,
    drain::Drain,
    edge::Edge,
    embedded::Embedded,
    front::Front,
    listen::Listen,
    session::{Keys, Sweep},
    upstream::{
        Replicas,
        discover::{self, Discovery},
        health::HealthCheck,
    },
};
use pingora::{
    server::{Server, configuration::ServerConf},
    services::background::background_service,
};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("mcp-edge: {message}");
    std::process::exit(2);
}

/// Logs on stderr (`--log`); the access log is not a `tracing` layer (see `mcp_edge::access`).
fn init_logs(config: &Config) {
    let filter = EnvFilter::try_new(&config.log)
        .unwrap_or_else(|e| fail(format!("bad --log filter {:?}: {e}", config.log)));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    tracing_subscriber::registry().with(logs).init();
}

fn main() {
    let config = Config::parse();
    if let Some(Command::Health) = config.command {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        std::process::exit(
            match runtime.block_on(mcp_backend::probe::command(config.admin_listen, "/readyz")) {
                code if code == std::process::ExitCode::SUCCESS => 0,
                _ => 1,
            },
        );
    }
    init_logs(&config);

    // Bind errors read better from us than from a pingora panic.
    if let Err(e) = std::net::TcpListener::bind(config.listen) {
        fail(format!(
            "cannot listen on {} (--listen): {e}",
            config.listen
        ));
    }
    let admin_listener = std::net::TcpListener::bind(config.admin_listen).unwrap_or_else(|e| {
        fail(format!(
            "cannot listen on {} (--admin-listen): {e}",
            config.admin_listen
        ))
    });

    let discovery_target = config
        .discover
        .as_deref()
        .map(|d| discover::Target::parse(d).unwrap_or_else(|e| fail(e)));
    let mut specs = config.replica_specs();
    let _embedded = if specs.is_empty() && discovery_target.is_none() {
        let embedded = Embedded::start(config.embedded_replicas.max(1), config.body_limit)
            .unwrap_or_else(|e| fail(format!("cannot start the bundled replicas: {e}")));
        specs = embedded.replicas.clone();
        Some(embedded)
    } else {
        None
    };
    let replicas = Arc::new(match discovery_target {
        Some(_) => Replicas::discovered(config.policy()),
        None => Replicas::new(&specs, config.policy()).unwrap_or_else(|e| fail(e)),
    });

    let mut conf = ServerConf::default();
    conf.threads = config.threads();
    conf.work_stealing = config.work_stealing;
    conf.grace_period_seconds = Some(config.grace_seconds);
    conf.graceful_shutdown_timeout_seconds = Some(1);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let keys = match config.session_keys().unwrap_or_else(|e| fail(e)) {
        Some((current, previous)) => Keys::new(&current, previous.as_ref()),
        None => {
            tracing::warn!(
                "no session key configured (MCP_EDGE_SESSION_KEY or MCP_EDGE_SESSION_KEY_FILE): using a random one, \
                 so legacy sessions will not survive a restart and no other mcp-edge process can serve them"
            );
            Keys::random()
        }
    };
    let auth = config.auth().unwrap_or_else(|e| fail(e));
    let authenticated = auth.is_some();
    let mut edge = Edge::new(&config, replicas.clone(), keys, auth);
    edge.access = AccessLog::start(config.access_log, std::io::stdout())
        .unwrap_or_else(|e| fail(format!("cannot start the access log writer: {e}")));
    let sessions = edge.sessions.clone();
    let metrics = edge.metrics.clone();
    let rate_limit = edge.rate_limit.clone();
    let streams = edge.streams.clone();
    let tools = edge.tools.clone();
    let drain = Arc::new(Drain::default());
    let proxy = Front::new(
        edge,
        Duration::from_millis(config.header_timeout_ms.max(1)),
        drain.clone(),
    );
    let proxy = Listen::bind(proxy, config.listen, config.threads(), config.work_stealing)
        .unwrap_or_else(|e| {
            fail(format!(
                "cannot listen on {} (--listen): {e}",
                config.listen
            ))
        });

    let lifecycle = Lifecycle::default();
    Admin {
        replicas: replicas.clone(),
        sessions: sessions.clone(),
        metrics,
        streams,
        tools: tools.clone(),
        lifecycle: lifecycle.clone(),
    }
    .spawn(admin_listener)
    .unwrap_or_else(|e| fail(format!("cannot serve the admin listener: {e}")));

    let health = HealthCheck {
        replicas: replicas.clone(),
        path: config.health_path.clone(),
        interval: Duration::from_millis(config.health_interval_ms.max(100)),
        timeout: Duration::from_millis(config.health_timeout_ms.max(1)),
        tools,
    };
    let discovery = discovery_target.as_ref().map(|target| Discovery {
        target: target.clone(),
        resolver: discover::resolver(
            config.dns_server,
            Duration::from_millis(config.discover_interval_ms.clamp(200, 5000)),
        )
        .unwrap_or_else(|e| fail(e)),
        interval: Duration::from_millis(config.discover_interval_ms.max(100)),
        replicas: replicas.clone(),
        health: health.clone(),
    });

    println!(
        "mcp-edge {}: MCP at http://{}{}",
        env!("CARGO_PKG_VERSION"),
        config.listen,
        config.path
    );
    println!(
        "  admin: http://{}/healthz, /readyz and /metrics",
        config.admin_listen
    );
    let origin = if _embedded.is_some() {
        "bundled, in-process"
    } else {
        "configured"
    };
    for replica in replicas.all().iter() {
        println!(
            "  replica {} ({origin}): http://{}{}",
            replica.id, replica.authority, replica.path
        );
    }
    if let Some(target) = &discovery_target {
        let server = config
            .dns_server
            .map_or("the system resolver".to_owned(), |s| s.to_string());
        println!(
            "  replicas: every A/AAAA record of {} (port {}, path {}), asked of {server} every {} ms",
            target.name, target.port, target.path, config.discover_interval_ms
        );
    }
    if config.rate_limit > 0.0 {
        println!(
            "  rate limit: {} requests per second per caller",
            config.rate_limit
        );
    }
    if authenticated {
        println!("  bearer authentication on: requests need Authorization: Bearer <token>");
    }
    println!(
        "  {} worker threads, grace period {} s",
        config.threads(),
        config.grace_seconds
    );

    server.add_service(proxy);
    server.add_service(background_service("replica health", health));
    if let Some(discovery) = discovery {
        server.add_service(background_service("replica discovery", discovery));
    }
    server.add_service(background_service("session sweep", Sweep(sessions)));
    if let Some(limit) = rate_limit {
        server.add_service(background_service(
            "rate limit sweep",
            mcp_edge::ratelimit::Sweep(limit),
        ));
    }
    let grace = Duration::from_secs(config.grace_seconds);
    server.add_service(background_service(
        "lifecycle",
        LifecycleWatch {
            lifecycle,
            listen: config.listen,
            drain,
            grace,
        },
    ));
    server.run_forever();
}
