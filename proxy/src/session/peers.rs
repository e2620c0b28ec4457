//! The other mcp-edge processes (`--peer`): a DELETE ends its session on every peer, not only
//! on the process that received it, and a client's answer to a bridged call's question that
//! reached this process finds the process holding the call (`POST /bridge/deliver`), and a
//! legacy session's `resources/subscribe` reaches the process holding its GET stream
//! (`POST /push/subscribe`).
//!
//! Each peer is an admin listener (`host:port`), resolved at every announcement so a DNS name
//! with one record per process (Swarm's `tasks.<service>`) reaches all of them, including ones
//! started since. The announcement is `POST /sessions/revoke` with the token as its body: a peer
//! opens it with the shared key, so only a holder of the session can end it, as with DELETE.
//! Delivery is best effort (one attempt per address, bounded by a timeout, failures logged);
//! what holds without it is in the README ("Sessions").

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

pub const REVOKE_PATH: &str = "/sessions/revoke";
pub const DELIVER_PATH: &str = "/bridge/deliver";
pub const CANCEL_PATH: &str = "/bridge/cancel";
pub const SUBSCRIBE_PATH: &str = "/push/subscribe";
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Default)]
pub struct Peers {
    list: Vec<String>,
}

impl Peers {
    pub fn new(list: &[String]) -> Self {
        Self {
            list: list
                .iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
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
            for addr in addrs {
                let header = format!("mcp-session-id: {token}\r\n");
                sends.push(async move {
                    let post = post(addr, peer, path, "application/json", &header, body);
                    matches!(tokio::time::timeout(TIMEOUT, post).await, Ok(Ok(200)))
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
                    let (peer, token) = (peer.clone(), token.as_str());
                    async move {
                        let post = post(addr, &peer, REVOKE_PATH, "text/plain", "", token.as_bytes());
                        match tokio::time::timeout(TIMEOUT, post).await {
                            Ok(Ok(200 | 404)) => {}
                            Ok(Ok(status)) => tracing::warn!(%peer, %addr, status, "peer refused a session revocation"),
                            Ok(Err(e)) => tracing::warn!(%peer, %addr, error = %e, "session revocation not delivered"),
                            Err(_) => tracing::warn!(%peer, %addr, "session revocation timed out"),
                        }
                    }
                });
                futures::future::join_all(sends).await;
            }
        });
    }
}

/// One POST to a peer's admin listener: its status.
async fn post(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    content_type: &str,
    headers: &str,
    body: &[u8],
) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(&[head.as_bytes(), body].concat()).await?;
    let mut head = Vec::with_capacity(64);
    stream.take(64).read_to_end(&mut head).await?;
    let line = String::from_utf8_lossy(&head);
    line.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad status line {line:?}"),
        )
    })
}
