//! The ids of the questions a bridged call asks its client: self-describing, so that the
//! client's answer, whichever mcp-edge process it reaches, names the process and the call
//! waiting for it. `mcp-edge:<process, 16 hex>:<call, 32 hex>:<question number>`, a JSON string.
//! They carry routing only; the call's state stays in the process that holds the client's
//! stream (the answer's 202 cannot carry a result, so the two must meet there anyway).

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuestionId {
    /// The mcp-edge process running the call.
    pub process: u64,
    /// The bridged call.
    pub call: u128,
    /// The question, numbered across the call's rounds.
    pub n: u32,
}

const PREFIX: &str = "\"mcp-edge:";

impl QuestionId {
    /// The raw JSON of the id (a string).
    pub fn to_json(&self) -> String {
        format!(
            "{PREFIX}{:016x}:{:032x}:{}\"",
            self.process, self.call, self.n
        )
    }

    /// The id in a client's answer (raw JSON); `None` for anything the bridge did not mint.
    pub fn parse(raw: &str) -> Option<Self> {
        let inner = raw.strip_prefix(PREFIX)?.strip_suffix('"')?;
        let mut parts = inner.split(':');
        let (process, call, n) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || process.len() != 16
            || call.len() != 32
            || n.is_empty()
            || n.len() > 10
        {
            return None;
        }
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(process) || !hex(call) || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            process: u64::from_str_radix(process, 16).ok()?,
            call: u128::from_str_radix(call, 16).ok()?,
            n: n.parse().ok()?,
        })
    }
}

/// Whether a raw JSON id looks like a bridge question's (routing; [`QuestionId::parse`] decides).
pub fn is_bridge_id(raw: &str) -> bool {
    raw.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_process_call_and_question() {
        let id = QuestionId {
            process: 0x9f00_0000_0000_0001,
            call: 0x4c << 100 | 7,
            n: 12,
        };
        let raw = id.to_json();
        assert!(is_bridge_id(&raw));
        assert_eq!(QuestionId::parse(&raw), Some(id));
        assert!(raw.len() < 80);
    }

    #[test]
    fn forged_cut_and_foreign_ids_parse_as_nothing() {
        let good = QuestionId {
            process: 1,
            call: 2,
            n: 3,
        }
        .to_json();
        for bad in [
            "1",
            "\"q1\"",
            &good[..good.len() - 1],
            &good.replace(":3\"", ":\""),
            &good.replace(":3\"", ":3:4\""),
            &good.replace(":3\"", ":99999999999\""),
            &good.replacen("0000000000000001", "000000000000000g", 1),
            &good.replacen("0000000000000001", "00000000000001", 1),
            "\"mcp-edge:\"",
        ] {
            assert_eq!(QuestionId::parse(bad), None, "{bad}");
        }
    }
}
