//! The auth caches' storage, `skab_server::auth::expiring::ExpiringMap` (on `quick_cache`),
//! beside the hand-written sharded map it replaced (kept here as `HandWritten`), for what the
//! caches do at 08:00: a hit on a warm entry, and an insert into a full map (every new login
//! once the cache holds `credential_cache_entries`). docs/benchmarks.md, "Auth cache: crate
//! or own".

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use parking_lot::Mutex;
use skab_server::auth::expiring::ExpiringMap;

const SHARDS: usize = 64;

/// The map the auth caches used before: shards of HashMaps; a full shard drops its expired
/// entries, then the one nearest to expiry (a scan of the shard).
struct HandWritten {
    per_shard: usize,
    shards: Vec<Mutex<HashMap<u64, (u64, Instant)>>>,
}

impl HandWritten {
    fn new(capacity: usize) -> Self {
        HandWritten {
            per_shard: capacity.div_ceil(SHARDS),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn lookup(&self, k: u64, now: Instant) -> Option<u64> {
        let mut shard = self.shards[k as usize % SHARDS].lock();
        let (v, exp) = *shard.get(&k)?;
        if now < exp {
            Some(v)
        } else {
            shard.remove(&k);
            None
        }
    }

    fn insert(&self, k: u64, v: u64, expires: Instant, now: Instant) {
        let mut shard = self.shards[k as usize % SHARDS].lock();
        if shard.len() >= self.per_shard && !shard.contains_key(&k) {
            shard.retain(|_, (_, e)| now < *e);
            if shard.len() >= self.per_shard {
                let nearest = shard.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| *k);
                if let Some(n) = nearest {
                    shard.remove(&n);
                }
            }
        }
        shard.insert(k, (v, expires));
    }
}

/// The default `credential_cache_entries`.
const CAPACITY: usize = 100_000;

fn key(i: u64) -> u64 {
    // Keys are keyed hashes: spread them.
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn caches(c: &mut Criterion) {
    let now = Instant::now();
    let ttl = now + Duration::from_secs(300);
    let own = HandWritten::new(CAPACITY);
    let in_use: ExpiringMap<u64, u64> = ExpiringMap::new(CAPACITY);
    for i in 0..CAPACITY as u64 * 2 {
        own.insert(key(i), i, ttl + Duration::from_millis(i), now);
        in_use.insert(key(i), i, ttl, now);
    }
    let mut g = c.benchmark_group("auth_cache");
    let mut i = CAPACITY as u64 * 2;
    g.bench_function(BenchmarkId::new("hit", "hand_written"), |b| {
        let mut j = CAPACITY as u64;
        b.iter(|| {
            j = CAPACITY as u64 + (j + 7919) % CAPACITY as u64;
            black_box(own.lookup(key(j), now))
        })
    });
    g.bench_function(BenchmarkId::new("hit", "quick_cache_in_use"), |b| {
        let mut j = CAPACITY as u64;
        b.iter(|| {
            j = CAPACITY as u64 + (j + 7919) % CAPACITY as u64;
            black_box(in_use.lookup(&key(j), now, |v| Some(*v)))
        })
    });
    g.bench_function(BenchmarkId::new("insert_full", "hand_written"), |b| {
        b.iter(|| {
            i += 1;
            own.insert(key(i), i, ttl + Duration::from_millis(i), now)
        })
    });
    g.bench_function(BenchmarkId::new("insert_full", "quick_cache_in_use"), |b| {
        b.iter(|| {
            i += 1;
            in_use.insert(key(i), i, ttl, now)
        })
    });
    g.finish();
}

criterion_group!(benches, caches);
criterion_main!(benches);
