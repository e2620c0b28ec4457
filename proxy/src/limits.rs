//! Limits on what one client may hold: request header size and count (checked before anything
//! else), and SSE streams open at once, overall, per caller and per legacy session (counted by
//! [`crate::inflight::Streams`]).

use mcp_protocol::error::INVALID_REQUEST;

use crate::answer::Reply;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// 0: no limit.
    pub max_streams: usize,
    /// 0: no limit.
    pub max_streams_per_session: usize,
    /// A caller's share of `max_streams` (`budget::caller`); 0: no limit.
    pub max_streams_per_caller: usize,
}

impl Limits {
    /// 431 when the request's headers exceed the limits: `count` fields of `bytes` in all
    /// (the target, and each field's name and value plus 4; [`crate::downstream::heads::Heads`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_header_bytes: 200,
        max_headers: 3,
        max_streams: 3,
        max_streams_per_session: 2,
        max_streams_per_caller: 0,
    };

    #[test]
    fn header_count_and_size() {
        use pingora::http::RequestHeader;
        let check = |r: &RequestHeader| {
            let heads = crate::downstream::heads::Heads::of(r);
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
}
