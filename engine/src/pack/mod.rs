//! Pack storage: chunks appended to pack files with group commit, located through the chunk index.

pub(crate) mod checkpoint;
pub(crate) mod format;
pub(crate) mod store;
pub(crate) mod writer;

pub(crate) use store::ChunkStore;
pub use store::{ChunkScrubReport, CompactReport, GcReport};
pub(crate) use writer::Pos;
