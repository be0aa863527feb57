//! Reads that must wait for the disk run on reader threads, not on the event loop that polls
//! the stream (issue 14: `ContentStream` read and verified every chunk on the serving loop, so
//! one disk read stalled every connection of that loop); and every chunk is still verified on
//! both paths (page cache on the loop, disk on a reader thread), with errors ending the stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use skab_engine::chunk::ChunkSizes;
use skab_engine::io::{FaultPlan, FaultyStorage, IoChoice, MemStorage, StdStorage, Storage};
use skab_engine::ns::Name;
use skab_engine::{ChunkId, SpaceKey, Store, StoreConfig};

/// Small chunks, no chunk cache: every read of a chunk goes to the packs.
fn cfg() -> StoreConfig {
    StoreConfig {
        shards: 2,
        chunk_sizes: ChunkSizes::new(1024, 4096, 16 * 1024).unwrap(),
        io: IoChoice::Std,
        pack_size_target: 1 << 20,
        chunk_cache_bytes: 0,
        // Buffered appends: what was written is in the page cache.
        direct_io: false,
        ..Default::default()
    }
}

fn p(s: &str) -> Vec<Name> {
    vec![Name::new(s).unwrap()]
}

fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut b = vec![0u8; len];
    rng.fill(&mut b[..]);
    b
}

fn space() -> SpaceKey {
    SpaceKey::new("school", "ann").unwrap()
}

fn store_over(inner: Arc<dyn Storage>) -> (Store, Arc<FaultPlan>, Arc<dyn Storage>) {
    let plan = FaultPlan::new();
    let storage: Arc<dyn Storage> = Arc::new(FaultyStorage::new(inner.clone(), plan.clone()));
    (
        Store::open_with_storage(storage, cfg()).unwrap(),
        plan,
        inner,
    )
}

/// (pack name, offset of the chunk's data) of chunk `id`, found by its record header.
fn locate_chunk(storage: &dyn Storage, id: &ChunkId) -> (String, u64) {
    for name in storage.list("packs/").unwrap() {
        let f = storage.open(&name, false).unwrap();
        let mut bytes = vec![0u8; f.len().unwrap() as usize];
        f.read_exact_at(&mut bytes, 0).unwrap();
        if let Some(at) = bytes.windows(32).position(|w| w == id.0) {
            // Record header: magic 4, len 4, id 32, crc 4, crc 4; data follows at 48.
            return (name, (at - 8 + 48) as u64);
        }
    }
    panic!("chunk {id} is in no pack");
}

/// Yields the stream's items until it ends: the bytes before the first error, and the error.
async fn drain(store: &Store, k: &SpaceKey, name: &str) -> (Vec<u8>, Option<skab_engine::Error>) {
    let (_, mut stream) = store.read(k, &p(name), None).unwrap();
    let mut out = Vec::new();
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => {
                assert!(error.is_none(), "an item after the error");
                error = Some(e);
            }
        }
    }
    (out, error)
}

/// On a single-threaded runtime (one serving loop), 16 reads wait for a disk that does not
/// answer while the loop keeps running timers; all 16 are in flight at once; a stream dropped
/// with its read in flight harms nothing; once the disk answers, every read is right.
#[tokio::test(flavor = "current_thread")]
async fn reads_waiting_for_the_disk_leave_the_loop_free_and_run_side_by_side() {
    const READS: u64 = 16;
    // In memory: no page cache, so every chunk read is a disk read.
    let (store, plan, _) = store_over(Arc::new(MemStorage::new()));
    let k = space();
    store.create_space(&k).await.unwrap();
    let files: Vec<Vec<u8>> = (0..READS).map(|i| random(i, 3000)).collect();
    for (i, f) in files.iter().enumerate() {
        store
            .put_bytes(&k, &p(&format!("f{i}")), Bytes::copy_from_slice(f))
            .await
            .unwrap();
    }
    plan.hold_reads(true);
    // If reads blocked this thread, the loop would never get back to lift the hold: a
    // watchdog lifts it so that the test fails instead of hanging.
    let watchdog = {
        let plan = plan.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(20));
            plan.hold_reads(false);
        })
    };
    let tasks: Vec<_> = (0..READS)
        .map(|i| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move { store.read_to_vec(&k, &p(&format!("f{i}")), None).await })
        })
        .collect();
    // One more, dropped while its read waits.
    let (_, mut dropped) = store.read(&k, &p("f0"), None).unwrap();
    assert!(futures::poll!(dropped.next()).is_pending());
    drop(dropped);
    let start = Instant::now();
    let mut ticks = 0u32;
    // 16 or 17: the dropped stream's read is skipped unless a thread took it before the drop.
    while plan.held_reads() < READS && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        ticks += 1;
    }
    let waited = start.elapsed();
    assert!(
        plan.held_reads() >= READS,
        "{} reads in flight after {waited:?} ({ticks} timer ticks on the loop)",
        plan.held_reads()
    );
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert!(
        tasks.iter().all(|t| !t.is_finished()),
        "a held read finished"
    );
    plan.hold_reads(false);
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().unwrap(), files[i], "f{i}");
    }
    // Reads after all that still work.
    assert_eq!(
        store.read_to_vec(&k, &p("f3"), None).await.unwrap(),
        files[3]
    );
    drop(watchdog);
}

/// A damaged chunk in the middle of a file: the stream yields exactly the bytes of the
/// chunks before it, then an integrity error, then ends; checked on the reader-thread path
/// (in-memory storage, no page cache) and on the loop's page-cache path (a real file, read
/// while blocking reads are held, so only the page cache can answer).
#[tokio::test(flavor = "current_thread")]
async fn a_damaged_chunk_ends_the_stream_with_an_error_on_both_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let backends: [(&str, Arc<dyn Storage>); 2] = [
        ("reader thread", Arc::new(MemStorage::new())),
        ("page cache", Arc::new(StdStorage::new(tmp.path()).unwrap())),
    ];
    for (path, inner) in backends {
        let (store, plan, inner) = store_over(inner);
        let k = space();
        store.create_space(&k).await.unwrap();
        let data = random(7, 120_000);
        store
            .put_bytes(&k, &p("f"), Bytes::copy_from_slice(&data))
            .await
            .unwrap();
        let content = store.stat(&k, &p("f")).unwrap().content.unwrap();
        let n = content.chunks.len();
        assert!(n >= 6, "{n} chunks");
        // A clean read first (it also opens the pack for the loop's later reads).
        assert_eq!(drain(&store, &k, "f").await.0, data, "{path}");
        let victim = n / 2;
        let before: usize = content.chunks[..victim]
            .iter()
            .map(|c| c.len as usize)
            .sum();
        let (pack, at) = locate_chunk(&*inner, &content.chunks[victim].id);
        plan.flip_bit_on_read(&pack, at + 10, 3);
        if path == "page cache" {
            plan.hold_reads(true);
        }
        let (got, err) = tokio::time::timeout(Duration::from_secs(10), drain(&store, &k, "f"))
            .await
            .unwrap_or_else(|_| panic!("{path}: the read waited for the held disk"));
        plan.hold_reads(false);
        let err = err.unwrap_or_else(|| panic!("{path}: damage not detected"));
        assert!(err.is_integrity(), "{path}: {err}");
        assert_eq!(got, &data[..before], "{path}: bytes before the error");
        // A range that avoids the damaged chunk still reads.
        let head = content.chunks[0].len as u64;
        let got = store.read_to_vec(&k, &p("f"), Some((0, head))).await;
        assert_eq!(got.unwrap(), &data[..head as usize], "{path}");
    }
}
