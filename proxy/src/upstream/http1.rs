//! A replica's HTTP/1.1 response, read with buffers sized for what arrives.
//!
//! pingora's HTTP/1 client gives every response a 64 KiB body buffer (and a 4 KiB head buffer)
//! for as long as the response lasts: 2 000 open SSE streams held 131 MB of them (heaptrack),
//! about two thirds of mcp-edge's memory per stream. Here the head is read into a buffer of
//! 2 KiB that grows only for a larger head, a body read takes 4 KiB and doubles while reads fill
//! it (up to 64 KiB, for large bodies), and the buffer is let go whenever it is empty: an SSE
//! stream waiting for its next event holds no buffer at all (it waits for one byte, then
//! reads). Framing as RFC 9112 §6.3: no body for 1xx, 204 and 304; chunked when it is the last
//! transfer coding; else Content-Length; else until the replica closes (and the connection is
//! not reused).

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use pingora::{Error, ErrorType, Result, http::ResponseHeader, protocols::Stream};
use tokio::io::AsyncReadExt;

/// The first read of a head.
const HEAD_READ: usize = 2048;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_FIELDS: usize = 128;
/// A body's first read, and the largest one.
const BODY_READ: usize = 4096;
const MAX_BODY_READ: usize = 64 * 1024;
/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// The body is over (or there is none).
    Done,
    /// Bytes still to come.
    Length(u64),
    /// Until the replica closes the connection.
    Close,
    Chunked(Chunk),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// Bytes of the chunk still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    End,
    /// Trailer lines, up to an empty one.
    Trailers,
}

/// The rest of a response once its head was read.
pub struct Body {
    stream: Stream,
    buf: BytesMut,
    framing: Framing,
    keepalive: bool,
    /// Wait for a byte before taking a buffer (an event stream's long silences).
    lean: bool,
    read_size: usize,
    idle: Duration,
}

fn closed<T>(what: &'static str) -> Result<T> {
    Error::e_explain(ErrorType::ConnectionClosed, what)
}

fn invalid<T>(what: impl Into<String>) -> Result<T> {
    Error::e_explain(ErrorType::InvalidHTTPHeader, what.into())
}

fn read_failed<T>(e: std::io::Error) -> Result<T> {
    Error::e_because(ErrorType::ReadError, "while reading from the replica", e)
}

/// `work` within `limit` (a silence of the replica's).
async fn timed<T>(limit: Duration, work: impl Future<Output = std::io::Result<T>>) -> Result<T> {
    pingora_timeout::fast_timeout::fast_timeout(limit, work)
        .await
        .or_else(|_| Error::e_explain(ErrorType::ReadTimedout, "waiting for the replica"))?
        .or_else(read_failed)
}

/// Read the response head (1xx answers skipped) within `first_byte`; the body follows with
/// `idle` as the longest silence between two reads.
pub async fn read(
    mut stream: Stream,
    first_byte: Duration,
    idle: Duration,
) -> Result<(Box<ResponseHeader>, Body)> {
    let mut buf = BytesMut::new();
    let head = pingora_timeout::fast_timeout::fast_timeout(first_byte, async {
        loop {
            while let Some(head) = parse_head(&mut buf)? {
                if !head.status.is_informational() {
                    return Ok(head);
                }
            }
            if buf.len() >= MAX_HEAD {
                return invalid("a replica's response head is over 64 KiB");
            }
            buf.reserve(HEAD_READ);
            if stream.read_buf(&mut buf).await.or_else(read_failed)? == 0 {
                return closed("the replica closed the connection before its response head");
            }
        }
    })
    .await
    .or_else(|_| {
        Error::e_explain(
            ErrorType::ReadTimedout,
            "waiting for the replica's response head",
        )
    })??;
    let framing = framing(&head)?;
    let keepalive = framing != Framing::Close && keeps_alive(&head);
    let lean = head
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    Ok((
        head,
        Body {
            stream,
            buf,
            framing,
            keepalive,
            lean,
            read_size: BODY_READ,
            idle,
        },
    ))
}

/// The head at the start of `buf`, taken out of it; `None` while incomplete.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Box<ResponseHeader>>> {
    if buf.is_empty() {
        return Ok(None);
    }
    // Left uninitialised: zeroing 128 fields (4 KiB) on every response cost more instructions
    // than the parse itself.
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut fields,
    );
    let length = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return invalid(format!("a replica's response head: {e}")),
    };
    let status = response.code.unwrap_or_default();
    let version = match response.version {
        Some(0) => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    // The head's own copy: its fields outlive the read buffer (pingora keeps the head written
    // to the client for the response's life), and should not hold the buffer with them.
    let raw = Bytes::copy_from_slice(&buf[..length]);
    let start = buf.as_ptr() as usize;
    let slice = |part: &[u8]| {
        let from = part.as_ptr() as usize - start;
        raw.slice(from..from + part.len())
    };
    let mut head = Box::new(ResponseHeader::build(status, Some(response.headers.len()))?);
    head.set_version(version);
    for field in response.headers.iter() {
        let value = http::HeaderValue::from_maybe_shared(slice(field.value))
            .or_else(|e| invalid(format!("a replica's response header: {e}")))?;
        head.append_header(slice(field.name.as_bytes()), value)?;
    }
    buf.advance(length);
    Ok(Some(head))
}

fn framing(head: &ResponseHeader) -> Result<Framing> {
    let status = head.status.as_u16();
    if status == 204 || status == 304 {
        return Ok(Framing::Done);
    }
    let headers = &head.headers;
    if let Some(last) = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        let chunked = last
            .as_bytes()
            .rsplit(|b| *b == b',')
            .next()
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Close
        });
    }
    let mut length = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        let n = std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        match (n, length) {
            (None, _) => return invalid("a replica's Content-Length is not a number"),
            (Some(n), Some(seen)) if n != seen => {
                return invalid("a replica sent two different Content-Lengths");
            }
            (Some(n), _) => length = Some(n),
        }
    }
    Ok(match length {
        Some(0) => Framing::Done,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

fn keeps_alive(head: &ResponseHeader) -> bool {
    let says = |token: &[u8]| {
        head.headers
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| {
                v.as_bytes()
                    .split(|b| *b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
            })
    };
    match head.version {
        http::Version::HTTP_10 => says(b"keep-alive"),
        _ => !says(b"close"),
    }
}

impl Body {
    /// Read more into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> Result<usize> {
        let mut peeked = false;
        if self.buf.is_empty() {
            // An empty view may still hold its allocation (and bytes' reserve would double it).
            self.buf = BytesMut::new();
            if self.lean {
                // Hold no buffer through a silence: wait for a byte first (the stream keeps it).
                // The end of the stream shows as a short read: the read below sees it.
                let peek = async {
                    match self.stream.try_peek(&mut [0]).await {
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
                        other => other,
                    }
                };
                peeked = timed(self.idle, peek).await?;
            }
        }
        self.buf.reserve(self.read_size);
        let room = self.buf.capacity() - self.buf.len();
        let mut n = timed(self.idle, self.stream.read_buf(&mut self.buf)).await?;
        if peeked && n > 0 {
            // pingora hands the peeked byte back alone (its rewind buffer): what else arrived
            // is taken now, or an event stream is read a byte at a time (a 256 KiB event in
            // 262 144 reads, measured).
            let more = futures::FutureExt::now_or_never(self.stream.read_buf(&mut self.buf));
            n += more.transpose().or_else(read_failed)?.unwrap_or(0);
        }
        if n == room && self.read_size < MAX_BODY_READ {
            self.read_size *= 2;
        }
        Ok(n)
    }

    /// Up to `most` bytes of the buffer.
    fn take(&mut self, most: u64) -> Bytes {
        let n = usize::try_from(most)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        self.buf.split_to(n).freeze()
    }

    /// One line (without its CRLF) from the buffer, reading as needed.
    async fn line(&mut self) -> Result<Bytes> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line = self.buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return Ok(line.freeze());
            }
            if self.buf.len() > MAX_LINE {
                return invalid("a replica's chunk-size or trailer line is too long");
            }
            if self.fill().await? == 0 {
                return closed("the replica closed the connection inside a chunked body");
            }
        }
    }

    /// The next piece of the body and whether the body is over (`None`: nothing more).
    pub async fn chunk(&mut self) -> Result<(Option<Bytes>, bool)> {
        loop {
            match self.framing {
                Framing::Done => return Ok((None, true)),
                Framing::Length(left) => {
                    if self.buf.is_empty() && self.fill().await? == 0 {
                        return closed("the replica closed the connection before its body ended");
                    }
                    let data = self.take(left);
                    let left = left - data.len() as u64;
                    self.framing = if left == 0 {
                        Framing::Done
                    } else {
                        Framing::Length(left)
                    };
                    return Ok((Some(data), left == 0));
                }
                Framing::Close => {
                    if self.buf.is_empty() && self.fill().await? == 0 {
                        self.framing = Framing::Done;
                        continue;
                    }
                    return Ok((Some(self.take(u64::MAX)), false));
                }
                Framing::Chunked(Chunk::Size) => {
                    let line = self.line().await?;
                    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| u64::from_str_radix(d.trim(), 16).ok())
                        .map_or_else(|| invalid("a replica's chunk size is not hexadecimal"), Ok)?;
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    if self.buf.is_empty() && self.fill().await? == 0 {
                        return closed("the replica closed the connection inside a chunk");
                    }
                    let data = self.take(left);
                    let left = left - data.len() as u64;
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::End
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok((Some(data), false));
                }
                Framing::Chunked(Chunk::End) => {
                    if !self.line().await?.is_empty() {
                        return invalid("a replica's chunk is longer than its size");
                    }
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    if self.line().await?.is_empty() {
                        self.framing = Framing::Done;
                    }
                }
            }
        }
    }

    /// The connection, when the body was read to its end and the replica keeps it alive.
    pub fn reusable(self) -> Option<Stream> {
        (self.framing == Framing::Done && self.keepalive && self.buf.is_empty())
            .then_some(self.stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(wire: &'static [u8]) -> Stream {
        Box::new(tokio_test::io::Builder::new().read(wire).build())
    }

    async fn whole(wire: &'static [u8]) -> Result<(u16, Vec<u8>, bool)> {
        let (head, mut body) =
            read(stream(wire), Duration::from_secs(5), Duration::from_secs(5)).await?;
        let mut data = Vec::new();
        loop {
            let (piece, last) = body.chunk().await?;
            data.extend(piece.unwrap_or_default());
            if last {
                break;
            }
        }
        Ok((head.status.as_u16(), data, body.reusable().is_some()))
    }

    #[tokio::test]
    async fn bodies_are_framed_by_length_chunks_or_the_end_of_the_connection() {
        assert_eq!(
            whole(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                .await
                .unwrap(),
            (200, b"hello".to_vec(), true)
        );
        assert_eq!(
            whole(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n")
                .await
                .unwrap(),
            (200, b"abcde".to_vec(), true),
            "1xx skipped, extensions and trailers ignored"
        );
        assert_eq!(
            whole(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
                .await
                .unwrap(),
            (200, b"until the end".to_vec(), false),
            "close-delimited: not reused"
        );
        assert_eq!(
            whole(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\ndata: 2\n\n"
            )
            .await
            .unwrap(),
            (200, b"data: 1\n\ndata: 2\n\n".to_vec(), false),
            "an event stream until the replica closes"
        );
        assert_eq!(
            whole(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n0\r\n\r\n")
                .await
                .unwrap(),
            (200, b"data: 1\n\n".to_vec(), true),
            "a chunked event stream"
        );
        assert_eq!(
            whole(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await
                .unwrap(),
            (202, vec![], false)
        );
        assert_eq!(
            whole(b"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n")
                .await
                .unwrap(),
            (204, vec![], true)
        );
    }

    #[tokio::test]
    async fn broken_responses_are_errors_of_the_right_kind() {
        let kind = |r: Result<(u16, Vec<u8>, bool)>| r.unwrap_err().etype().clone();
        assert_eq!(kind(whole(b"").await), ErrorType::ConnectionClosed);
        assert_eq!(
            kind(whole(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").await),
            ErrorType::ConnectionClosed
        );
        assert_eq!(
            kind(whole(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").await),
            ErrorType::InvalidHTTPHeader
        );
        assert_eq!(
            kind(
                whole(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx").await
            ),
            ErrorType::InvalidHTTPHeader
        );
        assert_eq!(
            kind(whole(b"SMTP ready\r\n\r\n").await),
            ErrorType::InvalidHTTPHeader
        );
    }
}
