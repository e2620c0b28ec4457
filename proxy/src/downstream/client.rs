//! One request on the client's connection: the only code that reads from or writes to
//! pingora's `ServerSession` once its head is read (the phases see a [`Client`]).

use std::{net::SocketAddr, time::Duration};

use bytes::{Bytes, BytesMut};
use pingora::{
    Error, ErrorType, Result,
    http::{RequestHeader, ResponseHeader},
    protocols::http::ServerSession,
};

use crate::{
    answer::{Failure, Reply},
    budget::Times,
};

/// Most of an oversized body the proxy reads and throws away so the client sees its 413.
const DISCARD_LIMIT: usize = 64 << 20;

/// The client's side of one request.
pub struct Client<'s> {
    session: &'s mut ServerSession,
    /// The status of an answer the proxy made itself.
    replied: Option<u16>,
    times: Times,
    /// The request's `Origin`, when it is allowed: every answer carries CORS headers for it.
    cors: Option<String>,
}

/// What the access log and metrics read of the client's side once the request is over.
pub struct Traffic {
    pub status: u16,
    pub bytes_in: usize,
    pub bytes_out: usize,
    /// The request came as an HTTP/2 stream.
    pub http2: bool,
}

impl<'s> Client<'s> {
    pub fn new(session: &'s mut ServerSession, times: Times) -> Self {
        Self {
            session,
            replied: None,
            times,
            cors: None,
        }
    }

    /// A page of this allowed origin made the request (`None`: no `Origin`, or another): every
    /// answer is readable there (`mcp_protocol::cors`).
    pub fn allow_origin(&mut self, page: Option<String>) {
        self.cors = page;
    }

    /// The CORS headers of an allowed origin, on an answer's head (instead of any a replica
    /// set: the edge decides who may read).
    fn decorate(&self, head: &mut ResponseHeader) -> Result<()> {
        if let Some(origin) = &self.cors {
            for name in mcp_protocol::cors::SET_BY_EDGE {
                head.remove_header(name);
            }
            for (name, value) in mcp_protocol::cors::response(origin) {
                head.append_header(name, value)?;
            }
        }
        Ok(())
    }

    pub fn header(&self) -> &RequestHeader {
        self.session.req_header()
    }

    /// The client's IP address and port (none for a Unix socket).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.session
            .client_addr()
            .and_then(|a| a.as_inet())
            .copied()
    }

    /// Whether the response's head has been written.
    pub fn answered(&self) -> bool {
        self.session.response_written().is_some()
    }

    /// Read the whole request body, bounded by `limit` and by the body deadline. `Ok(Err(413))`
    /// when it is too large: it was read and discarded (up to [`DISCARD_LIMIT`], for a few
    /// seconds) so that a client still sending it can read the 413; beyond that the connection
    /// closes. `Ok(Err(408))` when it did not arrive in time (the connection closes after it).
    pub async fn read_body(
        &mut self,
        limit: usize,
        declared: Option<usize>,
    ) -> Result<std::result::Result<Bytes, Reply>> {
        let too_large = || {
            let message = format!("request body exceeds the limit of {limit} bytes");
            Reply::error(413, mcp_protocol::error::INVALID_REQUEST, message)
        };
        if declared.is_some_and(|length| length > limit) {
            self.discard(declared).await;
            return Ok(Err(too_large()));
        }
        let deadline = self.times.body;
        let stalled = || {
            let message = format!(
                "the request body did not arrive within {} s (--body-timeout-seconds)",
                deadline.as_secs()
            );
            Reply::error(408, mcp_protocol::error::INVALID_REQUEST, message)
        };
        let outcome = {
            let session = &mut *self.session;
            let read = std::pin::pin!(async {
                let mut body = BytesMut::new();
                while let Some(chunk) = session.read_request_body().await? {
                    if body.len() + chunk.len() > limit {
                        return Ok::<_, Box<Error>>(None);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Some(body.freeze()))
            });
            crate::budget::within(deadline, read).await
        };
        match outcome {
            Err(_) => Ok(Err(stalled())),
            Ok(Err(e)) if e.etype() == &ErrorType::ReadTimedout => Ok(Err(stalled())),
            Ok(Err(e)) => Err(e.into_down()),
            Ok(Ok(Some(body))) => Ok(Ok(body)),
            Ok(Ok(None)) => {
                self.discard(declared).await;
                Ok(Err(too_large()))
            }
        }
    }

    /// Read and drop the rest of a rejected body, within bounds; past them the connection closes.
    async fn discard(&mut self, declared: Option<usize>) {
        if declared.is_some_and(|length| length > DISCARD_LIMIT) {
            return;
        }
        self.session
            .set_total_drain_timeout(Some(Duration::from_secs(5)));
        let _ = self.session.drain_request_body().await;
    }

    /// Write the proxy's own answer and end the request.
    pub async fn reply(&mut self, reply: &Reply) -> Result<()> {
        let body = reply.body();
        let mut header = ResponseHeader::build(reply.status, Some(4))?;
        if let Some(body) = &body {
            header.insert_header("content-type", mcp_protocol::headers::JSON)?;
            header.insert_header("content-length", body.len().to_string())?;
        } else if reply.status != 204 {
            // (A 204 has no body and must not say a length: RFC 9110 §8.6.)
            header.insert_header("content-length", "0")?;
        }
        for (name, value) in &reply.headers {
            header.append_header(*name, value.as_str())?;
        }
        self.decorate(&mut header)?;
        self.replied = Some(reply.status);
        // A body we did not read must not be taken for the next request on this connection.
        if !self.session.is_body_done() {
            self.session.set_keepalive(None);
        }
        let session = &mut *self.session;
        let write = std::pin::pin!(async {
            session.write_response_header(Box::new(header)).await?;
            session
                .write_response_body(body.unwrap_or_default(), true)
                .await
        });
        sent(crate::budget::within(self.times.send, write).await)
    }

    /// The time budgets this connection runs under.
    pub fn times(&self) -> Times {
        self.times
    }

    /// The replica's response head, on its way to the client.
    pub async fn write_head(&mut self, mut head: Box<ResponseHeader>) -> Result<()> {
        self.decorate(&mut head)?;
        let write = std::pin::pin!(self.session.write_response_header(head));
        sent(crate::budget::within(self.times.send, write).await)
    }

    /// A JSON-RPC message made here as the whole response: 200, JSON, its length.
    pub async fn write_json(&mut self, message: &[u8]) -> Result<()> {
        let mut head = ResponseHeader::build(200, Some(2))?;
        head.insert_header("content-type", mcp_protocol::headers::JSON)?;
        head.insert_header("content-length", message.len().to_string())?;
        self.write_head(Box::new(head)).await?;
        self.write_body(Bytes::copy_from_slice(message), true).await
    }

    /// A keep-alive comment on an SSE response made here ([`mcp_protocol::sse::KEEP_ALIVE`]).
    pub async fn keep_alive(&mut self) -> Result<()> {
        let comment = Bytes::from_static(mcp_protocol::sse::KEEP_ALIVE);
        self.write_body(comment, false).await
    }

    /// The head of an SSE response made here (a bridged call's, a listen stream's): no caching,
    /// no buffering by a proxy in front (`X-Accel-Buffering: no`), chunked.
    pub async fn write_sse_head(&mut self, served_by: Option<&str>) -> Result<()> {
        let mut head = ResponseHeader::build(200, Some(5))?;
        for (name, value) in [
            ("content-type", mcp_protocol::headers::SSE),
            ("cache-control", "no-cache"),
            ("x-accel-buffering", "no"),
            ("transfer-encoding", "chunked"),
        ] {
            head.insert_header(name, value)?;
        }
        if let Some(replica) = served_by {
            head.insert_header(mcp_protocol::headers::SERVED_BY, replica)?;
        }
        self.write_head(Box::new(head)).await
    }

    /// A chunk of the response body; `end`: the last. An empty chunk that does not end the body
    /// writes nothing (pingora's rule).
    pub async fn write_body(&mut self, chunk: Bytes, end: bool) -> Result<()> {
        let write = std::pin::pin!(self.session.write_response_body(chunk, end));
        sent(crate::budget::within(self.times.send, write).await)
    }

    /// While a replica works, the client's connection is watched: closing it (how a 2026-07-28
    /// client cancels) drops the replica's side too.
    pub fn abort_on_close(&mut self) {
        self.session.set_abort_on_close(true);
    }

    /// Run `work` until it completes, or until the client closes its connection (`Err`).
    pub async fn unless_gone<F: Future>(
        &mut self,
        work: F,
    ) -> std::result::Result<F::Output, Box<Error>> {
        tokio::select! {
            done = work => Ok(done),
            gone = gone(self.session) => Err(gone),
        }
    }

    /// The client's answer when a connection broke: a 502/504 if nothing was written yet, a
    /// last error event if a stream broke (`streamed`: the request it was answering). A client
    /// that went away gets nothing (it is not there), and is not logged as a failure: in
    /// 2026-07-28 it is how a client cancels.
    pub async fn fail(&mut self, e: &Error, id: Option<&str>, streamed: Option<&str>) {
        if e.esource() == &pingora::ErrorSource::Downstream {
            if !matches!(
                e.etype(),
                ErrorType::ConnectionClosed
                    | ErrorType::ReadError
                    | ErrorType::WriteError
                    | ErrorType::WriteTimedout
                    // An HTTP/2 stream the client reset, or a connection it closed.
                    | ErrorType::H2Error
            ) {
                tracing::error!("client connection failed: {e}");
            }
            return;
        }
        tracing::error!("request failed: {e}");
        let failure = Failure::Cut(e.etype().clone());
        if !self.answered() {
            let _ = self.reply(&failure.reply(id)).await;
        } else if let Some(id) = streamed {
            let _ = self.write_body(failure.last_event(id), true).await;
        }
    }

    /// What was exchanged, once the request is over.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            status: self
                .session
                .response_written()
                .map(|h| h.status.as_u16())
                .or(self.replied)
                .unwrap_or(0),
            bytes_in: self.session.body_bytes_read(),
            bytes_out: self.session.body_bytes_sent(),
            http2: self.session.is_http2(),
        }
    }
}

/// How a write to the client bounded by the send timeout ended; its errors are the client's.
fn sent(write: std::result::Result<Result<()>, ()>) -> Result<()> {
    match write {
        Ok(written) => written.map_err(|e| e.into_down()),
        Err(_) => Err(Error::explain(
            ErrorType::WriteTimedout,
            "the client read nothing for --send-timeout-seconds",
        )
        .into_down()),
    }
}

/// Resolves when the client closes its connection (never while it stays open).
async fn gone(session: &mut ServerSession) -> Box<Error> {
    loop {
        match session.read_body_or_idle(true).await {
            Err(e) => return e.into_down(),
            Ok(_) => continue,
        }
    }
}
