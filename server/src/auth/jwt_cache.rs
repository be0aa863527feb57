//! Verified-JWT cache: a token whose signature and claims were checked is remembered, by a
//! keyed hash, until it expires or `credential_cache_ttl_s` passes, so a client that sends the
//! same token on every request pays the signature check (up to ~100 µs for ES256) once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::limits::AUTH_TABLE_SHARDS;
use crate::users::{TenantName, UserName};

type Digest = [u8; 32];

struct Entry {
    tenant: TenantName,
    user: UserName,
    expires: Instant,
}

/// Sharded map from the keyed BLAKE3 of a token to the user it names.
pub struct JwtCache {
    key: [u8; 32],
    ttl: Duration,
    per_shard: usize,
    shards: Vec<Mutex<HashMap<Digest, Entry>>>,
}

impl JwtCache {
    /// At most about `capacity` tokens, each for at most `ttl`; capacity or ttl 0 disables it.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        JwtCache {
            key,
            ttl,
            per_shard: capacity.div_ceil(AUTH_TABLE_SHARDS),
            shards: (0..AUTH_TABLE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    fn enabled(&self) -> bool {
        self.per_shard > 0 && !self.ttl.is_zero()
    }

    fn digest(&self, token: &str) -> Digest {
        *blake3::keyed_hash(&self.key, token.as_bytes()).as_bytes()
    }

    fn shard(&self, d: &Digest) -> &Mutex<HashMap<Digest, Entry>> {
        let i = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) as usize;
        &self.shards[i % self.shards.len()]
    }

    /// The user a token verified earlier names, if it is still within its lifetime here.
    pub fn get(&self, token: &str, now: Instant) -> Option<(TenantName, UserName)> {
        if !self.enabled() {
            return None;
        }
        let d = self.digest(token);
        let mut shard = self.shard(&d).lock();
        match shard.get(&d) {
            Some(e) if now < e.expires => Some((e.tenant.clone(), e.user.clone())),
            Some(_) => {
                shard.remove(&d);
                None
            }
            None => None,
        }
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
        if !self.enabled() || valid_for.is_zero() {
            return;
        }
        let d = self.digest(token);
        let entry = Entry {
            tenant: tenant.clone(),
            user: user.clone(),
            expires: now + valid_for.min(self.ttl),
        };
        let mut shard = self.shard(&d).lock();
        if shard.len() >= self.per_shard && !shard.contains_key(&d) {
            shard.retain(|_, e| now < e.expires);
            if shard.len() >= self.per_shard {
                let nearest = shard.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k);
                if let Some(k) = nearest {
                    shard.remove(&k);
                }
            }
        }
        shard.insert(d, entry);
    }

    /// Tokens held (live or expired).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        assert!(c.len() <= 128 + AUTH_TABLE_SHARDS, "{}", c.len());
        let off = JwtCache::new(Duration::ZERO, 128);
        off.insert("tok", &t, &u, Duration::from_secs(60), now);
        assert_eq!(off.get("tok", now), None);
        let off = JwtCache::new(Duration::from_secs(60), 0);
        off.insert("tok", &t, &u, Duration::from_secs(60), now);
        assert_eq!(off.get("tok", now), None);
    }
}
