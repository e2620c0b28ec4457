//! The relay phase's I/O: the replica's response through the [`relay`](crate::relay) policy to
//! the client. A held legacy initialize is read until it can be sealed; then the head, what was
//! held, and the rest of the body chunk by chunk, each written as it arrives (SSE unbuffered).
//! A client that closes its connection meanwhile drops the replica's connection too.

use bytes::Bytes;

use crate::{
    answer::{Failure, Stop},
    downstream::client::Client,
    relay::{Chunk, Relay, Seal},
    upstream::{Replica, exchange::Response, pool::Pool},
};
use pingora::http::ResponseHeader;

/// What the policy's findings change in the process (the edge's shared state).
pub trait Effects {
    /// A chunk's findings: server→client requests asked, a `tools/list` to learn from.
    fn found(&self, chunk: Chunk);
    /// Seal a session; the token for the client.
    fn mint(&self, version: &str, theirs: Option<String>) -> Result<String, Failure>;
}

/// Relay `response` (its head edited already) to the client, then return its connection to
/// the pool.
pub async fn respond(
    client: &mut Client<'_>,
    mut response: Response,
    mut head: Box<ResponseHeader>,
    mut relay: Relay,
    effects: &(dyn Effects + Sync),
    pool: &Pool,
    replica: &Replica,
) -> Result<(), Stop> {
    let mut held = Vec::new();
    let mut end = false;
    while relay.holding() {
        let (mut data, last) = response.chunk().await?;
        let found = relay.chunk(&mut data, last);
        if !found.is_empty() {
            effects.found(found);
        }
        held.extend(data.filter(|d| !d.is_empty()));
        end = last;
        match relay.seal(end)? {
            Seal::Wait => {}
            Seal::Pass => break,
            Seal::Mint { version, theirs } => {
                let token = effects.mint(&version, theirs)?;
                Relay::sealed(&mut head, &token)?;
                break;
            }
        }
    }
    client.write_head(head).await?;
    let count = held.len();
    for (i, chunk) in held.into_iter().enumerate() {
        client.write_body(chunk, end && i + 1 == count).await?;
    }
    if end && count == 0 {
        client.write_body(Bytes::new(), true).await?;
    }
    while !end {
        let (mut data, last) = client.unless_gone(response.chunk()).await??;
        let found = relay.chunk(&mut data, last);
        if !found.is_empty() {
            effects.found(found);
        }
        end = last;
        client
            .write_body(data.filter(|d| !d.is_empty()).unwrap_or_default(), end)
            .await?;
    }
    response.finish(pool, replica).await;
    Ok(())
}
