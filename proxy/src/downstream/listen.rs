//! Accepting client connections: one listening socket per worker thread (`SO_REUSEPORT`), and
//! every connection served on the thread that accepted it.
//!
//! pingora's listening service accepts on one thread and hands each connection to a random
//! worker thread, while the socket stays registered with the accepting thread's reactor: with
//! two threads, half of the connections then crossed threads on every readiness event (an
//! eventfd write and a wake-up of the other thread, 0.45 per request measured under load).
//! Here each worker thread owns a runtime, a listening socket of its own on the same address
//! (the kernel spreads new connections over them) and the connections it accepted; replica
//! connections are kept per thread too (`upstream::pool`). With `--work-stealing`, the worker
//! threads form one tokio runtime instead, and tasks may move between them.
//!
//! On shutdown the sockets stop accepting, and [`Front`] ends keep-alive connections that wait
//! for a request; requests in flight go on until pingora's grace period ends the process.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::{
    listeners::DEFAULT_L4_WRITE_BUFFER_SIZE,
    protocols::{
        GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
        TimingDigest, UniqueID, UniqueIDType,
        l4::{listener::Listener, stream::Stream as L4Stream},
        raw_connect::ProxyDigest,
    },
    server::{ListenFds, ShutdownWatch},
    services::Service,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::Front;

/// Pending connections each listening socket queues (as pingora's listeners do).
const BACKLOG: i32 = 65535;

/// The worker threads' runtimes, for [`worker_tasks`].
static WORKERS: std::sync::Mutex<Vec<tokio::runtime::Handle>> = std::sync::Mutex::new(Vec::new());

/// Tasks alive on the worker threads now: a connection is one, a stream's parts a few more
/// (`mcp_edge_worker_tasks`: a count that only grows is a leak).
pub fn worker_tasks() -> usize {
    let workers = WORKERS.lock().expect("not poisoned");
    workers.iter().map(|h| h.metrics().num_alive_tasks()).sum()
}

/// `mcp_edge_worker_tasks`, read at each scrape.
pub struct WorkerTasks;

impl crate::telemetry::registry::Source for WorkerTasks {
    fn collect(&self, out: &mut crate::telemetry::registry::Encoder) {
        out.gauge(
            "mcp_edge_worker_tasks",
            "Tasks alive on the worker threads (connections, and the parts of streams).",
            worker_tasks(),
        );
    }
}

fn register(runtime: &tokio::runtime::Runtime) {
    WORKERS
        .lock()
        .expect("not poisoned")
        .push(runtime.handle().clone());
}

/// The MCP listener as a pingora service.
pub struct Listen {
    front: Arc<Front>,
    sockets: Vec<std::net::TcpListener>,
    work_stealing: bool,
}

impl Listen {
    /// Bind `threads` sockets to `addr` (one per worker thread).
    pub fn bind(
        front: Front,
        addr: SocketAddr,
        threads: usize,
        work_stealing: bool,
    ) -> io::Result<Self> {
        let sockets = (0..threads.max(1))
            .map(|_| socket(addr))
            .collect::<io::Result<_>>()?;
        Ok(Self {
            front: Arc::new(front),
            sockets,
            work_stealing,
        })
    }
}

fn socket(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[async_trait]
impl Service for Listen {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let sockets = std::mem::take(&mut self.sockets);
        let threads = sockets.len();
        if self.work_stealing {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("mcp-edge")
                .enable_all()
                .build();
            let runtime = runtime.expect("a runtime for the worker threads");
            register(&runtime);
            for socket in sockets {
                runtime.spawn(accept(socket, self.front.clone(), shutdown.clone()));
            }
            // The runtime lives as long as the process: pingora ends it after the grace period.
            std::mem::forget(runtime);
        } else {
            for (i, socket) in sockets.into_iter().enumerate() {
                let (front, shutdown) = (self.front.clone(), shutdown.clone());
                std::thread::Builder::new()
                    .name(format!("mcp-edge-{i}"))
                    .spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("a runtime for a worker thread");
                        register(&runtime);
                        runtime.block_on(async {
                            accept(socket, front, shutdown).await;
                            // Connections accepted here are served until the process ends.
                            std::future::pending::<()>().await;
                        });
                    })
                    .expect("a worker thread");
            }
        }
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        self.front.close();
    }

    fn name(&self) -> &str {
        "mcp-edge"
    }

    /// pingora's runtime for this service only starts the worker threads and waits.
    fn threads(&self) -> Option<usize> {
        Some(1)
    }
}

/// Accept connections on `socket` until shutdown, each served on this thread's runtime.
async fn accept(socket: std::net::TcpListener, front: Arc<Front>, mut shutdown: ShutdownWatch) {
    let listener = match tokio::net::TcpListener::from_std(socket) {
        Ok(listener) => Listener::from(listener),
        Err(e) => {
            tracing::error!("cannot listen for MCP connections on this thread: {e}");
            return;
        }
    };
    let mut tidy = tokio::time::interval(crate::memory::EVERY);
    tidy.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = tidy.tick() => {
                crate::memory::collect();
                continue;
            }
            changed = shutdown.changed() => {
                // Shutting down, or the server that would say so is gone.
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        };
        match accepted {
            Ok(mut stream) => {
                if let Err(e) = stream.set_nodelay() {
                    tracing::debug!("TCP_NODELAY on an accepted connection: {e}");
                }
                let front = front.clone();
                tokio::spawn(async move { front.accepted(stream).await });
            }
            Err(e) => {
                tracing::error!("accepting an MCP connection failed: {e}");
                // Out of file descriptors: accepting again fails at once until some close.
                if e.raw_os_error() == Some(24) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// What a client connection's bytes travel over: the TCP stream, or TLS over it.
pub trait Wire: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug + 'static {
    /// The TCP stream underneath (its id and digests are the connection's).
    fn tcp(&self) -> &L4Stream;
}

impl Wire for L4Stream {
    fn tcp(&self) -> &L4Stream {
        self
    }
}

impl Wire for tokio_rustls::server::TlsStream<L4Stream> {
    fn tcp(&self) -> &L4Stream {
        self.get_ref().0
    }
}

/// An accepted connection with pingora's usual write buffer (one segment's worth), so that a
/// response's header and a small body leave in one write (and, over TLS, in one record).
/// pingora's own listeners size it through an API private to pingora. The buffer is held only
/// while it holds bytes: an idle connection keeps none.
#[derive(Debug)]
pub struct Connection<W = L4Stream> {
    io: W,
    out: Vec<u8>,
    /// The byte [`Peek`] waited for, read before anything else.
    peeked: Option<u8>,
    /// Bytes read to tell the protocol, put back to be read again first (HTTP/2's preface).
    rewound: Option<BytesMut>,
}

impl<W: Wire> Connection<W> {
    pub fn new(io: W) -> Self {
        Self {
            io,
            out: Vec::new(),
            peeked: None,
            rewound: None,
        }
    }

    /// Give back bytes read from the connection: the next reads return them first.
    pub fn rewind(&mut self, bytes: BytesMut) {
        debug_assert!(self.peeked.is_none() && self.rewound.is_none());
        self.rewound = Some(bytes).filter(|b| !b.is_empty());
    }

    /// Write out what the buffer holds.
    fn poll_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => drop(self.out.drain(..n)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.out.capacity() > 0 {
            self.out = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: Wire> AsyncRead for Connection<W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(rewound) = &mut this.rewound {
            let n = rewound.len().min(buf.remaining());
            buf.put_slice(&rewound.split_to(n));
            if rewound.is_empty() {
                this.rewound = None;
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(byte) = this.peeked.take() {
            buf.put_slice(&[byte]);
            // And whatever else already arrived, without waiting (an error shows on the next read).
            let _ = Pin::new(&mut this.io).poll_read(cx, buf);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<W: Wire> AsyncWrite for Connection<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.out.len() + buf.len() > DEFAULT_L4_WRITE_BUFFER_SIZE {
            std::task::ready!(this.poll_out(cx))?;
        }
        if buf.len() >= DEFAULT_L4_WRITE_BUFFER_SIZE {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        if this.out.capacity() == 0 {
            this.out.reserve_exact(DEFAULT_L4_WRITE_BUFFER_SIZE);
        }
        this.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_out(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_out(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[async_trait]
impl<W: Wire> Shutdown for Connection<W> {
    async fn shutdown(&mut self) {
        if let Err(e) = AsyncWriteExt::shutdown(self).await {
            tracing::debug!("closing a client connection: {e}");
        }
    }
}

impl<W: Wire> UniqueID for Connection<W> {
    fn id(&self) -> UniqueIDType {
        self.io.tcp().id()
    }
}

impl<W: Wire> Ssl for Connection<W> {}

/// Waits for the client's next byte (an idle keep-alive connection waits here, holding no
/// buffer) and keeps it for the next read. End of stream is `Ok(true)` too: the next read
/// sees it.
#[async_trait]
impl<W: Wire> Peek for Connection<W> {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if let Some(rewound) = &self.rewound {
            if let Some(first) = buf.first_mut() {
                *first = rewound[0];
            }
            return Ok(true);
        }
        if self.peeked.is_none() {
            let mut byte = [0];
            if tokio::io::AsyncReadExt::read(&mut self.io, &mut byte).await? == 1 {
                self.peeked = Some(byte[0]);
            }
        }
        if let (Some(first), Some(byte)) = (buf.first_mut(), self.peeked) {
            *first = byte;
        }
        Ok(true)
    }
}

impl<W: Wire> GetTimingDigest for Connection<W> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.io.tcp().get_timing_digest()
    }
}

impl<W: Wire> GetProxyDigest for Connection<W> {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.io.tcp().get_proxy_digest()
    }
}

impl<W: Wire> GetSocketDigest for Connection<W> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.io.tcp().get_socket_digest()
    }
}
