//! Pre-zeroing: keeps the space just ahead of a log file's append position written with zeros
//! and synced, so that the writer's appends overwrite allocated blocks and its fdatasync has no
//! file size or extent metadata to commit (2-3x faster on ext4). Best effort and in the
//! background: one thread for all files; an error only stops zeroing that file. Why and how:
//! `docs/architecture.md`, "Pre-zeroed appends".
//!
//! The zeroer never writes where the writer has written: it zeroes only from the writer's
//! front (the furthest offset reserved or written) on, in pieces it claims under the zone's
//! lock, and a writer about to write over a claimed piece waits for that piece first.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::{Storage, StorageFile};
use crate::limits::PREZERO_PIECE_BYTES;

static ZEROS: [u8; PREZERO_PIECE_BYTES] = [0; PREZERO_PIECE_BYTES];

/// How far ahead one file is zeroed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ZoneConfig {
    /// Bytes zeroed per round.
    pub step: u64,
    /// A round starts once fewer zeroed bytes than this lie ahead of the writer's front.
    pub low_water: u64,
    /// Nothing at or past this offset is zeroed (a pack's size target).
    pub limit: u64,
    /// Largest single zero write (at most `PREZERO_PIECE_BYTES`).
    pub piece: u64,
}

impl ZoneConfig {
    pub(crate) fn new(step: u64, low_water: u64, limit: u64) -> ZoneConfig {
        ZoneConfig {
            step,
            low_water,
            limit,
            piece: PREZERO_PIECE_BYTES as u64,
        }
    }
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Arc<Zone>>,
    working: bool,
    shutdown: bool,
}

#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
    idle: Condvar,
    /// No round starts while the file system has fewer free bytes than this (when known).
    floor: Option<(Arc<dyn Storage>, u64)>,
}

impl Queue {
    /// Whether the file system has room for zeros above the floor.
    fn room(&self) -> bool {
        let Some((storage, floor)) = &self.floor else {
            return true;
        };
        !matches!(storage.free_bytes(), Ok(Some(free)) if free < *floor)
    }

    fn push(&self, zone: Arc<Zone>) {
        let mut q = self.state.lock();
        if q.shutdown {
            return;
        }
        q.jobs.push_back(zone);
        drop(q);
        self.wake.notify_one();
    }

    fn is_shutdown(&self) -> bool {
        self.state.lock().shutdown
    }
}

/// The zeroing thread shared by every file of a store. Dropping the last handle stops it
/// (after the piece it is writing; queued seals are still carried out) and joins it, so no
/// zero is written after that.
pub(crate) struct PreZeroer {
    queue: Arc<Queue>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl PreZeroer {
    /// Starts the zeroing thread (no free-space floor).
    #[cfg(test)]
    pub(crate) fn start() -> io::Result<Arc<PreZeroer>> {
        Self::start_inner(Queue::default())
    }

    /// Starts the zeroing thread; it zeroes only while `storage` has at least `floor` free
    /// bytes, so zeros never take the last space (the store passes the point where uploads
    /// start to be careful: zeroing stops before space gets tight).
    pub(crate) fn start_with_floor(
        storage: Arc<dyn Storage>,
        floor: u64,
    ) -> io::Result<Arc<PreZeroer>> {
        Self::start_inner(Queue {
            floor: Some((storage, floor)),
            ..Queue::default()
        })
    }

    fn start_inner(queue: Queue) -> io::Result<Arc<PreZeroer>> {
        let queue = Arc::new(queue);
        let q = queue.clone();
        let thread = std::thread::Builder::new()
            .name("skab-prezero".into())
            .spawn(move || run(&q))?;
        Ok(Arc::new(PreZeroer {
            queue,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// A zone for file `name` whose writer's front is at `data_end` and whose bytes from
    /// `data_end` to `file_len` read as zeros. Opens its own handle of the file (so that a
    /// failed sync of the zeroer's never fails the writer's handle); `None` when that fails.
    pub(crate) fn zone(
        &self,
        storage: &dyn Storage,
        name: &str,
        data_end: u64,
        file_len: u64,
        cfg: ZoneConfig,
    ) -> Option<Arc<Zone>> {
        let file = match storage.open(name, false) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(file = name, error = %e, "cannot open a file to pre-zero it");
                return None;
            }
        };
        Some(Arc::new(Zone {
            file,
            name: name.to_owned(),
            cfg: ZoneConfig {
                piece: cfg.piece.clamp(1, PREZERO_PIECE_BYTES as u64),
                ..cfg
            },
            queue: self.queue.clone(),
            reserved: AtomicU64::new(data_end),
            state: Mutex::new(ZoneState {
                written: data_end,
                zeroed: file_len.max(data_end),
                ..ZoneState::default()
            }),
            changed: Condvar::new(),
            seal_done: Mutex::new(false),
        }))
    }

    /// Waits until no zone is queued or being worked on (tests).
    #[cfg(test)]
    pub(crate) fn wait_idle(&self) {
        let mut q = self.queue.state.lock();
        while !q.jobs.is_empty() || q.working {
            self.queue.idle.wait(&mut q);
        }
    }
}

impl Drop for PreZeroer {
    fn drop(&mut self) {
        self.queue.state.lock().shutdown = true;
        self.queue.wake.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

fn run(queue: &Queue) {
    loop {
        let zone = {
            let mut q = queue.state.lock();
            loop {
                if q.shutdown {
                    // No more zeroing, but cut the zero tails of files already sealed.
                    let left: Vec<Arc<Zone>> = q.jobs.drain(..).collect();
                    drop(q);
                    for z in left {
                        z.finish_seal();
                    }
                    return;
                }
                if let Some(z) = q.jobs.pop_front() {
                    q.working = true;
                    break z;
                }
                queue.wake.wait(&mut q);
            }
        };
        zone.work();
        let mut q = queue.state.lock();
        q.working = false;
        if q.jobs.is_empty() {
            queue.idle.notify_all();
        }
    }
}

#[derive(Default)]
struct ZoneState {
    /// End of everything the writer has written or is writing now.
    written: u64,
    /// Bytes below this are zeros or data (zeros durable once the round's sync returned).
    zeroed: u64,
    /// The piece the zeroer is writing now.
    busy: Option<(u64, u64)>,
    /// Waiting for or inside a round of the zeroing thread.
    queued: bool,
    /// No more zeroing (an error, a stop, or sealed).
    stopped: bool,
    /// The writer moved on: cut the file to this length (its data end).
    seal: Option<u64>,
}

/// One file kept zeroed ahead of its writer.
pub(crate) struct Zone {
    file: Arc<dyn StorageFile>,
    name: String,
    cfg: ZoneConfig,
    queue: Arc<Queue>,
    /// Furthest end the writer has reserved (no lock: appends only bump it).
    reserved: AtomicU64,
    state: Mutex<ZoneState>,
    changed: Condvar,
    seal_done: Mutex<bool>,
}

impl Zone {
    /// The writer reserved bytes up to `end` (they will be written later).
    pub(crate) fn reserve(&self, end: u64) {
        self.reserved.fetch_max(end, Ordering::AcqRel);
    }

    /// Call right before writing `[offset, end)`: waits for a zero piece in flight there, and
    /// from then on no zero is written below `end`.
    pub(crate) fn before_write(&self, offset: u64, end: u64) {
        let mut st = self.state.lock();
        while st.busy.is_some_and(|(a, b)| a < end && offset < b) {
            self.changed.wait(&mut st);
        }
        st.written = st.written.max(end);
        st.zeroed = st.zeroed.max(end);
    }

    /// Call after a write: starts a zeroing round when the zeroed space ahead ran low.
    pub(crate) fn after_write(self: &Arc<Self>) {
        let mut st = self.state.lock();
        if self.wants_round(&st) {
            st.queued = true;
            drop(st);
            self.queue.push(self.clone());
        }
    }

    /// Stops zeroing for good and waits for a piece in flight (before the writer cuts the file).
    pub(crate) fn stop(&self) {
        let mut st = self.state.lock();
        st.stopped = true;
        while st.busy.is_some() {
            self.changed.wait(&mut st);
        }
    }

    /// The writer moved on to another file: stop zeroing and cut the zeros after `data_end`
    /// (in the background; [`Zone::finish_seal`] does it now).
    pub(crate) fn seal(self: &Arc<Self>, data_end: u64) {
        let mut st = self.state.lock();
        st.stopped = true;
        st.seal = Some(data_end);
        if !st.queued {
            st.queued = true;
            drop(st);
            self.queue.push(self.clone());
        }
    }

    /// Cuts a sealed file's zero tail and syncs the cut, unless that was done already.
    pub(crate) fn finish_seal(&self) {
        let end = {
            let mut st = self.state.lock();
            let Some(end) = st.seal else {
                return;
            };
            while st.busy.is_some() {
                self.changed.wait(&mut st);
            }
            end
        };
        let mut done = self.seal_done.lock();
        if *done {
            return;
        }
        *done = true;
        let cut = match self.file.len() {
            Ok(len) if len > end => self.file.truncate(end).and_then(|()| self.file.sync_data()),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = cut {
            // Harmless: recovery reads a zero tail as a clean end.
            tracing::warn!(file = %self.name, error = %e, "cannot cut the zero tail of a sealed file");
        }
    }

    fn front(&self, st: &ZoneState) -> u64 {
        st.zeroed
            .max(st.written)
            .max(self.reserved.load(Ordering::Acquire))
    }

    fn wants_round(&self, st: &ZoneState) -> bool {
        if st.queued || st.stopped || st.seal.is_some() {
            return false;
        }
        let writer = st.written.max(self.reserved.load(Ordering::Acquire));
        st.zeroed.saturating_sub(writer) < self.cfg.low_water
            && st.zeroed.max(writer) < self.cfg.limit
    }

    /// One job of the zeroing thread: a round of zeroing, then the seal if one was asked for.
    fn work(self: &Arc<Self>) {
        let wrote = self.zero_round();
        let seal = {
            let mut st = self.state.lock();
            st.queued = false;
            if wrote && st.seal.is_none() && self.wants_round(&st) {
                // The writer went on past the new zeros while they were written.
                st.queued = true;
                drop(st);
                self.queue.push(self.clone());
                return;
            }
            st.seal
        };
        if seal.is_some() {
            self.finish_seal();
        }
    }

    /// Zeroes up to a step ahead of the writer's front; whether it wrote anything.
    fn zero_round(&self) -> bool {
        if !self.queue.room() {
            return false;
        }
        let target = {
            let st = self.state.lock();
            self.front(&st)
                .saturating_add(self.cfg.step)
                .min(self.cfg.limit)
        };
        let mut wrote = false;
        loop {
            let (a, b) = {
                let mut st = self.state.lock();
                if st.stopped || self.queue.is_shutdown() {
                    break;
                }
                let a = self.front(&st);
                if a >= target {
                    break;
                }
                let b = target.min(a.saturating_add(self.cfg.piece));
                st.busy = Some((a, b));
                (a, b)
            };
            // b - a <= piece <= ZEROS.len().
            let r = self
                .file
                .write_batch(&[(a, &ZEROS[..(b - a) as usize])], false);
            let mut st = self.state.lock();
            st.busy = None;
            self.changed.notify_all();
            match r {
                Ok(()) => {
                    st.zeroed = st.zeroed.max(b);
                    wrote = true;
                }
                Err(e) => {
                    st.stopped = true;
                    drop(st);
                    self.give_up("write", &e);
                    return false;
                }
            }
        }
        if wrote {
            if let Err(e) = self.file.sync_data() {
                self.state.lock().stopped = true;
                self.give_up("sync", &e);
                return false;
            }
        }
        wrote
    }

    fn give_up(&self, what: &str, e: &io::Error) {
        tracing::warn!(
            file = %self.name,
            error = %e,
            "pre-zeroing {what} failed; this file is appended to without it"
        );
    }

    /// (writer's front, zeroed end, stopped) for tests.
    #[cfg(test)]
    pub(crate) fn peek(&self) -> (u64, u64, bool) {
        let st = self.state.lock();
        (st.written, st.zeroed, st.stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{FaultPlan, FaultyStorage, MemStorage};
    use rand::{Rng, SeedableRng};

    fn read_all(f: &dyn StorageFile) -> Vec<u8> {
        let mut buf = vec![0u8; f.len().unwrap() as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    /// A writer appending non-zero records as fast as it can, racing a zeroer with tiny
    /// pieces: no record may ever be overwritten by zeros.
    #[test]
    fn zeros_never_land_on_written_bytes() {
        for seed in 0..20u64 {
            let mem = MemStorage::new();
            let zeroer = PreZeroer::start().unwrap();
            let file = mem.open("wal/x", true).unwrap();
            let cfg = ZoneConfig {
                step: 3000,
                low_water: 1000,
                limit: u64::MAX,
                piece: 97,
            };
            let zone = zeroer.zone(&mem, "wal/x", 0, 0, cfg).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut pos = 0u64;
            let mut records = Vec::new();
            for i in 0..400u32 {
                let len = rng.gen_range(1..400u64);
                let byte = (i % 255 + 1) as u8;
                // Reserve a little ahead of writing, as the pack writer does.
                zone.reserve(pos + len);
                if rng.gen_bool(0.3) {
                    std::thread::yield_now();
                }
                zone.before_write(pos, pos + len);
                file.write_batch(&[(pos, &vec![byte; len as usize])], rng.gen_bool(0.2))
                    .unwrap();
                zone.after_write();
                records.push((pos, len, byte));
                pos += len;
            }
            zeroer.wait_idle();
            let buf = read_all(file.as_ref());
            for (at, len, byte) in records {
                let got = &buf[at as usize..(at + len) as usize];
                assert!(
                    got.iter().all(|&b| b == byte),
                    "seed {seed}: record at {at} hit"
                );
            }
            assert!(buf.len() as u64 > pos, "nothing was zeroed ahead");
            assert!(buf[pos as usize..].iter().all(|&b| b == 0));
            let (_, zeroed, stopped) = zone.peek();
            assert!(!stopped);
            assert!(zeroed - pos <= cfg.step + cfg.low_water);
        }
    }

    #[test]
    fn zeroing_stays_below_the_limit_and_seal_cuts_the_tail() {
        let mem = MemStorage::new();
        let zeroer = PreZeroer::start().unwrap();
        let file = mem.open("packs/p", true).unwrap();
        file.write_batch(&[(0, b"header")], true).unwrap();
        let cfg = ZoneConfig::new(1 << 20, 1 << 19, 5000);
        let zone = zeroer.zone(&mem, "packs/p", 6, 6, cfg).unwrap();
        zone.before_write(6, 106);
        file.write_batch(&[(6, &[7u8; 100])], true).unwrap();
        zone.after_write();
        zeroer.wait_idle();
        assert_eq!(file.len().unwrap(), 5000);
        zone.seal(106);
        zeroer.wait_idle();
        assert_eq!(file.len().unwrap(), 106);
        // Sealed: further writes start no zeroing.
        zone.after_write();
        zeroer.wait_idle();
        assert_eq!(file.len().unwrap(), 106);
    }

    #[test]
    fn a_full_disk_stops_zeroing_for_that_file_only() {
        let plan = FaultPlan::new();
        let storage = FaultyStorage::new(MemStorage::new(), plan.clone());
        let zeroer = PreZeroer::start().unwrap();
        let file = storage.open("wal/a", true).unwrap();
        let cfg = ZoneConfig::new(64 << 10, 16 << 10, u64::MAX);
        let zone = zeroer.zone(&storage, "wal/a", 0, 0, cfg).unwrap();
        plan.set_space_left(Some(1000));
        zone.before_write(0, 10);
        file.write_batch(&[(0, &[1u8; 10])], true).unwrap();
        zone.after_write();
        zeroer.wait_idle();
        let (_, zeroed, stopped) = zone.peek();
        assert!(stopped, "ENOSPC did not stop zeroing");
        assert_eq!(zeroed, 10);
        plan.set_space_left(None);
        let before = plan.counters().written_bytes;
        zone.before_write(10, 20);
        file.write_batch(&[(10, &[2u8; 10])], true).unwrap();
        zone.after_write();
        zeroer.wait_idle();
        assert_eq!(
            plan.counters().written_bytes - before,
            10,
            "zeroing went on"
        );
        // Another file is still zeroed.
        let other = storage.open("wal/b", true).unwrap();
        let zb = zeroer.zone(&storage, "wal/b", 0, 0, cfg).unwrap();
        zb.before_write(0, 5);
        other.write_batch(&[(0, &[3u8; 5])], true).unwrap();
        zb.after_write();
        zeroer.wait_idle();
        assert_eq!(other.len().unwrap(), 5 + (64 << 10));
    }

    #[test]
    fn no_zeroing_below_the_free_space_floor() {
        let plan = FaultPlan::new();
        let storage: Arc<dyn Storage> =
            Arc::new(FaultyStorage::new(MemStorage::new(), plan.clone()));
        let zeroer = PreZeroer::start_with_floor(storage.clone(), 1 << 20).unwrap();
        let file = storage.open("wal/a", true).unwrap();
        let cfg = ZoneConfig::new(64 << 10, 16 << 10, u64::MAX);
        let zone = zeroer.zone(storage.as_ref(), "wal/a", 0, 0, cfg).unwrap();
        // 512 KiB free, floor 1 MiB: nothing is zeroed, and zeroing is not given up.
        plan.set_space_left(Some(512 << 10));
        zone.before_write(0, 10);
        file.write_batch(&[(0, &[1u8; 10])], true).unwrap();
        zone.after_write();
        zeroer.wait_idle();
        assert_eq!(file.len().unwrap(), 10);
        assert!(!zone.peek().2);
        // Space freed: the next write starts a round.
        plan.set_space_left(None);
        zone.before_write(10, 20);
        file.write_batch(&[(10, &[2u8; 10])], true).unwrap();
        zone.after_write();
        zeroer.wait_idle();
        assert_eq!(file.len().unwrap(), 20 + (64 << 10));
    }

    #[test]
    fn dropping_the_zeroer_stops_it() {
        let mem = MemStorage::new();
        let zeroer = PreZeroer::start().unwrap();
        mem.open("f", true).unwrap();
        let cfg = ZoneConfig::new(1 << 30, 1 << 29, u64::MAX);
        let zone = zeroer.zone(&mem, "f", 0, 0, cfg).unwrap();
        zone.after_write();
        drop(zeroer);
        let len = mem.open("f", false).unwrap().len().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(mem.open("f", false).unwrap().len().unwrap(), len);
        assert!(len < 1 << 30);
    }
}
