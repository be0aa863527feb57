//! The ownCloud/Nextcloud protocol pieces one by one against a real server: discovery
//! (status.php, OCS in JSON and XML), the mounts, `X-OC-Mtime`, `OC-Checksum`, file ids, and
//! chunked uploads (resume after a crash, totals, quota, isolation, expiry).

use crate::common;

use common::*;

const FILES: &str = "/remote.php/dav/files/pupil@school/";
const UPLOADS: &str = "/remote.php/dav/uploads/pupil@school/";

fn json(r: &Reply) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

/// The text of the first `name` element in a body, whatever its prefix or attributes.
fn prop(body: &str, name: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = body[from..].find(name).map(|i| i + from) {
        from = i + name.len();
        let lt = body[..i].rfind('<')?;
        let tag = &body[lt + 1..i];
        let after = body[from..].chars().next();
        let opening = !tag.starts_with('/')
            && (tag.is_empty() || tag.ends_with(':'))
            && !tag.contains(' ')
            && matches!(after, Some(' ' | '>'));
        if opening {
            let open = from + body[from..].find('>')? + 1;
            let end = open + body[open..].find('<')?;
            return Some(body[open..end].to_string());
        }
    }
    None
}

#[test]
fn discovery_answers_what_the_clients_ask() {
    let s = Server::start();
    let anon = s.anonymous();
    let r = anon.get("/status.php");
    assert_eq!(r.status, 200);
    let v = json(&r);
    assert_eq!(v["installed"], true);
    assert_eq!(v["maintenance"], false);
    assert!(v["version"].as_str().unwrap().starts_with("10."));

    // OCS needs credentials.
    assert_eq!(
        anon.get("/ocs/v1.php/cloud/capabilities?format=json")
            .status,
        401
    );

    let c = s.client();
    let r = c.get("/ocs/v1.php/cloud/capabilities?format=json");
    assert_eq!(r.status, 200);
    let v = json(&r);
    assert_eq!(v["ocs"]["meta"]["statuscode"], 100);
    assert_eq!(v["ocs"]["data"]["capabilities"]["dav"]["chunking"], "1.0");
    let r = c.get("/ocs/v2.php/cloud/user?format=json");
    assert_eq!(json(&r)["ocs"]["meta"]["statuscode"], 200);
    assert_eq!(json(&r)["ocs"]["data"]["id"], "pupil@school");
    // XML when JSON is not asked for.
    let r = c.get("/ocs/v1.php/cloud/user");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<id>pupil@school</id>"), "{}", r.text());
    assert!(r.text().contains("<statuscode>100</statuscode>"));
    // Unknown OCS endpoints: v2 says so in the HTTP status too.
    assert_eq!(c.get("/ocs/v2.php/apps/nothing?format=json").status, 404);
    assert_eq!(
        c.get("/ocs/v2.php/cloud/users/someone@else?format=json")
            .status,
        404
    );
}

#[test]
fn the_three_mounts_name_the_same_files_and_answer_in_their_own_form() {
    let s = Server::start();
    let c = s.client();
    assert_eq!(c.put(&dav("a.txt"), b"a").status, 201);
    for (root, want) in [
        (FILES, "/remote.php/dav/files/pupil@school/a.txt"),
        (
            "/remote.php/dav/files/pupil%40school/",
            "/remote.php/dav/files/pupil@school/a.txt",
        ),
        ("/remote.php/webdav/", "/remote.php/webdav/a.txt"),
    ] {
        let r = c.propfind(root, "1");
        assert_eq!(r.status, 207, "{root}");
        assert!(
            r.hrefs().iter().any(|h| h == want),
            "{root}: {:?}",
            r.hrefs()
        );
        assert_eq!(c.get(&format!("{root}a.txt")).body, b"a");
    }
    // Another user's files stay out of reach in every form.
    let other = "/remote.php/dav/files/teacher@school/";
    assert_eq!(c.propfind(other, "0").status, 403);
    assert_eq!(
        c.propfind("/remote.php/dav/uploads/teacher@school/", "0")
            .status,
        403
    );
    // MOVE between the forms of one's own space.
    let dest = "http://127.0.0.1/remote.php/webdav/b.txt";
    let r = c.send(
        "MOVE",
        &format!("{FILES}a.txt"),
        &[("Destination", dest)],
        b"",
    );
    assert_eq!(r.status, 201);
    assert_eq!(c.get(&dav("b.txt")).body, b"a");
}

#[test]
fn uploads_keep_the_clients_mtime_checksum_and_file_id() {
    let s = Server::start();
    let c = s.client();
    let sha1_abc = "SHA1:a9993e364706816aba3e25717850c26c9cd0d89d";
    let r = c.send(
        "PUT",
        &format!("{FILES}doc.txt"),
        &[("X-OC-Mtime", "1700000000"), ("OC-Checksum", sha1_abc)],
        b"abc",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("x-oc-mtime"), Some("accepted"));
    let file_id = r.header("oc-fileid").expect("OC-FileId").to_string();
    assert!(r.header("oc-etag").is_some());
    let body = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop><d:getlastmodified/><oc:id/><oc:fileid/><oc:permissions/><oc:checksums/><oc:size/><oc:share-types/></d:prop></d:propfind>"#;
    let r = c.send(
        "PROPFIND",
        &format!("{FILES}doc.txt"),
        &[("Depth", "0")],
        body,
    );
    let t = r.text();
    assert_eq!(
        prop(&t, "getlastmodified").unwrap(),
        "Tue, 14 Nov 2023 22:13:20 GMT"
    );
    assert_eq!(prop(&t, "id").unwrap(), file_id);
    assert_eq!(prop(&t, "permissions").unwrap(), "DNVW");
    assert_eq!(prop(&t, "checksum").unwrap(), sha1_abc);
    assert_eq!(prop(&t, "size").unwrap(), "3");
    assert!(
        t.contains("404 Not Found"),
        "share-types is answered as missing: {t}"
    );

    // The file id survives a move.
    let dest = format!("http://127.0.0.1{FILES}moved.txt");
    let r = c.send(
        "MOVE",
        &format!("{FILES}doc.txt"),
        &[("Destination", &dest)],
        b"",
    );
    assert_eq!(r.status, 201);
    let r = c.send(
        "PROPFIND",
        &format!("{FILES}moved.txt"),
        &[("Depth", "0")],
        body,
    );
    assert_eq!(prop(&r.text(), "id").unwrap(), file_id);

    // A wrong checksum is refused and changes nothing.
    let r = c.send(
        "PUT",
        &format!("{FILES}moved.txt"),
        &[("OC-Checksum", "MD5:00000000000000000000000000000000")],
        b"other bytes",
    );
    assert_eq!(r.status, 400);
    assert_eq!(c.get(&format!("{FILES}moved.txt")).body, b"abc");
    let r = c.send(
        "PUT",
        &format!("{FILES}new.txt"),
        &[("OC-Checksum", "ADLER32:00000001")],
        b"x",
    );
    assert_eq!(r.status, 400);
    assert_eq!(c.get(&format!("{FILES}new.txt")).status, 404);
    // An overwrite without a checksum drops the old one (it would be wrong).
    assert_eq!(c.put(&format!("{FILES}moved.txt"), b"abcd").status, 204);
    let r = c.send(
        "PROPFIND",
        &format!("{FILES}moved.txt"),
        &[("Depth", "0")],
        body,
    );
    assert_eq!(prop(&r.text(), "checksum"), None, "{}", r.text());
    // Nonsense headers are 400s.
    for (h, v) in [("X-OC-Mtime", "yesterday"), ("OC-Checksum", "SHA1:xyz")] {
        let r = c.send("PUT", &format!("{FILES}bad.txt"), &[(h, v)], b"x");
        assert_eq!(r.status, 400, "{h}: {v}");
    }
}

#[test]
fn a_chunked_upload_survives_a_crash_and_commits_without_copying() {
    let mut s = Server::start();
    let part = |i: u64| pseudo_random(i, 3_000_000);
    let c = s.client();
    assert_eq!(c.mkcol(&format!("{UPLOADS}t1")).status, 201);
    let r = c.put(&format!("{UPLOADS}t1/0000000000000000"), &part(0));
    assert_eq!(r.status, 201);
    // Killed after the first acknowledged chunk.
    s.restart();
    let c = s.client();
    // The client resumes: it lists what arrived.
    let r = c.propfind(&format!("{UPLOADS}t1/"), "1");
    assert_eq!(r.status, 207);
    assert!(
        r.hrefs()
            .iter()
            .any(|h| h.ends_with("/t1/0000000000000000")),
        "{:?}",
        r.hrefs()
    );
    assert_eq!(
        c.put(&format!("{UPLOADS}t1/0000000003000000"), &part(1))
            .status,
        201
    );
    assert_eq!(
        c.put(&format!("{UPLOADS}t1/0000000006000000"), &part(2))
            .status,
        201
    );
    let dest = format!("http://127.0.0.1{FILES}Eksamen/opgave.bin");
    assert_eq!(c.mkcol(&format!("{FILES}Eksamen")).status, 201);
    // A wrong total is refused.
    let r = c.send(
        "MOVE",
        &format!("{UPLOADS}t1/.file"),
        &[("Destination", &dest), ("OC-Total-Length", "5")],
        b"",
    );
    assert_eq!(r.status, 400);
    let r = c.send(
        "MOVE",
        &format!("{UPLOADS}t1/.file"),
        &[
            ("Destination", &dest),
            ("OC-Total-Length", "9000000"),
            ("X-OC-Mtime", "1600000000"),
        ],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("x-oc-mtime"), Some("accepted"));
    assert!(r.header("oc-fileid").is_some() && r.header("oc-etag").is_some());
    let mut want = part(0);
    want.extend(part(1));
    want.extend(part(2));
    let got = c.get(&format!("{FILES}Eksamen/opgave.bin"));
    assert_eq!(got.status, 200);
    assert!(got.body == want, "the assembled file differs");
    // The upload folder is gone, and the file is there after another crash.
    assert_eq!(c.propfind(&format!("{UPLOADS}t1/"), "0").status, 404);
    s.restart();
    let got = s.client().get(&format!("{FILES}Eksamen/opgave.bin"));
    assert!(
        got.body == want,
        "the assembled file differs after a restart"
    );
}

#[test]
fn chunked_uploads_are_bounded_by_the_quota_and_expire() {
    let mut s = Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .config("[storage]\ndefault_quota_bytes = 1000000\nupload_ttl_s = 1\n"),
    );
    let c = s.client();
    // A declared total over the quota is refused before any chunk.
    let r = c.send(
        "MKCOL",
        &format!("{UPLOADS}big"),
        &[("OC-Total-Length", "2000000")],
        b"",
    );
    assert_eq!(r.status, 507);
    // Chunks cannot hold more than the quota either.
    assert_eq!(c.mkcol(&format!("{UPLOADS}t2")).status, 201);
    assert_eq!(
        c.put(&format!("{UPLOADS}t2/1"), &pseudo_random(1, 600_000))
            .status,
        201
    );
    assert_eq!(
        c.put(&format!("{UPLOADS}t2/2"), &pseudo_random(2, 600_000))
            .status,
        507
    );
    // Chunks go only into an upload folder, and uploads end only by MOVE of .file.
    assert_eq!(c.put(&format!("{UPLOADS}loose"), b"x").status, 403);
    let r = c.send(
        "COPY",
        &format!("{UPLOADS}t2/1"),
        &[("Destination", &format!("http://127.0.0.1{FILES}x"))],
        b"",
    );
    assert_eq!(r.status, 403);
    // Left alone longer than upload_ttl_s: gone at the next start.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    s.restart();
    let c = s.client();
    assert_eq!(c.propfind(&format!("{UPLOADS}t2/"), "0").status, 404);
    assert!(s.log().contains("unfinished chunked uploads expired"));
}
