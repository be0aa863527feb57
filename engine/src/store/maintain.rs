//! Maintenance: figures, garbage collection, compaction, expiry, scrubbing and checkpoints.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::snapshot::{self, ShardSnapshot, SpaceEntrySnapshot, TenantSnapshot};
use super::{now_ns, SpaceHandle, Store};
use crate::commit::FlushTimes;
use crate::error::{Error, Result};
use crate::ns::NsOp;
use crate::pack::{ChunkScrubReport, CompactReport, GcReport};
use crate::SpaceKey;

/// Space and dedup figures of the whole store.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreStats {
    pub tenants: u64,
    pub spaces: u64,
    pub entries: u64,
    /// Bytes of live files as users see them.
    pub logical_bytes: u64,
    /// Bytes of unique chunks held.
    pub stored_bytes: u64,
    pub unique_chunks: u64,
    /// Bytes of pack files (stored bytes plus record headers plus garbage not yet compacted;
    /// not the zeros kept ahead of the current pack, at most 24 MiB, see
    /// [`StoreConfig::prezero`]).
    pub pack_bytes: u64,
    /// logical / stored (1.0 when nothing is stored).
    pub dedup_ratio: f64,
    /// Chunk reads served from the chunk cache since open.
    pub chunk_cache_hits: u64,
    /// Chunk reads the cache could not serve (read from the packs) since open; 0 when disabled.
    pub chunk_cache_misses: u64,
    /// Bytes the chunk cache holds now (chunk bytes plus bookkeeping).
    pub chunk_cache_bytes: u64,
    /// How long the write-ahead logs' flushes (write + fdatasync) took, all shards together.
    pub wal_flush: FlushTimes,
    /// How long the pack appender's flushes took.
    pub pack_flush: FlushTimes,
}
/// What a scrub found. Corruption is reported, never hidden.
#[derive(Debug, Clone, Default)]
pub struct ScrubReport {
    pub chunks: ChunkScrubReport,
    /// Chunks whose bytes do not hash to their id, with a file that uses them.
    pub hash_mismatches: Vec<(SpaceKey, String)>,
    /// Chunks a file names that the store does not hold.
    pub missing: Vec<(SpaceKey, String)>,
    pub files_checked: u64,
}

impl ScrubReport {
    pub fn is_clean(&self) -> bool {
        self.chunks.corrupt.is_empty() && self.hash_mismatches.is_empty() && self.missing.is_empty()
    }
}
impl Store {
    /// Space and dedup figures.
    pub fn stats(&self) -> StoreStats {
        let inner = &self.inner;
        let (unique_chunks, stored_bytes, pack_bytes) = inner.chunks.stats();
        let cache = inner.cache.figures();
        let logical_bytes: u64 = inner
            .tenants
            .iter()
            .map(|t| t.used.load(Ordering::Relaxed))
            .sum();
        let entries = inner
            .spaces
            .iter()
            .map(|s| s.tree.read().entry_count())
            .sum();
        StoreStats {
            tenants: inner.tenants.len() as u64,
            spaces: inner.spaces.len() as u64,
            entries,
            logical_bytes,
            stored_bytes,
            unique_chunks,
            pack_bytes,
            dedup_ratio: if stored_bytes == 0 {
                1.0
            } else {
                logical_bytes as f64 / stored_bytes as f64
            },
            chunk_cache_hits: cache.hits,
            chunk_cache_misses: cache.misses,
            chunk_cache_bytes: cache.bytes,
            wal_flush: inner.shards.iter().fold(FlushTimes::default(), |mut t, s| {
                t.add(&s.log.flush_times());
                t
            }),
            pack_flush: inner.chunks.flush_times(),
        }
    }

    /// Removes chunks no file, version or trash item uses (safe during uploads). Checkpoints
    /// first, so that the records of files deleted before it, whose data it removes, are not
    /// replayed at the next open (they would find their chunks gone).
    pub fn gc(&self) -> GcReport {
        let _pause = self.inner.maintenance.lock();
        if let Err(e) = self.checkpoint_paused() {
            // GC is safe without it; the next open then replays more.
            tracing::warn!(error = %e, "checkpoint before GC failed");
        }
        self.inner.chunks.gc(|id| self.inner.cache.remove(id))
    }

    /// Rewrites sealed packs at least `dead_ratio_min` garbage, reclaiming their space.
    pub fn compact(&self, dead_ratio_min: f64) -> Result<CompactReport> {
        let _pause = self.inner.maintenance.lock();
        self.inner.chunks.compact(dead_ratio_min)
    }

    /// Drops versions and trash items older than the configured ages.
    pub async fn expire(&self) -> Result<u64> {
        let cfg = &self.inner.config;
        let as_ns = |d: Option<Duration>| d.map(|d| d.as_nanos().min(i64::MAX as u128) as i64);
        let keys: Vec<SpaceKey> = self
            .inner
            .spaces
            .iter()
            .filter(|s| {
                let t = s.tree.read();
                t.retained_bytes() > 0 || !t.trash().is_empty()
            })
            .map(|s| s.key().clone())
            .collect();
        let mut n = 0;
        for key in keys {
            let op = NsOp::Expire {
                now: now_ns(),
                version_age_max_ns: as_ns(cfg.version_age_max),
                trash_age_max_ns: as_ns(cfg.trash_age_max),
            };
            self.mutate(&key, op, 0).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Verifies every chunk: pack records (header, CRC) and, for every chunk a file uses,
    /// its keyed BLAKE3 id. Reports what it finds. Reads the disk, never the chunk cache (and
    /// leaves the cache as it is).
    pub fn scrub(&self) -> ScrubReport {
        let mut report = ScrubReport {
            chunks: self.inner.chunks.scrub(),
            ..Default::default()
        };
        let mut seen = std::collections::HashSet::new();
        let spaces: Vec<Arc<SpaceHandle>> = self.inner.spaces.iter().map(|s| s.clone()).collect();
        for sp in spaces {
            let Ok(tenant) = self.tenant(sp.key.tenant()) else {
                continue;
            };
            let mut contents = Vec::new();
            sp.tree
                .read()
                .for_each_content(|c, _| contents.push(c.clone()));
            for c in contents {
                report.files_checked += 1;
                for r in c.chunks.iter() {
                    if !seen.insert(r.id) {
                        continue;
                    }
                    if !self.inner.chunks.contains(&r.id) {
                        report
                            .missing
                            .push((sp.key.clone(), format!("{} (content {})", r.id, c.hash)));
                        continue;
                    }
                    if let Err(e) = self.read_chunk_from_disk(&tenant.key, &r.id) {
                        report
                            .hash_mismatches
                            .push((sp.key.clone(), format!("{e} (content {})", c.hash)));
                    }
                }
            }
        }
        report
    }

    /// Snapshots every shard that changed since its last snapshot and checkpoints the chunk
    /// index, so the next open replays little.
    pub fn checkpoint(&self) -> Result<()> {
        let _pause = self.inner.maintenance.lock();
        self.checkpoint_paused()
    }

    /// [`Store::checkpoint`] by a caller holding `maintenance`.
    pub(super) fn checkpoint_paused(&self) -> Result<()> {
        for n in 0..self.inner.shards.len() {
            self.snapshot_shard(n)?;
        }
        self.inner.chunks.checkpoint()
    }

    fn snapshot_shard(&self, n: usize) -> Result<()> {
        let inner = &self.inner;
        let shard = &inner.shards[n];
        // Every change to a shard's state appends a record to its log first: no record since
        // the last snapshot, no change (a read-only 08:00 storm then costs the checkpoint nothing).
        if shard.log.next_seq() == shard.snapshot_seq.load(Ordering::Acquire) {
            return Ok(());
        }
        let snap = {
            let _x = shard.apply.write();
            let (next_segment, next_seq) = shard.log.rotate()?;
            let spaces = shard
                .spaces
                .lock()
                .iter()
                .map(|h| SpaceEntrySnapshot {
                    tenant: h.key.tenant().to_string(),
                    user: h.key.user().to_string(),
                    tree: h.tree.read().to_snapshot(),
                })
                .collect();
            let tenants = inner
                .tenants
                .iter()
                .filter(|t| t.shard == n)
                .map(|t| TenantSnapshot {
                    name: t.key().clone(),
                    quota: *t.quota.lock(),
                })
                .collect();
            ShardSnapshot {
                next_seq,
                next_segment,
                tenants,
                spaces,
            }
        };
        let (next_seq, next_segment) = (snap.next_seq, snap.next_segment);
        if inner.config.keys.is_some() {
            snapshot::write_sealed(inner.storage.as_ref(), n, &self.seal_snapshot(snap)?)?;
        } else {
            snapshot::write(inner.storage.as_ref(), n, &snap)?;
        }
        shard.snapshot_seq.store(next_seq, Ordering::Release);
        shard.log.remove_before(next_segment)
    }

    /// Splits a shard's snapshot by tenant and seals each tenant's part with its key.
    fn seal_snapshot(&self, snap: ShardSnapshot) -> Result<snapshot::SealedSnapshot> {
        let mut by_tenant: std::collections::BTreeMap<String, ShardSnapshot> = Default::default();
        let empty = |snap: &ShardSnapshot| ShardSnapshot {
            next_seq: snap.next_seq,
            next_segment: snap.next_segment,
            tenants: Vec::new(),
            spaces: Vec::new(),
        };
        let (next_seq, next_segment) = (snap.next_seq, snap.next_segment);
        let shell = empty(&snap);
        for t in snap.tenants {
            by_tenant
                .entry(t.name.clone())
                .or_insert_with(|| empty(&shell))
                .tenants
                .push(t);
        }
        for s in snap.spaces {
            by_tenant
                .entry(s.tenant.clone())
                .or_insert_with(|| empty(&shell))
                .spaces
                .push(s);
        }
        let mut parts = Vec::with_capacity(by_tenant.len());
        for (tenant, part) in by_tenant {
            // A tenant being erased right now: its part goes (its key is gone or going).
            let Ok(t) = self.tenant(&tenant) else {
                continue;
            };
            let Some(cipher) = t.key.cipher() else {
                return Err(Error::Key(format!("tenant {tenant} has no key")));
            };
            let archive = snapshot::part_archive(&part)?;
            parts.push(snapshot::SealedPart {
                sealed: cipher.seal_meta(&snapshot::part_context(&tenant), &archive),
                tenant,
            });
        }
        Ok(snapshot::SealedSnapshot {
            next_seq,
            next_segment,
            parts,
        })
    }

    /// Whether an earlier durability failure stopped writes (restart to recover).
    pub fn is_failed(&self) -> bool {
        self.inner.failed.load(Ordering::Acquire)
            || self.inner.chunks.is_failed()
            || self.inner.shards.iter().any(|s| s.log.is_failed())
    }
}
