//! Verified-JWT cache: a token whose signature and claims were checked is remembered, by a
//! keyed hash, until it expires or `credential_cache_ttl_s` passes, so a client that sends the
//! same token on every request pays the signature check (up to ~100 µs for ES256) once.

use std::time::{Duration, Instant};

use super::expiring::{process_key, ExpiringMap};
use crate::users::{TenantName, UserName};

/// Shared, so that a hit (which the cache answers with a clone) copies a pointer, not names.
#[derive(Clone)]
struct Entry(std::sync::Arc<(TenantName, UserName)>);

/// Map from the keyed BLAKE3 of a token to the user it names.
pub struct JwtCache {
    key: [u8; 32],
    ttl: Duration,
    entries: ExpiringMap<[u8; 32], Entry>,
}

impl JwtCache {
    /// At most about `capacity` tokens, each for at most `ttl`; capacity or ttl 0 disables it.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        JwtCache {
            key: process_key(),
            ttl,
            entries: ExpiringMap::for_ttl(ttl, capacity),
        }
    }

    fn digest(&self, token: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.key, token.as_bytes()).as_bytes()
    }

    /// The user a token verified earlier names, if it is still within its lifetime here.
    pub fn get(&self, token: &str, now: Instant) -> Option<(TenantName, UserName)> {
        if !self.entries.holds_anything() {
            return None;
        }
        self.entries
            .lookup(&self.digest(token), now, |e| Some(e.0.as_ref().clone()))
    }

    /// Remembers a verified token until `valid_for` from `now` (its `exp`) or the TTL,
    /// whichever comes first.
    pub fn insert(
        &self,
        token: &str,
        tenant: &TenantName,
        user: &UserName,
        valid_for: Duration,
        now: Instant,
    ) {
        if !self.entries.holds_anything() || valid_for.is_zero() {
            return;
        }
        let entry = Entry(std::sync::Arc::new((tenant.clone(), user.clone())));
        self.entries.insert(
            self.digest(token),
            entry,
            now + valid_for.min(self.ttl),
            now,
        );
    }

    /// Tokens held (live or expired).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (TenantName, UserName) {
        (
            TenantName::new("skole").unwrap(),
            UserName::new("anna").unwrap(),
        )
    }

    #[test]
    fn lives_until_exp_or_ttl_whichever_is_first() {
        let (t, u) = names();
        let c = JwtCache::new(Duration::from_secs(300), 1000);
        let now = Instant::now();
        assert_eq!(c.get("tok", now), None);
        c.insert("tok", &t, &u, Duration::from_secs(60), now);
        assert_eq!(c.get("tok", now), Some((t.clone(), u.clone())));
        assert_eq!(c.get("tok2", now), None, "another token");
        assert!(c.get("tok", now + Duration::from_secs(59)).is_some());
        assert_eq!(
            c.get("tok", now + Duration::from_secs(60)),
            None,
            "expired with exp"
        );
        assert!(c.is_empty(), "an expired entry is dropped when met");
        c.insert("long", &t, &u, Duration::from_secs(86_400), now);
        assert!(c.get("long", now + Duration::from_secs(299)).is_some());
        assert_eq!(
            c.get("long", now + Duration::from_secs(300)),
            None,
            "ttl caps it"
        );
        c.insert("gone", &t, &u, Duration::ZERO, now);
        assert_eq!(c.get("gone", now), None, "an expired token is not kept");
    }

    #[test]
    fn bounded_and_can_be_off() {
        let (t, u) = names();
        let c = JwtCache::new(Duration::from_secs(300), 128);
        let now = Instant::now();
        for i in 0..10_000 {
            c.insert(&format!("t{i}"), &t, &u, Duration::from_secs(60 + i), now);
        }
        assert!(c.len() <= 128, "{}", c.len());
        let off = JwtCache::new(Duration::ZERO, 128);
        off.insert("tok", &t, &u, Duration::from_secs(60), now);
        assert_eq!(off.get("tok", now), None);
        let off = JwtCache::new(Duration::from_secs(60), 0);
        off.insert("tok", &t, &u, Duration::from_secs(60), now);
        assert_eq!(off.get("tok", now), None);
    }
}
