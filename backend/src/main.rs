use clap::Parser;
use mcp_backend::{Config, Replica};
use tracing_subscriber::EnvFilter;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    if let Some(mcp_backend::config::Command::Health) = config.command {
        return mcp_protocol::probe::command(config.listen, "/readyz").await;
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    if let Err(reason) = config.state_key_bytes() {
        eprintln!("mcp-backend: {reason}");
        return std::process::ExitCode::from(2);
    }
    if config.state_key.is_none() && config.state_key_file.is_none() {
        tracing::warn!(
            "no MCP_BACKEND_STATE_KEY: multi round-trip requestState opens only on this process; \
             give every replica behind one address the same key"
        );
    }
    let replica = match Replica::bind(config.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp-backend: cannot listen on {}: {e}", config.listen);
            return std::process::ExitCode::from(1);
        }
    };
    tracing::info!(
        listen = %replica.local_addr(),
        replica_id = %config.replica_id(),
        catalog = ?config.catalog(),
        "serving MCP at http://{}/mcp", replica.local_addr()
    );
    match replica.serve(terminate()).await {
        Ok(()) => {
            tracing::info!("stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-backend: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// SIGTERM or Ctrl-C.
async fn terminate() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: draining"),
    }
}
