//! Online backup (`Store::backup`) on real directories: taken while writers keep uploading, the
//! copy opens as a store holding every file acknowledged before the backup began, byte for
//! byte and clean under scrub; a second backup copies only what changed (sealed packs stay);
//! after gc and compaction a backup drops the packs the store removed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use skab_engine::chunk::ChunkSizes;
use skab_engine::io::IoChoice;
use skab_engine::ns::Name;
use skab_engine::{SpaceKey, Store, StoreConfig};

fn cfg() -> StoreConfig {
    StoreConfig {
        shards: 4,
        chunk_sizes: ChunkSizes::new(1024, 4096, 16 * 1024).unwrap(),
        io: IoChoice::Std,
        // Small packs, so that a few MiB of uploads seal several.
        pack_size_target: 256 * 1024,
        ..Default::default()
    }
}

fn p(s: &str) -> Vec<Name> {
    vec![Name::new(s).unwrap()]
}

fn content(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut b = vec![0u8; rng.gen_range(1..60_000)];
    rng.fill(&mut b[..]);
    b
}

fn key(n: u64) -> SpaceKey {
    SpaceKey::new("school", &format!("u{}", n % 3)).unwrap()
}

async fn put(store: &Store, n: u64) {
    store
        .put_bytes(&key(n), &p(&format!("f{n}")), Bytes::from(content(n)))
        .await
        .unwrap();
}

/// Checks that `dir` opens as a store holding files `0..n` (at least), each exact.
async fn check_copy(dir: &std::path::Path, n: u64) -> u64 {
    let copy = Store::open(dir, cfg()).unwrap();
    for i in 0..n {
        let got = copy
            .read_to_vec(&key(i), &p(&format!("f{i}")), None)
            .await
            .unwrap_or_else(|e| panic!("f{i} acknowledged before the backup, missing: {e}"));
        assert_eq!(got, content(i), "f{i}");
    }
    // Files written during the backup may be there or not; those there are whole.
    let mut extra = 0;
    for u in 0..3 {
        let (_, children) = copy.list(&key(u), &[]).unwrap();
        for c in children {
            let i: u64 = c.name[1..].parse().unwrap();
            if i >= n {
                let got = copy.read_to_vec(&key(i), &p(&c.name), None).await.unwrap();
                assert_eq!(got, content(i), "{}", c.name);
                extra += 1;
            }
        }
    }
    assert!(copy.scrub().is_clean(), "scrub of the copy");
    extra
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_restores_every_acknowledged_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("live"), cfg()).unwrap();
    for u in 0..3 {
        store.create_space(&key(u)).await.unwrap();
    }
    for i in 0..150 {
        put(&store, i).await;
    }
    // Writers keep uploading through both backups.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 1000;
            while !stop.load(Ordering::Relaxed) {
                put(&store, i).await;
                i += 1;
            }
            i
        })
    };
    let dest = tmp.path().join("backup");
    let first = {
        let (store, dest) = (store.clone(), dest.clone());
        tokio::task::spawn_blocking(move || store.backup(&dest))
            .await
            .unwrap()
            .unwrap()
    };
    assert!(
        first.files_copied > 0 && first.packs_unchanged == 0,
        "{first:?}"
    );
    for i in 150..300 {
        put(&store, i).await;
    }
    let second = {
        let (store, dest) = (store.clone(), dest.clone());
        tokio::task::spawn_blocking(move || store.backup(&dest))
            .await
            .unwrap()
            .unwrap()
    };
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(
        written > 1000,
        "the writer wrote nothing during the backups"
    );
    assert!(
        second.packs_unchanged > 0 && second.bytes_copied < first.bytes_copied + 10_000_000,
        "sealed packs copied again: {first:?} then {second:?}"
    );
    let restored = tmp.path().join("restored");
    copy_dir(&dest, &restored);
    check_copy(&restored, 300).await;

    // Delete most files, collect and compact: the next backup drops the removed packs.
    for i in 0..280 {
        store.delete(&key(i), &p(&format!("f{i}"))).await.unwrap();
    }
    for u in 0..3 {
        for t in store.trash(&key(u)).unwrap() {
            store.purge(&key(u), t.id).await.unwrap();
        }
    }
    store.gc();
    let compacted = store.compact(0.2).unwrap();
    assert!(compacted.packs_removed > 0, "{compacted:?}");
    let third = store.backup(&dest).unwrap();
    assert!(third.files_removed > 0, "{third:?}");
    let live: u64 = walk(&tmp.path().join("live/packs"));
    let copied: u64 = walk(&dest.join("packs"));
    assert_eq!(copied, live, "the backup's packs are the store's");
    drop(store);
    let copy = Store::open(&dest, cfg()).unwrap();
    for i in 280..300 {
        let got = copy
            .read_to_vec(&key(i), &p(&format!("f{i}")), None)
            .await
            .unwrap();
        assert_eq!(got, content(i));
    }
    assert!(copy.read_to_vec(&key(3), &p("f3"), None).await.is_err());
    assert!(copy.scrub().is_clean());
}

/// Bytes of the files under `dir`.
fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}
