//! The storage of a data dir's own files (the user database, the hand-in and space
//! registries, receipt keys and logs, the audit log, saved WebDAV locks, the initialized
//! marker): plain local files by default, mirrored into the object storage bucket under
//! `<prefix>own/` when `[storage.object]` is set. Design: docs/scaleout.md, "Object storage
//! mirror"; the bucket layout: docs/formats.md.
//!
//! Every writer of those files asks [`storage_at`] for the storage of the directory it writes
//! in and writes through it; readers may read the local files directly (the local data dir
//! is the working copy in both modes). [`open`] registers the mirror of a data dir before
//! anything reads its files (rebuilding them from the bucket over an empty data dir) and
//! holds the data dir's `own.lock` for the process's lifetime, so that no second process
//! mirrors the same files at once.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use skab_engine::io::{ObjectStorage, StdStorage, Storage, StorageFile};

use crate::config::Config;

/// Where the own files' objects go, after the configured bucket prefix. The store's objects
/// are `<prefix>n/…` and `<prefix>d/…`, so neither mirror ever lists the other's keys.
pub const OWN_PREFIX: &str = "own/";
/// The lock file in the data dir held by the process mirroring its own files.
pub const OWN_LOCK: &str = "own.lock";
/// What an offline command says when a server mirrors the data dir's own files.
pub const SERVER_RUNS: &str =
    "the server runs on this data dir; in object storage mode give admin commands to the server";

/// The data dir's own files (and directories of them), as name prefixes: what the mirror
/// lists and uploads. The store (`store/`), the admin socket, lock files and anything else an
/// operator put there stay local.
const OWN_NAMES: &[&str] = &[
    "users/",
    "handins.bin",
    "spaces.bin",
    "receipt-keys/",
    "handin-receipts/",
    "audit/",
    "locks.saved",
    crate::serve::INITIALIZED_MARKER,
];

/// Whether `name` (relative to the data dir) is one of its own mirrored files.
fn is_own(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last == "LOCK" || last.ends_with(".lock") {
        return false;
    }
    OWN_NAMES.iter().any(|p| {
        name.starts_with(p)
            && (p.ends_with('/') || name.len() == p.len() || name[p.len()..].starts_with('.'))
    })
}

/// The data dir seen through std::fs, its listing cut to the own files.
struct OwnLocal(StdStorage);

impl Storage for OwnLocal {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.0.open(name, create)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.0.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.0.rename(from, to)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut v = self.0.list(prefix)?;
        v.retain(|n| is_own(n));
        Ok(v)
    }
    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.0.sync_dir(dir)
    }
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn free_bytes(&self) -> io::Result<Option<u64>> {
        self.0.free_bytes()
    }
}

/// A directory inside another storage (`prefix` is `dir/`).
struct Sub {
    inner: Arc<dyn Storage>,
    prefix: String,
}

impl Sub {
    fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

impl Storage for Sub {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.inner.open(&self.name(name), create)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(&self.name(name))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(&self.name(from), &self.name(to))
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let n = self.prefix.len();
        Ok(self
            .inner
            .list(&self.name(prefix))?
            .into_iter()
            .map(|s| s[n..].to_owned())
            .collect())
    }
    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        if dir.is_empty() {
            self.inner.sync_dir(self.prefix.trim_end_matches('/'))
        } else {
            self.inner.sync_dir(&self.name(dir))
        }
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn free_bytes(&self) -> io::Result<Option<u64>> {
        self.inner.free_bytes()
    }
}

/// A registered data dir.
struct Mirror {
    /// As configured, and canonical.
    given: PathBuf,
    canonical: PathBuf,
    storage: Arc<dyn Storage>,
    /// The configuration it was opened with (None in tests).
    config: Option<Config>,
    /// The held `own.lock` (None in tests).
    _lock: Option<File>,
}

static MIRRORS: Mutex<Vec<Mirror>> = Mutex::new(Vec::new());

/// `path` relative to `dir` as a storage name prefix ("" or `a/b/`), if it is inside.
fn inside(dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(dir).ok()?;
    let mut s = String::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => {
                s.push_str(n.to_str()?);
                s.push('/');
            }
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(s)
}

/// The storage to write the own files in directory `dir` (the data dir or a directory in
/// it) through: the registered mirror of the data dir holding it, else `dir` on local disk.
/// `dir` is created when missing.
pub fn storage_at(dir: &Path) -> io::Result<Arc<dyn Storage>> {
    let mirrors = MIRRORS.lock();
    if !mirrors.is_empty() {
        let found = mirrors.iter().find_map(|m| {
            inside(&m.given, dir)
                .or_else(|| inside(&m.canonical, dir))
                .map(|p| (m, p))
        });
        let found = match found {
            Some(f) => Some(f),
            None => {
                let canon = canonical_even_if_missing(dir);
                mirrors
                    .iter()
                    .find_map(|m| inside(&m.canonical, &canon).map(|p| (m, p)))
            }
        };
        if let Some((m, prefix)) = found {
            std::fs::create_dir_all(dir)?;
            if prefix.is_empty() {
                return Ok(m.storage.clone());
            }
            return Ok(Arc::new(Sub {
                inner: m.storage.clone(),
                prefix,
            }));
        }
    }
    drop(mirrors);
    Ok(Arc::new(StdStorage::new(dir)?))
}

/// `path` with its deepest existing ancestor canonicalized.
fn canonical_even_if_missing(path: &Path) -> PathBuf {
    let mut tail = Vec::new();
    let mut p = path;
    loop {
        if let Ok(c) = p.canonicalize() {
            return tail.iter().rev().fold(c, |acc: PathBuf, t| acc.join(t));
        }
        match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_owned());
                p = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Registers `storage` as the own-files storage of `data_dir` (which exists).
fn register(
    data_dir: &Path,
    storage: Arc<dyn Storage>,
    config: Option<Config>,
    lock: Option<File>,
) -> io::Result<()> {
    let canonical = data_dir.canonicalize()?;
    let mut mirrors = MIRRORS.lock();
    mirrors.retain(|m| m.canonical != canonical);
    mirrors.push(Mirror {
        given: data_dir.to_path_buf(),
        canonical,
        storage,
        config,
        _lock: lock,
    });
    Ok(())
}

/// The configuration the own files of `data_dir` were mirrored with by this process (object
/// storage mode), if they were.
pub fn config_of(data_dir: &Path) -> Option<Config> {
    let canonical = data_dir.canonicalize().ok()?;
    MIRRORS
        .lock()
        .iter()
        .find(|m| m.canonical == canonical)
        .and_then(|m| m.config.clone())
}

/// Whether another process mirrors the own files of `data_dir` now (holds its `own.lock`).
pub fn held_elsewhere(data_dir: &Path) -> bool {
    if is_registered(data_dir) || !data_dir.join(OWN_LOCK).exists() {
        return false;
    }
    matches!(lock_own(data_dir), Err(e) if e == SERVER_RUNS)
}

/// Forgets the mirror of `data_dir` (a cluster cell closed): its background work stops and
/// its `own.lock` is released once the last user of the storage lets go of it.
pub fn unregister(data_dir: &Path) {
    let Ok(canonical) = data_dir.canonicalize() else {
        return;
    };
    MIRRORS.lock().retain(|m| m.canonical != canonical);
}

fn is_registered(data_dir: &Path) -> bool {
    let Ok(canonical) = data_dir.canonicalize() else {
        return false;
    };
    MIRRORS.lock().iter().any(|m| m.canonical == canonical)
}

/// Takes `own.lock` of `data_dir` without waiting; [`SERVER_RUNS`] when another process
/// holds it.
fn lock_own(data_dir: &Path) -> Result<File, String> {
    let path = data_dir.join(OWN_LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    loop {
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(f);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Err(SERVER_RUNS.to_string()),
            _ => return Err(format!("{}: {e}", path.display())),
        }
    }
}

/// Makes the own files of `config`'s data dir go through their mirror when
/// `[storage.object]` is set (nothing to do on local disk): takes `own.lock` for the life of
/// the process (refused with [`SERVER_RUNS`] when another process holds it), opens the
/// mirror under `<prefix>own/` (over a data dir without own files, they are first rebuilt
/// from the bucket) and registers it. Call before anything reads the data dir's files; a
/// second call for the same data dir does nothing.
pub fn open(config: &Config) -> Result<(), String> {
    open_fenced(config, None)
}

/// As [`open`]; in cluster mode with the fence of the node's lease on the cell.
pub fn open_fenced(config: &Config, fence: Option<skab_engine::io::Fence>) -> Result<(), String> {
    let Some(object) = &config.storage.object else {
        return Ok(());
    };
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    if is_registered(data_dir) {
        return Ok(());
    }
    let lock = lock_own(data_dir)?;
    let mut object = object.engine()?;
    object.prefix = format!("{}{OWN_PREFIX}", object.prefix);
    object.fence = fence;
    let local = StdStorage::new(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let (storage, report) = ObjectStorage::open(data_dir, Arc::new(OwnLocal(local)), &object)
        .map_err(|e| format!("the data dir's own files in object storage: {e}"))?;
    tracing::info!(
        bucket = %object.bucket,
        rebuilt_files = report.rebuilt_files,
        rebuilt_bytes = report.rebuilt_bytes,
        uploaded_files = report.uploaded_files,
        "the data dir's own files mirrored into object storage"
    );
    if report.rebuilt_files > 0 {
        keep_private(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    }
    register(
        data_dir,
        Arc::new(storage),
        Some(config.clone()),
        Some(lock),
    )
    .map_err(|e| format!("{}: {e}", data_dir.display()))
}

/// Gives rebuilt secrets the modes their writers give them (files are rebuilt 0644): the
/// user database's directory 0700, receipt keys 0600.
fn keep_private(data_dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let users = data_dir.join("users");
    if users.is_dir() {
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o700))?;
    }
    if let Ok(entries) = std::fs::read_dir(data_dir.join(crate::handin::receipt::KEY_DIR)) {
        for e in entries {
            std::fs::set_permissions(e?.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Writes `bytes` as `name` in `storage` (rooted at `dir` on disk), readable by the owner
/// alone, atomically and durably: a temp file made 0600 before any byte is in it, synced,
/// renamed over `name`, the directory synced.
pub fn replace_private(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = format!("{name}.tmp");
    match storage.remove(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let f = storage.open(&tmp, true)?;
    std::fs::set_permissions(dir.join(&tmp), std::fs::Permissions::from_mode(0o600))?;
    f.write_batch(&[(0, bytes)], true)?;
    drop(f);
    storage.rename(&tmp, name)?;
    storage.sync_dir(name.rfind('/').map_or("", |i| &name[..i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skab_engine::io::{durable, MemStorage};

    #[test]
    fn only_own_files_are_listed_and_lock_files_never() {
        for n in [
            "users/users.log",
            "users/token.key",
            "handins.bin",
            "handins.bin.tmp",
            "spaces.bin",
            "receipt-keys/a.key",
            "handin-receipts/a/x.log",
            "audit/a/2026-12.log",
            "audit/a/HEAD",
            "locks.saved",
            "initialized",
        ] {
            assert!(is_own(n), "{n}");
        }
        for n in [
            "store/store.meta",
            "store/LOCK",
            "own.lock",
            "users/users.lock",
            "handins.lock",
            "audit/a/LOCK",
            "admin.sock",
            "access.log",
            "initializedx",
            "spaces.binary",
        ] {
            assert!(!is_own(n), "{n}");
        }
        let dir = tempfile::tempdir().unwrap();
        let local = OwnLocal(StdStorage::new(dir.path()).unwrap());
        for n in [
            "store/store.meta",
            "users/users.log",
            "handins.lock",
            "spaces.bin",
        ] {
            local.0.open(n, true).unwrap();
        }
        assert_eq!(local.list("").unwrap(), ["spaces.bin", "users/users.log"]);
    }

    #[test]
    fn writers_inside_a_registered_data_dir_write_through_its_storage() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mem = Arc::new(MemStorage::new());
        register(&data, mem.clone(), None, None).unwrap();
        // The user database, a registry and the audit log, each in its own directory.
        let db = crate::users::UserDb::open(&data).unwrap();
        let t = crate::users::TenantName::new("t").unwrap();
        let u = crate::users::UserName::new("u").unwrap();
        let phc = crate::users::password::hash_with("pw", 8, 1, 1).unwrap();
        db.add_user(&t, &u, &phc).unwrap();
        crate::handin::Registry::new(&data)
            .add(crate::handin::Handin {
                tenant: "t".into(),
                name: "h".into(),
                owner: "u".into(),
                group: "g".into(),
                opens: None,
                closes: 10,
                late: crate::handin::LatePolicy::Refuse,
                created: 1,
            })
            .unwrap();
        crate::audit::AuditStore::new(&data)
            .append("t", &[crate::audit::event("admin.user.add")])
            .unwrap();
        let names = mem.list("").unwrap();
        for want in [
            "users/users.log",
            "users/token.key",
            "handins.bin",
            "audit/t/HEAD",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        assert!(names
            .iter()
            .any(|n| n.starts_with("audit/t/") && n.ends_with(".log")));
        let log = durable::read_file(&*mem, "users/users.log", 1 << 20)
            .unwrap()
            .unwrap();
        let on_disk = std::fs::read(data.join("users/users.log"));
        assert!(
            on_disk.is_err(),
            "written on local disk, not through the storage"
        );
        assert!(log.len() > 8);
        // A directory outside it, and a sub-storage's names and syncs.
        let other = dir.path().join("other");
        assert_eq!(storage_at(&other).unwrap().kind(), "std");
        let sub = storage_at(&data.join("a/b")).unwrap();
        durable::replace_file(&*sub, "c", b"x").unwrap();
        assert_eq!(sub.list("").unwrap(), ["c"]);
        assert!(mem.list("a/b/c").unwrap().iter().any(|n| n == "a/b/c"));
        MIRRORS.lock().retain(|m| m.given != data);
        assert_eq!(storage_at(&data).unwrap().kind(), "std");
    }

    #[test]
    fn a_second_process_is_refused_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_own(dir.path()).unwrap();
        // flock locks belong to the open file: a second open is what another process does.
        assert_eq!(lock_own(dir.path()).unwrap_err(), SERVER_RUNS);
        drop(held);
        lock_own(dir.path()).unwrap();
    }
}
