//! Checks skab hand-in receipts (`Skab-Receipt`) offline, as `skab receipt verify` does:
//! the text is `skab-receipt-1.<base64url JSON>.<base64url Ed25519 signature>`, signed over
//! everything before the last `.` (server/src/handin/receipt.rs; docs/handin.md).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Deserialize;

const PREFIX: &str = "skab-receipt-1.";
const KEY_PREFIX: &str = "skab-ed25519:";

/// What the loadtest compares of a receipt.
#[derive(Debug, Deserialize)]
pub struct Stated {
    pub user: String,
    pub file: String,
    pub size: u64,
    pub blake3: String,
}

/// The public key `skab receipt key` prints.
pub fn parse_key(text: &str) -> Option<VerifyingKey> {
    let b = B64.decode(text.trim().strip_prefix(KEY_PREFIX)?).ok()?;
    VerifyingKey::from_bytes(&b.try_into().ok()?).ok()
}

/// What `text` states, when its signature holds under `key`.
pub fn verify(text: &str, key: &VerifyingKey) -> Option<Stated> {
    let body = text.strip_prefix(PREFIX)?;
    let (payload, sig) = body.rsplit_once('.')?;
    let sig: [u8; 64] = B64.decode(sig).ok()?.try_into().ok()?;
    let signed = &text[..PREFIX.len() + payload.len()];
    key.verify(signed.as_bytes(), &Signature::from_bytes(&sig))
        .ok()?;
    serde_json::from_slice(&B64.decode(payload).ok()?).ok()
}
