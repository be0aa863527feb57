//! The portable storage backend: std::fs with positional reads/writes and fdatasync.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{
    check_range, invalid, parent_dir, poisoned_error, validate_dir, validate_name, Storage,
    StorageFile,
};
use crate::limits::DIRECT_IO_ALIGN;

/// Files under one root directory, through std::fs.
#[derive(Debug)]
pub struct StdStorage {
    root: PathBuf,
    /// The root directory, held open so that free-space checks (one or two per upload) need
    /// no path lookup.
    root_dir: File,
}

impl StdStorage {
    /// Opens the storage at `root`, creating the directory when missing.
    pub fn new(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        if !fs::metadata(root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("storage root {} is not a directory", root.display()),
            ));
        }
        Ok(StdStorage {
            root: root.to_path_buf(),
            root_dir: File::open(root)?,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        if name.is_empty() {
            self.root.clone()
        } else {
            self.root.join(name)
        }
    }

    /// Opens (or creates, with missing parent directories made durable) the file `name`
    /// for reading and writing. Shared with the io_uring backend.
    pub(crate) fn open_file(&self, name: &str, create: bool) -> io::Result<File> {
        validate_name(name)?;
        if create {
            self.ensure_parent_dirs(name)?;
        }
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(self.path(name))
    }

    /// Opens the existing file `name` for direct I/O, or `None` where the file system has
    /// none or wants a coarser alignment than [`DIRECT_IO_ALIGN`]. Shared with the io_uring
    /// backend.
    #[cfg(target_os = "linux")]
    pub(crate) fn open_direct_file(&self, name: &str) -> io::Result<Option<File>> {
        use std::os::unix::fs::OpenOptionsExt;
        validate_name(name)?;
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(self.path(name));
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(direct_alignment_fits(&file).then_some(file))
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn open_direct_file(&self, name: &str) -> io::Result<Option<File>> {
        validate_name(name)?;
        Ok(None)
    }

    /// Creates the missing parent directories of `name` and fsyncs the directory holding
    /// each one created, so the new directories survive a crash.
    fn ensure_parent_dirs(&self, name: &str) -> io::Result<()> {
        let dir = parent_dir(name);
        if dir.is_empty() || self.path(dir).is_dir() {
            return Ok(());
        }
        let mut created_in: Vec<&str> = Vec::new();
        let mut end = 0usize;
        for comp in dir.split('/') {
            let parent = &dir[..end.saturating_sub(1)];
            end += comp.len() + 1;
            let this = &dir[..end - 1];
            match fs::create_dir(self.path(this)) {
                Ok(()) => {
                    if !created_in.contains(&parent) {
                        created_in.push(parent);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        for parent in created_in.iter().rev() {
            self.sync_dir_path(parent)?;
        }
        Ok(())
    }

    fn sync_dir_path(&self, dir: &str) -> io::Result<()> {
        File::open(self.path(dir))?.sync_all()
    }

    fn walk(&self, dir: &str, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
        let rd = match fs::read_dir(self.path(dir)) {
            Ok(rd) => rd,
            // Removed while listing, or not there at all: nothing to list.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in rd {
            let entry = entry?;
            // Names that are not UTF-8 were not written through this trait: skip them.
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let name = if dir.is_empty() {
                file_name
            } else {
                format!("{dir}/{file_name}")
            };
            let ft = entry.file_type()?;
            if ft.is_dir() {
                let as_dir = format!("{name}/");
                if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                    self.walk(&name, prefix, out)?;
                }
            } else if ft.is_file() && name.starts_with(prefix) {
                out.push(name);
            }
        }
        Ok(())
    }
}

/// Checks a `list` prefix: like a name, but it may be empty and end in `/` or mid-component.
pub(crate) fn validate_prefix(prefix: &str) -> io::Result<()> {
    let dir_part = prefix.strip_suffix('/').unwrap_or(prefix);
    validate_dir(dir_part).map_err(|_| invalid(format!("invalid list prefix {prefix:?}")))
}

/// The deepest directory that contains every name starting with `prefix`.
pub(crate) fn prefix_dir(prefix: &str) -> &str {
    parent_dir(prefix)
}

impl Storage for StdStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(StdFile::new(self.open_file(name, create)?)))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        validate_name(name)?;
        fs::remove_file(self.path(name))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        validate_name(from)?;
        validate_name(to)?;
        self.ensure_parent_dirs(to)?;
        fs::rename(self.path(from), self.path(to))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        validate_prefix(prefix)?;
        let mut out = Vec::new();
        self.walk(prefix_dir(prefix), prefix, &mut out)?;
        out.sort_unstable();
        Ok(out)
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        validate_dir(dir)?;
        self.sync_dir_path(dir)
    }

    fn kind(&self) -> &'static str {
        "std"
    }

    fn free_bytes(&self) -> io::Result<Option<u64>> {
        super::fstatvfs_free(&self.root_dir)
    }

    fn open_direct(&self, name: &str) -> io::Result<Option<Arc<dyn StorageFile>>> {
        Ok(self
            .open_direct_file(name)?
            .map(|f| Arc::new(StdFile::new(f)) as Arc<dyn StorageFile>))
    }
}

/// Whether direct writes aligned to [`DIRECT_IO_ALIGN`] suit `file` (statx `STATX_DIOALIGN`;
/// a kernel that does not say is trusted with the common 4 KiB).
#[cfg(target_os = "linux")]
fn direct_alignment_fits(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: statx of an open descriptor (empty path, AT_EMPTY_PATH) into a zeroed,
    // properly sized struct that outlives the call.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    if r != 0 || stx.stx_mask & libc::STATX_DIOALIGN == 0 {
        return true;
    }
    let fits = |a: u32| {
        a != 0 && (a as usize) <= DIRECT_IO_ALIGN && DIRECT_IO_ALIGN.is_multiple_of(a as usize)
    };
    fits(stx.stx_dio_offset_align) && fits(stx.stx_dio_mem_align)
}

/// An open file of [`StdStorage`].
#[derive(Debug)]
pub(crate) struct StdFile {
    file: File,
    poisoned: AtomicBool,
}

impl StdFile {
    pub(crate) fn new(file: File) -> Self {
        StdFile {
            file,
            poisoned: AtomicBool::new(false),
        }
    }

    fn sync_inner(&self) -> io::Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(poisoned_error());
        }
        self.file.sync_data().inspect_err(|_| {
            self.poisoned.store(true, Ordering::Release);
        })
    }
}

impl StorageFile for StdFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len())?;
        self.file.read_exact_at(buf, offset)
    }

    #[cfg(target_os = "linux")]
    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        super::pread_nowait(&self.file, buf, offset)
    }

    fn write_batch(&self, writes: &[(u64, &[u8])], sync: bool) -> io::Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(poisoned_error());
        }
        for &(offset, data) in writes {
            check_range(offset, data.len())?;
        }
        for &(offset, data) in writes {
            self.file.write_all_at(data, offset)?;
        }
        if sync {
            self.sync_inner()?;
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync_inner()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        check_range(len, 0)?;
        self.file.set_len(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_parents_lists_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let s = StdStorage::new(&dir.path().join("root")).unwrap();
        let f = s.open("a/b/c.bin", true).unwrap();
        f.write_batch(&[(0, b"hello"), (5, b" world")], true)
            .unwrap();
        s.open("a/x", true).unwrap();
        s.open("ab", true).unwrap();
        s.open("z/y/q", true).unwrap();
        assert_eq!(s.list("").unwrap(), vec!["a/b/c.bin", "a/x", "ab", "z/y/q"]);
        assert_eq!(s.list("a/").unwrap(), vec!["a/b/c.bin", "a/x"]);
        assert_eq!(s.list("a").unwrap(), vec!["a/b/c.bin", "a/x", "ab"]);
        assert_eq!(s.list("a/b/c").unwrap(), vec!["a/b/c.bin"]);
        assert!(s.list("nothing/").unwrap().is_empty());
        s.rename("a/b/c.bin", "n/m.bin").unwrap();
        s.sync_dir("n").unwrap();
        s.sync_dir("").unwrap();
        let g = s.open("n/m.bin", false).unwrap();
        let mut buf = [0u8; 11];
        g.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello world");
        assert_eq!(
            s.open("a/b/c.bin", false).err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        assert_eq!(
            s.remove("a/b/c.bin").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        s.remove("n/m.bin").unwrap();
        assert_eq!(s.list("n").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn rejects_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let s = StdStorage::new(dir.path()).unwrap();
        for bad in ["/etc/passwd", "../x", "a/../../x", "a//b", ""] {
            assert_eq!(
                s.open(bad, true).err().map(|e| e.kind()),
                Some(io::ErrorKind::InvalidInput),
                "{bad}"
            );
            assert_eq!(
                s.remove(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        assert_eq!(
            s.list("../").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            s.sync_dir("/").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(!dir.path().parent().unwrap().join("x").exists());
    }
}
