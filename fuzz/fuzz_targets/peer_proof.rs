//! Any `Mcp-Edge-Peer` value for any request: checking it must never panic, and must accept
//! only a proof one of the peer keys (current or previous) makes for that very path, token,
//! body and time; a real proof with any one byte of its tag changed, for another path, or
//! outside the window is refused.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mcp_edge::session::peers::PeerKeys;

static KEYS: LazyLock<PeerKeys> = LazyLock::new(|| PeerKeys::derive(&[7u8; 32], Some(&[9u8; 32])));
static PREVIOUS: LazyLock<PeerKeys> = LazyLock::new(|| PeerKeys::derive(&[9u8; 32], None));

const NOW: u64 = 1_800_000_000;
const PATH: &str = "/sessions/revoke";

fuzz_target!(|data: &[u8]| {
    // proof \0 token \0 body: the parts a forger controls.
    let mut parts = data.splitn(3, |b| *b == 0);
    let (Some(proof), Some(token), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(proof), Ok(token)) = (std::str::from_utf8(proof), std::str::from_utf8(token)) else {
        return;
    };
    if KEYS.check(Some(proof), PATH, token, body, NOW).is_ok() {
        let (time, tag) = proof.split_once('.').expect("an accepted proof has a time");
        let time = time.parse().expect("a number");
        let tag = tag.to_ascii_lowercase();
        let made = [&*KEYS, &*PREVIOUS].map(|k| k.prove(PATH, token, body, time));
        assert!(made.iter().any(|m| m.ends_with(&tag)), "{proof} accepted");
    }
    // A real proof opens, and never altered, elsewhere or stale.
    let real = KEYS.prove(PATH, token, body, NOW);
    assert!(KEYS.check(Some(&real), PATH, token, body, NOW).is_ok());
    assert!(KEYS.check(Some(&real), "/bridge/deliver", token, body, NOW).is_err());
    assert!(KEYS.check(Some(&real), PATH, token, body, NOW + 31).is_err());
    let at = real.find('.').expect("time.tag") + 1 + data.len() % 64;
    let mut altered = real.clone().into_bytes();
    altered[at] = if altered[at] == b'0' { b'1' } else { b'0' };
    let altered = String::from_utf8(altered).expect("hex");
    assert!(KEYS.check(Some(&altered), PATH, token, body, NOW).is_err(), "{altered}");
});
