//! Revocations reach the other mcp-edge processes: a DELETE ends its session on every peer
//! listed with `--peer`, not only on the process that received it.
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
                        match tokio::time::timeout(TIMEOUT, send(addr, &peer, token)).await {
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

async fn send(addr: std::net::SocketAddr, host: &str, token: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "POST {REVOKE_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{token}",
        token.len()
    );
    stream.write_all(request.as_bytes()).await?;
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
