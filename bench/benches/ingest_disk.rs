//! Ingest to disk through `Store::put` with group commit at 1, 16 and 256 concurrent
//! writers (every file acknowledged = durable), side by side with the disk's own
//! sequential write speed with one fdatasync (a Rust loop here, and `dd` printed once).
//!
//! The `small_puts` group puts many 16 KiB files (the latency-bound case: every put waits for
//! a pack fdatasync and a WAL fdatasync) with `StoreConfig::prezero` off and on, side by side.
//!
//! The store lives in a temporary directory on the file system of `SKAB_BENCH_DIR`
//! (default: the system temp dir). The `ingest` group runs the default config (pre-zeroing
//! off, as everywhere); `SKAB_BENCH_PREZERO=on` turns it on. Results: docs/benchmarks.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use skab_engine::ns::Name;
use skab_engine::{SpaceKey, Store, StoreConfig};

/// Bytes each measured iteration ingests, whatever the writer count.
const BYTES_PER_ITER: usize = 32 << 20;
/// Files are 256 KiB..1 MiB of random bytes.
const FILE_MIN: usize = 256 << 10;
const FILE_MAX: usize = 1 << 20;
/// The sequential-write anchor writes this many 1 MiB blocks, then one fdatasync.
const ANCHOR_BLOCKS: usize = 64;
/// Size of each file of the small-put group.
const SMALL_FILE: usize = 16 << 10;
/// Small files put per measured iteration, whatever the writer count.
const SMALL_PER_ITER: usize = 1024;

fn bench_dir() -> PathBuf {
    std::env::var_os("SKAB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// Runs `dd ... conv=fdatasync` once and returns what it reports (e.g. "512 MB/s").
fn dd_once(dir: &Path) -> String {
    let file = dir.join("dd.out");
    let out = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .args(["bs=1M", "count=256", "conv=fdatasync"])
        .output();
    let _ = std::fs::remove_file(&file);
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stderr)
            .lines()
            .last()
            .and_then(|l| l.rsplit(", ").next())
            .unwrap_or("?")
            .to_string(),
        Err(e) => format!("dd failed: {e}"),
    }
}

fn seq_write_fdatasync(dir: &Path) -> Duration {
    let path = dir.join("anchor.out");
    let block = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut f = std::fs::File::create(&path).unwrap();
    for _ in 0..ANCHOR_BLOCKS {
        f.write_all(&block).unwrap();
    }
    f.sync_data().unwrap();
    let t = start.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    t
}

/// Fresh random files (never seen before, so nothing deduplicates) totalling about
/// `BYTES_PER_ITER`, split over `writers`.
fn make_files(rng: &mut impl Rng, writers: usize) -> (Vec<Vec<Bytes>>, u64) {
    let mut per: Vec<Vec<Bytes>> = vec![Vec::new(); writers];
    let mut total = 0usize;
    let mut w = 0;
    while total < BYTES_PER_ITER {
        let len = rng.gen_range(FILE_MIN..=FILE_MAX);
        let mut b = vec![0u8; len];
        rng.fill(&mut b[..]);
        per[w % writers].push(Bytes::from(b));
        total += len;
        w += 1;
    }
    (per, total as u64)
}

fn ingest(c: &mut Criterion) {
    let root = bench_dir();
    let tmp = tempfile::tempdir_in(&root).unwrap();
    eprintln!(
        "ingest_disk: in {} ; dd if=/dev/zero bs=1M count=256 conv=fdatasync: {}",
        tmp.path().display(),
        dd_once(tmp.path())
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("ingest_disk");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes((ANCHOR_BLOCKS << 20) as u64));
    g.bench_function("anchor_seq_write_1MiB_blocks_fdatasync", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| seq_write_fdatasync(tmp.path())).sum())
    });
    let store_dir = tmp.path().join("store");
    let prezero = std::env::var("SKAB_BENCH_PREZERO").is_ok_and(|v| v == "on");
    eprintln!("ingest_disk: prezero {prezero}");
    let config = StoreConfig {
        prezero,
        ..StoreConfig::default()
    };
    let store = Store::open(&store_dir, config).unwrap();
    let key = SpaceKey::new("bench", "writer").unwrap();
    rt.block_on(store.create_space(&key)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut file_no = 0u64;
    for writers in [1usize, 16, 256] {
        g.throughput(Throughput::Bytes(BYTES_PER_ITER as u64));
        g.bench_with_input(
            BenchmarkId::new("store_put", format!("{writers}_writers")),
            &writers,
            |b, &writers| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let (files, _) = make_files(&mut rng, writers);
                        let base = file_no;
                        file_no += files.iter().map(|f| f.len() as u64).sum::<u64>();
                        let store = store.clone();
                        let key = key.clone();
                        let start = Instant::now();
                        rt.block_on(async move {
                            let mut tasks = Vec::new();
                            let mut n = base;
                            for mine in files {
                                let first = n;
                                n += mine.len() as u64;
                                let store = store.clone();
                                let key = key.clone();
                                tasks.push(tokio::spawn(async move {
                                    for (i, data) in mine.into_iter().enumerate() {
                                        let name = format!("f{}", first + i as u64);
                                        let p = [Name::new(&name).unwrap()];
                                        store.put_bytes(&key, &p, data).await.unwrap();
                                    }
                                }));
                            }
                            for t in tasks {
                                t.await.unwrap();
                            }
                        });
                        spent += start.elapsed();
                    }
                    spent
                })
            },
        );
    }
    g.finish();
    drop(store);
}

/// Puts `SMALL_PER_ITER` fresh 16 KiB files split over `writers` tasks; returns the time.
fn small_round(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    key: &SpaceKey,
    rng: &mut impl Rng,
    writers: usize,
    file_no: &mut u64,
) -> Duration {
    let mut per: Vec<Vec<(String, Bytes)>> = vec![Vec::new(); writers];
    for i in 0..SMALL_PER_ITER {
        let mut b = vec![0u8; SMALL_FILE];
        rng.fill(&mut b[..]);
        per[i % writers].push((format!("s{}", *file_no), Bytes::from(b)));
        *file_no += 1;
    }
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for mine in per {
            let store = store.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                for (name, data) in mine {
                    let p = [Name::new(&name).unwrap()];
                    store.put_bytes(&key, &p, data).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    start.elapsed()
}

fn small_puts(c: &mut Criterion) {
    let root = bench_dir();
    let tmp = tempfile::tempdir_in(&root).unwrap();
    eprintln!("small_puts: in {}", tmp.path().display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("small_puts");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(SMALL_PER_ITER as u64));
    let key = SpaceKey::new("bench", "writer").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut file_no = 0u64;
    for writers in [1usize, 16, 64] {
        for prezero in [false, true] {
            // A fresh store per case: no case inherits another's zeroed space.
            let dir = tmp.path().join(format!("w{writers}-pz{prezero}"));
            let config = StoreConfig {
                prezero,
                ..StoreConfig::default()
            };
            let store = Store::open(&dir, config).unwrap();
            rt.block_on(store.create_space(&key)).unwrap();
            let id = format!(
                "{writers}_writers_prezero_{}",
                if prezero { "on" } else { "off" }
            );
            g.bench_function(BenchmarkId::new("put_16KiB", id), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| small_round(&rt, &store, &key, &mut rng, writers, &mut file_no))
                        .sum()
                })
            });
            drop(store);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    g.finish();
}

criterion_group!(benches, ingest, small_puts);
criterion_main!(benches);
