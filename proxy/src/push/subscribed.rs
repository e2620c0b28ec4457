//! Legacy sessions' resource subscriptions (`resources/subscribe`), and which sessions hold
//! their GET stream at this process. Every process keeps every session's URIs (a subscribe is
//! told to the peers), so the one holding the GET stream has them wherever they arrived. An
//! entry goes with its session: unsubscribe, DELETE, a peer's revocation, or its expiry.

use std::{collections::BTreeSet, sync::Arc};

use dashmap::{DashMap, mapref::entry::Entry as Slot};
use tokio::sync::Notify;

use super::filter::{URI_LIMIT, Uri, within_share};
use crate::{budget::Caller, session::Uid};

/// Most sessions with subscriptions one process keeps.
pub const SESSIONS: usize = 100_000;

struct Entry {
    uris: BTreeSet<Uri>,
    expires: u64,
    /// Who subscribed (its share of the URIs every upstream listen asks for); `None`: told by a
    /// peer, which counted it.
    caller: Option<Caller>,
}

/// A session's URIs as they go, with who had subscribed them.
pub type Gone = (Option<Caller>, Vec<Uri>);

#[derive(Default)]
pub struct Subscribed {
    sessions: DashMap<Uid, Entry>,
    /// The sessions whose GET stream is here: told to end with the session.
    streams: DashMap<Uid, Arc<Notify>>,
}

/// A session's GET stream at this process, forgotten when dropped.
pub struct Streaming<'a> {
    table: &'a Subscribed,
    uid: Uid,
    pub ended: Arc<Notify>,
}

impl Drop for Streaming<'_> {
    fn drop(&mut self) {
        self.table.streams.remove(&self.uid);
    }
}

impl Subscribed {
    /// Subscribe `uid` (for `caller`, when it is the session's first) to `uri`: whether it is
    /// new, and the caller the session's URIs are counted for.
    pub fn add(
        &self,
        uid: Uid,
        uri: &Uri,
        expires: u64,
        caller: Option<Caller>,
    ) -> Result<(bool, Option<Caller>), String> {
        if uri.len() > URI_LIMIT {
            return Err(format!("the URI is longer than {URI_LIMIT} bytes"));
        }
        if !self.sessions.contains_key(&uid) && self.sessions.len() >= SESSIONS {
            return Err(format!(
                "mcp-edge keeps resource subscriptions for at most {SESSIONS} sessions"
            ));
        }
        let mut entry = self.sessions.entry(uid).or_insert_with(|| Entry {
            uris: BTreeSet::new(),
            expires,
            caller,
        });
        if entry.uris.contains(&**uri) {
            return Ok((false, entry.caller));
        }
        let lengths = entry.uris.iter().map(|u| u.len()).chain([uri.len()]);
        within_share(entry.uris.len() + 1, lengths)
            .map_err(|why| format!("a session is past its share: {why}"))?;
        entry.uris.insert(uri.clone());
        Ok((true, entry.caller))
    }

    /// Unsubscribe `uid` from `uri`: who had subscribed it, `None` when it was not.
    pub fn remove(&self, uid: &Uid, uri: &str) -> Option<Option<Caller>> {
        let mut removed = None;
        self.sessions.remove_if_mut(uid, |_, entry| {
            if entry.uris.remove(uri) {
                removed = Some(entry.caller);
            }
            entry.uris.is_empty()
        });
        removed
    }

    /// Whether a notification about `uri` is for `uid`.
    pub fn admits(&self, uid: &Uid, uri: &str) -> bool {
        self.sessions
            .get(uid)
            .is_some_and(|e| e.uris.iter().any(|s| super::filter::under(uri, s)))
    }

    /// The URIs `uid` subscribed to.
    pub fn uris(&self, uid: &Uid) -> Vec<Uri> {
        self.sessions
            .get(uid)
            .map(|e| e.uris.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The session is over: its URIs (no longer wanted), and its GET stream told to end.
    pub fn end(&self, uid: &Uid) -> Gone {
        if let Some((_, ended)) = self.streams.remove(uid) {
            ended.notify_one();
        }
        self.sessions
            .remove(uid)
            .map(|(_, e)| (e.caller, e.uris.into_iter().collect()))
            .unwrap_or_default()
    }

    /// Drop the sessions expired by `now`: their URIs.
    pub fn sweep(&self, now: u64) -> Vec<Gone> {
        let mut gone = Vec::new();
        self.sessions.retain(|_, e| {
            if e.expires <= now {
                gone.push((e.caller, std::mem::take(&mut e.uris).into_iter().collect()));
                false
            } else {
                true
            }
        });
        gone
    }

    /// Subscriptions kept (URIs, over all sessions).
    pub fn subscriptions(&self) -> usize {
        self.sessions.iter().map(|e| e.uris.len()).sum()
    }

    /// Record `uid`'s GET stream here; `None` when it already has one.
    pub fn stream(&self, uid: Uid) -> Option<Streaming<'_>> {
        match self.streams.entry(uid) {
            Slot::Occupied(_) => None,
            Slot::Vacant(slot) => {
                let ended = Arc::new(Notify::new());
                slot.insert(ended.clone());
                Some(Streaming {
                    table: self,
                    uid,
                    ended,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::filter::{PER_SESSION, SESSION_BYTES};

    #[test]
    fn a_session_subscribes_once_per_uri_and_its_end_returns_them() {
        let t = Subscribed::default();
        let uid = [1u8; 16];
        assert_eq!(
            t.add(uid, &Uri::from("test://a"), 100, None),
            Ok((true, None))
        );
        assert_eq!(
            t.add(uid, &Uri::from("test://a"), 100, None),
            Ok((false, None))
        );
        assert_eq!(
            t.add(uid, &Uri::from("test://b"), 100, None),
            Ok((true, None))
        );
        assert!(t.admits(&uid, "test://a"));
        assert!(!t.admits(&[2u8; 16], "test://a"));
        assert_eq!(t.remove(&uid, "test://b"), Some(None));
        assert_eq!(t.remove(&uid, "test://b"), None);
        assert_eq!(t.end(&uid), (None, vec![Uri::from("test://a")]));
        assert_eq!(t.subscriptions(), 0);
    }

    #[test]
    fn limits_refuse_with_a_reason_and_expired_sessions_are_swept() {
        let t = Subscribed::default();
        let uid = [3u8; 16];
        for i in 0..PER_SESSION {
            t.add(uid, &Uri::from(format!("test://{i}")), 50, None)
                .unwrap();
        }
        assert!(
            t.add(uid, &Uri::from("test://one-more"), 50, None)
                .unwrap_err()
                .contains("at most")
        );
        assert!(
            t.add(uid, &Uri::from("x".repeat(URI_LIMIT + 1)), 50, None)
                .is_err()
        );
        assert_eq!(t.sweep(49).len(), 0);
        assert_eq!(t.sweep(50)[0].1.len(), PER_SESSION);
        assert_eq!(t.subscriptions(), 0);
        let wide = [7u8; 16];
        for i in 0..SESSION_BYTES / URI_LIMIT {
            t.add(
                wide,
                &Uri::from(format!("{i:0>w$}", w = URI_LIMIT)),
                50,
                None,
            )
            .unwrap();
        }
        assert!(
            t.add(wide, &Uri::from("test://one-byte-too-many"), 50, None)
                .unwrap_err()
                .contains("bytes of URIs"),
            "a session's URIs are bounded in bytes too"
        );
    }

    #[test]
    fn one_get_stream_per_session_and_the_sessions_end_wakes_it() {
        let t = Subscribed::default();
        let uid = [4u8; 16];
        let held = t.stream(uid).unwrap();
        assert!(t.stream(uid).is_none(), "a second GET stream is refused");
        let ended = held.ended.clone();
        t.end(&uid);
        // notify_one stores a permit: the stream sees it even if it was not waiting yet.
        assert!(futures::FutureExt::now_or_never(ended.notified()).is_some());
        drop(held);
        assert!(t.stream(uid).is_some());
    }
}
