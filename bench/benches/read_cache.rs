//! Reads of 16 KiB and 128 KiB files through `Store::read` with the chunk cache on and off,
//! side by side: the hot read of a class opening the same files. The files have been read
//! before, so the packs are in the page cache either way; "off" pays pread, buffer fill and the
//! keyed BLAKE3 check per chunk, "on" a cache lookup.
//!
//! The stores live in a temporary directory on the file system of `SKAB_BENCH_DIR`
//! (default: the system temp dir). Results: docs/benchmarks.md.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use skab_engine::ns::Name;
use skab_engine::{SpaceKey, Store, StoreConfig};

/// Files of each size read in turn (all fit the cache: the hot set).
const FILES: usize = 64;
/// File sizes, bytes: a small document, and one of several default-size chunks.
const SIZES: [usize; 2] = [16 << 10, 128 << 10];

fn bench_dir() -> PathBuf {
    std::env::var_os("SKAB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn names(size: usize) -> Vec<Vec<Name>> {
    (0..FILES)
        .map(|i| vec![Name::new(&format!("f{size}-{i}")).expect("valid name")])
        .collect()
}

/// Reads a whole file through the public streaming API, without copying it; returns its length.
fn read_file(store: &Store, key: &SpaceKey, path: &[Name]) -> usize {
    let (_, mut stream) = store.read(key, path, None).expect("read");
    futures::executor::block_on(async {
        let mut n = 0;
        while let Some(piece) = stream.next().await {
            n += piece.expect("chunk").len();
        }
        n
    })
}

fn read_cache(c: &mut Criterion) {
    let tmp = tempfile::tempdir_in(bench_dir()).expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let key = SpaceKey::new("bench", "reader").expect("key");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let files: Vec<(usize, Vec<Bytes>)> = SIZES
        .iter()
        .map(|&size| {
            let data = (0..FILES)
                .map(|_| {
                    let mut b = vec![0u8; size];
                    rng.fill(&mut b[..]);
                    Bytes::from(b)
                })
                .collect();
            (size, data)
        })
        .collect();
    let defaults = StoreConfig::default().chunk_cache_bytes;
    let stores: Vec<(&str, Store)> = [("cache_off", 0), ("cache_on", defaults)]
        .into_iter()
        .map(|(label, bytes)| {
            let config = StoreConfig {
                chunk_cache_bytes: bytes,
                ..StoreConfig::default()
            };
            let store = Store::open(&tmp.path().join(label), config).expect("open");
            rt.block_on(async {
                store.create_space(&key).await.expect("space");
                for (size, data) in &files {
                    for (path, d) in names(*size).iter().zip(data) {
                        store.put_bytes(&key, path, d.clone()).await.expect("put");
                    }
                }
            });
            (label, store)
        })
        .collect();
    let mut g = c.benchmark_group("read_cache");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let paths = names(size);
        g.throughput(Throughput::Bytes(size as u64));
        for (label, store) in &stores {
            g.bench_with_input(
                BenchmarkId::new(format!("read_{}KiB", size >> 10), label),
                &paths,
                |b, paths| {
                    let mut i = 0;
                    b.iter(|| {
                        let n = read_file(store, &key, &paths[i % FILES]);
                        i += 1;
                        assert_eq!(n, size);
                    })
                },
            );
        }
    }
    g.finish();
    for (label, store) in &stores {
        let s = store.stats();
        eprintln!(
            "read_cache: {label}: {} hits, {} misses, {} bytes cached",
            s.chunk_cache_hits, s.chunk_cache_misses, s.chunk_cache_bytes
        );
    }
}

criterion_group!(benches, read_cache);
criterion_main!(benches);
