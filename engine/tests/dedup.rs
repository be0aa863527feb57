//! Dedup on data: identical copies store once, and a document edited a little at a time
//! stores about its first version plus the edits (figures in docs/benchmarks.md).

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use skab_engine::io::IoChoice;
use skab_engine::limits::CHUNK_SIZE_AVG_DEFAULT;
use skab_engine::ns::Name;
use skab_engine::{SpaceKey, Store, StoreConfig};

const MB: usize = 1_000_000;

fn random(rng: &mut impl Rng, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    rng.fill(&mut b[..]);
    b
}

fn cfg() -> StoreConfig {
    StoreConfig {
        shards: 4,
        io: IoChoice::Std,
        versions_kept: 200,
        // Pre-zeroing is off by default; these tests were written to exercise it.
        prezero: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_copies_store_about_one() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = SpaceKey::new("school", "teacher").unwrap();
    store.create_space(&k).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let file = Bytes::from(random(&mut rng, 5 * MB));
    for i in 0..30 {
        let p = [Name::new(&format!("copy{i}.pdf")).unwrap()];
        store.put_bytes(&k, &p, file.clone()).await.unwrap();
    }
    let s = store.stats();
    println!(
        "30 copies of 5 MB: logical {} B, stored {} B, pack files {} B, ratio {:.1}",
        s.logical_bytes, s.stored_bytes, s.pack_bytes, s.dedup_ratio
    );
    assert_eq!(s.logical_bytes, 30 * 5 * MB as u64);
    assert!(s.stored_bytes < (5.0 * MB as f64 * 1.1) as u64, "{s:?}");
    assert!(s.pack_bytes < (5.0 * MB as f64 * 1.1) as u64, "{s:?}");
    let back = store
        .read_to_vec(&k, &[Name::new("copy29.pdf").unwrap()], None)
        .await
        .unwrap();
    assert!(back == file[..]);
}

/// One small edit: an insertion, an overwrite or a deletion of a few bytes at a random place.
fn edit(doc: &mut Vec<u8>, rng: &mut impl Rng) -> usize {
    let at = rng.gen_range(0..doc.len());
    let n = rng.gen_range(1..200);
    match rng.gen_range(0..3) {
        0 => {
            let ins = random(rng, n);
            doc.splice(at..at, ins);
        }
        1 => {
            let end = (at + n).min(doc.len());
            rng.fill(&mut doc[at..end]);
        }
        _ => {
            let end = (at + n).min(doc.len());
            doc.drain(at..end);
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_versions_store_first_plus_edits() {
    const VERSIONS: usize = 100;
    const DOC: usize = 2 * MB;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), cfg()).unwrap();
    let k = SpaceKey::new("school", "teacher").unwrap();
    store.create_space(&k).await.unwrap();
    let p = [Name::new("report.docx").unwrap()];
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut doc = random(&mut rng, DOC);
    let mut logical = 0u64;
    let mut edited = 0usize;
    for v in 0..VERSIONS {
        if v > 0 {
            // 1-3 edits per version.
            for _ in 0..rng.gen_range(1..=3) {
                edited += edit(&mut doc, &mut rng);
            }
        }
        logical += doc.len() as u64;
        store
            .put_bytes(&k, &p, Bytes::from(doc.clone()))
            .await
            .unwrap();
    }
    let s = store.stats();
    let versions = store.versions(&k, &p).unwrap();
    assert_eq!(versions.len(), VERSIONS - 1);
    let new_versions = versions.len();
    let overhead = s.stored_bytes as f64 - DOC as f64;
    println!(
        "{VERSIONS} versions of a {DOC} B document ({edited} bytes edited): all versions \
         {logical} B, stored {} B ({:.2} x the first version; {:.0} B per version beyond it; \
         {:.1} x saving)",
        s.stored_bytes,
        s.stored_bytes as f64 / DOC as f64,
        overhead / new_versions as f64,
        logical as f64 / s.stored_bytes as f64,
    );
    // Each edit rewrites the chunk it lands in (and may move one boundary): about two
    // average chunks per version at most.
    let bound = DOC + 3 * VERSIONS * 2 * CHUNK_SIZE_AVG_DEFAULT;
    assert!(
        s.stored_bytes < bound as u64,
        "{} >= {bound}",
        s.stored_bytes
    );
    assert!(logical as f64 / s.stored_bytes as f64 > 5.0);
    // The oldest version still reads back.
    let first = &versions[0];
    assert_eq!(first.content.size, DOC as u64);
    store.restore_version(&k, &p, first.id).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let original = random(&mut rng, DOC);
    assert!(store.read_to_vec(&k, &p, None).await.unwrap() == original);
}
