//! The one narrow storage I/O trait every byte of the engine goes through.
//!
//! Files are named by flat relative names with `/` separators (`packs/00000001.pack`,
//! `wal/07/00000003.wal`). Packs are written append-only and become immutable once sealed,
//! and logs are append-only with tail truncation on recovery, so an object-store
//! implementation (S3/Garage) can later map a sealed file to one object.
//!
//! Backends: [`StdStorage`] (portable, std::fs), `UringStorage` (Linux io_uring),
//! [`MemStorage`] (in memory, simulates power loss), [`FaultyStorage`] (fault
//! injection wrapper) and [`ObjectStorage`] (a local backend mirrored into an S3 bucket,
//! `docs/scaleout.md`). The contract and crash model are in `docs/io.md`. `prezero` keeps
//! log files zeroed ahead of their writers.

use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use crate::limits::{DIRECT_IO_ALIGN, STORAGE_NAME_LEN_MAX, STORAGE_OFFSET_MAX};

pub mod durable;
mod faulty;
mod mem;
mod object;
mod prezero;
mod std_fs;
#[cfg(target_os = "linux")]
mod uring;

pub use faulty::{FaultCounters, FaultPlan, FaultyFile, FaultyStorage};
pub use mem::{CrashMode, MemStorage};
pub use object::{Fence, ObjectConfig, ObjectOpenReport, ObjectStorage};
pub(crate) use prezero::{PreZeroer, Zone, ZoneConfig};
pub use std_fs::StdStorage;
#[cfg(target_os = "linux")]
pub use uring::UringStorage;

/// A storage backend: a flat namespace of files under one root.
///
/// Names are relative, `/`-separated, without empty, `.` or `..` components; anything else
/// is an `InvalidInput` error. All methods may be called from many threads at once.
pub trait Storage: Send + Sync + 'static {
    /// Opens `name`; creates it (and missing parent directories) when `create` is set.
    /// Parent directories created here are durable on return; the file's own entry is
    /// durable only after `sync_dir` of its directory.
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
    /// Bytes an unprivileged writer may still store under the root, when the backend knows
    /// (`None`: unknown or unlimited).
    fn free_bytes(&self) -> io::Result<Option<u64>> {
        Ok(None)
    }
    /// Opens the existing file `name` a second time for direct I/O (`O_DIRECT`: writes go to
    /// the device without a copy into the page cache), or `None` where the backend or file
    /// system has no direct I/O. Writes through the handle must start at a multiple of
    /// [`DIRECT_IO_ALIGN`], be a multiple of it long and come from memory aligned to it
    /// ([`AlignedBuf`]); reads should use the ordinary handle.
    fn open_direct(&self, _name: &str) -> io::Result<Option<Arc<dyn StorageFile>>> {
        Ok(None)
    }
}

/// A growable byte buffer whose start is aligned for direct I/O.
pub(crate) type AlignedBuf = aligned_vec::AVec<u8, aligned_vec::ConstAlign<DIRECT_IO_ALIGN>>;

/// Whether a direct write of `data` at `offset` meets the alignment [`Storage::open_direct`]
/// asks for.
pub(crate) fn direct_write_is_aligned(offset: u64, data: &[u8]) -> bool {
    let a = DIRECT_IO_ALIGN as u64;
    offset.is_multiple_of(a)
        && (data.len() as u64).is_multiple_of(a)
        && (data.as_ptr() as usize).is_multiple_of(DIRECT_IO_ALIGN)
}

/// An open file of a [`Storage`].
///
/// An open file stays usable after its name is removed or renamed. Once a data sync
/// (`sync_data`, or `write_batch` with `sync`) has failed, the handle never again reports a
/// successful write or sync: the kernel may have dropped the dirty pages, so a later
/// "success" would be a lie (reopen after recovery instead).
// `len` is a file length query, not a collection size: no `is_empty` wanted.
#[allow(clippy::len_without_is_empty)]
pub trait StorageFile: Send + Sync {
    /// Fills `buf` from `offset`; a short file is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Fills `buf` from `offset` only if that needs no wait for the device (every byte is in
    /// the page cache): `Ok(true)` when filled, `Ok(false)` when the read would have to wait
    /// or the backend cannot tell without waiting (the default). Lets an event loop serve
    /// cached bytes itself and hand only real disk reads to a thread (docs/io.md).
    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        let _ = (buf, offset);
        Ok(false)
    }
    /// Writes every buffer at its offset, in order; when `sync` is set, then makes
    /// the file's data durable (fdatasync) before returning. One call is one batch.
    /// On error some prefix of the batch may have been written.
    fn write_batch(&self, writes: &[(u64, &[u8])], sync: bool) -> io::Result<()>;
    /// Makes written data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file holds no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Cuts the file to `len` bytes (used to drop a torn tail on recovery).
    fn truncate(&self, len: u64) -> io::Result<()>;
}

impl<T: Storage + ?Sized> Storage for Arc<T> {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        (**self).open(name, create)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        (**self).remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        (**self).rename(from, to)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        (**self).list(prefix)
    }
    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        (**self).sync_dir(dir)
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn free_bytes(&self) -> io::Result<Option<u64>> {
        (**self).free_bytes()
    }
    fn open_direct(&self, name: &str) -> io::Result<Option<Arc<dyn StorageFile>>> {
        (**self).open_direct(name)
    }
}

/// Which backend [`open_storage`] builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IoChoice {
    /// io_uring when the kernel allows it, else std.
    #[default]
    Auto,
    /// The portable std::fs backend.
    Std,
    /// io_uring or an error.
    Uring,
}

/// Environment variable read by [`IoChoice::from_env`].
pub const IO_CHOICE_ENV: &str = "SKAB_IO";

impl IoChoice {
    /// Reads `SKAB_IO` (`std`, `uring`/`io_uring` or `auto`); unset or empty is `Auto`,
    /// anything else an `InvalidInput` error.
    pub fn from_env() -> io::Result<Self> {
        match std::env::var(IO_CHOICE_ENV) {
            Ok(v) => v.parse(),
            Err(std::env::VarError::NotPresent) => Ok(IoChoice::Auto),
            Err(std::env::VarError::NotUnicode(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{IO_CHOICE_ENV} is not valid UTF-8"),
            )),
        }
    }
}

impl FromStr for IoChoice {
    type Err = io::Error;
    fn from_str(s: &str) -> io::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(IoChoice::Auto),
            "std" => Ok(IoChoice::Std),
            "uring" | "io_uring" | "io-uring" => Ok(IoChoice::Uring),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{IO_CHOICE_ENV}: unknown I/O backend {other:?} (expected std, uring or auto)"
                ),
            )),
        }
    }
}

/// Opens the storage rooted at `root` (created if missing) with the chosen backend.
pub fn open_storage(root: &Path, choice: IoChoice) -> io::Result<Arc<dyn Storage>> {
    match choice {
        IoChoice::Std => Ok(Arc::new(StdStorage::new(root)?)),
        IoChoice::Uring => open_uring(root),
        IoChoice::Auto => match open_uring(root) {
            Ok(s) => Ok(s),
            Err(e) => {
                tracing::info!(error = %e, "io_uring unavailable, using the std storage backend");
                Ok(Arc::new(StdStorage::new(root)?))
            }
        },
    }
}

#[cfg(target_os = "linux")]
fn open_uring(root: &Path) -> io::Result<Arc<dyn Storage>> {
    Ok(Arc::new(UringStorage::try_new(root)?))
}

#[cfg(not(target_os = "linux"))]
fn open_uring(_root: &Path) -> io::Result<Arc<dyn Storage>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "io_uring exists only on Linux",
    ))
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// Checks a storage file name: relative, `/`-separated, no empty, `.` or `..` components,
/// no NUL, at most [`STORAGE_NAME_LEN_MAX`] bytes.
pub fn validate_name(name: &str) -> io::Result<()> {
    if name.is_empty() {
        return Err(invalid("empty storage file name"));
    }
    validate_dir(name)
}

/// Like [`validate_name`], but also accepts `""` (the root directory).
pub fn validate_dir(name: &str) -> io::Result<()> {
    if name.len() > STORAGE_NAME_LEN_MAX {
        return Err(invalid(format!(
            "storage name longer than {STORAGE_NAME_LEN_MAX} bytes"
        )));
    }
    if name.is_empty() {
        return Ok(());
    }
    if name.contains('\0') || name.contains('\\') {
        return Err(invalid(format!(
            "storage name {name:?} contains NUL or backslash"
        )));
    }
    if name.starts_with('/') {
        return Err(invalid(format!("storage name {name:?} is absolute")));
    }
    for comp in name.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(invalid(format!(
                "storage name {name:?} has an empty, '.' or '..' component"
            )));
        }
    }
    Ok(())
}

/// The directory part of a valid name (`"a/b"` for `"a/b/c"`, `""` for `"c"`).
pub fn parent_dir(name: &str) -> &str {
    match name.rfind('/') {
        Some(i) => &name[..i],
        None => "",
    }
}

/// Checks that a read or write of `len` bytes at `offset` stays within file offsets the
/// kernel accepts.
pub(crate) fn check_range(offset: u64, len: usize) -> io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= STORAGE_OFFSET_MAX => Ok(()),
        _ => Err(invalid(format!(
            "range at offset {offset} of {len} bytes is past the largest file offset"
        ))),
    }
}

/// Set once a kernel or file system refused `RWF_NOWAIT` reads: later calls skip the try.
#[cfg(target_os = "linux")]
static NOWAIT_UNSUPPORTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// `preadv2(.., RWF_NOWAIT)` of all of `buf` at `offset`: `Ok(true)` when the page cache held
/// every byte, `Ok(false)` when the kernel would have had to wait for the device (EAGAIN, or
/// only part was cached) or refuses non-blocking reads (then never tried again).
#[cfg(target_os = "linux")]
pub(crate) fn pread_nowait(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::Ordering;
    check_range(offset, buf.len())?;
    if buf.is_empty() {
        return Ok(true);
    }
    if NOWAIT_UNSUPPORTED.load(Ordering::Relaxed) {
        return Ok(false);
    }
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over `buf`, which outlives the synchronous call; offset checked
    // above to fit an off_t.
    let n = unsafe {
        libc::preadv2(
            file.as_raw_fd(),
            &iov,
            1,
            offset as libc::off_t,
            libc::RWF_NOWAIT,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(false),
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => {
                NOWAIT_UNSUPPORTED.store(true, Ordering::Relaxed);
                Ok(false)
            }
            _ => Err(e),
        };
    }
    // A short read: part of the range is not cached (or the file is shorter: the blocking
    // read then reports it).
    Ok(n as usize == buf.len())
}

/// Bytes available to unprivileged writers on the file system holding `path` (statvfs).
#[cfg(unix)]
pub(crate) fn fstatvfs_free(dir: &std::fs::File) -> io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    // SAFETY: `dir` is an open descriptor and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatvfs(dir.as_raw_fd(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(Some(
        (st.f_bavail as u64).saturating_mul(st.f_frsize as u64),
    ))
}

#[cfg(not(unix))]
pub(crate) fn fstatvfs_free(_dir: &std::fs::File) -> io::Result<Option<u64>> {
    Ok(None)
}

/// Whether `e` says the device or the writer's disk quota is full.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// The error a handle returns after an earlier failed data sync.
pub(crate) fn poisoned_error() -> io::Error {
    io::Error::other(
        "file handle is failed after an earlier data sync error; reopen after recovery",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "packs/00000001.pack", "wal/07/x.wal", "a.b/c..d"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/a", "a//b", "a/", "../a", "a/../b", "./a", "a/./b", "a\0b", "a\\b",
        ] {
            let e = validate_name(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        assert!(validate_dir("").is_ok());
        assert!(validate_name(&"x".repeat(STORAGE_NAME_LEN_MAX + 1)).is_err());
        assert_eq!(parent_dir("a/b/c"), "a/b");
        assert_eq!(parent_dir("c"), "");
    }

    #[test]
    fn io_choice_parses() {
        assert_eq!("std".parse::<IoChoice>().unwrap(), IoChoice::Std);
        assert_eq!("URING".parse::<IoChoice>().unwrap(), IoChoice::Uring);
        assert_eq!("io_uring".parse::<IoChoice>().unwrap(), IoChoice::Uring);
        assert_eq!(" auto ".parse::<IoChoice>().unwrap(), IoChoice::Auto);
        assert_eq!("".parse::<IoChoice>().unwrap(), IoChoice::Auto);
        let e = "fast".parse::<IoChoice>().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn offsets_are_bounded() {
        assert!(check_range(0, 10).is_ok());
        assert!(check_range(STORAGE_OFFSET_MAX - 10, 10).is_ok());
        assert!(check_range(STORAGE_OFFSET_MAX - 10, 11).is_err());
        assert!(check_range(u64::MAX, 1).is_err());
    }
}
