//! The embedded default: bundled mcp-backend replicas started in-process on free loopback
//! ports, so `mcp-edge` with no configuration serves MCP at once.

use std::thread::JoinHandle;

use rand::RngCore;
use tokio_util::sync::CancellationToken;

use crate::upstream::ReplicaSpec;

pub struct Embedded {
    pub replicas: Vec<ReplicaSpec>,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Embedded {
    /// Start `count` replicas (ids r1, r2, …) on their own small runtime. They share one
    /// requestState key, so a multi round-trip retry may land on any of them.
    pub fn start(count: usize, body_limit: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mcp-backend")
            .enable_all()
            .build()?;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let key = hex::encode(key);
        let stop = CancellationToken::new();
        let replicas = runtime.block_on(async {
            let mut replicas = Vec::with_capacity(count);
            for i in 1..=count {
                let id = format!("r{i}");
                let mut config = mcp_backend::Config::embedded(id.clone());
                config.state_key = Some(key.clone());
                config.body_limit = body_limit;
                // mcp-edge enforces Origin; the replicas sit behind it.
                config.allowed_origins = vec!["*".into()];
                config.grace_seconds = 1.0;
                let (addr, _handle) = mcp_backend::spawn(config, stop.clone()).await?;
                replicas.push(ReplicaSpec {
                    id: Some(id),
                    url: format!("http://{addr}/mcp"),
                });
            }
            Ok::<_, std::io::Error>(replicas)
        })?;
        // The replicas' worker thread hands freed memory back like mcp-edge's own.
        runtime.spawn(crate::memory::tidy());
        let keep = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mcp-backend".into())
            .spawn(move || runtime.block_on(keep.cancelled()))?;
        Ok(Self {
            replicas,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
