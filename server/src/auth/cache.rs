//! Verified-credential cache: a correct password pays argon2 once per TTL, not per request.

use crate::limits::AUTH_TABLE_SHARDS;
use crate::users::{TenantName, UserName};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

struct Entry {
    /// Keyed BLAKE3 of (tenant, user, password) under the per-process key.
    digest: blake3::Hash,
    /// The user's credential epoch when verified; any other epoch means stale.
    epoch: u64,
    expires: Instant,
}

/// A hash of (tenant, user): two users sharing one can only evict each other's entry (the
/// digest still names the user), so no key has to be built per request.
type Key = u64;

/// Sharded map from user to the digest of the last password verified for them.
pub struct CredentialCache {
    key: [u8; 32],
    ttl: Duration,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<Key, Entry>>>,
}

impl CredentialCache {
    /// A cache holding at most about `capacity` users for `ttl` each; capacity 0 or ttl 0
    /// disables it.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        CredentialCache {
            key,
            ttl,
            per_shard: capacity.div_ceil(AUTH_TABLE_SHARDS),
            hasher: Default::default(),
            shards: (0..AUTH_TABLE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    /// Keyed BLAKE3 of (tenant, user, password) under the per-process key: what the cache
    /// stores, and the key under which concurrent verifications are shared (`flight`).
    pub fn digest(&self, tenant: &TenantName, user: &UserName, password: &str) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        for part in [tenant.as_str(), user.as_str()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(password.as_bytes());
        h.finalize()
    }

    fn key(&self, tenant: &TenantName, user: &UserName) -> Key {
        self.hasher.hash_one((tenant.as_str(), user.as_str()))
    }

    fn shard(&self, k: Key) -> &Mutex<HashMap<Key, Entry>> {
        &self.shards[(k as usize) % self.shards.len()]
    }

    /// Whether this exact password was verified for the user at this epoch within the TTL.
    /// The digest comparison is constant-time (`blake3::Hash`'s `PartialEq`).
    pub fn check(
        &self,
        tenant: &TenantName,
        user: &UserName,
        password: &str,
        epoch: u64,
        now: Instant,
    ) -> bool {
        if self.per_shard == 0 || self.ttl.is_zero() {
            return false;
        }
        let d = self.digest(tenant, user, password);
        let k = self.key(tenant, user);
        let mut shard = self.shard(k).lock();
        match shard.get(&k) {
            Some(e) if e.epoch == epoch && now < e.expires => e.digest == d,
            Some(_) => {
                shard.remove(&k);
                false
            }
            None => false,
        }
    }

    /// Remembers a verified password.
    pub fn insert(
        &self,
        tenant: &TenantName,
        user: &UserName,
        password: &str,
        epoch: u64,
        now: Instant,
    ) {
        if self.per_shard == 0 || self.ttl.is_zero() {
            return;
        }
        let entry = Entry {
            digest: self.digest(tenant, user, password),
            epoch,
            expires: now + self.ttl,
        };
        let k = self.key(tenant, user);
        let mut shard = self.shard(k).lock();
        if shard.len() >= self.per_shard && !shard.contains_key(&k) {
            shard.retain(|_, e| now < e.expires);
            if shard.len() >= self.per_shard {
                // Still full of live entries: drop the one closest to expiry.
                let oldest = shard.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k);
                if let Some(o) = oldest {
                    shard.remove(&o);
                }
            }
        }
        shard.insert(k, entry);
    }

    /// Forgets a user (password changed, user disabled or deleted).
    pub fn invalidate(&self, tenant: &TenantName, user: &UserName) {
        let k = self.key(tenant, user);
        self.shard(k).lock().remove(&k);
    }

    /// Entries held (live or expired).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantName {
        TenantName::new(s).unwrap()
    }
    fn u(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    #[test]
    fn hit_only_for_same_password_epoch_and_within_ttl() {
        let c = CredentialCache::new(Duration::from_secs(10), 1000);
        let now = Instant::now();
        c.insert(&t("s"), &u("a"), "pw", 7, now);
        assert!(c.check(&t("s"), &u("a"), "pw", 7, now));
        assert!(!c.check(&t("s"), &u("a"), "pw2", 7, now));
        assert!(!c.check(&t("s"), &u("b"), "pw", 7, now));
        assert!(!c.check(&t("s2"), &u("a"), "pw", 7, now));
        assert!(!c.check(&t("s"), &u("a"), "pw", 7, now + Duration::from_secs(11)));
        // Expired entry was dropped.
        assert!(c.is_empty());
        c.insert(&t("s"), &u("a"), "pw", 7, now);
        assert!(!c.check(&t("s"), &u("a"), "pw", 8, now), "new epoch");
        assert!(
            !c.check(&t("s"), &u("a"), "pw", 7, now),
            "stale entry dropped"
        );
        c.insert(&t("s"), &u("a"), "pw", 7, now);
        c.invalidate(&t("s"), &u("a"));
        assert!(!c.check(&t("s"), &u("a"), "pw", 7, now));
    }

    #[test]
    fn no_confusion_between_name_and_password_boundaries() {
        let c = CredentialCache::new(Duration::from_secs(10), 1000);
        let now = Instant::now();
        c.insert(&t("s"), &u("ab"), "c", 1, now);
        assert!(!c.check(&t("s"), &u("a"), "bc", 1, now));
    }

    #[test]
    fn bounded_size() {
        let cap = 2 * AUTH_TABLE_SHARDS;
        let c = CredentialCache::new(Duration::from_secs(10), cap);
        let now = Instant::now();
        for i in 0..cap * 10 {
            c.insert(&t("s"), &u(&format!("u{i}")), "pw", 1, now);
        }
        assert!(c.len() <= cap, "{} > {cap}", c.len());
        assert!(c.len() >= cap / 2);
        let off = CredentialCache::new(Duration::ZERO, cap);
        off.insert(&t("s"), &u("a"), "pw", 1, now);
        assert!(!off.check(&t("s"), &u("a"), "pw", 1, now));
    }
}
