//! Integration tests of every public `Store` method on real temporary directories.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use skab_engine::chunk::ChunkSizes;
use skab_engine::io::{FaultPlan, FaultyStorage, IoChoice, StdStorage, Storage};
use skab_engine::ns::{Kind, Name, PropName};
use skab_engine::{DedupMode, Error, SpaceKey, Store, StoreConfig};

/// Small chunks so that test files of a few hundred KiB span many chunks.
fn sizes() -> ChunkSizes {
    ChunkSizes::new(1024, 4096, 16 * 1024).unwrap()
}

fn cfg() -> StoreConfig {
    StoreConfig {
        shards: 4,
        chunk_sizes: sizes(),
        io: IoChoice::Std,
        pack_size_target: 256 * 1024,
        // Pre-zeroing is off by default; these tests were written to exercise it.
        prezero: true,
        ..Default::default()
    }
}

fn p(s: &str) -> Vec<Name> {
    s.split('/')
        .filter(|c| !c.is_empty())
        .map(|c| Name::new(c).unwrap())
        .collect()
}

fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut b = vec![0u8; len];
    rng.fill(&mut b[..]);
    b
}

fn space(user: &str) -> SpaceKey {
    SpaceKey::new("school", user).unwrap()
}

async fn put(store: &Store, key: &SpaceKey, path: &str, data: &[u8]) {
    store
        .put_bytes(key, &p(path), Bytes::copy_from_slice(data))
        .await
        .unwrap();
}

async fn read(store: &Store, key: &SpaceKey, path: &str) -> Vec<u8> {
    store.read_to_vec(key, &p(path), None).await.unwrap()
}

/// A store over std storage wrapped in a fault injector.
fn faulty_store(dir: &Path) -> (Store, Arc<FaultPlan>) {
    faulty_store_with(dir, cfg())
}

/// [`faulty_store`] with `config`.
fn faulty_store_with(dir: &Path, config: StoreConfig) -> (Store, Arc<FaultPlan>) {
    let plan = FaultPlan::new();
    let storage: Arc<dyn Storage> = Arc::new(FaultyStorage::new(
        StdStorage::new(dir).unwrap(),
        plan.clone(),
    ));
    (Store::open_with_storage(storage, config).unwrap(), plan)
}

/// [`cfg`] without the chunk cache: every chunk read goes to the packs.
fn uncached() -> StoreConfig {
    StoreConfig {
        chunk_cache_bytes: 0,
        ..cfg()
    }
}

/// (storage name of the pack, offset of the chunk's data) of chunk `id`, found by its
/// record header in the pack files on disk.
fn locate_chunk(dir: &Path, id: &skab_engine::ChunkId) -> (String, u64) {
    for entry in std::fs::read_dir(dir.join("packs")).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        if let Some(at) = bytes.windows(32).position(|w| w == id.0) {
            // Record header: magic 4, len 4, id 32, crc 4, crc 4; data follows at 48.
            let name = format!("packs/{}", entry.file_name().to_string_lossy());
            return (name, (at - 8 + 48) as u64);
        }
    }
    panic!("chunk {id} is in no pack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_read_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = space("ann");
    assert!(store.create_space(&k).await.unwrap());
    assert!(!store.create_space(&k).await.unwrap());
    assert!(store.space_exists(&k));
    store.mkdir(&k, &p("docs")).await.unwrap();
    let big = random(1, 300_000);
    let cases: [(&str, Vec<u8>); 3] = [
        ("docs/empty", vec![]),
        ("docs/small", b"hello".to_vec()),
        ("docs/big", big.clone()),
    ];
    for (path, data) in &cases {
        let info = store
            .put_bytes(&k, &p(path), Bytes::from(data.clone()))
            .await
            .unwrap();
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(info.kind, Kind::File);
    }
    for (path, data) in &cases {
        assert_eq!(&read(&store, &k, path).await, data, "{path}");
    }
    let info = store.stat(&k, &p("docs/big")).unwrap();
    let chunks = info.content.as_ref().unwrap().chunks.len();
    assert!(chunks > 10, "300 KB in {chunks} chunks");
    assert_eq!(
        info.content.as_ref().unwrap().hash.to_string(),
        blake3::hash(&big).to_hex().to_string(),
        "ETag is the plain BLAKE3 of the bytes"
    );
    let (dir, children) = store.list(&k, &p("docs")).unwrap();
    assert_eq!(dir.kind, Kind::Dir);
    let mut names: Vec<String> = children.iter().map(|c| c.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["big", "empty", "small"]);
    // Streamed in odd-sized pieces: same content, same chunks.
    let pieces: Vec<Result<Bytes, std::io::Error>> = big
        .chunks(7777)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let streamed = store
        .put(&k, &p("docs/streamed"), futures::stream::iter(pieces))
        .await
        .unwrap();
    assert_eq!(streamed.content, info.content);
    // Errors that leave nothing behind.
    let e = store
        .put_bytes(&k, &p("nodir/f"), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ParentMissing), "{e}");
    let e = store
        .put_bytes(&k, &p("docs"), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::IsADirectory), "{e}");
    assert!(store
        .read_to_vec(&k, &p("docs/small"), Some((3, 3)))
        .await
        .is_err());
    assert!(store
        .stat(&k, &p("docs/nothing"))
        .unwrap_err()
        .is_not_found());
    assert_eq!(store.tenants(), ["school"]);
    assert_eq!(store.spaces_of("school"), std::slice::from_ref(&k));
    assert!(!store.is_failed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_reads_touch_only_the_chunks_they_need() {
    let tmp = tempfile::tempdir().unwrap();
    // Counts disk reads and damages chunks it has read: without the cache (cached reads:
    // `chunk_cache_serves_repeated_reads`, `chunk_cache_keeps_serving_a_chunk_damaged_on_disk`).
    let (store, plan) = faulty_store_with(tmp.path(), uncached());
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let data = random(2, 200_000);
    put(&store, &k, "f", &data).await;
    let content = store.stat(&k, &p("f")).unwrap().content.unwrap();
    let n = content.chunks.len();
    assert!(n >= 5, "{n} chunks");
    let mut starts = vec![0u64];
    for c in content.chunks.iter() {
        starts.push(starts.last().unwrap() + c.len as u64);
    }
    let chunk = |i: usize| (starts[i], starts[i + 1] - starts[i]);
    let mid = n / 2;
    let ranges = [
        (chunk(0), 1),
        (chunk(mid), 1),
        (chunk(n - 1), 1),
        ((starts[mid] - 1, 2), 2), // last byte of one chunk, first of the next
        ((starts[1] + 1, 10), 1),
        ((0, data.len() as u64), n as u64),
    ];
    for ((start, len), chunks_needed) in ranges {
        let before = plan.counters().reads;
        let got = store
            .read_to_vec(&k, &p("f"), Some((start, len)))
            .await
            .unwrap();
        let reads = plan.counters().reads - before;
        assert_eq!(got, &data[start as usize..(start + len) as usize]);
        assert_eq!(reads, chunks_needed, "range {start}+{len}");
    }
    // Damage the last chunk: reads of other chunks are unaffected, a full read fails.
    let (pack, at) = locate_chunk(tmp.path(), &content.chunks[n - 1].id);
    plan.flip_bit_on_read(&pack, at + 3, 5);
    let (s, l) = chunk(0);
    let head = store.read_to_vec(&k, &p("f"), Some((s, l))).await.unwrap();
    assert_eq!(head, &data[..l as usize]);
    let e = store.read_to_vec(&k, &p("f"), None).await.unwrap_err();
    assert!(e.is_integrity(), "{e}");
    let (s, l) = chunk(n - 1);
    let e = store
        .read_to_vec(&k, &p("f"), Some((s, l)))
        .await
        .unwrap_err();
    assert!(e.is_integrity(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_keeps_versions_and_restores_them() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let v: Vec<Vec<u8>> = (0..3)
        .map(|i| random(10 + i, 20_000 + i as usize))
        .collect();
    for data in &v {
        put(&store, &k, "f", data).await;
    }
    let versions = store.versions(&k, &p("f")).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].content.size, v[0].len() as u64);
    assert_eq!(store.usage(&k).unwrap().used_bytes, v[2].len() as u64);
    store
        .restore_version(&k, &p("f"), versions[0].id)
        .await
        .unwrap();
    assert_eq!(read(&store, &k, "f").await, v[0]);
    let versions = store.versions(&k, &p("f")).unwrap();
    let sizes: Vec<u64> = versions.iter().map(|x| x.content.size).collect();
    assert_eq!(sizes, [v[1].len() as u64, v[2].len() as u64]);
    assert_eq!(store.usage(&k).unwrap().used_bytes, v[0].len() as u64);
    assert!(store.restore_version(&k, &p("f"), 9999).await.is_err());
    // Versions are kept up to the configured count.
    let small = StoreConfig {
        versions_kept: 2,
        ..cfg()
    };
    drop(store);
    let store = Store::open(tmp.path(), small).unwrap();
    for i in 0..5 {
        put(&store, &k, "f", &random(100 + i, 1000)).await;
    }
    assert_eq!(store.versions(&k, &p("f")).unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_goes_to_trash_and_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let data = random(3, 50_000);
    store.mkdir(&k, &p("d")).await.unwrap();
    put(&store, &k, "d/f", &data).await;
    store.delete(&k, &p("d")).await.unwrap();
    assert!(store.stat(&k, &p("d/f")).unwrap_err().is_not_found());
    assert_eq!(store.usage(&k).unwrap().used_bytes, 0);
    let trash = store.trash(&k).unwrap();
    assert_eq!(trash.len(), 1);
    assert_eq!(trash[0].orig_path, p("d"));
    assert_eq!(trash[0].bytes, data.len() as u64);
    assert_eq!(trash[0].entries, 2);
    store.restore(&k, trash[0].id, None).await.unwrap();
    assert_eq!(read(&store, &k, "d/f").await, data);
    assert_eq!(store.usage(&k).unwrap().used_bytes, data.len() as u64);
    // Restore elsewhere, then purge.
    store.delete(&k, &p("d/f")).await.unwrap();
    let id = store.trash(&k).unwrap()[0].id;
    store.restore(&k, id, Some(&p("g"))).await.unwrap();
    assert_eq!(read(&store, &k, "g").await, data);
    store.delete(&k, &p("g")).await.unwrap();
    let id = store.trash(&k).unwrap()[0].id;
    store.purge(&k, id).await.unwrap();
    assert!(store.trash(&k).unwrap().is_empty());
    assert!(store
        .restore(&k, id, None)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(store.delete(&k, &p("g")).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_is_metadata_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    store.mkdir(&k, &p("a")).await.unwrap();
    let data = random(4, 120_000);
    put(&store, &k, "a/f", &data).await;
    put(&store, &k, "a/g", b"tiny").await;
    let before = store.stats();
    store.copy(&k, &p("a/f"), &p("f2"), false).await.unwrap();
    store.copy(&k, &p("a"), &p("b"), false).await.unwrap();
    let after = store.stats();
    assert_eq!(after.pack_bytes, before.pack_bytes);
    assert_eq!(after.stored_bytes, before.stored_bytes);
    assert_eq!(after.logical_bytes, 3 * before.logical_bytes - 4);
    assert!(after.dedup_ratio > 2.9, "{}", after.dedup_ratio);
    for path in ["f2", "b/f", "a/f"] {
        assert_eq!(read(&store, &k, path).await, data, "{path}");
    }
    assert_eq!(read(&store, &k, "b/g").await, b"tiny");
    let e = store
        .copy(&k, &p("a/f"), &p("f2"), false)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists), "{e}");
    let e = store.copy(&k, &p("a"), &p("a/x"), false).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_moves_a_subtree() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    store.mkdir(&k, &p("a")).await.unwrap();
    store.mkdir(&k, &p("a/b")).await.unwrap();
    put(&store, &k, "a/b/f", b"one").await;
    put(&store, &k, "a/g", b"two").await;
    put(&store, &k, "other", b"three").await;
    store.rename(&k, &p("a"), &p("z"), false).await.unwrap();
    assert!(store.stat(&k, &p("a")).unwrap_err().is_not_found());
    assert_eq!(read(&store, &k, "z/b/f").await, b"one");
    assert_eq!(read(&store, &k, "z/g").await, b"two");
    let e = store
        .rename(&k, &p("other"), &p("z/g"), false)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists), "{e}");
    store
        .rename(&k, &p("other"), &p("z/g"), true)
        .await
        .unwrap();
    assert_eq!(read(&store, &k, "z/g").await, b"three");
    let trash = store.trash(&k).unwrap();
    assert_eq!(trash.len(), 1, "the overwritten target went to the trash");
    assert_eq!(trash[0].orig_path, p("z/g"));
    assert_eq!(store.usage(&k).unwrap().used_bytes, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn props_are_set_removed_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let k = space("ann");
    let color = PropName::new("urn:x", "color");
    let size = PropName::new("urn:x", "size");
    {
        let store = Store::open(tmp.path(), cfg()).unwrap();
        store.create_space(&k).await.unwrap();
        put(&store, &k, "f", b"x").await;
        store
            .set_props(
                &k,
                &p("f"),
                vec![
                    (color.clone(), b"red".to_vec()),
                    (size.clone(), b"L".to_vec()),
                ],
                vec![],
            )
            .await
            .unwrap();
        store
            .set_props(&k, &p("f"), vec![], vec![size.clone()])
            .await
            .unwrap();
        // All or nothing: a bad request changes nothing.
        let e = store
            .set_props(
                &k,
                &p("f"),
                vec![(size.clone(), b"M".to_vec()), (size.clone(), b"S".to_vec())],
                vec![],
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    }
    let store = Store::open(tmp.path(), cfg()).unwrap();
    assert_eq!(
        store.props(&k, &p("f")).unwrap(),
        vec![(color, b"red".to_vec())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let a = space("ann");
    let b = space("bob");
    store.create_space(&a).await.unwrap();
    store.create_space(&b).await.unwrap();
    // Space quota.
    store.set_space_quota(&a, Some(100_000)).await.unwrap();
    put(&store, &a, "f", &random(5, 80_000)).await;
    let usage = store.usage(&a).unwrap();
    assert_eq!(usage.used_bytes, 80_000);
    assert_eq!(usage.available_bytes(), Some(20_000));
    let stored = store.stats().stored_bytes;
    let e = store
        .put_bytes(&a, &p("g"), Bytes::from(random(6, 30_000)))
        .await
        .unwrap_err();
    assert!(e.is_quota(), "{e}");
    assert!(store.stat(&a, &p("g")).unwrap_err().is_not_found());
    assert_eq!(store.usage(&a).unwrap(), usage);
    // Overwriting within the quota is fine (the old size is given back).
    put(&store, &a, "f", &random(7, 95_000)).await;
    // Tenant quota: bob's space has no quota of its own but the tenant is nearly full.
    store
        .set_tenant_quota("school", Some(100_000))
        .await
        .unwrap();
    let before = store.usage(&b).unwrap();
    let stored_before = store.stats().stored_bytes;
    let e = store
        .put_bytes(&b, &p("h"), Bytes::from(random(8, 30_000)))
        .await
        .unwrap_err();
    assert!(e.is_quota(), "{e}");
    assert!(store.stat(&b, &p("h")).unwrap_err().is_not_found());
    assert_eq!(store.usage(&b).unwrap(), before);
    assert_eq!(
        store.tenant_usage("school").unwrap(),
        (95_000, Some(100_000))
    );
    // Chunks written before the refusal are collected.
    store.gc();
    assert_eq!(store.stats().stored_bytes, stored_before);
    assert!(stored_before > stored);
    // A copy that would pass the quota is refused too.
    let e = store.copy(&a, &p("f"), &p("f2"), false).await.unwrap_err();
    assert!(e.is_quota(), "{e}");
    store.set_tenant_quota("school", None).await.unwrap();
    store.set_space_quota(&a, None).await.unwrap();
    store.copy(&a, &p("f"), &p("f2"), false).await.unwrap();
    assert_eq!(store.usage(&a).unwrap().used_bytes, 190_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_upload_leaves_no_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    put(&store, &k, "keep", &random(9, 10_000)).await;
    let base = store.stats();
    let data = random(10, 100_000);
    let items: Vec<Result<Bytes, &str>> = vec![
        Ok(Bytes::copy_from_slice(&data[..50_000])),
        Ok(Bytes::copy_from_slice(&data[50_000..])),
        Err("client went away"),
    ];
    let e = store
        .put(&k, &p("f"), futures::stream::iter(items))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Aborted(_)), "{e}");
    assert!(store.stat(&k, &p("f")).unwrap_err().is_not_found());
    assert!(
        store.stats().stored_bytes > base.stored_bytes,
        "chunks were written"
    );
    let gc = store.gc();
    assert!(gc.chunks_removed > 0);
    assert_eq!(store.stats().stored_bytes, base.stored_bytes);
    assert_eq!(store.stats().logical_bytes, base.logical_bytes);
    drop(store);
    let store = Store::open(tmp.path(), cfg()).unwrap();
    assert!(store.stat(&k, &p("f")).unwrap_err().is_not_found());
    assert_eq!(store.stats().logical_bytes, base.logical_bytes);
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_and_compact_reclaim_space() {
    let tmp = tempfile::tempdir().unwrap();
    // Without pre-zeroing: the pack bytes on disk are compared with `pack_bytes` below, which
    // does not count the zeros kept ahead of the current pack (nor the padding, less than a
    // block, after the last direct append to it).
    let cfg = || StoreConfig {
        prezero: false,
        ..cfg()
    };
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let files: Vec<Vec<u8>> = (0..10).map(|i| random(20 + i, 100_000)).collect();
    for (i, f) in files.iter().enumerate() {
        put(&store, &k, &format!("f{i}"), f).await;
    }
    let full = dir_bytes(&tmp.path().join("packs"));
    assert!(full > 1_000_000);
    for i in 0..8 {
        store.delete(&k, &p(&format!("f{i}"))).await.unwrap();
    }
    assert_eq!(store.gc().chunks_removed, 0, "trash keeps contents");
    for t in store.trash(&k).unwrap() {
        store.purge(&k, t.id).await.unwrap();
    }
    let gc = store.gc();
    assert!(gc.bytes_removed >= 790_000, "{gc:?}");
    let compact = store.compact(0.5).unwrap();
    assert!(compact.packs_removed >= 2, "{compact:?}");
    let left = dir_bytes(&tmp.path().join("packs"));
    assert!(left < full / 2, "{left} of {full} bytes left");
    let counted = store.stats().pack_bytes;
    assert!(
        counted <= left && left - counted < 4096,
        "{counted} bytes counted, {left} on disk"
    );
    for (i, f) in files.iter().enumerate().skip(8) {
        assert_eq!(&read(&store, &k, &format!("f{i}")).await, f);
    }
    assert!(store.scrub().is_clean());
    drop(store);
    let store = Store::open(tmp.path(), cfg()).unwrap();
    assert_eq!(store.recovery_report().chunks_missing, 0);
    for (i, f) in files.iter().enumerate().skip(8) {
        assert_eq!(&read(&store, &k, &format!("f{i}")).await, f);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_reports_a_flipped_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, plan) = faulty_store(tmp.path());
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let good = random(30, 40_000);
    put(&store, &k, "bad", &random(31, 40_000)).await;
    put(&store, &k, "good", &good).await;
    let clean = store.scrub();
    assert!(clean.is_clean());
    assert_eq!(clean.files_checked, 2);
    let victim = store.stat(&k, &p("bad")).unwrap().content.unwrap().chunks[1].id;
    let (pack, at) = locate_chunk(tmp.path(), &victim);
    plan.flip_bit_on_read(&pack, at + 100, 0);
    let report = store.scrub();
    assert!(!report.is_clean());
    assert_eq!(report.chunks.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.chunks.corrupt[0].0, victim);
    assert_eq!(report.hash_mismatches.len(), 1, "{report:?}");
    assert_eq!(report.hash_mismatches[0].0, k);
    assert_eq!(read(&store, &k, "good").await, good);
    assert!(store
        .read_to_vec(&k, &p("bad"), None)
        .await
        .unwrap_err()
        .is_integrity());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_cache_serves_repeated_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, plan) = faulty_store(tmp.path());
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let data = random(40, 200_000);
    put(&store, &k, "f", &data).await;
    let n = store
        .stat(&k, &p("f"))
        .unwrap()
        .content
        .unwrap()
        .chunks
        .len() as u64;
    assert!(n >= 5, "{n} chunks");
    // Uploads do not enter the cache: the first read goes to disk, chunk by chunk.
    let before = plan.counters().reads;
    assert_eq!(read(&store, &k, "f").await, data);
    assert_eq!(plan.counters().reads - before, n);
    let s = store.stats();
    assert_eq!((s.chunk_cache_hits, s.chunk_cache_misses), (0, n));
    assert!(s.chunk_cache_bytes >= data.len() as u64, "{s:?}");
    // Later reads, whole or ranged, touch no disk and give the same bytes.
    let before = plan.counters().reads;
    assert_eq!(read(&store, &k, "f").await, data);
    let got = store
        .read_to_vec(&k, &p("f"), Some((70_000, 50_000)))
        .await
        .unwrap();
    assert_eq!(got, &data[70_000..120_000]);
    assert_eq!(
        plan.counters().reads - before,
        0,
        "cached reads went to disk"
    );
    let s = store.stats();
    assert!(s.chunk_cache_hits > n, "{s:?}");
    assert_eq!(s.chunk_cache_misses, n);
    // The same bytes in another file of the domain are the same chunks: cached too.
    put(&store, &k, "copy", &data).await;
    let before = plan.counters().reads;
    assert_eq!(read(&store, &k, "copy").await, data);
    assert_eq!(plan.counters().reads - before, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_chunk_cache_reads_the_disk_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, plan) = faulty_store_with(tmp.path(), uncached());
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let data = random(41, 100_000);
    put(&store, &k, "f", &data).await;
    let n = store
        .stat(&k, &p("f"))
        .unwrap()
        .content
        .unwrap()
        .chunks
        .len() as u64;
    for _ in 0..3 {
        let before = plan.counters().reads;
        assert_eq!(read(&store, &k, "f").await, data);
        assert_eq!(plan.counters().reads - before, n);
    }
    let s = store.stats();
    assert_eq!(
        (
            s.chunk_cache_hits,
            s.chunk_cache_misses,
            s.chunk_cache_bytes
        ),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunk_cache_stays_within_its_bytes_under_concurrent_readers() {
    const CACHE: u64 = 1 << 20;
    const FILES: usize = 48;
    const FILE_LEN: usize = 80_000;
    let tmp = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        chunk_cache_bytes: CACHE,
        ..cfg()
    };
    let (store, plan) = faulty_store_with(tmp.path(), config);
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let files: Vec<Vec<u8>> = (0..FILES)
        .map(|i| random(500 + i as u64, FILE_LEN))
        .collect();
    for (i, f) in files.iter().enumerate() {
        put(&store, &k, &format!("f{i}"), f).await;
    }
    let total = (FILES * FILE_LEN) as u64;
    // Four readers, each through all files from a different start: always the right bytes.
    let files = Arc::new(files);
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (store, k, files) = (store.clone(), k.clone(), files.clone());
            tokio::spawn(async move {
                for j in 0..FILES {
                    let i = (j + r * FILES / 4) % FILES;
                    let got = store
                        .read_to_vec(&k, &p(&format!("f{i}")), None)
                        .await
                        .unwrap();
                    assert_eq!(got, files[i], "reader {r} file {i}");
                    assert!(store.stats().chunk_cache_bytes <= CACHE);
                }
            })
        })
        .collect();
    for r in readers {
        r.await.unwrap();
    }
    let s = store.stats();
    assert!(s.chunk_cache_bytes <= CACHE, "{s:?}");
    assert!(s.chunk_cache_bytes >= CACHE / 2, "cache barely used: {s:?}");
    assert!(s.chunk_cache_hits > 0, "{s:?}");
    // A pass over 3.7 MiB through a 1 MiB cache must read most of it from disk again.
    let before = plan.counters().read_bytes;
    for (i, f) in files.iter().enumerate() {
        assert_eq!(&read(&store, &k, &format!("f{i}")).await, f);
    }
    let from_disk = plan.counters().read_bytes - before;
    assert!(
        from_disk >= total - CACHE,
        "{from_disk} of {total} from disk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_cache_keeps_serving_a_chunk_damaged_on_disk() {
    // Policy (docs/architecture.md, "Chunk cache"): a chunk verified when it was read stays
    // good in memory whatever happens on disk later; scrub reads the disk and reports.
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let storage: Arc<dyn Storage> = Arc::new(FaultyStorage::new(
        StdStorage::new(tmp.path()).unwrap(),
        plan.clone(),
    ));
    let store = Store::open_with_storage(storage.clone(), cfg()).unwrap();
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let data = random(42, 40_000);
    put(&store, &k, "f", &data).await;
    // The reopen below then takes the chunk index from the checkpoint, not a pack scan.
    store.checkpoint().unwrap();
    assert_eq!(read(&store, &k, "f").await, data);
    let victim = store.stat(&k, &p("f")).unwrap().content.unwrap().chunks[1].id;
    let (pack, at) = locate_chunk(tmp.path(), &victim);
    plan.flip_bit_on_read(&pack, at + 100, 0);
    assert_eq!(read(&store, &k, "f").await, data, "served from the cache");
    let report = store.scrub();
    assert_eq!(report.chunks.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.chunks.corrupt[0].0, victim);
    assert_eq!(report.hash_mismatches.len(), 1, "{report:?}");
    assert_eq!(
        read(&store, &k, "f").await,
        data,
        "scrub leaves the cache be"
    );
    // The damage is real: a store with a cold cache cannot read the file.
    drop(store);
    let store = Store::open_with_storage(storage, cfg()).unwrap();
    let e = store.read_to_vec(&k, &p("f"), None).await.unwrap_err();
    assert!(e.is_integrity(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collected_chunks_leave_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, plan) = faulty_store(tmp.path());
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let data = random(43, 60_000);
    put(&store, &k, "f", &data).await;
    assert_eq!(read(&store, &k, "f").await, data);
    assert!(store.stats().chunk_cache_bytes >= data.len() as u64);
    store.delete(&k, &p("f")).await.unwrap();
    for t in store.trash(&k).unwrap() {
        store.purge(&k, t.id).await.unwrap();
    }
    let gc = store.gc();
    assert_eq!(gc.bytes_removed, data.len() as u64, "{gc:?}");
    assert_eq!(store.stats().chunk_cache_bytes, 0);
    // The same bytes uploaded again are new chunks on disk, read from there first.
    put(&store, &k, "f", &data).await;
    let n = store
        .stat(&k, &p("f"))
        .unwrap()
        .content
        .unwrap()
        .chunks
        .len() as u64;
    let before = plan.counters().reads;
    assert_eq!(read(&store, &k, "f").await, data);
    assert_eq!(plan.counters().reads - before, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_cache_is_shared_only_within_a_dedup_domain() {
    for (dedup, shared) in [(DedupMode::PerTenant, false), (DedupMode::Global, true)] {
        let tmp = tempfile::tempdir().unwrap();
        let (store, plan) = faulty_store_with(tmp.path(), StoreConfig { dedup, ..cfg() });
        let a = SpaceKey::new("aarhus", "x").unwrap();
        let b = SpaceKey::new("odense", "x").unwrap();
        let data = random(44, 50_000);
        for k in [&a, &b] {
            store.create_space(k).await.unwrap();
            put(&store, k, "f", &data).await;
        }
        assert_eq!(read(&store, &a, "f").await, data);
        let before = plan.counters().reads;
        assert_eq!(read(&store, &b, "f").await, data);
        let from_disk = plan.counters().reads - before;
        assert_eq!(from_disk == 0, shared, "{dedup:?}: {from_disk} disk reads");
    }
}

/// Everything a client can observe of a space, for before/after comparisons.
async fn dump(store: &Store, k: &SpaceKey) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![vec![]];
    while let Some(path) = stack.pop() {
        let (info, children) = store.list(k, &path).unwrap();
        out.push(format!("{path:?} {:?} {}", info.kind, info.mtime));
        for c in children {
            let mut cp = path.clone();
            cp.push(Name::new(&c.name).unwrap());
            match c.kind {
                Kind::Dir => stack.push(cp),
                Kind::File => {
                    let data = store.read_to_vec(k, &cp, None).await.unwrap();
                    let versions: Vec<(u64, u64)> = store
                        .versions(k, &cp)
                        .unwrap()
                        .iter()
                        .map(|v| (v.id, v.content.size))
                        .collect();
                    out.push(format!(
                        "{cp:?} {} {} {versions:?} {:?}",
                        blake3::hash(&data),
                        c.mtime,
                        store.props(k, &cp).unwrap()
                    ));
                }
            }
        }
    }
    out.push(format!("{:?}", store.trash(k).unwrap()));
    out.push(format!("{:?}", store.usage(k).unwrap()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_and_reopen_keep_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = [
        space("ann"),
        space("bob"),
        SpaceKey::new("other", "c").unwrap(),
    ];
    let mut before = Vec::new();
    let stats;
    {
        let store = Store::open(tmp.path(), cfg()).unwrap();
        for (i, k) in keys.iter().enumerate() {
            store.create_space(k).await.unwrap();
            store.mkdir(k, &p("d")).await.unwrap();
            put(&store, k, "d/a", &random(40 + i as u64, 30_000)).await;
            put(&store, k, "d/a", &random(50 + i as u64, 31_000)).await;
            put(&store, k, "b", b"bee").await;
            store
                .set_props(k, &p("d"), vec![(PropName::new("", "x"), vec![1])], vec![])
                .await
                .unwrap();
        }
        store
            .set_space_quota(&keys[0], Some(1 << 30))
            .await
            .unwrap();
        store
            .set_tenant_quota("other", Some(1 << 40))
            .await
            .unwrap();
        store.checkpoint().unwrap();
        // More after the checkpoint: replayed from the WAL.
        for k in &keys {
            put(&store, k, "d/late", &random(60, 20_000)).await;
            store.delete(k, &p("b")).await.unwrap();
            store
                .rename(k, &p("d/a"), &p("moved"), false)
                .await
                .unwrap();
        }
        for k in &keys {
            before.push(dump(&store, k).await);
        }
        stats = store.stats();
    }
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let report = store.recovery_report().clone();
    assert!(report.wal_records_replayed >= 9, "{report:?}");
    assert_eq!(report.wal_records_rejected, 0);
    assert_eq!(report.chunks_missing, 0);
    assert_eq!(report.spaces, 3);
    assert!(report.chunks_from_checkpoint > 0);
    for (k, want) in keys.iter().zip(&before) {
        assert_eq!(&dump(&store, k).await, want, "{k}");
    }
    // Everything but the flush timings, which count this process's flushes only.
    let persistent = |mut s: skab_engine::StoreStats| {
        s.wal_flush = Default::default();
        s.pack_flush = Default::default();
        s
    };
    assert_eq!(persistent(store.stats()), persistent(stats));
    assert_eq!(store.tenant_usage("other").unwrap().1, Some(1 << 40));
    // Checkpoint again with nothing after it: nothing to replay.
    store.checkpoint().unwrap();
    drop(store);
    let store = Store::open(tmp.path(), cfg()).unwrap();
    assert_eq!(store.recovery_report().wal_records_replayed, 0);
    for (k, want) in keys.iter().zip(&before) {
        assert_eq!(&dump(&store, k).await, want, "{k}");
    }
    // Expiry with zero ages drops every version and trash item.
    drop(store);
    let store = Store::open(
        tmp.path(),
        StoreConfig {
            version_age_max: Some(Duration::ZERO),
            trash_age_max: Some(Duration::ZERO),
            ..cfg()
        },
    )
    .unwrap();
    assert_eq!(store.expire().await.unwrap(), 3);
    for k in &keys {
        assert!(store.trash(k).unwrap().is_empty());
        assert!(store.versions(k, &p("moved")).unwrap().is_empty());
    }
    assert!(store.gc().chunks_removed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dedup_uploads_survive_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let data = Bytes::from(random(70, 60_000));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let mut rounds = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.gc();
                rounds += 1;
                std::thread::yield_now();
            }
            rounds
        })
    };
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        let k = k.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..8 {
                let path = p(&format!("t{t}-{i}"));
                store.put_bytes(&k, &path, data.clone()).await.unwrap();
                // Half the tasks also drop their copy for good, so the chunks' reference
                // counts keep touching zero while the others upload.
                if t % 2 == 1 {
                    store.delete(&k, &path).await.unwrap();
                    let id = store
                        .trash(&k)
                        .unwrap()
                        .into_iter()
                        .find(|x| x.orig_path == path)
                        .unwrap()
                        .id;
                    store.purge(&k, id).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(gc.await.unwrap() > 0);
    store.gc();
    for t in (0..16).step_by(2) {
        for i in 0..8 {
            assert_eq!(read(&store, &k, &format!("t{t}-{i}")).await, data);
        }
    }
    assert!(store.scrub().is_clean());
    assert!(store.stats().stored_bytes <= data.len() as u64);
    drop(store);
    let store = Store::open(tmp.path(), cfg()).unwrap();
    assert_eq!(store.recovery_report().chunks_missing, 0);
    assert_eq!(read(&store, &k, "t0-0").await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfc_and_nfd_names_are_one_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let nfc = "caf\u{e9}";
    let nfd = "cafe\u{301}";
    put(&store, &k, nfc, b"one").await;
    assert_eq!(read(&store, &k, nfd).await, b"one");
    put(&store, &k, nfd, b"two").await;
    let (_, children) = store.list(&k, &[]).unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].name, nfc);
    assert_eq!(read(&store, &k, nfc).await, b"two");
    assert_eq!(store.versions(&k, &p(nfc)).unwrap().len(), 1);
}

async fn stored_for_two_tenants(dedup: DedupMode, data: &[u8]) -> (u64, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreConfig { dedup, ..cfg() }).unwrap();
    let a = SpaceKey::new("aarhus", "x").unwrap();
    let a2 = SpaceKey::new("aarhus", "y").unwrap();
    let b = SpaceKey::new("odense", "x").unwrap();
    for k in [&a, &a2, &b] {
        store.create_space(k).await.unwrap();
    }
    put(&store, &a, "f", data).await;
    put(&store, &a2, "f", data).await;
    let one_tenant = store.stats().stored_bytes;
    put(&store, &b, "f", data).await;
    assert_eq!(read(&store, &b, "f").await, data);
    (one_tenant, store.stats().stored_bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_separate_dedup_domains_unless_global() {
    let data = random(80, 100_000);
    let (one, two) = stored_for_two_tenants(DedupMode::PerTenant, &data).await;
    assert_eq!(
        one,
        data.len() as u64,
        "two spaces of one tenant share chunks"
    );
    assert_eq!(two, 2 * one);
    let (one, two) = stored_for_two_tenants(DedupMode::Global, &data).await;
    assert_eq!(one, data.len() as u64);
    assert_eq!(two, one);
}

async fn write_sample(dir: &Path, io: IoChoice) -> Vec<u8> {
    let store = Store::open(dir, StoreConfig { io, ..cfg() }).unwrap();
    let k = space("ann");
    store.create_space(&k).await.unwrap();
    let data = random(90, 150_000);
    store.mkdir(&k, &p("d")).await.unwrap();
    put(&store, &k, "d/f", &data).await;
    put(&store, &k, "d/f", &data[..100_000]).await;
    store.copy(&k, &p("d"), &p("e"), false).await.unwrap();
    store.checkpoint().unwrap();
    put(&store, &k, "late", &data[1000..]).await;
    let mut all = Vec::new();
    for path in ["d/f", "e/f", "late"] {
        all.extend(read(&store, &k, path).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uring_and_std_backends_agree() {
    let std_dir = tempfile::tempdir().unwrap();
    let uring_dir = tempfile::tempdir().unwrap();
    let via_std = write_sample(std_dir.path(), IoChoice::Std).await;
    let uring_works = skab_engine::io::open_storage(uring_dir.path(), IoChoice::Uring).is_ok();
    let via_uring = if uring_works {
        write_sample(uring_dir.path(), IoChoice::Uring).await
    } else {
        // Where the kernel refuses io_uring, Auto must fall back and still work.
        eprintln!("io_uring unavailable here: comparing std with the Auto fallback");
        write_sample(uring_dir.path(), IoChoice::Auto).await
    };
    assert_eq!(via_std, via_uring);
    // Each backend reads what the other wrote.
    let k = space("ann");
    let other = if uring_works {
        IoChoice::Uring
    } else {
        IoChoice::Auto
    };
    for (dir, io) in [(uring_dir.path(), IoChoice::Std), (std_dir.path(), other)] {
        let store = Store::open(dir, StoreConfig { io, ..cfg() }).unwrap();
        let mut all = Vec::new();
        for path in ["d/f", "e/f", "late"] {
            all.extend(read(&store, &k, path).await);
        }
        assert_eq!(all, via_std);
    }
}

/// Regression: a checkpoint of a shard that never logged a record stores last_seq =
/// u64::MAX, and reopening overflowed (`last_seq + 1`: a panic in debug builds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_reopen_after_checkpoint_with_empty_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let k = space("ann");
    {
        let store = Store::open(tmp.path(), cfg()).unwrap();
        store.checkpoint().unwrap();
    }
    {
        let store = Store::open(tmp.path(), cfg()).unwrap();
        store.create_space(&k).await.unwrap();
        put(&store, &k, "f", b"after").await;
        store.checkpoint().unwrap();
    }
    let store = Store::open(tmp.path(), cfg()).unwrap();
    assert_eq!(read(&store, &k, "f").await, b"after");
}

/// The files of `dir` under the store root whose names end in `ext`, sorted.
fn files_ending(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_ending(&path, ext));
        } else if path.to_string_lossy().ends_with(ext) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Writes `bytes` and then `zeros` zero bytes at `at` of file `path`, and syncs.
fn write_then_zeros(path: &Path, at: u64, bytes: &[u8], zeros: usize) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut tail = bytes.to_vec();
    tail.resize(bytes.len() + zeros, 0);
    f.write_all_at(&tail, at).unwrap();
    f.sync_all().unwrap();
}

/// Where the non-zero bytes of a file end.
fn nonzero_end(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1)
}

/// Zeros after the last record of the newest pack and of every WAL segment (pre-zeroed space,
/// here more of it than the zeroer leaves) are a clean end: nothing torn, nothing lost, and
/// the store appends over them; non-zero bytes before zeros are still a torn tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_tails_are_a_clean_end_and_bytes_before_them_are_torn() {
    let tmp = tempfile::tempdir().unwrap();
    let k = space("ann");
    let files: Vec<Vec<u8>> = (0..12).map(|i| random(300 + i, 16 << 10)).collect();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    store.create_space(&k).await.unwrap();
    for (i, f) in files.iter().enumerate() {
        put(&store, &k, &format!("f{i}"), f).await;
    }
    drop(store);
    let last_pack = files_ending(&tmp.path().join("packs"), ".pack")
        .pop()
        .unwrap();
    let segments = files_ending(&tmp.path().join("wal"), ".wal");
    for path in segments.iter().chain([&last_pack]) {
        write_then_zeros(path, nonzero_end(path), &[], 1 << 20);
    }
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let rep = store.recovery_report().clone();
    assert_eq!(
        (
            rep.pack_torn_bytes,
            rep.pack_damaged_bytes,
            rep.wal_torn_bytes
        ),
        (0, 0, 0),
        "{rep:?}"
    );
    assert_eq!(rep.chunks_missing, 0);
    for (i, f) in files.iter().enumerate() {
        assert_eq!(&read(&store, &k, &format!("f{i}")).await, f);
    }
    let later = random(400, 50_000);
    put(&store, &k, "later", &later).await;
    drop(store);
    // Half a record and then zeros after the newest pack's records: a torn tail of
    // exactly its non-zero bytes.
    let last_pack = files_ending(&tmp.path().join("packs"), ".pack")
        .pop()
        .unwrap();
    let torn = b"SKCH\x10\x00\x00\x00garbage";
    write_then_zeros(&last_pack, nonzero_end(&last_pack), torn, 4096);
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let rep = store.recovery_report().clone();
    assert_eq!(rep.pack_torn_bytes, torn.len() as u64, "{rep:?}");
    assert_eq!((rep.pack_damaged_bytes, rep.wal_torn_bytes), (0, 0));
    assert_eq!(&read(&store, &k, "later").await, &later);
    for (i, f) in files.iter().enumerate() {
        assert_eq!(&read(&store, &k, &format!("f{i}")).await, f);
    }
    assert!(store.scrub().is_clean());
}

/// A checkpoint writes the snapshot of a shard only when its log has records since the last
/// one (every change to a shard's state is a record first): a read-only login storm makes a
/// checkpoint cost almost nothing. Counted by renames: one per snapshot, one for the chunk
/// index checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_writes_only_the_shards_that_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let renames = |plan: &Arc<FaultPlan>| plan.counters().renames;
    let (store, plan) = faulty_store(tmp.path());
    let users: Vec<SpaceKey> = (0..12).map(|i| space(&format!("u{i}"))).collect();
    for (i, k) in users.iter().enumerate() {
        store.create_space(k).await.unwrap();
        put(&store, k, "a", format!("first {i}").as_bytes()).await;
    }
    let before = renames(&plan);
    store.checkpoint().unwrap();
    assert_eq!(renames(&plan) - before, 4 + 1, "every shard changed");
    let before = renames(&plan);
    store.checkpoint().unwrap();
    assert_eq!(
        renames(&plan) - before,
        1,
        "nothing changed: chunk index only"
    );
    // One space changes: its shard alone is written again.
    put(&store, &users[0], "b", b"second").await;
    let before = renames(&plan);
    store.checkpoint().unwrap();
    assert_eq!(renames(&plan) - before, 1 + 1);
    // After a reopen with nothing to replay the snapshots on disk are current; after one with
    // records to replay, that shard is written.
    drop(store);
    let (store, plan) = faulty_store(tmp.path());
    let before = renames(&plan);
    store.checkpoint().unwrap();
    assert_eq!(renames(&plan) - before, 1);
    put(&store, &users[1], "c", b"third").await;
    drop(store);
    let (store, plan) = faulty_store(tmp.path());
    assert!(store.recovery_report().wal_records_replayed > 0);
    let before = renames(&plan);
    store.checkpoint().unwrap();
    assert_eq!(renames(&plan) - before, 1 + 1);
    for (i, k) in users.iter().enumerate() {
        assert_eq!(read(&store, k, "a").await, format!("first {i}").as_bytes());
    }
    assert_eq!(read(&store, &users[0], "b").await, b"second");
    assert_eq!(read(&store, &users[1], "c").await, b"third");
}
