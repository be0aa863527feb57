//! The audit log (NIS2, GDPR Art. 30): security-relevant events per tenant, append-only and
//! hash-chained so that an altered, removed or cut-off record is found by `skab audit verify`.
//! The server queues events and a writer thread appends them in batches (within
//! `AUDIT_FLUSH_MS`; changes of access such as shares are waited for, durably, before the
//! answer); the admin commands append theirs at once. Format, events and guarantees: `docs/security.md`, "Audit log".

pub mod chain;
pub mod logins;
pub mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam::channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};

pub use chain::Event;
pub use logins::LoginRecorder;
pub use store::{AuditStore, VerifyReport, SYSTEM_LOG};

use crate::limits::{AUDIT_FLUSH_MS, AUDIT_QUEUE_EVENTS};

/// The server's audit log: a bounded queue in front of a writer thread.
pub struct Audit {
    /// Which requests become login records.
    pub logins: LoginRecorder,
    tx: Option<Sender<Queued>>,
    /// Wakes the writer before its next turn (a durable record waits for it).
    wake: Option<Sender<()>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Events dropped because the queue was full (the disk could not keep up), or lost to a
    /// write error; shown in `/metrics`.
    lost: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl Audit {
    /// Starts the writer for the logs of `store`.
    pub fn start(store: AuditStore) -> std::io::Result<Audit> {
        let (tx, rx) = bounded(AUDIT_QUEUE_EVENTS);
        let (wake, woken) = bounded(1);
        let lost = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let (l, w) = (lost.clone(), written.clone());
        let writer = std::thread::Builder::new()
            .name("skab-audit".into())
            .spawn(move || write_batches(rx, woken, store, l, w))?;
        Ok(Audit {
            logins: LoginRecorder::default(),
            tx: Some(tx),
            wake: Some(wake),
            writer: Some(writer),
            lost,
            written,
        })
    }

    /// Queues `event` for `log` (a tenant name, or [`SYSTEM_LOG`]); never blocks.
    pub fn record(&self, log: &str, event: Event) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send((log.to_string(), event, None)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records `event` and waits until it is durable in `log` (for changes of who may access
    /// what, whose record must not be lost to a crash after the answer); false when it could
    /// not be written.
    pub async fn record_durable(&self, log: &str, event: Event) -> bool {
        let Some(tx) = &self.tx else { return false };
        let (done, written) = tokio::sync::oneshot::channel();
        if tx.try_send((log.to_string(), event, Some(done))).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if let Some(w) = &self.wake {
            let _ = w.try_send(());
        }
        written.await.unwrap_or(false)
    }

    /// Events not recorded (queue full or a write failed).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Events written and synced.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

impl Drop for Audit {
    /// Writes what is queued before the process goes.
    fn drop(&mut self) {
        drop(self.tx.take());
        drop(self.wake.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// A queued event, and who waits for it to be durable.
type Queued = (String, Event, Option<tokio::sync::oneshot::Sender<bool>>);

/// Every `AUDIT_FLUSH_MS` (or at once when a durable record waits), appends what has queued,
/// one append (one fdatasync) per log.
fn write_batches(
    rx: Receiver<Queued>,
    woken: Receiver<()>,
    store: AuditStore,
    lost: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
) {
    // Where this writer's last append to each log ended (no read-back while it is the only one).
    let mut known: std::collections::HashMap<String, Option<store::LastWrite>> = Default::default();
    loop {
        // A timeout or a wake-up; a closed wake channel means the server is going.
        let _ = woken.recv_timeout(Duration::from_millis(AUDIT_FLUSH_MS));
        let mut batch: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        let mut waiting: BTreeMap<String, Vec<tokio::sync::oneshot::Sender<bool>>> =
            BTreeMap::new();
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok((log, e, done)) => {
                    if let Some(d) = done {
                        waiting.entry(log.clone()).or_default().push(d);
                    }
                    batch.entry(log).or_default().push(e)
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        for (log, events) in batch {
            let last = known.entry(log.clone()).or_default();
            let ok = match store.append_after(&log, &events, last) {
                Ok(()) => {
                    written.fetch_add(events.len() as u64, Ordering::Relaxed);
                    true
                }
                Err(e) => {
                    *last = None;
                    lost.fetch_add(events.len() as u64, Ordering::Relaxed);
                    tracing::error!(error = %e, log, "audit records not written");
                    false
                }
            };
            for d in waiting.remove(&log).unwrap_or_default() {
                let _ = d.send(ok);
            }
        }
        if closed {
            return;
        }
    }
}

/// An event of now.
pub fn event(kind: &str) -> Event {
    Event {
        time: SystemTime::now(),
        kind: kind.to_string(),
        actor: None,
        source: None,
        target: None,
        detail: None,
    }
}
