//! The cost of encryption at rest, off and on side by side: sealing and opening one chunk
//! (AES-256-GCM under its own key, `skab_engine::crypt`) next to the keyed BLAKE3 every chunk
//! pays anyway; `Store::put` ingest of fresh random files (1 writer, every file acknowledged =
//! durable); cold reads through `Store::read` with the chunk cache off (every chunk read,
//! opened and hashed); and `Store::scrub` of what was written.
//!
//! The stores live in a temporary directory on the file system of `SKAB_BENCH_DIR` (default:
//! the system temp dir). Results: docs/benchmarks.md, "Encryption at rest".

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use skab_engine::crypt::{KeyStore, MasterKey, TenantCipher};
use skab_engine::ns::Name;
use skab_engine::{ChunkId, SpaceKey, Store, StoreConfig};

/// Bytes of one chunk in the seal group (the default average chunk is 64 KiB).
const CHUNK: usize = 64 << 10;
/// Bytes each ingest iteration puts, in files of `FILE` bytes.
const BYTES_PER_ITER: usize = 32 << 20;
const FILE: usize = 1 << 20;

fn bench_dir() -> PathBuf {
    std::env::var_os("SKAB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn seal(c: &mut Criterion) {
    let mut g = c.benchmark_group("crypt_chunk_64KiB");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(CHUNK as u64));
    let mut data = vec![0u8; CHUNK];
    rand::rngs::StdRng::seed_from_u64(1).fill(&mut data[..]);
    let cipher = TenantCipher::new(&[7; 32]);
    let key = [9u8; 32];
    let id = ChunkId(*blake3::keyed_hash(&key, &data).as_bytes());
    // The anchor: what every chunk costs with or without encryption (its keyed id).
    g.bench_function("anchor_keyed_blake3", |b| {
        b.iter(|| blake3::keyed_hash(&key, &data))
    });
    g.bench_function("seal", |b| b.iter(|| cipher.seal_chunk(&id, &data)));
    let sealed = cipher.seal_chunk(&id, &data);
    g.bench_function("open", |b| {
        b.iter(|| cipher.open_chunk(&id, &sealed).unwrap())
    });
    g.finish();
}

fn open_store(dir: &std::path::Path, encrypted: bool) -> Store {
    let keys = encrypted.then(|| {
        Arc::new(KeyStore::open(&dir.join("keys"), MasterKey::from_bytes(&[3; 32]), true).unwrap())
    });
    let config = StoreConfig {
        chunk_cache_bytes: 0,
        keys,
        ..StoreConfig::default()
    };
    Store::open(&dir.join("store"), config).unwrap()
}

fn store(c: &mut Criterion) {
    let root = tempfile::tempdir_in(bench_dir()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = SpaceKey::new("bench", "writer").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut g = c.benchmark_group("crypt_store");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    let mut stores = Vec::new();
    for (mode, encrypted) in [("off", false), ("on", true)] {
        let dir = root.path().join(mode);
        let store = open_store(&dir, encrypted);
        rt.block_on(store.create_space(&key)).unwrap();
        stores.push((mode, store));
    }
    let mut n = 0u64;
    g.throughput(Throughput::Bytes(BYTES_PER_ITER as u64));
    for (mode, store) in &stores {
        g.bench_function(BenchmarkId::new("put_1MiB_files", mode), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let files: Vec<Bytes> = (0..BYTES_PER_ITER / FILE)
                        .map(|_| {
                            let mut f = vec![0u8; FILE];
                            rng.fill(&mut f[..]);
                            Bytes::from(f)
                        })
                        .collect();
                    let start = Instant::now();
                    rt.block_on(async {
                        for f in files {
                            n += 1;
                            let name = vec![Name::new(&format!("f{n}")).unwrap()];
                            store.put_bytes(&key, &name, f).await.unwrap();
                        }
                    });
                    spent += start.elapsed();
                }
                spent
            })
        });
    }
    // Reads of every file written so far (cache off; the packs are in the page cache).
    for (mode, store) in &stores {
        let (_, list) = store.list(&key, &[]).unwrap();
        let names: Vec<Vec<Name>> = list
            .iter()
            .take(64)
            .map(|e| vec![Name::new(&e.name).unwrap()])
            .collect();
        g.throughput(Throughput::Bytes((names.len() * FILE) as u64));
        g.bench_function(BenchmarkId::new("read_64_files_cache_off", mode), |b| {
            b.iter(|| {
                for p in &names {
                    let (_, mut s) = store.read(&key, p, None).unwrap();
                    rt.block_on(async {
                        while let Some(piece) = s.next().await {
                            piece.unwrap();
                        }
                    });
                }
            })
        });
    }
    for (mode, store) in &stores {
        let stored = store.stats().stored_bytes;
        g.throughput(Throughput::Bytes(stored));
        g.bench_function(BenchmarkId::new("scrub", mode), |b| {
            b.iter(|| assert!(store.scrub().is_clean()))
        });
    }
    g.finish();
}

criterion_group!(benches, seal, store);
criterion_main!(benches);
