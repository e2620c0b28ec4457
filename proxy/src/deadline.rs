//! A deadline for request headers: a connection whose next request's headers are not complete
//! within `--header-timeout-ms` is closed (a client trickling its headers holds a connection
//! no longer than that). The clock starts when the connection is ready for a request — when it
//! was accepted, or when the previous response ended — so an idle keep-alive connection is
//! closed after the same time.
//!
//! pingora reads request headers before any proxy phase runs and bounds each read, not the
//! whole; so the deadline wraps pingora's per-request entry point, and `request_filter` marks
//! (through a task-local flag) that the headers arrived.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use pingora::{apps::ServerApp, protocols::Stream, server::ShutdownWatch};

use crate::metrics::{Event, Metrics};

tokio::task_local! {
    static HEADERS_READ: Arc<AtomicBool>;
}

/// Called when a request's headers are complete (from `request_filter`).
pub fn headers_read() {
    let _ = HEADERS_READ.try_with(|read| read.store(true, Ordering::Relaxed));
}

/// pingora's application `A`, with the header deadline around each request.
pub struct HeaderDeadline<A> {
    pub inner: Arc<A>,
    pub limit: Duration,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeaderDeadline<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let read = Arc::new(AtomicBool::new(false));
        let request = HEADERS_READ.scope(read.clone(), self.inner.process_new(stream, shutdown));
        tokio::pin!(request);
        tokio::select! {
            reuse = &mut request => return reuse,
            () = pingora_timeout::fast_timeout::fast_sleep(self.limit) => {}
        }
        if read.load(Ordering::Relaxed) {
            return request.await;
        }
        // Dropping the request closes the connection.
        self.metrics.count(Event::HeaderTimeout);
        None
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}
