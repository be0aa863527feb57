//! The one narrow storage I/O trait every byte of the engine goes through.
//!
//! Files are named by flat relative names with `/` separators (`packs/00000001.pack`,
//! `wal/07/00000003.wal`). Packs are written append-only and become immutable once sealed,
//! and logs are append-only with tail truncation on recovery, so an object-store
//! implementation (S3/Garage) can later map a sealed file to one object.

use std::io;
use std::sync::Arc;

/// A storage backend: a flat namespace of files under one root.
pub trait Storage: Send + Sync + 'static {
    /// Opens `name`; creates it (and missing parent directories) when `create` is set.
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Removes `name`. Missing files are an error of kind `NotFound`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to`; durable once `sync_dir` of its directory returns.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Names of all files whose name starts with `prefix`, sorted.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;
    /// Makes creations, renames and removals inside directory `dir` durable ("" is the root).
    fn sync_dir(&self, dir: &str) -> io::Result<()>;
    /// A short name of the backend for logs and metrics (`"std"`, `"io_uring"`, `"memory"`).
    fn kind(&self) -> &'static str;
}

/// An open file of a [`Storage`].
pub trait StorageFile: Send + Sync {
    /// Fills `buf` from `offset`; a short file is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes every buffer at its offset, in order; when `sync` is set, then makes
    /// the file's data durable (fdatasync) before returning. One call is one batch.
    fn write_batch(&self, writes: &[(u64, &[u8])], sync: bool) -> io::Result<()>;
    /// Makes written data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Cuts the file to `len` bytes (used to drop a torn tail on recovery).
    fn truncate(&self, len: u64) -> io::Result<()>;
}
