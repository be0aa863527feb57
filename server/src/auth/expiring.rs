//! A bounded map whose entries expire: the storage under the verified-credential cache and
//! the verified-JWT cache. Built on `quick_cache` (S3-FIFO eviction, sharded), with each
//! entry's expiry kept beside its value and checked on lookup. It replaced a hand-written
//! sharded map whose insert into a full shard scanned the shard for expired entries: measured
//! side by side (`cargo bench -p skab-server --bench expiring`; docs/benchmarks.md, "Auth
//! cache: crate or own"), the crate inserts into a full 100,000-entry map in 70-90 ns
//! against 7-20 µs, and hits in 24-25 ns against 31-34 ns.

use std::hash::Hash;
use std::time::Instant;

/// A random key for this process's keyed hashes of secrets (never stored, so nothing of a
/// cache can be attacked offline or survives a restart).
pub fn process_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    key
}

/// A key that already is a hash (or a digest): its shard comes from its bits.
pub trait ShardKey: Hash + Eq + Copy {
    fn shard_bits(&self) -> u64;
}

impl ShardKey for u64 {
    fn shard_bits(&self) -> u64 {
        *self
    }
}

impl ShardKey for [u8; 32] {
    fn shard_bits(&self) -> u64 {
        u64::from_le_bytes([
            self[0], self[1], self[2], self[3], self[4], self[5], self[6], self[7],
        ])
    }
}

#[derive(Clone)]
struct Slot<V> {
    value: V,
    expires: Instant,
}

/// At most about `capacity` entries; each lives until its own expiry.
pub struct ExpiringMap<K, V> {
    /// `None` when the capacity is 0 (the cache is off).
    cache: Option<quick_cache::sync::Cache<K, Slot<V>>>,
}

impl<K: ShardKey, V: Clone> ExpiringMap<K, V> {
    /// At most about `capacity` entries in all (0: holds nothing).
    pub fn new(capacity: usize) -> Self {
        ExpiringMap {
            cache: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)),
        }
    }

    /// For a cache whose entries live at most `ttl`: a zero `ttl` means it holds nothing.
    pub fn for_ttl(ttl: std::time::Duration, capacity: usize) -> Self {
        Self::new(if ttl.is_zero() { 0 } else { capacity })
    }

    /// Whether the map can hold entries at all (capacity above 0).
    pub fn holds_anything(&self) -> bool {
        self.cache.is_some()
    }

    /// `f` of the live entry for `k`. An expired entry, or one for which `f` says `None`
    /// (stale), is removed.
    pub fn lookup<R>(&self, k: &K, now: Instant, f: impl FnOnce(&V) -> Option<R>) -> Option<R> {
        self.lookup_until(k, now, |v, _| f(v))
    }

    /// As `lookup`, with the entry's expiry handed to `f` too.
    pub fn lookup_until<R>(
        &self,
        k: &K,
        now: Instant,
        f: impl FnOnce(&V, Instant) -> Option<R>,
    ) -> Option<R> {
        let cache = self.cache.as_ref()?;
        let slot = cache.get(k)?;
        let found = if now < slot.expires {
            f(&slot.value, slot.expires)
        } else {
            None
        };
        if found.is_none() {
            cache.remove(k);
        }
        found
    }

    /// Puts `value` under `k` until `expires` (`now` is when; kept for the callers' clocks).
    pub fn insert(&self, k: K, value: V, expires: Instant, now: Instant) {
        if let Some(cache) = &self.cache {
            if now < expires {
                cache.insert(k, Slot { value, expires });
            }
        }
    }

    /// Removes the entry for `k`, if any.
    pub fn remove(&self, k: &K) {
        if let Some(cache) = &self.cache {
            cache.remove(k);
        }
    }

    /// Entries held (live or expired).
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expiry_staleness_and_bounds() {
        let m: ExpiringMap<u64, &str> = ExpiringMap::new(128);
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        m.insert(1, "a", later, now);
        assert_eq!(m.lookup(&1, now, |v| Some(*v)), Some("a"));
        assert_eq!(m.lookup(&2, now, |v| Some(*v)), None);
        assert_eq!(m.lookup(&1, now, |_| None::<()>), None, "stale");
        assert!(m.is_empty(), "a stale entry is removed");
        m.insert(1, "a", later, now);
        assert_eq!(m.lookup(&1, later, |v| Some(*v)), None, "expired");
        assert!(m.is_empty(), "an expired entry is removed");
        for i in 0..10_000u64 {
            m.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), "x", later, now);
        }
        assert!(m.len() <= 2 * 128, "{}", m.len());
        // An insert of what already expired holds nothing.
        let m2: ExpiringMap<u64, &str> = ExpiringMap::new(16);
        m2.insert(5, "old", now, now);
        assert!(m2.is_empty());
        let off: ExpiringMap<u64, ()> = ExpiringMap::new(0);
        off.insert(1, (), later, now);
        assert!(off.is_empty());
    }
}
