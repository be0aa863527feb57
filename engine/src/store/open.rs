//! Opening a store: the directory lock, the storage backend, then [`recover`](super::recover).

use std::path::Path as FsPath;
use std::sync::Arc;

use super::{recover, Store, StoreConfig};
use crate::error::{Error, Result};
use crate::io::{open_storage, Storage};

impl Store {
    /// Opens (creating if needed) the store in directory `dir`.
    /// Only one process may hold a store: a second `open` fails with
    /// [`Error::Busy`] while the first holds its lock file.
    pub fn open(dir: &FsPath, config: StoreConfig) -> Result<Store> {
        Store::open_wrapped(dir, config, Ok)
    }

    /// As [`Store::open`], with the directory's storage backend passed through `wrap` (under
    /// the directory lock) before recovery: the object-storage mirror
    /// ([`crate::io::ObjectStorage`]) plugs in here.
    pub fn open_wrapped(
        dir: &FsPath,
        config: StoreConfig,
        wrap: impl FnOnce(Arc<dyn Storage>) -> std::io::Result<Arc<dyn Storage>>,
    ) -> Result<Store> {
        std::fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        let storage = wrap(open_storage(dir, config.io)?)?;
        let store = Store::open_with_storage(storage, config)?;
        *store.inner.dir_lock.lock() = Some(lock);
        Ok(store)
    }

    /// Opens the store kept in `storage` (any backend: tests use in-memory and faulty ones).
    pub fn open_with_storage(storage: Arc<dyn Storage>, config: StoreConfig) -> Result<Store> {
        let inner = recover::recover(storage, config)?;
        Ok(Store {
            inner: Arc::new(inner),
        })
    }
}

/// Takes the exclusive lock of a store directory (`LOCK`, flock), without waiting.
fn lock_dir(dir: &FsPath) -> Result<std::fs::File> {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Busy);
    }
    Ok(file)
}
