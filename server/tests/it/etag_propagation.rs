//! A collection's ETag changes whenever anything below it changes (the root a sync client
//! polls included), and a crash never shows an old root ETag with new content below it.

use crate::common;

use common::*;

/// The `getetag` of `path` from a `PROPFIND Depth: 0`.
fn etag(c: &Http, path: &str) -> String {
    let r = c.propfind(path, "0");
    assert_eq!(r.status, 207, "PROPFIND {path}: {}", r.text());
    let t = r.text();
    let start = t.find("getetag>").expect("getetag in the answer") + "getetag>".len();
    let end = start + t[start..].find('<').unwrap();
    t[start..end].to_string()
}

/// Runs `change` and checks that each of `dirs` got a new ETag.
fn changes(c: &Http, dirs: &[&str], what: &str, change: impl FnOnce(&Http)) {
    let before: Vec<String> = dirs.iter().map(|d| etag(c, &dav(d))).collect();
    change(c);
    for (d, old) in dirs.iter().zip(before) {
        assert_ne!(
            etag(c, &dav(d)),
            old,
            "{what}: the ETag of /{d} did not change"
        );
    }
}

fn ok(r: Reply, what: &str) {
    assert!(
        (200..300).contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.text()
    );
}

#[test]
fn every_change_below_a_collection_changes_its_etag() {
    let s = Server::start();
    let c = s.client();
    changes(&c, &[""], "MKCOL a", |c| ok(c.mkcol(&dav("a/")), "MKCOL"));
    changes(&c, &["", "a/"], "MKCOL a/b", |c| {
        ok(c.mkcol(&dav("a/b/")), "MKCOL")
    });
    changes(&c, &["", "a/", "a/b/"], "PUT a/b/x.txt", |c| {
        ok(c.put(&dav("a/b/x.txt"), b"one"), "PUT")
    });
    changes(&c, &["", "a/", "a/b/"], "overwrite a/b/x.txt", |c| {
        ok(c.put(&dav("a/b/x.txt"), b"two"), "PUT")
    });
    let proppatch = br#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>"#;
    changes(&c, &["", "a/", "a/b/"], "PROPPATCH a/b/x.txt", |c| {
        ok(
            c.send("PROPPATCH", &dav("a/b/x.txt"), &[], proppatch),
            "PROPPATCH",
        )
    });
    ok(c.mkcol(&dav("c/")), "MKCOL");
    let dest = format!("http://127.0.0.1{}", dav("c/y.txt"));
    changes(&c, &["", "c/"], "COPY a/b/x.txt c/y.txt", |c| {
        ok(
            c.send("COPY", &dav("a/b/x.txt"), &[("Destination", &dest)], b""),
            "COPY",
        )
    });
    let dest = format!("http://127.0.0.1{}", dav("c/z.txt"));
    changes(
        &c,
        &["", "a/", "a/b/", "c/"],
        "MOVE a/b/x.txt c/z.txt",
        |c| {
            ok(
                c.send("MOVE", &dav("a/b/x.txt"), &[("Destination", &dest)], b""),
                "MOVE",
            )
        },
    );
    changes(&c, &["", "c/"], "DELETE c/y.txt", |c| {
        ok(c.delete(&dav("c/y.txt")), "DELETE")
    });
    // A sibling's tree is untouched by a change elsewhere.
    let b = etag(&c, &dav("a/b/"));
    ok(c.put(&dav("c/w.txt"), b"w"), "PUT");
    assert_eq!(
        etag(&c, &dav("a/b/")),
        b,
        "a change in c/ moved a/b/'s ETag"
    );
}

#[test]
fn a_crash_keeps_the_root_etag_of_what_is_below_it() {
    let mut s = Server::start();
    ok(s.client().mkcol(&dav("d/")), "MKCOL");
    ok(s.client().mkcol(&dav("d/e/")), "MKCOL");
    for round in 0..3u64 {
        let c = s.client();
        let before = etag(&c, &dav(""));
        let body = pseudo_random(round, 1000);
        ok(c.put(&dav(&format!("d/e/f{round}.bin")), &body), "PUT");
        let root = etag(&c, &dav(""));
        let inner = etag(&c, &dav("d/e/"));
        assert_ne!(root, before);
        // SIGKILL right after the acknowledged write: no graceful shutdown, no checkpoint.
        s.restart();
        let c = s.client();
        assert_eq!(
            etag(&c, &dav("")),
            root,
            "round {round}: the root ETag after a crash differs from the acknowledged one"
        );
        assert_eq!(etag(&c, &dav("d/e/")), inner);
        let got = c.get(&dav(&format!("d/e/f{round}.bin")));
        assert_eq!(got.status, 200);
        assert_eq!(got.body, body);
    }
}
