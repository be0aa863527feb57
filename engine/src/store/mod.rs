//! The public face of the engine: [`Store`] ties chunking, packs, the sharded namespace and
//! the write-ahead logs together behind a narrow async API.
//!
//! This module holds the store's shared state; the API is split by step: [`open`] and
//! [`recover`] (opening), [`tenants`] (tenants and spaces), [`write`] (mutations and their
//! commit path), [`read`] (lookups and ranged reads), [`maintain`] (gc, compaction, expiry,
//! scrub, checkpoints), [`backup`] (online copies), [`view`] (a tenant at one instant, for exports), with the configuration in [`config`].

mod assemble;
mod backup;
mod cache;
mod changes;
mod config;
mod history;
mod maintain;
pub(crate) mod meta;
mod open;
mod read;
mod reader;
pub(crate) mod record;
mod recover;
pub(crate) mod snapshot;
mod space;
mod tenants;
mod view;
mod write;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};

use crate::chunk::DomainKey;
use crate::error::{Error, Result};
use crate::io::Storage;
use crate::ns::SpaceTree;
use crate::pack::ChunkStore;

pub use crate::commit::{FlushTimes, FLUSH_TIME_BUCKETS_US};
pub use crate::pack::{CompactReport, GcReport};
pub use backup::BackupReport;
pub use config::{DedupMode, StoreConfig, SHARDS_MAX};
pub use maintain::{ScrubReport, StoreStats};
pub use read::ContentStream;
pub use recover::RecoveryReport;
pub use space::{validate_account_name, SpaceKey, ACCOUNT_NAME_LEN_MAX};
pub use tenants::{EraseReport, Usage};
pub use view::{SpaceView, TenantView, ViewEntry, ViewTrash};

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
    /// Held by whatever removes or replaces files (checkpoints with their WAL and zero-tail
    /// cuts, gc, pack compaction) and by a backup, which must see none of that while it copies.
    maintenance: Mutex<()>,
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
impl Store {
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
}

/// The chunk domain of `tenant`: with encryption its own sealed domain (its key created if it
/// has none), else derived from the store's secret by the dedup mode.
fn domain_key(master: &[u8; 32], config: &StoreConfig, tenant: &str) -> Result<DomainKey> {
    if let Some(keys) = &config.keys {
        return Ok(DomainKey::sealed(keys.tenant_or_create(tenant)?));
    }
    Ok(match config.dedup {
        DedupMode::PerTenant => DomainKey::derive(master, &format!("tenant:{tenant}")),
        DedupMode::Global => DomainKey::derive(master, "global"),
    })
}
