//! The public face of the engine: [`Store`] ties chunking, packs, the sharded namespace and
//! the write-ahead logs together behind a narrow async API.

mod cache;
pub(crate) mod meta;
mod read;
pub(crate) mod record;
pub(crate) mod snapshot;
mod space;

use std::path::Path as FsPath;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dashmap::DashMap;
use futures::{Stream, StreamExt};
use parking_lot::{Mutex, RwLock};

use crate::chunk::{ChunkSizes, DomainKey, Ingest};
use crate::error::{Error, Result};
use crate::io::{open_storage, IoChoice, PreZeroer, Storage};
use crate::limits::{
    CHUNK_CACHE_BYTES_DEFAULT, FILE_SIZE_MAX, FREE_SPACE_CAREFUL_MARGIN,
    FREE_SPACE_RESERVE_DEFAULT, PACK_SIZE_TARGET, PACK_SIZE_TARGET_MIN,
};
use crate::ns::{
    ChunkRef, Content, EntryInfo, Kind, Name, NsOp, PropName, SpaceTree, TrashInfo, VersionInfo,
};
use crate::pack::{ChunkStore, Pos};
use crate::ContentHash;
use record::{WalRecord, WalRecordView};
use snapshot::{ShardSnapshot, SpaceEntrySnapshot, TenantSnapshot};

pub use crate::pack::{ChunkScrubReport, CompactReport, GcReport};
pub use read::ContentStream;
pub use space::{validate_account_name, SpaceKey, ACCOUNT_NAME_LEN_MAX};

/// Whose chunks deduplicate against whose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DedupMode {
    /// Each tenant is its own domain: no tenant can learn what another stores (default).
    #[default]
    PerTenant,
    /// One domain for the whole store (explicit opt-in: saves space across tenants).
    Global,
}

/// How a store behaves; every field has a default.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub dedup: DedupMode,
    pub chunk_sizes: ChunkSizes,
    /// Versions kept per file on overwrite.
    pub versions_kept: u32,
    /// Versions older than this are dropped by [`Store::expire`].
    pub version_age_max: Option<Duration>,
    /// Trash items older than this are dropped by [`Store::expire`].
    pub trash_age_max: Option<Duration>,
    /// Quota of a space without one of its own, logical bytes: applied at each op and in
    /// [`Store::usage`], never copied into the space, so a changed default reaches every space.
    pub space_quota_default: Option<u64>,
    pub io: IoChoice,
    /// Shards of a new store (fixed once the store exists).
    pub shards: usize,
    /// A pack is sealed (and becomes a compaction candidate) past this many bytes;
    /// `PACK_SIZE_TARGET_MIN..=PACK_SIZE_TARGET` (small values are for tests).
    pub pack_size_target: u64,
    /// Uploads are refused with [`Error::NoSpace`] while the file system has fewer free bytes
    /// (so the WAL never runs out); 0 turns the check off.
    pub free_space_reserve_bytes: u64,
    /// Bytes of verified chunks kept in memory for hot reads; 0 turns the cache off.
    pub chunk_cache_bytes: u64,
    /// Keep the current pack and each WAL segment written with zeros (and synced) a little
    /// ahead of their appends, by a background thread, so that the fdatasync every
    /// acknowledged upload waits for flushes data only, no file size or extent metadata
    /// (2-3x faster on ext4; docs/architecture.md, "Pre-zeroed appends"). Costs a second
    /// write of every pack byte and at most 24 MiB of zeros ahead in the packs plus 1.25 MiB
    /// per WAL shard. Default on.
    pub prezero: bool,
    /// Append pack data with direct I/O (`O_DIRECT`) where the file system allows, when
    /// `prezero` is off: chunk bytes go to the device from the batch buffer, without a copy
    /// into the page cache and its writeback (docs/architecture.md, "Direct pack appends").
    /// Reads keep using the page cache. Default on.
    pub direct_io: bool,
}

/// Shards of a new store: enough that writers rarely share a WAL lock, few enough that
/// each log still batches many records per fsync.
pub const SHARDS_DEFAULT: usize = 64;
/// Most shards a store may have.
pub const SHARDS_MAX: usize = 4096;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            dedup: DedupMode::PerTenant,
            chunk_sizes: ChunkSizes::default(),
            versions_kept: 10,
            version_age_max: Some(Duration::from_secs(30 * 24 * 3600)),
            trash_age_max: Some(Duration::from_secs(30 * 24 * 3600)),
            space_quota_default: None,
            io: IoChoice::Auto,
            shards: SHARDS_DEFAULT,
            pack_size_target: PACK_SIZE_TARGET,
            free_space_reserve_bytes: FREE_SPACE_RESERVE_DEFAULT,
            chunk_cache_bytes: CHUNK_CACHE_BYTES_DEFAULT,
            prezero: true,
            direct_io: true,
        }
    }
}

/// What opening the store found and how long it took.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub duration: Duration,
    pub spaces: u64,
    pub entries: u64,
    pub wal_records_replayed: u64,
    pub wal_torn_bytes: u64,
    pub wal_records_rejected: u64,
    /// Records of files whose chunks a crash took before they were durable: never
    /// acknowledged, so skipped.
    pub wal_records_uncommitted: u64,
    pub chunks_from_checkpoint: u64,
    pub chunk_records_scanned: u64,
    pub pack_torn_bytes: u64,
    /// Bytes of damaged records skipped inside packs (valid records followed them).
    pub pack_damaged_bytes: u64,
    /// Chunks the namespace names but the packs lack (data loss to investigate).
    pub chunks_missing: u64,
    pub io_backend: &'static str,
}

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
}

/// A space's logical usage and quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used_bytes: u64,
    pub quota_bytes: Option<u64>,
    /// Of the tenant, which also bounds the space.
    pub tenant_used_bytes: u64,
    pub tenant_quota_bytes: Option<u64>,
}

impl Usage {
    /// Bytes the space may still grow by.
    pub fn available_bytes(&self) -> Option<u64> {
        let own = self.quota_bytes.map(|q| q.saturating_sub(self.used_bytes));
        let tenant = self
            .tenant_quota_bytes
            .map(|q| q.saturating_sub(self.tenant_used_bytes));
        match (own, tenant) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
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

struct Tenant {
    quota: Mutex<Option<u64>>,
    used: AtomicU64,
    key: DomainKey,
    shard: usize,
}

struct SpaceHandle {
    key: SpaceKey,
    shard: usize,
    tree: RwLock<SpaceTree>,
}

struct Shard {
    log: crate::wal::ShardLog,
    /// Mutations take it shared; a snapshot takes it exclusively for a consistent cut.
    apply: RwLock<()>,
    /// Highest pack position any record of this log relies on. An op is acknowledged only
    /// once the packs are durable up to the mark it saw, so an acknowledged record never
    /// follows a record whose chunks could still be lost.
    pack_mark: AtomicU64,
    spaces: Mutex<Vec<Arc<SpaceHandle>>>,
    /// The log's next sequence number when the snapshot on disk was taken (`SNAPSHOT_STALE`
    /// when unknown or older): while no record follows it, a checkpoint skips this shard.
    snapshot_seq: AtomicU64,
}

/// [`Shard::snapshot_seq`] of a shard whose snapshot must be written at the next checkpoint.
const SNAPSHOT_STALE: u64 = u64::MAX;

struct Inner {
    storage: Arc<dyn Storage>,
    config: StoreConfig,
    master: [u8; 32],
    shards: Vec<Shard>,
    spaces: DashMap<SpaceKey, Arc<SpaceHandle>>,
    tenants: DashMap<String, Arc<Tenant>>,
    chunks: ChunkStore,
    /// Verified chunks of recent reads.
    cache: cache::ChunkCache,
    recovery: RecoveryReport,
    /// The exclusive lock on the store directory, held while the store is open.
    dir_lock: Mutex<Option<std::fs::File>>,
    /// A full disk took chunks of an op already applied: the namespace is ahead of the packs
    /// until a restart replays the logs (which skips such files).
    failed: std::sync::atomic::AtomicBool,
    /// A pack write was refused for lack of space: uploads wait for their chunks before they
    /// touch the namespace until the free space is back above reserve plus margin.
    tight: std::sync::atomic::AtomicBool,
}

/// The storage engine. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Chunk references an upload holds until its content is committed or abandoned.
struct UploadRefs<'a> {
    chunks: &'a ChunkStore,
    held: Vec<ChunkRef>,
}

impl Drop for UploadRefs<'_> {
    fn drop(&mut self) {
        for c in &self.held {
            self.chunks.release(&c.id);
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store in directory `dir`.
    /// Only one process may hold a store: a second `open` fails with
    /// [`Error::Busy`] while the first holds its lock file.
    pub fn open(dir: &FsPath, config: StoreConfig) -> Result<Store> {
        std::fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        let storage = open_storage(dir, config.io)?;
        let store = Store::open_with_storage(storage, config)?;
        *store.inner.dir_lock.lock() = Some(lock);
        Ok(store)
    }

    /// Opens the store kept in `storage` (any backend: tests use in-memory and faulty ones).
    pub fn open_with_storage(storage: Arc<dyn Storage>, config: StoreConfig) -> Result<Store> {
        let started = Instant::now();
        if !(PACK_SIZE_TARGET_MIN..=PACK_SIZE_TARGET).contains(&config.pack_size_target) {
            return Err(Error::Invalid(
                "pack_size_target outside PACK_SIZE_TARGET_MIN..=PACK_SIZE_TARGET",
            ));
        }
        let meta = meta::load_or_create(storage.as_ref(), &config)?;
        let prezero = if config.prezero {
            let floor = config
                .free_space_reserve_bytes
                .saturating_add(FREE_SPACE_CAREFUL_MARGIN);
            Some(PreZeroer::start_with_floor(storage.clone(), floor)?)
        } else {
            None
        };
        let (chunks, chunk_rec) = ChunkStore::open_with(
            storage.clone(),
            config.pack_size_target,
            prezero.clone(),
            config.direct_io,
        )?;
        let mut report = RecoveryReport {
            chunks_from_checkpoint: chunk_rec.from_checkpoint,
            chunk_records_scanned: chunk_rec.scanned_records,
            pack_torn_bytes: chunk_rec.torn_bytes,
            pack_damaged_bytes: chunk_rec.damaged_bytes,
            io_backend: storage.kind(),
            ..Default::default()
        };
        let mut shards = Vec::with_capacity(meta.shards);
        let spaces: DashMap<SpaceKey, Arc<SpaceHandle>> = DashMap::new();
        let tenants: DashMap<String, Arc<Tenant>> = DashMap::new();
        let new_tenant = |name: &str, quota: Option<u64>| {
            Arc::new(Tenant {
                quota: Mutex::new(quota),
                used: AtomicU64::new(0),
                key: domain_key(&meta.master, config.dedup, name),
                shard: space::shard_of(&[name], meta.shards),
            })
        };
        // Shards are independent: recover them on all cores.
        let next_shard = AtomicU64::new(0);
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(meta.shards);
        let recover_one = |shard: usize| -> Result<(Shard, RecoveryReport)> {
            let mut rep = RecoveryReport::default();
            let mut first_segment = 0;
            let mut min_next_seq = 0;
            let mut shard_spaces = Vec::new();
            let mut have_snapshot = false;
            if let Some(buf) = snapshot::read(storage.as_ref(), shard)? {
                have_snapshot = true;
                let snap = snapshot::access(&buf)?;
                first_segment = snap.next_segment.to_native();
                min_next_seq = snap.next_seq.to_native();
                for t in snap.tenants.iter() {
                    let quota = t.quota.as_ref().map(|q| q.to_native());
                    tenants.insert(t.name.to_string(), new_tenant(t.name.as_str(), quota));
                }
                for s in snap.spaces.iter() {
                    let key = SpaceKey::new(s.tenant.as_str(), s.user.as_str())
                        .map_err(|_| Error::Corrupt("snapshot names an invalid space".into()))?;
                    let tree = SpaceTree::from_archived(&s.tree)?;
                    let handle = Arc::new(SpaceHandle {
                        key: key.clone(),
                        shard,
                        tree: RwLock::new(tree),
                    });
                    shard_spaces.push(handle.clone());
                    spaces.insert(key, handle);
                }
            }
            let dir = format!("wal/{shard:03}");
            let (log, replay) = crate::wal::ShardLog::open(
                storage.clone(),
                &dir,
                first_segment,
                min_next_seq,
                prezero.clone(),
            )?;
            rep.wal_torn_bytes += replay.torn_bytes;
            // Nothing after the snapshot: it is the shard's state, no need to write it again.
            let snapshot_seq = if have_snapshot && replay.records.is_empty() {
                log.next_seq()
            } else {
                SNAPSHOT_STALE
            };
            // Records of one space usually come in runs: remember the last space's handle.
            let mut last_space: Option<Arc<SpaceHandle>> = None;
            for (seq, payload) in replay.records {
                rep.wal_records_replayed += 1;
                let rec = match record::decode_view(&payload) {
                    Ok(r) => r,
                    Err(why) => {
                        return Err(Error::Corrupt(format!("{dir}: record {seq}: {why}")));
                    }
                };
                match rec {
                    WalRecordView::Tenant { tenant, quota } => {
                        tenants
                            .entry(tenant.to_string())
                            .and_modify(|t| *t.quota.lock() = quota)
                            .or_insert_with(|| new_tenant(tenant, quota));
                    }
                    WalRecordView::CreateSpace { tenant, user } => {
                        let Ok(key) = SpaceKey::new(tenant, user) else {
                            rep.wal_records_rejected += 1;
                            continue;
                        };
                        if !spaces.contains_key(&key) {
                            let handle = Arc::new(SpaceHandle {
                                key: key.clone(),
                                shard,
                                tree: RwLock::new(SpaceTree::new()),
                            });
                            shard_spaces.push(handle.clone());
                            spaces.insert(key, handle);
                        }
                        tenants
                            .entry(tenant.to_string())
                            .or_insert_with(|| new_tenant(tenant, None));
                    }
                    WalRecordView::Space { tenant, user, op } => {
                        // A file whose chunks never reached the packs was never
                        // acknowledged (acks wait for both); it did not happen.
                        if let NsOp::PutFile { content, .. } = &op {
                            if content.chunks.iter().any(|c| !chunks.contains(&c.id)) {
                                rep.wal_records_uncommitted += 1;
                                continue;
                            }
                        }
                        let cached = last_space
                            .as_ref()
                            .filter(|h| h.key.tenant() == tenant && h.key.user() == user)
                            .cloned();
                        let handle = cached.or_else(|| {
                            SpaceKey::new(tenant, user)
                                .ok()
                                .and_then(|k| spaces.get(&k).map(|h| h.clone()))
                        });
                        last_space = handle.clone();
                        let applied = handle.map(|h| h.tree.write().apply(&op));
                        if !matches!(applied, Some(Ok(_))) {
                            tracing::error!(%dir, seq, ?applied, "WAL record did not replay");
                            rep.wal_records_rejected += 1;
                        }
                    }
                }
            }

            Ok((
                Shard {
                    log,
                    apply: RwLock::new(()),
                    pack_mark: AtomicU64::new(0),
                    spaces: Mutex::new(shard_spaces),
                    snapshot_seq: AtomicU64::new(snapshot_seq),
                },
                rep,
            ))
        };
        let recovered: Vec<Result<Vec<(usize, Shard, RecoveryReport)>>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..workers)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut mine = Vec::new();
                            loop {
                                let shard = next_shard.fetch_add(1, Ordering::Relaxed) as usize;
                                if shard >= meta.shards {
                                    return Ok(mine);
                                }
                                let (s, rep) = recover_one(shard)?;
                                mine.push((shard, s, rep));
                            }
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::Corrupt("shard recovery panicked".into()))
                        })
                    })
                    .collect()
            });
        let mut all = Vec::with_capacity(meta.shards);
        for r in recovered {
            all.extend(r?);
        }
        all.sort_by_key(|(n, _, _)| *n);
        for (n, shard, rep) in all {
            debug_assert_eq!(n, shards.len());
            report.wal_torn_bytes += rep.wal_torn_bytes;
            report.wal_records_replayed += rep.wal_records_replayed;
            report.wal_records_rejected += rep.wal_records_rejected;
            report.wal_records_uncommitted += rep.wal_records_uncommitted;
            shards.push(shard);
        }
        // Reference counts and usage are derived state: rebuild them from the namespace.
        for entry in spaces.iter() {
            let tree = entry.tree.read();
            report.spaces += 1;
            report.entries += tree.entry_count();
            tree.for_each_content(|content, _refs| {
                for c in content.chunks.iter() {
                    if !chunks.add_ref(&c.id) {
                        report.chunks_missing += 1;
                    }
                }
            });
            let tenant = tenants
                .entry(entry.key.tenant().to_string())
                .or_insert_with(|| new_tenant(entry.key.tenant(), None))
                .clone();
            tenant.used.fetch_add(tree.used_bytes(), Ordering::Relaxed);
        }
        if report.chunks_missing > 0 {
            tracing::error!(
                missing = report.chunks_missing,
                "files name chunks the packs lack"
            );
        }
        report.duration = started.elapsed();
        tracing::info!(?report, "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                storage,
                master: meta.master,
                shards,
                spaces,
                tenants,
                chunks,
                cache: cache::ChunkCache::new(config.chunk_cache_bytes),
                config,
                recovery: report,
                dir_lock: Mutex::new(None),
                failed: Default::default(),
                tight: Default::default(),
            }),
        })
    }

    /// What opening found.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// The configuration in force.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    fn space(&self, key: &SpaceKey) -> Result<Arc<SpaceHandle>> {
        self.inner
            .spaces
            .get(key)
            .map(|h| h.clone())
            .ok_or(Error::NotFound)
    }

    fn tenant(&self, name: &str) -> Result<Arc<Tenant>> {
        self.inner
            .tenants
            .get(name)
            .map(|t| t.clone())
            .ok_or(Error::NotFound)
    }

    fn tenant_or_create(&self, name: &str) -> Arc<Tenant> {
        let inner = &self.inner;
        inner
            .tenants
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Tenant {
                    quota: Mutex::new(None),
                    used: AtomicU64::new(0),
                    key: domain_key(&inner.master, inner.config.dedup, name),
                    shard: space::shard_of(&[name], inner.shards.len()),
                })
            })
            .clone()
    }

    // ---- tenants and spaces -------------------------------------------------------------

    /// Creates tenant `name` if missing and sets its quota (logical bytes; `None` = unlimited).
    pub async fn set_tenant_quota(&self, name: &str, quota: Option<u64>) -> Result<()> {
        validate_account_name(name)?;
        let tenant = self.tenant_or_create(name);
        let shard = &self.inner.shards[tenant.shard];
        let seq = {
            let _a = shard.apply.read();
            *tenant.quota.lock() = quota;
            shard.log.append(&record::encode(&WalRecord::Tenant {
                tenant: name.to_string(),
                quota,
            }))?
        };
        shard.log.wait_durable(seq).await
    }

    /// Creates the space if missing (and its tenant). Returns whether it was created.
    pub async fn create_space(&self, key: &SpaceKey) -> Result<bool> {
        if self.inner.spaces.contains_key(key) {
            return Ok(false);
        }
        let inner = &self.inner;
        self.tenant_or_create(key.tenant());
        let shard_no = space::shard_of(&[key.tenant(), key.user()], inner.shards.len());
        let shard = &inner.shards[shard_no];
        let (seq, created) = {
            let _a = shard.apply.read();
            let mut created = false;
            let handle = inner
                .spaces
                .entry(key.clone())
                .or_insert_with(|| {
                    created = true;
                    // No own quota: `space_quota_default` applies at each op (not copied in,
                    // so a changed default reaches existing spaces).
                    let tree = SpaceTree::new();
                    Arc::new(SpaceHandle {
                        key: key.clone(),
                        shard: shard_no,
                        tree: RwLock::new(tree),
                    })
                })
                .clone();
            if !created {
                return Ok(false);
            }
            shard.spaces.lock().push(handle);
            let seq = shard.log.append(&record::encode(&WalRecord::CreateSpace {
                tenant: key.tenant().to_string(),
                user: key.user().to_string(),
            }))?;
            (seq, created)
        };
        shard.log.wait_durable(seq).await?;
        Ok(created)
    }

    pub fn space_exists(&self, key: &SpaceKey) -> bool {
        self.inner.spaces.contains_key(key)
    }

    /// Names of all tenants, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.tenants.iter().map(|t| t.key().clone()).collect();
        v.sort();
        v
    }

    /// Spaces of tenant `tenant`, sorted.
    pub fn spaces_of(&self, tenant: &str) -> Vec<SpaceKey> {
        let mut v: Vec<SpaceKey> = self
            .inner
            .spaces
            .iter()
            .filter(|s| s.key().tenant() == tenant)
            .map(|s| s.key().clone())
            .collect();
        v.sort();
        v
    }

    /// Logical usage and quotas of a space.
    pub fn usage(&self, key: &SpaceKey) -> Result<Usage> {
        let sp = self.space(key)?;
        let tenant = self.tenant(key.tenant())?;
        let tree = sp.tree.read();
        let tenant_quota_bytes = *tenant.quota.lock();
        Ok(Usage {
            used_bytes: tree.used_bytes(),
            quota_bytes: tree.quota().or(self.inner.config.space_quota_default),
            tenant_used_bytes: tenant.used.load(Ordering::Relaxed),
            tenant_quota_bytes,
        })
    }

    /// Logical usage of a tenant (sum of its spaces) and its quota.
    pub fn tenant_usage(&self, name: &str) -> Result<(u64, Option<u64>)> {
        let t = self.tenant(name)?;
        let q = *t.quota.lock();
        Ok((t.used.load(Ordering::Relaxed), q))
    }

    /// Sets a space's quota (logical bytes; `None` = unlimited).
    pub async fn set_space_quota(&self, key: &SpaceKey, quota: Option<u64>) -> Result<()> {
        self.mutate(key, NsOp::SetQuota { bytes: quota }, 0)
            .await
            .map(|_| ())
    }

    // ---- namespace -----------------------------------------------------------------------

    /// Applies `op` to space `key`, logs it and waits until it is durable.
    /// `growth` is how many logical bytes the op may add (checked against the tenant quota).
    async fn mutate(&self, key: &SpaceKey, op: NsOp, growth: u64) -> Result<EntryChange> {
        let (commit, change) = self.mutate_nowait(key, op, growth, None)?;
        self.wait_committed(commit).await?;
        self.release_dropped(&change.dropped);
        Ok(change)
    }

    /// Waits until an op's record and every pack byte its log relies on are durable: the
    /// WAL fsync and the pack fsync run at the same time, so a PUT pays one round trip.
    /// The log is awaited first: its record was appended after the chunks, so the packs are
    /// mostly durable by then and the task is woken once, not once per flusher.
    async fn wait_committed(&self, c: Commit) -> Result<()> {
        let shard = &self.inner.shards[c.shard];
        let wal = shard.log.wait_durable(c.seq).await;
        let packs = self.inner.chunks.wait_durable(Pos(c.pack_mark)).await;
        if let Err(Error::NoSpace) = packs {
            // Rare: the disk filled faster than the free-space checks saw. The op is applied
            // and logged but its chunks are gone; only a restart's replay makes it consistent.
            tracing::error!("a full disk took chunks of an applied op; restart to recover");
            self.inner.tight.store(true, Ordering::Relaxed);
            self.inner.failed.store(true, Ordering::Release);
        }
        wal.and(packs)
    }

    /// Refuses an upload while free space is below the reserve; `Ok(true)` when space is tight
    /// enough that the upload must wait for its chunks before it touches the namespace.
    fn space_check(&self) -> Result<bool> {
        let inner = &self.inner;
        if inner.failed.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let reserve = inner.config.free_space_reserve_bytes;
        let free = match inner.storage.free_bytes() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read free space");
                None
            }
        };
        match free {
            Some(f) if reserve > 0 && f < reserve => {
                tracing::warn!(
                    free = f,
                    reserve,
                    "upload refused: free space below reserve"
                );
                Err(Error::NoSpace)
            }
            Some(f) if f >= reserve.saturating_add(FREE_SPACE_CAREFUL_MARGIN) => {
                inner.tight.store(false, Ordering::Relaxed);
                Ok(false)
            }
            Some(_) => Ok(true),
            None => Ok(inner.tight.load(Ordering::Relaxed)),
        }
    }

    /// Drops the chunk references of contents an op let go of. Only once the op is durable:
    /// before, a crash would bring the contents back, so their chunks must survive GC.
    fn release_dropped(&self, dropped: &[Arc<Content>]) {
        for c in dropped {
            for r in c.chunks.iter() {
                self.inner.chunks.release(&r.id);
            }
        }
    }

    fn mutate_nowait(
        &self,
        key: &SpaceKey,
        op: NsOp,
        growth: u64,
        upload: Option<(&Content, Pos)>,
    ) -> Result<(Commit, EntryChange)> {
        let inner = &self.inner;
        if inner.failed.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let sp = self.space(key)?;
        let tenant = self.tenant(key.tenant())?;
        let shard = &inner.shards[sp.shard];
        let payload = record::encode_space_op(key.tenant(), key.user(), &op);
        let _a = shard.apply.read();
        let mut tree = sp.tree.write();
        tree.set_default_quota(inner.config.space_quota_default);
        let before = tree.used_bytes();
        if growth > 0 {
            if let Some(q) = *tenant.quota.lock() {
                if tenant.used.load(Ordering::Relaxed).saturating_add(growth) > q {
                    return Err(Error::QuotaExceeded);
                }
            }
        }
        let effects = tree.apply(&op)?;
        let needs = upload.map(|(_, pos)| pos.0).unwrap_or(0);
        let pack_mark = shard
            .pack_mark
            .fetch_max(needs, Ordering::SeqCst)
            .max(needs);
        let seq = shard.log.append(&payload)?;
        let after = tree.used_bytes();
        if after >= before {
            tenant.used.fetch_add(after - before, Ordering::Relaxed);
        } else {
            tenant.used.fetch_sub(before - after, Ordering::Relaxed);
        }
        let info = match &op {
            NsOp::PutFile { path, .. } | NsOp::Mkdir { path, .. } => {
                tree.resolve(path).and_then(|n| tree.stat(n))
            }
            _ => None,
        };
        drop(tree);
        for c in &effects.added {
            for r in c.chunks.iter() {
                if !inner.chunks.add_ref(&r.id) && upload.is_some() {
                    // Only a pack write refused for lack of space unindexes a new upload's
                    // chunk: `wait_committed` then fails the upload and says to restart.
                    tracing::error!(
                        "an upload's chunk was refused by a full disk after the checks"
                    );
                }
            }
        }
        Ok((
            Commit {
                seq,
                shard: sp.shard,
                pack_mark,
            },
            EntryChange {
                info,
                dropped: effects.dropped,
            },
        ))
    }

    /// Stores a file from a stream of byte buffers: chunks and hashes it as it arrives, writes
    /// new chunks to packs, and once all is durable makes it visible at `path` atomically
    /// (overwriting keeps the old content as a version). A stream that fails or ends early
    /// leaves no trace in the namespace.
    pub async fn put<S, E>(&self, key: &SpaceKey, path: &[Name], mut body: S) -> Result<EntryInfo>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let inner = &self.inner;
        let careful = self.space_check()?;
        let sp = self.space(key)?;
        let tenant = self.tenant(key.tenant())?;
        let (budget, old_size) = {
            let tree = sp.tree.read();
            check_put(&tree, path)?;
            let old = tree
                .resolve(path)
                .and_then(|n| tree.stat(n))
                .map(|i| i.size)
                .unwrap_or(0);
            let own = tree
                .quota()
                .or(inner.config.space_quota_default)
                .map(|q| q.saturating_sub(tree.used_bytes()));
            (own, old)
        };
        let mut ingest = Ingest::new(inner.config.chunk_sizes, tenant.key.clone());
        let mut refs = UploadRefs {
            chunks: &inner.chunks,
            held: Vec::new(),
        };
        let mut out = Vec::new();
        let mut last = Pos::default();
        // Where each chunk's record ends (new or deduplicated): all must be durable.
        let mut ends = Vec::new();
        let mut size = 0u64;
        while let Some(item) = body.next().await {
            let buf = item.map_err(|e| Error::Aborted(e.to_string()))?;
            size += buf.len() as u64;
            if size > FILE_SIZE_MAX {
                return Err(Error::LimitExceeded("file size"));
            }
            if let Some(b) = budget {
                if size > b.saturating_add(old_size) {
                    return Err(Error::QuotaExceeded);
                }
            }
            ingest.push(buf, &mut out);
            for (id, data) in out.drain(..) {
                let end = inner.chunks.put(id, &data)?;
                last = last.max(end);
                ends.push(end);
                refs.held.push(ChunkRef {
                    id,
                    len: data.len() as u32,
                });
            }
        }
        let (hash, total) = ingest.finish(&mut out);
        for (id, data) in out.drain(..) {
            let end = inner.chunks.put(id, &data)?;
            last = last.max(end);
            ends.push(end);
            refs.held.push(ChunkRef {
                id,
                len: data.len() as u32,
            });
        }
        debug_assert_eq!(total, size);
        let content = Content {
            hash,
            size,
            chunks: refs.held.clone().into_boxed_slice(),
        };
        let op = NsOp::PutFile {
            path: path.to_vec(),
            content: content.clone(),
            now: now_ns(),
            keep_versions: inner.config.versions_kept,
        };
        let growth = size.saturating_sub(old_size);
        // The space seen before the body may be gone now (this upload or others took it):
        // look again, so that a disk that filled meanwhile fails the upload here, before it
        // is applied, and not after (a pack write refused for lack of space unindexes its
        // chunks; an applied op naming them could only be undone by a restart).
        let careful = careful || self.space_check()?;
        if careful {
            if let Err(e) = inner.chunks.wait_durable(last).await {
                if matches!(e, Error::NoSpace) {
                    inner.tight.store(true, Ordering::Relaxed);
                }
                return Err(e);
            }
        }
        // A chunk may have been refused already, in a batch before the last one.
        if inner.chunks.any_lost(&ends) {
            inner.tight.store(true, Ordering::Relaxed);
            return Err(Error::NoSpace);
        }
        let (commit, change) = self.mutate_nowait(key, op, growth, Some((&content, last)))?;
        drop(refs);
        self.wait_committed(commit).await?;
        // Durable through `last`: every refusal up to it is recorded. One that hit an earlier
        // chunk after the check above leaves an applied op without its data (rare: the disk
        // filled within microseconds); like `wait_committed`'s, only a restart repairs it.
        if inner.chunks.any_lost(&ends) {
            tracing::error!("a full disk took chunks of an applied upload; restart to recover");
            return Err(Error::NoSpace);
        }
        self.release_dropped(&change.dropped);
        change.info.ok_or(Error::NotFound)
    }

    /// Stores `data` as a file (convenience over [`Store::put`]).
    pub async fn put_bytes(&self, key: &SpaceKey, path: &[Name], data: Bytes) -> Result<EntryInfo> {
        let stream = futures::stream::iter([Ok::<Bytes, std::convert::Infallible>(data)]);
        self.put(key, path, stream).await
    }

    /// Creates a collection.
    pub async fn mkdir(&self, key: &SpaceKey, path: &[Name]) -> Result<EntryInfo> {
        let op = NsOp::Mkdir {
            path: path.to_vec(),
            now: now_ns(),
        };
        self.mutate(key, op, 0).await?.info.ok_or(Error::NotFound)
    }

    /// Moves an entry (or subtree) to the trash; returns nothing the client needs.
    pub async fn delete(&self, key: &SpaceKey, path: &[Name]) -> Result<()> {
        let op = NsOp::Delete {
            path: path.to_vec(),
            now: now_ns(),
        };
        self.mutate(key, op, 0).await.map(|_| ())
    }

    /// Moves or renames an entry or subtree; with `overwrite` an existing target goes to the trash.
    pub async fn rename(
        &self,
        key: &SpaceKey,
        from: &[Name],
        to: &[Name],
        overwrite: bool,
    ) -> Result<()> {
        let op = NsOp::Move {
            from: from.to_vec(),
            to: to.to_vec(),
            overwrite,
            now: now_ns(),
        };
        self.mutate(key, op, 0).await.map(|_| ())
    }

    /// Copies an entry or subtree (metadata only: chunks are shared).
    pub async fn copy(
        &self,
        key: &SpaceKey,
        from: &[Name],
        to: &[Name],
        overwrite: bool,
    ) -> Result<()> {
        let growth = self
            .stat(key, from)
            .map(|_| self.subtree_bytes(key, from))
            .unwrap_or(0);
        let op = NsOp::Copy {
            from: from.to_vec(),
            to: to.to_vec(),
            overwrite,
            now: now_ns(),
        };
        self.mutate(key, op, growth).await.map(|_| ())
    }

    fn subtree_bytes(&self, key: &SpaceKey, path: &[Name]) -> u64 {
        let Ok(sp) = self.space(key) else { return 0 };
        let tree = sp.tree.read();
        tree.resolve(path)
            .map(|n| subtree_bytes(&tree, n))
            .unwrap_or(0)
    }

    /// Sets and removes dead properties, all or nothing.
    pub async fn set_props(
        &self,
        key: &SpaceKey,
        path: &[Name],
        set: Vec<(PropName, Vec<u8>)>,
        remove: Vec<PropName>,
    ) -> Result<()> {
        let op = NsOp::SetProps {
            path: path.to_vec(),
            set,
            remove,
        };
        self.mutate(key, op, 0).await.map(|_| ())
    }

    /// Brings back a trash item to where it was, or to `to`.
    pub async fn restore(&self, key: &SpaceKey, trash_id: u64, to: Option<&[Name]>) -> Result<()> {
        let op = NsOp::Restore {
            trash_id,
            to: to.map(|p| p.to_vec()),
            now: now_ns(),
        };
        self.mutate(key, op, 0).await.map(|_| ())
    }

    /// Drops a trash item for good.
    pub async fn purge(&self, key: &SpaceKey, trash_id: u64) -> Result<()> {
        self.mutate(key, NsOp::PurgeTrash { trash_id }, 0)
            .await
            .map(|_| ())
    }

    /// Makes an earlier version of a file current again.
    pub async fn restore_version(
        &self,
        key: &SpaceKey,
        path: &[Name],
        version_id: u64,
    ) -> Result<()> {
        let op = NsOp::RestoreVersion {
            path: path.to_vec(),
            version_id,
            now: now_ns(),
        };
        self.mutate(key, op, 0).await.map(|_| ())
    }

    // ---- reads ---------------------------------------------------------------------------

    pub fn stat(&self, key: &SpaceKey, path: &[Name]) -> Result<EntryInfo> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        tree.resolve(path)
            .and_then(|n| tree.stat(n))
            .ok_or(Error::NotFound)
    }

    /// The entry and its children (costs O(children)).
    pub fn list(&self, key: &SpaceKey, path: &[Name]) -> Result<(EntryInfo, Vec<EntryInfo>)> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        let node = tree.resolve(path).ok_or(Error::NotFound)?;
        let info = tree.stat(node).ok_or(Error::NotFound)?;
        Ok((info, tree.list(node)))
    }

    pub fn props(&self, key: &SpaceKey, path: &[Name]) -> Result<Vec<(PropName, Vec<u8>)>> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        let node = tree.resolve(path).ok_or(Error::NotFound)?;
        Ok(tree
            .props(node)
            .iter()
            .map(|p| (p.name.clone(), p.value.to_vec()))
            .collect())
    }

    /// Dead properties of the entry `id` (from a `stat` or `list`), without a path lookup.
    pub fn props_of(&self, key: &SpaceKey, id: crate::NodeId) -> Vec<(PropName, Vec<u8>)> {
        let Ok(sp) = self.space(key) else {
            return Vec::new();
        };
        let tree = sp.tree.read();
        tree.props(id)
            .iter()
            .map(|p| (p.name.clone(), p.value.to_vec()))
            .collect()
    }

    pub fn versions(&self, key: &SpaceKey, path: &[Name]) -> Result<Vec<VersionInfo>> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        tree.versions(path)
    }

    pub fn trash(&self, key: &SpaceKey) -> Result<Vec<TrashInfo>> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        Ok(tree.trash())
    }

    /// Opens a file for reading: `range` is (start, length) in bytes, `None` for all of it.
    /// Only the chunks overlapping the range are read; each is verified against its id.
    pub fn read(
        &self,
        key: &SpaceKey,
        path: &[Name],
        range: Option<(u64, u64)>,
    ) -> Result<(EntryInfo, ContentStream)> {
        let info = self.stat(key, path)?;
        let stream = self.read_entry(key, &info, range)?;
        Ok((info, stream))
    }

    /// Like [`Store::read`] for an entry already looked up with [`Store::stat`] in `key`'s
    /// space (one lookup less when the caller needed the entry first).
    pub fn read_entry(
        &self,
        key: &SpaceKey,
        info: &EntryInfo,
        range: Option<(u64, u64)>,
    ) -> Result<ContentStream> {
        let content = info.content.clone().ok_or(Error::IsADirectory)?;
        let tenant = self.tenant(key.tenant())?;
        let (start, len) = range.unwrap_or((0, content.size));
        if start.checked_add(len).is_none_or(|end| end > content.size) {
            return Err(Error::Invalid("range outside the file"));
        }
        Ok(ContentStream::new(
            self.clone(),
            tenant.key.clone(),
            content,
            start,
            len,
        ))
    }

    /// Reads a whole range into memory (convenience for tests and tools).
    pub async fn read_to_vec(
        &self,
        key: &SpaceKey,
        path: &[Name],
        range: Option<(u64, u64)>,
    ) -> Result<Vec<u8>> {
        let (_, mut stream) = self.read(key, path, range)?;
        let mut out = Vec::new();
        while let Some(b) = stream.next().await {
            out.extend_from_slice(&b?);
        }
        Ok(out)
    }

    /// Chunk `id` of domain `key`: from the cache, or read from its pack, verified and cached.
    pub(crate) fn read_chunk_verified(
        &self,
        key: &DomainKey,
        id: &crate::ChunkId,
    ) -> Result<Bytes> {
        if let Some(data) = self.inner.cache.get(key, id) {
            return Ok(data);
        }
        let data = self.read_chunk_from_disk(key, id)?;
        self.inner.cache.insert(key, *id, &data);
        Ok(data)
    }

    /// Chunk `id` of domain `key`, read from its pack and verified, never from the cache.
    fn read_chunk_from_disk(&self, key: &DomainKey, id: &crate::ChunkId) -> Result<Bytes> {
        let data = self.inner.chunks.read_raw(id)?;
        if key.chunk_id(&data) != *id {
            return Err(Error::Integrity(format!(
                "chunk {id} does not match its hash"
            )));
        }
        Ok(data)
    }

    // ---- maintenance ---------------------------------------------------------------------

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
        }
    }

    /// Removes chunks no file, version or trash item uses (safe during uploads).
    pub fn gc(&self) -> GcReport {
        self.inner.chunks.gc(|id| self.inner.cache.remove(id))
    }

    /// Rewrites sealed packs at least `dead_ratio_min` garbage, reclaiming their space.
    pub fn compact(&self, dead_ratio_min: f64) -> Result<CompactReport> {
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
        snapshot::write(inner.storage.as_ref(), n, &snap)?;
        shard.snapshot_seq.store(snap.next_seq, Ordering::Release);
        shard.log.remove_before(snap.next_segment)
    }

    /// Whether an earlier durability failure stopped writes (restart to recover).
    pub fn is_failed(&self) -> bool {
        self.inner.failed.load(Ordering::Acquire) || self.inner.chunks.is_failed()
    }

    /// Hex of the content hash, as used in strong ETags.
    pub fn etag_of(hash: &ContentHash) -> String {
        hash.to_string()
    }
}

/// Where an op's record went and what must be durable before it is acknowledged.
#[derive(Clone, Copy)]
struct Commit {
    seq: u64,
    shard: usize,
    pack_mark: u64,
}

/// What a mutation produced.
struct EntryChange {
    info: Option<EntryInfo>,
    /// Contents no longer referenced; their chunks are released once the op is durable.
    dropped: Vec<Arc<Content>>,
}

/// Takes the exclusive lock of a store directory (`LOCK`, flock), without waiting.
fn lock_dir(dir: &FsPath) -> Result<std::fs::File> {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Busy);
    }
    Ok(file)
}

/// Checks that a file can be put at `path`: its parent is a collection and it is no collection.
fn check_put(tree: &SpaceTree, path: &[Name]) -> Result<()> {
    let Some((_, parent)) = path.split_last() else {
        return Err(Error::IsADirectory);
    };
    let dir = tree.resolve(parent).ok_or(Error::ParentMissing)?;
    match tree.stat(dir) {
        Some(info) if info.kind == Kind::Dir => {}
        Some(_) => return Err(Error::NotADirectory),
        None => return Err(Error::ParentMissing),
    }
    if let Some(info) = tree.resolve(path).and_then(|n| tree.stat(n)) {
        if info.kind == Kind::Dir {
            return Err(Error::IsADirectory);
        }
    }
    Ok(())
}

/// Logical bytes of the files under `node` (O(subtree); only copies need it).
fn subtree_bytes(tree: &SpaceTree, node: crate::NodeId) -> u64 {
    let mut total = 0;
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if let Some(info) = tree.stat(n) {
            total += info.size;
            if info.kind == Kind::Dir {
                stack.extend(tree.children(n));
            }
        }
    }
    total
}

fn domain_key(master: &[u8; 32], mode: DedupMode, tenant: &str) -> DomainKey {
    match mode {
        DedupMode::PerTenant => DomainKey::derive(master, &format!("tenant:{tenant}")),
        DedupMode::Global => DomainKey::derive(master, "global"),
    }
}
