//! The client's side of the fan-out: a 2026-07-28 `subscriptions/listen` stream, a legacy
//! session's GET stream, and a legacy `resources/subscribe` / `unsubscribe` answered here.
//! Every stream gets a keep-alive comment every 15 s and `X-Accel-Buffering: no`, ends when the
//! client closes it, and ends at shutdown (a 2026-07-28 one with its listen response, so the
//! client knows to listen again elsewhere).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use mcp_protocol::{
    error::{INTERNAL_ERROR, INVALID_PARAMS},
    sse::KEEP_ALIVE_EVERY,
};
use serde_json::Value;
use tokio::sync::{Notify, broadcast::error::RecvError};

use super::{
    Listener, Push,
    filter::{self, Filter, Note, Topic, Uri},
};
use crate::{
    answer::{Reply, Stop},
    downstream::client::Client,
    inflight::Streams,
    limits::Limits,
    request::{Held, Is},
    session::{SessionView, Uid, peers::Peers},
};

/// How long a new listener waits for the replicas' acknowledgements.
pub const COVER_WAIT: Duration = Duration::from_secs(2);

/// The fan-out's client side as the edge calls it, with what it needs of the process from its
/// construction.
pub struct Driver {
    pub push: Arc<Push>,
    pub streams: Arc<Streams>,
    pub limits: Limits,
    /// Who hears of a subscription made here.
    pub peers: Arc<Peers>,
}

fn params(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("params").map(Value::take))
        .unwrap_or(Value::Null)
}

fn no_replica() -> Reply {
    Reply::error(
        503,
        INTERNAL_ERROR,
        "no replica acknowledged a listen stream in time; try again shortly",
    )
}

impl Driver {
    /// A 2026-07-28 client's `subscriptions/listen` (`id`: its request id, raw JSON).
    pub async fn listen(
        &self,
        client: &mut Client<'_>,
        (is, held): (&Is, &mut Held),
        id: &str,
        body: &Bytes,
    ) -> Result<(), Stop> {
        let (caller, held) = (is.caller, &mut held.stream);
        let asked = match params(body).get("notifications") {
            Some(n) => Filter::parse_asked(n),
            None => Err("subscriptions/listen needs params.notifications".into()),
        };
        let asked = match asked {
            Ok(asked) => asked,
            Err(why) => {
                let reply = Reply::error(400, INVALID_PARAMS, why).with_id(Some(id));
                return Ok(client.reply(&reply).await?);
            }
        };
        match self.streams.hold(&self.limits, None, caller) {
            Ok(stream) => *held = Some(stream),
            Err(reply) => return Ok(client.reply(&reply.with_id(Some(id))).await?),
        }
        let push = &self.push;
        // Notes from now on wait in the receiver: none is lost between the replicas' acks and ours.
        let notes = push.notes();
        let uris: Vec<Uri> = asked.uris.iter().cloned().collect();
        let _joined = match push.join(Listener::Modern, &uris, caller) {
            Ok(joined) => joined,
            Err(why) => {
                let reply = Reply::error(503, INTERNAL_ERROR, why).with_header("retry-after", "10");
                return Ok(client.reply(&reply.with_id(Some(id))).await?);
            }
        };
        let agreed = match client
            .unless_gone(push.cover(&asked, COVER_WAIT))
            .await
            .map_err(Stop::Broken)?
        {
            Some(agreed) => agreed,
            None => return Ok(client.reply(&no_replica().with_id(Some(id))).await?),
        };
        client.write_sse_head(None).await?;
        client
            .write_body(filter::acknowledgement(id, &agreed), false)
            .await?;
        let hints: Vec<Topic> = Topic::all_of(&agreed);
        pump(
            push,
            client,
            notes,
            |note| agreed.admits(&note.topic).then(|| note.modern(id)),
            || {
                hints
                    .iter()
                    .map(|t| Note::hint(t.clone()).modern(id))
                    .collect()
            },
            Some(filter::closing(id)),
            None,
        )
        .await
    }

    /// A legacy session's GET stream: its list changes, and updates of the URIs it subscribed.
    pub async fn legacy(
        &self,
        client: &mut Client<'_>,
        (is, held): (&Is, &mut Held),
        uid: Uid,
    ) -> Result<(), Stop> {
        let (caller, held) = (is.caller, &mut held.stream);
        let push = &self.push;
        let Some(streaming) = push.sessions.stream(uid) else {
            let reply = Reply::error(
                409,
                mcp_protocol::error::INVALID_REQUEST,
                "this session already has its GET stream open at this mcp-edge process",
            );
            return Ok(client.reply(&reply).await?);
        };
        match self.streams.hold(&self.limits, Some(uid), caller) {
            Ok(stream) => *held = Some(stream),
            Err(reply) => return Ok(client.reply(&reply).await?),
        }
        let notes = push.notes();
        let _joined = push
            .join(Listener::Legacy, &[], None)
            .expect("no URI to refuse");
        let agreed = match client
            .unless_gone(push.cover(&Filter::lists(), COVER_WAIT))
            .await
            .map_err(Stop::Broken)?
        {
            Some(agreed) => agreed,
            None => return Ok(client.reply(&no_replica()).await?),
        };
        client.write_sse_head(None).await?;
        client
            .write_body(Bytes::from_static(b": mcp-edge listen stream\n\n"), false)
            .await?;
        let sessions = &push.sessions;
        pump(
            push,
            client,
            notes,
            |note| {
                let wanted = match &note.topic {
                    Topic::Updated(uri) => sessions.admits(&uid, uri),
                    topic => agreed.admits(topic),
                };
                wanted.then(|| note.legacy())
            },
            || {
                let mut topics = Topic::all_of(&agreed);
                topics.extend(sessions.uris(&uid).into_iter().map(Topic::Updated));
                topics.into_iter().map(|t| Note::hint(t).legacy()).collect()
            },
            None,
            Some(streaming.ended.clone()),
        )
        .await
    }

    /// Answer a legacy `resources/subscribe` or `unsubscribe` here: applied, told to every peer
    /// (so the process holding the session's GET stream has it), then the empty result or the error.
    pub async fn subscribe(
        &self,
        client: &mut Client<'_>,
        is: &Is,
        (view, subscribe): (&SessionView, bool),
        body: &[u8],
    ) -> Result<(), Stop> {
        let request = Subscription {
            session: (view.uid, view.expires),
            token: is.token.as_deref(),
            id: is.id.as_deref().unwrap_or("null"),
            subscribe,
            body,
            caller: is.caller,
        };
        let applied = subscription(
            &self.push,
            request.session,
            request.subscribe,
            request.body,
            request.caller,
        )
        .await;
        if applied.is_ok()
            && let Some(token) = request.token
        {
            self.peers.subscription(token, request.body).await;
        }
        let id = request.id;
        match applied {
            Ok(()) => {
                let ok = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#);
                Ok(client.write_json(ok.as_bytes()).await?)
            }
            Err(reply) => Ok(client.reply(&reply.with_id(Some(id))).await?),
        }
    }
}

enum Woke {
    Note(Result<Arc<Note>, RecvError>),
    KeepAlive,
    End,
    /// The stream reached `--max-stream-seconds`: it ends as at a shutdown.
    Lifetime,
}

/// Write what `render` makes of each note until the client leaves, the session ends, the
/// stream reaches its lifetime, or the process shuts down (`closing`, if any, is the last event
/// then: the client listens again). A client that fell behind gets `hints` for what it missed.
async fn pump(
    push: &Push,
    client: &mut Client<'_>,
    mut notes: tokio::sync::broadcast::Receiver<Arc<Note>>,
    render: impl Fn(&Note) -> Option<Bytes>,
    hints: impl Fn() -> Vec<Bytes>,
    closing: Option<Bytes>,
    session_ended: Option<Arc<Notify>>,
) -> Result<(), Stop> {
    let mut ending = push.ending.subscribe();
    let until = client
        .times()
        .stream
        .map(|lifetime| tokio::time::Instant::now() + lifetime);
    let mut keep_alive = tokio::time::interval_at(
        tokio::time::Instant::now() + KEEP_ALIVE_EVERY,
        KEEP_ALIVE_EVERY,
    );
    loop {
        let woke = client
            .unless_gone(async {
                tokio::select! {
                    note = notes.recv() => Woke::Note(note),
                    _ = keep_alive.tick() => Woke::KeepAlive,
                    _ = ending.wait_for(|e| *e) => Woke::End,
                    () = async {
                        match until {
                            Some(until) => tokio::time::sleep_until(until).await,
                            None => std::future::pending().await,
                        }
                    } => Woke::Lifetime,
                    _ = async {
                        match &session_ended {
                            Some(ended) => ended.notified().await,
                            None => std::future::pending().await,
                        }
                    } => Woke::End,
                }
            })
            .await
            .map_err(Stop::Broken)?;
        match woke {
            Woke::Note(Ok(note)) => {
                if let Some(event) = render(&note) {
                    client.write_body(event, false).await?;
                    push.counts
                        .relayed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Woke::Note(Err(RecvError::Lagged(missed))) => {
                push.counts
                    .dropped
                    .fetch_add(missed, std::sync::atomic::Ordering::Relaxed);
                for hint in hints() {
                    client.write_body(hint, false).await?;
                }
            }
            Woke::KeepAlive => {
                client.keep_alive().await?;
            }
            Woke::Note(Err(RecvError::Closed)) | Woke::End | Woke::Lifetime => {
                if matches!(woke, Woke::Lifetime) {
                    push.spent.count(crate::budget::Limit::StreamLifetime);
                }
                client.write_body(closing.unwrap_or_default(), true).await?;
                return Ok(());
            }
        }
    }
}

/// A legacy `resources/subscribe` or `unsubscribe`, as the request asked it.
struct Subscription<'a> {
    /// The session's uid and when its token expires.
    session: (Uid, u64),
    token: Option<&'a str>,
    /// The request id, raw JSON.
    id: &'a str,
    subscribe: bool,
    body: &'a [u8],
    /// Who asks (its share of the URIs every upstream listen asks for).
    caller: Option<crate::budget::Caller>,
}

/// A legacy `resources/subscribe` (`subscribe`) or `resources/unsubscribe` of the session `uid`
/// (its token expiring at `expires`), asked by `caller` (`None`: a peer's word), applied here:
/// `Ok` when the client gets an empty result, else the error to answer (the caller tells the
/// peers, and answers).
pub async fn subscription(
    push: &Push,
    (uid, expires): (Uid, u64),
    subscribe: bool,
    body: &[u8],
    caller: Option<crate::budget::Caller>,
) -> Result<(), Reply> {
    let uri = match params(body).get("uri").and_then(Value::as_str) {
        Some(uri) if !uri.is_empty() => uri.to_owned(),
        _ => {
            return Err(Reply::error(
                200,
                INVALID_PARAMS,
                "params.uri must name the resource",
            ));
        }
    };
    apply(push, (uid, expires), subscribe, &uri, caller).await
}

/// Subscribe (or unsubscribe) `uid` to `uri` at this process; a subscription is checked with
/// the replicas when links are open here (the URI must be among what they agreed to).
async fn apply(
    push: &Push,
    (uid, expires): (Uid, u64),
    subscribe: bool,
    uri: &str,
    caller: Option<crate::budget::Caller>,
) -> Result<(), Reply> {
    // One allocation for the session's set, the counts and the filter sent upstream.
    let uri = Uri::from(uri);
    let forget = || {
        if let Some(caller) = push.sessions.remove(&uid, &uri) {
            push.unwant(std::slice::from_ref(&uri), caller);
        }
    };
    if !subscribe {
        forget();
        return Ok(());
    }
    let added = push
        .sessions
        .add(uid, &uri, expires, caller)
        .and_then(|(new, counted)| {
            if !new {
                return Ok(());
            }
            push.want(std::slice::from_ref(&uri), counted)
                .inspect_err(|_| {
                    push.sessions.remove(&uid, &uri);
                })
        });
    if let Err(why) = added {
        return Err(Reply::error(200, INTERNAL_ERROR, why));
    }
    if !push.active() {
        return Ok(());
    }
    let needed = Filter {
        uris: [uri.clone()].into(),
        ..Filter::default()
    };
    match push.cover(&needed, COVER_WAIT).await {
        Some(agreed) if agreed.uris.contains(&uri) => Ok(()),
        _ => {
            forget();
            Err(Reply::error(
                200,
                INTERNAL_ERROR,
                format!("the replicas did not accept a subscription to {uri}"),
            ))
        }
    }
}
