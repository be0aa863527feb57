//! Pack storage: chunks appended to pack files with group commit, located through the chunk index
//! (`index`), recovered on open (`recover`).

pub(crate) mod checkpoint;
pub(crate) mod format;
pub(crate) mod index;
pub(crate) mod recover;
pub(crate) mod writer;

pub(crate) use index::ChunkStore;
pub use index::{ChunkScrubReport, CompactReport, GcReport};
pub(crate) use writer::Pos;
