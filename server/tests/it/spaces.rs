//! Shared spaces and shares by users against a real `skab serve` on loopback: members see
//! a space at `/dav/<t>/spaces/<s>/` and as a folder of their home (also under the
//! ownCloud mounts), everyone else gets 404; read-only members get 403 with a body and are
//! told in advance by `oc:permissions` and `DAV:current-user-privilege-set`; revoking
//! counts from the next request on a kept-alive connection; a write in a space changes the
//! ETag of each member's home; quota is charged to the space; versions and trash work in a
//! space; locks hold across its URLs; COPY/MOVE between a home and a space; chunked uploads
//! into a space; groups from an OIDC claim; deleted accounts leave no membership behind; the
//! OCS share API creates, lists, changes and deletes shares (JSON and XML); nextcloudcmd
//! syncing a home takes the space along.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::school::{add_group, as_user, cli, start, wait_member, PW, T};
use common::{basic, skab, Http, Reply, Server};

const SPACE: &str = "/dav/school/spaces/math/";

/// Group `class` = p1, space `math` of teach: the class reads, p2 writes.
fn setup(s: &Server) {
    add_group(s, "p1");
    cli(
        s,
        &[
            "space",
            "add",
            "--tenant",
            T,
            "--space",
            "math",
            "--owner",
            "teach",
            "--share",
            "group:class=read",
            "--share",
            "user:p2=write",
        ],
    );
    wait_member(s, "p1", SPACE);
}

fn propfind_props(c: &Http, url: &str, depth: &str, props: &str) -> Reply {
    let body = format!(
        "<?xml version=\"1.0\"?><d:propfind xmlns:d=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\"><d:prop>{props}</d:prop></d:propfind>"
    );
    c.send("PROPFIND", url, &[("Depth", depth)], body.as_bytes())
}

/// The `getetag` of `url` (Depth 0).
fn etag_of(c: &Http, url: &str) -> String {
    let r = propfind_props(c, url, "0", "<d:getetag/>");
    assert_eq!(r.status, 207, "{url}: {}", r.text());
    let t = r.text();
    let start = t.find("getetag>").expect("getetag") + "getetag>".len();
    let end = start + t[start..].find('<').unwrap();
    t[start..end].to_string()
}

/// The text of the first `<…name>` element in a multistatus after `href`.
fn prop_after(text: &str, href: &str, name: &str) -> String {
    let at = text
        .find(&format!("<D:href>{href}</D:href>"))
        .or_else(|| text.find(&format!("<d:href>{href}</d:href>")))
        .unwrap_or_else(|| panic!("{href} not in {text}"));
    let rest = &text[at..];
    let rest = &rest[..rest.find("</D:response>").unwrap_or(rest.len())];
    // `<X:name xmlns:X="…">text</X:name>`: the text after the opening tag's `>`.
    let open = format!(":{name}");
    match rest.find(&open) {
        Some(i) => {
            let from = i + rest[i..].find('>').unwrap() + 1;
            rest[from..from + rest[from..].find('<').unwrap()].to_string()
        }
        None => String::new(),
    }
}

#[test]
fn members_see_the_space_in_their_home_and_others_get_404() {
    let s = start();
    setup(&s);
    let teach = as_user(&s, "teach", T);
    let p1 = as_user(&s, "p1", T);
    let p2 = as_user(&s, "p2", T);
    let outsider = as_user(&s, "outsider", T);
    let stranger = as_user(&s, "p1", "other");
    assert_eq!(
        teach.put(&format!("{SPACE}notes.txt"), b"fractions").status,
        201
    );
    assert_eq!(teach.mkcol(&format!("{SPACE}week1")).status, 201);

    // Direct, and as a folder of the home, under every mount.
    for url in [
        "/dav/school/spaces/math/notes.txt",
        "/dav/school/p1/math/notes.txt",
        "/remote.php/dav/files/p1@school/math/notes.txt",
        "/remote.php/webdav/math/notes.txt",
    ] {
        let r = p1.get(url);
        assert_eq!((r.status, r.text().as_str()), (200, "fractions"), "{url}");
    }
    let home = p1.propfind("/dav/school/p1/", "1");
    assert_eq!(home.status, 207);
    assert!(
        home.hrefs().contains(&"/dav/school/p1/math/".to_string()),
        "{}",
        home.text()
    );
    let inside = p1.propfind("/dav/school/p1/math/", "1");
    assert_eq!(inside.status, 207);
    let hrefs = inside.hrefs();
    assert!(
        hrefs.contains(&"/dav/school/p1/math/notes.txt".to_string()),
        "{hrefs:?}"
    );
    assert!(
        hrefs.contains(&"/dav/school/p1/math/week1/".to_string()),
        "{hrefs:?}"
    );
    let oc = p1.propfind("/remote.php/dav/files/p1@school/", "1");
    assert!(
        oc.hrefs()
            .contains(&"/remote.php/dav/files/p1@school/math/".to_string()),
        "{}",
        oc.text()
    );
    // The home's HTML listing links to the space.
    let page = p1.get("/dav/school/p1/").text();
    assert!(page.contains("href=\"/dav/school/p1/math/\""), "{page}");
    // The list of one's spaces.
    let list = p1.propfind("/dav/school/spaces/", "1");
    assert_eq!(list.status, 207);
    assert!(list.hrefs().contains(&SPACE.to_string()), "{}", list.text());
    assert_eq!(p1.mkcol("/dav/school/spaces/new").status, 404);
    assert_eq!(
        p1.send("DELETE", "/dav/school/spaces/", &[], b"").status,
        405
    );
    let direct = p1.propfind(SPACE, "1");
    assert!(direct
        .hrefs()
        .contains(&"/dav/school/spaces/math/notes.txt".to_string()));

    // The owner sees it in their home too; the writer writes through their home.
    assert!(teach
        .propfind("/dav/school/teach/", "1")
        .hrefs()
        .contains(&"/dav/school/teach/math/".to_string()));
    assert_eq!(
        p2.put("/dav/school/p2/math/from-p2.txt", b"p2 was here")
            .status,
        201
    );
    assert_eq!(
        teach.get(&format!("{SPACE}from-p2.txt")).text(),
        "p2 was here"
    );
    assert_eq!(p2.mkcol("/dav/school/p2/math/week1/p2dir").status, 201);

    // Anyone else: 404 by every method, never 403; the home shows nothing.
    for c in [&outsider, &stranger] {
        for (m, url) in [
            ("GET", "/dav/school/spaces/math/notes.txt"),
            ("PROPFIND", "/dav/school/spaces/math/"),
            ("PUT", "/dav/school/spaces/math/x.txt"),
            ("DELETE", "/dav/school/spaces/math/notes.txt"),
            ("MKCOL", "/dav/school/spaces/math/d"),
            ("LOCK", "/dav/school/spaces/math/notes.txt"),
            ("GET", "/dav/school/spaces/nosuch/x"),
        ] {
            let r = c.send(m, url, &[("Depth", "0")], b"");
            assert_eq!(r.status, 404, "{m} {url}: {}", r.text());
        }
    }
    assert!(!outsider
        .propfind("/dav/school/outsider/", "1")
        .text()
        .contains("math"));
    assert!(!outsider
        .propfind("/dav/school/spaces/", "1")
        .text()
        .contains("math"));
    assert_eq!(stranger.propfind("/dav/school/spaces/", "1").status, 404);
    // In the outsider's home, a folder named like the space is their own, not the space.
    assert_eq!(
        outsider.get("/dav/school/outsider/math/notes.txt").status,
        404
    );
    assert_eq!(stranger.get("/dav/other/spaces/math/notes.txt").status, 404);

    // The space's folder in a home cannot be deleted or renamed; moves from the home in
    // are refused with a reason.
    let r = p2.delete("/dav/school/p2/math/");
    assert_eq!(r.status, 403, "{}", r.text());
    let r = p2.send(
        "MOVE",
        "/dav/school/p2/math/",
        &[("Destination", "/dav/school/p2/renamed/")],
        b"",
    );
    assert_eq!(r.status, 403);
    // Moves and copies between the home and the space: by reference to the stored content.
    assert_eq!(p2.put("/dav/school/p2/mine.txt", b"mine").status, 201);
    assert_eq!(p2.mkcol("/dav/school/p2/dir").status, 201);
    assert_eq!(p2.put("/dav/school/p2/dir/in.txt", b"in").status, 201);
    let r = p2.send(
        "MOVE",
        "/dav/school/p2/mine.txt",
        &[("Destination", "/dav/school/p2/math/mine.txt")],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(teach.get(&format!("{SPACE}mine.txt")).text(), "mine");
    assert_eq!(p2.get("/dav/school/p2/mine.txt").status, 404);
    let r = p2.send(
        "MOVE",
        "/remote.php/dav/files/p2@school/dir/",
        &[(
            "Destination",
            "http://127.0.0.1/remote.php/dav/files/p2@school/math/dir/",
        )],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(teach.get(&format!("{SPACE}dir/in.txt")).text(), "in");
    let r = p2.send(
        "COPY",
        "/dav/school/p2/math/dir/in.txt",
        &[
            ("Destination", "/dav/school/p2/back.txt"),
            ("Overwrite", "F"),
        ],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(p2.get("/dav/school/p2/back.txt").text(), "in");
    let r = p2.send(
        "COPY",
        "/dav/school/p2/math/dir/in.txt",
        &[
            ("Destination", "/dav/school/p2/back.txt"),
            ("Overwrite", "F"),
        ],
        b"",
    );
    assert_eq!(r.status, 412);
    // A reader copies out, but neither moves out nor copies in.
    let p1 = as_user(&s, "p1", T);
    let r = p1.send(
        "COPY",
        "/dav/school/p1/math/mine.txt",
        &[("Destination", "/dav/school/p1/copy.txt")],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(p1.get("/dav/school/p1/copy.txt").text(), "mine");
    let r = p1.send(
        "MOVE",
        "/dav/school/p1/math/mine.txt",
        &[("Destination", "/dav/school/p1/moved.txt")],
        b"",
    );
    assert_eq!(r.status, 403);
    let r = p1.send(
        "COPY",
        "/dav/school/p1/copy.txt",
        &[("Destination", "/dav/school/spaces/math/from-p1.txt")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("read-only"), "{}", r.text());
    assert_eq!(teach.get(&format!("{SPACE}from-p1.txt")).status, 404);
    // Two URLs of one space: a folder never goes into itself.
    let r = teach.send(
        "MOVE",
        "/dav/school/teach/math/dir/",
        &[("Destination", "/dav/school/spaces/math/dir/sub/")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(teach.get(&format!("{SPACE}dir/in.txt")).text(), "in");
    // Moves inside the space through the home view work.
    let r = p2.send(
        "MOVE",
        "/dav/school/p2/math/from-p2.txt",
        &[("Destination", "/dav/school/p2/math/week1/moved.txt")],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        teach.get(&format!("{SPACE}week1/moved.txt")).text(),
        "p2 was here"
    );
}

#[test]
fn read_only_members_are_refused_and_told_in_advance() {
    let s = start();
    setup(&s);
    let teach = as_user(&s, "teach", T);
    let p1 = as_user(&s, "p1", T);
    let p2 = as_user(&s, "p2", T);
    assert_eq!(teach.put(&format!("{SPACE}notes.txt"), b"v1").status, 201);
    for (m, url) in [
        ("PUT", "/dav/school/p1/math/new.txt"),
        ("PUT", "/dav/school/p1/math/notes.txt"),
        ("PUT", "/dav/school/spaces/math/new.txt"),
        ("DELETE", "/dav/school/p1/math/notes.txt"),
        ("MKCOL", "/dav/school/p1/math/d"),
        ("PROPPATCH", "/dav/school/p1/math/notes.txt"),
        ("LOCK", "/dav/school/p1/math/notes.txt"),
        ("MOVE", "/dav/school/spaces/math/notes.txt"),
    ] {
        let r = p1.send(
            m,
            url,
            &[("Destination", "/dav/school/spaces/math/other.txt")],
            b"",
        );
        assert_eq!(r.status, 403, "{m} {url}");
        assert!(r.text().contains("read-only"), "{m} {url}: {}", r.text());
    }
    assert_eq!(teach.get(&format!("{SPACE}notes.txt")).text(), "v1");

    let props = "<oc:permissions/><d:current-user-privilege-set/>";
    let ro = propfind_props(&p1, "/dav/school/p1/", "1", props).text();
    assert_eq!(prop_after(&ro, "/dav/school/p1/math/", "permissions"), "SM");
    let ro = propfind_props(&p1, "/dav/school/p1/math/", "1", props).text();
    assert_eq!(
        prop_after(&ro, "/dav/school/p1/math/notes.txt", "permissions"),
        "S"
    );
    assert!(
        ro.contains("<D:read/>") && !ro.contains("<D:write/>"),
        "{ro}"
    );
    let rw = propfind_props(&p2, "/dav/school/p2/math/", "1", props).text();
    assert_eq!(
        prop_after(&rw, "/dav/school/p2/math/notes.txt", "permissions"),
        "SDNVW"
    );
    assert_eq!(
        prop_after(&rw, "/dav/school/p2/math/", "permissions"),
        "SMCK"
    );
    assert!(rw.contains("<D:write/>"), "{rw}");
    // One's own home is as before.
    let own = propfind_props(&p2, "/dav/school/p2/", "0", props).text();
    assert_eq!(prop_after(&own, "/dav/school/p2/", "permissions"), "DNVCK");
}

/// One HTTP/1.1 connection kept open over several requests.
struct KeepAlive(TcpStream);

impl KeepAlive {
    fn new(s: &Server) -> KeepAlive {
        let port = s.client().port;
        let t = TcpStream::connect(("127.0.0.1", port)).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        KeepAlive(t)
    }

    fn send(&mut self, method: &str, path: &str, auth: &str, body: &[u8]) -> (u16, String) {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.0.write_all(req.as_bytes()).unwrap();
        self.0.write_all(body).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.0.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.0.read_exact(&mut body).unwrap();
        (status, String::from_utf8_lossy(&body).to_string())
    }
}

#[test]
fn revoking_counts_at_once_on_a_kept_alive_connection() {
    let s = start();
    setup(&s);
    let teach = as_user(&s, "teach", T);
    assert_eq!(teach.put(&format!("{SPACE}notes.txt"), b"x").status, 201);
    let auth = basic("p2@school", PW);
    let mut conn = KeepAlive::new(&s);
    assert_eq!(
        conn.send("GET", "/dav/school/p2/math/notes.txt", &auth, b"")
            .0,
        200
    );
    assert_eq!(
        conn.send("PUT", "/dav/school/p2/math/a.txt", &auth, b"a").0,
        201
    );
    // Write taken away: the next request on the same connection is refused.
    cli(
        &s,
        &[
            "space",
            "share",
            "--tenant",
            T,
            "--space",
            "math",
            "--share",
            "user:p2=read",
        ],
    );
    let (code, body) = conn.send("PUT", "/dav/school/p2/math/b.txt", &auth, b"b");
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        conn.send("GET", "/dav/school/p2/math/notes.txt", &auth, b"")
            .0,
        200
    );
    // Membership taken away: gone, and gone from the home.
    cli(
        &s,
        &[
            "space", "unshare", "--tenant", T, "--space", "math", "--from", "user:p2",
        ],
    );
    assert_eq!(
        conn.send("GET", "/dav/school/p2/math/notes.txt", &auth, b"")
            .0,
        404
    );
    assert_eq!(
        conn.send("GET", "/dav/school/spaces/math/notes.txt", &auth, b"")
            .0,
        404
    );
    let (code, body) = conn.send("PROPFIND", "/dav/school/p2/", &auth, b"");
    assert_eq!(code, 207);
    assert!(!body.contains("/dav/school/p2/math/"), "{body}");
    // A deleted space is gone for its members too.
    cli(&s, &["space", "del", "--tenant", T, "--space", "math"]);
    let p1 = as_user(&s, "p1", T);
    assert_eq!(p1.get("/dav/school/p1/math/notes.txt").status, 404);
    assert_eq!(p1.get("/dav/school/spaces/math/notes.txt").status, 404);
    // The admin commands are in the tenant's audit log.
    let d = s.data_dir().to_str().unwrap().to_string();
    let (ok, log) = skab(&["audit", "export", "--tenant", T, "--data-dir", &d], None);
    assert!(ok, "{log}");
    for kind in [
        "admin.space.add",
        "admin.space.share",
        "admin.space.unshare",
        "admin.space.delete",
    ] {
        assert!(log.contains(kind), "{kind} not in {log}");
    }
}

#[test]
fn a_write_in_the_space_changes_each_members_home_etag() {
    let s = start();
    setup(&s);
    let teach = as_user(&s, "teach", T);
    let p1 = as_user(&s, "p1", T);
    assert_eq!(teach.mkcol(&format!("{SPACE}week1")).status, 201);
    let homes = [
        "/dav/school/p1/",
        "/remote.php/dav/files/p1@school/",
        "/remote.php/webdav/",
    ];
    let before: Vec<String> = homes.iter().map(|h| etag_of(&p1, h)).collect();
    let folder_before = etag_of(&p1, "/dav/school/p1/math/");
    // Unchanged when nothing changed.
    assert_eq!(etag_of(&p1, homes[0]), before[0]);
    assert_eq!(
        teach.put(&format!("{SPACE}week1/sheet.txt"), b"1+1").status,
        201
    );
    for (h, b) in homes.iter().zip(&before) {
        assert_ne!(&etag_of(&p1, h), b, "{h}");
    }
    assert_ne!(etag_of(&p1, "/dav/school/p1/math/"), folder_before);
    // The teacher's own home shows it too.
    let t_before = etag_of(&teach, "/dav/school/teach/");
    assert_eq!(
        teach.put(&format!("{SPACE}week1/sheet.txt"), b"1+2").status,
        204
    );
    assert_ne!(etag_of(&teach, "/dav/school/teach/"), t_before);
    // Being let in or out changes it as well.
    let p1_now = etag_of(&p1, homes[0]);
    cli(
        &s,
        &[
            "space",
            "unshare",
            "--tenant",
            T,
            "--space",
            "math",
            "--from",
            "group:class",
        ],
    );
    assert_ne!(etag_of(&p1, homes[0]), p1_now);
}

#[test]
fn quota_is_charged_to_the_space_and_versions_and_trash_work_there() {
    let s = start();
    setup(&s);
    let p2 = as_user(&s, "p2", T);
    let p1 = as_user(&s, "p1", T);
    let data = vec![7u8; 10_000];
    assert_eq!(p2.put("/dav/school/p2/math/big.bin", &data).status, 201);
    let props = "<d:quota-used-bytes/>";
    let home = propfind_props(&p2, "/dav/school/p2/", "0", props).text();
    assert_eq!(
        prop_after(&home, "/dav/school/p2/", "quota-used-bytes"),
        "0"
    );
    let space = propfind_props(&p2, SPACE, "0", props).text();
    let used: u64 = prop_after(&space, SPACE, "quota-used-bytes")
        .parse()
        .unwrap();
    assert!(used >= 10_000, "{space}");
    // The space's own quota bounds it.
    cli(
        &s,
        &[
            "quota",
            "set",
            "--tenant",
            T,
            "--user",
            "_space_math",
            "--bytes",
            "15000",
        ],
    );
    let r = p2.put("/dav/school/p2/math/more.bin", &vec![1u8; 10_000]);
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(
        p2.put("/dav/school/p2/small.bin", &vec![1u8; 10_000])
            .status,
        201
    );

    // Versions: an overwrite keeps the earlier content, members list it, writers restore.
    assert_eq!(p2.put("/dav/school/p2/math/big.bin", b"v2").status, 204);
    let r = propfind_props(&p2, "/dav/school/p2/math/big.bin", "0", "<oc:fileid/>");
    let fileid = prop_after(&r.text(), "/dav/school/p2/math/big.bin", "fileid");
    let vroot = format!("/dav-versions/school/_space_math/versions/{fileid}/");
    // Under one's own root the space's file id (its tag) leads to the space's versions.
    assert_eq!(
        p2.propfind(&format!("/dav-versions/school/p2/versions/{fileid}/"), "1")
            .status,
        207
    );
    let list = p1.propfind(&vroot, "1");
    assert_eq!(list.status, 207, "{}", list.text());
    let version = list
        .hrefs()
        .into_iter()
        .find(|h| !h.ends_with('/'))
        .unwrap_or_else(|| panic!("no version in {}", list.text()));
    assert_eq!(p1.get(&version).body, data);
    let restore = |c: &Http| {
        c.send(
            "MOVE",
            &version,
            &[(
                "Destination",
                "/dav-versions/school/_space_math/restore/target",
            )],
            b"",
        )
    };
    assert_eq!(restore(&p1).status, 403, "a reader cannot restore");
    assert_eq!(restore(&p2).status, 204);
    assert_eq!(p1.get("/dav/school/p1/math/big.bin").body, data);
    // The Nextcloud/ownCloud layout: the space file's id under one's own versions root.
    assert_eq!(p2.put("/dav/school/p2/math/big.bin", b"v3").status, 204);
    let nc = |u: &str| format!("/remote.php/dav/versions/{u}@school/versions/{fileid}/");
    let list = p1.propfind(&nc("p1"), "1");
    assert_eq!(list.status, 207, "{}", list.text());
    // Earlier contents: the first upload, "v2", the first upload restored.
    let v = list
        .hrefs()
        .into_iter()
        .find(|h| !h.ends_with('/') && p1.get(h).body == data)
        .unwrap_or_else(|| panic!("no version in {}", list.text()));
    let restore_nc = |c: &Http, u: &str, v: &str| {
        c.send(
            "MOVE",
            v,
            &[(
                "Destination",
                &format!("/remote.php/dav/versions/{u}@school/restore/target"),
            )],
            b"",
        )
    };
    assert_eq!(
        restore_nc(&p1, "p1", &v).status,
        403,
        "a reader cannot restore"
    );
    let list2 = p2.propfind(&nc("p2"), "1");
    let v2 = list2
        .hrefs()
        .into_iter()
        .find(|h| !h.ends_with('/') && p2.get(h).body == data)
        .expect("the 10,000-byte version");
    assert_eq!(restore_nc(&p2, "p2", &v2).status, 204);
    assert_eq!(p1.get("/dav/school/p1/math/big.bin").body, data);
    assert_eq!(
        as_user(&s, "outsider", T)
            .propfind(&nc("outsider"), "1")
            .status,
        404
    );
    // Trash: a delete in the space lands in the space's trash.
    assert_eq!(p2.delete("/dav/school/p2/math/big.bin").status, 204);
    let trash = p2.propfind("/dav-trash/school/_space_math/trash/", "1");
    assert_eq!(trash.status, 207);
    assert!(trash.text().contains("big.bin"), "{}", trash.text());
    let outsider = as_user(&s, "outsider", T);
    assert_eq!(
        outsider
            .propfind("/dav-trash/school/_space_math/trash/", "1")
            .status,
        404
    );
}

/// curl against the OCS share API: (HTTP status, body).
fn ocs(s: &Server, login: &str, method: &str, url: &str, form: &[&str]) -> (u16, String) {
    let full = format!("{}{url}", s.base());
    let mut args: Vec<String> = vec![
        "-sS".into(),
        "-o".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "-u".into(),
        format!("{login}:{PW}"),
        "-H".into(),
        "OCS-APIRequest: true".into(),
        "-X".into(),
        method.into(),
    ];
    for f in form {
        args.push("--data-urlencode".into());
        args.push((*f).into());
    }
    args.push(full);
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

const SHARES_V2: &str = "/ocs/v2.php/apps/files_sharing/api/v1/shares";
const SHARES_V1: &str = "/ocs/v1.php/apps/files_sharing/api/v1/shares";

#[test]
fn users_share_folders_through_ocs_and_the_cli_and_revoking_counts_at_once() {
    let s = start();
    setup(&s);
    let teach = as_user(&s, "teach", T);
    let p1 = as_user(&s, "p1", T);
    let p2 = as_user(&s, "p2", T);
    assert_eq!(teach.mkcol("/dav/school/teach/Material").status, 201);
    assert_eq!(
        teach.put("/dav/school/teach/Material/a.txt", b"A").status,
        201
    );
    assert_eq!(teach.put("/dav/school/teach/loose.txt", b"L").status, 201);

    // Create: a user share, read only (JSON, v2).
    let (code, body) = ocs(
        &s,
        "teach@school",
        "POST",
        &format!("{SHARES_V2}?format=json"),
        &[
            "path=/Material",
            "shareType=0",
            "shareWith=p1@school",
            "permissions=1",
        ],
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ocs"]["meta"]["statuscode"], 200, "{body}");
    let d = &v["ocs"]["data"];
    assert_eq!(d["share_type"], 0);
    assert_eq!(d["permissions"], 1);
    assert_eq!(d["path"], "/Material");
    assert_eq!(d["share_with"], "p1@school");
    assert_eq!(d["item_type"], "folder");
    let id1 = d["id"].as_str().unwrap().to_string();

    // The recipient sees it in their home, read-only.
    assert_eq!(p1.get("/dav/school/p1/Material/a.txt").text(), "A");
    assert!(p1
        .propfind("/remote.php/dav/files/p1@school/", "1")
        .hrefs()
        .contains(&"/remote.php/dav/files/p1@school/Material/".to_string()));
    let r = p1.put("/dav/school/p1/Material/b.txt", b"B");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("read-only"), "{}", r.text());
    // The owner's usage and quota are not shown to the recipient.
    let q = propfind_props(
        &p1,
        "/dav/school/p1/Material/",
        "0",
        "<d:quota-used-bytes/>",
    )
    .text();
    assert_eq!(
        prop_after(&q, "/dav/school/p1/Material/", "quota-used-bytes"),
        "",
        "{q}"
    );
    // Nobody else does.
    assert_eq!(p2.get("/dav/school/p2/Material/a.txt").status, 404);
    // The owner changes the permissions, and back.
    let (code, body) = ocs(
        &s,
        "teach@school",
        "PUT",
        &format!("{SHARES_V2}/{id1}?format=json"),
        &["permissions=15"],
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"permissions\":15"), "{body}");
    assert_eq!(p1.put("/dav/school/p1/Material/w.txt", b"W").status, 201);
    let (code, _) = ocs(
        &s,
        "p1@school",
        "PUT",
        &format!("{SHARES_V2}/{id1}"),
        &["permissions=31"],
    );
    assert_eq!(code, 404, "only the owner changes a share");
    let (code, _) = ocs(
        &s,
        "teach@school",
        "PUT",
        &format!("{SHARES_V2}/{id1}"),
        &["permissions=1"],
    );
    assert_eq!(code, 200);
    assert_eq!(p1.put("/dav/school/p1/Material/w2.txt", b"W").status, 403);

    // List: the owner's shares (JSON), and shared with me (XML, v1: 100 in the body).
    let (code, body) = ocs(
        &s,
        "teach@school",
        "GET",
        &format!("{SHARES_V2}?format=json"),
        &[],
    );
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ocs"]["data"][0]["id"], id1.as_str(), "{body}");
    let (code, body) = ocs(
        &s,
        "p1@school",
        "GET",
        &format!("{SHARES_V1}?shared_with_me=true"),
        &[],
    );
    assert_eq!(code, 200);
    assert!(body.contains("<statuscode>100</statuscode>"), "{body}");
    assert!(body.contains(&format!("<id>{id1}</id>")), "{body}");
    assert!(
        body.contains("<file_target>/Material</file_target>"),
        "{body}"
    );
    let (_, body) = ocs(
        &s,
        "p2@school",
        "GET",
        &format!("{SHARES_V1}?shared_with_me=true"),
        &[],
    );
    assert!(!body.contains("<id>"), "{body}");

    // A group share with write: the strongest share counts.
    let (code, body) = ocs(
        &s,
        "teach@school",
        "POST",
        &format!("{SHARES_V2}?format=json"),
        &[
            "path=Material",
            "shareType=1",
            "shareWith=class",
            "permissions=31",
        ],
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ocs"]["data"]["permissions"], 15);
    let id2 = v["ocs"]["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(p1.put("/dav/school/p1/Material/b.txt", b"B").status, 201);
    assert_eq!(teach.get("/dav/school/teach/Material/b.txt").text(), "B");

    // Refusals: no such path, a file, a link, someone else's share, another tenant.
    for (form, want) in [
        (vec!["path=/Nope", "shareType=0", "shareWith=p2"], 404),
        (vec!["path=/loose.txt", "shareType=0", "shareWith=p2"], 400),
        (vec!["path=/Material", "shareType=3"], 400),
        (
            vec!["path=/Material", "shareType=0", "shareWith=nobody"],
            404,
        ),
    ] {
        let (code, body) = ocs(&s, "teach@school", "POST", SHARES_V2, &form);
        assert_eq!(code, want, "{form:?}: {body}");
    }
    let (code, _) = ocs(
        &s,
        "p2@school",
        "DELETE",
        &format!("{SHARES_V2}/{id1}"),
        &[],
    );
    assert_eq!(code, 404);
    let (code, _) = ocs(&s, "p1@other", "GET", &format!("{SHARES_V2}/{id1}"), &[]);
    assert_eq!(code, 404);
    let (_, body) = ocs(
        &s,
        "p1@other",
        "GET",
        &format!("{SHARES_V2}?shared_with_me=true"),
        &[],
    );
    assert!(!body.contains("<id>"), "{body}");
    assert_eq!(
        as_user(&s, "p1", "other")
            .get("/dav/other/p1/Material/a.txt")
            .status,
        404
    );

    // Revoking counts from the next request on a kept-alive connection.
    let auth = basic("p1@school", PW);
    let mut conn = KeepAlive::new(&s);
    assert_eq!(
        conn.send("PUT", "/dav/school/p1/Material/c.txt", &auth, b"C")
            .0,
        201
    );
    let (code, body) = ocs(
        &s,
        "teach@school",
        "DELETE",
        &format!("{SHARES_V2}/{id2}"),
        &[],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        conn.send("PUT", "/dav/school/p1/Material/d.txt", &auth, b"D")
            .0,
        403
    );
    assert_eq!(
        conn.send("GET", "/dav/school/p1/Material/a.txt", &auth, b"")
            .0,
        200
    );
    let (code, _) = ocs(
        &s,
        "teach@school",
        "DELETE",
        &format!("{SHARES_V2}/{id1}"),
        &[],
    );
    assert_eq!(code, 200);
    assert_eq!(
        conn.send("GET", "/dav/school/p1/Material/a.txt", &auth, b"")
            .0,
        404
    );

    // The CLI: add, list, delete.
    let out = cli(
        &s,
        &[
            "share", "add", "--tenant", T, "--owner", "teach", "--path", "Material", "--with",
            "user:p2", "--perm", "write",
        ],
    );
    let id3 = out
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    assert_eq!(p2.put("/dav/school/p2/Material/p2.txt", b"2").status, 201);
    let list = cli(&s, &["share", "list", "--tenant", T]);
    assert!(list.contains("/Material\tuser:p2\twrite"), "{list}");
    // Users' and the help desk's share changes are in the audit log, durable before the
    // answer: there at once, and still there after a kill.
    let d = s.data_dir().to_str().unwrap().to_string();
    let mut s = s;
    s.restart();
    let (ok, log) = skab(&["audit", "export", "--tenant", T, "--data-dir", &d], None);
    assert!(ok, "{log}");
    let missing: Vec<&str> = [
        "\"share.add\"",
        "\"share.update\"",
        "\"share.delete\"",
        "admin.share.add",
    ]
    .into_iter()
    .filter(|k| !log.contains(k))
    .collect();
    assert!(missing.is_empty(), "{missing:?} not in the audit log");
    // Shares survive the restart.
    let p2 = as_user(&s, "p2", T);
    assert_eq!(p2.get("/dav/school/p2/Material/p2.txt").text(), "2");
    cli(&s, &["share", "del", "--tenant", T, "--id", &id3]);
    assert_eq!(p2.get("/dav/school/p2/Material/p2.txt").status, 404);
    assert_eq!(
        as_user(&s, "teach", T)
            .get("/dav/school/teach/Material/p2.txt")
            .text(),
        "2"
    );
}

/// Runs `nextcloudcmd` once: syncs `local` with the home of `login`.
fn nextcloud_sync(s: &Server, login: &str, local: &std::path::Path) {
    let exclude = local.parent().unwrap().join("exclude.lst");
    std::fs::write(&exclude, "*~\n").unwrap();
    let out = std::process::Command::new("timeout")
        .arg("120")
        .arg("nextcloudcmd")
        .args(["--non-interactive", "--max-sync-retries", "1"])
        .arg("--exclude")
        .arg(&exclude)
        .args(["-u", login, "-p", PW])
        .arg(local)
        .arg(format!("{}/", s.base()))
        .env("QT_QPA_PLATFORM", "offscreen")
        .output()
        .expect("run nextcloudcmd");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail = &log[log.len().saturating_sub(4000)..];
    assert!(out.status.success(), "nextcloudcmd failed:\n{tail}");
}

#[test]
fn nextcloudcmd_syncing_a_home_takes_the_space_along() {
    common::require_tool("nextcloudcmd");
    let s = start();
    setup(&s);
    let teach = as_user(&s, "teach", T);
    assert_eq!(
        teach.put(&format!("{SPACE}sheet.txt"), b"task 1").status,
        201
    );
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("p2");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(local.join("own.txt"), b"p2's own").unwrap();
    nextcloud_sync(&s, "p2@school", &local);
    assert_eq!(
        std::fs::read(local.join("math/sheet.txt")).unwrap(),
        b"task 1"
    );
    assert_eq!(
        as_user(&s, "p2", T).get("/dav/school/p2/own.txt").text(),
        "p2's own"
    );
    assert_eq!(teach.get(&format!("{SPACE}own.txt")).status, 404);
    // Up into the space through the home, and the teacher's change down.
    std::fs::write(local.join("math/answer.txt"), b"42").unwrap();
    nextcloud_sync(&s, "p2@school", &local);
    assert_eq!(teach.get(&format!("{SPACE}answer.txt")).text(), "42");
    assert_eq!(
        teach.put(&format!("{SPACE}sheet.txt"), b"task 2").status,
        204
    );
    nextcloud_sync(&s, "p2@school", &local);
    assert_eq!(
        std::fs::read(local.join("math/sheet.txt")).unwrap(),
        b"task 2"
    );
    // A file moved from the home into the space's folder on the desktop moves on the server.
    std::fs::rename(local.join("own.txt"), local.join("math/own.txt")).unwrap();
    nextcloud_sync(&s, "p2@school", &local);
    assert_eq!(teach.get(&format!("{SPACE}own.txt")).text(), "p2's own");
    assert_eq!(
        as_user(&s, "p2", T).get("/dav/school/p2/own.txt").status,
        404
    );
    nextcloud_sync(&s, "p2@school", &local);
    assert_eq!(
        std::fs::read(local.join("math/own.txt")).unwrap(),
        b"p2's own"
    );
    assert!(!local.join("own.txt").exists());
    // A read-only member gets the files too.
    let local1 = dir.path().join("p1");
    std::fs::create_dir(&local1).unwrap();
    nextcloud_sync(&s, "p1@school", &local1);
    assert_eq!(
        std::fs::read(local1.join("math/answer.txt")).unwrap(),
        b"42"
    );
}

#[test]
fn locks_chunked_uploads_and_the_folder_prefix_work_in_spaces() {
    let s = Server::start_opts(
        common::Opts::default()
            .user(T, "teach", PW)
            .user(T, "p1", PW)
            .user(T, "p2", PW)
            .config("[spaces]\nhome_folder_prefix = \"Class \"\n"),
    );
    setup(&s);
    let teach = as_user(&s, "teach", T);
    let p2 = as_user(&s, "p2", T);
    let folder = "/dav/school/p2/Class%20math/";
    assert!(p2
        .propfind("/dav/school/p2/", "1")
        .hrefs()
        .contains(&folder.to_string()));
    assert_eq!(p2.put(&format!("{folder}doc.txt"), b"v1").status, 201);

    // A lock taken through p2's home holds for the teacher's direct URL.
    let lock = br#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let r = p2.send("LOCK", &format!("{folder}doc.txt"), &[("Depth", "0")], lock);
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.header("lock-token").unwrap().to_string();
    assert_eq!(
        teach.put(&format!("{SPACE}doc.txt"), b"teacher").status,
        423
    );
    let found = propfind_props(
        &teach,
        &format!("{SPACE}doc.txt"),
        "0",
        "<d:lockdiscovery/>",
    );
    assert!(found.text().contains("opaquelocktoken"), "{}", found.text());
    // The owner of the lock writes with its token; the teacher's token would not do.
    let tok = format!("({token})");
    let r = p2.send("PUT", &format!("{folder}doc.txt"), &[("If", &tok)], b"v2");
    assert_eq!(r.status, 204, "{}", r.text());
    let r = teach.send("PUT", &format!("{SPACE}doc.txt"), &[("If", &tok)], b"x");
    assert_ne!(r.status / 100, 2, "another member used p2's lock token");
    let r = p2.send(
        "UNLOCK",
        &format!("{folder}doc.txt"),
        &[("Lock-Token", &token)],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        teach.put(&format!("{SPACE}doc.txt"), b"teacher").status,
        204
    );

    // An ownCloud chunked upload finishing into the space: assembled there.
    let uploads = "/remote.php/dav/uploads/p2@school/t1";
    assert_eq!(p2.mkcol(uploads).status, 201);
    let a = vec![1u8; 300_000];
    let b = vec![2u8; 200_000];
    assert_eq!(
        p2.put(&format!("{uploads}/0000000000000000"), &a).status,
        201
    );
    assert_eq!(
        p2.put(&format!("{uploads}/0000000000300000"), &b).status,
        201
    );
    let dest = "http://127.0.0.1/remote.php/dav/files/p2@school/Class%20math/big.bin";
    let r = p2.send(
        "MOVE",
        &format!("{uploads}/.file"),
        &[("Destination", dest), ("OC-Total-Length", "500000")],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let got = teach.get(&format!("{SPACE}big.bin")).body;
    assert_eq!(got.len(), 500_000);
    assert_eq!(&got[..300_000], &a[..]);
    let home = propfind_props(&p2, "/dav/school/p2/", "0", "<d:quota-used-bytes/>").text();
    assert_eq!(
        prop_after(&home, "/dav/school/p2/", "quota-used-bytes"),
        "0"
    );
    // Read-only members cannot finish one there.
    let p1 = as_user(&s, "p1", T);
    let up1 = "/remote.php/dav/uploads/p1@school/t2";
    assert_eq!(p1.mkcol(up1).status, 201);
    assert_eq!(p1.put(&format!("{up1}/0000000000000000"), b"x").status, 201);
    let r = p1.send(
        "MOVE",
        &format!("{up1}/.file"),
        &[(
            "Destination",
            "http://127.0.0.1/remote.php/dav/files/p1@school/Class%20math/x.bin",
        )],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(teach.get(&format!("{SPACE}x.bin")).status, 404);
}

/// An HS256 JWT for `user@school` with these groups in its `groups` claim.
fn jwt_with_groups(user: &str, groups: serde_json::Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://idp.example", "aud": "skab", "exp": now + 600,
        "preferred_username": format!("{user}@school"), "groups": groups,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"idp secret"),
    )
    .unwrap()
}

#[test]
fn groups_from_an_oidc_claim_count_for_spaces_while_the_token_is_valid() {
    let s = Server::start_opts(
        common::Opts::default()
            .user(T, "teach", PW)
            .user(T, "p1", PW)
            .user(T, "p2", PW)
            .user(T, "p3", PW)
            .config(
                "[[auth.jwt]]\nissuer = \"https://idp.example\"\naudience = \"skab\"\n\
                 secret = \"idp secret\"\ngroups_claim = \"groups\"\n",
            ),
    );
    setup(&s);
    let teach = as_user(&s, "teach", T);
    assert_eq!(teach.put(&format!("{SPACE}notes.txt"), b"n").status, 201);
    let bearer = |groups: serde_json::Value| Http {
        port: s.client().port,
        auth: Some(format!("Bearer {}", jwt_with_groups("p3", groups))),
    };
    // p3 is in no group of the user database: the claim alone lets them in (Keycloak's
    // group paths, upper case, and a string form all work).
    let by_claim = bearer(serde_json::json!(["/Class", "other"]));
    assert_eq!(by_claim.get("/dav/school/p3/math/notes.txt").text(), "n");
    assert!(by_claim
        .propfind("/dav/school/p3/", "1")
        .hrefs()
        .contains(&"/dav/school/p3/math/".to_string()));
    assert_eq!(by_claim.put("/dav/school/p3/math/x.txt", b"x").status, 403);
    let as_string = bearer(serde_json::json!("staff class"));
    assert_eq!(as_string.get(&format!("{SPACE}notes.txt")).status, 200);
    // A newer token without the group takes it away.
    let without = bearer(serde_json::json!(["staff"]));
    assert_eq!(without.get(&format!("{SPACE}notes.txt")).status, 404);
    assert_eq!(without.get("/dav/school/p3/math/notes.txt").status, 404);
    // Nor does a password login see it now.
    assert_eq!(
        as_user(&s, "p3", T)
            .get(&format!("{SPACE}notes.txt"))
            .status,
        404
    );
}

#[test]
fn a_deleted_user_or_group_leaves_no_membership_to_a_later_one_of_that_name() {
    let s = start();
    setup(&s);
    let teach = as_user(&s, "teach", T);
    assert_eq!(teach.put(&format!("{SPACE}notes.txt"), b"n").status, 201);
    assert_eq!(teach.mkcol("/dav/school/teach/Material").status, 201);
    cli(
        &s,
        &[
            "share", "add", "--tenant", T, "--owner", "teach", "--path", "Material", "--with",
            "user:p2",
        ],
    );
    assert_eq!(
        as_user(&s, "p2", T)
            .get("/dav/school/p2/math/notes.txt")
            .status,
        200
    );
    cli(&s, &["user", "del", "--tenant", T, "--user", "p2"]);
    cli(&s, &["group", "del", "--tenant", T, "--group", "class"]);
    common::add_user(&s.data_dir(), T, "p2", PW);
    cli(
        &s,
        &[
            "group",
            "add",
            "--tenant",
            T,
            "--group",
            "class",
            "--members",
            "p2",
        ],
    );
    // Once the server has the new account and group, neither has the old ones' access.
    let p2 = as_user(&s, "p2", T);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p2.propfind("/dav/school/p2/", "0").status != 207 {
        assert!(Instant::now() < deadline, "the new p2 never logged in");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(p2.get(&format!("{SPACE}notes.txt")).status, 404);
    let home = p2.propfind("/dav/school/p2/", "1").text();
    assert!(
        !home.contains("math") && !home.contains("Material"),
        "{home}"
    );
    let list = cli(&s, &["space", "list", "--tenant", T]);
    assert!(list.contains("math\tteach\t-"), "{list}");
    let shares = cli(&s, &["share", "list", "--tenant", T]);
    assert_eq!(shares.lines().count(), 1, "{shares}");
}
