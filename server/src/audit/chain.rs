//! One audit record as a line of JSON chained to the previous one by a BLAKE3 hash, and the
//! check of such a chain. Format: `docs/security.md`, "Audit log". With encryption at rest a
//! record's fields other than its number, time and links are sealed with the tenant's key
//! ([`encode_sealed`]); the chain covers the sealed line, so it is checked without the key.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::limits::AUDIT_FIELD_LEN_MAX;

/// The hash of "no previous record".
pub const GENESIS: [u8; 32] = [0; 32];
/// `,"hash":"` + 64 hex digits + `"}`: the fixed end of every line.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// A security-relevant event, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub time: SystemTime,
    /// What happened: `login.ok`, `login.failed`, `token.create`, `admin.user.add`, ...
    pub kind: String,
    /// Who did it: `user@tenant`, or `admin` for the command line.
    pub actor: Option<String>,
    /// The client address, for requests.
    pub source: Option<IpAddr>,
    /// What it was done to: a user, a group, a path.
    pub target: Option<String>,
    /// A short free text (the login method, why it failed); never a secret or file content.
    pub detail: Option<String>,
}

/// The fields of a line in their order, without the hash (what the hash covers).
#[derive(Serialize, Deserialize)]
struct Body {
    seq: u64,
    time: String,
    kind: String,
    actor: Option<String>,
    source: Option<String>,
    target: Option<String>,
    detail: Option<String>,
    prev: String,
}

/// The fields a sealed line holds sealed, as JSON.
#[derive(Serialize, Deserialize)]
struct Secret {
    kind: String,
    actor: Option<String>,
    source: Option<String>,
    target: Option<String>,
    detail: Option<String>,
}

/// The fields of a sealed line in their order, without the hash.
#[derive(Serialize)]
struct SealedBody<'a> {
    seq: u64,
    time: String,
    /// [`Secret`] sealed with the tenant's key, standard base64.
    sealed: String,
    prev: &'a str,
}

/// Any line's fields, as read.
#[derive(Deserialize)]
struct Parsed {
    seq: u64,
    time: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    sealed: Option<String>,
    prev: String,
}

/// Seals a record's secret fields (with the tenant's key).
pub type Seal<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, String>;
/// Opens them: `None` when the tenant's key was erased.
pub type Open<'a> = &'a dyn Fn(&[u8]) -> Result<Option<Vec<u8>>, String>;

/// A record's place in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl Link {
    pub const START: Link = Link {
        seq: 0,
        hash: GENESIS,
    };
}

/// `s` cut to at most [`AUDIT_FIELD_LEN_MAX`] bytes at a character boundary.
fn bounded(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| {
        let mut end = s.len().min(AUDIT_FIELD_LEN_MAX);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    })
}

/// The line (with its newline) for `event` following `prev`, and its link.
pub fn encode(event: &Event, prev: Link) -> (String, Link) {
    let body = Body {
        seq: prev.seq + 1,
        time: humantime::format_rfc3339_millis(event.time).to_string(),
        kind: bounded(&Some(event.kind.clone())).unwrap_or_default(),
        actor: bounded(&event.actor),
        source: event.source.map(|a| a.to_string()),
        target: bounded(&event.target),
        detail: bounded(&event.detail),
        prev: hex::encode(prev.hash),
    };
    let body = serde_json::to_string(&body).expect("plain strings and numbers serialize");
    finish(body, prev)
}

/// [`encode`] with the kind, actor, source, target and detail sealed by `seal`: the line
/// is `{"seq":..,"time":..,"sealed":"base64",...,"prev":..,"hash":..}`.
pub fn encode_sealed(event: &Event, prev: Link, seal: Seal<'_>) -> Result<(String, Link), String> {
    use base64::Engine;
    let secret = Secret {
        kind: bounded(&Some(event.kind.clone())).unwrap_or_default(),
        actor: bounded(&event.actor),
        source: event.source.map(|a| a.to_string()),
        target: bounded(&event.target),
        detail: bounded(&event.detail),
    };
    let plain = serde_json::to_vec(&secret).map_err(|e| e.to_string())?;
    let prev_hex = hex::encode(prev.hash);
    let body = SealedBody {
        seq: prev.seq + 1,
        time: humantime::format_rfc3339_millis(event.time).to_string(),
        sealed: base64::engine::general_purpose::STANDARD.encode(seal(&plain)?),
        prev: &prev_hex,
    };
    let body = serde_json::to_string(&body).map_err(|e| e.to_string())?;
    Ok(finish(body, prev))
}

/// The line of `body` (a JSON object) with its hash appended, and its link.
fn finish(body: String, prev: Link) -> (String, Link) {
    let hash = *blake3::hash(body.as_bytes()).as_bytes();
    let mut line = String::with_capacity(body.len() + HASH_SUFFIX_LEN + 1);
    line.push_str(&body[..body.len() - 1]);
    line.push_str(",\"hash\":\"");
    line.push_str(&hex::encode(hash));
    line.push_str("\"}\n");
    (
        line,
        Link {
            seq: prev.seq + 1,
            hash,
        },
    )
}

/// What a line holds, once its hash is checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub link: Link,
    pub prev: [u8; 32],
    pub time: String,
    /// Empty for a sealed record not opened (see [`Checked::open`]).
    pub kind: String,
    pub actor: Option<String>,
    pub source: Option<String>,
    pub detail: Option<String>,
    pub target: Option<String>,
    /// The sealed fields of a sealed record, until opened.
    pub sealed: Option<Vec<u8>>,
}

/// A record as `skab audit export` writes it (a sealed one opened), fields in this order.
#[derive(Serialize)]
struct Exported<'a> {
    seq: u64,
    time: &'a str,
    kind: &'a str,
    actor: &'a Option<String>,
    source: &'a Option<String>,
    target: &'a Option<String>,
    detail: &'a Option<String>,
    prev: String,
    hash: String,
}

impl Checked {
    /// Fills in a sealed record's fields with what `open` (the tenant's key) gives: false
    /// when the key was erased (the record stays unread); an error for a record that does
    /// not open (altered, or sealed by another key).
    pub fn open(&mut self, open: Open<'_>) -> Result<bool, String> {
        let Some(sealed) = &self.sealed else {
            return Ok(true);
        };
        let Some(plain) = open(sealed)? else {
            return Ok(false);
        };
        let s: Secret =
            serde_json::from_slice(&plain).map_err(|e| format!("sealed fields unreadable: {e}"))?;
        self.kind = s.kind;
        self.actor = s.actor;
        self.source = s.source;
        self.target = s.target;
        self.detail = s.detail;
        self.sealed = None;
        Ok(true)
    }

    /// The record as one line of JSON (without a newline) in the clear format; its `hash`
    /// and `prev` are those of the line as stored.
    pub fn exported(&self) -> String {
        serde_json::to_string(&Exported {
            seq: self.link.seq,
            time: &self.time,
            kind: &self.kind,
            actor: &self.actor,
            source: &self.source,
            target: &self.target,
            detail: &self.detail,
            prev: hex::encode(self.prev),
            hash: hex::encode(self.link.hash),
        })
        .unwrap_or_default()
    }
}

/// Checks one line (without its newline): its hash over its body; returns its fields.
pub fn check(line: &str) -> Result<Checked, String> {
    if line.len() < HASH_SUFFIX_LEN + 2 || !line.ends_with("\"}") {
        return Err("not an audit record".into());
    }
    let cut = line.len() - HASH_SUFFIX_LEN;
    let (head, tail) = line.split_at(cut);
    let hex_hash = tail
        .strip_prefix(",\"hash\":\"")
        .and_then(|t| t.strip_suffix("\"}"))
        .ok_or("no hash at the end")?;
    let hash = decode32(hex_hash).ok_or("hash is not 64 hex digits")?;
    let body = format!("{head}}}");
    if *blake3::hash(body.as_bytes()).as_bytes() != hash {
        return Err("hash does not match the record (altered)".into());
    }
    let b: Parsed = serde_json::from_str(&body).map_err(|e| format!("unreadable: {e}"))?;
    let prev = decode32(&b.prev).ok_or("prev is not 64 hex digits")?;
    let sealed = match &b.sealed {
        Some(t) => {
            use base64::Engine;
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(t)
                    .map_err(|_| "sealed fields are not base64")?,
            )
        }
        None => None,
    };
    if sealed.is_none() && b.kind.is_none() {
        return Err("no kind".into());
    }
    Ok(Checked {
        link: Link { seq: b.seq, hash },
        prev,
        time: b.time,
        kind: b.kind.unwrap_or_default(),
        actor: b.actor,
        source: b.source,
        detail: b.detail,
        target: b.target,
        sealed,
    })
}

fn decode32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str) -> Event {
        Event {
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_796_000_000_123),
            kind: kind.into(),
            actor: Some("anna@skole".into()),
            source: Some("10.1.2.3".parse().unwrap()),
            target: None,
            detail: Some("password \"quoted\" ✓".into()),
        }
    }

    #[test]
    fn lines_chain_and_any_changed_byte_is_caught() {
        let (l1, k1) = encode(&ev("login.ok"), Link::START);
        let (l2, k2) = encode(&ev("login.failed"), k1);
        assert_eq!((k1.seq, k2.seq), (1, 2));
        let c2 = check(l2.trim_end()).unwrap();
        assert_eq!((c2.link, c2.prev), (k2, k1.hash));
        assert_eq!(c2.kind, "login.failed");
        let v: serde_json::Value = serde_json::from_str(&l1).unwrap();
        assert_eq!(v["time"], "2026-11-30T00:53:20.123Z");
        assert_eq!(v["source"], "10.1.2.3");
        let bytes = l1.trim_end().as_bytes();
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x01;
            if let Ok(s) = std::str::from_utf8(&b) {
                assert!(check(s).is_err(), "byte {i} flipped went unnoticed");
            }
        }
    }

    #[test]
    fn sealed_lines_chain_hide_their_fields_and_any_changed_byte_is_caught() {
        let key = skab_engine::crypt::TenantCipher::new(&[5; 32]);
        let seal = |b: &[u8]| Ok(key.seal_meta(b"audit:school", b));
        let open = |b: &[u8]| {
            key.open_meta(b"audit:school", b)
                .map(Some)
                .map_err(|e| e.to_string())
        };
        let mut e = ev("login.ok");
        e.target = Some("/secret-target-path".into());
        let (l1, k1) = encode_sealed(&e, Link::START, &seal).unwrap();
        let (l2, k2) = encode_sealed(&ev("login.failed"), k1, &seal).unwrap();
        for l in [&l1, &l2] {
            assert!(!l.contains("anna") && !l.contains("secret-target") && !l.contains("login"));
            assert!(!l.contains("10.1.2.3"));
        }
        let mut c1 = check(l1.trim_end()).unwrap();
        assert_eq!(c1.kind, "", "not opened yet");
        assert!(c1.open(&open).unwrap());
        assert_eq!(
            (c1.kind.as_str(), c1.target.as_deref(), c1.actor.as_deref()),
            ("login.ok", Some("/secret-target-path"), Some("anna@skole"))
        );
        let c2 = check(l2.trim_end()).unwrap();
        assert_eq!((c2.link, c2.prev), (k2, k1.hash));
        let exported: serde_json::Value = serde_json::from_str(&c1.exported()).unwrap();
        assert_eq!(exported["hash"], hex::encode(k1.hash));
        assert_eq!(exported["source"], "10.1.2.3");
        // Another tenant's key does not open it; an erased key leaves it unread.
        let other = skab_engine::crypt::TenantCipher::new(&[6; 32]);
        let mut c = check(l1.trim_end()).unwrap();
        assert!(c
            .open(&|b: &[u8]| other
                .open_meta(b"audit:school", b)
                .map(Some)
                .map_err(|e| e.to_string()))
            .is_err());
        assert!(!c.open(&|_: &[u8]| Ok(None)).unwrap());
        let bytes = l1.trim_end().as_bytes();
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x01;
            if let Ok(s) = std::str::from_utf8(&b) {
                assert!(check(s).is_err(), "byte {i} flipped went unnoticed");
            }
        }
    }
}
