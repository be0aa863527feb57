//! `skab backup` while a real server takes uploads, and `skab restore` into a new data dir that
//! a second server then serves: every file acknowledged before the backup began is there byte
//! for byte, and every file the restored server serves has the live one's bytes and every
//! property (PROPFIND allprop); a backup of the idle server, restored, serves the same tree,
//! contents and properties through WebDAV as the live one; incomplete backups and non-empty
//! targets are refused.

use crate::common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const OTHER: &str = "other";

fn run_ok(args: &[&str]) -> String {
    let (ok, out) = skab(args, None);
    assert!(ok, "skab {args:?}: {out}");
    out
}

/// A server whose data dir is restored from `backup` before it starts.
fn restored_server(backup: &Path) -> Server {
    let backup = backup.to_path_buf();
    Server::start_opts(Opts {
        before_start: Some(Arc::new(move |data: &Path| {
            run_ok(&[
                "restore",
                "--from",
                backup.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ]);
        })),
        ..Opts::default()
    })
}

const PROPPATCH: &str = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:x"><D:set><D:prop><x:grade>12 ✓</x:grade></D:prop></D:set></D:propertyupdate>"#;

const ALLPROP: &[u8] =
    br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#;

/// What a client sees of one entry: its content (files) and every property it has (PROPFIND
/// `allprop`: live properties such as ETag, length, type and dates, and every dead property).
#[derive(Debug, PartialEq)]
struct Seen {
    body: Vec<u8>,
    props: String,
    graded: bool,
}

/// Every file and collection under `root` (itself included) as served.
fn tree(c: &Http, root: &str) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_string()];
    while let Some(dir) = todo.pop() {
        let r = c.propfind(&dir, "1");
        assert_eq!(r.status, 207, "{dir}");
        for href in r.hrefs() {
            if href != dir && href.ends_with('/') {
                todo.push(href.clone());
            }
            if out.contains_key(&href) {
                continue;
            }
            let body = if href.ends_with('/') {
                Vec::new()
            } else {
                c.get(&href).body
            };
            let props = c.send("PROPFIND", &href, &[("Depth", "0")], ALLPROP);
            assert_eq!(props.status, 207, "{href}");
            let props = props.text();
            // Live properties are in it (and dead ones: `graded` below).
            assert!(
                props.contains("getetag") && props.contains("getlastmodified"),
                "{href}: {props}"
            );
            let graded = props.contains("12 ✓");
            out.insert(
                href,
                Seen {
                    body,
                    props,
                    graded,
                },
            );
        }
    }
    out
}

#[test]
fn a_backup_taken_under_uploads_restores_into_a_server_that_serves_the_same_files() {
    let s = Server::start_with(&[(TENANT, USER, PASSWORD), (TENANT, OTHER, PASSWORD)], &[]);
    let c = s.client();
    let o = s.client_as(&format!("{OTHER}@{TENANT}"), PASSWORD);
    assert_eq!(c.mkcol(&dav("Opgaver")).status, 201);
    for i in 0..30 {
        let path = dav(&format!("Opgaver/{}", enc(&format!("øvelse {i}.txt"))));
        assert_eq!(
            c.put(&path, &pseudo_random(i, 1000 + 3000 * i as usize))
                .status,
            201
        );
        if i % 3 == 0 {
            assert_eq!(
                c.send("PROPPATCH", &path, &[], PROPPATCH.as_bytes()).status,
                207
            );
        }
    }
    let other_home = format!("/dav/{TENANT}/{OTHER}/");
    assert_eq!(
        o.put(&format!("{other_home}big.bin"), &pseudo_random(99, 3 << 20))
            .status,
        201
    );

    // Uploads go on while the backup runs; each records when it was acknowledged.
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let c = s.client();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let path = dav(&format!("live-{i}.bin"));
                assert_eq!(c.put(&path, &pseudo_random(1000 + i, 20_000)).status, 201);
                acked.lock().unwrap().push((path, Instant::now()));
                i += 1;
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("backup");
    let data = s.data_dir();
    let began = Instant::now();
    let out = run_ok(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        backup.to_str().unwrap(),
    ]);
    assert!(out.contains("backup complete"), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let before: Vec<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t < began)
        .map(|(p, _)| p.clone())
        .collect();
    assert!(!before.is_empty(), "no upload before the backup");

    let r = restored_server(&backup);
    let rc = r.client();
    for (n, path) in before.iter().enumerate() {
        let i: u64 = path
            .rsplit('-')
            .next()
            .unwrap()
            .trim_end_matches(".bin")
            .parse()
            .unwrap();
        let got = rc.get(path);
        assert_eq!(
            got.status, 200,
            "{path} acknowledged before the backup ({n})"
        );
        assert_eq!(got.body, pseudo_random(1000 + i, 20_000), "{path}");
    }
    let live_opgaver = tree(&c, &dav("Opgaver/"));
    assert_eq!(tree(&rc, &dav("Opgaver/")), live_opgaver);
    assert_eq!(live_opgaver.values().filter(|s| s.graded).count(), 10);
    // Every file of the restored home is one the live server acknowledged, with the same bytes
    // and properties (uploads after the backup point may be missing, none may differ).
    let restored_home = tree(&rc, &dav(""));
    let live_home = tree(&c, &dav(""));
    for (href, seen) in &restored_home {
        if href.ends_with('/') {
            continue;
        }
        assert_eq!(
            Some(seen),
            live_home.get(href),
            "{href} differs from the live one"
        );
    }
    for path in &before {
        assert!(restored_home.contains_key(path), "{path} missing");
    }
    drop(r);

    // Again into the same directory, with the server idle: the restore is the live state.
    let out = run_ok(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        backup.to_str().unwrap(),
    ]);
    assert!(out.contains("backup complete"), "{out}");
    let r = restored_server(&backup);
    let (rc, ro) = (
        r.client(),
        r.client_as(&format!("{OTHER}@{TENANT}"), PASSWORD),
    );
    assert_eq!(tree(&rc, &dav("")), tree(&c, &dav("")));
    assert_eq!(tree(&ro, &other_home), tree(&o, &other_home));
    // The restored server takes writes (the user database and the store are its own).
    assert_eq!(rc.put(&dav("after-restore.txt"), b"new").status, 201);
    assert_eq!(c.get(&dav("after-restore.txt")).status, 404);
}

#[test]
fn restore_refuses_an_incomplete_backup_and_a_used_data_dir() {
    let s = Server::start();
    assert_eq!(s.client().put(&dav("a.txt"), b"a").status, 201);
    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("b");
    let data = s.data_dir();
    run_ok(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        backup.to_str().unwrap(),
    ]);
    // Into the live data dir: refused, nothing changed.
    let (ok, out) = skab(
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok && out.contains("not empty"), "{out}");
    assert_eq!(s.client().get(&dav("a.txt")).body, b"a");
    // A backup that did not finish (no completion marker) is refused.
    std::fs::remove_file(backup.join("BACKUP_COMPLETE")).unwrap();
    let target = tmp.path().join("new");
    let (ok, out) = skab(
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data-dir",
            target.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok && out.contains("not a complete backup"), "{out}");
    assert!(!target.exists());
}
