//! A bounded, sharded map whose entries expire: the storage under the verified-credential
//! cache and the verified-JWT cache. A full shard first drops its expired entries, then the
//! one nearest to expiry.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use parking_lot::Mutex;

use crate::limits::AUTH_TABLE_SHARDS;

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

struct Slot<V> {
    value: V,
    expires: Instant,
}

/// `capacity` entries over `AUTH_TABLE_SHARDS` shards, each behind its own lock.
pub struct ExpiringMap<K, V> {
    per_shard: usize,
    shards: Vec<Mutex<HashMap<K, Slot<V>>>>,
}

impl<K: ShardKey, V> ExpiringMap<K, V> {
    /// At most about `capacity` entries in all (0: holds nothing).
    pub fn new(capacity: usize) -> Self {
        ExpiringMap {
            per_shard: capacity.div_ceil(AUTH_TABLE_SHARDS),
            shards: (0..AUTH_TABLE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    /// For a cache whose entries live at most `ttl`: a zero `ttl` means it holds nothing.
    pub fn for_ttl(ttl: std::time::Duration, capacity: usize) -> Self {
        Self::new(if ttl.is_zero() { 0 } else { capacity })
    }

    /// Whether the map can hold entries at all (capacity above 0).
    pub fn holds_anything(&self) -> bool {
        self.per_shard > 0
    }

    fn shard(&self, k: &K) -> &Mutex<HashMap<K, Slot<V>>> {
        &self.shards[(k.shard_bits() as usize) % self.shards.len()]
    }

    /// `f` of the live entry for `k`. An expired entry, or one for which `f` says `None`
    /// (stale), is removed.
    pub fn lookup<R>(&self, k: &K, now: Instant, f: impl FnOnce(&V) -> Option<R>) -> Option<R> {
        let mut shard = self.shard(k).lock();
        let slot = shard.get(k)?;
        let found = if now < slot.expires {
            f(&slot.value)
        } else {
            None
        };
        if found.is_none() {
            shard.remove(k);
        }
        found
    }

    /// Puts `value` under `k` until `expires`.
    pub fn insert(&self, k: K, value: V, expires: Instant, now: Instant) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&k).lock();
        if shard.len() >= self.per_shard && !shard.contains_key(&k) {
            shard.retain(|_, s| now < s.expires);
            if shard.len() >= self.per_shard {
                let nearest = shard.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k);
                if let Some(n) = nearest {
                    shard.remove(&n);
                }
            }
        }
        debug_assert!(shard.len() < self.per_shard || shard.contains_key(&k));
        shard.insert(k, Slot { value, expires });
    }

    /// Removes the entry for `k`, if any.
    pub fn remove(&self, k: &K) {
        self.shard(k).lock().remove(k);
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
    use std::time::Duration;

    #[test]
    fn expiry_staleness_and_bounds() {
        let m: ExpiringMap<u64, &str> = ExpiringMap::new(2 * AUTH_TABLE_SHARDS);
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
            m.insert(i, "x", now + Duration::from_secs(i), now);
        }
        assert!(m.len() <= 2 * AUTH_TABLE_SHARDS, "{}", m.len());
        // The newest insert survives: the entry nearest to expiry made room.
        assert_eq!(m.lookup(&9_999, now, |v| Some(*v)), Some("x"));
        let off: ExpiringMap<u64, ()> = ExpiringMap::new(0);
        off.insert(1, (), later, now);
        assert!(off.is_empty());
    }
}
