//! App tokens: 32 random bytes shown once as `skab_at_<base64url>`, stored as a keyed BLAKE3.

use crate::limits::APP_TOKEN_BYTES;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Prefix of every app token string.
pub const APP_TOKEN_PREFIX: &str = "skab_at_";

/// A new token: the string to show once, and its raw bytes.
pub fn generate() -> (String, [u8; APP_TOKEN_BYTES]) {
    let mut raw = [0u8; APP_TOKEN_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    (
        format!("{APP_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)),
        raw,
    )
}

/// The raw bytes of a token string, if it is one.
pub fn parse(s: &str) -> Option<[u8; APP_TOKEN_BYTES]> {
    let body = s.strip_prefix(APP_TOKEN_PREFIX)?;
    // 32 bytes are 43 base64 characters; refuse anything else before decoding.
    if body.len() != 43 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
    bytes.try_into().ok()
}

/// The stored form of a token: BLAKE3 keyed with the server secret.
pub fn hash(key: &[u8; 32], raw: &[u8; APP_TOKEN_BYTES]) -> [u8; 32] {
    *blake3::keyed_hash(key, raw).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_parse_roundtrip_and_rejects() {
        let (s, raw) = generate();
        assert!(s.starts_with(APP_TOKEN_PREFIX));
        assert_eq!(parse(&s), Some(raw));
        let (s2, raw2) = generate();
        assert_ne!(raw, raw2);
        assert_eq!(parse(&s2), Some(raw2));
        assert_eq!(parse("skab_at_"), None);
        assert_eq!(parse(&s[1..]), None);
        assert_eq!(parse(&format!("{s}A")), None);
        let mut bad = s.clone();
        bad.replace_range(10..11, "!");
        assert_eq!(parse(&bad), None);
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        assert_ne!(
            hash(&k1, &raw),
            hash(&k2, &raw),
            "hash depends on the server key"
        );
    }
}
