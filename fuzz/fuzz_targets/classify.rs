//! Any bytes as a POST body: classification must answer (a message or why not), never panic,
//! and what it returns must be consistent with the era and routing rules that read it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_protocol as mcp;

fuzz_target!(|body: &[u8]| {
    if let Ok(message) = mcp::classify(body) {
        let era = mcp::era(Some(&message), None);
        let _ = era.is_modern();
        if let Some(id) = message.id {
            // The raw id must be JSON text of its own.
            assert!(serde_json::from_str::<serde_json::Value>(id).is_ok(), "id {id:?} is not JSON");
        }
    }
});
