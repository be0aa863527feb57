//! Measurements of a built population: memory, disk, recovery, metadata rates, scrub, GC and compaction, and the machine.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use futures::StreamExt;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use skab_engine::{Store, StoreConfig};

use super::population::{file_name, name, user_key};

/// How long each metadata operation rate is measured.
pub const RATE_WINDOW: Duration = Duration::from_millis(500);
/// Page size /proc/self/statm counts in, bytes.
pub const PAGE_BYTES: u64 = 4096;
/// Compaction threshold used for the measured compaction (share of garbage in a pack).
pub const COMPACT_DEAD_RATIO: f64 = 0.3;
/// Garbage made for GC and compaction to remove: this share of the logical bytes, at least
/// enough that garbage and the kept files beside it fill and seal one pack (so compaction has a
/// half-dead pack to rewrite), at most `GARBAGE_MAX_BYTES`.
pub const GARBAGE_SHARE: f64 = 0.05;
pub const GARBAGE_MIN_BYTES: u64 = skab_engine::limits::PACK_SIZE_TARGET / 4 * 3;
pub const GARBAGE_MAX_BYTES: u64 = 1 << 30;
/// Garbage files written at once.
pub const GARBAGE_IN_FLIGHT: usize = 16;
/// Size of each garbage file (and of each kept file beside it, so packs end up half dead).
pub const GARBAGE_FILE_BYTES: usize = 256 << 10;
/// Foreground operations are timed this long without maintenance, then this long (at least)
/// while GC and compaction run in a loop beside them.
pub const FOREGROUND_WINDOW: Duration = Duration::from_millis(1500);
/// Size of each foreground write (a small document save).
pub const FOREGROUND_WRITE_BYTES: usize = 8 << 10;

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
/// `garbage_min` is the least garbage made for GC (`GARBAGE_MIN_BYTES` unless given).
pub fn measure_open(
    dir: &Path,
    users: u64,
    files: usize,
    tenants: u64,
    garbage_min: u64,
) -> Result<Figures> {
    let mut f = Figures::new();
    eprintln!("step: opening the store (recovery)");
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
    eprintln!("step: lookups and listings");
    // Lookups and listings: read-only, random users.
    let mut n = 0u64;
    let t = Instant::now();
    while t.elapsed() < RATE_WINDOW {
        let (key, _) = pick(&mut rng)?;
        let i = rng.gen_range(0..files.max(1));
        store.stat(&key, &[name("docs"), name(&file_name(i))])?;
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
    eprintln!("step: creates and moves");
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
    eprintln!(
        "step: scrub of {:.1} GB (at ~{:.0} s for 100 MB/s)",
        stats.stored_bytes as f64 / 1e9,
        stats.stored_bytes as f64 / 1e8
    );
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
    rt.block_on(maintenance(
        &store,
        &mut f,
        (users, tenants, files),
        garbage_min,
    ))?;
    // Checkpointed, so the server step starts from snapshots as `recovery_s` did (and does not
    // replay the garbage's records, whose chunks GC removed).
    store.checkpoint()?;
    Ok(f)
}

/// The `q` quantile of `v` (sorted here), in seconds; 0 for none.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Foreground operations for `window`: alternately a lookup of a random user's file (read) and a
/// durable small save into `scratch` (write); returns the latencies of each, in seconds. Runs at
/// least until `until` (when given) says stop.
async fn foreground(
    store: &Store,
    scratch: &skab_engine::SpaceKey,
    rng: &mut StdRng,
    (users, tenants, files): (u64, u64, usize),
    window: Duration,
    until: Option<&std::sync::atomic::AtomicBool>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    let body = Bytes::from(vec![b'x'; FOREGROUND_WRITE_BYTES]);
    let t = Instant::now();
    let mut i = 0u64;
    while t.elapsed() < window
        || until.is_some_and(|u| !u.load(std::sync::atomic::Ordering::Relaxed))
    {
        let u = rng.gen_range(0..users.max(1));
        let key = user_key(u, tenants)?;
        let fi = rng.gen_range(0..files.max(1));
        let s = Instant::now();
        store.stat(&key, &[name("docs"), name(&file_name(fi))])?;
        reads.push(s.elapsed().as_secs_f64());
        let s = Instant::now();
        store
            .put_bytes(scratch, &[name(&format!("fg-{}", i % 64))], body.clone())
            .await?;
        writes.push(s.elapsed().as_secs_f64());
        i += 1;
    }
    Ok((reads, writes))
}

/// GC and compaction, and their effect on foreground latency: makes garbage (files written
/// beside kept ones, then deleted and purged, so packs end up about half dead), times
/// foreground reads and writes without maintenance, then again while GC and compaction run in a
/// loop on another thread. The first GC and compaction rounds give `gc_s` and `compact_s`.
async fn maintenance(
    store: &Store,
    f: &mut Figures,
    (users, tenants, files): (u64, u64, usize),
    garbage_min: u64,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let logical = store.stats().logical_bytes;
    let target = ((logical as f64 * GARBAGE_SHARE) as u64)
        .clamp(garbage_min.min(GARBAGE_MAX_BYTES), GARBAGE_MAX_BYTES);
    let scratch = skab_engine::SpaceKey::new("t0", &format!("gc-scratch-{users}"))?;
    store.create_space(&scratch).await?;
    let mut rng = StdRng::seed_from_u64(users ^ 0x6763);
    let count = target.div_ceil(GARBAGE_FILE_BYTES as u64);
    let made = count * GARBAGE_FILE_BYTES as u64;
    eprintln!(
        "step: writing {:.0} MB of garbage beside kept files for GC and compaction",
        made as f64 / 1e6
    );
    let mut it = futures::stream::iter((0..count).map(|i| {
        let (store, scratch) = (store.clone(), scratch.clone());
        async move {
            let mut r = StdRng::seed_from_u64(i ^ users.rotate_left(20));
            for kind in ["keep", "drop"] {
                let mut v = vec![0u8; GARBAGE_FILE_BYTES];
                r.fill(&mut v[..]);
                store
                    .put_bytes(&scratch, &[name(&format!("{kind}-{i}"))], Bytes::from(v))
                    .await?;
            }
            store
                .delete(&scratch, &[name(&format!("drop-{i}"))])
                .await?;
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(GARBAGE_IN_FLIGHT);
    while let Some(r) = it.next().await {
        r?;
    }
    drop(it);
    for t in store.trash(&scratch)? {
        store.purge(&scratch, t.id).await?;
    }
    put(f, "garbage_bytes", made as f64, "bytes");
    eprintln!("step: foreground latency without maintenance");
    let shape = (users, tenants, files);
    let (mut r0, mut w0) =
        foreground(store, &scratch, &mut rng, shape, FOREGROUND_WINDOW, None).await?;
    eprintln!("step: foreground latency while GC and compaction run");
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let worker = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || -> Result<(f64, u64, f64, u64, u64)> {
            let t = Instant::now();
            let gc = store.gc();
            let gc_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let c = store.compact(COMPACT_DEAD_RATIO)?;
            let compact_s = t.elapsed().as_secs_f64();
            let started = Instant::now();
            let mut rounds = 1u64;
            // Keep maintenance running for the whole foreground window.
            while started.elapsed() < FOREGROUND_WINDOW {
                store.gc();
                store.compact(COMPACT_DEAD_RATIO)?;
                rounds += 1;
            }
            done.store(true, Ordering::Relaxed);
            Ok((gc_s, gc.bytes_removed, compact_s, c.bytes_reclaimed, rounds))
        })
    };
    let fg = foreground(
        store,
        &scratch,
        &mut rng,
        shape,
        FOREGROUND_WINDOW,
        Some(&done),
    )
    .await;
    done.store(true, Ordering::Relaxed);
    let (gc_s, gc_removed, compact_s, reclaimed, rounds) = worker
        .join()
        .map_err(|_| anyhow::anyhow!("maintenance thread panicked"))??;
    let (mut r1, mut w1) = fg?;
    put(f, "gc_s", gc_s, "s");
    put(f, "gc_bytes_removed", gc_removed as f64, "bytes");
    put(f, "compact_s", compact_s, "s");
    put(f, "compact_bytes_reclaimed", reclaimed as f64, "bytes");
    put(f, "maintenance_rounds", rounds as f64, "rounds");
    put(f, "fg_read_p99_idle_s", quantile(&mut r0, 0.99), "s");
    put(f, "fg_read_p99_maintenance_s", quantile(&mut r1, 0.99), "s");
    put(f, "fg_write_p99_idle_s", quantile(&mut w0, 0.99), "s");
    put(
        f,
        "fg_write_p99_maintenance_s",
        quantile(&mut w1, 0.99),
        "s",
    );
    put(f, "fg_ops_idle", (r0.len() + w0.len()) as f64, "ops");
    put(f, "fg_ops_maintenance", (r1.len() + w1.len()) as f64, "ops");
    Ok(())
}

/// One argon2id verification with skab's parameters (docs/auth.md: m = 19 MiB, t = 2, p = 1)
/// on one core of this machine: the median of `ARGON2_ROUNDS`, seconds.
pub fn argon2_verify_s() -> Result<f64> {
    use argon2::password_hash::{
        rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
    };
    let params =
        argon2::Params::new(19_456, 2, 1, Some(32)).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    let phc = a
        .hash_password(b"capacity probe", &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string();
    let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let mut v = Vec::new();
    for _ in 0..ARGON2_ROUNDS {
        let t = Instant::now();
        a.verify_password(b"capacity probe", &parsed)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        v.push(t.elapsed().as_secs_f64());
    }
    Ok(quantile(&mut v, 0.5))
}

/// Verifications timed for `argon2_verify_s`.
pub const ARGON2_ROUNDS: usize = 5;

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
