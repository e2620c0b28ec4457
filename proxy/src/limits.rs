//! Limits on what one client may hold: request header size and count (checked before anything
//! else), and SSE streams open at once, overall and per legacy session.
//!
//! A response becomes a stream only when the replica answers with `text/event-stream`, so the
//! stream limits apply then: the edge answers in its place (503 overall, 429 per session) and
//! closes the replica's connection, which is how a replica learns a request was abandoned.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::mcp::errors::{INVALID_REQUEST, LIMITED, Reply};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// 0: no limit.
    pub max_streams: usize,
    /// 0: no limit.
    pub max_streams_per_session: usize,
}

impl Limits {
    /// 431 when the request's headers exceed the limits: `count` fields of `bytes` in all
    /// (the target, and each field's name and value plus 4; [`crate::heads::Heads`]).
    pub fn check_headers(&self, count: usize, bytes: usize) -> Option<Reply> {
        if count > self.max_headers {
            return Some(Reply::error(
                431,
                INVALID_REQUEST,
                format!(
                    "{count} header fields; at most {} are accepted",
                    self.max_headers
                ),
            ));
        }
        (bytes > self.max_header_bytes).then(|| {
            Reply::error(
                431,
                INVALID_REQUEST,
                format!(
                    "request headers of {bytes} bytes; at most {} are accepted",
                    self.max_header_bytes
                ),
            )
        })
    }
}

/// SSE streams being relayed, overall and by session uid.
#[derive(Default)]
pub struct Streams {
    open: AtomicUsize,
    by_session: DashMap<[u8; 16], usize>,
}

impl Streams {
    /// Count one more stream, or refuse it.
    pub fn open(&self, limits: &Limits, session: Option<[u8; 16]>) -> Result<(), Reply> {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if limits.max_streams > 0 && now > limits.max_streams {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Reply::error(
                503,
                LIMITED,
                format!(
                    "too many open streams at this proxy (limit {}); try again shortly",
                    limits.max_streams
                ),
            ));
        }
        if let Some(uid) = session {
            let mut held = self.by_session.entry(uid).or_insert(0);
            if limits.max_streams_per_session > 0 && *held >= limits.max_streams_per_session {
                drop(held);
                self.open.fetch_sub(1, Ordering::Relaxed);
                return Err(Reply::error(
                    429,
                    LIMITED,
                    format!(
                        "this session already holds {} open streams (the limit)",
                        limits.max_streams_per_session
                    ),
                ));
            }
            *held += 1;
        }
        Ok(())
    }

    pub fn close(&self, session: Option<[u8; 16]>) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(uid) = session {
            self.by_session.remove_if_mut(&uid, |_, held| {
                *held = held.saturating_sub(1);
                *held == 0
            });
        }
    }

    pub fn open_now(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_header_bytes: 200,
        max_headers: 3,
        max_streams: 3,
        max_streams_per_session: 2,
    };

    #[test]
    fn header_count_and_size() {
        use pingora::http::RequestHeader;
        let check = |r: &RequestHeader| {
            let heads = crate::heads::Heads::of(r);
            LIMITS.check_headers(heads.count, heads.bytes)
        };
        let mut r = RequestHeader::build("POST", b"/mcp", None).unwrap();
        r.insert_header("a", "1").unwrap();
        assert_eq!(check(&r), None);
        r.insert_header("b", "x".repeat(300)).unwrap();
        assert_eq!(check(&r).unwrap().status, 431);
        let mut many = RequestHeader::build("POST", b"/mcp", None).unwrap();
        for name in ["a", "b", "c", "d"] {
            many.insert_header(name, "1").unwrap();
        }
        assert_eq!(check(&many).unwrap().status, 431);
    }

    #[test]
    fn streams_overall_and_per_session() {
        let s = Streams::default();
        let a = Some([1u8; 16]);
        assert!(s.open(&LIMITS, a).is_ok());
        assert!(s.open(&LIMITS, a).is_ok());
        assert_eq!(
            s.open(&LIMITS, a).unwrap_err().status,
            429,
            "the session's third"
        );
        assert!(s.open(&LIMITS, None).is_ok());
        assert_eq!(
            s.open(&LIMITS, None).unwrap_err().status,
            503,
            "the fourth overall"
        );
        s.close(a);
        assert!(s.open(&LIMITS, a).is_ok(), "room again after a close");
        s.close(a);
        s.close(a);
        s.close(None);
        assert_eq!(s.open_now(), 0);
        assert!(s.by_session.is_empty());
    }
}
