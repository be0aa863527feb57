//! `sync-collection` REPORT (RFC 6578) against a real `skab serve`: initial listing, changes
//! since a token at level 1 and infinite, tokens across a crash and a clean restart, a token
//! older than the change log, limits with 507 and a continuing token, bad tokens, and the
//! ownCloud mount.

use crate::common;

use std::collections::BTreeSet;

use common::{dav, Http, Server, PASSWORD, TENANT, USER};

/// What one answer said: changed hrefs, removed hrefs, the token, and whether truncated.
#[derive(Debug)]
struct Answer {
    changed: BTreeSet<String>,
    removed: BTreeSet<String>,
    token: String,
    truncated: bool,
    body: String,
}

fn body(token: &str, level: &str, limit: Option<usize>) -> String {
    let limit = limit
        .map(|n| format!("<D:limit><D:nresults>{n}</D:nresults></D:limit>"))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\"?><D:sync-collection xmlns:D=\"DAV:\">\
         <D:sync-token>{token}</D:sync-token><D:sync-level>{level}</D:sync-level>{limit}\
         <D:prop><D:getetag/><D:displayname/></D:prop></D:sync-collection>"
    )
}

fn report_raw(
    c: &Http,
    path: &str,
    token: &str,
    level: &str,
    limit: Option<usize>,
) -> common::Reply {
    c.send(
        "REPORT",
        path,
        &[("Depth", "0"), ("Content-Type", "application/xml")],
        body(token, level, limit).as_bytes(),
    )
}

fn report(c: &Http, path: &str, token: &str, level: &str, limit: Option<usize>) -> Answer {
    let r = report_raw(c, path, token, level, limit);
    assert_eq!(r.status, 207, "{}", r.text());
    parse(&r.text())
}

fn parse(t: &str) -> Answer {
    let mut a = Answer {
        changed: BTreeSet::new(),
        removed: BTreeSet::new(),
        token: String::new(),
        truncated: false,
        body: t.to_string(),
    };
    for resp in t.split("<D:response>").skip(1) {
        let href = between(resp, "<D:href>", "</D:href>").to_string();
        if resp.contains("<D:propstat>") {
            assert!(resp.contains("<D:getetag>"), "no getetag: {resp}");
            assert!(a.changed.insert(href), "listed twice: {t}");
        } else if resp.contains("507 Insufficient Storage") {
            assert!(
                resp.contains("<D:number-of-matches-within-limits/>"),
                "{resp}"
            );
            a.truncated = true;
        } else {
            assert!(
                resp.contains("<D:status>HTTP/1.1 404 Not Found</D:status>"),
                "{resp}"
            );
            assert!(a.removed.insert(href), "listed twice: {t}");
        }
    }
    a.token = between(t, "<D:sync-token>", "</D:sync-token>").to_string();
    assert!(a.token.starts_with("http://skab.dk/ns/sync/"), "{t}");
    a
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let i = s.find(a).unwrap_or_else(|| panic!("no {a} in {s}")) + a.len();
    let j = s[i..].find(b).unwrap_or_else(|| panic!("no {b} in {s}")) + i;
    &s[i..j]
}

fn set(hrefs: &[&str]) -> BTreeSet<String> {
    hrefs.iter().map(|h| dav(h)).collect()
}

fn proppatch(c: &Http, path: &str, value: &str) {
    let body = format!(
        "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:x=\"urn:x\">\
         <D:set><D:prop><x:color>{value}</x:color></D:prop></D:set></D:propertyupdate>"
    );
    let r = c.send("PROPPATCH", path, &[], body.as_bytes());
    assert_eq!(r.status, 207, "{}", r.text());
}

fn ok(r: common::Reply) {
    assert!((200..300).contains(&r.status), "{} {}", r.status, r.text());
}

fn mv(c: &Http, from: &str, to: &str) {
    let dest = format!("http://127.0.0.1{}", dav(to));
    ok(c.send("MOVE", &dav(from), &[("Destination", &dest)], b""));
}

fn assert_invalid_token(r: &common::Reply) {
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("<D:valid-sync-token/>"), "{}", r.text());
}

#[test]
fn changes_since_a_token() {
    let mut s = Server::start();
    let c = s.client();
    ok(c.mkcol(&dav("a")));
    ok(c.put(&dav("a/f.txt"), b"one"));
    ok(c.put(&dav("g.txt"), b"gee"));

    let opts = c.send("OPTIONS", &dav(""), &[], b"");
    assert!(opts.header("allow").unwrap().contains("REPORT"));

    // Initial sync lists every member, at either level.
    let all = report(&c, &dav(""), "", "infinite", None);
    assert_eq!(all.changed, set(&["a/", "a/f.txt", "g.txt"]));
    assert!(all.removed.is_empty() && !all.truncated);
    let top = report(&c, &dav(""), "", "1", None);
    assert_eq!(top.changed, set(&["a/", "g.txt"]));
    let t0 = all.token;
    assert_eq!(
        report(&c, &dav(""), &t0, "infinite", None).changed,
        set(&[])
    );

    // The token is a live property of every collection (by name).
    let pf = c.send(
        "PROPFIND",
        &dav(""),
        &[("Depth", "0")],
        b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:sync-token/></D:prop></D:propfind>",
    );
    assert_eq!(between(&pf.text(), "<D:sync-token>", "</D:sync-token>"), t0);
    assert!(!c.propfind(&dav(""), "0").text().contains("sync-token"));

    // Overwrite, PROPPATCH, new collection and file.
    ok(c.put(&dav("a/f.txt"), b"two"));
    proppatch(&c, &dav("g.txt"), "red");
    ok(c.mkcol(&dav("b")));
    ok(c.put(&dav("b/h.txt"), b"aitch"));
    let a = report(&c, &dav(""), &t0, "infinite", None);
    assert_eq!(a.changed, set(&["a/", "a/f.txt", "g.txt", "b/", "b/h.txt"]));
    assert!(a.removed.is_empty());
    assert!(a.body.contains("<D:displayname>f.txt</D:displayname>"));
    // Level 1: a member collection is changed when anything below it is (its ETag moved).
    let a1 = report(&c, &dav(""), &t0, "1", None);
    assert_eq!(a1.changed, set(&["a/", "g.txt", "b/"]));
    assert_eq!(a1.token, a.token);
    // A subfolder with the same token: only its members.
    let sub = report(&c, &dav("a/"), &t0, "infinite", None);
    assert_eq!(sub.changed, set(&["a/f.txt"]));
    let t1 = a.token;

    // Move and delete.
    mv(&c, "a/f.txt", "b/f2.txt");
    ok(c.delete(&dav("g.txt")));
    mv(&c, "b", "c");
    let want_changed = set(&["a/", "c/", "c/f2.txt", "c/h.txt"]);
    let want_removed = set(&["a/f.txt", "g.txt", "b/"]);
    let m = report(&c, &dav(""), &t1, "infinite", None);
    assert_eq!(m.changed, want_changed, "{}", m.body);
    assert_eq!(m.removed, want_removed, "{}", m.body);
    let m1 = report(&c, &dav(""), &t1, "1", None);
    assert_eq!(m1.changed, set(&["a/", "c/"]));
    assert_eq!(m1.removed, set(&["g.txt", "b/"]));
    // The collection the client synced is gone.
    assert_eq!(
        report_raw(&c, &dav("b/"), &t1, "infinite", None).status,
        404
    );
    let t2 = m.token;

    // A crash (SIGKILL): the log is rebuilt from the WAL; tokens stay valid and exact.
    s.restart();
    let c = s.client();
    let again = report(&c, &dav(""), &t1, "infinite", None);
    assert_eq!(
        (again.changed, again.removed),
        (want_changed.clone(), want_removed.clone())
    );
    assert_eq!(again.token, t2);
    assert!(report(&c, &dav(""), &t2, "infinite", None)
        .changed
        .is_empty());
    ok(c.put(&dav("c/h.txt"), b"after crash"));
    let t3_answer = report(&c, &dav(""), &t2, "infinite", None);
    assert_eq!(t3_answer.changed, set(&["c/", "c/h.txt"]));

    // A clean restart (the snapshot carries the log).
    s.stop();
    s.restart();
    let c = s.client();
    let again = report(&c, &dav(""), &t1, "infinite", None);
    assert_eq!(again.removed, want_removed);
    assert_eq!(again.changed, want_changed);
    assert_eq!(again.token, t3_answer.token);
}

#[test]
fn limits_truncation_and_bad_tokens() {
    let s = Server::start_with(
        &[(TENANT, USER, PASSWORD), (TENANT, "other", PASSWORD)],
        &[],
    );
    let c = s.client();
    ok(c.mkcol(&dav("d")));
    let t0 = report(&c, &dav(""), "", "infinite", None).token;
    let mut want = BTreeSet::new();
    for i in 0..7 {
        ok(c.put(&dav(&format!("d/f{i}")), b"x"));
        want.insert(dav(&format!("d/f{i}")));
    }
    want.insert(dav("d/"));

    // At most 3 members an answer: 507 for the request-URI and a token that continues.
    let mut token = t0.clone();
    let mut seen = BTreeSet::new();
    let mut answers = 0;
    loop {
        let a = report(&c, &dav(""), &token, "infinite", Some(3));
        assert!(a.changed.len() + a.removed.len() <= 3, "{}", a.body);
        assert!(a.removed.is_empty());
        seen.extend(a.changed);
        token = a.token;
        answers += 1;
        assert!(answers < 20, "never completes");
        if !a.truncated {
            break;
        }
    }
    assert!(answers >= 3);
    assert_eq!(seen, want);
    let full = report(&c, &dav(""), &t0, "infinite", None);
    assert_eq!(full.token, token);
    assert!(!full.truncated);

    // Malformed, foreign and future tokens.
    for bad in [
        "nonsense",
        "http://skab.dk/ns/sync/zz-1",
        "http://skab.dk/ns/sync/1-1",
    ] {
        assert_invalid_token(&report_raw(&c, &dav(""), bad, "1", None));
    }
    let other = s.client_as(&format!("other@{TENANT}"), PASSWORD);
    let home = format!("/dav/{TENANT}/other/");
    let theirs = report(&other, &home, "", "1", None).token;
    assert_invalid_token(&report_raw(&c, &dav(""), &theirs, "1", None));
    let (prefix, seq) = token.rsplit_once('-').unwrap();
    let future = format!("{prefix}-{}", seq.parse::<u64>().unwrap() + 5);
    assert_invalid_token(&report_raw(&c, &dav(""), &future, "1", None));

    // Depth infinity on REPORT is refused; another report is not supported.
    let r = c.send(
        "REPORT",
        &dav(""),
        &[("Depth", "infinity")],
        body("", "1", None).as_bytes(),
    );
    assert_eq!(r.status, 400);
    let r = c.send(
        "REPORT",
        &dav(""),
        &[],
        b"<?xml version=\"1.0\"?><D:expand-property xmlns:D=\"DAV:\"/>",
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("<D:supported-report/>"));
    // On a file.
    let r = report_raw(&c, &dav("d/f0"), "", "1", None);
    assert_eq!(r.status, 403, "{}", r.text());

    // More changes than the log keeps (1,000): the old token is too old.
    let before = report(&c, &dav(""), "", "1", None).token;
    for i in 0..1001 {
        proppatch(&c, &dav("d/f0"), &i.to_string());
    }
    assert_invalid_token(&report_raw(&c, &dav(""), &before, "infinite", None));
    assert_invalid_token(&report_raw(&c, &dav(""), &t0, "1", None));
    let fresh = report(&c, &dav(""), "", "infinite", None);
    assert_eq!(fresh.changed, want);
}

#[test]
fn owncloud_mount_answers_in_its_own_hrefs() {
    let s = Server::start();
    let c = s.client();
    let root = format!("/remote.php/dav/files/{USER}@{TENANT}/");
    ok(c.mkcol(&format!("{root}Docs")));
    ok(c.put(&format!("{root}Docs/n%C3%B8gle.txt"), b"k"));
    let a = report(&c, &root, "", "infinite", None);
    let want: BTreeSet<String> = [format!("{root}Docs/"), format!("{root}Docs/n%C3%B8gle.txt")]
        .into_iter()
        .collect();
    assert_eq!(a.changed, want, "{}", a.body);
    ok(c.delete(&format!("{root}Docs/n%C3%B8gle.txt")));
    let b = report(&c, &root, &a.token, "infinite", None);
    assert_eq!(
        b.removed,
        [format!("{root}Docs/n%C3%B8gle.txt")].into_iter().collect()
    );
    assert_eq!(b.changed, [format!("{root}Docs/")].into_iter().collect());
}
