//! Any string as a session token: opening must refuse (or, for a real token, accept) without
//! panicking; a token this process sealed must open to what was sealed.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mcp_edge::session::token::Keys;

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys::new(&[7u8; 32], Some(&[9u8; 32])));

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(claims) = KEYS.open(text) {
            // Only what we sealed opens; sealing it again must open again.
            let again = KEYS.seal(&claims).expect("it was sealed once");
            assert!(KEYS.open(&again).is_some());
        }
    }
});
