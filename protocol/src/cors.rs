//! CORS for browser clients of the MCP endpoint, pure: what a preflight is answered and which
//! headers every answer to an allowed origin carries. Which origins are allowed is the Origin
//! allow-list's ([`crate::post::Origins`]); a page of any other origin gets 403 and no CORS
//! header, so the browser shows it nothing.
//!
//! | request | answer |
//! |---|---|
//! | `OPTIONS` with `Origin` not allowed | 403, no CORS header, and no word of the list (it is answered before the bearer token) |
//! | `OPTIONS` with `Origin` (allowed) and `Access-Control-Request-Method` one of the path's methods (the MCP path: [`METHODS`]; `/version`: GET) | 204: `Access-Control-Allow-Methods`, `-Allow-Headers` (those asked for that Streamable HTTP uses: the list below), `-Max-Age`, `Vary` ([`preflight`]), and what every answer to the origin carries |
//! | `OPTIONS` with `Origin` (allowed) asking another method | 204 without `Access-Control-Allow-Methods`: the browser refuses |
//! | `OPTIONS` without `Origin` or without `Access-Control-Request-Method` (not a preflight) | 204 with `Allow` |
//! | any other request with `Origin` allowed | its answer, plus `Access-Control-Allow-Origin`, `-Expose-Headers` ([`EXPOSE`]: the list is the edge's, a replica's own is replaced), `Vary: Origin` |
//! | `Origin: null` (a sandboxed frame, a `file:` page) | never a CORS grant, whatever the list (`*` included): such a page cannot read answers |
//!
//! Request headers a page may send: `Content-Type`, `Accept`, `Authorization`,
//! `Mcp-Session-Id`, `Mcp-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`,
//! `Last-Event-ID`. No credentials mode: MCP's credential is the `Authorization` header a
//! page sets itself, not a cookie.

use crate::headers;

/// The methods of the MCP endpoint.
pub const METHODS: &str = "GET, POST, DELETE";
/// `Allow` of a plain `OPTIONS` at the MCP endpoint.
pub const ALLOW: &str = "GET, POST, DELETE, OPTIONS";
/// The opaque origin: sandboxed frames, `file:` pages, some redirects.
pub const OPAQUE: &[u8] = b"null";
/// What a page may read of an answer: the session id it must send back, the revision, the
/// challenge of a 401 (OAuth discovery), when to retry a 429 or 503, and which replica served.
pub const EXPOSE: &str =
    "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, Retry-After, X-Served-By";
/// The response headers the edge alone sets for a page (a replica's own are replaced).
pub const SET_BY_EDGE: [&str; 3] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
];
/// How long a browser may keep a preflight's answer, in seconds (Chromium caps it at 7 200).
pub const MAX_AGE: &str = "600";

/// Whether a page may send request header `name` (any case).
pub fn allowed_header(name: &str) -> bool {
    let name = name.trim();
    [
        "content-type",
        "accept",
        "authorization",
        headers::SESSION_ID,
        headers::PROTOCOL_VERSION,
        headers::METHOD,
        headers::NAME,
        headers::LAST_EVENT_ID,
    ]
    .iter()
    .any(|allowed| name.eq_ignore_ascii_case(allowed))
        || name
            .get(..headers::PARAM_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(headers::PARAM_PREFIX))
}

/// A preflight's own answer headers (those of [`response`] come with every answer) at a path
/// that takes `methods` (comma separated): `method` and `requested` are its
/// `Access-Control-Request-Method` and `-Headers`.
pub fn preflight(
    methods: &'static str,
    method: &str,
    requested: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (
            "vary",
            "Access-Control-Request-Method, Access-Control-Request-Headers".to_owned(),
        ),
        ("access-control-max-age", MAX_AGE.to_owned()),
    ];
    if methods.split(", ").any(|m| m == method.trim()) {
        out.push(("access-control-allow-methods", methods.to_owned()));
    }
    let allowed: Vec<&str> = requested
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty() && allowed_header(name))
        .collect();
    if !allowed.is_empty() {
        out.push(("access-control-allow-headers", allowed.join(", ")));
    }
    out
}

/// What every other answer to an allowed `origin` carries.
pub fn response(origin: &str) -> [(&'static str, String); 3] {
    [
        ("access-control-allow-origin", origin.to_owned()),
        ("access-control-expose-headers", EXPOSE.to_owned()),
        ("vary", "Origin".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(out: &'a [(&str, String)], name: &str) -> Option<&'a str> {
        out.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_preflight_allows_the_endpoints_methods_and_the_transports_headers() {
        let out = preflight(
            METHODS,
            "POST",
            Some(
                "content-type, Mcp-Session-Id,MCP-PROTOCOL-VERSION, mcp-param-region, authorization",
            ),
        );
        assert_eq!(header(&out, "access-control-allow-methods"), Some(METHODS));
        assert_eq!(
            header(&out, "access-control-allow-headers"),
            Some(
                "content-type, Mcp-Session-Id, MCP-PROTOCOL-VERSION, mcp-param-region, authorization"
            )
        );
        assert_eq!(header(&out, "access-control-max-age"), Some("600"));
    }

    #[test]
    fn a_preflight_names_neither_another_method_nor_another_header() {
        let out = preflight(METHODS, "PUT", Some("x-custom, cookie"));
        assert_eq!(header(&out, "access-control-allow-methods"), None);
        assert_eq!(header(&out, "access-control-allow-headers"), None);
        let out = preflight(METHODS, "GET", Some("last-event-id, x-custom"));
        assert_eq!(
            header(&out, "access-control-allow-headers"),
            Some("last-event-id")
        );
        // /version takes GET only.
        let out = preflight("GET", "POST", None);
        assert_eq!(header(&out, "access-control-allow-methods"), None);
        let out = preflight("GET", "GET", None);
        assert_eq!(header(&out, "access-control-allow-methods"), Some("GET"));
        assert!(
            header(&out, "vary")
                .unwrap()
                .contains("Access-Control-Request-Method")
        );
    }

    #[test]
    fn answers_expose_the_session_id_and_the_challenge() {
        let out = response("http://localhost:5173");
        assert_eq!(
            header(&out, "access-control-allow-origin"),
            Some("http://localhost:5173")
        );
        let exposed = header(&out, "access-control-expose-headers").unwrap();
        for name in [
            "Mcp-Session-Id",
            "WWW-Authenticate",
            "Mcp-Protocol-Version",
            "Retry-After",
        ] {
            assert!(exposed.contains(name), "{exposed}");
        }
        assert_eq!(header(&out, "vary"), Some("Origin"));
    }

    #[test]
    fn header_names_are_matched_whole_and_in_any_case() {
        assert!(allowed_header("Mcp-Param-X"));
        assert!(allowed_header("LAST-EVENT-ID"));
        assert!(!allowed_header("mcp-param"));
        assert!(!allowed_header("mcp-session-id-2"));
        assert!(!allowed_header("cookie"));
    }
}
