//! Verified-credential cache: a correct password pays argon2 once, then is accepted while it
//! stays in use (expiry slides on each use), up to a maximum age after its verification, and
//! is re-verified in the background before that, at a random point per entry, so that a
//! cohort verified at once is not re-verified at once (`docs/auth.md`).

use super::expiring::{process_key, ExpiringMap};
use crate::limits::{
    CREDENTIAL_REVERIFY_FROM_PERCENT, CREDENTIAL_REVERIFY_RETRY_S, CREDENTIAL_REVERIFY_TO_PERCENT,
};
use crate::users::{TenantName, UserName};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Entry {
    /// Keyed BLAKE3 of (tenant, user, password) under the per-process key.
    digest: blake3::Hash,
    /// The user's credential epoch when verified; any other epoch means stale.
    epoch: u64,
    /// When argon2 last verified this password: the entry never lives past this plus the
    /// max age.
    verified_at: Instant,
    /// From when a use of the entry asks for a background re-verification.
    reverify_at: Instant,
}

/// A hash of (tenant, user): two users sharing one can only evict each other's entry (the
/// digest still names the user), so no key has to be built per request.
type Key = u64;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not verified (or no longer): argon2 is needed.
    Miss,
    /// Verified; `reverify`: the entry is due for a background re-verification (the caller
    /// queues one if the hashing queue is idle, and `insert`s again when it succeeds).
    Hit { reverify: bool },
}

impl Check {
    /// Whether the password was found verified.
    pub fn is_hit(self) -> bool {
        matches!(self, Check::Hit { .. })
    }
}

/// Map from user to the digest of the last password verified for them.
pub struct CredentialCache {
    key: [u8; 32],
    ttl: Duration,
    max_age: Duration,
    hasher: std::collections::hash_map::RandomState,
    entries: ExpiringMap<Key, Entry>,
}

impl CredentialCache {
    /// A cache holding at most about `capacity` users, each for `ttl` after its last use and
    /// at most `max_age` after its verification (raised to `ttl` if below); capacity 0 or
    /// ttl 0 disables it.
    pub fn new(ttl: Duration, max_age: Duration, capacity: usize) -> Self {
        CredentialCache {
            key: process_key(),
            ttl,
            max_age: max_age.max(ttl),
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

    /// Whether this exact password was verified for the user at this epoch, within the max
    /// age and used within the TTL. A hit extends the entry's life (by re-inserting it when
    /// less than half the TTL is left, so most hits write nothing). The digest comparison is
    /// constant-time (`blake3::Hash`'s `PartialEq`).
    pub fn check(
        &self,
        tenant: &TenantName,
        user: &UserName,
        password: &str,
        epoch: u64,
        now: Instant,
    ) -> Check {
        if !self.entries.holds_anything() {
            return Check::Miss;
        }
        let d = self.digest(tenant, user, password);
        let key = self.key(tenant, user);
        // Another epoch makes the entry stale (removed); another password is just a miss.
        let found = self.entries.lookup_until(&key, now, |e, expires| {
            (e.epoch == epoch).then(|| (e.digest == d).then(|| (e.clone(), expires)))
        });
        let Some(Some((mut entry, expires))) = found else {
            return Check::Miss;
        };
        let reverify = now >= entry.reverify_at;
        let end = entry.verified_at + self.max_age;
        let slide = now + self.ttl;
        let short = expires.saturating_duration_since(now) < self.ttl / 2 && expires < end;
        if reverify || short {
            if reverify {
                // One use asks; the next ask for this entry is a while later.
                entry.reverify_at = now + Duration::from_secs(CREDENTIAL_REVERIFY_RETRY_S);
            }
            self.entries.insert(key, entry, slide.min(end), now);
        }
        Check::Hit { reverify }
    }

    /// Remembers a password verified by argon2 just now.
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
        // A random point of the re-verification window, per entry.
        let percent = rand::random::<f64>()
            * (CREDENTIAL_REVERIFY_TO_PERCENT - CREDENTIAL_REVERIFY_FROM_PERCENT) as f64
            + CREDENTIAL_REVERIFY_FROM_PERCENT as f64;
        let entry = Entry {
            digest: self.digest(tenant, user, password),
            epoch,
            verified_at: now,
            reverify_at: now + self.max_age.mul_f64(percent / 100.0),
        };
        let expires = now + self.ttl.min(self.max_age);
        self.entries
            .insert(self.key(tenant, user), entry, expires, now);
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
        let c = CredentialCache::new(Duration::from_secs(10), Duration::from_secs(100), 1000);
        let now = Instant::now();
        c.insert(&t("s"), &u("a"), "pw", 7, now);
        assert!(c.check(&t("s"), &u("a"), "pw", 7, now).is_hit());
        assert!(!c.check(&t("s"), &u("a"), "pw2", 7, now).is_hit());
        assert!(!c.check(&t("s"), &u("b"), "pw", 7, now).is_hit());
        assert!(!c.check(&t("s2"), &u("a"), "pw", 7, now).is_hit());
        assert!(!c
            .check(&t("s"), &u("a"), "pw", 7, now + Duration::from_secs(11))
            .is_hit());
        // Expired entry was dropped.
        assert!(c.is_empty());
        c.insert(&t("s"), &u("a"), "pw", 7, now);
        assert!(
            !c.check(&t("s"), &u("a"), "pw", 8, now).is_hit(),
            "new epoch"
        );
        assert!(
            !c.check(&t("s"), &u("a"), "pw", 7, now).is_hit(),
            "stale entry dropped"
        );
        c.insert(&t("s"), &u("a"), "pw", 7, now);
        c.invalidate(&t("s"), &u("a"));
        assert!(!c.check(&t("s"), &u("a"), "pw", 7, now).is_hit());
    }

    #[test]
    fn no_confusion_between_name_and_password_boundaries() {
        let c = CredentialCache::new(Duration::from_secs(10), Duration::from_secs(100), 1000);
        let now = Instant::now();
        c.insert(&t("s"), &u("ab"), "c", 1, now);
        assert!(!c.check(&t("s"), &u("a"), "bc", 1, now).is_hit());
    }

    #[test]
    fn bounded_size() {
        let cap = 2 * crate::limits::AUTH_TABLE_SHARDS;
        let c = CredentialCache::new(Duration::from_secs(10), Duration::from_secs(100), cap);
        let now = Instant::now();
        for i in 0..cap * 10 {
            c.insert(&t("s"), &u(&format!("u{i}")), "pw", 1, now);
        }
        assert!(c.len() <= cap, "{} > {cap}", c.len());
        assert!(c.len() >= cap / 2);
        let off = CredentialCache::new(Duration::ZERO, Duration::ZERO, cap);
        off.insert(&t("s"), &u("a"), "pw", 1, now);
        assert!(!off.check(&t("s"), &u("a"), "pw", 1, now).is_hit());
    }

    #[test]
    fn expiry_slides_on_use_up_to_the_max_age() {
        let ttl = Duration::from_secs(10);
        let c = CredentialCache::new(ttl, Duration::from_secs(100), 1000);
        let t0 = Instant::now();
        c.insert(&t("s"), &u("a"), "pw", 1, t0);
        // Used every 8 s: alive well past the 10 s TTL.
        let mut reverifies = 0;
        for i in 1..=12 {
            match c.check(&t("s"), &u("a"), "pw", 1, t0 + Duration::from_secs(8 * i)) {
                Check::Hit { reverify } => reverifies += usize::from(reverify),
                Check::Miss => panic!("miss at {} s", 8 * i),
            }
        }
        // Between 50 and 90 s a use asked once for a re-verification (then not for 60 s).
        assert_eq!(reverifies, 1);
        // Never past the max age, however it is used.
        assert_eq!(
            c.check(&t("s"), &u("a"), "pw", 1, t0 + Duration::from_secs(100)),
            Check::Miss
        );
        // Unused for longer than the TTL: gone.
        c.insert(&t("s"), &u("b"), "pw", 1, t0);
        assert_eq!(
            c.check(&t("s"), &u("b"), "pw", 1, t0 + Duration::from_secs(11)),
            Check::Miss
        );
    }

    #[test]
    fn a_cohort_is_due_for_reverification_spread_over_the_window() {
        let max_age = Duration::from_secs(1000);
        let c = CredentialCache::new(Duration::from_secs(1000), max_age, 10_000);
        let t0 = Instant::now();
        let n = 1000;
        for i in 0..n {
            c.insert(&t("s"), &u(&format!("u{i}")), "pw", 1, t0);
        }
        // Due by 50 % of the max age: none; by 70 %: about half; by 90 %: all.
        let due_by = |s: u64| {
            (0..n)
                .filter(|i| {
                    let name = u(&format!("u{i}"));
                    // Checking marks the entry as asked; count on a fresh view each time.
                    matches!(
                        c.check(&t("s"), &name, "pw", 1, t0 + Duration::from_secs(s)),
                        Check::Hit { reverify: true }
                    )
                })
                .count()
        };
        assert_eq!(due_by(499), 0);
        let mid = due_by(700);
        assert!((300..700).contains(&mid), "{mid} of {n} due by 70 %");
        // By 90 %: every one (those asked at 700 s ask again 60 s later).
        assert_eq!(due_by(900), n);
    }
}
