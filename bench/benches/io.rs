//! Appending batches with an fdatasync each: the std backend against io_uring.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use skab_engine::io::{open_storage, IoChoice, Storage, StorageFile};

/// A file is cut back to empty (outside the timed part) once it passes this size, bytes.
const FILE_CAP: u64 = 256 * 1024 * 1024;
/// Batch sizes appended per fdatasync, bytes.
const SIZES: [usize; 3] = [64 * 1024, 256 * 1024, 1024 * 1024];
/// Pieces one batch is cut into for the multi-write case.
const PIECES: usize = 16;

fn bench_dir() -> PathBuf {
    // A real disk (target/tmp), not a tmpfs /tmp where fdatasync costs nothing.
    std::env::var_os("SKAB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

fn backends(root: &std::path::Path) -> Vec<(&'static str, Arc<dyn Storage>)> {
    let mut v = vec![(
        "std",
        open_storage(&root.join("std"), IoChoice::Std).expect("std storage"),
    )];
    match open_storage(&root.join("uring"), IoChoice::Uring) {
        Ok(s) => v.push(("io_uring", s)),
        Err(e) => eprintln!("io_uring skipped: {e}"),
    }
    v
}

/// Times `iters` synced appends of `pieces` (one batch each), excluding file resets.
fn append(f: &dyn StorageFile, pieces: &[Vec<u8>], iters: u64) -> Duration {
    let batch_len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    let mut off = f.len().expect("len");
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        if off + batch_len > FILE_CAP {
            f.truncate(0).expect("truncate");
            f.sync_data().expect("sync");
            off = 0;
        }
        let mut batch = Vec::with_capacity(pieces.len());
        let mut o = off;
        for p in pieces {
            batch.push((o, &p[..]));
            o += p.len() as u64;
        }
        let t = Instant::now();
        f.write_batch(&batch, true).expect("write_batch");
        total += t.elapsed();
        off = o;
    }
    total
}

fn io_append(c: &mut Criterion) {
    let base = bench_dir();
    std::fs::create_dir_all(&base).expect("bench dir");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let stores = backends(dir.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for (group_name, pieces_per_batch) in [
        ("append_fdatasync", 1),
        ("append_fdatasync_16_pieces", PIECES),
    ] {
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for size in SIZES {
            let piece_len = size / pieces_per_batch;
            let pieces: Vec<Vec<u8>> = (0..pieces_per_batch)
                .map(|_| {
                    let mut p = vec![0u8; piece_len];
                    rng.fill(&mut p[..]);
                    p
                })
                .collect();
            group.throughput(Throughput::Bytes(size as u64));
            for (name, s) in &stores {
                let f = s
                    .open(&format!("{group_name}/{size}.log"), true)
                    .expect("open");
                group.bench_with_input(BenchmarkId::new(*name, size / 1024), &size, |b, _| {
                    b.iter_custom(|iters| append(&*f, &pieces, iters))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, io_append);
criterion_main!(benches);
