//! Cache of chunks that were read from the packs and verified: hot reads skip the pread, the
//! buffer fill and the keyed BLAKE3 check, and share one buffer (why it is safe:
//! docs/architecture.md, "Chunk cache").

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};

use crate::chunk::DomainKey;
use crate::ids::ChunkId;
use crate::limits::{
    CHUNK_CACHE_ENTRY_OVERHEAD, CHUNK_CACHE_ENTRY_SHARE_DIV, CHUNK_CACHE_SHARDS_MAX,
    CHUNK_CACHE_SHARD_BYTES_MIN, CHUNK_SIZE_AVG_DEFAULT,
};

/// A verified chunk and the tag of the domain whose key verified it.
#[derive(Clone)]
struct Cached {
    domain: u64,
    data: Bytes,
}

/// Weight of an entry: its bytes plus bookkeeping.
#[derive(Clone, Copy)]
struct ByteWeighter;

impl Weighter<ChunkId, Cached> for ByteWeighter {
    fn weight(&self, _id: &ChunkId, c: &Cached) -> u64 {
        c.data.len() as u64 + CHUNK_CACHE_ENTRY_OVERHEAD
    }
}

/// Hit and miss counts and what the cache holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheFigures {
    pub hits: u64,
    pub misses: u64,
    /// Weight held: chunk bytes plus `CHUNK_CACHE_ENTRY_OVERHEAD` each.
    pub bytes: u64,
    pub chunks: u64,
}

/// Bounded by bytes, sharded (each shard its own lock and eviction); `None` when disabled.
pub(crate) struct ChunkCache {
    cache: Option<Cache<ChunkId, Cached, ByteWeighter>>,
    /// Chunks longer than this, bytes, are not cached.
    entry_max: usize,
}

impl ChunkCache {
    /// A cache of at most `capacity` bytes (weights); 0 disables it.
    pub(crate) fn new(capacity: u64) -> ChunkCache {
        if capacity == 0 {
            return ChunkCache {
                cache: None,
                entry_max: 0,
            };
        }
        let wanted = (capacity / CHUNK_CACHE_SHARD_BYTES_MIN).clamp(1, CHUNK_CACHE_SHARDS_MAX);
        // Largest power of two not above `wanted` (the cache rounds shard counts up otherwise).
        let shards = 1u64 << (63 - wanted.leading_zeros());
        let shard_bytes = (capacity / shards).max(1);
        let options = OptionsBuilder::new()
            .shards(shards as usize)
            .weight_capacity(shard_bytes * shards)
            .estimated_items_capacity((capacity / CHUNK_SIZE_AVG_DEFAULT as u64).max(1) as usize)
            .build();
        let Ok(options) = options else {
            // Only fails for a missing setting, which the lines above always give.
            return ChunkCache {
                cache: None,
                entry_max: 0,
            };
        };
        ChunkCache {
            cache: Some(Cache::with_options(
                options,
                ByteWeighter,
                Default::default(),
                Default::default(),
            )),
            entry_max: (shard_bytes / CHUNK_CACHE_ENTRY_SHARE_DIV) as usize,
        }
    }

    /// The verified bytes of chunk `id` of domain `key`, when cached.
    pub(crate) fn get(&self, key: &DomainKey, id: &ChunkId) -> Option<Bytes> {
        let hit = self.cache.as_ref()?.get(id)?;
        // Ids of different domains never coincide (keyed hashes), so this only guards against
        // a namespace that names another domain's chunk: that read goes to disk and fails there.
        (hit.domain == key.tag()).then_some(hit.data)
    }

    /// Keeps `data`, which the caller has verified as chunk `id` of domain `key`.
    pub(crate) fn insert(&self, key: &DomainKey, id: ChunkId, data: &Bytes) {
        let Some(cache) = &self.cache else { return };
        if data.len() > self.entry_max {
            return;
        }
        cache.insert(
            id,
            Cached {
                domain: key.tag(),
                data: data.clone(),
            },
        );
    }

    /// Forgets chunk `id` (collected by GC).
    pub(crate) fn remove(&self, id: &ChunkId) {
        if let Some(cache) = &self.cache {
            cache.remove(id);
        }
    }

    pub(crate) fn figures(&self) -> CacheFigures {
        match &self.cache {
            Some(c) => CacheFigures {
                hits: c.hits(),
                misses: c.misses(),
                bytes: c.weight(),
                chunks: c.len() as u64,
            },
            None => CacheFigures::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(domain: &str) -> DomainKey {
        DomainKey::derive(&[3; 32], domain)
    }

    fn chunk(k: &DomainKey, seed: u8, len: usize) -> (ChunkId, Bytes) {
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
        (k.chunk_id(&data), Bytes::from(data))
    }

    #[test]
    fn hits_share_the_buffer() {
        let c = ChunkCache::new(64 << 20);
        let k = key("a");
        let (id, data) = chunk(&k, 3, 20_000);
        assert!(c.get(&k, &id).is_none());
        c.insert(&k, id, &data);
        let got = c.get(&k, &id).expect("cached");
        assert_eq!(got, data);
        assert_eq!(
            got.as_ptr(),
            data.as_ptr(),
            "a hit hands out the cached buffer"
        );
        let f = c.figures();
        assert_eq!((f.hits, f.misses, f.chunks), (1, 1, 1));
        assert_eq!(f.bytes, 20_000 + CHUNK_CACHE_ENTRY_OVERHEAD);
        c.remove(&id);
        assert!(c.get(&k, &id).is_none());
    }

    #[test]
    fn another_domain_never_hits() {
        let c = ChunkCache::new(64 << 20);
        let (a, b) = (key("a"), key("b"));
        let (id, data) = chunk(&a, 5, 1000);
        c.insert(&a, id, &data);
        assert!(c.get(&b, &id).is_none());
        assert!(c.get(&a, &id).is_some());
    }

    #[test]
    fn bound_holds_and_big_chunks_stay_out() {
        for capacity in [1u64 << 20, 5 << 20, 64 << 20, 1000 << 20] {
            let c = ChunkCache::new(capacity);
            let k = key("a");
            let entry_max = c.entry_max;
            assert!(entry_max as u64 <= capacity / CHUNK_CACHE_ENTRY_SHARE_DIV);
            let (id, big) = chunk(&k, 7, entry_max + 1);
            c.insert(&k, id, &big);
            assert!(
                c.get(&k, &id).is_none(),
                "{capacity}: oversized chunk cached"
            );
            let len = (entry_max / 2).max(1);
            let n = (3 * capacity / len as u64) as usize;
            let data = Bytes::from(vec![1u8; len]);
            for i in 0..n {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(i as u64).to_le_bytes());
                c.insert(&k, ChunkId(id), &data);
                if i % 1024 == 0 {
                    assert!(c.figures().bytes <= capacity, "{capacity}");
                }
            }
            let f = c.figures();
            assert!(f.bytes <= capacity, "{capacity}: {f:?}");
            assert!(
                f.bytes >= capacity / 2,
                "{capacity}: cache barely used: {f:?}"
            );
        }
    }

    #[test]
    fn zero_disables() {
        let c = ChunkCache::new(0);
        let k = key("a");
        let (id, data) = chunk(&k, 9, 100);
        c.insert(&k, id, &data);
        assert!(c.get(&k, &id).is_none());
        assert_eq!(c.figures(), CacheFigures::default());
    }
}
