//! The relay phase's I/O: the replica's response through the [`relay`](crate::relay) policy to
//! the client. A held legacy initialize is read until it can be sealed; then the head, what was
//! held, and the rest of the body chunk by chunk, each written as it arrives (SSE unbuffered).
//! A client that closes its connection meanwhile drops the replica's connection too.

use bytes::Bytes;

use crate::{
    answer::Stop,
    downstream::client::Client,
    relay::{Relay, Seal, found::Found},
    upstream::{Replica, attempt::Response, pool::Pool},
};
use pingora::http::ResponseHeader;

/// Relay `response` (its head edited already) to the client, then return its connection to
/// the pool.
pub async fn respond(
    client: &mut Client<'_>,
    mut response: Response,
    mut head: Box<ResponseHeader>,
    mut relay: Relay,
    found: &Found<'_>,
    pool: &Pool,
    replica: &Replica,
) -> Result<(), Stop> {
    let mut held = Vec::new();
    let mut end = false;
    while relay.holding() {
        let (mut data, last) = response.chunk().await?;
        found.apply(relay.chunk(&mut data, last));
        held.extend(data.filter(|d| !d.is_empty()));
        end = last;
        match relay.seal(end)? {
            Seal::Wait => {}
            Seal::Pass => break,
            Seal::Mint { version, theirs } => {
                let token = found.mint(&version, theirs)?;
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
        found.apply(relay.chunk(&mut data, last));
        end = last;
        client
            .write_body(data.filter(|d| !d.is_empty()).unwrap_or_default(), end)
            .await?;
    }
    response.finish(pool, replica);
    Ok(())
}
