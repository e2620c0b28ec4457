//! One replica's upstream `subscriptions/listen`, held by this process for all its listeners.
//!
//! A manager task per replica keeps one stream open with the hub's wanted filter (every list
//! change, and the union of the URIs listeners subscribed). Each stream is a generation, read
//! by its own task: it opens, reads the acknowledgement (the filter the replica agreed to),
//! then hands every change notification to the hub until it breaks. When the wanted filter
//! changes, the next generation opens beside the current one and replaces it only once
//! acknowledged (nothing is missed in between: both are read meanwhile). A stream that breaks
//! is opened again after a backoff (100 ms doubling to 5 s), and its listeners get hints for
//! what they may have missed meanwhile ([`super::filter::Topic::all_of`]).

use std::{sync::Arc, time::Duration};

use mcp_protocol::{
    headers::{JSON, METHOD, PROTOCOL_VERSION},
    sse::Events,
    version::MODERN,
};
use pingora::http::RequestHeader;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::{Push, filter::Filter};
use crate::upstream::{
    Replica,
    attempt::{self, Rewrite},
};

/// How long a replica has to acknowledge a listen.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MOST: Duration = Duration::from_secs(5);
/// Largest event read from a listen stream.
const EVENT_LIMIT: usize = 1 << 20;

/// What a replica's stream covers now: the filter it was opened with, and what it agreed to.
#[derive(Debug, Clone)]
pub struct Acked {
    pub asked: Arc<Filter>,
    pub agreed: Arc<Filter>,
}

/// A task aborted when its handle is dropped.
pub struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A replica's link, as the hub holds it: dropping it closes the replica's stream.
pub struct Link {
    pub acked: watch::Receiver<Option<Acked>>,
    _manager: Task,
}

enum Said {
    Acked(u64, Acked),
    Ended(u64, String),
}

impl Link {
    /// Start following `replica`; `hint_first`: its first acknowledgement also hints the
    /// listeners (it joined while they listened).
    pub fn start(push: Arc<Push>, replica: Arc<Replica>, hint_first: bool) -> Link {
        let (tx, acked) = watch::channel(None);
        let manager = tokio::spawn(manage(push, replica, tx, hint_first));
        Link {
            acked,
            _manager: Task(manager),
        }
    }
}

async fn manage(
    push: Arc<Push>,
    replica: Arc<Replica>,
    acked: watch::Sender<Option<Acked>>,
    mut hint: bool,
) {
    let mut wanted = push.wanted.subscribe();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut generation = 0u64;
    let mut current: Option<(u64, Task)> = None;
    let mut backoff = BACKOFF_FIRST;
    let open = |generation: u64, delay: Duration, filter: Arc<Filter>| {
        Task(tokio::spawn(read(
            push.clone(),
            replica.clone(),
            filter,
            generation,
            tx.clone(),
            delay,
        )))
    };
    generation += 1;
    let first = wanted.borrow_and_update().clone();
    let mut next: Option<(u64, Task)> = Some((generation, open(generation, Duration::ZERO, first)));
    loop {
        tokio::select! {
            said = rx.recv() => match said {
                Some(Said::Acked(g, covered)) if next.as_ref().is_some_and(|(n, _)| *n == g) => {
                    // Replacing a live stream loses nothing; opening after a break (or on
                    // joining listeners) may have: they get hints.
                    let hint_now = current.is_none() && hint;
                    hint = false;
                    current = next.take();
                    backoff = BACKOFF_FIRST;
                    push.opened(&replica, &covered);
                    let agreed = covered.agreed.clone();
                    let _ = acked.send(Some(covered));
                    if hint_now {
                        push.hint(&agreed);
                    }
                }
                Some(Said::Ended(g, why)) => {
                    let is_current = current.as_ref().is_some_and(|(c, _)| *c == g);
                    let is_next = next.as_ref().is_some_and(|(n, _)| *n == g);
                    if !is_current && !is_next {
                        continue;
                    }
                    tracing::info!(replica = %replica.id, "listen stream ended: {why}; opening it again in {backoff:?}");
                    push.broke();
                    if is_current {
                        current = None;
                        let _ = acked.send(None);
                        hint = true;
                    }
                    if next.is_none() || is_next {
                        generation += 1;
                        let filter = wanted.borrow_and_update().clone();
                        next = Some((generation, open(generation, backoff, filter)));
                        backoff = (backoff * 2).min(BACKOFF_MOST);
                    }
                }
                Some(Said::Acked(..)) => {}
                None => return,
            },
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
                // Make before break: the current stream stays until this one is acknowledged.
                generation += 1;
                let filter = wanted.borrow_and_update().clone();
                next = Some((generation, open(generation, Duration::ZERO, filter)));
            }
        }
    }
}

/// One generation: open, acknowledge, relay until the stream ends.
async fn read(
    push: Arc<Push>,
    replica: Arc<Replica>,
    filter: Arc<Filter>,
    generation: u64,
    said: mpsc::UnboundedSender<Said>,
    delay: Duration,
) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let why = match follow(&push, &replica, &filter, generation, &said).await {
        Ok(()) => "the replica closed it".to_owned(),
        Err(why) => why,
    };
    let _ = said.send(Said::Ended(generation, why));
}

async fn follow(
    push: &Push,
    replica: &Replica,
    filter: &Arc<Filter>,
    generation: u64,
    said: &mpsc::UnboundedSender<Said>,
) -> Result<(), String> {
    let id = format!("mcp-edge-listen-{:016x}-{generation}", push.process);
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "subscriptions/listen",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "mcp-edge", "version": env!("CARGO_PKG_VERSION")},
            },
            "notifications": filter.to_json(),
        }
    })
    .to_string();
    let mut head = RequestHeader::build("POST", replica.path.as_bytes(), Some(6))
        .map_err(|e| e.to_string())?;
    for (name, value) in [
        ("content-type", JSON),
        ("accept", "application/json, text/event-stream"),
        (PROTOCOL_VERSION, MODERN),
        (METHOD, "subscriptions/listen"),
    ] {
        let _ = head.insert_header(name, value);
    }
    let rewrite = Rewrite {
        authority: &replica.authority,
        path: &replica.path,
        ..Rewrite::default()
    };
    let wire = attempt::request_to_wire(&head, &rewrite, body.as_bytes());
    let peer = push.timeouts.peer(replica);
    let stream = push
        .connector
        .new_stream(&peer)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut response = attempt::send(stream, &wire, &peer, push.timeouts.first_byte)
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let head = response.head();
    let status = head.status.as_u16();
    let is_sse = mcp_protocol::headers::is_sse(&head.headers);
    if status != 200 || !is_sse {
        return Err(format!("answered HTTP {status} without a stream"));
    }
    let mut events = Events::default();
    let mut acknowledged = false;
    let ack_by = tokio::time::Instant::now() + ACK_TIMEOUT;
    loop {
        let chunk = if acknowledged {
            response.chunk().await
        } else {
            match tokio::time::timeout_at(ack_by, response.chunk()).await {
                Ok(chunk) => chunk,
                Err(_) => return Err(format!("no acknowledgement within {ACK_TIMEOUT:?}")),
            }
        };
        let (data, end) = chunk.map_err(|e| format!("broke: {e}"))?;
        for message in events.feed(data.as_deref().unwrap_or_default(), end) {
            if !acknowledged {
                let agreed = acknowledged_filter(&message)?;
                acknowledged = true;
                let _ = said.send(Said::Acked(
                    generation,
                    Acked {
                        asked: filter.clone(),
                        agreed: Arc::new(agreed),
                    },
                ));
                continue;
            }
            if mcp_protocol::message::is_response(&message) {
                return Ok(());
            }
            push.relay(&message);
        }
        if events.pending() > EVENT_LIMIT {
            return Err(format!("sent an event larger than {EVENT_LIMIT} bytes"));
        }
        if end {
            return Err("ended without a response".into());
        }
    }
}

/// The filter of a listen stream's first message, which must be the acknowledgement.
fn acknowledged_filter(message: &[u8]) -> Result<Filter, String> {
    let value: serde_json::Value =
        serde_json::from_slice(message).map_err(|_| "sent a first event that is not JSON")?;
    if value.get("method").and_then(|m| m.as_str())
        != Some("notifications/subscriptions/acknowledged")
    {
        return Err(match value.get("error") {
            Some(error) => format!("refused the listen: {error}"),
            None => "sent something other than an acknowledgement first".into(),
        });
    }
    Filter::parse(&value["params"]["notifications"])
}
