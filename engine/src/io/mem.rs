//! An in-memory storage backend for tests that simulates what a power loss leaves behind.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::std_fs::validate_prefix;
use super::{
    check_range, direct_write_is_aligned, parent_dir, validate_dir, validate_name, Storage,
    StorageFile,
};
use crate::limits::MEM_FILE_LEN_MAX;

/// What [`MemStorage::crash`] keeps of data that was not yet durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Only durable state survives.
    DurableOnly,
    /// Durable state, plus, for each surviving file that had bytes appended past its
    /// durable length, with probability 1/2 a random prefix of those bytes (seeded).
    TornTail { seed: u64 },
    /// Like `TornTail`, but the kept tail reads as zeros: the file size reached the disk
    /// and its data blocks did not.
    ZeroTail { seed: u64 },
}

#[derive(Debug, Default)]
struct InodeData {
    /// What reads see now.
    current: Vec<u8>,
    /// What a power loss leaves: the content as of the last successful data sync.
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inode {
    data: Mutex<InodeData>,
}

#[derive(Debug, Default)]
struct Namespace {
    /// Directory entries as seen now.
    live: BTreeMap<String, Arc<Inode>>,
    /// Directory entries as a power loss leaves them: as of the last `sync_dir` of each
    /// entry's directory.
    durable: BTreeMap<String, Arc<Inode>>,
}

/// Files in memory with separate "current" and "durable" state; see `docs/io.md` for the
/// exact crash model.
#[derive(Debug, Default)]
pub struct MemStorage {
    ns: Mutex<Namespace>,
}

impl MemStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// What a power loss at this instant would leave, as a fresh storage. Handles opened on
    /// `self` stay attached to `self`.
    pub fn crash(&self, mode: CrashMode) -> MemStorage {
        let ns = self.ns.lock();
        let mut rng = match mode {
            CrashMode::DurableOnly => None,
            CrashMode::TornTail { seed } | CrashMode::ZeroTail { seed } => {
                Some(StdRng::seed_from_u64(seed))
            }
        };
        // One durable inode may sit under two names (a rename made durable in only one of
        // the two directories); keep that sharing.
        let mut copies: HashMap<*const Inode, Arc<Inode>> = HashMap::new();
        let mut durable = BTreeMap::new();
        for (name, inode) in &ns.durable {
            let copy = copies
                .entry(Arc::as_ptr(inode))
                .or_insert_with(|| {
                    let d = inode.data.lock();
                    let mut content = d.durable.clone();
                    if let Some(rng) = rng.as_mut() {
                        let extra = d.current.len().saturating_sub(d.durable.len());
                        if extra > 0 && rng.gen_bool(0.5) {
                            let keep = rng.gen_range(1..=extra);
                            let start = d.durable.len();
                            match mode {
                                CrashMode::ZeroTail { .. } => {
                                    content.resize(start + keep, 0);
                                }
                                _ => content.extend_from_slice(&d.current[start..start + keep]),
                            }
                        }
                    }
                    Arc::new(Inode {
                        data: Mutex::new(InodeData {
                            durable: content.clone(),
                            current: content,
                        }),
                    })
                })
                .clone();
            durable.insert(name.clone(), copy);
        }
        MemStorage {
            ns: Mutex::new(Namespace {
                live: durable.clone(),
                durable,
            }),
        }
    }

    /// Total bytes currently held by live files (for tests).
    pub fn live_bytes(&self) -> u64 {
        let ns = self.ns.lock();
        ns.live
            .values()
            .map(|i| i.data.lock().current.len() as u64)
            .sum()
    }
}

/// True when `name` sits directly inside `dir`.
fn in_dir(name: &str, dir: &str) -> bool {
    parent_dir(name) == dir
}

impl Storage for MemStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        validate_name(name)?;
        let mut ns = self.ns.lock();
        // A name cannot be both a file and a directory.
        let as_dir = format!("{name}/");
        if ns
            .live
            .range(as_dir.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&as_dir))
        {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{name} is a directory"),
            ));
        }
        let inode = match ns.live.get(name) {
            Some(i) => i.clone(),
            None if create => {
                check_no_file_ancestor(&ns, name)?;
                let i = Arc::new(Inode::default());
                ns.live.insert(name.to_owned(), i.clone());
                i
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{name} not found"),
                ))
            }
        };
        Ok(Arc::new(MemFile {
            inode,
            direct: false,
        }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        validate_name(name)?;
        match self.ns.lock().live.remove(name) {
            Some(_) => Ok(()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{name} not found"),
            )),
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        validate_name(from)?;
        validate_name(to)?;
        let mut ns = self.ns.lock();
        check_no_file_ancestor(&ns, to)?;
        match ns.live.remove(from) {
            Some(inode) => {
                ns.live.insert(to.to_owned(), inode);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{from} not found"),
            )),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        validate_prefix(prefix)?;
        let ns = self.ns.lock();
        Ok(ns
            .live
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        validate_dir(dir)?;
        let mut ns = self.ns.lock();
        let Namespace { live, durable } = &mut *ns;
        durable.retain(|name, _| !in_dir(name, dir) || live.contains_key(name));
        for (name, inode) in live.iter().filter(|(n, _)| in_dir(n, dir)) {
            durable.insert(name.clone(), inode.clone());
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    /// A second handle on the same file that refuses writes a real `O_DIRECT` file would
    /// refuse (unaligned offset, length or memory), so tests hold the engine to them.
    fn open_direct(&self, name: &str) -> io::Result<Option<Arc<dyn StorageFile>>> {
        validate_name(name)?;
        let inode = self.ns.lock().live.get(name).cloned();
        match inode {
            Some(inode) => Ok(Some(Arc::new(MemFile {
                inode,
                direct: true,
            }))),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{name} not found"),
            )),
        }
    }
}

/// Refuses to create `name` below a path that is a file.
fn check_no_file_ancestor(ns: &Namespace, name: &str) -> io::Result<()> {
    let mut dir = parent_dir(name);
    while !dir.is_empty() {
        if ns.live.contains_key(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{dir} is a file"),
            ));
        }
        dir = parent_dir(dir);
    }
    Ok(())
}

struct MemFile {
    inode: Arc<Inode>,
    /// Opened by [`Storage::open_direct`]: writes must be aligned.
    direct: bool,
}

impl StorageFile for MemFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len())?;
        let d = self.inode.data.lock();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match d.current.get(start..).and_then(|s| s.get(..buf.len())) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            )),
        }
    }

    fn write_batch(&self, writes: &[(u64, &[u8])], sync: bool) -> io::Result<()> {
        for &(offset, data) in writes {
            check_range(offset, data.len())?;
            if offset + data.len() as u64 > MEM_FILE_LEN_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "write past the in-memory file size limit",
                ));
            }
            if self.direct && !direct_write_is_aligned(offset, data) {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
        }
        let mut d = self.inode.data.lock();
        for &(offset, data) in writes {
            // Both fit in usize: checked against MEM_FILE_LEN_MAX above.
            let start = offset as usize;
            let end = start + data.len();
            if d.current.len() < end {
                d.current.resize(end, 0);
            }
            d.current[start..end].copy_from_slice(data);
        }
        if sync {
            d.durable = d.current.clone();
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut d = self.inode.data.lock();
        d.durable = d.current.clone();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.inode.data.lock().current.len() as u64)
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        if len > MEM_FILE_LEN_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "truncate past the in-memory file size limit",
            ));
        }
        // Fits in usize: checked against MEM_FILE_LEN_MAX above.
        self.inode.data.lock().current.resize(len as usize, 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(s: &dyn Storage, name: &str) -> io::Result<Vec<u8>> {
        let f = s.open(name, false)?;
        let mut buf = vec![0u8; f.len()? as usize];
        f.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }

    #[test]
    fn unsynced_data_is_lost_synced_kept() {
        let s = MemStorage::new();
        let f = s.open("wal/1", true).unwrap();
        s.sync_dir("wal").unwrap();
        f.write_batch(&[(0, b"durable")], true).unwrap();
        f.write_batch(&[(7, b"-volatile")], false).unwrap();
        assert_eq!(read_all(&s, "wal/1").unwrap(), b"durable-volatile");
        let after = s.crash(CrashMode::DurableOnly);
        assert_eq!(read_all(&after, "wal/1").unwrap(), b"durable");
        f.sync_data().unwrap();
        let after = s.crash(CrashMode::DurableOnly);
        assert_eq!(read_all(&after, "wal/1").unwrap(), b"durable-volatile");
    }

    #[test]
    fn overwrite_of_durable_bytes_is_lost() {
        let s = MemStorage::new();
        let f = s.open("p", true).unwrap();
        s.sync_dir("").unwrap();
        f.write_batch(&[(0, b"aaaa")], true).unwrap();
        f.write_batch(&[(1, b"bb")], false).unwrap();
        f.truncate(2).unwrap();
        let after = s.crash(CrashMode::TornTail { seed: 1 });
        assert_eq!(read_all(&after, "p").unwrap(), b"aaaa");
    }

    #[test]
    fn entries_need_sync_dir() {
        let s = MemStorage::new();
        let f = s.open("d/new", true).unwrap();
        f.write_batch(&[(0, b"x")], true).unwrap();
        // Data synced, entry not: the file is gone after a crash.
        let after = s.crash(CrashMode::DurableOnly);
        assert_eq!(after.list("").unwrap(), Vec::<String>::new());
        // Syncing another directory does not help.
        s.sync_dir("").unwrap();
        assert!(s.crash(CrashMode::DurableOnly).list("").unwrap().is_empty());
        s.sync_dir("d").unwrap();
        assert_eq!(
            s.crash(CrashMode::DurableOnly).list("").unwrap(),
            vec!["d/new"]
        );
    }

    #[test]
    fn rename_and_remove_not_durable_without_sync_dir() {
        let s = MemStorage::new();
        let f = s.open("tmp/a", true).unwrap();
        f.write_batch(&[(0, b"new")], true).unwrap();
        let old = s.open("cur/a", true).unwrap();
        old.write_batch(&[(0, b"old")], true).unwrap();
        s.sync_dir("tmp").unwrap();
        s.sync_dir("cur").unwrap();
        s.rename("tmp/a", "cur/a").unwrap();
        assert_eq!(read_all(&s, "cur/a").unwrap(), b"new");
        let after = s.crash(CrashMode::DurableOnly);
        assert_eq!(read_all(&after, "cur/a").unwrap(), b"old");
        assert_eq!(read_all(&after, "tmp/a").unwrap(), b"new");
        // Only the destination directory synced: the new name is durable, the old one too.
        s.sync_dir("cur").unwrap();
        let after = s.crash(CrashMode::DurableOnly);
        assert_eq!(read_all(&after, "cur/a").unwrap(), b"new");
        assert_eq!(after.list("tmp/").unwrap(), vec!["tmp/a"]);
        s.sync_dir("tmp").unwrap();
        let after = s.crash(CrashMode::DurableOnly);
        assert_eq!(after.list("").unwrap(), vec!["cur/a"]);
        // Removal likewise.
        s.remove("cur/a").unwrap();
        assert!(s.list("").unwrap().is_empty());
        assert_eq!(
            s.crash(CrashMode::DurableOnly).list("").unwrap(),
            vec!["cur/a"]
        );
        s.sync_dir("cur").unwrap();
        assert!(s.crash(CrashMode::DurableOnly).list("").unwrap().is_empty());
    }

    #[test]
    fn torn_tail_keeps_a_prefix_of_appended_bytes_and_replays() {
        let s = MemStorage::new();
        let mut files = Vec::new();
        for i in 0..16 {
            let name = format!("f{i:02}");
            let f = s.open(&name, true).unwrap();
            f.write_batch(&[(0, b"head")], true).unwrap();
            f.write_batch(&[(4, &[i as u8 + 1; 100][..])], false)
                .unwrap();
            files.push(name);
        }
        s.sync_dir("").unwrap();
        let mut torn = 0;
        for seed in 0..4 {
            let a = s.crash(CrashMode::TornTail { seed });
            let b = s.crash(CrashMode::TornTail { seed });
            let z = s.crash(CrashMode::ZeroTail { seed });
            for (i, name) in files.iter().enumerate() {
                let da = read_all(&a, name).unwrap();
                assert_eq!(da, read_all(&b, name).unwrap(), "same seed, same result");
                assert!(da.starts_with(b"head") && da.len() <= 104);
                assert!(da[4..].iter().all(|&x| x == i as u8 + 1));
                if da.len() > 4 {
                    torn += 1;
                }
                let dz = read_all(&z, name).unwrap();
                assert!(dz.starts_with(b"head") && dz[4..].iter().all(|&x| x == 0));
            }
        }
        // 64 coin flips: some tails survive, some do not.
        assert!(torn > 0 && torn < 64, "torn = {torn}");
        // DurableOnly never keeps a tail.
        let d = s.crash(CrashMode::DurableOnly);
        for name in &files {
            assert_eq!(read_all(&d, name).unwrap(), b"head");
        }
    }

    #[test]
    fn crash_is_independent_of_the_original() {
        let s = MemStorage::new();
        let f = s.open("x", true).unwrap();
        s.sync_dir("").unwrap();
        f.write_batch(&[(0, b"one")], true).unwrap();
        let after = s.crash(CrashMode::DurableOnly);
        f.write_batch(&[(0, b"two")], true).unwrap();
        assert_eq!(read_all(&after, "x").unwrap(), b"one");
        let g = after.open("x", false).unwrap();
        g.write_batch(&[(3, b"!")], false).unwrap();
        assert_eq!(read_all(&s, "x").unwrap(), b"two");
        assert_eq!(read_all(&after, "x").unwrap(), b"one!");
    }

    #[test]
    fn open_handles_survive_removal_and_errors_are_clean() {
        let s = MemStorage::new();
        let f = s.open("a/b", true).unwrap();
        f.write_batch(&[(2, b"zz")], false).unwrap();
        s.remove("a/b").unwrap();
        let mut buf = [9u8; 4];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [0, 0, b'z', b'z']);
        assert_eq!(
            f.read_exact_at(&mut buf, 1).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(s.remove("a/b").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(
            s.open("../a", true).err().unwrap().kind(),
            io::ErrorKind::InvalidInput
        );
        s.open("d/e", true).unwrap();
        assert!(s.open("d", true).is_err());
        assert!(s.open("d/e/f", true).is_err());
        assert!(f.write_batch(&[(MEM_FILE_LEN_MAX, b"x")], false).is_err());
    }
}
