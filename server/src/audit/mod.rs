//! The audit log (NIS2, GDPR Art. 30): security-relevant events per tenant, append-only and
//! hash-chained so that an altered, removed or cut-off record is found by `skab audit verify`.
//! The server queues events and a writer thread appends them in batches; the admin commands
//! append theirs at once. Format, events and guarantees: `docs/security.md`, "Audit log".

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
    tx: Option<Sender<(String, Event)>>,
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
        let lost = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let (l, w) = (lost.clone(), written.clone());
        let writer = std::thread::Builder::new()
            .name("skab-audit".into())
            .spawn(move || write_batches(rx, store, l, w))?;
        Ok(Audit {
            logins: LoginRecorder::default(),
            tx: Some(tx),
            writer: Some(writer),
            lost,
            written,
        })
    }

    /// Queues `event` for `log` (a tenant name, or [`SYSTEM_LOG`]); never blocks.
    pub fn record(&self, log: &str, event: Event) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send((log.to_string(), event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
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
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Every `AUDIT_FLUSH_MS`, appends what has queued, one append (one fdatasync) per log.
fn write_batches(
    rx: Receiver<(String, Event)>,
    store: AuditStore,
    lost: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
) {
    // Where this writer's last append to each log ended (no read-back while it is the only one).
    let mut known: std::collections::HashMap<String, Option<store::LastWrite>> = Default::default();
    loop {
        std::thread::sleep(Duration::from_millis(AUDIT_FLUSH_MS));
        let mut batch: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok((log, e)) => batch.entry(log).or_default().push(e),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        for (log, events) in batch {
            let last = known.entry(log.clone()).or_default();
            match store.append_after(&log, &events, last) {
                Ok(()) => {
                    written.fetch_add(events.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    *last = None;
                    lost.fetch_add(events.len() as u64, Ordering::Relaxed);
                    tracing::error!(error = %e, log, "audit records not written");
                }
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
