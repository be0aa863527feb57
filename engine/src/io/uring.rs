//! The Linux io_uring storage backend: a write batch and its fdatasync go to the kernel in one submission.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use io_uring::{opcode, squeue, types, IoUring, Probe};
use parking_lot::Mutex;

use super::std_fs::StdStorage;
use super::{check_range, poisoned_error, Storage, StorageFile};
use crate::limits::{
    URING_ENTER_RETRIES, URING_OP_BYTES_MAX, URING_POOL_IDLE_MAX, URING_RING_ENTRIES,
};

/// Files under one root directory; data goes through io_uring, directory operations
/// through std::fs.
pub struct UringStorage {
    fs: StdStorage,
    pool: Arc<RingPool>,
}

impl std::fmt::Debug for UringStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringStorage")
            .field("root", &self.fs.root())
            .finish()
    }
}

impl UringStorage {
    /// Opens the storage at `root` (created if missing) after checking that the kernel
    /// lets this process use io_uring with the needed operations; an error means "use
    /// another backend" (seccomp, `io_uring_disabled`, old kernel).
    pub fn try_new(root: &Path) -> io::Result<Self> {
        let mut ring = new_ring().map_err(|e| unavailable("cannot create a ring", e))?;
        probe(&mut ring)?;
        let fs = StdStorage::new(root)?;
        let pool = Arc::new(RingPool {
            idle: Mutex::new(vec![ring]),
        });
        Ok(UringStorage { fs, pool })
    }
}

fn unavailable(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("io_uring unavailable: {what}: {e}"))
}

fn new_ring() -> io::Result<IoUring> {
    IoUring::new(URING_RING_ENTRIES)
}

/// Checks that the ring supports every opcode used here and completes a NOP.
fn probe(ring: &mut IoUring) -> io::Result<()> {
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| unavailable("opcode probe refused (kernel older than 5.6?)", e))?;
    for (code, name) in [
        (opcode::Nop::CODE, "NOP"),
        (opcode::Read::CODE, "READ"),
        (opcode::Write::CODE, "WRITE"),
        (opcode::Fsync::CODE, "FSYNC"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring unavailable: kernel lacks the {name} operation"),
            ));
        }
    }
    // SAFETY: a NOP points at no memory.
    let res = unsafe { run_ops(ring, vec![opcode::Nop::new().build()]) }
        .map_err(|e| unavailable("NOP submission failed", e))?;
    match res.first() {
        Some(&r) if r >= 0 => Ok(()),
        Some(&r) => Err(unavailable("NOP failed", io::Error::from_raw_os_error(-r))),
        None => Err(io::Error::other("io_uring unavailable: NOP lost")),
    }
}

/// Rings free for use; a thread takes one per call, so rings are never shared.
struct RingPool {
    idle: Mutex<Vec<IoUring>>,
}

impl RingPool {
    fn take(&self) -> io::Result<PooledRing<'_>> {
        let ring = match self.idle.lock().pop() {
            Some(r) => r,
            None => new_ring()?,
        };
        Ok(PooledRing {
            ring: Some(ring),
            pool: self,
        })
    }
}

/// A ring on loan; goes back to the pool on drop unless discarded.
struct PooledRing<'a> {
    ring: Option<IoUring>,
    pool: &'a RingPool,
}

impl PooledRing<'_> {
    /// Runs `ops` on the ring (see [`run_ops`]); a ring whose submission failed is closed.
    ///
    /// # Safety
    /// As [`run_ops`].
    unsafe fn run(&mut self, ops: Vec<squeue::Entry>) -> io::Result<Vec<i32>> {
        let Some(ring) = self.ring.as_mut() else {
            return Err(io::Error::other("io_uring ring already discarded"));
        };
        let res = run_ops(ring, ops);
        if res.is_err() {
            // It may hold unsubmitted entries: never reuse it. Closing it drops them.
            self.ring = None;
        }
        res
    }
}

impl Drop for PooledRing<'_> {
    fn drop(&mut self) {
        if let Some(ring) = self.ring.take() {
            let mut idle = self.pool.idle.lock();
            if idle.len() < URING_POOL_IDLE_MAX {
                idle.push(ring);
            }
        }
    }
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
    )
}

/// Submits `ops` in one submission (entry `i` gets user data `i`), waits for all their
/// completions and returns their results in order. An error means nothing is in flight.
///
/// # Safety
/// Every buffer and file descriptor an entry refers to must stay valid until this returns.
unsafe fn run_ops(ring: &mut IoUring, ops: Vec<squeue::Entry>) -> io::Result<Vec<i32>> {
    let n = ops.len();
    {
        let mut sq = ring.submission();
        if n > sq.capacity() - sq.len() {
            return Err(io::Error::other("io_uring batch larger than the ring"));
        }
        for (i, op) in ops.into_iter().enumerate() {
            // SAFETY: the caller keeps the buffers alive until every completion is reaped,
            // and this function does not return before that while anything is in flight.
            sq.push(&op.user_data(i as u64))
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
    }
    let mut results: Vec<Option<i32>> = vec![None; n];
    let (mut submitted, mut completed, mut failures) = (0usize, 0usize, 0u32);
    loop {
        for cqe in ring.completion() {
            let slot = usize::try_from(cqe.user_data())
                .ok()
                .and_then(|i| results.get_mut(i));
            if let Some(slot @ None) = slot {
                *slot = Some(cqe.result());
                completed += 1;
            }
        }
        if completed == n {
            break;
        }
        match ring.submit_and_wait(n - completed) {
            Ok(k) => {
                submitted += k;
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                let in_flight = submitted > completed;
                if !in_flight && (!transient(&e) || failures > URING_ENTER_RETRIES) {
                    return Err(e);
                }
                if failures > URING_ENTER_RETRIES {
                    // Returning now would let the kernel touch buffers the caller frees.
                    tracing::error!(error = %e, "io_uring_enter keeps failing with operations in flight");
                    std::process::abort();
                }
                if e.raw_os_error() != Some(libc::EINTR) {
                    std::thread::yield_now();
                }
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(-libc::EIO))
        .collect())
}

impl Storage for UringStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = self.fs.open_file(name, create)?;
        Ok(Arc::new(UringFile {
            file,
            pool: self.pool.clone(),
            poisoned: AtomicBool::new(false),
        }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.fs.remove(name)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.fs.rename(from, to)
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.fs.list(prefix)
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.fs.sync_dir(dir)
    }

    fn kind(&self) -> &'static str {
        "io_uring"
    }

    fn free_bytes(&self) -> io::Result<Option<u64>> {
        self.fs.free_bytes()
    }

    fn open_direct(&self, name: &str) -> io::Result<Option<Arc<dyn StorageFile>>> {
        Ok(self.fs.open_direct_file(name)?.map(|file| {
            Arc::new(UringFile {
                file,
                pool: self.pool.clone(),
                poisoned: AtomicBool::new(false),
            }) as Arc<dyn StorageFile>
        }))
    }
}

struct UringFile {
    file: File,
    pool: Arc<RingPool>,
    poisoned: AtomicBool,
}

fn fd(file: &File) -> types::Fd {
    types::Fd(file.as_raw_fd())
}

impl UringFile {
    fn check_poisoned(&self) -> io::Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(poisoned_error())
        } else {
            Ok(())
        }
    }

    fn sync_failed(&self, r: i32) -> io::Error {
        self.poisoned.store(true, Ordering::Release);
        if r < 0 {
            io::Error::from_raw_os_error(-r)
        } else {
            io::Error::other(format!("io_uring fdatasync returned {r}"))
        }
    }
}

/// A result that says "try this operation again".
fn retryable(r: i32) -> bool {
    r == -libc::EINTR || r == -libc::EAGAIN
}

impl StorageFile for UringFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len())?;
        let mut ring = self.pool.take()?;
        let (mut done, mut stalls) = (0usize, 0u32);
        while done < buf.len() {
            let rest = &mut buf[done..];
            let len = rest.len().min(URING_OP_BYTES_MAX);
            // Both bounded by check_range and URING_OP_BYTES_MAX.
            let op = opcode::Read::new(fd(&self.file), rest.as_mut_ptr(), len as u32)
                .offset(offset + done as u64)
                .build();
            // SAFETY: `buf` and the file outlive the call, which waits for the completion.
            let r = unsafe { ring.run(vec![op]) }?
                .first()
                .copied()
                .unwrap_or(-libc::EIO);
            if r > 0 {
                done += r as usize;
            } else if r == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {} bytes at {offset} past the end of the file",
                        buf.len()
                    ),
                ));
            } else if retryable(r) && stalls < URING_ENTER_RETRIES {
                stalls += 1;
            } else {
                return Err(io::Error::from_raw_os_error(-r));
            }
        }
        Ok(())
    }

    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        // A plain system call: cheaper than a ring round trip, and it never waits.
        super::pread_nowait(&self.file, buf, offset)
    }

    fn write_batch(&self, writes: &[(u64, &[u8])], sync: bool) -> io::Result<()> {
        self.check_poisoned()?;
        let mut pending: VecDeque<(u64, &[u8])> = VecDeque::new();
        for &(offset, data) in writes {
            check_range(offset, data.len())?;
            for (i, piece) in data.chunks(URING_OP_BYTES_MAX).enumerate() {
                pending.push_back((offset + (i * URING_OP_BYTES_MAX) as u64, piece));
            }
        }
        let mut need_sync = sync;
        // Room for the fdatasync after the writes of one submission.
        let per_submission = URING_RING_ENTRIES as usize - 1;
        let mut ring = self.pool.take()?;
        let mut stalls = 0u32;
        while !pending.is_empty() || need_sync {
            let take = pending.len().min(per_submission);
            let with_sync = need_sync && take == pending.len();
            let batch: Vec<(u64, &[u8])> = pending.drain(..take).collect();
            let mut ops = Vec::with_capacity(take + 1);
            for (i, &(offset, data)) in batch.iter().enumerate() {
                // `data.len()` is at most URING_OP_BYTES_MAX, which fits in u32.
                let mut op = opcode::Write::new(fd(&self.file), data.as_ptr(), data.len() as u32)
                    .offset(offset)
                    .build();
                // Linked: in order (overlapping writes land as written), and a failed or
                // short write cancels the rest and the fdatasync.
                if i + 1 < take || with_sync {
                    op = op.flags(squeue::Flags::IO_LINK);
                }
                ops.push(op);
            }
            if with_sync {
                ops.push(
                    opcode::Fsync::new(fd(&self.file))
                        .flags(types::FsyncFlags::DATASYNC)
                        .build(),
                );
            }
            // SAFETY: `writes` and the file outlive the call, which waits for every completion.
            let res = unsafe { ring.run(ops) }?;
            let mut retry: Vec<(u64, &[u8])> = Vec::new();
            let mut broken = false;
            let mut progress = false;
            for (i, &(offset, data)) in batch.iter().enumerate() {
                let r = res.get(i).copied().unwrap_or(-libc::EIO);
                if broken {
                    // Everything after a short write was cancelled (or, unlinked by a
                    // kernel quirk, ran anyway): write the rest again, in order.
                    if r < 0 && r != -libc::ECANCELED && !retryable(r) {
                        return Err(io::Error::from_raw_os_error(-r));
                    }
                    retry.push((offset, data));
                } else if r >= 0 && r as usize >= data.len() {
                    progress = true;
                } else if r > 0 {
                    progress = true;
                    broken = true;
                    let n = r as usize;
                    retry.push((offset + n as u64, &data[n..]));
                } else if r == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("io_uring write at {offset} stored nothing"),
                    ));
                } else if retryable(r) {
                    broken = true;
                    retry.push((offset, data));
                } else {
                    return Err(io::Error::from_raw_os_error(-r));
                }
            }
            if with_sync {
                let r = res.get(take).copied().unwrap_or(-libc::EIO);
                if r == 0 {
                    // Synced before a retried write landed (unlinked quirk): sync again.
                    need_sync = broken;
                } else if !(broken && r == -libc::ECANCELED) {
                    return Err(self.sync_failed(r));
                }
            }
            if !progress && !retry.is_empty() {
                stalls += 1;
                if stalls > URING_ENTER_RETRIES {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "io_uring writes make no progress",
                    ));
                }
            }
            for w in retry.into_iter().rev() {
                pending.push_front(w);
            }
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.check_poisoned()?;
        let mut ring = self.pool.take()?;
        let op = opcode::Fsync::new(fd(&self.file))
            .flags(types::FsyncFlags::DATASYNC)
            .build();
        // SAFETY: the op refers to no memory; the file outlives the call.
        let r = unsafe { ring.run(vec![op]) }?
            .first()
            .copied()
            .unwrap_or(-libc::EIO);
        if r == 0 {
            Ok(())
        } else {
            Err(self.sync_failed(r))
        }
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        check_range(len, 0)?;
        self.file.set_len(len)
    }
}
