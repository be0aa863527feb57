//! `NsOp`: one logged change to a space, addressed by path and carrying every input.

use super::{Content, Name};

/// A path from the space's root; the root itself is the empty path.
pub type Path = Vec<Name>;

/// A WebDAV dead property's name: namespace URI and local name.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PropName {
    pub ns: Box<str>,
    pub local: Box<str>,
}

impl PropName {
    pub fn new(ns: &str, local: &str) -> PropName {
        PropName {
            ns: ns.into(),
            local: local.into(),
        }
    }
}

/// One change to one space: the write-ahead log's payload. Replaying the same ops on the
/// same state always gives the same state (times and policies travel inside the op).
/// Semantics and error order of each op: `docs/namespace.md`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NsOp {
    /// Create an empty collection.
    Mkdir { path: Path, now: i64 },
    /// Create or overwrite a file; an overwrite keeps the old content as a version
    /// (at most `keep_versions` versions are kept, oldest dropped first).
    PutFile {
        path: Path,
        content: Content,
        now: i64,
        keep_versions: u32,
    },
    /// Rename/move an entry or subtree; with `overwrite` an existing destination goes to
    /// the trash first.
    Move {
        from: Path,
        to: Path,
        overwrite: bool,
        now: i64,
    },
    /// Deep-copy an entry or subtree (contents are shared, never copied).
    Copy {
        from: Path,
        to: Path,
        overwrite: bool,
        now: i64,
    },
    /// Move an entry or subtree into the trash.
    Delete { path: Path, now: i64 },
    /// Bring a trash item back to its original path, or to `to`.
    Restore {
        trash_id: u64,
        to: Option<Path>,
        now: i64,
    },
    /// Drop a trash item for good.
    PurgeTrash { trash_id: u64 },
    /// Make an old version current again (the current content becomes a version).
    RestoreVersion {
        path: Path,
        version_id: u64,
        now: i64,
    },
    /// Drop versions superseded and trash items deleted more than the given age before
    /// `now` (nanoseconds; `None` keeps them forever).
    Expire {
        now: i64,
        version_age_max_ns: Option<i64>,
        trash_age_max_ns: Option<i64>,
    },
    /// [`NsOp::SetProps`] as logged before changes propagated upwards, without a time
    /// (kept so that older logs replay; never written now).
    SetPropsUntimed {
        path: Path,
        set: Vec<(PropName, Vec<u8>)>,
        remove: Vec<PropName>,
    },
    /// Set the space's quota in logical bytes of live files (`None` = unlimited).
    SetQuota { bytes: Option<u64> },
    /// Set and remove dead properties, all or nothing. Values are raw XML bytes. The
    /// directories above the entry take `now` as their mtime (a change below them).
    SetProps {
        path: Path,
        set: Vec<(PropName, Vec<u8>)>,
        remove: Vec<PropName>,
        now: i64,
    },
    /// [`NsOp::PutFile`] with the file's own modification time given by the client
    /// (`mtime`, e.g. a sync client's `X-OC-Mtime`); `now` still dates the change for the
    /// directories above and for versions.
    PutFileAt {
        path: Path,
        content: Content,
        now: i64,
        mtime: i64,
        keep_versions: u32,
    },
}

impl NsOp {
    /// The content a put op makes current, if it is one.
    pub fn put_content(&self) -> Option<&Content> {
        match self {
            NsOp::PutFile { content, .. } | NsOp::PutFileAt { content, .. } => Some(content),
            _ => None,
        }
    }
}
