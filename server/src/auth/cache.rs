//! Verified-credential cache: a correct password pays argon2 once per TTL, not per request.

use super::expiring::{process_key, ExpiringMap};
use crate::users::{TenantName, UserName};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Entry {
    /// Keyed BLAKE3 of (tenant, user, password) under the per-process key.
    digest: blake3::Hash,
    /// The user's credential epoch when verified; any other epoch means stale.
    epoch: u64,
}

/// A hash of (tenant, user): two users sharing one can only evict each other's entry (the
/// digest still names the user), so no key has to be built per request.
type Key = u64;

/// Map from user to the digest of the last password verified for them.
pub struct CredentialCache {
    key: [u8; 32],
    ttl: Duration,
    hasher: std::collections::hash_map::RandomState,
    entries: ExpiringMap<Key, Entry>,
}

impl CredentialCache {
    /// A cache holding at most about `capacity` users for `ttl` each; capacity 0 or ttl 0
    /// disables it.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        CredentialCache {
            key: process_key(),
            ttl,
            hasher: Default::default(),
            entries: ExpiringMap::for_ttl(ttl, capacity),
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
        if !self.entries.holds_anything() {
            return false;
        }
        let d = self.digest(tenant, user, password);
        // Another epoch makes the entry stale (removed); another password is just a miss.
        self.entries
            .lookup(&self.key(tenant, user), now, |e| {
                (e.epoch == epoch).then(|| e.digest == d)
            })
            .unwrap_or(false)
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
        if !self.entries.holds_anything() {
            return;
        }
        let entry = Entry {
            digest: self.digest(tenant, user, password),
            epoch,
        };
        self.entries
            .insert(self.key(tenant, user), entry, now + self.ttl, now);
    }

    /// Forgets a user (password changed, user disabled or deleted).
    pub fn invalidate(&self, tenant: &TenantName, user: &UserName) {
        self.entries.remove(&self.key(tenant, user));
    }

    /// Entries held (live or expired).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
        let cap = 2 * crate::limits::AUTH_TABLE_SHARDS;
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
