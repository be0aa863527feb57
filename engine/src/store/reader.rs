//! The reader threads: chunk reads that must wait for the disk run here, so that the event
//! loop that asked keeps serving its other connections (docs/io.md, "Reads").

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::limits::READER_THREADS;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// One queue for the whole process (one disk queue to fill, whatever the number of stores),
/// served by up to `READER_THREADS` threads, started while queued reads outnumber idle threads.
struct Pool {
    tx: Mutex<mpsc::Sender<Job>>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    started: usize,
    idle: usize,
    queued: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        Pool {
            tx: Mutex::new(tx),
            rx: Arc::new(Mutex::new(rx)),
            counts: Mutex::new(Counts::default()),
        }
    })
}

/// Runs `job` on a reader thread; on the calling thread if no reader thread can be started
/// (the process is out of threads), so that a read is never lost.
pub(crate) fn submit(job: Job) {
    let p = pool();
    {
        let mut c = p.counts.lock();
        if c.queued >= c.idle && c.started < READER_THREADS {
            if spawn_reader(p) {
                c.started += 1;
                c.idle += 1;
            } else if c.started == 0 {
                drop(c);
                job();
                return;
            }
        }
        c.queued += 1;
    }
    if let Err(mpsc::SendError(job)) = p.tx.lock().send(job) {
        // The receiver lives as long as the pool, which is the whole process: unreachable,
        // but a read must still be answered.
        p.counts.lock().queued -= 1;
        job();
    }
}

fn spawn_reader(p: &'static Pool) -> bool {
    let rx = p.rx.clone();
    std::thread::Builder::new()
        .name("skab-read".into())
        .spawn(move || loop {
            let job = match rx.lock().recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            {
                let mut c = p.counts.lock();
                c.idle -= 1;
                c.queued -= 1;
            }
            // A panicking read drops its answer (the stream reports an error), not the thread.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            p.counts.lock().idle += 1;
        })
        .is_ok()
}
