//! Measurements of a built population: memory, disk, recovery, metadata rates, scrub, GC and compaction, and the machine.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use skab_engine::{Store, StoreConfig};

use super::population::{name, user_key};

/// How long each metadata operation rate is measured.
pub const RATE_WINDOW: Duration = Duration::from_millis(500);
/// Page size /proc/self/statm counts in, bytes.
pub const PAGE_BYTES: u64 = 4096;
/// Compaction threshold used for the measured compaction (share of garbage in a pack).
pub const COMPACT_DEAD_RATIO: f64 = 0.3;

/// One measured figure and its unit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub unit: String,
}

pub type Figures = BTreeMap<String, Figure>;

pub fn put(f: &mut Figures, key: &str, value: f64, unit: &str) {
    f.insert(
        key.to_string(),
        Figure {
            value,
            unit: unit.to_string(),
        },
    );
}

pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * PAGE_BYTES
}

pub fn config() -> StoreConfig {
    StoreConfig {
        io: skab_engine::io::IoChoice::Std,
        ..Default::default()
    }
}

/// Bytes of all files under `dir`, and of those whose name says they are packs.
pub fn disk_bytes(dir: &Path) -> (u64, u64) {
    let (mut all, mut packs) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                // Allocated bytes, not apparent size (pre-zeroed pack space is sparse or not).
                use std::os::unix::fs::MetadataExt;
                let b = m.blocks() * 512;
                all += b;
                if e.path().to_string_lossy().contains("pack") {
                    packs += b;
                }
            }
        }
    }
    (all, packs)
}

/// Opens the store in this (fresh) process and measures everything that needs an open store.
pub fn measure_open(dir: &Path, users: u64, files: usize, tenants: u64) -> Result<Figures> {
    let mut f = Figures::new();
    let before = rss_bytes();
    let started = Instant::now();
    let store = Store::open(dir, config())?;
    let open_s = started.elapsed().as_secs_f64();
    let rss = rss_bytes().saturating_sub(before) as f64;
    let stats = store.stats();
    put(&mut f, "recovery_s", open_s, "s");
    put(&mut f, "rss_after_open_bytes", rss, "bytes");
    put(
        &mut f,
        "rss_per_user_bytes",
        rss / users.max(1) as f64,
        "bytes/user",
    );
    put(
        &mut f,
        "rss_per_entry_bytes",
        rss / stats.entries.max(1) as f64,
        "bytes/entry",
    );
    put(&mut f, "entries", stats.entries as f64, "entries");
    put(&mut f, "logical_bytes", stats.logical_bytes as f64, "bytes");
    put(&mut f, "stored_bytes", stats.stored_bytes as f64, "bytes");
    put(&mut f, "pack_bytes", stats.pack_bytes as f64, "bytes");
    put(
        &mut f,
        "stored_per_logical",
        stats.stored_bytes as f64 / stats.logical_bytes.max(1) as f64,
        "ratio",
    );
    put(
        &mut f,
        "pack_per_logical",
        stats.pack_bytes as f64 / stats.logical_bytes.max(1) as f64,
        "ratio",
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rng = StdRng::seed_from_u64(users);
    let pick = |rng: &mut StdRng| -> Result<(skab_engine::SpaceKey, u64)> {
        let u = rng.gen_range(0..users.max(1));
        Ok((user_key(u, tenants)?, u))
    };
    // Lookups and listings: read-only, random users.
    let mut n = 0u64;
    let t = Instant::now();
    while t.elapsed() < RATE_WINDOW {
        let (key, _) = pick(&mut rng)?;
        let i = rng.gen_range(0..files.max(1));
        store.stat(&key, &[name("docs"), name(&format!("f{i}"))])?;
        n += 1;
    }
    put(
        &mut f,
        "lookup_per_s",
        n as f64 / t.elapsed().as_secs_f64(),
        "ops/s",
    );
    let mut n = 0u64;
    let t = Instant::now();
    while t.elapsed() < RATE_WINDOW {
        let (key, _) = pick(&mut rng)?;
        store.list(&key, &[name("docs")])?;
        n += 1;
    }
    put(
        &mut f,
        "list_per_s",
        n as f64 / t.elapsed().as_secs_f64(),
        "ops/s",
    );
    // Creates and moves: each durable (WAL fsync), one at a time as a single client would.
    let (creates, moves, c_s, m_s) = rt.block_on(async {
        let mut made = Vec::new();
        let t = Instant::now();
        while t.elapsed() < RATE_WINDOW {
            let (key, u) = pick(&mut rng)?;
            let p = format!("new{users}-{}-{u}", made.len());
            store
                .put_bytes(&key, &[name(&p)], Bytes::from_static(b"capacity probe\n"))
                .await?;
            made.push((key, p));
        }
        let c_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut moved = 0u64;
        for (key, p) in &made {
            if t.elapsed() >= RATE_WINDOW {
                break;
            }
            store
                .rename(
                    key,
                    &[name(p)],
                    &[name("docs"), name(&format!("m-{p}"))],
                    false,
                )
                .await?;
            moved += 1;
        }
        anyhow::Ok((made.len() as u64, moved, c_s, t.elapsed().as_secs_f64()))
    })?;
    put(&mut f, "create_per_s", creates as f64 / c_s, "ops/s");
    put(&mut f, "move_per_s", moves as f64 / m_s.max(1e-9), "ops/s");
    let t = Instant::now();
    let scrub = store.scrub();
    let s = t.elapsed().as_secs_f64();
    anyhow::ensure!(scrub.is_clean(), "scrub found damage");
    put(&mut f, "scrub_s", s, "s");
    put(
        &mut f,
        "scrub_bytes_per_s",
        scrub.chunks.bytes_checked as f64 / s.max(1e-9),
        "bytes/s",
    );
    let t = Instant::now();
    let gc = store.gc();
    put(&mut f, "gc_s", t.elapsed().as_secs_f64(), "s");
    put(&mut f, "gc_bytes_removed", gc.bytes_removed as f64, "bytes");
    let t = Instant::now();
    let c = store.compact(COMPACT_DEAD_RATIO)?;
    put(&mut f, "compact_s", t.elapsed().as_secs_f64(), "s");
    put(
        &mut f,
        "compact_bytes_reclaimed",
        c.bytes_reclaimed as f64,
        "bytes",
    );
    Ok(f)
}

/// The machine the figures come from.
pub fn machine(dir: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    m.insert("cores".into(), cores.to_string());
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = mem
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .unwrap_or("")
        .to_string();
    m.insert(
        "ram".into(),
        total.trim_start_matches("MemTotal:").trim().to_string(),
    );
    m.insert(
        "kernel".into(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
    );
    if let Ok(o) = std::process::Command::new("df")
        .args(["--output=fstype,size,source"])
        .arg(dir)
        .output()
    {
        let s = String::from_utf8_lossy(&o.stdout);
        if let Some(l) = s.lines().nth(1) {
            let mut w = l.split_whitespace();
            m.insert("file_system".into(), w.next().unwrap_or("").into());
            m.insert("disk_size_kib".into(), w.next().unwrap_or("").into());
            m.insert("disk".into(), w.next().unwrap_or("").into());
        }
    }
    m
}
