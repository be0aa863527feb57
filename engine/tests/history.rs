//! The engine API behind the versions and trash endpoints: a file's path from its id and
//! reads of earlier versions, on a real store reopened from disk.

use bytes::Bytes;
use futures::StreamExt;
use skab_engine::ns::Name;
use skab_engine::{SpaceKey, Store, StoreConfig};

fn p(s: &str) -> Vec<Name> {
    s.split('/')
        .filter(|c| !c.is_empty())
        .map(|c| Name::new(c).unwrap())
        .collect()
}

async fn version_bytes(store: &Store, k: &SpaceKey, path: &str, id: u64) -> Vec<u8> {
    let (_, mut stream) = store.read_version(k, &p(path), id, None).unwrap();
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_id_finds_the_path_and_old_versions_read_back_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let k = SpaceKey::new("school", "ann").unwrap();
    let id = {
        let store = Store::open(tmp.path(), StoreConfig::default()).unwrap();
        store.create_space(&k).await.unwrap();
        store.mkdir(&k, &p("d")).await.unwrap();
        let mut info = None;
        for text in ["first answer", "second answer", "third"] {
            info = Some(
                store
                    .put_bytes(&k, &p("d/f"), Bytes::from_static(text.as_bytes()))
                    .await
                    .unwrap(),
            );
        }
        info.unwrap().id
    };
    let store = Store::open(tmp.path(), StoreConfig::default()).unwrap();
    let (path, info) = store.stat_id(&k, id).unwrap();
    assert_eq!(path, p("d/f"));
    assert_eq!(info.size, 5);
    let versions = store.versions(&k, &path).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        version_bytes(&store, &k, "d/f", versions[0].id).await,
        b"first answer"
    );
    let (_, mut part) = store
        .read_version(&k, &path, versions[1].id, Some((7, 6)))
        .unwrap();
    assert_eq!(&part.next().await.unwrap().unwrap()[..], b"answer");
    assert!(store
        .read_version(&k, &path, versions[1].id, Some((7, 7)))
        .is_err());
    assert!(matches!(
        store.read_version(&k, &path, 9999, None),
        Err(e) if e.is_not_found()
    ));
    // A rename keeps the id; a delete makes it unknown until the entry is restored.
    store.rename(&k, &p("d"), &p("e"), false).await.unwrap();
    assert_eq!(store.path_of(&k, id).unwrap(), p("e/f"));
    store.delete(&k, &p("e")).await.unwrap();
    assert!(store.path_of(&k, id).unwrap_err().is_not_found());
    let trash = store.trash(&k).unwrap();
    store.restore(&k, trash[0].id, None).await.unwrap();
    assert_eq!(store.path_of(&k, id).unwrap(), p("e/f"));
    // Another space does not know the id.
    let other = SpaceKey::new("school", "bob").unwrap();
    store.create_space(&other).await.unwrap();
    assert!(store.path_of(&other, id).is_err());
}
