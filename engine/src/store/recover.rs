//! Recovery, the explicit step of opening a store: checks the configuration, loads
//! `store.meta`, recovers the packs (chunk index), then every shard (snapshot plus WAL replay,
//! on all cores), and finally rebuilds the derived state (chunk reference counts, usage).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};

use super::record::{self, WalRecordView};
use super::{
    cache, domain_key, meta, snapshot, space, Inner, Shard, SpaceHandle, StoreConfig, Tenant,
    SNAPSHOT_STALE,
};
use crate::crypt::TenantKey;
use crate::error::{Error, Result};
use crate::io::{PreZeroer, Storage};
use crate::limits::{FREE_SPACE_CAREFUL_MARGIN, PACK_SIZE_TARGET, PACK_SIZE_TARGET_MIN};
use crate::ns::SpaceTree;
use crate::pack::ChunkStore;
use crate::SpaceKey;

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
    /// WAL records and snapshot parts of erased tenants (their key destroyed): skipped.
    pub erased_records_skipped: u64,
    /// Chunks the namespace names but the packs lack (data loss to investigate).
    pub chunks_missing: u64,
    pub io_backend: &'static str,
}
/// Recovers the store kept in `storage` into its in-memory state.
pub(super) fn recover(storage: Arc<dyn Storage>, config: StoreConfig) -> Result<Inner> {
    let started = Instant::now();
    if !(PACK_SIZE_TARGET_MIN..=PACK_SIZE_TARGET).contains(&config.pack_size_target) {
        return Err(Error::Invalid(
            "pack_size_target outside PACK_SIZE_TARGET_MIN..=PACK_SIZE_TARGET",
        ));
    }
    if config.keys.is_some() {
        if config.dedup == super::DedupMode::Global {
            return Err(Error::Invalid(
                "encryption at rest needs per-tenant dedup (each tenant its own key)",
            ));
        }
        if config.chunk_sizes.max > crate::limits::CHUNK_SIZE_MAX_LIMIT - crate::crypt::SEAL_TAG_LEN
        {
            return Err(Error::Invalid(
                "with encryption the largest chunk must leave room for the 16-byte tag",
            ));
        }
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
    // Packs first: replaying a log needs to know which chunks reached the packs.
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
    let rec = Recovery {
        storage: &storage,
        prezero: &prezero,
        chunks: &chunks,
        config: &config,
        master: &meta.master,
        shard_count: meta.shards,
        spaces: DashMap::new(),
        tenants: DashMap::new(),
    };
    let shards = rec.shards(&mut report)?;
    let Recovery {
        spaces, tenants, ..
    } = rec;
    rebuild_derived(&spaces, &tenants, &chunks, &mut report, |name| {
        new_tenant(&meta.master, &config, meta.shards, name, None)
    })?;
    report.duration = started.elapsed();
    tracing::info!(?report, "store opened");
    Ok(Inner {
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
        maintenance: Mutex::new(()),
    })
}

fn new_tenant(
    master: &[u8; 32],
    config: &StoreConfig,
    shards: usize,
    name: &str,
    quota: Option<u64>,
) -> Result<Arc<Tenant>> {
    // With encryption, recovery only meets tenants whose records or snapshot parts it has
    // opened, so their keys exist; a key made here would be one nothing was sealed with.
    let key = match &config.keys {
        Some(keys) => match keys.tenant(name)? {
            TenantKey::Live(c) => crate::chunk::DomainKey::sealed(c),
            _ => {
                return Err(Error::Key(format!(
                    "tenant {name} has no key in the key store"
                )))
            }
        },
        None => domain_key(master, config, name)?,
    };
    Ok(Arc::new(Tenant {
        quota: Mutex::new(quota),
        used: AtomicU64::new(0),
        key,
        shard: space::shard_of(&[name], shards),
    }))
}

/// What the shard recoveries share: they fill `spaces` and `tenants`.
struct Recovery<'a> {
    storage: &'a Arc<dyn Storage>,
    prezero: &'a Option<Arc<PreZeroer>>,
    chunks: &'a ChunkStore,
    config: &'a StoreConfig,
    master: &'a [u8; 32],
    shard_count: usize,
    spaces: DashMap<SpaceKey, Arc<SpaceHandle>>,
    tenants: DashMap<String, Arc<Tenant>>,
}

impl Recovery<'_> {
    fn new_tenant(&self, name: &str, quota: Option<u64>) -> Result<Arc<Tenant>> {
        new_tenant(self.master, self.config, self.shard_count, name, quota)
    }

    /// Tenant `name` created in `tenants` if missing (and its quota set when given).
    fn ensure_tenant(&self, name: &str, quota: Option<Option<u64>>) -> Result<()> {
        if let Some(t) = self.tenants.get(name) {
            if let Some(q) = quota {
                *t.quota.lock() = q;
            }
            return Ok(());
        }
        let t = self.new_tenant(name, quota.flatten())?;
        self.tenants.insert(name.to_string(), t);
        Ok(())
    }

    /// The key that opens tenant `tenant`'s sealed records: `None` when the tenant was erased
    /// (its records are skipped); an error without encryption or without its key.
    fn opener(&self, tenant: &str, what: &str) -> Result<Option<Arc<crate::crypt::TenantCipher>>> {
        let Some(keys) = &self.config.keys else {
            return Err(Error::Key(format!(
                "{what} is encrypted but encryption is off (crypto.enabled): refusing to open"
            )));
        };
        match keys.tenant(tenant)? {
            TenantKey::Live(c) => Ok(Some(c)),
            TenantKey::Erased => Ok(None),
            TenantKey::Missing => Err(Error::Key(format!(
                "{what}: the key store {} has no key for tenant {tenant} (another key store?)",
                keys.dir().display()
            ))),
        }
    }

    fn plain_refused(&self, what: &str) -> Result<()> {
        if self.config.keys.is_some() {
            return Err(Error::Key(format!(
                "{what} is not encrypted but encryption is on: a data dir written without \
                 encryption cannot be opened with it (docs/security.md, \"Turning it on\")"
            )));
        }
        Ok(())
    }

    /// Loads one snapshot archive's tenants and spaces (only `only`'s, for a sealed part).
    fn load_archive(
        &self,
        shard: usize,
        snap: &snapshot::ArchivedShardSnapshot,
        only: Option<&str>,
        shard_spaces: &mut Vec<Arc<SpaceHandle>>,
    ) -> Result<()> {
        let foreign = || Error::Corrupt("a sealed snapshot part names another tenant".into());
        for t in snap.tenants.iter() {
            if only.is_some_and(|o| o != t.name.as_str()) {
                return Err(foreign());
            }
            let quota = t.quota.as_ref().map(|q| q.to_native());
            self.tenants
                .insert(t.name.to_string(), self.new_tenant(t.name.as_str(), quota)?);
        }
        for s in snap.spaces.iter() {
            if only.is_some_and(|o| o != s.tenant.as_str()) {
                return Err(foreign());
            }
            let key = SpaceKey::new(s.tenant.as_str(), s.user.as_str())
                .map_err(|_| Error::Corrupt("snapshot names an invalid space".into()))?;
            let tree = SpaceTree::from_archived(&s.tree)?;
            let handle = Arc::new(SpaceHandle {
                key: key.clone(),
                shard,
                tree: RwLock::new(tree),
            });
            shard_spaces.push(handle.clone());
            self.spaces.insert(key, handle);
        }
        Ok(())
    }

    /// Recovers every shard. Shards are independent: they are recovered on all cores.
    fn shards(&self, report: &mut RecoveryReport) -> Result<Vec<Shard>> {
        let next_shard = AtomicU64::new(0);
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(self.shard_count);
        let recovered: Vec<Result<Vec<(usize, Shard, RecoveryReport)>>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..workers)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut mine = Vec::new();
                            loop {
                                let shard = next_shard.fetch_add(1, Ordering::Relaxed) as usize;
                                if shard >= self.shard_count {
                                    return Ok(mine);
                                }
                                let (s, rep) = self.shard(shard)?;
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
        let mut all = Vec::with_capacity(self.shard_count);
        for r in recovered {
            all.extend(r?);
        }
        all.sort_by_key(|(n, _, _)| *n);
        let mut shards = Vec::with_capacity(self.shard_count);
        for (n, shard, rep) in all {
            debug_assert_eq!(n, shards.len());
            report.wal_torn_bytes += rep.wal_torn_bytes;
            report.wal_records_replayed += rep.wal_records_replayed;
            report.wal_records_rejected += rep.wal_records_rejected;
            report.wal_records_uncommitted += rep.wal_records_uncommitted;
            report.erased_records_skipped += rep.erased_records_skipped;
            shards.push(shard);
        }
        Ok(shards)
    }

    /// Recovers shard `shard`: its snapshot, then the records of its log after it.
    fn shard(&self, shard: usize) -> Result<(Shard, RecoveryReport)> {
        let mut rep = RecoveryReport::default();
        let mut first_segment = 0;
        let mut min_next_seq = 0;
        let mut shard_spaces = Vec::new();
        let mut have_snapshot = false;
        let snap_name = snapshot::snapshot_name(shard);
        match snapshot::read_any(self.storage.as_ref(), shard)? {
            None => {}
            Some(snapshot::Loaded::Plain(buf)) => {
                self.plain_refused(&snap_name)?;
                have_snapshot = true;
                let snap = snapshot::access(&buf)?;
                first_segment = snap.next_segment.to_native();
                min_next_seq = snap.next_seq.to_native();
                self.load_archive(shard, snap, None, &mut shard_spaces)?;
            }
            Some(snapshot::Loaded::Sealed(sealed)) => {
                have_snapshot = true;
                first_segment = sealed.next_segment;
                min_next_seq = sealed.next_seq;
                for part in &sealed.parts {
                    let Some(cipher) = self.opener(&part.tenant, &snap_name)? else {
                        rep.erased_records_skipped += 1;
                        continue;
                    };
                    let plain = cipher
                        .open_meta(&snapshot::part_context(&part.tenant), &part.sealed)
                        .map_err(|e| {
                            Error::Corrupt(format!("{snap_name}: part of {}: {e}", part.tenant))
                        })?;
                    let buf = snapshot::aligned(&plain);
                    let snap = snapshot::access(&buf)?;
                    self.load_archive(shard, snap, Some(&part.tenant), &mut shard_spaces)?;
                }
            }
        }
        let dir = format!("wal/{shard:03}");
        let (log, replay) = crate::wal::ShardLog::open(
            self.storage.clone(),
            &dir,
            first_segment,
            min_next_seq,
            self.prezero.clone(),
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
        // Records skipped because their chunks are gone, and records that then did not apply.
        let (mut skipped_here, mut rejected_here) = (0u64, 0u64);
        for (seq, payload) in replay.records {
            rep.wal_records_replayed += 1;
            let opened;
            let (plain, sealed_by) = match record::classify(&payload) {
                Ok(record::Logged::Plain(p)) => {
                    self.plain_refused(&format!("{dir}: record {seq}"))?;
                    (p, None)
                }
                Ok(record::Logged::Sealed { tenant, sealed }) => {
                    let Some(cipher) = self.opener(tenant, &format!("{dir}: record {seq}"))? else {
                        rep.erased_records_skipped += 1;
                        continue;
                    };
                    opened = record::open(&cipher, tenant, sealed)
                        .map_err(|why| Error::Corrupt(format!("{dir}: record {seq}: {why}")))?;
                    (&opened[..], Some(tenant))
                }
                Err(why) => return Err(Error::Corrupt(format!("{dir}: record {seq}: {why}"))),
            };
            let rec = match record::decode_view(plain) {
                Ok(r) => r,
                Err(why) => {
                    return Err(Error::Corrupt(format!("{dir}: record {seq}: {why}")));
                }
            };
            let owner = match &rec {
                WalRecordView::Tenant { tenant, .. }
                | WalRecordView::CreateSpace { tenant, .. }
                | WalRecordView::Space { tenant, .. } => *tenant,
            };
            if sealed_by.is_some_and(|t| t != owner) {
                return Err(Error::Corrupt(format!(
                    "{dir}: record {seq}: sealed by one tenant, naming another"
                )));
            }
            match rec {
                WalRecordView::Tenant { tenant, quota } => {
                    self.ensure_tenant(tenant, Some(quota))?;
                }
                WalRecordView::CreateSpace { tenant, user } => {
                    let Ok(key) = SpaceKey::new(tenant, user) else {
                        rep.wal_records_rejected += 1;
                        continue;
                    };
                    if !self.spaces.contains_key(&key) {
                        let handle = Arc::new(SpaceHandle {
                            key: key.clone(),
                            shard,
                            tree: RwLock::new(SpaceTree::new()),
                        });
                        shard_spaces.push(handle.clone());
                        self.spaces.insert(key, handle);
                    }
                    self.ensure_tenant(tenant, None)?;
                }
                WalRecordView::Space { tenant, user, op } => {
                    // A file whose chunks never reached the packs was never
                    // acknowledged (acks wait for both); it did not happen.
                    if let Some(content) = op.put_content() {
                        if content.chunks.iter().any(|c| !self.chunks.contains(&c.id)) {
                            rep.wal_records_uncommitted += 1;
                            skipped_here += 1;
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
                            .and_then(|k| self.spaces.get(&k).map(|h| h.clone()))
                    });
                    last_space = handle.clone();
                    let applied = handle.map(|h| h.tree.write().apply(&op));
                    if !matches!(applied, Some(Ok(_))) {
                        // After a skipped record (its data removed by a GC of the deleted
                        // file since), the records that changed the same file fail too: one
                        // summary line below instead of one line each.
                        if skipped_here == 0 {
                            tracing::error!(%dir, seq, ?applied, "WAL record did not replay");
                        } else {
                            tracing::debug!(%dir, seq, ?applied, "WAL record did not replay");
                        }
                        rejected_here += 1;
                        rep.wal_records_rejected += 1;
                    }
                }
            }
        }

        if skipped_here > 0 && rejected_here > 0 {
            tracing::warn!(
                %dir,
                skipped = skipped_here,
                not_applied = rejected_here,
                "WAL records of files whose data is gone were skipped, and the records that \
                 changed those files did not apply (expected when a GC removed deleted files' \
                 data after the last checkpoint)"
            );
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
    }
}

/// Reference counts and usage are derived state: rebuilds them from the namespace.
fn rebuild_derived(
    spaces: &DashMap<SpaceKey, Arc<SpaceHandle>>,
    tenants: &DashMap<String, Arc<Tenant>>,
    chunks: &ChunkStore,
    report: &mut RecoveryReport,
    new_tenant: impl Fn(&str) -> Result<Arc<Tenant>>,
) -> Result<()> {
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
        let tenant = match tenants.get(entry.key.tenant()) {
            Some(t) => t.clone(),
            None => {
                let t = new_tenant(entry.key.tenant())?;
                tenants.insert(entry.key.tenant().to_string(), t.clone());
                t
            }
        };
        tenant.used.fetch_add(tree.used_bytes(), Ordering::Relaxed);
    }
    if report.chunks_missing > 0 {
        tracing::error!(
            missing = report.chunks_missing,
            "files name chunks the packs lack"
        );
    }
    Ok(())
}
