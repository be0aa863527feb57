//! The user database's files (the log, the token key, a compaction's new log) written and
//! read through the engine's `Storage` trait, so that its crash and fault-injection backends
//! reach them; and the `flock` that orders writers of several processes.

use super::log::{self, Entry, Op};
use super::UserDbError;
use skab_engine::io::{durable, Storage, StorageFile};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) const LOG_FILE: &str = "users.log";
/// Where a compaction writes the new log before renaming it over [`LOG_FILE`].
pub(crate) const COMPACT_FILE: &str = "users.log.compact";
const LOCK_FILE: &str = "users.lock";
pub(crate) const KEY_FILE: &str = "token.key";
/// Bytes of the token key.
const KEY_LEN: usize = 32;

/// The files of one user database.
pub(crate) struct Files {
    storage: Arc<dyn Storage>,
    /// Shown in errors (the directory on disk, or a name for an in-memory storage).
    dir: PathBuf,
    /// Directory of the lock file; `None` for a storage only this process uses.
    lock_dir: Option<PathBuf>,
}

/// The open log and which log it is.
pub(crate) struct LogHandle {
    pub file: Arc<dyn StorageFile>,
    /// The `LogBase` of a compacted log (0 for one never compacted): each compaction
    /// numbers past the end of the log it replaces, so a replaced log has another one.
    pub generation: u64,
}

/// A held `flock` on the lock file (released when dropped), or nothing to hold.
pub(crate) struct FileLock(#[allow(dead_code)] Option<File>);

fn io_err(path: PathBuf) -> impl FnOnce(std::io::Error) -> UserDbError {
    move |source| UserDbError::Io { path, source }
}

impl Files {
    /// The files under `dir` on disk (created, readable by the owner alone: the token key
    /// and the password hashes are secrets), shared with other processes through the lock.
    pub fn on_disk(dir: &Path) -> Result<Files, UserDbError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir.to_path_buf()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(dir.to_path_buf()))?;
        // Local files, or mirrored into object storage (`crate::own_files`).
        let storage = crate::own_files::storage_at(dir).map_err(io_err(dir.to_path_buf()))?;
        Ok(Files {
            storage,
            dir: dir.to_path_buf(),
            lock_dir: Some(dir.to_path_buf()),
        })
    }

    /// The files on `storage`, which no other process uses (tests with crash and fault
    /// injection).
    pub fn on(storage: Arc<dyn Storage>) -> Files {
        Files {
            dir: PathBuf::from(format!("<{} storage>", storage.kind())),
            storage,
            lock_dir: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn err(&self, name: &str) -> impl FnOnce(std::io::Error) -> UserDbError {
        io_err(self.dir.join(name))
    }

    /// Takes the lock shared or exclusive; `Ok(None)` when `wait` is off and another
    /// process holds it.
    pub fn lock(&self, exclusive: bool, wait: bool) -> Result<Option<FileLock>, UserDbError> {
        let Some(dir) = &self.lock_dir else {
            return Ok(Some(FileLock(None)));
        };
        let path = dir.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(path.clone()))?;
        let mut op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        if !wait {
            op |= libc::LOCK_NB;
        }
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is passed.
            let rc = unsafe { libc::flock(f.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(Some(FileLock(Some(f))));
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(io_err(path)(e)),
            }
        }
    }

    fn exists(&self, name: &str) -> Result<bool, UserDbError> {
        Ok(self
            .storage
            .list(name)
            .map_err(self.err(name))?
            .iter()
            .any(|n| n == name))
    }

    /// Creates the token key and an empty log where missing (each atomically and durably),
    /// under the exclusive lock.
    pub fn init(&self) -> Result<(), UserDbError> {
        if self.exists(KEY_FILE)? && self.exists(LOG_FILE)? {
            return Ok(());
        }
        let _lock = self.lock(true, true)?;
        if !self.exists(KEY_FILE)? {
            let mut key = [0u8; KEY_LEN];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            durable::replace_file(&*self.storage, KEY_FILE, &key).map_err(self.err(KEY_FILE))?;
        }
        if !self.exists(LOG_FILE)? {
            durable::replace_file(&*self.storage, LOG_FILE, log::MAGIC)
                .map_err(self.err(LOG_FILE))?;
        }
        Ok(())
    }

    /// The server secret that app tokens are hashed with.
    pub fn token_key(&self) -> Result<[u8; KEY_LEN], UserDbError> {
        let bytes = durable::read_file(&*self.storage, KEY_FILE, KEY_LEN as u64 + 1)
            .map_err(self.err(KEY_FILE))?
            .unwrap_or_default();
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| UserDbError::Corrupt {
                path: self.dir.join(KEY_FILE),
                why: format!("expected {KEY_LEN} bytes, found {}", bytes.len()),
            })
    }

    /// Opens the log now at its name and checks its magic.
    pub fn open_log(&self) -> Result<LogHandle, UserDbError> {
        let file = self
            .storage
            .open(LOG_FILE, false)
            .map_err(self.err(LOG_FILE))?;
        let len = file.len().map_err(self.err(LOG_FILE))?;
        let head_len = len.min((log::MAGIC.len() + log::FRAME_HEADER + 64) as u64) as usize;
        let mut head = vec![0u8; head_len];
        file.read_exact_at(&mut head, 0)
            .map_err(self.err(LOG_FILE))?;
        if head.get(..log::MAGIC.len()) != Some(&log::MAGIC[..]) {
            return Err(UserDbError::Corrupt {
                path: self.dir.join(LOG_FILE),
                why: "not a skab user log (bad magic)".into(),
            });
        }
        let generation = match log::first_entry(&head[log::MAGIC.len()..]) {
            Some(Entry::Op(Op::LogBase { base })) => base,
            _ => 0,
        };
        Ok(LogHandle { file, generation })
    }

    /// Bytes `from..to` of the log.
    pub fn read(&self, log: &LogHandle, from: u64, to: u64) -> Result<Vec<u8>, UserDbError> {
        let len = usize::try_from(to.saturating_sub(from))
            .map_err(|_| UserDbError::Other("user log too large to read".into()))?;
        let mut buf = vec![0u8; len];
        log.file
            .read_exact_at(&mut buf, from)
            .map_err(self.err(LOG_FILE))?;
        Ok(buf)
    }

    pub fn len(&self, log: &LogHandle) -> Result<u64, UserDbError> {
        log.file.len().map_err(self.err(LOG_FILE))
    }

    /// Writes `bytes` at `offset`; with `sync`, makes the log's data durable before returning.
    pub fn write(
        &self,
        log: &LogHandle,
        offset: u64,
        bytes: &[u8],
        sync: bool,
    ) -> Result<(), UserDbError> {
        log.file
            .write_batch(&[(offset, bytes)], sync)
            .map_err(self.err(LOG_FILE))
    }

    /// Keeps `torn` (an unfinished transaction) aside as its own file, then cuts the log
    /// to `len` durably.
    pub fn cut_torn_tail(&self, log: &LogHandle, len: u64, torn: &[u8]) -> Result<(), UserDbError> {
        let aside = format!("{LOG_FILE}.torn-{len}");
        durable::replace_file(&*self.storage, &aside, torn).map_err(self.err(&aside))?;
        log.file.truncate(len).map_err(self.err(LOG_FILE))?;
        log.file.sync_data().map_err(self.err(LOG_FILE))
    }

    /// Copies the token key and the log into the directory `dest` (each through a temp file,
    /// synced, renamed, the directory synced) under the shared lock, so no writer appends or
    /// compacts meanwhile. Returns the bytes copied.
    pub fn copy_to(&self, dest: &Path) -> Result<u64, UserDbError> {
        let _lock = self.lock(false, true)?;
        std::fs::create_dir_all(dest).map_err(io_err(dest.to_path_buf()))?;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(dest.to_path_buf()))?;
        let mut bytes = 0;
        for name in [KEY_FILE, LOG_FILE] {
            let file = self.storage.open(name, false).map_err(self.err(name))?;
            let len = file.len().map_err(self.err(name))?;
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, 0).map_err(self.err(name))?;
            let tmp = dest.join(format!("{name}.tmp"));
            let mut out = std::fs::File::create(&tmp).map_err(io_err(tmp.clone()))?;
            std::io::Write::write_all(&mut out, &buf).map_err(io_err(tmp.clone()))?;
            out.sync_all().map_err(io_err(tmp.clone()))?;
            std::fs::rename(&tmp, dest.join(name)).map_err(io_err(dest.join(name)))?;
            bytes += len;
        }
        File::open(dest)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dest.to_path_buf()))?;
        Ok(bytes)
    }

    /// Starts writing a compacted log under [`COMPACT_FILE`].
    pub fn compact_writer(&self) -> Result<CompactWriter<'_>, UserDbError> {
        let file = self
            .storage
            .open(COMPACT_FILE, true)
            .map_err(self.err(COMPACT_FILE))?;
        file.truncate(0).map_err(self.err(COMPACT_FILE))?;
        Ok(CompactWriter {
            files: self,
            file,
            written: 0,
        })
    }
}

/// A compacted log being written; [`CompactWriter::install`] puts it in place.
pub(crate) struct CompactWriter<'a> {
    files: &'a Files,
    file: Arc<dyn StorageFile>,
    written: u64,
}

impl CompactWriter<'_> {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), UserDbError> {
        self.file
            .write_batch(&[(self.written, bytes)], false)
            .map_err(self.files.err(COMPACT_FILE))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Makes the new log durable and renames it over the old one, durably; returns it open.
    pub fn install(self) -> Result<LogHandle, UserDbError> {
        let f = self.files;
        self.file.sync_data().map_err(f.err(COMPACT_FILE))?;
        drop(self.file);
        f.storage
            .rename(COMPACT_FILE, LOG_FILE)
            .map_err(f.err(LOG_FILE))?;
        f.storage.sync_dir("").map_err(f.err(LOG_FILE))?;
        f.open_log()
    }
}
