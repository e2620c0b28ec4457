//! The `mcp-edge` binary: flags, logs, then [`mcp_edge::app::run`].

use clap::Parser;
use mcp_edge::{Config, app::fail, config::Command};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Logs on stderr (`--log`); the access log is not a `tracing` layer (see `mcp_edge::telemetry::access`).
fn init_logs(config: &Config) {
    let filter = EnvFilter::try_new(&config.log)
        .unwrap_or_else(|e| fail(format!("bad --log filter {:?}: {e}", config.log)));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    tracing_subscriber::registry().with(logs).init();
}

/// Transparent huge pages off for this process. mimalloc advises them for its arenas, and then
/// a few bytes touched hold 2 MiB resident: measured, mcp-edge's RSS at rest went 26 → 12 MB
/// without them, and per client held it is the same (benches/RESULTS.md). A proxy's memory is
/// many small pieces per client; its size should follow them.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: a prctl that only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() {
    no_huge_pages();
    let config = Config::parse();
    if let Some(Command::Health) = config.command {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        std::process::exit(
            match runtime.block_on(mcp_protocol::probe::command(config.admin_listen, "/readyz")) {
                code if code == std::process::ExitCode::SUCCESS => 0,
                _ => 1,
            },
        );
    }
    init_logs(&config);
    mcp_edge::app::run(config);
}
