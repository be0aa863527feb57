//! The sizes, magics and limits of the on-disk formats, as `docs/formats.md` states them
//! (`engine/tests/formats_doc.rs` checks the document against these). Read-only facts for
//! tests and tools; the formats' code keeps its own private definitions, re-exported here.

use crate::{limits, pack, store, wal};

/// Bytes of `store.meta`.
pub const STORE_META_LEN: usize = store::meta::LEN;
pub const STORE_META_MAGIC: &[u8; 8] = store::meta::MAGIC;
pub const STORE_META_FORMAT_VERSION: u32 = store::meta::FORMAT_VERSION;

/// Bytes of a WAL segment header.
pub const WAL_SEGMENT_HEADER_LEN: usize = wal::frame::SEGMENT_HEADER_LEN;
pub const WAL_SEGMENT_MAGIC: &[u8; 8] = wal::frame::SEGMENT_MAGIC;
/// Bytes of a WAL record header (length, CRC, sequence number).
pub const WAL_RECORD_HEADER_LEN: usize = wal::frame::RECORD_HEADER_LEN;
/// Most payload bytes of one WAL record.
pub const WAL_RECORD_LEN_MAX: usize = limits::WAL_RECORD_LEN_MAX;
/// Most zero bytes kept ahead of a WAL segment's last record.
pub const WAL_ZERO_TAIL_MAX: u64 = limits::WAL_PREZERO_STEP + limits::WAL_PREZERO_LOW_WATER;

/// Bytes of a snapshot header.
pub const SNAPSHOT_HEADER_LEN: usize = store::snapshot::HEADER_LEN;
pub const SNAPSHOT_MAGIC: &[u8; 8] = store::snapshot::MAGIC;

/// Bytes of a pack header.
pub const PACK_HEADER_LEN: u64 = pack::format::PACK_HEADER_LEN;
pub const PACK_MAGIC: &[u8; 8] = pack::format::PACK_MAGIC;
/// Bytes of a pack record header.
pub const PACK_RECORD_HEADER_LEN: u64 = pack::format::RECORD_HEADER_LEN;
pub const PACK_RECORD_MAGIC: &[u8; 4] = pack::format::RECORD_MAGIC;
/// Most data bytes of one pack record (one chunk).
pub const PACK_RECORD_DATA_MAX: usize = limits::CHUNK_SIZE_MAX_LIMIT;
/// A pack is sealed once it would pass this many bytes (the default target).
pub const PACK_SIZE_TARGET: u64 = limits::PACK_SIZE_TARGET;
/// Most zero bytes kept ahead of the current pack's last record.
pub const PACK_ZERO_TAIL_MAX: u64 = limits::PACK_PREZERO_STEP + limits::PACK_PREZERO_LOW_WATER;
/// Direct appends end every write on this boundary.
pub const DIRECT_IO_ALIGN: usize = limits::DIRECT_IO_ALIGN;

/// Bytes of the chunk index checkpoint's header (magic, covered position, entry count).
pub const CHECKPOINT_HEADER_LEN: usize = pack::checkpoint::HEADER_LEN;
/// Bytes of one checkpoint entry.
pub const CHECKPOINT_ENTRY_LEN: usize = pack::checkpoint::ENTRY_LEN;
pub const CHECKPOINT_MAGIC: &[u8; 8] = pack::checkpoint::MAGIC;
