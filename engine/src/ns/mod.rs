//! The per-space namespace tree: nodes, names, contents, versions, trash and snapshots.
//!
//! Design, complexity and formats: `docs/namespace.md`.

mod changes;
mod content;
mod name;
mod op;
mod snapshot;
mod tree;

pub use changes::{Change, Changes, SyncToken};
pub use content::{ChunkRef, ChunkSpan, Content};
pub use name::{parse_path, Name};
pub use op::{NsOp, Path, PropName};
pub use snapshot::{
    decode_snapshot, decode_snapshot_with, encode_snapshot, ArchivedSpaceSnapshot, ArchivedSpaces,
    SnapChange, SnapChanges, SnapChunk, SnapContent, SnapNode, SnapProp, SnapTrash, SnapVersion,
    SpaceSnapshot, SpaceSnapshotV1, CHANGE_DIR, CHANGE_REMOVED, CHANGE_SUBTREE,
};
pub use tree::Interner;
pub use tree::{Effects, EntryInfo, Etag, Kind, Prop, SpaceTree, TrashInfo, VersionInfo};
