//! One audit record as a line of JSON chained to the previous one by a BLAKE3 hash, and the
//! check of such a chain. Format: `docs/security.md`, "Audit log".

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
    pub kind: String,
    pub detail: Option<String>,
    pub target: Option<String>,
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
    let b: Body = serde_json::from_str(&body).map_err(|e| format!("unreadable: {e}"))?;
    let prev = decode32(&b.prev).ok_or("prev is not 64 hex digits")?;
    Ok(Checked {
        link: Link { seq: b.seq, hash },
        prev,
        time: b.time,
        kind: b.kind,
        detail: b.detail,
        target: b.target,
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
}
