//! Sealed session tokens: a legacy session lives in the `Mcp-Session-Id` the client echoes, not
//! in the proxy's memory, so any mcp-edge process holding the key serves it.
//!
//! A token is `base64url(nonce ‖ AES-256-GCM-SIV(key, nonce, claims))`, unpadded: a random
//! 96-bit nonce, the sealed [`Claims`] and a 128-bit tag, at most [`MAX_TOKEN_LEN`] characters of
//! visible ASCII. Nothing in it is readable without the key; a changed, cut or foreign token
//! fails authentication and opens as nothing.
//!
//! Why AES-256-GCM-SIV (RFC 8452): every mcp-edge process seals with random nonces and nobody
//! counts them, and GCM-SIV stays safe when random nonces collide (plain GCM would leak its
//! authentication key), at 0.5 µs per seal here. XChaCha20-Poly1305, the other random-nonce
//! choice, measured 2.0 µs per seal on this project's machine (docs/routing.md, "Sessions"). A [`Keys`] ring seals with the current key and
//! opens with the current or the previous one, so a key can be rotated without ending sessions.
//!
//! Claims, in order (all lengths one byte):
//!
//! | field | bytes |
//! |---|---|
//! | format | 1 (`1`, or `2` with a client profile) |
//! | session uid | 16, random |
//! | issued at | 8, Unix seconds, big endian |
//! | protocol version | length + text |
//! | identity binding | length + hash of the caller's credential (empty without auth) |
//! | owner | 0, or 1 + replica id (length + text) + the replica's session id (encoding byte + length + bytes) |
//!
//! | profile (format 2 only) | capability bits + 0, or 1 + clientInfo name (length + text) + version (length + text) |
//!
//! Format 2 carries what a legacy client declared at `initialize` ([`Profile`]), for the bridge;
//! a session with nothing to carry is sealed in format 1, byte for byte as before format 2
//! existed. Both formats open. Rolling out format 2 over a fleet that still runs a release
//! that opens only format 1 (a start-first update): run the new release with
//! `--session-format 1` until no old process is left, then drop the flag; otherwise an old
//! process answers 404 to a new process's format-2 token.
//!
//! A replica's own session id is packed when it is lowercase hex or a UUID (half the bytes);
//! otherwise it is carried as is, and one too long to fit the token is refused at initialize.

use aes_gcm_siv::{
    Aes256GcmSiv, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;

use super::{Owner, ReplicaId, profile::Profile};

/// Longest token handed to a client, in characters.
pub const MAX_TOKEN_LEN: usize = 256;
const NONCE: usize = 12;
const TAG: usize = 16;
/// Bytes of claims that fit: `MAX_TOKEN_LEN` characters of base64 carry 192 bytes.
const MAX_CLAIMS: usize = MAX_TOKEN_LEN / 4 * 3 - NONCE - TAG;
const FORMAT: u8 = 1;
const FORMAT_PROFILE: u8 = 2;
/// Binds every token to its purpose: the same key sealing something else never opens as a session.
const CONTEXT: &[u8] = b"mcp-edge session token v1";

/// A session key: 256 bits.
pub type Key = [u8; 32];

/// A session's random identity (what revocation and idle tracking refer to).
pub type Uid = [u8; 16];

/// What a token says about its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub uid: Uid,
    /// Unix seconds.
    pub issued: u64,
    pub version: String,
    /// Hash of the credential that opened the session; empty when there is no auth.
    pub identity: Vec<u8>,
    pub owner: Option<Owner>,
    /// What the client declared at `initialize`; the default (nothing) seals as format 1.
    pub profile: Profile,
}

/// Why a session could not be sealed into a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    pub needed: usize,
}

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the session does not fit a {MAX_TOKEN_LEN}-character token ({} bytes of claims, at most {MAX_CLAIMS}); \
             the replica's own session id or a field is too long",
            self.needed
        )
    }
}

/// Parse a key given as 64 hex digits (surrounding whitespace ignored, as in a secret file).
pub fn parse_key(text: &str) -> Result<Key, String> {
    let text = text.trim();
    let bytes = hex::decode(text).map_err(|_| {
        "a session key must be 64 hex digits (make one with `openssl rand -hex 32`)".to_owned()
    })?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "a session key must be 32 bytes (64 hex digits), this one has {}",
            b.len()
        )
    })
}

/// The keys of this process: seal with `current`, open with `current` or `previous`.
pub struct Keys {
    current: Aes256GcmSiv,
    previous: Option<Aes256GcmSiv>,
}

impl Keys {
    pub fn new(current: &Key, previous: Option<&Key>) -> Self {
        Self {
            current: Aes256GcmSiv::new(current.into()),
            previous: previous.map(|k| Aes256GcmSiv::new(k.into())),
        }
    }

    /// A key nobody else has: tokens die with the process.
    pub fn random() -> Self {
        let mut key = Key::default();
        rand::rng().fill_bytes(&mut key);
        Self::new(&key, None)
    }

    pub fn seal(&self, claims: &Claims) -> Result<String, TooLong> {
        let plain = encode(claims)?;
        let mut nonce = [0u8; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .current
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: CONTEXT,
                },
            )
            .expect("AES-256-GCM-SIV seals any message this short");
        let mut raw = Vec::with_capacity(NONCE + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// The claims of a token sealed by one of our keys; `None` for anything else.
    pub fn open(&self, token: &str) -> Option<Claims> {
        if token.len() > MAX_TOKEN_LEN || token.len() < (NONCE + TAG + 1) * 4 / 3 {
            return None;
        }
        let mut raw = [0u8; MAX_TOKEN_LEN / 4 * 3];
        let n = URL_SAFE_NO_PAD.decode_slice(token, &mut raw).ok()?;
        let (nonce, sealed) = raw[..n].split_at(NONCE);
        let nonce = Nonce::from_slice(nonce);
        let payload = || Payload {
            msg: sealed,
            aad: CONTEXT,
        };
        let plain = match self.current.decrypt(nonce, payload()) {
            Ok(plain) => plain,
            Err(_) => self.previous.as_ref()?.decrypt(nonce, payload()).ok()?,
        };
        decode(&plain)
    }
}

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(bytes.len().min(255) as u8);
    out.extend_from_slice(&bytes[..bytes.len().min(255)]);
}

/// How a replica's session id is packed.
const RAW: u8 = 0;
const HEX: u8 = 1;
const UUID: u8 = 2;

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.len().is_multiple_of(2)
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && is_lower_hex(&s.replace('-', ""))
}

fn pack_session_id(out: &mut Vec<u8>, id: &str) {
    if is_uuid(id) {
        out.push(UUID);
        put_field(out, &hex::decode(id.replace('-', "")).expect("checked hex"));
    } else if is_lower_hex(id) {
        out.push(HEX);
        put_field(out, &hex::decode(id).expect("checked hex"));
    } else {
        out.push(RAW);
        put_field(out, id.as_bytes());
    }
}

fn unpack_session_id(kind: u8, bytes: &[u8]) -> Option<String> {
    match kind {
        RAW => String::from_utf8(bytes.to_vec()).ok(),
        HEX => Some(hex::encode(bytes)),
        UUID if bytes.len() == 16 => {
            let h = hex::encode(bytes);
            Some(format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            ))
        }
        _ => None,
    }
}

fn encode(claims: &Claims) -> Result<Vec<u8>, TooLong> {
    let fields = [claims.version.len(), claims.identity.len()]
        .into_iter()
        .chain(
            claims
                .owner
                .iter()
                .flat_map(|o| [o.replica.len(), o.session_id.len()]),
        );
    if let Some(needed) = fields.filter(|&len| len > 255).max() {
        return Err(TooLong { needed });
    }
    let mut out = Vec::with_capacity(MAX_CLAIMS);
    let with_profile = claims.profile != Profile::default();
    out.push(if with_profile { FORMAT_PROFILE } else { FORMAT });
    out.extend_from_slice(&claims.uid);
    out.extend_from_slice(&claims.issued.to_be_bytes());
    put_field(&mut out, claims.version.as_bytes());
    put_field(&mut out, &claims.identity);
    match &claims.owner {
        None => out.push(0),
        Some(owner) => {
            out.push(1);
            put_field(&mut out, owner.replica.as_bytes());
            pack_session_id(&mut out, &owner.session_id);
        }
    }
    if with_profile {
        out.push(claims.profile.capabilities);
        match &claims.profile.info {
            None => out.push(0),
            Some((name, version)) => {
                out.push(1);
                put_field(&mut out, name.as_bytes());
                put_field(&mut out, version.as_bytes());
            }
        }
    }
    if out.len() > MAX_CLAIMS {
        return Err(TooLong { needed: out.len() });
    }
    Ok(out)
}

/// A cursor over authenticated claims (they were sealed by us, but a format change must not panic).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn field(&mut self) -> Option<&'a [u8]> {
        let n = self.byte()? as usize;
        self.take(n)
    }
    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.field()?.to_vec()).ok()
    }
}

fn decode(plain: &[u8]) -> Option<Claims> {
    let mut r = Reader(plain);
    let format = r.byte()?;
    if format != FORMAT && format != FORMAT_PROFILE {
        return None;
    }
    let uid: Uid = r.take(16)?.try_into().ok()?;
    let issued = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let version = r.text()?;
    let identity = r.field()?.to_vec();
    let owner = match r.byte()? {
        0 => None,
        1 => {
            let replica: ReplicaId = r.text()?.into();
            let kind = r.byte()?;
            let session_id = unpack_session_id(kind, r.field()?)?;
            Some(Owner {
                replica,
                session_id,
            })
        }
        _ => return None,
    };
    let mut profile = Profile::default();
    if format == FORMAT_PROFILE {
        profile.capabilities = r.byte()?;
        profile.info = match r.byte()? {
            0 => None,
            1 => Some((r.text()?, r.text()?)),
            _ => return None,
        };
    }
    r.0.is_empty().then_some(Claims {
        uid,
        issued,
        version,
        identity,
        owner,
        profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(owner: Option<Owner>) -> Claims {
        Claims {
            uid: [7; 16],
            issued: 1_790_000_000,
            version: "2025-06-18".into(),
            identity: vec![],
            owner,
            profile: Profile::default(),
        }
    }

    fn owner(session_id: &str) -> Option<Owner> {
        Some(Owner {
            replica: "10.0.1.23:8000".into(),
            session_id: session_id.into(),
        })
    }

    #[test]
    fn round_trip_and_visible_ascii() {
        let keys = Keys::random();
        for c in [
            claims(None),
            claims(owner("6f1c2a9e4b7d40c8a1e2f3b4c5d6e7f8")),
            claims(owner("123e4567-e89b-12d3-a456-426614174000")),
            claims(owner("Not-Hex_Session.ID~42")),
            Claims {
                identity: vec![9; 16],
                ..claims(None)
            },
        ] {
            let token = keys.seal(&c).unwrap();
            assert!(token.len() <= MAX_TOKEN_LEN, "{}", token.len());
            assert!(token.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            assert_eq!(keys.open(&token), Some(c));
        }
        let a = keys.seal(&claims(None)).unwrap();
        assert_ne!(
            a,
            keys.seal(&claims(None)).unwrap(),
            "a fresh nonce every time"
        );
    }

    #[test]
    fn a_client_profile_seals_as_format_2_and_fits_beside_an_identity() {
        use super::super::profile::{MAX_NAME, MAX_VERSION};
        let keys = Keys::random();
        let c = Claims {
            identity: vec![9; 16],
            version: "2025-11-25".into(),
            profile: Profile {
                capabilities: 0x7f,
                info: Some(("n".repeat(MAX_NAME), "v".repeat(MAX_VERSION))),
            },
            ..claims(None)
        };
        assert_eq!(encode(&c).unwrap()[0], FORMAT_PROFILE);
        let token = keys.seal(&c).unwrap();
        assert!(token.len() <= MAX_TOKEN_LEN, "{}", token.len());
        assert_eq!(keys.open(&token), Some(c));
    }

    #[test]
    fn a_session_without_a_profile_is_sealed_in_format_1_as_before() {
        let plain = encode(&claims(None)).unwrap();
        let mut before = vec![FORMAT];
        before.extend_from_slice(&[7; 16]);
        before.extend_from_slice(&1_790_000_000u64.to_be_bytes());
        before.push(10);
        before.extend_from_slice(b"2025-06-18");
        before.extend_from_slice(&[0, 0]);
        assert_eq!(plain, before, "the format-1 layout, byte for byte");
        assert_eq!(decode(&before), Some(claims(None)));
    }

    #[test]
    fn nothing_inside_is_readable() {
        let keys = Keys::random();
        let c = claims(owner("6f1c2a9e4b7d40c8a1e2f3b4c5d6e7f8"));
        let raw = URL_SAFE_NO_PAD.decode(keys.seal(&c).unwrap()).unwrap();
        for needle in [
            &b"2025-06-18"[..],
            b"10.0.1.23",
            &hex::decode("6f1c2a9e4b7d40c8").unwrap(),
            &[7; 16],
        ] {
            assert!(
                !raw.windows(needle.len()).any(|w| w == needle),
                "{needle:?} is visible"
            );
        }
    }

    #[test]
    fn tampered_truncated_and_foreign_tokens_open_as_nothing() {
        let keys = Keys::random();
        let token = keys.seal(&claims(owner("abc"))).unwrap();
        for i in 0..token.len() {
            let mut t = token.clone().into_bytes();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            assert_eq!(
                keys.open(std::str::from_utf8(&t).unwrap()),
                None,
                "byte {i} changed"
            );
        }
        for cut in [1, 10, token.len() - 1] {
            assert_eq!(keys.open(&token[..cut]), None);
        }
        assert_eq!(Keys::random().open(&token), None, "another key");
        for junk in [
            "",
            "not a token",
            "%%%%",
            &"A".repeat(300),
            &"_".repeat(200),
        ] {
            assert_eq!(keys.open(junk), None);
        }
    }

    #[test]
    fn the_previous_key_still_opens_during_a_rotation() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let token = Keys::new(&old, None).seal(&claims(None)).unwrap();
        assert_eq!(Keys::new(&new, Some(&old)).open(&token), Some(claims(None)));
        assert_eq!(
            Keys::new(&new, None).open(&token),
            None,
            "after the rotation ends"
        );
    }

    #[test]
    fn too_long_a_replica_session_id_is_refused() {
        let keys = Keys::random();
        let e = keys.seal(&claims(owner(&"x".repeat(120)))).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        assert!(keys.seal(&claims(owner(&"x".repeat(80)))).is_ok());
        assert!(
            keys.seal(&claims(owner(&"ab".repeat(70)))).is_ok(),
            "hex packs to half"
        );
    }

    #[test]
    fn keys_parse_from_hex() {
        assert_eq!(
            parse_key(&format!(" {}\n", "ab".repeat(32))).unwrap(),
            [0xab; 32]
        );
        assert!(parse_key("abcd").unwrap_err().contains("32 bytes"));
        assert!(parse_key("zz").unwrap_err().contains("hex"));
    }
}
