//! Group commit, shared by the WAL ([`crate::wal::log`]) and the pack appender
//! ([`crate::pack::writer`]): appenders put their bytes into a pending batch under the state
//! lock and wake the flusher; one flusher thread takes whatever accumulated while the
//! previous write and sync ran, writes and syncs it without the lock, then moves a
//! [`DurableMark`] that waiters watch. See docs/architecture.md, "Group commit".
//!
//! What a batch is, how it is written and what a failure means stay with the user, through
//! [`Flush`]; this module owns the loop, the flags and the wake-ups.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::mark::DurableMark;

/// The flags every group-committed state carries (inside the user's state, under its lock).
#[derive(Debug, Default)]
pub(crate) struct Flags {
    /// The flusher took a batch and has not settled it yet.
    pub flushing: bool,
    /// A write or sync failed: nothing is reported durable again.
    pub failed: bool,
    /// The owner is closing: the flusher writes what is pending, then stops.
    pub shutdown: bool,
}

/// Upper bounds of the flush-time buckets, microseconds: 50 µs doubling to about 3.3 s (a
/// flush is a batch's write and its fdatasync).
pub const FLUSH_TIME_BUCKETS_US: [u64; 17] = [
    50, 100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400, 204_800, 409_600,
    819_200, 1_638_400, 3_276_800,
];

/// How long flushes took: per bucket of [`FLUSH_TIME_BUCKETS_US`] (not cumulative; the last
/// slot is everything slower), their count and their total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushTimes {
    pub buckets: [u64; FLUSH_TIME_BUCKETS_US.len() + 1],
    pub count: u64,
    pub total_us: u64,
}

impl FlushTimes {
    /// Adds another log's figures (the store sums its shards' logs).
    pub fn add(&mut self, o: &FlushTimes) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *a += b;
        }
        self.count += o.count;
        self.total_us += o.total_us;
    }
}

/// The live counters behind [`FlushTimes`]: the flusher adds one flush at a time.
#[derive(Debug, Default)]
struct FlushClock {
    buckets: [AtomicU64; FLUSH_TIME_BUCKETS_US.len() + 1],
    count: AtomicU64,
    total_us: AtomicU64,
}

impl FlushClock {
    fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let i = FLUSH_TIME_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(FLUSH_TIME_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
    }

    fn read(&self) -> FlushTimes {
        FlushTimes {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            count: self.count.load(Ordering::Relaxed),
            total_us: self.total_us.load(Ordering::Relaxed),
        }
    }
}

/// How a flush ended, as [`Flush::settle`] decides under the lock.
pub(crate) enum Settled<C> {
    /// Run the cleanup (without the lock), then move the mark to `to`.
    Durable { to: u64, cleanup: C },
    /// The mark will never move again: every waiter wakes and fails.
    Failed,
    /// Nothing to report.
    Unchanged,
}

/// One kind of group-committed log.
pub(crate) trait Flush: Sized + Send + Sync + 'static {
    /// What the state lock guards: the pending batch, the flags, the user's bookkeeping.
    type State: Send;
    /// What the flusher takes from the state to write.
    type Batch;
    /// Work [`Flush::settle`] leaves for after the lock is released.
    type Cleanup;

    fn flags(st: &mut Self::State) -> &mut Flags;
    fn has_pending(st: &Self::State) -> bool;
    /// Under the lock: takes the pending batch (`flushing` is set).
    fn take(gc: &GroupCommit<Self>, st: &mut Self::State) -> Self::Batch;
    /// Without the lock: writes and syncs the batch.
    fn write(gc: &GroupCommit<Self>, batch: &mut Self::Batch) -> std::io::Result<()>;
    /// Under the lock again (`flushing` cleared): records what the result means.
    fn settle(
        gc: &GroupCommit<Self>,
        st: &mut Self::State,
        batch: Self::Batch,
        result: std::io::Result<()>,
    ) -> Settled<Self::Cleanup>;
    /// Without the lock, before the mark moves.
    fn cleanup(gc: &GroupCommit<Self>, cleanup: Self::Cleanup);
}

/// A group-committed log: the user's shared part `F`, its state lock, the flusher's
/// condition variables and the durable mark. Derefs to `F`.
pub(crate) struct GroupCommit<F: Flush> {
    pub(crate) state: Mutex<F::State>,
    /// Wakes the flusher (something is pending, or shutdown).
    pub(crate) wake: Condvar,
    /// The flusher settled a batch (`flushing` turned false).
    pub(crate) idle: Condvar,
    pub(crate) durable: DurableMark,
    shared: F,
    clock: FlushClock,
}

impl<F: Flush> Deref for GroupCommit<F> {
    type Target = F;
    fn deref(&self) -> &F {
        &self.shared
    }
}

impl<F: Flush> GroupCommit<F> {
    /// A log whose mark starts at `durable`.
    pub(crate) fn new(shared: F, state: F::State, durable: u64) -> Self {
        GroupCommit {
            state: Mutex::new(state),
            wake: Condvar::new(),
            idle: Condvar::new(),
            durable: DurableMark::new(durable),
            shared,
            clock: FlushClock::default(),
        }
    }

    /// How long this log's flushes took so far.
    pub(crate) fn flush_times(&self) -> FlushTimes {
        self.clock.read()
    }

    /// Starts the flusher thread.
    pub(crate) fn spawn_flusher(self: &Arc<Self>, name: String) -> std::io::Result<JoinHandle<()>> {
        let gc = self.clone();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || gc.flusher())
    }

    /// Asks the flusher to write what is pending and stop.
    pub(crate) fn shut_down(&self) {
        F::flags(&mut self.state.lock()).shutdown = true;
        self.wake.notify_all();
    }

    /// Waits (under the state lock) until no batch is being flushed.
    pub(crate) fn wait_idle(&self, st: &mut MutexGuard<'_, F::State>) {
        while F::flags(st).flushing {
            self.idle.wait(st);
        }
    }

    fn flusher(&self) {
        loop {
            let mut batch = {
                let mut st = self.state.lock();
                while !F::has_pending(&st) && !F::flags(&mut st).shutdown {
                    self.wake.wait(&mut st);
                }
                if !F::has_pending(&st) || F::flags(&mut st).failed {
                    return;
                }
                F::flags(&mut st).flushing = true;
                F::take(self, &mut st)
            };
            let started = Instant::now();
            let result = F::write(self, &mut batch);
            self.clock.observe(started.elapsed());
            let settled = {
                let mut st = self.state.lock();
                F::flags(&mut st).flushing = false;
                F::settle(self, &mut st, batch, result)
            };
            // Waiters wake outside the lock, so appenders never wait behind the wake-ups.
            match settled {
                Settled::Durable { to, cleanup } => {
                    F::cleanup(self, cleanup);
                    self.durable.advance(to);
                }
                Settled::Failed => self.durable.fail(),
                Settled::Unchanged => {}
            }
            self.idle.notify_all();
        }
    }
}
