//! The one framing rule HTTP/1 request heads and SSE events share: a block of lines ends at an
//! empty line, and a line ends at LF (a CR before it is part of the line end). An HTTP head is
//! `…\r\n\r\n` (RFC 9112 §2.2 lets a recipient take a bare LF too); an SSE event is `…\n\n`.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// The two ends of a block, for [`has_block_end`]: memchr's SIMD substring search.
static CRLF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\r\n"));
static LF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));

/// The length of the first block in `buf` (through its empty line), searching from `from`:
/// no end lies wholly before it. A block ends at a line end followed by an empty line, `\n\n`
/// or `\n\r\n`. Line ends are found with memchr, and the search stops at the first end: a
/// buffer of many small events is searched once, event by event (searching it for one kind of
/// end first would scan all of it for each event).
pub fn block_end(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    memchr::memchr_iter(b'\n', rest).find_map(|i| match rest.get(i + 1) {
        Some(b'\n') => Some(from + i + 2),
        Some(b'\r') if rest.get(i + 2) == Some(&b'\n') => Some(from + i + 3),
        _ => None,
    })
}

/// Whether `buf` holds a whole block from `from`: [`block_end`] without finding which end is
/// first, for a request head (at most some 33 KiB, searched again only from where the last
/// search stopped): one SIMD search for heads ending `\r\n\r\n`, every client's. It runs on
/// every request, where a memchr call per line cost ~350 instructions and this ~140.
pub fn has_block_end(buf: &[u8], from: usize) -> bool {
    buf.get(from..)
        .is_some_and(|rest| CRLF.find(rest).is_some() || LF.find(rest).is_some())
}

/// Where to search again once more bytes arrived after `searched` were searched: an end marker
/// is at most 3 bytes, so it may begin in the last 2.
pub fn resume_from(searched: usize) -> usize {
    searched.saturating_sub(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same answer as a plain search of every position.
    fn plain(buf: &[u8]) -> Option<usize> {
        (0..buf.len()).find_map(|i| match &buf[i..] {
            [b'\n', b'\n', ..] => Some(i + 2),
            [b'\n', b'\r', b'\n', ..] => Some(i + 3),
            _ => None,
        })
    }

    #[test]
    fn a_block_ends_at_the_first_empty_line_whatever_its_line_ends() {
        for buf in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\nnext"[..],
            b"data: 1\n\ndata: 2\n\n",
            b"a\n\r\n",
            b"a\r\n\r",
            b"a\r\r\n",
            b"\n\n",
            b"",
            b"no end\r\n",
            b"a\n\nb\n\r\n",
            b"a\n\r\nb\n\n",
            b"\n\r\n\n",
            b"x\n\n\r\n",
        ] {
            assert_eq!(block_end(buf, 0), plain(buf), "{buf:?}");
        }
        assert_eq!(block_end(b"a\n\nb\n\n", 3), Some(6));
        // Every string of up to 7 bytes of `\n`, `\r` and `a`, from every start.
        let mut buf = Vec::new();
        for len in 0..=7u32 {
            for n in 0..3usize.pow(len) {
                buf.clear();
                let mut n = n;
                for _ in 0..len {
                    buf.push([b'\n', b'\r', b'a'][n % 3]);
                    n /= 3;
                }
                for from in 0..=buf.len() {
                    let expected = plain(&buf[from..]).map(|end| from + end);
                    assert_eq!(block_end(&buf, from), expected, "{buf:?} from {from}");
                    assert_eq!(has_block_end(&buf, from), expected.is_some());
                }
            }
        }
        assert_eq!(block_end(b"ab", 5), None, "from past the end");
    }
}
