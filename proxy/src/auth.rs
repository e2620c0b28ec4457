//! Bearer authentication at the edge: `Authorization: Bearer <token>` checked against the
//! configured tokens in constant time. Each token's identity (a hash, never the token) binds the
//! sessions it opens. Health endpoints live on the admin listener and need no token.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use mcp_protocol::error::INVALID_REQUEST;

use crate::answer::Reply;

/// What a session is bound to: the first 16 bytes of SHA-256 of the credential.
pub type Identity = [u8; 16];

pub struct Auth {
    /// (token, its identity)
    tokens: Vec<(Vec<u8>, Identity)>,
}

/// Tokens from a comma list or a file (one per line; blank lines and `#` comments skipped).
pub fn parse_tokens(text: &str, separator: char) -> Vec<String> {
    text.split(separator)
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

impl Auth {
    pub fn new(tokens: &[String]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(tokens.len());
        for token in tokens {
            if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err("an auth token must be at least 16 visible ASCII characters (e.g. `openssl rand -hex 32`)".into());
            }
            out.push((token.as_bytes().to_vec(), identity(token.as_bytes())));
        }
        Ok(Self { tokens: out })
    }

    /// The caller's identity, or the 401 to answer.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<Identity, Reply> {
        let challenge = |error: Option<&str>| match error {
            Some(e) => format!("Bearer realm=\"mcp-edge\", error=\"{e}\""),
            None => "Bearer realm=\"mcp-edge\"".to_owned(),
        };
        let Some(header) = authorization else {
            return Err(Reply::error(
                401,
                INVALID_REQUEST,
                "authentication required: send Authorization: Bearer <token>",
            )
            .with_header("WWW-Authenticate", challenge(None)));
        };
        let presented = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
            .map(<[u8]>::trim_ascii);
        let invalid = || {
            Reply::error(401, INVALID_REQUEST, "the bearer token is not valid")
                .with_header("WWW-Authenticate", challenge(Some("invalid_token")))
        };
        let presented = presented.ok_or_else(invalid)?;
        // Every token is compared, equal or not, so timing says nothing about which one matched.
        let mut found: Option<Identity> = None;
        for (token, id) in &self.tokens {
            if bool::from(token.as_slice().ct_eq(presented)) {
                found = Some(*id);
            }
        }
        found.ok_or_else(invalid)
    }
}

fn identity(credential: &[u8]) -> Identity {
    let digest = Sha256::digest(credential);
    digest[..16].try_into().expect("SHA-256 has 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "token-a-0123456789abcdef";
    const B: &str = "token-b-0123456789abcdef";

    #[test]
    fn bearer_tokens_are_checked() {
        let auth = Auth::new(&[A.into(), B.into()]).unwrap();
        let a = auth.check(Some(format!("Bearer {A}").as_bytes())).unwrap();
        let b = auth.check(Some(format!("Bearer {B}").as_bytes())).unwrap();
        assert_ne!(a, b, "each credential has its own identity");
        let missing = auth.check(None).unwrap_err();
        assert_eq!(missing.status, 401);
        assert!(
            missing
                .headers
                .iter()
                .any(|(n, v)| *n == "WWW-Authenticate" && v == "Bearer realm=\"mcp-edge\"")
        );
        for wrong in [
            "Bearer nope-nope-nope-nope",
            "Basic dXNlcjpwYXNz",
            A,
            "Bearer token-a-0123456789abcde",
        ] {
            let e = auth.check(Some(wrong.as_bytes())).unwrap_err();
            assert_eq!(e.status, 401, "{wrong}");
            assert!(e.headers.iter().any(|(_, v)| v.contains("invalid_token")));
        }
        assert!(Auth::new(&["short".into()]).is_err());
    }

    #[test]
    fn token_lists() {
        assert_eq!(parse_tokens(" a , b,,", ','), ["a", "b"]);
        assert_eq!(
            parse_tokens("# ops\nfirst\n\nsecond\n", '\n'),
            ["first", "second"]
        );
    }
}
