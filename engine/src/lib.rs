//! Skab's storage engine: a content-addressed, chunk-deduplicated file store with a
//! sharded, crash-safe metadata index. It knows nothing of HTTP.
//!
//! See `docs/architecture.md` for the design and `docs/formats.md` for the on-disk formats.

pub mod chunk;
mod commit;
pub mod crypt;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod io;
pub mod layout;
pub mod limits;
mod mark;
pub mod ns;
mod pack;
mod store;
mod wal;

pub use error::{Error, Result};
pub use ids::{ChunkId, ContentHash, NodeId, PackId};
pub use store::{
    validate_account_name, BackupReport, CompactReport, ContentStream, DedupMode, EraseReport,
    FlushTimes, GcReport, RecoveryReport, ScrubReport, SpaceKey, SpaceView, Store, StoreConfig,
    StoreStats, TenantView, Usage, ViewEntry, ViewTrash, ACCOUNT_NAME_LEN_MAX,
    FLUSH_TIME_BUCKETS_US,
};
