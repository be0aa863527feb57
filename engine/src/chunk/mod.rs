//! Content-defined chunking and keyed chunk hashing.

mod cdc;
mod hash;
mod ingest;

pub use cdc::{cut_points, ChunkSizes, StreamChunker};
pub use hash::{ContentHasher, DomainKey};
pub use ingest::{ChunkIds, Ingest};
