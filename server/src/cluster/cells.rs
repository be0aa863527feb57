//! The cells this node holds: opening one from the bucket when its key is won, dropping it
//! when the key is lost (its fence closes: it writes nothing more), and handing it over
//! (saved, then released in etcd) when another node should have it or this node stops.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{fence_for, CellApp, Node};
use crate::config::Config;
use crate::limits::{CLUSTER_TAKEOVER_GRACE_MS, CLUSTER_TAKEOVER_NICE};

/// Under the node's data dir: one fresh directory per cell and epoch.
pub(crate) const CELLS_DIR: &str = "cells";
/// How long a handover waits for the requests in flight on the cell to finish.
const HANDOVER_DRAIN: Duration = Duration::from_secs(5);

/// A cell served here.
pub(crate) struct Serving {
    pub epoch: i64,
    pub app: CellApp,
    pub router: Arc<crate::route::Router>,
    /// Cleared when the cell is lost or handed over: its fence closes.
    pub alive: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub(crate) enum Cell {
    /// Not here. `since`: when this node last saw it without an owner (for takeover timing).
    Absent,
    /// Being rebuilt from the bucket after its key was won at `epoch`.
    Opening {
        epoch: i64,
    },
    Serving(Arc<Serving>),
    /// Being handed over.
    Closing,
}

impl Cell {
    pub(crate) fn absent() -> Cell {
        Cell::Absent
    }
    pub(crate) fn epoch(&self) -> Option<i64> {
        match self {
            Cell::Opening { epoch } => Some(*epoch),
            Cell::Serving(s) => Some(s.epoch),
            Cell::Absent | Cell::Closing => None,
        }
    }
}

/// The configuration of cell `c` opened at `epoch`: the node's, with its own data dir and
/// bucket prefix, and no `[cluster]`.
fn cell_config(node: &Node, c: u32, epoch: i64) -> (Config, PathBuf) {
    let mut cfg = node.config.clone();
    let dir = node
        .config
        .data_dir
        .join(CELLS_DIR)
        .join(format!("{c:05}"))
        .join(format!("{epoch}"));
    cfg.data_dir = dir.clone();
    cfg.cluster = None;
    if let Some(o) = &mut cfg.storage.object {
        o.prefix = format!("{}{}/cell-{c:05}/", o.prefix, node.cluster.name);
    }
    (cfg, dir)
}

/// Takes cell `c` won at `epoch` into service on a thread of its own: waits out the grace of
/// a takeover, rebuilds the data dir from the bucket, opens it, starts its tasks.
pub(crate) fn open(node: &Arc<Node>, c: u32, epoch: i64) {
    *node.cells[c as usize].lock() = Cell::Opening { epoch };
    let opener = node.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("skab-cell-{c}"))
        .spawn(move || {
            let node = opener;
            let started = Instant::now();
            match open_now(&node, c, epoch) {
                Ok(serving) => {
                    let mut slot = node.cells[c as usize].lock();
                    if slot.epoch() == Some(epoch) && serving.alive.load(Ordering::SeqCst) {
                        node.counters.cells_opened.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            cell = c,
                            epoch,
                            took_ms = started.elapsed().as_millis() as u64,
                            "cluster: cell open"
                        );
                        *slot = Cell::Serving(serving);
                    } else {
                        serving.alive.store(false, Ordering::SeqCst);
                        stop_tasks(&serving);
                        forget(&serving);
                    }
                }
                Err(e) => {
                    tracing::error!(cell = c, epoch, error = %e, "cluster: cell did not open; released");
                    {
                        let mut slot = node.cells[c as usize].lock();
                        if slot.epoch() == Some(epoch) {
                            *slot = Cell::Absent;
                        }
                    }
                    let _ = node.etcd.delete_if(&node.keys.cell(c), epoch);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(cell = c, error = %e, "cluster: no thread to open the cell");
        *node.cells[c as usize].lock() = Cell::Absent;
    }
}

fn open_now(node: &Arc<Node>, c: u32, epoch: i64) -> anyhow::Result<Arc<Serving>> {
    // The cell's requests wait for this: it goes before them (threads it starts inherit
    // the priority; without the right to raise it, nothing changes).
    crate::serve::set_this_threads_nice(CLUSTER_TAKEOVER_NICE);
    std::thread::sleep(Duration::from_millis(CLUSTER_TAKEOVER_GRACE_MS));
    let alive = Arc::new(AtomicBool::new(true));
    let (mut cfg, dir) = cell_config(node, c, epoch);
    // Directories of earlier epochs of this cell are left from a loss or handover.
    if let Some(parent) = dir.parent() {
        if let Ok(entries) = std::fs::read_dir(parent) {
            for e in entries.flatten() {
                if e.path() != dir {
                    let _ = std::fs::remove_dir_all(e.path())
                        .or_else(|_| std::fs::remove_file(e.path()));
                }
            }
        }
    }
    std::fs::create_dir_all(&dir)?;
    let fence = fence_for(node.lease.clone(), alive.clone());
    crate::crypt::register(&cfg);
    let app = crate::app::App::open_fenced(std::mem::take(&mut cfg), Some(fence))?;
    crate::serve::restore_locks(&app);
    let app = Arc::new(app);
    let tasks = node.runtime.block_on(crate::serve::start_app_tasks(&app))?;
    let router = Arc::new(crate::route::Router::new(app.clone()));
    Ok(Arc::new(Serving {
        epoch,
        app,
        router,
        alive,
        tasks,
    }))
}

/// Stops the cell's tasks and forgets its own files' mirror (its fence is closed by then,
/// or the cell was saved).
fn stop_tasks(s: &Serving) {
    for t in &s.tasks {
        t.abort();
    }
}

fn forget(s: &Serving) {
    crate::own_files::unregister(&s.app.config.data_dir);
}

/// Cell `c` is no longer this node's (its key is gone or someone else's): its fence closes at
/// once, so nothing more it writes is acknowledged.
pub(crate) fn lose(node: &Node, c: u32) {
    let old = std::mem::replace(&mut *node.cells[c as usize].lock(), Cell::Absent);
    if let Cell::Serving(s) = old {
        s.alive.store(false, Ordering::SeqCst);
        stop_tasks(&s);
        forget(&s);
        node.counters.cells_lost.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(cell = c, epoch = s.epoch, "cluster: cell lost");
    }
}

/// Hands cell `c` over: new requests wait, those in flight finish, the locks and a
/// checkpoint are saved into the bucket, then the key is released for the next owner.
pub(crate) fn release(node: &Arc<Node>, c: u32) {
    let old = std::mem::replace(&mut *node.cells[c as usize].lock(), Cell::Closing);
    let Cell::Serving(s) = old else {
        let mut slot = node.cells[c as usize].lock();
        if matches!(*slot, Cell::Closing) {
            *slot = old;
        }
        return;
    };
    let started = Instant::now();
    stop_tasks(&s);
    // Held by the cell (`s`) and its router; any more are requests in flight.
    while Arc::strong_count(&s.app) > 2 && started.elapsed() < HANDOVER_DRAIN {
        std::thread::sleep(Duration::from_millis(20));
    }
    if Arc::strong_count(&s.app) > 2 {
        tracing::warn!(
            cell = c,
            holders = Arc::strong_count(&s.app),
            "cluster: handing over with requests in flight"
        );
    }
    if s.alive.load(Ordering::SeqCst) {
        crate::serve::save_locks_and_checkpoint(&s.app);
    }
    s.alive.store(false, Ordering::SeqCst);
    forget(&s);
    if let Err(e) = node.etcd.delete_if(&node.keys.cell(c), s.epoch) {
        tracing::warn!(cell = c, error = %e, "cluster: cell key not released; it goes with the lease");
    }
    node.counters.cells_released.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        cell = c,
        epoch = s.epoch,
        took_ms = started.elapsed().as_millis() as u64,
        "cluster: cell handed over"
    );
    *node.cells[c as usize].lock() = Cell::Absent;
}

/// At shutdown: every cell served here handed over, in parallel.
pub(crate) fn release_all(node: &Arc<Node>) {
    std::thread::scope(|s| {
        for c in 0..node.cells.len() as u32 {
            if node.serving(c).is_some() {
                s.spawn(move || release(node, c));
            }
        }
    });
}
