//! What a listener asked for and what a notification is, pure: the `notifications` filter of
//! `subscriptions/listen` (its union upstream, its intersection in the client's
//! acknowledgement), and one upstream notification turned into the bytes every client gets —
//! a 2026-07-28 listener's with its own subscriptionId spliced in, a legacy GET stream's
//! without one.

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use mcp_protocol::sse;
use serde_json::{Map, Value, json};

/// `_meta` key naming the listen request a notification belongs to.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// Most URIs one session subscribes to (or one listen asks for).
pub const PER_SESSION: usize = 64;
/// Most bytes of URIs one session subscribes to (or one listen asks for).
pub const SESSION_BYTES: usize = 16 << 10;
/// Longest URI accepted.
pub const URI_LIMIT: usize = 2048;

/// `Err` when `count` URIs of these lengths are more than one session (or listen) may ask for.
pub fn within_share(count: usize, lengths: impl Iterator<Item = usize>) -> Result<(), String> {
    if count > PER_SESSION {
        return Err(format!(
            "at most {PER_SESSION} resource subscriptions are accepted, not {count}"
        ));
    }
    let mut bytes = 0;
    for length in lengths {
        if length > URI_LIMIT {
            return Err(format!("a URI is longer than {URI_LIMIT} bytes"));
        }
        bytes += length;
    }
    if bytes > SESSION_BYTES {
        return Err(format!(
            "resource subscriptions of at most {SESSION_BYTES} bytes of URIs are accepted, not {bytes}"
        ));
    }
    Ok(())
}

/// A subscribed resource URI, shared: a session's set, the fan-out's counts and the filter
/// sent upstream hold one allocation between them.
pub type Uri = std::sync::Arc<str>;

/// The notification types of a listen stream (`SubscriptionFilter`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    /// `resourceSubscriptions`: `notifications/resources/updated` for these URIs.
    pub uris: BTreeSet<Uri>,
}

impl Filter {
    /// The three list changes, no URI: what a legacy GET stream hears.
    pub fn lists() -> Self {
        Self {
            tools: true,
            prompts: true,
            resources: true,
            uris: BTreeSet::new(),
        }
    }

    /// The `notifications` object of a listen request (or of an acknowledgement).
    pub fn parse(value: &Value) -> Result<Self, String> {
        let Some(object) = value.as_object() else {
            return Err("params.notifications must be an object".into());
        };
        let flag = |name: &str| match object.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("params.notifications.{name} must be a boolean")),
        };
        let uris: BTreeSet<Uri> = match object.get("resourceSubscriptions") {
            None | Some(Value::Null) => BTreeSet::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|u| u.as_str().map(Uri::from))
                .collect::<Option<_>>()
                .ok_or("params.notifications.resourceSubscriptions must hold strings")?,
            Some(_) => {
                return Err("params.notifications.resourceSubscriptions must be an array".into());
            }
        };
        Ok(Self {
            tools: flag("toolsListChanged")?,
            prompts: flag("promptsListChanged")?,
            resources: flag("resourcesListChanged")?,
            uris,
        })
    }

    /// The `notifications` object of a client's listen: [`Filter::parse`], within one
    /// session's share of URIs ([`within_share`]).
    pub fn parse_asked(value: &Value) -> Result<Self, String> {
        let filter = Self::parse(value)?;
        within_share(filter.uris.len(), filter.uris.iter().map(|u| u.len()))?;
        Ok(filter)
    }

    /// The wire form, with only what is set (an empty filter is `{}`).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for (set, name) in [
            (self.tools, "toolsListChanged"),
            (self.prompts, "promptsListChanged"),
            (self.resources, "resourcesListChanged"),
        ] {
            if set {
                out.insert(name.into(), Value::Bool(true));
            }
        }
        if !self.uris.is_empty() {
            let uris = self.uris.iter().map(|u| Value::from(&**u)).collect();
            out.insert("resourceSubscriptions".into(), Value::Array(uris));
        }
        Value::Object(out)
    }

    /// What both agree to.
    pub fn intersect(&self, other: &Filter) -> Filter {
        Filter {
            tools: self.tools && other.tools,
            prompts: self.prompts && other.prompts,
            resources: self.resources && other.resources,
            uris: self.uris.intersection(&other.uris).cloned().collect(),
        }
    }

    /// Whether every URI of `other` is asked for here.
    pub fn has_uris_of(&self, other: &Filter) -> bool {
        other.uris.is_subset(&self.uris)
    }

    /// Whether a notification of `topic` belongs on a stream with this filter. An update
    /// matches a subscribed URI, or a sub-resource of it (the spec allows either).
    pub fn admits(&self, topic: &Topic) -> bool {
        match topic {
            Topic::Tools => self.tools,
            Topic::Prompts => self.prompts,
            Topic::Resources => self.resources,
            Topic::Updated(uri) => self.uris.iter().any(|s| under(uri, s)),
        }
    }

    /// Whether nothing is asked for.
    pub fn is_empty(&self) -> bool {
        !self.tools && !self.prompts && !self.resources && self.uris.is_empty()
    }
}

/// `uri` is `subscribed`, or a resource below it (`subscribed` then ends at a `/`, or the next
/// character of `uri` is one of `/?#`).
pub fn under(uri: &str, subscribed: &str) -> bool {
    match uri.strip_prefix(subscribed) {
        Some("") => true,
        Some(rest) => subscribed.ends_with('/') || rest.starts_with(['/', '?', '#']),
        None => false,
    }
}

/// What a notification is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Tools,
    Prompts,
    Resources,
    Updated(Uri),
}

impl Topic {
    fn method(&self) -> &'static str {
        match self {
            Topic::Tools => "notifications/tools/list_changed",
            Topic::Prompts => "notifications/prompts/list_changed",
            Topic::Resources => "notifications/resources/list_changed",
            Topic::Updated(_) => "notifications/resources/updated",
        }
    }

    /// Every topic `filter` asks for: the hints a stream gets after changes may have been
    /// missed (a replica joined, a stream was re-opened, a slow client fell behind).
    pub fn all_of(filter: &Filter) -> Vec<Topic> {
        let mut out = Vec::new();
        for (set, topic) in [
            (filter.tools, Topic::Tools),
            (filter.prompts, Topic::Prompts),
            (filter.resources, Topic::Resources),
        ] {
            if set {
                out.push(topic);
            }
        }
        out.extend(filter.uris.iter().cloned().map(Topic::Updated));
        out
    }
}

/// One notification, ready for every client: the 2026-07-28 event around the place of the
/// subscriptionId, and the legacy event.
#[derive(Debug)]
pub struct Note {
    pub topic: Topic,
    before_id: Bytes,
    after_id: Bytes,
    legacy: Bytes,
}

const MARK: &str = "\u{1}mcp-edge-subscription-id\u{1}";

impl Note {
    /// A replica's message on its listen stream, when it is a change notification (the
    /// acknowledgement, responses and anything else are not).
    pub fn from_upstream(message: &[u8]) -> Option<Note> {
        let mut value: Value = serde_json::from_slice(message).ok()?;
        let object = value.as_object_mut()?;
        if object.contains_key("id") {
            return None;
        }
        let topic = match object.get("method")?.as_str()? {
            "notifications/tools/list_changed" => Topic::Tools,
            "notifications/prompts/list_changed" => Topic::Prompts,
            "notifications/resources/list_changed" => Topic::Resources,
            "notifications/resources/updated" => {
                let uri = object.get("params")?.get("uri")?.as_str()?;
                Topic::Updated(Uri::from(uri))
            }
            _ => return None,
        };
        Some(Self::build(topic, value))
    }

    /// A change announced by mcp-edge itself (see [`Topic::all_of`]).
    pub fn hint(topic: Topic) -> Note {
        let mut value = json!({"jsonrpc": "2.0", "method": topic.method()});
        if let Topic::Updated(uri) = &topic {
            value["params"] = json!({"uri": &**uri});
        }
        Self::build(topic, value)
    }

    fn build(topic: Topic, mut value: Value) -> Note {
        let object = value.as_object_mut().expect("an object");
        let params = object
            .entry("params")
            .or_insert_with(|| Value::Object(Map::new()));
        if !params.is_object() {
            *params = Value::Object(Map::new());
        }
        let params = params.as_object_mut().expect("an object");
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        let meta = meta.as_object_mut().expect("an object");
        meta.remove(SUBSCRIPTION_ID);
        // The legacy form: no subscriptionId, and no empty `_meta` or `params` left behind.
        let mut legacy = value.clone();
        if let Some(params) = legacy.get_mut("params").and_then(Value::as_object_mut) {
            if params
                .get("_meta")
                .is_some_and(|m| m.as_object().is_some_and(Map::is_empty))
            {
                params.remove("_meta");
            }
            if params.is_empty() {
                legacy.as_object_mut().expect("an object").remove("params");
            }
        }
        value["params"]["_meta"][SUBSCRIPTION_ID] = Value::String(MARK.into());
        let text = value.to_string();
        let quoted = serde_json::to_string(MARK).expect("a string");
        let at = text.find(&quoted).expect("the mark is in the text");
        Note {
            topic,
            before_id: event_start(&text[..at]),
            after_id: event_end(&text[at + quoted.len()..]),
            legacy: sse::event(legacy.to_string().as_bytes()),
        }
    }

    /// The SSE event for the 2026-07-28 listen `id` (raw JSON).
    pub fn modern(&self, id: &str) -> Bytes {
        let mut b = BytesMut::with_capacity(self.before_id.len() + id.len() + self.after_id.len());
        b.extend_from_slice(&self.before_id);
        b.extend_from_slice(id.as_bytes());
        b.extend_from_slice(&self.after_id);
        b.freeze()
    }

    /// The SSE event for a legacy session's GET stream.
    pub fn legacy(&self) -> Bytes {
        self.legacy.clone()
    }
}

fn event_start(json: &str) -> Bytes {
    [sse::EVENT_START, json.as_bytes()].concat().into()
}

fn event_end(json: &str) -> Bytes {
    [json.as_bytes(), sse::EVENT_END].concat().into()
}

/// The first message of a client's listen stream.
pub fn acknowledgement(id: &str, agreed: &Filter) -> Bytes {
    let body = format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{{"_meta":{{"{SUBSCRIPTION_ID}":{id}}},"notifications":{}}}}}"#,
        agreed.to_json()
    );
    sse::event(body.as_bytes())
}

/// The listen request's response, its graceful end (mcp-edge shuts down).
pub fn closing(id: &str) -> Bytes {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"resultType":"complete","_meta":{{"{SUBSCRIPTION_ID}":{id}}}}}}}"#
    );
    sse::event(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(event: &[u8]) -> Value {
        let text = std::str::from_utf8(event).unwrap();
        let line = text.strip_prefix("event: message\ndata: ").unwrap();
        assert!(line.ends_with("\n\n"), "an event ends with a blank line");
        serde_json::from_str(line.trim_end()).unwrap()
    }

    #[test]
    fn a_filter_reads_what_the_client_asked_and_writes_only_what_is_set() {
        let f = Filter::parse(&json!({
            "toolsListChanged": true,
            "promptsListChanged": false,
            "resourceSubscriptions": ["file:///b", "file:///a"]
        }))
        .unwrap();
        assert!(f.tools && !f.prompts && !f.resources);
        assert_eq!(
            f.to_json(),
            json!({"toolsListChanged": true, "resourceSubscriptions": ["file:///a", "file:///b"]})
        );
        assert_eq!(Filter::parse(&json!({})).unwrap().to_json(), json!({}));
        assert!(Filter::parse(&json!({"toolsListChanged": "yes"})).is_err());
        assert!(Filter::parse(&json!({"resourceSubscriptions": [1]})).is_err());
        assert!(Filter::parse(&json!([])).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("a://{i}")).collect();
        let many = json!({ "resourceSubscriptions": many });
        assert!(
            Filter::parse(&many).is_ok(),
            "a replica's acknowledgement of the union is not a client's share"
        );
        assert!(
            Filter::parse_asked(&many)
                .unwrap_err()
                .contains("at most 64")
        );
    }

    #[test]
    fn the_agreed_filter_is_what_every_side_accepts() {
        let asked = Filter::parse(
            &json!({"toolsListChanged": true, "promptsListChanged": true,
            "resourceSubscriptions": ["a://1", "a://2"]}),
        )
        .unwrap();
        let replica = Filter::parse(
            &json!({"toolsListChanged": true, "resourcesListChanged": true,
            "resourceSubscriptions": ["a://2", "a://3"]}),
        )
        .unwrap();
        assert_eq!(
            asked.intersect(&replica).to_json(),
            json!({"toolsListChanged": true, "resourceSubscriptions": ["a://2"]})
        );
        assert!(
            replica
                .has_uris_of(&Filter::parse(&json!({"resourceSubscriptions": ["a://3"]})).unwrap())
        );
        assert!(!replica.has_uris_of(&asked));
    }

    #[test]
    fn updates_match_the_subscribed_uri_and_resources_below_it() {
        assert!(under("file:///p/config.json", "file:///p/config.json"));
        assert!(under("file:///p/config.json", "file:///p/"));
        assert!(under("file:///p/a", "file:///p"));
        assert!(under("test://x?page=2", "test://x"));
        assert!(!under("file:///p2", "file:///p"));
        assert!(!under("file:///", "file:///p"));
        let f = Filter::parse(&json!({"resourceSubscriptions": ["file:///p"]})).unwrap();
        assert!(f.admits(&Topic::Updated("file:///p/x".into())));
        assert!(!f.admits(&Topic::Tools));
    }

    #[test]
    fn a_replica_notification_gets_each_clients_subscription_id_and_keeps_its_params() {
        let upstream = br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"test://w","_meta":{"io.modelcontextprotocol/subscriptionId":"mcp-edge-1","other":1}}}"#;
        let note = Note::from_upstream(upstream).unwrap();
        assert_eq!(note.topic, Topic::Updated("test://w".into()));
        let a = data(&note.modern("7"));
        assert_eq!(a["params"]["_meta"][SUBSCRIPTION_ID], json!(7));
        assert_eq!(a["params"]["_meta"]["other"], json!(1));
        assert_eq!(a["params"]["uri"], json!("test://w"));
        let b = data(&note.modern(r#""listen-2""#));
        assert_eq!(b["params"]["_meta"][SUBSCRIPTION_ID], json!("listen-2"));
        let legacy = data(&note.legacy());
        assert_eq!(
            legacy,
            json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"test://w","_meta":{"other":1}}})
        );
    }

    #[test]
    fn a_list_change_reaches_legacy_streams_without_params() {
        let note = Note::from_upstream(
            br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":3}}}"#,
        )
        .unwrap();
        assert_eq!(
            data(&note.legacy()),
            json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"})
        );
        assert_eq!(
            data(&Note::hint(Topic::Prompts).modern("1")),
            json!({"jsonrpc":"2.0","method":"notifications/prompts/list_changed","params":{"_meta":{SUBSCRIPTION_ID: 1}}})
        );
    }

    #[test]
    fn acknowledgements_responses_and_other_methods_are_not_notes() {
        for message in [
            &br#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete"}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{}}"#,
            b"not json",
        ] {
            assert!(Note::from_upstream(message).is_none());
        }
    }

    #[test]
    fn the_acknowledgement_and_the_closing_response_name_the_listen() {
        let agreed = Filter::parse(&json!({"toolsListChanged": true})).unwrap();
        let ack = data(&acknowledgement(r#""l-1""#, &agreed));
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], "l-1");
        assert_eq!(
            ack["params"]["notifications"],
            json!({"toolsListChanged": true})
        );
        let end = data(&closing("9"));
        assert_eq!(end["id"], 9);
        assert_eq!(end["result"]["resultType"], "complete");
        assert_eq!(end["result"]["_meta"][SUBSCRIPTION_ID], 9);
    }
}
