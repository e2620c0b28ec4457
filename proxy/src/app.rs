//! From flags to a running process: the shared state built once ([`edge`]), the bundled
//! replicas when none are configured, and the services pingora runs (the MCP listener, the
//! admin listener, health checks, discovery, sweeps, the lifecycle watch).

use std::{sync::Arc, time::Duration};

use pingora::{
    server::{Server, configuration::ServerConf},
    services::background::background_service,
};

use crate::{
    Config,
    admin::{Admin, Lifecycle, LifecycleWatch},
    admit::Admission,
    auth::Auth,
    downstream::{Front, Http2, listen::Listen, tls::Tls},
    drain::Drain,
    edge::Edge,
    embedded::Embedded,
    exchange::Upstream,
    inflight::{Owners, Streams},
    session::{
        Keys, Sessions, Sweep,
        peers::{PeerKeys, Peers},
    },
    state::State,
    telemetry::{access::AccessLog, metrics::Metrics, registry::Registry},
    ticker::Ticker,
    tools::KnownTools,
    upstream::{
        Replicas,
        attempt::Timeouts,
        discover::{self, Discovery},
        health::HealthCheck,
        pool::Pool,
    },
};

/// How long an idle connection to a replica is kept for the next request.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

/// Print why mcp-edge cannot start, and exit 2.
pub fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("mcp-edge: {message}");
    std::process::exit(2);
}

/// How long a replica may take: to connect, to its first byte, between two reads.
fn timeouts(config: &Config) -> Timeouts {
    Timeouts {
        connect: config.connect_timeout(),
        first_byte: config.first_byte_timeout(),
        idle: config.stream_idle(),
    }
}

/// What the process shares, from the flags.
pub fn state(
    config: &Config,
    replicas: Arc<Replicas>,
    keys: Keys,
    peer_keys: Option<PeerKeys>,
) -> State {
    let metrics = Arc::new(Metrics::default());
    let sessions = Sessions::new(
        keys,
        Duration::from_secs(config.session_lifetime_seconds),
        Duration::from_secs(config.session_idle_seconds),
        config.max_tracked_sessions,
    )
    .with_start_limit(config.session_start_limit());
    State {
        sessions: Arc::new(if config.session_format == 1 {
            sessions.without_profiles()
        } else {
            sessions
        }),
        owners: Arc::new(Owners::default()),
        streams: Arc::new(Streams::default()),
        tools: Arc::new(KnownTools::default()),
        bridges: Arc::new(crate::bridge::Bridges::new(
            config.bridge,
            config.max_bridges,
            Duration::from_secs(config.bridge_input_timeout_seconds.max(1)),
        )),
        push: crate::push::Push::new(
            config.push,
            replicas.clone(),
            timeouts(config),
            metrics.spent.clone(),
        ),
        tasks: Arc::new(crate::tasks::TaskCounts::default()),
        peers: Arc::new(Peers::new(&config.peers, peer_keys)),
        replicas,
        metrics,
    }
}

/// The request path, over the shared `state`.
pub fn edge(config: &Config, state: State, auth: Option<Auth>) -> Edge {
    let limits = config.limits();
    let upstream = Arc::new(Upstream {
        replicas: state.replicas.clone(),
        pool: Pool::new(UPSTREAM_IDLE),
        timeouts: timeouts(config),
        metrics: state.metrics.clone(),
    });
    let bridge = crate::bridge::Driver {
        bridges: state.bridges.clone(),
        upstream: upstream.clone(),
        tools: state.tools.clone(),
        streams: state.streams.clone(),
        limits,
        own_auth: auth.is_some(),
        peers: state.peers.clone(),
    };
    let push = crate::push::stream::Driver {
        push: state.push.clone(),
        streams: state.streams.clone(),
        limits,
        peers: state.peers.clone(),
    };
    Edge {
        admission: Admission {
            limits,
            path: config.path.clone(),
            auth,
            rate_limit: config.rate_limit().map(Arc::new),
            origins: mcp_protocol::post::Origins::parse(&config.allowed_origins),
            metrics: state.metrics.clone(),
        },
        upstream,
        bridge,
        push,
        body_limit: config.body_limit,
        access: AccessLog::start(config.access_log, std::io::stdout())
            .unwrap_or_else(|e| fail(format!("cannot start the access log writer: {e}"))),
        state,
    }
}

/// Start everything and serve until shutdown.
pub fn run(config: Config) -> ! {
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

    let conf = ServerConf {
        threads: config.threads(),
        work_stealing: config.work_stealing,
        grace_period_seconds: Some(config.grace_seconds),
        graceful_shutdown_timeout_seconds: Some(1),
        fast_timeout_to_tokio_threshold_seconds: Some(crate::budget::TOKIO_TIMERS_ABOVE_SECONDS),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let keys = match config.session_keys().unwrap_or_else(|e| fail(e)) {
        Some((current, previous)) => (
            Keys::new(&current, previous.as_ref()),
            Some(PeerKeys::derive(&current, previous.as_ref())),
        ),
        None if !config.peers.is_empty() => fail(
            "--peer needs the session key every peer shares (--session-key or \
             --session-key-file): peers prove themselves with a key derived from it",
        ),
        None => {
            tracing::warn!(
                "no session key configured (MCP_EDGE_SESSION_KEY or MCP_EDGE_SESSION_KEY_FILE): using a random one, \
                 so legacy sessions will not survive a restart and no other mcp-edge process can serve them"
            );
            (Keys::random(), None)
        }
    };
    let (keys, peer_keys) = keys;
    let auth = config.auth().unwrap_or_else(|e| fail(e));
    let authenticated = auth.is_some();
    if !authenticated && config.allowed_origins.iter().any(|o| o.trim() == "*") {
        tracing::warn!(
            "--allowed-origins * without --auth-tokens: any web page its visitors open can call \
             this endpoint and read its answers (CORS); list the origins, or require tokens"
        );
    }
    let state = state(&config, replicas.clone(), keys, peer_keys.clone());
    let edge = edge(&config, state.clone(), auth);
    let mut registry = registry(&edge);
    let rate_limit = edge.admission.rate_limit.clone();
    let drain = Arc::new(Drain::default());
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let handshake = Duration::from_millis(config.tls_handshake_timeout_ms.max(1));
            let tls = Tls::new(cert, key, handshake, config.http2).unwrap_or_else(|e| fail(e));
            Some(Arc::new(tls))
        }
        _ => None,
    };
    let http2 = config.http2.then_some(Http2 {
        max_streams: config.http2_max_streams,
    });
    if let Some(tls) = &tls {
        registry.register(tls.clone());
    }
    let proxy = Front::new(
        edge,
        Duration::from_millis(config.header_timeout_ms.max(1)),
        config.times(),
        drain.clone(),
        tls.clone(),
        http2,
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
        state: state.clone(),
        registry,
        lifecycle: lifecycle.clone(),
        peer_keys,
        body_limit: config.body_limit,
    }
    .spawn(admin_listener)
    .unwrap_or_else(|e| fail(format!("cannot serve the admin listener: {e}")));

    let health = HealthCheck {
        replicas: replicas.clone(),
        path: config.health_path.clone(),
        interval: Duration::from_millis(config.health_interval_ms.max(100)),
        timeout: Duration::from_millis(config.health_timeout_ms.max(1)),
        tools: state.tools.clone(),
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
        failing: Default::default(),
    });

    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "mcp-edge {}: MCP at {scheme}://{}{}",
        env!("CARGO_PKG_VERSION"),
        config.listen,
        config.path
    );
    if let Some(tls) = &tls {
        println!(
            "  TLS: certificate {} (read again when it changes), HTTP/2 {}",
            tls.certificate.path().display(),
            if config.http2 { "and HTTP/1.1" } else { "off" }
        );
    } else if config.http2 {
        println!("  HTTP/1.1, and HTTP/2 with prior knowledge (h2c)");
    }
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
    let mut ticker = Ticker::default();
    ticker.add(health);
    if let Some(discovery) = discovery {
        ticker.add(discovery);
    }
    let start_limit = state.sessions.start_limit();
    ticker.add(Sweep(state.sessions.clone()));
    ticker.add(crate::inflight::Sweep(state.owners.clone()));
    ticker.add(crate::push::Tick(state.push.clone()));
    ticker.add(crate::memory::Tidy);
    if let Some(tls) = &tls {
        ticker.add(crate::downstream::tls::Reload(tls.certificate.clone()));
    }
    for limit in [rate_limit, start_limit].into_iter().flatten() {
        ticker.add(crate::ratelimit::Sweep(limit));
    }
    server.add_service(background_service("periodic jobs", ticker));
    let grace = Duration::from_secs(config.grace_seconds);
    server.add_service(background_service(
        "lifecycle",
        LifecycleWatch {
            lifecycle,
            listen: config.listen,
            drain,
            grace,
            state,
        },
    ));
    server.run_forever();
}

/// Every metric family of the process, each subsystem's own (`/metrics` writes them in this
/// order).
fn registry(edge: &Edge) -> Registry {
    let state = &edge.state;
    let mut registry = Registry::default();
    registry.register(state.metrics.clone());
    registry.register(state.streams.clone());
    registry.register(state.tools.clone());
    registry.register(state.owners.clone());
    if let Some(limit) = &edge.admission.rate_limit {
        registry.register(limit.clone());
    }
    if let Some(access) = &edge.access {
        registry.register(Arc::new(access.clone()));
    }
    registry.register(Arc::new(crate::downstream::listen::WorkerTasks));
    registry.register(state.sessions.clone());
    registry.register(state.replicas.clone());
    registry.register(state.bridges.clone());
    registry.register(state.push.clone());
    registry.register(state.tasks.clone());
    registry
}
