//! What a legacy client said about itself at `initialize` and a bridged call must repeat in
//! every 2026-07-28 request's `_meta` (servers must not infer capabilities from earlier
//! requests): the client capabilities a replica may ask for (sampling, elicitation, roots), as
//! one byte, and its clientInfo, when short enough for the session token.
//!
//! Kept: `sampling` (with `context`, `tools`), `elicitation` (present but empty, `form`, `url`
//! apart, since 2025-11-25 reads an empty one as form only), `roots` (re-emitted as `{}`:
//! `listChanged` is gone in 2026-07-28). Not kept: `experimental`, `extensions`, the 2025-11-25
//! `tasks` capability (the 2026 tasks extension means something else), and any clientInfo field
//! beyond name and version.

use serde::Deserialize;
use serde_json::{Map, Value, json, value::RawValue};

/// The capability bits.
pub const SAMPLING: u8 = 1;
pub const SAMPLING_CONTEXT: u8 = 1 << 1;
pub const SAMPLING_TOOLS: u8 = 1 << 2;
pub const ELICITATION: u8 = 1 << 3;
pub const ELICITATION_FORM: u8 = 1 << 4;
pub const ELICITATION_URL: u8 = 1 << 5;
pub const ROOTS: u8 = 1 << 6;

/// The longest clientInfo name and version carried; longer ones are left out (never cut).
pub const MAX_NAME: usize = 40;
pub const MAX_VERSION: usize = 20;

/// A legacy client's capabilities and identity, as sealed into its session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub capabilities: u8,
    /// (name, version), when both fit.
    pub info: Option<(String, String)>,
}

#[derive(Deserialize)]
struct Initialize<'a> {
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Params {
    #[serde(default)]
    capabilities: Map<String, Value>,
    #[serde(default, rename = "clientInfo")]
    client_info: Option<Info>,
}

#[derive(Deserialize)]
struct Info {
    name: String,
    version: String,
}

impl Profile {
    /// A client "c" 1 that declared `capabilities` (the bridge's tests).
    #[cfg(test)]
    pub fn declaring(capabilities: u8) -> Self {
        Self {
            capabilities,
            info: Some(("c".into(), "1".into())),
        }
    }

    /// The profile in a legacy `initialize` request body; an unreadable one declares nothing.
    pub fn of_initialize(body: &[u8]) -> Self {
        let params: Params = serde_json::from_slice::<Initialize<'_>>(body)
            .ok()
            .and_then(|i| i.params)
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let caps = &params.capabilities;
        let has = |outer: &str, inner: &str| {
            caps.get(outer)
                .and_then(Value::as_object)
                .is_some_and(|o| o.contains_key(inner))
        };
        let mut bits = 0;
        for (present, bit) in [
            (caps.get("sampling").is_some_and(Value::is_object), SAMPLING),
            (has("sampling", "context"), SAMPLING_CONTEXT),
            (has("sampling", "tools"), SAMPLING_TOOLS),
            (
                caps.get("elicitation").is_some_and(Value::is_object),
                ELICITATION,
            ),
            (has("elicitation", "form"), ELICITATION_FORM),
            (has("elicitation", "url"), ELICITATION_URL),
            (caps.get("roots").is_some_and(Value::is_object), ROOTS),
        ] {
            if present {
                bits |= bit;
            }
        }
        let info = params
            .client_info
            .filter(|i| i.name.len() <= MAX_NAME && i.version.len() <= MAX_VERSION)
            .map(|i| (i.name, i.version));
        Self {
            capabilities: bits,
            info,
        }
    }

    /// Whether a replica could ask this client anything (the bridge's condition).
    pub fn can_be_asked(&self) -> bool {
        self.capabilities & (SAMPLING | ELICITATION | ROOTS) != 0
    }

    pub fn has(&self, bit: u8) -> bool {
        self.capabilities & bit != 0
    }

    /// `clientCapabilities` in the 2026-07-28 shape. A 2025-03-26 session never declares
    /// elicitation (that revision has none).
    pub fn capabilities_json(&self, version: &str) -> Value {
        let mut caps = Map::new();
        if self.has(SAMPLING) {
            let mut s = Map::new();
            if self.has(SAMPLING_CONTEXT) {
                s.insert("context".into(), json!({}));
            }
            if self.has(SAMPLING_TOOLS) {
                s.insert("tools".into(), json!({}));
            }
            caps.insert("sampling".into(), Value::Object(s));
        }
        if self.has(ELICITATION) && version != "2025-03-26" {
            let mut e = Map::new();
            if self.has(ELICITATION_FORM) {
                e.insert("form".into(), json!({}));
            }
            if self.has(ELICITATION_URL) {
                e.insert("url".into(), json!({}));
            }
            caps.insert("elicitation".into(), Value::Object(e));
        }
        if self.has(ROOTS) {
            caps.insert("roots".into(), json!({}));
        }
        Value::Object(caps)
    }

    /// `clientInfo`, or a stand-in naming the bridge when the client's did not fit.
    pub fn info_json(&self) -> Value {
        match &self.info {
            Some((name, version)) => json!({ "name": name, "version": version }),
            None => json!({ "name": "mcp-edge-bridged-client", "version": "0" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(params: &str) -> Profile {
        Profile::of_initialize(
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{params}}}"#)
                .as_bytes(),
        )
    }

    #[test]
    fn capabilities_come_back_in_the_shape_they_were_declared() {
        let p = profile(
            r#"{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"elicitation":{},"roots":{"listChanged":true}},"clientInfo":{"name":"conformance-test-client","version":"1.0.0"}}"#,
        );
        assert!(p.can_be_asked());
        assert_eq!(
            p.capabilities_json("2025-11-25"),
            json!({"sampling":{}, "elicitation":{}, "roots":{}})
        );
        assert_eq!(
            p.info_json(),
            json!({"name":"conformance-test-client","version":"1.0.0"})
        );
        let full = profile(
            r#"{"capabilities":{"elicitation":{"form":{},"url":{}},"sampling":{"tools":{}}}}"#,
        );
        assert_eq!(
            full.capabilities_json("2025-11-25"),
            json!({"sampling":{"tools":{}}, "elicitation":{"form":{},"url":{}}})
        );
        assert_eq!(
            full.capabilities_json("2025-03-26"),
            json!({"sampling":{"tools":{}}}),
            "2025-03-26 has no elicitation"
        );
    }

    #[test]
    fn a_client_that_declares_nothing_is_never_asked() {
        let p = profile(
            r#"{"capabilities":{"experimental":{"x":{}},"tasks":{}},"clientInfo":{"name":"c","version":"1"}}"#,
        );
        assert!(!p.can_be_asked());
        assert_eq!(Profile::of_initialize(b"not json"), Profile::default());
    }

    #[test]
    fn a_long_client_info_is_left_out_not_cut() {
        let name = "n".repeat(MAX_NAME + 1);
        let p = profile(&format!(
            r#"{{"capabilities":{{"roots":{{}}}},"clientInfo":{{"name":"{name}","version":"1"}}}}"#
        ));
        assert_eq!(p.info, None);
        assert_eq!(p.info_json()["name"], "mcp-edge-bridged-client");
    }
}
