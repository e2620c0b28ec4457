//! Any bytes, arriving in any pieces, as the start of a request head: the scan that decides
//! when a head is whole (mcp-edge reads heads itself, to bound them) must never panic and must
//! agree, at every piece, with a plain search of the whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge::downstream::HeadScan;

/// Where the first head in `buf` ends, by looking at every position: leading blank lines skipped
/// (the request parser ignores them), then the first `\n\n` or `\n\r\n`. A prefix of `buf` holds
/// a whole head exactly when it reaches that end.
fn first_end(buf: &[u8]) -> Option<usize> {
    let start = buf.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
    (start..buf.len()).find_map(|i| match &buf[i..] {
        [b'\n', b'\n', ..] => Some(i + 2),
        [b'\n', b'\r', b'\n', ..] => Some(i + 3),
        _ => None,
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte sets the pieces' size (1 to 16 bytes).
    let Some((&size, bytes)) = data.split_first() else {
        return;
    };
    let size = usize::from(size % 16) + 1;
    let end_at = first_end(bytes);
    let mut scan = HeadScan::default();
    let mut end = 0;
    while end < bytes.len() {
        end = (end + size).min(bytes.len());
        let complete = scan.complete(&bytes[..end]);
        assert_eq!(complete, end_at.is_some_and(|e| e <= end), "after {end} bytes of {bytes:?}");
        if complete {
            break;
        }
    }
});
