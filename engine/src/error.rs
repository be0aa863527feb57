//! The engine's error type: specific kinds inside, predicates for callers at the edge.

use std::io;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("parent collection does not exist")]
    ParentMissing,
    #[error("not a collection")]
    NotADirectory,
    #[error("is a collection")]
    IsADirectory,
    #[error("collection is not empty")]
    NotEmpty,
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    #[error("invalid operation: {0}")]
    Invalid(&'static str),
    #[error("quota exceeded")]
    QuotaExceeded,
    #[error("out of storage space")]
    NoSpace,
    #[error("limit exceeded: {0}")]
    LimitExceeded(&'static str),
    #[error("integrity error: {0}")]
    Integrity(String),
    #[error("corrupt on-disk data: {0}")]
    Corrupt(String),
    #[error("upload aborted: {0}")]
    Aborted(String),
    #[error("the store is in use by another process")]
    Busy,
    #[error("the store is failed after an earlier durability error; restart to recover")]
    Poisoned,
    /// A key store problem: wrong or missing master key, a missing or erased tenant key.
    #[error("encryption key: {0}")]
    Key(String),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound)
    }
    pub fn is_quota(&self) -> bool {
        matches!(self, Error::QuotaExceeded)
    }
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::NoSpace)
            || matches!(self, Error::Io(e) if crate::io::is_out_of_space(e))
    }
    pub fn is_key(&self) -> bool {
        matches!(self, Error::Key(_))
    }
    pub fn is_integrity(&self) -> bool {
        matches!(self, Error::Integrity(_) | Error::Corrupt(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
