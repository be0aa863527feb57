//! How a store behaves: [`StoreConfig`], its defaults and the dedup domain choice.

use std::time::Duration;

use crate::chunk::ChunkSizes;
use crate::io::IoChoice;
use crate::limits::{CHUNK_CACHE_BYTES_DEFAULT, FREE_SPACE_RESERVE_DEFAULT, PACK_SIZE_TARGET};

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
    /// per WAL shard. Default off: end to end it made uploads slower (docs/configuration.md,
    /// `storage.prezero`, and the measurements it cites).
    pub prezero: bool,
    /// Append pack data with direct I/O (`O_DIRECT`) where the file system allows, when
    /// `prezero` is off: chunk bytes go to the device from the batch buffer, without a copy
    /// into the page cache and its writeback (docs/architecture.md, "Direct pack appends").
    /// Default off: then what was just uploaded stays in the page cache and reads back from
    /// memory, which direct appends forgo for an upload gain of some 8-10 % on the bench VM
    /// (docs/benchmarks.md, "Reads of fresh data").
    pub direct_io: bool,
    /// Encryption at rest: the key store of the tenants' keys (`None`: off). Chunks, WAL
    /// records and snapshots are sealed per tenant (docs/security.md). Fixed for a store's
    /// life: a store written without it is refused with it, and the other way round.
    pub keys: Option<std::sync::Arc<crate::crypt::KeyStore>>,
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
            prezero: false,
            direct_io: false,
            keys: None,
        }
    }
}
