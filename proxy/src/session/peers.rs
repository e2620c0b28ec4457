//! The other mcp-edge processes (`--peer`): a DELETE ends its session on every peer, not only
//! on the process that received it, and a client's answer to a bridged call's question that
//! reached this process finds the process holding the call (`POST /bridge/deliver`), and a
//! legacy session's `resources/subscribe` reaches the process holding its GET stream
//! (`POST /push/subscribe`).
//!
//! Each peer is an admin listener (`host:port`), resolved at every announcement so a DNS name
//! with one record per process (Swarm's `tasks.<service>`) reaches all of them, including ones
//! started since. The announcement is `POST /sessions/revoke` with the token as its body.
//! Delivery is best effort (one attempt per address, bounded by a timeout, failures logged);
//! what holds without it is in docs/routing.md ("Sessions").
//!
//! **Only mcp-edge processes are peers.** Every request carries `Mcp-Edge-Peer: <unix
//! seconds>.<HMAC-SHA256 hex>` over its path, time, session token and body, keyed with a key
//! derived from the session key ([`PeerKeys`]: HKDF-SHA256, so the sealing key itself is never
//! used for anything else); the admin listener takes it within [`PROOF_WINDOW`] seconds of its
//! clock, under the current or the previous session key, and otherwise answers 403. A client
//! holding its own session token proves nothing there. Without a configured session key there
//! is nothing to derive: `--peer` is refused at start.

use std::{sync::Arc, time::Duration};

use hmac::{Hmac, KeyInit, Mac};
use mcp_protocol::probe;
use sha2::Sha256;

pub const REVOKE_PATH: &str = "/sessions/revoke";
pub const DELIVER_PATH: &str = "/bridge/deliver";
pub const CANCEL_PATH: &str = "/bridge/cancel";
pub const SUBSCRIBE_PATH: &str = "/push/subscribe";
const TIMEOUT: Duration = Duration::from_secs(2);
/// The header carrying a peer's proof.
pub const PROOF_HEADER: &str = "mcp-edge-peer";
/// How far a proof's time may be from the receiver's clock, in seconds.
pub const PROOF_WINDOW: u64 = 30;

type HmacSha256 = Hmac<Sha256>;

/// The keys peers prove themselves with, derived from the session keys.
#[derive(Clone)]
pub struct PeerKeys {
    current: [u8; 32],
    previous: Option<[u8; 32]>,
}

impl std::fmt::Debug for PeerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerKeys(..)")
    }
}

/// Why a peer's request was refused (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Missing,
    Malformed,
    Stale,
    Forged,
}

impl Refused {
    pub fn message(self) -> &'static str {
        match self {
            Refused::Missing => "not from an mcp-edge peer: no Mcp-Edge-Peer proof",
            Refused::Malformed => "the Mcp-Edge-Peer proof is malformed",
            Refused::Stale => {
                "the Mcp-Edge-Peer proof is too old (or the clocks differ by more than 30 s)"
            }
            Refused::Forged => {
                "the Mcp-Edge-Peer proof does not match: not a peer on this session key"
            }
        }
    }
}

impl PeerKeys {
    /// The peer keys of the session keys `current` (and `previous`, during a rotation).
    pub fn derive(current: &[u8; 32], previous: Option<&[u8; 32]>) -> Self {
        Self {
            current: hkdf(current),
            previous: previous.map(hkdf),
        }
    }

    /// The proof of a request to `path` about `token` with `body`, made at `now`.
    pub fn prove(&self, path: &str, token: &str, body: &[u8], now: u64) -> String {
        let tag = mac(&self.current, path, now, token, body)
            .finalize()
            .into_bytes();
        format!("{now}.{}", hex::encode(tag))
    }

    /// Check a proof (the header's value) at `now`.
    pub fn check(
        &self,
        proof: Option<&str>,
        path: &str,
        token: &str,
        body: &[u8],
        now: u64,
    ) -> Result<(), Refused> {
        let (time, tag) = proof
            .ok_or(Refused::Missing)?
            .split_once('.')
            .ok_or(Refused::Malformed)?;
        let time: u64 = time.parse().map_err(|_| Refused::Malformed)?;
        let mut raw = [0u8; 32];
        hex::decode_to_slice(tag, &mut raw).map_err(|_| Refused::Malformed)?;
        if time.abs_diff(now) > PROOF_WINDOW {
            return Err(Refused::Stale);
        }
        let matches = |key: &[u8; 32]| mac(key, path, time, token, body).verify_slice(&raw).is_ok();
        if matches(&self.current) || self.previous.as_ref().is_some_and(matches) {
            Ok(())
        } else {
            Err(Refused::Forged)
        }
    }
}

/// HKDF-SHA256 (RFC 5869) of a session key, for one 32-byte output: extract with a fixed salt,
/// expand with what the key is for.
fn hkdf(session_key: &[u8; 32]) -> [u8; 32] {
    let mut extract = HmacSha256::new_from_slice(b"mcp-edge").expect("any key length");
    extract.update(session_key);
    let prk = extract.finalize().into_bytes();
    let mut expand = HmacSha256::new_from_slice(&prk).expect("any key length");
    expand.update(b"mcp-edge peer proof v1");
    expand.update(&[1]);
    expand.finalize().into_bytes().into()
}

/// The MAC of one peer request: each part length-prefixed, so no two requests share a message.
fn mac(key: &[u8; 32], path: &str, time: u64, token: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    for part in [path.as_bytes(), &time.to_be_bytes(), token.as_bytes(), body] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

#[derive(Debug, Clone, Default)]
pub struct Peers {
    list: Vec<String>,
    keys: Option<Arc<PeerKeys>>,
}

impl Peers {
    /// The peers `list`, proving this process with `keys` (`None`: no session key was
    /// configured, and a non-empty list is refused at start).
    pub fn new(list: &[String], keys: Option<PeerKeys>) -> Self {
        Self {
            list: list
                .iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
            keys: keys.map(Arc::new),
        }
    }

    /// The proof header of a request to a peer.
    fn proof(&self, path: &str, token: &str, body: &[u8]) -> String {
        match &self.keys {
            Some(keys) => {
                let now = super::unix_now();
                format!("{PROOF_HEADER}: {}\r\n", keys.prove(path, token, body, now))
            }
            None => String::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// A client's cancel that named no call of this process: it may name a bridged call of a
    /// peer (rare; every address is told, and returns at once).
    pub fn cancel(&self, token: &str, notification: &[u8]) {
        if self.list.is_empty() {
            return;
        }
        let peers = self.clone();
        let (token, notification) = (token.to_owned(), notification.to_vec());
        tokio::spawn(async move {
            peers.post_all(CANCEL_PATH, &token, &notification).await;
        });
    }

    /// Hand a client's answer to a bridged call to the peer holding it: every address of every
    /// peer is asked at once (the token proves the session); `true` when one took it.
    pub async fn deliver(&self, token: &str, answer: &[u8]) -> bool {
        self.post_all(DELIVER_PATH, token, answer).await
    }

    /// Tell every peer of a legacy session's `resources/subscribe` or `unsubscribe` (the
    /// request), so the process holding the session's GET stream has it; returns once every
    /// address answered or timed out.
    pub async fn subscription(&self, token: &str, request: &[u8]) {
        if !self.list.is_empty() {
            self.post_all(SUBSCRIBE_PATH, token, request).await;
        }
    }

    /// POST `body` with the session's token to every address of every peer at once: whether
    /// one answered 200.
    async fn post_all(&self, path: &str, token: &str, body: &[u8]) -> bool {
        let mut sends = Vec::new();
        for peer in &self.list {
            let Ok(Ok(addrs)) =
                tokio::time::timeout(TIMEOUT, tokio::net::lookup_host(peer.as_str())).await
            else {
                tracing::warn!(%peer, path, "cannot resolve peer: not told");
                continue;
            };
            let proof = self.proof(path, token, body);
            for addr in addrs {
                let header = format!("mcp-session-id: {token}\r\n{proof}");
                sends.push(async move {
                    let post = post(addr, peer, path, "application/json", &header, body);
                    matches!(post.await, Ok(200))
                });
            }
        }
        futures::future::join_all(sends)
            .await
            .into_iter()
            .any(|taken| taken)
    }

    /// Tell every peer that the session sealed in `token` has ended; returns at once.
    pub fn announce(&self, token: &str) {
        if self.list.is_empty() {
            return;
        }
        let (list, token) = (self.list.clone(), token.to_owned());
        let proof = self.proof(REVOKE_PATH, &token, token.as_bytes());
        tokio::spawn(async move {
            for peer in list {
                let addrs = match tokio::time::timeout(
                    TIMEOUT,
                    tokio::net::lookup_host(peer.as_str()),
                )
                .await
                {
                    Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "cannot resolve peer: session revocation not delivered");
                        continue;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "resolving peer timed out: session revocation not delivered");
                        continue;
                    }
                };
                let sends = addrs.into_iter().map(|addr| {
                    let (peer, token, proof) = (peer.clone(), token.as_str(), proof.as_str());
                    async move {
                        let post = post(addr, &peer, REVOKE_PATH, "text/plain", proof, token.as_bytes());
                        match post.await {
                            Ok(200 | 404) => {}
                            Ok(status) => tracing::warn!(%peer, %addr, status, "peer refused a session revocation"),
                            Err(e) => tracing::warn!(%peer, %addr, error = %e, "session revocation not delivered"),
                        }
                    }
                });
                futures::future::join_all(sends).await;
            }
        });
    }
}

/// One POST to a peer's admin listener, with the probes' HTTP/1 client (`Connection: close`,
/// within [`TIMEOUT`]): its status, or why there is none.
async fn post(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    content_type: &str,
    headers: &str,
    body: &[u8],
) -> Result<u16, String> {
    let headers = format!("Content-Type: {content_type}\r\n{headers}");
    let request = probe::Request {
        method: "POST",
        path,
        headers: &headers,
        body,
    };
    // The admin listener answers a few bytes of JSON; more is not read.
    probe::exchange(addr, host, &request, 4 << 10, TIMEOUT)
        .await
        .map(|(status, _)| status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_opens_only_for_its_path_token_body_and_time_under_a_shared_key() {
        let keys = PeerKeys::derive(&[1; 32], None);
        let proof = keys.prove("/bridge/deliver", "tok", b"{}", 1000);
        let check =
            |p: &str, path, token, body: &[u8], now| keys.check(Some(p), path, token, body, now);
        assert_eq!(check(&proof, "/bridge/deliver", "tok", b"{}", 1000), Ok(()));
        assert_eq!(
            check(&proof, "/bridge/deliver", "tok", b"{}", 1000 + PROOF_WINDOW),
            Ok(())
        );
        assert_eq!(
            check(&proof, "/bridge/cancel", "tok", b"{}", 1000),
            Err(Refused::Forged)
        );
        assert_eq!(
            check(&proof, "/bridge/deliver", "other", b"{}", 1000),
            Err(Refused::Forged)
        );
        assert_eq!(
            check(&proof, "/bridge/deliver", "tok", b"{ }", 1000),
            Err(Refused::Forged)
        );
        assert_eq!(
            check(&proof, "/bridge/deliver", "tok", b"{}", 1031),
            Err(Refused::Stale)
        );
        assert_eq!(
            check("1000.zz", "/", "tok", b"", 1000),
            Err(Refused::Malformed)
        );
        assert_eq!(
            keys.check(None, "/", "tok", b"", 1000),
            Err(Refused::Missing)
        );
        let other = PeerKeys::derive(&[2; 32], None);
        assert_eq!(
            other.check(Some(&proof), "/bridge/deliver", "tok", b"{}", 1000),
            Err(Refused::Forged),
            "another session key proves nothing"
        );
        let rotated = PeerKeys::derive(&[2; 32], Some(&[1; 32]));
        assert_eq!(
            rotated.check(Some(&proof), "/bridge/deliver", "tok", b"{}", 1000),
            Ok(()),
            "a peer still on the previous key is accepted during a rotation"
        );
        assert_ne!(
            hkdf(&[1; 32]),
            [1; 32],
            "the derived key is not the session key"
        );
    }
}
