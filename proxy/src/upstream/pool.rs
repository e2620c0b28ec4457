//! Idle upstream connections, kept by each worker thread for itself.
//!
//! pingora 0.9's pool hands every released connection to an idle-watch task spawned on a
//! random worker thread: the next request on another thread then races that task for the
//! connection (measured: about 5 % of requests lost the race and opened a new connection) and
//! every readiness event crosses threads. Here a worker thread keeps the connections its own
//! requests released, per replica address: no lock, no watch task, no `getpeername` on reuse.
//! A connection is checked when taken (readiness already known to the runtime, no system
//! call: closed or holding unexpected bytes → dropped) and dropped after the idle timeout,
//! by a sweep on the thread's own runtime and whenever the thread touches the pool.

use std::{
    cell::RefCell,
    collections::HashMap,
    net::SocketAddr,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::task::noop_waker_ref;
use pingora::{
    Result, connectors::TransportConnector, protocols::Stream, upstreams::peer::HttpPeer,
};
use tokio::io::{AsyncRead, ReadBuf};

/// Idle connections a thread keeps per replica; more are closed when released.
pub const MAX_IDLE_PER_REPLICA: usize = 256;

struct Idle {
    stream: Stream,
    since: Instant,
}

#[derive(Default)]
struct ThreadPool {
    idle: HashMap<SocketAddr, Vec<Idle>, foldhash::fast::RandomState>,
    last_sweep: Option<Instant>,
    sweeper: bool,
}

thread_local! {
    static IDLE: RefCell<ThreadPool> = RefCell::new(ThreadPool::default());
}

/// Connections to replicas: a pooled one when the thread has one, else a new one.
pub struct Pool {
    connector: TransportConnector,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(idle_timeout: Duration) -> Self {
        Self {
            connector: TransportConnector::new(None),
            idle_timeout,
        }
    }

    /// A connection to `peer`; `true` when it was pooled (it may still turn out closed by the
    /// replica a moment ago: the caller may try once more on a new one).
    pub async fn get(&self, peer: &HttpPeer, addr: SocketAddr) -> Result<(Stream, bool)> {
        if let Some(stream) = self.take(addr) {
            return Ok((stream, true));
        }
        // Boxed: pingora's connect future carries a TLS handshake's state (8 KiB, for plain TCP
        // too), which would otherwise sit in every request's future for the request's life.
        Ok((Box::pin(self.connector.new_stream(peer)).await?, false))
    }

    fn take(&self, addr: SocketAddr) -> Option<Stream> {
        IDLE.with_borrow_mut(|pool| {
            let idle = pool.idle.get_mut(&addr)?;
            // Newest first: the one most likely still open, and warm.
            while let Some(Idle { mut stream, since }) = idle.pop() {
                if since.elapsed() < self.idle_timeout && still_idle(&mut stream) {
                    return Some(stream);
                }
            }
            None
        })
    }

    /// Keep a connection whose last response was read in full, for the next request to `addr`.
    pub fn put(&self, addr: SocketAddr, mut stream: Stream) {
        if !still_idle(&mut stream) {
            return;
        }
        let now = Instant::now();
        let spawn_sweeper = IDLE.with_borrow_mut(|pool| {
            let idle = pool.idle.entry(addr).or_default();
            if idle.len() < MAX_IDLE_PER_REPLICA {
                idle.push(Idle { stream, since: now });
            }
            if pool
                .last_sweep
                .is_none_or(|at| now.duration_since(at) > self.idle_timeout / 4)
            {
                pool.sweep(now, self.idle_timeout);
            }
            !std::mem::replace(&mut pool.sweeper, true)
        });
        if spawn_sweeper {
            self.spawn_sweeper();
        }
    }

    /// On a thread with its own runtime (pingora's default), a task on that runtime closes
    /// connections that outlived the idle timeout even when no request comes. (With work
    /// stealing, tasks move between threads; the sweeps on `put` are what remains.)
    fn spawn_sweeper(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
            return;
        }
        let timeout = self.idle_timeout;
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(timeout / 4);
            loop {
                tick.tick().await;
                IDLE.with_borrow_mut(|pool| pool.sweep(Instant::now(), timeout));
            }
        });
    }
}

impl ThreadPool {
    fn sweep(&mut self, now: Instant, timeout: Duration) {
        self.last_sweep = Some(now);
        self.idle.retain(|_, idle| {
            idle.retain_mut(|c| now.duration_since(c.since) < timeout && still_idle(&mut c.stream));
            !idle.is_empty()
        });
    }
}

/// Whether an idle connection can take a request: nothing to read and not closed. Uses the
/// readiness the runtime already knows; a system call only when the socket became readable.
fn still_idle(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(noop_waker_ref());
    matches!(
        std::pin::Pin::new(stream).poll_read(&mut cx, &mut buf),
        Poll::Pending
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{io::AsyncReadExt, net::TcpListener};

    #[tokio::test(flavor = "current_thread")]
    async fn released_connections_are_reused_until_the_replica_closes_them() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            // The first connection is closed on request; later ones stay open.
            let (first, _) = listener.accept().await.unwrap();
            let _ = closed_tx.send(first);
            while let Ok((mut more, _)) = listener.accept().await {
                tokio::spawn(async move {
                    while more.read(&mut [0u8; 64]).await.is_ok_and(|n| n > 0) {}
                });
            }
        });
        let pool = Pool::new(Duration::from_secs(60));
        let peer = HttpPeer::new(addr, false, String::new());

        let (stream, reused) = pool.get(&peer, addr).await.unwrap();
        assert!(!reused, "an empty pool connects");
        pool.put(addr, stream);
        let (stream, reused) = pool.get(&peer, addr).await.unwrap();
        assert!(reused, "a released connection is taken again");
        pool.put(addr, stream);

        // The replica closes it: once the runtime has seen that, it is no longer handed out.
        drop(closed_rx.recv().await.unwrap());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (stream, reused) = pool.get(&peer, addr).await.unwrap();
            if !reused {
                drop(stream);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a closed connection was still handed out after 5 s"
            );
            pool.put(addr, stream);
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn idle_connections_expire() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                open.push(c);
            }
        });
        let pool = Pool::new(Duration::ZERO);
        let peer = HttpPeer::new(addr, false, String::new());
        let (stream, _) = pool.get(&peer, addr).await.unwrap();
        pool.put(addr, stream);
        let (_, reused) = pool.get(&peer, addr).await.unwrap();
        assert!(
            !reused,
            "a connection idle longer than the timeout is not reused"
        );
    }
}
