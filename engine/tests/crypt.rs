//! Encryption at rest on real directories: no plaintext (file bytes, names, properties, user
//! names) anywhere in the data dir, in packs, WAL or snapshots; the right key store opens it
//! again, a wrong one or none is refused, as is turning encryption on over plain data; after
//! `erase_tenant`, a copy of the data dir taken before no longer yields the tenant's data
//! while other tenants read on; a crash right after the key was destroyed recovers to the
//! same end; gc then reclaims the tenant's chunks.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use skab_engine::chunk::ChunkSizes;
use skab_engine::crypt::{KeyStore, MasterKey};
use skab_engine::io::IoChoice;
use skab_engine::ns::{Name, PropName};
use skab_engine::{SpaceKey, Store, StoreConfig};

const MARKER: &[u8] = b"SKAB-SECRET-MARKER-4711";

fn master(n: u8) -> MasterKey {
    MasterKey::from_bytes(&[n; 32])
}

fn cfg(keys: Option<&Path>, m: u8) -> StoreConfig {
    StoreConfig {
        shards: 4,
        chunk_sizes: ChunkSizes::new(1024, 4096, 16 * 1024).unwrap(),
        io: IoChoice::Std,
        keys: keys.map(|k| Arc::new(KeyStore::open(k, master(m), true).unwrap())),
        ..Default::default()
    }
}

fn p(s: &str) -> Vec<Name> {
    vec![Name::new(s).unwrap()]
}

/// Random bytes with the marker in them every 5000 bytes.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut b = vec![0u8; len];
    rng.fill(&mut b[..]);
    for at in (100..len.saturating_sub(MARKER.len())).step_by(5000) {
        b[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    b
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every file under `dir`, and every name, checked for each needle.
fn assert_absent(dir: &Path, needles: &[&[u8]]) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    assert!(files.len() > 3, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == *n),
                "{} holds {:?}",
                f.display(),
                String::from_utf8_lossy(n)
            );
            assert!(!f.to_string_lossy().contains(&*String::from_utf8_lossy(n)));
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &t);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_at_rest_and_erasure_reaches_copies_taken_before() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let a = SpaceKey::new("school-a", "pupil-marker-anna").unwrap();
    let b = SpaceKey::new("school-b", "pupil-bert").unwrap();
    let file_a = content(1, 200_000);
    let file_b = content(2, 50_000);
    {
        let store = Store::open(&data, cfg(Some(&keys), 1)).unwrap();
        for k in [&a, &b] {
            store.create_space(k).await.unwrap();
        }
        store
            .set_tenant_quota("school-a", Some(1 << 30))
            .await
            .unwrap();
        store
            .mkdir(&a, &p("Folder-SKAB-SECRET-MARKER-4711"))
            .await
            .unwrap();
        store
            .put_bytes(
                &a,
                &p("essay-SKAB-SECRET-MARKER-4711.txt"),
                Bytes::from(file_a.clone()),
            )
            .await
            .unwrap();
        store
            .set_props(
                &a,
                &p("essay-SKAB-SECRET-MARKER-4711.txt"),
                vec![(PropName::new("urn:x", "note"), MARKER.to_vec())],
                vec![],
            )
            .await
            .unwrap();
        store
            .put_bytes(&b, &p("b.bin"), Bytes::from(file_b.clone()))
            .await
            .unwrap();
        // Half in snapshots, half in the WAL after them.
        store.checkpoint().unwrap();
        store
            .put_bytes(
                &a,
                &p("again-SKAB-SECRET-MARKER-4711"),
                Bytes::from(content(3, 30_000)),
            )
            .await
            .unwrap();
    }
    // A window of a chunk's plain bytes without the marker, and the user name.
    assert_absent(
        &data,
        &[
            MARKER,
            &file_a[20_000..20_064],
            &file_b[1_000..1_064],
            b"pupil-marker-anna",
        ],
    );

    // Opens again with its keys and reads back; a wrong key store key or none is refused.
    {
        let store = Store::open(&data, cfg(Some(&keys), 1)).unwrap();
        let got = store
            .read_to_vec(&a, &p("essay-SKAB-SECRET-MARKER-4711.txt"), None)
            .await
            .unwrap();
        assert_eq!(got, file_a);
        assert!(store.scrub().is_clean());
    }
    let e = KeyStore::open(&keys, master(2), false).unwrap_err();
    assert!(e.is_key(), "{e}");
    let e = Store::open(&data, cfg(None, 0))
        .err()
        .expect("opened without keys");
    assert!(e.to_string().contains("encrypted"), "{e}");

    // A copy of the data dir before the erase.
    let before = tmp.path().join("before");
    copy_dir(&data, &before);
    {
        let store = Store::open(&data, cfg(Some(&keys), 1)).unwrap();
        let stored = store.stats().stored_bytes;
        let rep = store.erase_tenant("school-a").unwrap();
        assert!(rep.key_destroyed && rep.spaces == 1, "{rep:?}");
        assert!(!store.space_exists(&a));
        assert!(
            store.create_space(&a).await.is_err(),
            "an erased name is refused"
        );
        store.gc();
        assert!(store.stats().stored_bytes < stored - 200_000);
        assert_eq!(
            store.read_to_vec(&b, &p("b.bin"), None).await.unwrap(),
            file_b
        );
    }
    for dir in [&data, &before] {
        let store = Store::open(dir, cfg(Some(&keys), 1)).unwrap();
        assert!(!store.space_exists(&a), "{}", dir.display());
        assert!(!store.tenants().contains(&"school-a".to_string()));
        assert_eq!(
            store.read_to_vec(&b, &p("b.bin"), None).await.unwrap(),
            file_b
        );
        assert!(store.scrub().is_clean());
    }
}

/// A crash after the key was destroyed and before the spaces were dropped: the next open
/// skips what it cannot open, and gc reclaims the chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_key_was_destroyed_ends_as_a_finished_erase() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let a = SpaceKey::new("a", "u").unwrap();
    let b = SpaceKey::new("b", "u").unwrap();
    {
        let store = Store::open(&data, cfg(Some(&keys), 1)).unwrap();
        for (k, seed) in [(&a, 1), (&b, 2)] {
            store.create_space(k).await.unwrap();
            store
                .put_bytes(k, &p("f"), Bytes::from(content(seed, 80_000)))
                .await
                .unwrap();
        }
        store.checkpoint().unwrap();
        store
            .put_bytes(&a, &p("g"), Bytes::from(content(5, 80_000)))
            .await
            .unwrap();
    }
    KeyStore::erase_at(&keys, "a").unwrap();
    let store = Store::open(&data, cfg(Some(&keys), 1)).unwrap();
    assert!(store.recovery_report().erased_records_skipped >= 2);
    assert!(!store.space_exists(&a));
    let stored = store.stats().stored_bytes;
    store.gc();
    assert!(store.stats().stored_bytes <= stored - 160_000, "{stored}");
    assert_eq!(
        store.read_to_vec(&b, &p("f"), None).await.unwrap(),
        content(2, 80_000)
    );
    // Erasing again is harmless.
    let rep = store.erase_tenant("a").unwrap();
    assert!(!rep.key_destroyed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_cannot_be_turned_on_over_plain_data_and_damage_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let a = SpaceKey::new("a", "u").unwrap();
    {
        let store = Store::open(&data, cfg(None, 0)).unwrap();
        store.create_space(&a).await.unwrap();
    }
    let e = Store::open(&data, cfg(Some(&keys), 1))
        .err()
        .expect("opened plain data");
    assert!(e.to_string().contains("not encrypted"), "{e}");

    // Damage inside a sealed chunk: the read fails with an integrity error, scrub reports it.
    let (data, keys) = (tmp.path().join("data2"), tmp.path().join("keys2"));
    {
        let store = Store::open(&data, cfg(Some(&keys), 1)).unwrap();
        store.create_space(&a).await.unwrap();
        store
            .put_bytes(&a, &p("f"), Bytes::from(content(9, 3000)))
            .await
            .unwrap();
        // Indexed by the checkpoint: the next open does not scan (and cut) the record.
        store.checkpoint().unwrap();
    }
    let mut packs = Vec::new();
    files_under(&data.join("packs"), &mut packs);
    let pack = packs
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 3000)
        .unwrap();
    let mut bytes = std::fs::read(pack).unwrap();
    // The first record: header at 16 (magic, length, id, data CRC, header CRC), data at 64.
    // One flipped bit with both CRCs made right again: only the AEAD tag can tell.
    let len = u32::from_le_bytes(bytes[20..24].try_into().unwrap()) as usize;
    bytes[64 + 10] ^= 0x40;
    let data_crc = crc32c::crc32c(&bytes[64..64 + len]);
    bytes[56..60].copy_from_slice(&data_crc.to_le_bytes());
    let head_crc = crc32c::crc32c(&bytes[16..60]);
    bytes[60..64].copy_from_slice(&head_crc.to_le_bytes());
    std::fs::write(pack, &bytes).unwrap();
    let store = Store::open(&data, cfg(Some(&keys), 1)).unwrap();
    let e = store.read_to_vec(&a, &p("f"), None).await.unwrap_err();
    assert!(e.is_integrity(), "{e}");
    assert!(!store.scrub().is_clean());
}
