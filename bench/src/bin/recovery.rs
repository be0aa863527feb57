//! Index recovery benchmark: builds a store with many namespace entries through the public
//! API (part checkpointed, the rest left in the WALs), then times `Store::open` in a fresh
//! process and reports entries/s and resident memory per entry. Results: docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures::StreamExt;
use skab_engine::ns::Name;
use skab_engine::{SpaceKey, Store, StoreConfig};

/// Files per directory and directories per space: entries per space = DIRS * (FILES + 1).
const FILES_PER_DIR: usize = 100;
const DIRS_PER_SPACE: usize = 10;
/// Distinct small contents the files share (the benchmark is about the index, not data).
const CONTENTS: usize = 64;
/// Page size /proc/self/statm counts in, bytes (x86_64 and aarch64 Linux defaults).
const PAGE_BYTES: u64 = 4096;
/// Namespace operations in flight while building.
const IN_FLIGHT: usize = 4096;

#[derive(Parser)]
#[command(about = "Time Store::open over a store with many namespace entries")]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Namespace entries to build (files and directories).
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Share of the entries written after the last checkpoint (replayed from the WALs).
    #[arg(long, default_value_t = 0.3)]
    wal_fraction: f64,
    /// Where to build the store (a fresh temporary directory inside it).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the built store (its path is printed) for profiling `recovery open PATH`.
    #[arg(long)]
    keep: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Opens an existing store and prints the measurements (run by the parent).
    Open { store: PathBuf },
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * PAGE_BYTES
}

fn config() -> StoreConfig {
    StoreConfig {
        io: skab_engine::io::IoChoice::Std,
        ..Default::default()
    }
}

fn name(s: &str) -> Name {
    Name::new(s).expect("benchmark names are valid")
}

/// Builds spaces `from..to` (each DIRS_PER_SPACE directories of FILES_PER_DIR files).
async fn build_spaces(store: &Store, from: usize, to: usize, contents: &[Bytes]) -> Result<()> {
    // Spaces first, then their directories, then all files, each with many in flight.
    for phase in 0..2 {
        let ops = (from..to).flat_map(|s| {
            let dirs = if phase == 0 { 0..1 } else { 0..DIRS_PER_SPACE };
            dirs.map(move |d| (s, d))
        });
        let mut it = futures::stream::iter(ops.map(|(s, d)| {
            let store = store.clone();
            async move {
                let key = SpaceKey::new("bench", &format!("u{s}"))?;
                if phase == 0 {
                    store.create_space(&key).await?;
                } else {
                    store.mkdir(&key, &[name(&format!("d{d}"))]).await?;
                }
                anyhow::Ok(())
            }
        }))
        .buffer_unordered(IN_FLIGHT);
        while let Some(r) = it.next().await {
            r?;
        }
    }
    let files = (from..to).flat_map(|s| {
        (0..DIRS_PER_SPACE).flat_map(move |d| (0..FILES_PER_DIR).map(move |f| (s, d, f)))
    });
    let mut it = futures::stream::iter(files.map(|(s, d, f)| {
        let store = store.clone();
        let data = contents[(s + d + f) % contents.len()].clone();
        async move {
            let key = SpaceKey::new("bench", &format!("u{s}"))?;
            let path = [name(&format!("d{d}")), name(&format!("f{f}.txt"))];
            store.put_bytes(&key, &path, data).await?;
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(IN_FLIGHT);
    while let Some(r) = it.next().await {
        r?;
    }
    Ok(())
}

fn build(dir: &Path, entries: u64, wal_fraction: f64) -> Result<()> {
    let per_space = (DIRS_PER_SPACE * (FILES_PER_DIR + 1)) as u64;
    let spaces = entries.div_ceil(per_space) as usize;
    let in_wal = ((spaces as f64) * wal_fraction).round() as usize;
    let contents: Vec<Bytes> = (0..CONTENTS)
        .map(|i| Bytes::from(format!("shared content number {i}\n").repeat(4)))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store = Store::open(dir, config())?;
    let started = Instant::now();
    rt.block_on(build_spaces(&store, 0, spaces - in_wal, &contents))?;
    store.checkpoint()?;
    let checkpointed = started.elapsed();
    rt.block_on(build_spaces(&store, spaces - in_wal, spaces, &contents))?;
    let stats = store.stats();
    println!(
        "built {} entries in {} spaces in {:.1} s ({:.1} s to the checkpoint; {} spaces after it)",
        stats.entries,
        stats.spaces,
        started.elapsed().as_secs_f64(),
        checkpointed.as_secs_f64(),
        in_wal
    );
    Ok(())
}

fn open(dir: &Path) -> Result<()> {
    let before = rss_bytes();
    let started = Instant::now();
    let store = Store::open(dir, config())?;
    let took = started.elapsed();
    let after = rss_bytes();
    let r = store.recovery_report();
    let entries = r.entries.max(1);
    println!(
        "open: {:.3} s for {} entries in {} spaces ({} WAL records replayed, {} chunks from \
         the checkpoint): {:.0} entries/s; RSS {} -> {} bytes: {:.1} bytes per entry",
        took.as_secs_f64(),
        r.entries,
        r.spaces,
        r.wal_records_replayed,
        r.chunks_from_checkpoint,
        r.entries as f64 / took.as_secs_f64(),
        before,
        after,
        after.saturating_sub(before) as f64 / entries as f64
    );
    if r.wal_records_rejected > 0 || r.chunks_missing > 0 {
        bail!("recovery found problems: {r:?}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(Cmd::Open { store }) = args.cmd {
        return open(&store);
    }
    let root = args.dir.unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(&root)?;
    let dir = tmp.path().join("store");
    build(&dir, args.entries, args.wal_fraction)?;
    // Measure in a fresh process: the builder's heap would blur the RSS figure.
    let exe = std::env::current_exe()?;
    let status = std::process::Command::new(exe)
        .arg("open")
        .arg(&dir)
        .status()
        .context("running the open step")?;
    if !status.success() {
        bail!("open step failed: {status}");
    }
    if args.keep {
        println!("kept {}", tmp.keep().join("store").display());
    }
    Ok(())
}
