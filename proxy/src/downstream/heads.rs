//! The request headers the edge reads, found in one pass over the request's fields.
//!
//! Looking a field up by name in an `http::HeaderMap` parses and hashes the name each time; the
//! edge reads about a dozen fields per request, so it walks the fields once instead and keeps
//! what it needs (measured in benches/RESULTS.md). As with `HeaderMap::get`, the first field of
//! a name counts, and a value that is not visible ASCII reads as absent; `Accept` fields add up.

use http::HeaderValue;
use mcp_protocol::headers::{
    self, Accepts, LAST_EVENT_ID, METHOD, NAME, PROTOCOL_VERSION, SESSION_ID,
};
use pingora::http::RequestHeader;

/// The fields of one request the edge looks at, borrowed from its header.
#[derive(Default)]
pub struct Heads<'a> {
    /// Number of header fields, and their size as the header limit counts it.
    pub count: usize,
    pub bytes: usize,
    pub content_type: Option<&'a str>,
    pub content_length: Option<&'a str>,
    pub accept: Accepts,
    pub authorization: Option<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    pub session: Option<&'a str>,
    pub version: Option<&'a str>,
    pub last_event_id: Option<&'a str>,
    pub mcp_method: Option<&'a str>,
    pub mcp_name: Option<&'a str>,
}

impl<'a> Heads<'a> {
    pub fn of(request: &'a RequestHeader) -> Self {
        let mut heads = Heads {
            bytes: request.raw_path().len(),
            ..Heads::default()
        };
        let [
            mut content_type,
            mut content_length,
            mut session,
            mut version,
            mut last_event_id,
            mut mcp_method,
            mut mcp_name,
        ] = [None::<&HeaderValue>; 7];
        let (mut accept, mut accepts) = (None, 0);
        for (name, value) in &request.headers {
            heads.count += 1;
            heads.bytes += name.as_str().len() + value.len() + 4;
            let first = match name.as_str() {
                "content-type" => &mut content_type,
                "content-length" => &mut content_length,
                SESSION_ID => &mut session,
                PROTOCOL_VERSION => &mut version,
                LAST_EVENT_ID => &mut last_event_id,
                METHOD => &mut mcp_method,
                NAME => &mut mcp_name,
                "accept" => {
                    accepts += 1;
                    &mut accept
                }
                "authorization" => {
                    heads.authorization.get_or_insert(value.as_bytes());
                    continue;
                }
                "origin" => {
                    heads.origin.get_or_insert(value.as_bytes());
                    continue;
                }
                _ => continue,
            };
            first.get_or_insert(value);
        }
        let text = |value: Option<&'a HeaderValue>| value.and_then(|v| v.to_str().ok());
        heads.content_type = text(content_type);
        heads.content_length = text(content_length);
        heads.session = text(session);
        heads.version = text(version);
        heads.last_event_id = text(last_event_id);
        heads.mcp_method = text(mcp_method);
        heads.mcp_name = text(mcp_name);
        heads.accept = if accepts > 1 {
            headers::accepts(request.headers.get_all("accept"))
        } else {
            headers::accepts(accept)
        };
        heads
    }
}

/// The header fields routing reads, kept from the one pass over the head. Owned, since the
/// body is read in between; most requests carry none of them, and so allocate nothing.
#[derive(Debug, Default)]
pub struct Routing {
    pub version: Option<String>,
    pub mcp_method: Option<String>,
    pub mcp_name: Option<String>,
    pub last_event_id: Option<String>,
    /// `Accept` allows `text/event-stream` (a bridged call needs a stream to ask on).
    pub accepts_sse: bool,
}

impl Heads<'_> {
    /// The fields routing reads, owned (the body is read before they are).
    pub fn routing(&self) -> Routing {
        Routing {
            version: self.version.map(str::to_owned),
            mcp_method: self.mcp_method.map(str::to_owned),
            mcp_name: self.mcp_name.map(str::to_owned),
            last_event_id: self.last_event_id.map(str::to_owned),
            accepts_sse: self.accept.sse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &[(&str, &[u8])]) -> RequestHeader {
        let mut request = RequestHeader::build("POST", b"/mcp", None).unwrap();
        for (name, value) in fields {
            request
                .append_header(
                    name.to_string(),
                    http::HeaderValue::from_bytes(value).unwrap(),
                )
                .unwrap();
        }
        request
    }

    #[test]
    fn reads_what_header_map_get_reads() {
        let request = request(&[
            ("Content-Type", b"application/json"),
            ("mcp-session-id", b"first"),
            ("Mcp-Session-Id", b"second"),
            ("MCP-Protocol-Version", b"2025-06-18"),
            ("mcp-name", b"caf\xc3\xa9"),
            ("Mcp-Method", b"tools/call"),
            ("Origin", b"http://localhost"),
            ("Accept", b"application/json"),
            ("Accept", b"text/event-stream"),
            ("X-Other", b"1"),
        ]);
        let heads = Heads::of(&request);
        let get = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(heads.content_type, get("content-type"));
        assert_eq!(heads.session, Some("first"));
        assert_eq!(heads.version, get("mcp-protocol-version"));
        assert_eq!(heads.mcp_method, Some("tools/call"));
        assert_eq!(heads.mcp_name, get("mcp-name"));
        assert_eq!(heads.content_length, None);
        assert_eq!(heads.origin, Some(&b"http://localhost"[..]));
        assert_eq!(heads.authorization, None);
        assert_eq!(
            heads.accept,
            headers::accepts(request.headers.get_all("accept"))
        );
        assert!(heads.accept.json && heads.accept.sse);
        assert_eq!(heads.count, 10);
    }

    #[test]
    fn a_value_that_is_not_text_reads_as_absent() {
        let request = request(&[("mcp-name", b"caf\xc3\xa9"), ("mcp-name", b"plain")]);
        assert_eq!(Heads::of(&request).mcp_name, None);
        let no_accept = Heads::of(&request).accept;
        assert!(
            no_accept.json && no_accept.sse,
            "no Accept field accepts both"
        );
    }
}
