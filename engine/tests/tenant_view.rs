//! `Store::tenant_view`, what exports read (docs/export.md): one tenant's spaces at one
//! instant (live entries sorted, versions, trash items with what they hold, dead properties,
//! quotas), other tenants left out, writes going on while the view is held but not seen by
//! it, and every content read back chunk by chunk.

use bytes::Bytes;
use skab_engine::ns::{Kind, Name, PropName};
use skab_engine::{SpaceKey, Store, StoreConfig};

fn p(s: &str) -> Vec<Name> {
    s.split('/')
        .filter(|c| !c.is_empty())
        .map(|c| Name::new(c).unwrap())
        .collect()
}

fn names(path: &[Name]) -> String {
    path.iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_is_one_instant_of_one_tenant_and_reads_back_every_content() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreConfig::default()).unwrap();
    let ann = SpaceKey::new("school", "ann").unwrap();
    let bo = SpaceKey::new("school", "bo").unwrap();
    let other = SpaceKey::new("elsewhere", "ann").unwrap();
    for k in [&ann, &bo, &other] {
        store.create_space(k).await.unwrap();
    }
    store
        .set_tenant_quota("school", Some(1 << 30))
        .await
        .unwrap();
    store.set_space_quota(&bo, Some(1000)).await.unwrap();
    store.mkdir(&ann, &p("Æble")).await.unwrap();
    store.mkdir(&ann, &p("Tom")).await.unwrap();
    for text in ["one", "two", "three"] {
        store
            .put_bytes(&ann, &p("Æble/ø.txt"), Bytes::from_static(text.as_bytes()))
            .await
            .unwrap();
    }
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    store
        .put_bytes(&ann, &p("big.bin"), Bytes::from(big.clone()))
        .await
        .unwrap();
    let grade = PropName::new("urn:x", "grade");
    store
        .set_props(
            &ann,
            &p("Æble"),
            vec![(grade.clone(), b"12".to_vec())],
            vec![],
        )
        .await
        .unwrap();
    store.mkdir(&ann, &p("Old")).await.unwrap();
    store
        .put_bytes(&ann, &p("Old/x.txt"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    store.delete(&ann, &p("Old")).await.unwrap();
    store
        .put_bytes(
            &other,
            &p("secret.txt"),
            Bytes::from_static(b"not school's"),
        )
        .await
        .unwrap();

    let view = store.tenant_view("school").unwrap();
    // Writes go on while the view is held, and it does not see them.
    store
        .put_bytes(&ann, &p("later.txt"), Bytes::from_static(b"later"))
        .await
        .unwrap();
    assert_eq!(view.quota, Some(1 << 30));
    let users: Vec<&str> = view.spaces.iter().map(|s| s.key.user()).collect();
    assert_eq!(users, ["ann", "bo"]);
    assert_eq!(view.spaces[1].quota, Some(1000));
    let a = &view.spaces[0];
    let paths: Vec<String> = a.entries.iter().map(|e| names(&e.path)).collect();
    assert_eq!(paths, ["Tom", "big.bin", "Æble", "Æble/ø.txt"]);
    let apple = &a.entries[2];
    assert_eq!(apple.props[0].name, grade);
    let file = &a.entries[3];
    assert_eq!(file.versions.len(), 2);
    let read = |c: &skab_engine::ns::Content| -> Vec<u8> {
        view.read(c).flat_map(|b| b.unwrap().to_vec()).collect()
    };
    assert_eq!(read(file.info.content.as_ref().unwrap()), b"three");
    assert_eq!(read(&file.versions[0].content), b"one");
    let big_entry = &a.entries[1];
    assert!(big_entry.info.content.as_ref().unwrap().chunks.len() > 1);
    assert_eq!(read(big_entry.info.content.as_ref().unwrap()), big);
    assert_eq!(a.trash.len(), 1);
    let t = &a.trash[0];
    assert_eq!(names(&t.info.orig_path), "Old");
    let inside: Vec<(String, Kind)> = t
        .entries
        .iter()
        .map(|e| (names(&e.path), e.info.kind))
        .collect();
    assert_eq!(
        inside,
        [("".into(), Kind::Dir), ("x.txt".into(), Kind::File)]
    );
    assert_eq!(read(t.entries[1].info.content.as_ref().unwrap()), b"x");
    drop(view);
    assert!(store.tenant_view("nobody").is_err());
    // Once the view is gone, maintenance runs again.
    store.checkpoint().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dated_writes_keep_the_times_they_are_given() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreConfig::default()).unwrap();
    let k = SpaceKey::new("school", "ann").unwrap();
    store.create_space(&k).await.unwrap();
    let one = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"one"))]);
    let two = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"two"))]);
    store.put_dated(&k, &p("f"), one, 100, 150).await.unwrap();
    let info = store.put_dated(&k, &p("f"), two, 300, 200).await.unwrap();
    assert_eq!(info.mtime, 300);
    let v = store.versions(&k, &p("f")).unwrap();
    assert_eq!((v[0].mtime, v[0].superseded_at), (100, 200));
    store.delete_dated(&k, &p("f"), 400).await.unwrap();
    assert_eq!(store.trash(&k).unwrap()[0].deleted_at, 400);
}
