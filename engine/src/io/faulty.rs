//! A storage wrapper that injects I/O faults (EIO, ENOSPC, failed syncs, bit flips) on demand.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::{Storage, StorageFile};
use crate::limits::DIRECT_IO_ALIGN;

/// Operation counts of a [`FaultyStorage`] since its plan was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounters {
    pub opens: u64,
    pub reads: u64,
    pub read_bytes: u64,
    /// `write_batch` calls (each is one "write" for [`FaultPlan::fail_nth_write`]).
    pub write_batches: u64,
    /// Bytes passed on to the inner storage by writes.
    pub written_bytes: u64,
    /// Data syncs attempted: `sync_data` calls plus `write_batch` calls with `sync`.
    pub syncs: u64,
    pub truncates: u64,
    pub renames: u64,
    pub removes: u64,
    pub lists: u64,
    pub sync_dirs: u64,
    /// Faults injected (each failed call or flipped read counts once).
    pub injected: u64,
}

#[derive(Default)]
struct Counters {
    opens: AtomicU64,
    reads: AtomicU64,
    read_bytes: AtomicU64,
    write_batches: AtomicU64,
    written_bytes: AtomicU64,
    syncs: AtomicU64,
    truncates: AtomicU64,
    renames: AtomicU64,
    removes: AtomicU64,
    lists: AtomicU64,
    sync_dirs: AtomicU64,
    injected: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[derive(Debug, Clone)]
struct BitFlip {
    name: String,
    offset: u64,
    mask: u8,
}

#[derive(Debug, Default)]
struct PlanState {
    /// Write and sync faults hit only files whose name starts with this.
    prefix: Option<String>,
    /// The write batch this many matching batches from now fails with EIO (1 = the next).
    fail_write_in: Option<u64>,
    /// Bytes matching writes may still store; `None` is unlimited.
    space_left: Option<u64>,
    /// The data sync this many matching syncs from now fails with EIO (1 = the next).
    fail_sync_in: Option<u64>,
    fail_all_syncs: bool,
    /// Every write through a direct handle fails with EINVAL, as on a file system that opens
    /// `O_DIRECT` files but refuses their writes.
    refuse_direct_writes: bool,
    flips: Vec<BitFlip>,
    hold_reads: bool,
}

/// The faults a [`FaultyStorage`] injects; shared, and changeable while the storage is in use.
#[derive(Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
    counters: Counters,
    /// Wakes reads held by `hold_reads` when it is lifted.
    released: Condvar,
    /// Reads waiting in `hold_reads` now.
    held: AtomicU64,
}

impl std::fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultPlan")
            .field("state", &*self.state.lock())
            .field("counters", &self.counters())
            .finish()
    }
}

/// An injected EIO; a plain OS error, so callers see exactly what the kernel would give.
fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

fn raw(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl FaultPlan {
    /// A plan that injects nothing.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Limits write and sync faults to files whose name starts with `prefix` (`None`: all).
    pub fn only_prefix(&self, prefix: Option<&str>) {
        self.state.lock().prefix = prefix.map(str::to_owned);
    }

    /// The `n`-th matching `write_batch` from now (1 = the next) fails with EIO, writing nothing.
    pub fn fail_nth_write(&self, n: u64) {
        self.state.lock().fail_write_in = Some(n.max(1));
    }

    /// Matching writes may store `bytes` more bytes; the write that crosses the limit
    /// stores only what fits and fails with ENOSPC, and every later write fails with ENOSPC
    /// until the limit is raised. `None` removes the limit (space freed).
    pub fn set_space_left(&self, bytes: Option<u64>) {
        self.state.lock().space_left = bytes;
    }

    /// Disk full (every matching write fails with ENOSPC) or space freed again.
    pub fn set_disk_full(&self, full: bool) {
        self.set_space_left(if full { Some(0) } else { None });
    }

    /// The `n`-th matching data sync from now (1 = the next) fails with EIO.
    pub fn fail_nth_sync(&self, n: u64) {
        self.state.lock().fail_sync_in = Some(n.max(1));
    }

    /// Every matching data sync fails with EIO while set.
    pub fn set_fail_all_syncs(&self, fail: bool) {
        self.state.lock().fail_all_syncs = fail;
    }

    /// Every write through a direct-I/O handle fails with EINVAL while set.
    pub fn set_refuse_direct_writes(&self, refuse: bool) {
        self.state.lock().refuse_direct_writes = refuse;
    }

    /// Reads of file `name` that cover byte `offset` see bit `bit` (0..8) of it flipped.
    pub fn flip_bit_on_read(&self, name: &str, offset: u64, bit: u8) {
        self.state.lock().flips.push(BitFlip {
            name: name.to_owned(),
            offset,
            mask: 1u8 << (bit % 8),
        });
    }

    /// Removes every fault; counters are kept.
    /// While on, every blocking read (`read_exact_at`) of a matching name waits until it is
    /// turned off (a disk that does not answer); reads served from the page cache
    /// (`read_cached_at`) do not wait. Shows which thread a read blocks, and how many are in
    /// flight at once ([`FaultPlan::held_reads`]).
    pub fn hold_reads(&self, hold: bool) {
        self.state.lock().hold_reads = hold;
        if !hold {
            self.released.notify_all();
        }
    }

    /// Reads waiting in [`FaultPlan::hold_reads`] now.
    pub fn held_reads(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Waits while reads of `name` are held.
    fn wait_if_held(&self, name: &str) {
        let mut st = self.state.lock();
        if !(st.hold_reads && Self::matches(&st, name)) {
            return;
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        while st.hold_reads {
            self.released.wait(&mut st);
        }
        self.held.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn clear(&self) {
        *self.state.lock() = PlanState::default();
        self.released.notify_all();
    }

    /// A snapshot of the operation counters.
    pub fn counters(&self) -> FaultCounters {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultCounters {
            opens: g(&c.opens),
            reads: g(&c.reads),
            read_bytes: g(&c.read_bytes),
            write_batches: g(&c.write_batches),
            written_bytes: g(&c.written_bytes),
            syncs: g(&c.syncs),
            truncates: g(&c.truncates),
            renames: g(&c.renames),
            removes: g(&c.removes),
            lists: g(&c.lists),
            sync_dirs: g(&c.sync_dirs),
            injected: g(&c.injected),
        }
    }

    fn matches(st: &PlanState, name: &str) -> bool {
        st.prefix.as_deref().is_none_or(|p| name.starts_with(p))
    }

    /// Decides the fate of a sync of `name` (counting it down).
    fn sync_fault(&self, name: &str) -> bool {
        let mut st = self.state.lock();
        if !Self::matches(&st, name) {
            return false;
        }
        let mut fail = st.fail_all_syncs;
        if let Some(n) = st.fail_sync_in {
            if n <= 1 {
                st.fail_sync_in = None;
                fail = true;
            } else {
                st.fail_sync_in = Some(n - 1);
            }
        }
        if fail {
            bump(&self.counters.injected, 1);
        }
        fail
    }
}

/// What the plan lets a write batch do.
enum WriteFate {
    Fail(io::Error),
    /// Store only this many bytes of the batch, then fail with ENOSPC.
    Short(u64),
    Whole,
}

/// Wraps a storage and injects the faults of a shared [`FaultPlan`].
pub struct FaultyStorage<S: Storage> {
    inner: S,
    plan: Arc<FaultPlan>,
}

impl<S: Storage> FaultyStorage<S> {
    /// Wraps `inner`; `plan` may be changed at any time through another `Arc`.
    pub fn new(inner: S, plan: Arc<FaultPlan>) -> Self {
        FaultyStorage { inner, plan }
    }

    /// The shared plan.
    pub fn plan(&self) -> &Arc<FaultPlan> {
        &self.plan
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        bump(&self.plan.counters.opens, 1);
        let inner = self.inner.open(name, create)?;
        Ok(Arc::new(FaultyFile {
            inner,
            name: name.to_owned(),
            plan: self.plan.clone(),
            direct: false,
        }))
    }

    fn open_direct(&self, name: &str) -> io::Result<Option<Arc<dyn StorageFile>>> {
        bump(&self.plan.counters.opens, 1);
        Ok(self.inner.open_direct(name)?.map(|inner| {
            Arc::new(FaultyFile {
                inner,
                name: name.to_owned(),
                plan: self.plan.clone(),
                direct: true,
            }) as Arc<dyn StorageFile>
        }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        bump(&self.plan.counters.removes, 1);
        self.inner.remove(name)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        bump(&self.plan.counters.renames, 1);
        self.inner.rename(from, to)
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        bump(&self.plan.counters.lists, 1);
        self.inner.list(prefix)
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        bump(&self.plan.counters.sync_dirs, 1);
        self.inner.sync_dir(dir)
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    /// The simulated space left when a limit is set, else the inner storage's answer.
    fn free_bytes(&self) -> io::Result<Option<u64>> {
        match self.plan.state.lock().space_left {
            Some(left) => Ok(Some(left)),
            None => self.inner.free_bytes(),
        }
    }
}

/// An open file of a [`FaultyStorage`].
pub struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    name: String,
    plan: Arc<FaultPlan>,
    /// A direct-I/O handle: a short write stops at an aligned length, as the kernel's does.
    direct: bool,
}

impl FaultyFile {
    /// Flips the planned bits that fall in `buf`, read from `offset`.
    fn apply_flips(&self, buf: &mut [u8], offset: u64) {
        let st = self.plan.state.lock();
        let end = offset.saturating_add(buf.len() as u64);
        for flip in st.flips.iter().filter(|f| f.name == self.name) {
            if (offset..end).contains(&flip.offset) {
                // In range: the difference is below buf.len().
                let i = (flip.offset - offset) as usize;
                if let Some(b) = buf.get_mut(i) {
                    *b ^= flip.mask;
                    bump(&self.plan.counters.injected, 1);
                }
            }
        }
    }

    fn write_fate(&self, total: u64) -> WriteFate {
        let plan = &self.plan;
        let mut st = plan.state.lock();
        if !FaultPlan::matches(&st, &self.name) {
            return WriteFate::Whole;
        }
        if let Some(n) = st.fail_write_in {
            if n <= 1 {
                st.fail_write_in = None;
                bump(&plan.counters.injected, 1);
                return WriteFate::Fail(eio());
            }
            st.fail_write_in = Some(n - 1);
        }
        match st.space_left {
            None => WriteFate::Whole,
            Some(left) if total <= left => {
                st.space_left = Some(left - total);
                WriteFate::Whole
            }
            Some(left) => {
                st.space_left = Some(0);
                bump(&plan.counters.injected, 1);
                if left == 0 {
                    WriteFate::Fail(raw(libc::ENOSPC))
                } else {
                    WriteFate::Short(left)
                }
            }
        }
    }
}

impl StorageFile for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let c = &self.plan.counters;
        bump(&c.reads, 1);
        bump(&c.read_bytes, buf.len() as u64);
        self.plan.wait_if_held(&self.name);
        self.inner.read_exact_at(buf, offset)?;
        self.apply_flips(buf, offset);
        Ok(())
    }

    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        if !self.inner.read_cached_at(buf, offset)? {
            return Ok(false);
        }
        let c = &self.plan.counters;
        bump(&c.reads, 1);
        bump(&c.read_bytes, buf.len() as u64);
        self.apply_flips(buf, offset);
        Ok(true)
    }

    fn write_batch(&self, writes: &[(u64, &[u8])], sync: bool) -> io::Result<()> {
        let c = &self.plan.counters;
        bump(&c.write_batches, 1);
        let total: u64 = writes.iter().map(|(_, d)| d.len() as u64).sum();
        if self.direct && self.plan.state.lock().refuse_direct_writes {
            bump(&c.injected, 1);
            return Err(raw(libc::EINVAL));
        }
        match self.write_fate(total) {
            WriteFate::Fail(e) => Err(e),
            WriteFate::Short(mut budget) => {
                if self.direct {
                    budget -= budget % DIRECT_IO_ALIGN as u64;
                }
                let mut part: Vec<(u64, &[u8])> = Vec::new();
                for &(off, data) in writes {
                    if budget == 0 {
                        break;
                    }
                    let n = (data.len() as u64).min(budget) as usize;
                    part.push((off, &data[..n]));
                    budget -= n as u64;
                }
                let stored: u64 = part.iter().map(|(_, d)| d.len() as u64).sum();
                self.inner.write_batch(&part, false)?;
                bump(&c.written_bytes, stored);
                Err(raw(libc::ENOSPC))
            }
            WriteFate::Whole => {
                if !sync {
                    self.inner.write_batch(writes, false)?;
                    bump(&c.written_bytes, total);
                    return Ok(());
                }
                bump(&c.syncs, 1);
                if self.plan.sync_fault(&self.name) {
                    self.inner.write_batch(writes, false)?;
                    bump(&c.written_bytes, total);
                    return Err(eio());
                }
                self.inner.write_batch(writes, true)?;
                bump(&c.written_bytes, total);
                Ok(())
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        bump(&self.plan.counters.syncs, 1);
        if self.plan.sync_fault(&self.name) {
            return Err(eio());
        }
        self.inner.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        bump(&self.plan.counters.truncates, 1);
        self.inner.truncate(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{CrashMode, MemStorage};

    fn setup() -> (
        Arc<MemStorage>,
        FaultyStorage<Arc<MemStorage>>,
        Arc<FaultPlan>,
    ) {
        let mem = Arc::new(MemStorage::new());
        let plan = FaultPlan::new();
        (mem.clone(), FaultyStorage::new(mem, plan.clone()), plan)
    }

    fn content(s: &dyn Storage, name: &str) -> Vec<u8> {
        let f = s.open(name, false).unwrap();
        let mut buf = vec![0u8; f.len().unwrap() as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    #[test]
    fn nth_write_fails_with_eio() {
        let (mem, s, plan) = setup();
        let f = s.open("x", true).unwrap();
        plan.fail_nth_write(3);
        f.write_batch(&[(0, b"a")], false).unwrap();
        f.write_batch(&[(1, b"b")], false).unwrap();
        let e = f.write_batch(&[(2, b"c")], false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        f.write_batch(&[(2, b"d")], false).unwrap();
        assert_eq!(content(&*mem, "x"), b"abd");
        let c = plan.counters();
        assert_eq!((c.write_batches, c.written_bytes, c.injected), (4, 3, 1));
    }

    #[test]
    fn enospc_after_k_bytes_then_space_freed() {
        let (mem, s, plan) = setup();
        let f = s.open("x", true).unwrap();
        plan.set_space_left(Some(5));
        f.write_batch(&[(0, b"abc")], false).unwrap();
        let e = f
            .write_batch(&[(3, b"de"), (5, b"fgh")], false)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(content(&*mem, "x"), b"abcde");
        let e = f.write_batch(&[(5, b"z")], false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        plan.set_space_left(None);
        f.write_batch(&[(5, b"z")], true).unwrap();
        assert_eq!(content(&*mem, "x"), b"abcdez");
        plan.set_disk_full(true);
        assert_eq!(
            f.write_batch(&[(6, b"q")], true)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOSPC)
        );
        plan.set_disk_full(false);
        f.write_batch(&[(6, b"q")], true).unwrap();
        assert_eq!(content(&*mem, "x"), b"abcdezq");
    }

    #[test]
    fn failed_sync_leaves_data_not_durable() {
        let (mem, s, plan) = setup();
        let f = s.open("wal", true).unwrap();
        s.sync_dir("").unwrap();
        plan.fail_nth_sync(1);
        assert!(f.write_batch(&[(0, b"rec1")], true).is_err());
        assert!(mem.crash(CrashMode::DurableOnly).list("").unwrap() == vec!["wal"]);
        assert!(content(&mem.crash(CrashMode::DurableOnly), "wal").is_empty());
        f.sync_data().unwrap();
        assert_eq!(content(&mem.crash(CrashMode::DurableOnly), "wal"), b"rec1");
        plan.set_fail_all_syncs(true);
        assert!(f.sync_data().is_err());
        assert!(f.sync_data().is_err());
        plan.set_fail_all_syncs(false);
        f.sync_data().unwrap();
        assert_eq!(plan.counters().syncs, 5);
        assert_eq!(plan.counters().injected, 3);
    }

    #[test]
    fn bit_flip_on_read_of_one_file_and_offset() {
        let (_mem, s, plan) = setup();
        let f = s.open("p", true).unwrap();
        let g = s.open("q", true).unwrap();
        f.write_batch(&[(0, &[0u8; 16])], false).unwrap();
        g.write_batch(&[(0, &[0u8; 16])], false).unwrap();
        plan.flip_bit_on_read("p", 10, 3);
        let mut buf = [0u8; 16];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf[10], 8);
        assert_eq!(buf.iter().filter(|&&b| b != 0).count(), 1);
        let mut small = [0u8; 4];
        f.read_exact_at(&mut small, 6).unwrap();
        assert_eq!(small, [0, 0, 0, 0]);
        f.read_exact_at(&mut small, 8).unwrap();
        assert_eq!(small, [0, 0, 8, 0]);
        g.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [0u8; 16]);
        plan.clear();
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [0u8; 16]);
        assert_eq!(plan.counters().injected, 2);
    }

    #[test]
    fn prefix_limits_faults() {
        let (_mem, s, plan) = setup();
        plan.only_prefix(Some("wal/"));
        plan.set_disk_full(true);
        plan.set_fail_all_syncs(true);
        let p = s.open("packs/1", true).unwrap();
        let w = s.open("wal/1", true).unwrap();
        p.write_batch(&[(0, b"ok")], true).unwrap();
        assert!(w.write_batch(&[(0, b"no")], false).is_err());
        plan.set_disk_full(false);
        assert!(w.write_batch(&[(0, b"no")], true).is_err());
        s.sync_dir("wal").unwrap();
        s.rename("packs/1", "packs/2").unwrap();
        s.remove("packs/2").unwrap();
        assert!(s.list("").unwrap().contains(&"wal/1".to_owned()));
        let c = plan.counters();
        assert_eq!(
            (c.opens, c.sync_dirs, c.renames, c.removes, c.lists),
            (2, 1, 1, 1, 1)
        );
    }
}
