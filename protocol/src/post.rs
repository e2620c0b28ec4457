//! The checks a POST's headers must pass before its body is read, and the Origin allow-list
//! (DNS rebinding protection): each rejection with its status and JSON-RPC error.

use crate::{
    error::{INVALID_REQUEST, RpcError},
    headers::Accepts,
};

/// The default allow-list: loopback origins on any port.
pub const LOOPBACK_ORIGINS: &str = "http://localhost:*,http://127.0.0.1:*,http://[::1]:*,https://localhost:*,https://127.0.0.1:*,https://[::1]:*";

/// A request refused at the HTTP layer: its status, and the error its body carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub error: RpcError,
}

impl Rejection {
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            error: RpcError::new(code, message),
        }
    }
}

/// A POST's `Content-Type` must be JSON (415), and its `Accept` must allow JSON or SSE (406).
pub fn check_post(content_type: Option<&str>, accept: Accepts) -> Result<(), Rejection> {
    let content_type = content_type.unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(crate::headers::JSON) {
        return Err(Rejection::new(
            415,
            INVALID_REQUEST,
            format!(
                "Content-Type must be application/json, got {}",
                if content_type.is_empty() {
                    "none"
                } else {
                    content_type
                }
            ),
        ));
    }
    if !accept.json && !accept.sse {
        return Err(Rejection::new(
            406,
            INVALID_REQUEST,
            "Accept must allow application/json or text/event-stream",
        ));
    }
    Ok(())
}

/// An `Origin` not on the list: 403.
pub fn check_origin(origins: &Origins, origin: Option<&[u8]>) -> Result<(), Rejection> {
    match origin {
        Some(origin) if !origins.allows(origin) => Err(Rejection::new(
            403,
            INVALID_REQUEST,
            format!(
                "Origin {} is not allowed (allowed: {})",
                String::from_utf8_lossy(origin),
                origins.listed
            ),
        )),
        _ => Ok(()),
    }
}

/// The Origin allow-list: exact origins, `scheme://host:*` for any port, or `*`.
#[derive(Debug)]
pub struct Origins {
    any: bool,
    entries: Vec<(String, Option<String>)>, // (scheme://host, port or None for any)
    /// The list as configured, for the 403's message.
    listed: String,
}

impl Origins {
    pub fn parse(list: &[String]) -> Self {
        let mut any = false;
        let mut entries = Vec::new();
        for entry in list.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if entry == "*" {
                any = true;
            } else if let Some(base) = entry.strip_suffix(":*") {
                entries.push((base.to_ascii_lowercase(), None));
            } else {
                let (base, port) = split_origin(entry);
                entries.push((base, Some(port)));
            }
        }
        Self {
            any,
            entries,
            listed: list.join(", "),
        }
    }

    pub fn allows(&self, origin: &[u8]) -> bool {
        if self.any {
            return true;
        }
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        let (base, port) = split_origin(origin.trim());
        self.entries
            .iter()
            .any(|(b, p)| *b == base && p.as_ref().is_none_or(|p| *p == port))
    }
}

/// `scheme://host[:port]` → (`scheme://host`, port with the scheme's default filled in).
fn split_origin(origin: &str) -> (String, String) {
    let origin = origin.to_ascii_lowercase();
    let scheme_end = origin.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &origin[scheme_end..];
    // An IPv6 host is bracketed; the port follows the closing bracket.
    let host_end = if rest.starts_with('[') {
        rest.find(']').map(|i| i + 1).unwrap_or(rest.len())
    } else {
        0
    };
    match rest[host_end..].rfind(':') {
        Some(i) => {
            let split = scheme_end + host_end + i;
            (origin[..split].to_owned(), origin[split + 1..].to_owned())
        }
        None => {
            let port = if origin.starts_with("https://") {
                "443"
            } else {
                "80"
            };
            (origin.clone(), port.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_scheme_host_and_port() {
        let o = Origins::parse(&[
            "http://localhost:*".into(),
            "https://app.example.com".into(),
            "http://[::1]:*".into(),
        ]);
        assert!(o.allows(b"http://localhost:3000"));
        assert!(o.allows(b"http://localhost"));
        assert!(o.allows(b"https://app.example.com"));
        assert!(o.allows(b"https://app.example.com:443"));
        assert!(o.allows(b"http://[::1]:8080"));
        assert!(!o.allows(b"https://app.example.com:8443"));
        assert!(!o.allows(b"http://evil.example.com"));
        assert!(!o.allows(b"https://localhost:3000"));
        assert!(Origins::parse(&["*".into()]).allows(b"http://anything"));
    }

    #[test]
    fn post_headers_are_checked_in_order() {
        let both = Accepts {
            json: true,
            sse: true,
        };
        assert_eq!(
            check_post(Some("application/json; charset=utf-8"), both),
            Ok(())
        );
        assert_eq!(check_post(None, both).unwrap_err().status, 415);
        assert!(
            check_post(Some("text/plain"), both)
                .unwrap_err()
                .error
                .message
                .contains("text/plain")
        );
        assert_eq!(
            check_post(Some("application/json"), Accepts::default())
                .unwrap_err()
                .status,
            406
        );
        let loopback = Origins::parse(
            &LOOPBACK_ORIGINS
                .split(',')
                .map(String::from)
                .collect::<Vec<_>>(),
        );
        assert_eq!(check_origin(&loopback, None), Ok(()));
        let refused = check_origin(&loopback, Some(b"http://evil.example")).unwrap_err();
        assert_eq!(refused.status, 403);
        assert!(
            refused.error.message.contains("http://localhost:*"),
            "{}",
            refused.error.message
        );
    }
}
