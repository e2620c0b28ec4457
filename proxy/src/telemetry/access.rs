//! The access log: one line per request — time, MCP method, tool, protocol era, session (a
//! short hash of its uid, never the token), replica, status, latency, bytes in and out, client
//! and error — as JSON or as `key=value` text (`--access-log`). A line is formatted straight
//! into a reused buffer ([`Entry::json`], [`Entry::text`]: no `serde_json`, no `dyn` visitor per
//! field, as tracing's JSON layer had) and appended to a batch in memory; a background thread writes the batches to
//! stdout ([`Batched`]), so a request never waits for the write and the log costs no system
//! call per request. If stdout falls behind, lines are dropped (and the drop is reported on
//! stderr) rather than slowing traffic.

use std::{
    cell::RefCell,
    io::Write,
    sync::{Arc, Condvar, Mutex, OnceLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use pingora::Error;
use sha2::{Digest, Sha256};

use super::{
    metrics::Request,
    registry::{Encoder, Source},
};
use crate::{config::AccessLog as Format, downstream::client::Traffic, session::SessionView};

/// Where access log lines go, and in which format.
#[derive(Clone)]
pub struct AccessLog {
    json: bool,
    out: Arc<Batched>,
}

thread_local! {
    /// Each worker thread formats its lines in one buffer, reused.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl AccessLog {
    /// The access log in `format`, written to `out`; `None` for `--access-log off`.
    pub fn start(
        format: Format,
        out: impl Write + Send + 'static,
    ) -> std::io::Result<Option<Self>> {
        Ok(match format {
            Format::Off => None,
            Format::Json | Format::Text => Some(Self {
                json: format == Format::Json,
                out: Batched::start(out)?,
            }),
        })
    }

    /// Lines dropped so far because stdout did not keep up (the buffer holds at most 8 MiB).
    pub fn dropped(&self) -> u64 {
        self.out.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Log one finished request.
    pub fn log(
        &self,
        traffic: &Traffic,
        addr: Option<std::net::SocketAddr>,
        view: Option<&SessionView>,
        r: &Request,
        bridged: Option<&Bridged>,
        error: Option<&Error>,
    ) {
        // A short, stable name for the session: 8 hex digits of SHA-256 of its uid.
        let tag = view.map(|v| {
            let mut tag = [0u8; 8];
            hex::encode_to_slice(&Sha256::digest(v.uid)[..4], &mut tag).expect("8 hex digits");
            tag
        });
        let error = error.map(|e| e.to_string());
        let client = addr.map(|addr| match addr {
            std::net::SocketAddr::V4(v4) => ipv4_text(&v4),
            _ => addr.to_string(),
        });
        let entry = Entry {
            time: SystemTime::now(),
            method: r.method,
            tool: r
                .tool
                .map(|t| crate::budget::bounded(t, crate::budget::NAME_LIMIT)),
            era: r.era,
            session: tag.as_ref().map(|t| std::str::from_utf8(t).expect("hex")),
            replica: r.replica.map(|id| &**id),
            status: r.status,
            latency_us: r.elapsed.as_micros() as u64,
            bytes_in: traffic.bytes_in as u64,
            bytes_out: traffic.bytes_out as u64,
            client: client.as_deref(),
            protocol: traffic.http2.then_some("h2"),
            rounds: bridged.map(|b| b.rounds.into()),
            replicas: bridged.map(|b| b.replicas.as_str()),
            error: error.as_deref(),
        };
        LINE.with_borrow_mut(|line| {
            line.clear();
            if self.json {
                entry.json(line)
            } else {
                entry.text(line)
            }
            self.out.append(line);
        });
    }
}

/// One access log line's fields.
pub struct Entry<'a> {
    pub time: SystemTime,
    pub method: &'a str,
    pub tool: Option<&'a str>,
    pub era: &'a str,
    pub session: Option<&'a str>,
    pub replica: Option<&'a str>,
    pub status: u16,
    pub latency_us: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub client: Option<&'a str>,
    /// `h2` for a request that came as an HTTP/2 stream; absent for HTTP/1.1.
    pub protocol: Option<&'a str>,
    /// A bridged call: its rounds, and the replicas that served them (comma list).
    pub rounds: Option<u64>,
    pub replicas: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// What a bridged call adds to its line.
#[derive(Debug, Default, Clone)]
pub struct Bridged {
    pub rounds: u32,
    pub replicas: String,
}

impl Entry<'_> {
    /// The fields after the timestamp, in their order; `None` when absent.
    fn fields(&self) -> [(&'static str, Option<Value<'_>>); 14] {
        use Value::{Number, Text};
        [
            ("method", Some(Text(self.method))),
            ("tool", self.tool.map(Text)),
            ("era", Some(Text(self.era))),
            ("session", self.session.map(Text)),
            ("replica", self.replica.map(Text)),
            ("status", Some(Number(self.status.into()))),
            ("latency_us", Some(Number(self.latency_us))),
            ("bytes_in", Some(Number(self.bytes_in))),
            ("bytes_out", Some(Number(self.bytes_out))),
            ("client", self.client.map(Text)),
            ("protocol", self.protocol.map(Text)),
            ("rounds", self.rounds.map(Number)),
            ("replicas", self.replicas.map(Text)),
            ("error", self.error.map(Text)),
        ]
    }

    /// `{"timestamp":"…","method":"…",…}` and a newline; absent fields are left out.
    pub fn json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        rfc3339(self.time, out);
        out.push(b'"');
        for (key, value) in self.fields() {
            let Some(value) = value else { continue };
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            match value {
                Value::Text(text) => quoted(text, out),
                Value::Number(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            }
        }
        out.extend_from_slice(b"}\n");
    }

    /// `timestamp key=value …` (logfmt) and a newline; values with spaces, quotes, `=` or
    /// control characters are quoted; absent fields are left out.
    pub fn text(&self, out: &mut Vec<u8>) {
        rfc3339(self.time, out);
        for (key, value) in self.fields() {
            let Some(value) = value else { continue };
            out.push(b' ');
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            match value {
                Value::Text(text)
                    if text.is_empty()
                        || text
                            .bytes()
                            .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == b'\\') =>
                {
                    quoted(text, out)
                }
                Value::Text(text) => out.extend_from_slice(text.as_bytes()),
                Value::Number(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            }
        }
        out.push(b'\n');
    }
}

/// A field's value.
#[derive(Clone, Copy)]
enum Value<'a> {
    Text(&'a str),
    Number(u64),
}

/// `a.b.c.d:port`, as `Display` writes it at a tenth of the instructions.
fn ipv4_text(addr: &std::net::SocketAddrV4) -> String {
    let mut text = String::with_capacity(21);
    let mut digits = itoa::Buffer::new();
    for (i, octet) in addr.ip().octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        text.push_str(digits.format(octet));
    }
    text.push(':');
    text.push_str(digits.format(addr.port()));
    text
}

/// `s` as a JSON string, in quotes.
fn quoted(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let mut from = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[from..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        from = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[from..]);
    out.push(b'"');
}

/// `2026-11-24T16:36:00.123456Z` (UTC, microseconds).
fn rfc3339(time: SystemTime, out: &mut Vec<u8>) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let digits = |out: &mut Vec<u8>, value: u64, width: usize| {
        let mut buf = itoa::Buffer::new();
        let text = buf.format(value);
        out.extend(std::iter::repeat_n(b'0', width.saturating_sub(text.len())));
        out.extend_from_slice(text.as_bytes());
    };
    digits(out, year as u64, 4);
    out.push(b'-');
    digits(out, month, 2);
    out.push(b'-');
    digits(out, day, 2);
    out.push(b'T');
    digits(out, rest / 3600, 2);
    out.push(b':');
    digits(out, rest / 60 % 60, 2);
    out.push(b':');
    digits(out, rest % 60, 2);
    out.push(b'.');
    digits(out, since.subsec_micros().into(), 6);
    out.push(b'Z');
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A batch is written this long after its first line (or sooner, when it reaches [`FLUSH_AT`]).
const FLUSH_EVERY: Duration = Duration::from_millis(50);
const FLUSH_AT: usize = 64 * 1024;
/// Lines beyond this many unwritten bytes are dropped.
const HELD_AT_MOST: usize = 8 << 20;

/// Access log lines waiting for the writer thread.
struct Batched {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Lines dropped since the start.
    dropped: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    dropped: u64,
}

/// The writer's buffer and its output, for the lines still held at exit.
type Held = (Arc<Batched>, Mutex<Box<dyn Write + Send>>);
/// The batch the process writes out when it exits (pingora ends it with `exit`).
static AT_EXIT: OnceLock<Held> = OnceLock::new();

impl Batched {
    /// Start the writer thread for `out`; the lines still held when the process exits are
    /// written then.
    fn start(out: impl Write + Send + 'static) -> std::io::Result<Arc<Self>> {
        let batched = Arc::new(Self {
            pending: Mutex::default(),
            wake: Condvar::new(),
            dropped: std::sync::atomic::AtomicU64::new(0),
        });
        let _ = AT_EXIT.set((batched.clone(), Mutex::new(Box::new(out))));
        extern "C" fn flush_at_exit() {
            // Not behind a writer thread stuck on a full stdout: exiting must not hang.
            if let Some((batched, out)) = AT_EXIT.get()
                && let Ok(mut out) = out.try_lock()
            {
                batched.write_out(&mut *out);
            }
        }
        // SAFETY: registers a plain function with the C runtime, called once at exit.
        unsafe { libc::atexit(flush_at_exit) };
        let writer = batched.clone();
        std::thread::Builder::new()
            .name("mcp-edge-access-log".into())
            .spawn(move || writer.run())?;
        Ok(batched)
    }

    fn run(&self) {
        let Some((_, out)) = AT_EXIT.get() else {
            return;
        };
        loop {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let pending = self
                .wake
                .wait_while(pending, |p| p.lines.is_empty())
                .unwrap_or_else(|e| e.into_inner());
            let (pending, _) = self
                .wake
                .wait_timeout_while(pending, FLUSH_EVERY, |p| p.lines.len() < FLUSH_AT)
                .unwrap_or_else(|e| e.into_inner());
            drop(pending);
            self.write_out(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// Write what is held (the writer thread, or the exit handler).
    fn write_out(&self, out: &mut impl Write) {
        let (lines, dropped) = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            // The next batch starts at a full batch's size: appends on the request path do not
            // grow it again.
            let lines = std::mem::replace(&mut pending.lines, Vec::with_capacity(FLUSH_AT + 4096));
            (lines, std::mem::take(&mut pending.dropped))
        };
        if dropped > 0 {
            self.dropped
                .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!("access log: {dropped} lines dropped, stdout did not keep up");
        }
        let _ = out.write_all(&lines).and_then(|()| out.flush());
    }

    fn append(&self, line: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.lines.len() + line.len() > HELD_AT_MOST {
            pending.dropped += 1;
            return;
        }
        let was_empty = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        // Only a batch's first line, or a full batch, needs the writer's attention.
        let full = pending.lines.len() >= FLUSH_AT && pending.lines.len() - line.len() < FLUSH_AT;
        drop(pending);
        if was_empty || full {
            self.wake.notify_one();
        }
    }
}

impl Source for AccessLog {
    fn collect(&self, out: &mut Encoder) {
        out.counter(
            "mcp_edge_access_log_dropped_total",
            "Access log lines dropped because stdout fell 8 MiB behind.",
            self.dropped(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_held_until_the_writer_takes_them_and_drop_beyond_the_limit() {
        let batched = Batched {
            pending: Mutex::default(),
            wake: Condvar::new(),
            dropped: Default::default(),
        };
        batched.append(b"one\n");
        batched.append(b"two\n");
        let mut out = Vec::new();
        batched.write_out(&mut out);
        assert_eq!(out, b"one\ntwo\n");
        assert!(batched.pending.lock().unwrap().lines.is_empty());
        let big = vec![b'x'; HELD_AT_MOST];
        batched.append(&big);
        batched.append(b"three\n");
        assert_eq!(batched.pending.lock().unwrap().dropped, 1);
    }

    fn entry<'a>(tool: Option<&'a str>, error: Option<&'a str>) -> Entry<'a> {
        Entry {
            time: UNIX_EPOCH + Duration::from_micros(1_795_536_000_000_042),
            method: "tools/call",
            tool,
            era: "legacy",
            session: Some("0a1b2c3d"),
            replica: Some("r1"),
            status: 200,
            latency_us: 1234,
            bytes_in: 90,
            bytes_out: 120,
            client: Some("127.0.0.1:5000"),
            protocol: None,
            rounds: None,
            replicas: None,
            error,
        }
    }

    #[test]
    fn a_request_that_came_over_http2_says_so_and_one_over_http1_says_nothing() {
        let mut out = Vec::new();
        Entry {
            protocol: Some("h2"),
            ..entry(None, None)
        }
        .json(&mut out);
        let line = std::str::from_utf8(&out).unwrap();
        assert!(
            line.contains(r#""client":"127.0.0.1:5000","protocol":"h2"}"#),
            "{line}"
        );
        out.clear();
        entry(None, None).text(&mut out);
        assert!(!std::str::from_utf8(&out).unwrap().contains("protocol"));
    }

    #[test]
    fn a_json_line_is_one_object_with_the_fields_present() {
        let mut out = Vec::new();
        entry(Some("echo"), None).json(&mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "{\"timestamp\":\"2026-11-24T16:00:00.000042Z\",\"method\":\"tools/call\",\"tool\":\"echo\",\"era\":\"legacy\",\
             \"session\":\"0a1b2c3d\",\"replica\":\"r1\",\"status\":200,\"latency_us\":1234,\"bytes_in\":90,\"bytes_out\":120,\
             \"client\":\"127.0.0.1:5000\"}\n"
        );
    }

    #[test]
    fn hostile_values_stay_inside_their_json_string() {
        let tool = "a\"b\\c\nd\u{1}é";
        let mut out = Vec::new();
        entry(Some(tool), Some("boom \"x\"")).json(&mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (line["tool"].as_str(), line["error"].as_str()),
            (Some(tool), Some("boom \"x\""))
        );
    }

    #[test]
    fn a_text_line_quotes_only_what_needs_it() {
        let mut out = Vec::new();
        entry(Some("echo"), Some("connect refused")).text(&mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "2026-11-24T16:00:00.000042Z method=tools/call tool=echo era=legacy session=0a1b2c3d replica=r1 status=200 \
             latency_us=1234 bytes_in=90 bytes_out=120 client=127.0.0.1:5000 error=\"connect refused\"\n"
        );
        out.clear();
        entry(Some("x=1\ny"), None).text(&mut out);
        assert!(
            std::str::from_utf8(&out)
                .unwrap()
                .contains(" tool=\"x=1\\ny\" ")
        );
    }

    #[test]
    fn client_addresses_read_as_display_writes_them() {
        for addr in ["127.0.0.1:5000", "10.200.3.45:65535", "0.0.0.0:0"] {
            assert_eq!(ipv4_text(&addr.parse().unwrap()), addr);
        }
    }

    #[test]
    fn timestamps_are_utc_dates_across_leap_years() {
        for (secs, date) in [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (4_107_542_399, "2100-02-28T23:59:59.000000Z"),
        ] {
            let mut out = Vec::new();
            rfc3339(UNIX_EPOCH + Duration::from_secs(secs), &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), date);
        }
    }
}
