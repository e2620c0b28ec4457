//! The HTTP header fields of Streamable HTTP (lower case, as `http` spells them), and what a
//! request's `Accept` allows.

use http::HeaderValue;

/// A legacy session's id (2025 revisions).
pub const SESSION_ID: &str = "mcp-session-id";
/// The revision a request speaks.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// 2026-07-28: the request's JSON-RPC method, mirrored.
pub const METHOD: &str = "mcp-method";
/// 2026-07-28: the target a method names (tool, prompt, resource URI), mirrored.
pub const NAME: &str = "mcp-name";
/// An SSE client resuming a stream.
pub const LAST_EVENT_ID: &str = "last-event-id";
/// 2026-07-28: a tool argument mirrored into a header (`Mcp-Param-<Name>`), the name's prefix.
pub const PARAM_PREFIX: &str = "mcp-param-";
/// Which replica answered (set by mcp-edge, and by mcp-backend itself).
pub const SERVED_BY: &str = "x-served-by";

pub const JSON: &str = "application/json";
pub const SSE: &str = "text/event-stream";

/// Whether a response's `Content-Type` says it is an SSE stream.
pub fn is_sse(headers: &http::HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(SSE))
}

/// What the client's `Accept` header allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepts {
    pub json: bool,
    pub sse: bool,
}

/// Parse the values of every `Accept` field of a request: none, or `*/*`, accepts both; `q=0`
/// excludes a range.
pub fn accepts<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Accepts {
    let mut seen = false;
    let mut out = Accepts::default();
    for value in values {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            seen = true;
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            if refused {
                continue;
            }
            let is = |name: &str| media.eq_ignore_ascii_case(name);
            if is("*/*") {
                out = Accepts {
                    json: true,
                    sse: true,
                };
            } else if is("application/*") || is(JSON) {
                out.json = true;
            } else if is("text/*") || is(SSE) {
                out.sse = true;
            }
        }
    }
    if !seen {
        return Accepts {
            json: true,
            sse: true,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[&str]) -> Accepts {
        let values: Vec<HeaderValue> = values
            .iter()
            .map(|v| HeaderValue::from_str(v).unwrap())
            .collect();
        accepts(&values)
    }

    #[test]
    fn accept_rules() {
        let (both, json, sse, none) = (
            Accepts {
                json: true,
                sse: true,
            },
            Accepts {
                json: true,
                sse: false,
            },
            Accepts {
                json: false,
                sse: true,
            },
            Accepts {
                json: false,
                sse: false,
            },
        );
        assert_eq!(of(&[]), both, "no Accept accepts both");
        assert_eq!(of(&["*/*"]), both);
        assert_eq!(of(&["application/json"]), json);
        assert_eq!(of(&["text/event-stream"]), sse);
        assert_eq!(of(&["application/json, text/event-stream"]), both);
        assert_eq!(of(&["text/html"]), none);
        assert_eq!(of(&["application/json;q=0, text/event-stream"]), sse);
        assert_eq!(
            of(&["Application/JSON", "TEXT/Event-Stream"]),
            both,
            "fields add up"
        );
    }
}
