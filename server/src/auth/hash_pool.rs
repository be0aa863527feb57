//! The password-hashing pool: argon2 verifications run here, on threads of their own at a
//! lower CPU priority than the serving event loops, behind a queue bounded by expected wait.
//!
//! Why, the admission rule and the measurements behind the defaults: `docs/auth.md`
//! ("Password hashing pool").

use crate::limits::{ARGON2_VERIFY_MS_ESTIMATE, HASH_WAIT_BUCKETS_MS};
use crate::users::password;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a finished verification is handed to: a waiting request, or a cache refresh done in
/// the background.
type Then = Box<dyn FnOnce(Result<bool, password::PasswordError>) + Send>;

struct Job {
    phc: String,
    password: String,
    queued_at: Instant,
    /// False for a background re-verification: nobody waits, so none is refused for its
    /// caller going away.
    wanted: Box<dyn Fn() -> bool + Send>,
    then: Then,
}

/// The pool's figures (`/metrics`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolFigures {
    /// Hashing threads.
    pub threads: u64,
    /// Verifications waiting for a thread, now.
    pub queued: u64,
    /// Verifications running, now.
    pub running: u64,
    /// Verifications done since start (including background re-verifications).
    pub runs: u64,
    /// Logins answered 503 at once because the expected wait was over the maximum.
    pub refused: u64,
    /// Verifications whose caller had gone before a thread took them (skipped).
    pub abandoned: u64,
    /// Mean wall time of one verification (moving average), microseconds.
    pub mean_hash_us: u64,
    /// Waits from submission to a thread taking the job: counts per `HASH_WAIT_BUCKETS_MS`
    /// bucket (not cumulative), then the ones above the last bound.
    pub wait_buckets: [u64; HASH_WAIT_BUCKETS_MS.len() + 1],
    /// Sum of all waits, microseconds.
    pub wait_sum_us: u64,
}

#[derive(Default)]
struct Shared {
    queued: AtomicU64,
    running: AtomicU64,
    runs: AtomicU64,
    refused: AtomicU64,
    abandoned: AtomicU64,
    mean_hash_ns: AtomicU64,
    wait_buckets: [AtomicU64; HASH_WAIT_BUCKETS_MS.len() + 1],
    wait_sum_us: AtomicU64,
}

impl Shared {
    fn observe_wait(&self, wait: Duration) {
        let ms = wait.as_secs_f64() * 1e3;
        let i = HASH_WAIT_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b as f64)
            .unwrap_or(HASH_WAIT_BUCKETS_MS.len());
        self.wait_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.wait_sum_us
            .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
    }

    /// Moving average over about the last 8 runs (wall time: a starved pool measures slow,
    /// which is what the admission rule needs to know).
    fn observe_hash(&self, took: Duration) {
        let new = took.as_nanos().min(u64::MAX as u128) as u64;
        let old = self.mean_hash_ns.load(Ordering::Relaxed);
        let mean = old - old / 8 + new / 8;
        self.mean_hash_ns.store(mean.max(1), Ordering::Relaxed);
    }
}

/// Why a verification was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded {
    /// The wait the queue promises now; the client is told to come back after it.
    pub expected_wait: Duration,
}

/// Settings of the pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Hashing threads (at least 1).
    pub threads: usize,
    /// Nice value of the hashing threads (0: as the serving threads; 19: lowest).
    pub nice: i32,
    /// Expected wait beyond which a login is refused at once; zero refuses whenever a
    /// verification would have to queue.
    pub wait_max: Duration,
}

/// A fixed set of hashing threads fed by one queue. Dropping the pool ends the threads once
/// the queue is drained.
pub struct HashPool {
    tx: crossbeam::channel::Sender<Job>,
    shared: Arc<Shared>,
    threads: usize,
    wait_max: Duration,
}

impl HashPool {
    /// Starts `cfg.threads` hashing threads.
    pub fn start(cfg: PoolConfig) -> std::io::Result<HashPool> {
        let threads = cfg.threads.max(1);
        let (tx, rx) = crossbeam::channel::unbounded::<Job>();
        let shared = Arc::new(Shared {
            mean_hash_ns: AtomicU64::new(ARGON2_VERIFY_MS_ESTIMATE * 1_000_000),
            ..Shared::default()
        });
        for i in 0..threads {
            let rx = rx.clone();
            let shared = shared.clone();
            let nice = cfg.nice;
            std::thread::Builder::new()
                .name(format!("skab-hash-{i}"))
                .spawn(move || {
                    crate::serve::set_this_threads_nice(nice);
                    for job in rx.iter() {
                        shared.queued.fetch_sub(1, Ordering::Relaxed);
                        shared.observe_wait(job.queued_at.elapsed());
                        if !(job.wanted)() {
                            shared.abandoned.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        shared.running.fetch_add(1, Ordering::Relaxed);
                        let t0 = Instant::now();
                        let r = password::verify_password(&job.phc, &job.password);
                        shared.observe_hash(t0.elapsed());
                        shared.runs.fetch_add(1, Ordering::Relaxed);
                        shared.running.fetch_sub(1, Ordering::Relaxed);
                        (job.then)(r);
                    }
                })?;
        }
        Ok(HashPool {
            tx,
            shared,
            threads,
            wait_max: cfg.wait_max,
        })
    }

    /// The wait a verification submitted now can expect before a thread takes it: the
    /// measured mean time of one verification x the verifications ahead of it / threads.
    pub fn expected_wait(&self) -> Duration {
        let ahead = self.shared.queued.load(Ordering::Relaxed);
        let mean = self.shared.mean_hash_ns.load(Ordering::Relaxed);
        Duration::from_nanos(mean.saturating_mul(ahead) / self.threads as u64)
    }

    /// Queues a verification whose result a request waits for; refused at once when the
    /// expected wait is over the maximum.
    pub fn verify(
        &self,
        phc: String,
        password: String,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<bool, password::PasswordError>>, Overloaded>
    {
        let expected_wait = self.expected_wait();
        if expected_wait > self.wait_max {
            self.shared.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Overloaded { expected_wait });
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        let reply = Arc::new(parking_lot::Mutex::new(Some(reply)));
        let still = reply.clone();
        self.submit(Job {
            phc,
            password,
            queued_at: Instant::now(),
            // A request whose client went away (and every request sharing its run) is not
            // worth a verification.
            wanted: Box::new(move || still.lock().as_ref().is_some_and(|r| !r.is_closed())),
            then: Box::new(move |r| {
                if let Some(reply) = reply.lock().take() {
                    let _ = reply.send(r);
                }
            }),
        });
        Ok(rx)
    }

    /// Queues a re-verification nobody waits for, only when no verification is queued (it
    /// never delays a login); true if queued.
    pub fn verify_in_background(
        &self,
        phc: String,
        password: String,
        then: impl FnOnce(bool) + Send + 'static,
    ) -> bool {
        if self.shared.queued.load(Ordering::Relaxed) > 0 {
            return false;
        }
        self.submit(Job {
            phc,
            password,
            queued_at: Instant::now(),
            wanted: Box::new(|| true),
            then: Box::new(move |r| then(r.unwrap_or(false))),
        });
        true
    }

    fn submit(&self, job: Job) {
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(job).is_err() {
            // The threads are gone only when the pool is dropped, which needs `&mut self`.
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Occupies every hashing thread until the returned hold is dropped (tests: logins queue
    /// behind it whatever the scheduling). The holding jobs end without hashing.
    #[cfg(test)]
    pub(crate) fn hold_all_threads(&self) -> PoolHold {
        let gate = Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
        let before = self.shared.abandoned.load(Ordering::Relaxed);
        for _ in 0..self.threads {
            let gate = gate.clone();
            self.submit(Job {
                phc: String::new(),
                password: String::new(),
                queued_at: Instant::now(),
                wanted: Box::new(move || {
                    let (open, cv) = &*gate;
                    let mut open = open.lock();
                    while !*open {
                        cv.wait(&mut open);
                    }
                    false
                }),
                then: Box::new(|_| {}),
            });
        }
        while self.shared.queued.load(Ordering::Relaxed) > 0 {
            std::thread::yield_now();
        }
        PoolHold {
            gate,
            shared: self.shared.clone(),
            done_at: before + self.threads as u64,
        }
    }

    /// The pool's figures now.
    pub fn figures(&self) -> PoolFigures {
        let s = &self.shared;
        PoolFigures {
            threads: self.threads as u64,
            queued: s.queued.load(Ordering::Relaxed),
            running: s.running.load(Ordering::Relaxed),
            runs: s.runs.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            abandoned: s.abandoned.load(Ordering::Relaxed),
            mean_hash_us: s.mean_hash_ns.load(Ordering::Relaxed) / 1000,
            wait_buckets: std::array::from_fn(|i| s.wait_buckets[i].load(Ordering::Relaxed)),
            wait_sum_us: s.wait_sum_us.load(Ordering::Relaxed),
        }
    }
}

/// Every hashing thread held (`HashPool::hold_all_threads`); dropping it lets them go and
/// waits until they have.
#[cfg(test)]
pub(crate) struct PoolHold {
    gate: Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
    shared: Arc<Shared>,
    done_at: u64,
}

#[cfg(test)]
impl Drop for PoolHold {
    fn drop(&mut self) {
        *self.gate.0.lock() = true;
        self.gate.1.notify_all();
        while self.shared.abandoned.load(Ordering::Relaxed) < self.done_at {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(pw: &str) -> String {
        password::hash_with(pw, 64, 1, 1).unwrap()
    }

    #[tokio::test]
    async fn verifies_and_refuses_beyond_the_expected_wait() {
        let pool = HashPool::start(PoolConfig {
            threads: 1,
            nice: 0,
            wait_max: Duration::from_secs(3600),
        })
        .unwrap();
        let h = cheap("pw");
        assert!(pool
            .verify(h.clone(), "pw".into())
            .unwrap()
            .await
            .unwrap()
            .unwrap());
        assert!(!pool
            .verify(h.clone(), "no".into())
            .unwrap()
            .await
            .unwrap()
            .unwrap());
        assert_eq!(pool.figures().runs, 2);
        assert_eq!(pool.figures().wait_buckets.iter().sum::<u64>(), 2);

        // With no wait allowed, a verification that would queue is refused at once.
        let strict = HashPool::start(PoolConfig {
            threads: 1,
            nice: 0,
            wait_max: Duration::ZERO,
        })
        .unwrap();
        // Occupy the thread and queue one behind it (submitted directly: nobody waits).
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let hold_rx = parking_lot::Mutex::new(hold_rx);
        strict.submit(Job {
            phc: h.clone(),
            password: "pw".into(),
            queued_at: Instant::now(),
            wanted: Box::new(move || hold_rx.lock().recv().is_ok()),
            then: Box::new(|_| {}),
        });
        strict.submit(Job {
            phc: h.clone(),
            password: "pw".into(),
            queued_at: Instant::now(),
            wanted: Box::new(|| true),
            then: Box::new(|_| {}),
        });
        while strict.figures().queued != 1 {
            std::thread::yield_now();
        }
        let refused = strict.verify(h.clone(), "pw".into()).unwrap_err();
        assert!(refused.expected_wait > Duration::ZERO);
        assert_eq!(strict.figures().refused, 1);
        assert!(!strict.verify_in_background(h.clone(), "pw".into(), |_| {}));
        hold_tx.send(()).unwrap();
        while strict.figures().queued != 0 || strict.figures().running != 0 {
            std::thread::yield_now();
        }
        let ok = strict
            .verify(h, "pw".into())
            .unwrap()
            .await
            .unwrap()
            .unwrap();
        assert!(ok);
    }
}
