//! Tenant and user isolation against a real `skab`: no method reaches another user's space,
//! answers do not reveal whether something exists there, hostile paths cannot escape, and
//! failed logins are refused with a challenge and throttled per account.

use crate::common;

use std::net::TcpStream;

use common::{dav, exchange, skab, Opts, Reply, Server, IO_TIMEOUT, PASSWORD, TENANT, USER};

const B_TENANT: &str = "otherschool";
const B_USER: &str = "bob";
const B_PASSWORD: &str = "bobs own password";
const C_USER: &str = "carl";
const C_PASSWORD: &str = "carls own password";
const SECRET: &[u8] = b"B's secret marks: 12, 10, 7";

fn b_path(rel: &str) -> String {
    format!("/dav/{B_TENANT}/{B_USER}/{rel}")
}

fn start() -> Server {
    Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .user(B_TENANT, B_USER, B_PASSWORD)
            .user(TENANT, C_USER, C_PASSWORD),
    )
}

/// What B's space looks like: Depth 1 listing of the home and of `dir/`, and the secret.
fn snapshot_b(server: &Server) -> (Vec<String>, Vec<String>, Vec<u8>) {
    let b = server.client_as(&format!("{B_USER}@{B_TENANT}"), B_PASSWORD);
    let mut home = b.propfind(&b_path(""), "1").hrefs();
    home.sort();
    let mut dir = b.propfind(&b_path("dir/"), "1").hrefs();
    dir.sort();
    let secret = b.get(&b_path("secret.txt"));
    assert_eq!(secret.status, 200);
    (home, dir, secret.body)
}

fn seed_b(server: &Server) {
    let b = server.client_as(&format!("{B_USER}@{B_TENANT}"), B_PASSWORD);
    assert_eq!(b.put(&b_path("secret.txt"), SECRET).status, 201);
    assert_eq!(b.mkcol(&b_path("dir")).status, 201);
    assert_eq!(b.put(&b_path("dir/inner.txt"), SECRET).status, 201);
}

/// Method, headers and body of one request.
type Attack<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8]);

/// Every request `a` may try against a path in B's space.
fn attacks(a: &common::Http, path: &str, own: &str) -> Vec<(String, Reply)> {
    let lock = br#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let patch = br#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:p xmlns:x="urn:x">v</x:p></D:prop></D:set></D:propertyupdate>"#;
    let dest_own = format!("http://127.0.0.1{own}");
    let reqs: Vec<Attack> = vec![
        ("GET", vec![], b""),
        ("HEAD", vec![], b""),
        ("PUT", vec![], b"overwritten by A"),
        ("PROPFIND", vec![("Depth", "0")], b""),
        ("PROPFIND", vec![("Depth", "1")], b""),
        ("PROPPATCH", vec![], patch),
        ("DELETE", vec![], b""),
        ("MKCOL", vec![], b""),
        ("LOCK", vec![("Depth", "0")], lock),
        (
            "UNLOCK",
            vec![(
                "Lock-Token",
                "<opaquelocktoken:00000000-0000-4000-8000-000000000000>",
            )],
            b"",
        ),
        // Out of B's space into A's own.
        ("COPY", vec![("Destination", &dest_own)], b""),
        ("MOVE", vec![("Destination", &dest_own)], b""),
    ];
    reqs.into_iter()
        .map(|(m, h, body)| (format!("{m} {h:?}"), a.send(m, path, &h, body)))
        .collect()
}

#[test]
fn no_method_reaches_another_space_and_answers_reveal_nothing() {
    let server = start();
    seed_b(&server);
    let before = snapshot_b(&server);
    let a = server.client();
    let c = server.client_as(&format!("{C_USER}@{TENANT}"), C_PASSWORD);
    assert_eq!(
        c.put(&format!("/dav/{TENANT}/{C_USER}/c.txt"), SECRET)
            .status,
        201
    );
    for (existing, missing) in [
        (b_path("secret.txt"), b_path("no-such-file.txt")),
        (b_path("dir/"), b_path("no-such-dir/")),
        (b_path("dir/inner.txt"), b_path("dir/missing.txt")),
        // Same tenant, other user.
        (
            format!("/dav/{TENANT}/{C_USER}/c.txt"),
            format!("/dav/{TENANT}/{C_USER}/none.txt"),
        ),
        // Whole homes: an existing user and a user that does not exist.
        (b_path(""), format!("/dav/{B_TENANT}/nobody/")),
    ] {
        let hit = attacks(&a, &existing, &dav("taken.txt"));
        let miss = attacks(&a, &missing, &dav("taken.txt"));
        for ((what, h), (_, m)) in hit.iter().zip(&miss) {
            assert_eq!(h.status, 403, "{what} {existing}: {}", h.text());
            assert!(
                !h.body.windows(SECRET.len()).any(|w| w == SECRET),
                "{what} {existing} leaked content"
            );
            assert_eq!(
                (h.status, &h.body),
                (m.status, &m.body),
                "{what}: answers differ for existing {existing} and missing {missing}"
            );
        }
    }
    assert_eq!(snapshot_b(&server), before, "B's space changed");
    assert_eq!(
        c.get(&format!("/dav/{TENANT}/{C_USER}/c.txt")).body,
        SECRET,
        "C's file changed"
    );
    // Nothing was copied or moved out into A's space.
    assert_eq!(a.get(&dav("taken.txt")).status, 404);
}

#[test]
fn destination_in_another_space_is_refused() {
    let server = start();
    seed_b(&server);
    let before = snapshot_b(&server);
    let a = server.client();
    assert_eq!(a.put(&dav("mine.txt"), b"A's file").status, 201);
    assert_eq!(a.mkcol(&dav("folder")).status, 201);
    for dest in [
        format!("http://127.0.0.1{}", b_path("stolen.txt")),
        b_path("stolen.txt"),
        // Overwrite an existing file of B.
        b_path("secret.txt"),
        format!("http://127.0.0.1{}", b_path("dir/")),
        format!("http://127.0.0.1/dav/{TENANT}/{C_USER}/stolen.txt"),
        // Climbing out of A's space inside the Destination.
        format!("http://127.0.0.1/dav/{TENANT}/{USER}/../../{B_TENANT}/{B_USER}/stolen.txt"),
        format!("/dav/{TENANT}/{USER}/%2e%2e/%2e%2e/{B_TENANT}/{B_USER}/stolen.txt"),
    ] {
        for method in ["COPY", "MOVE"] {
            for src in [dav("mine.txt"), dav("folder/")] {
                let r = a.send(
                    method,
                    &src,
                    &[("Destination", &dest), ("Overwrite", "T")],
                    b"",
                );
                assert!(
                    r.status == 403 || r.status == 400,
                    "{method} {src} -> {dest}: {} {}",
                    r.status,
                    r.text()
                );
            }
        }
    }
    // Another server altogether: 502 (RFC 4918 §9.8.5).
    let r = a.send(
        "COPY",
        &dav("mine.txt"),
        &[("Destination", "http://elsewhere.example/dav/x")],
        b"",
    );
    assert_eq!(r.status, 502);
    assert_eq!(snapshot_b(&server), before, "B's space changed");
    assert_eq!(a.get(&dav("mine.txt")).body, b"A's file");
    assert_eq!(a.propfind(&dav("folder/"), "0").status, 207);
}

/// Sends raw request bytes; `None` if the server closed without an answer.
fn try_raw(server: &Server, req: &[u8]) -> Option<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exchange(&mut s, req)))
        .ok()
        .and_then(Result::ok)
}

fn files_named(dir: &std::path::Path, needle: &str, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().contains(needle))
        {
            out.push(p.clone());
        }
        if p.is_dir() {
            files_named(&p, needle, out);
        }
    }
}

#[test]
fn path_tricks_cannot_escape() {
    let server = start();
    seed_b(&server);
    let before_b = snapshot_b(&server);
    let a = server.client();
    assert_eq!(a.mkcol(&dav("sub")).status, 201);
    let mut before_a = a.propfind(&dav(""), "1").hrefs();
    before_a.sort();
    let auth = common::basic(&format!("{USER}@{TENANT}"), PASSWORD);
    let home = format!("/dav/{TENANT}/{USER}");
    let targets: Vec<Vec<u8>> = [
        format!("{home}/../../{B_TENANT}/{B_USER}/secret.txt"),
        format!("{home}/%2e%2e/%2e%2e/{B_TENANT}/{B_USER}/secret.txt"),
        format!("{home}/%2E%2E/%2E%2E/{B_TENANT}/{B_USER}/secret.txt"),
        format!("{home}/..%2f..%2f{B_TENANT}%2f{B_USER}%2fsecret.txt"),
        format!("{home}/%2e%2e%2f%2e%2e%2f{B_TENANT}%2f{B_USER}%2fsecret.txt"),
        format!("{home}/..\\..\\{B_TENANT}\\{B_USER}\\secret.txt"),
        format!("{home}/%5c..%5c..%5c{B_TENANT}%5c{B_USER}%5csecret.txt"),
        format!("{home}/%c0%ae%c0%ae/%c0%ae%c0%ae/{B_TENANT}/{B_USER}/secret.txt"),
        format!("{home}/sub/../escape-dotdot.txt"),
        format!("{home}/./escape-dot.txt"),
        format!("{home}/escape-nul%00.txt"),
        format!("/dav/{B_TENANT}/{B_USER}/../../{TENANT}/{USER}/escape-up.txt"),
        format!("/dav/../{B_TENANT}/{B_USER}/secret.txt"),
        "/../../../../etc/passwd".to_string(),
        format!("{home}/../../../../../../tmp/escape-tmp.txt"),
    ]
    .into_iter()
    .map(String::into_bytes)
    .chain([
        // A raw NUL and a raw control byte in the request line.
        [home.as_bytes(), b"/escape-raw\0nul.txt"].concat(),
        [home.as_bytes(), b"/escape-raw\x01ctl.txt"].concat(),
    ])
    .collect();
    for target in &targets {
        for (method, body) in [("GET", &b""[..]), ("PUT", b"escaped!"), ("DELETE", b"")] {
            let mut req = format!("{method} ").into_bytes();
            req.extend_from_slice(target);
            req.extend_from_slice(
                format!(
                    " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            req.extend_from_slice(body);
            let shown = String::from_utf8_lossy(target);
            match try_raw(&server, &req) {
                None => {} // refused at the HTTP layer: nothing happened
                Some(r) => {
                    assert!(
                        [400, 403, 404].contains(&r.status),
                        "{method} {shown}: {} {}",
                        r.status,
                        r.text()
                    );
                    assert!(
                        !r.body.windows(SECRET.len()).any(|w| w == SECRET),
                        "{method} {shown} leaked B's file"
                    );
                }
            }
        }
    }
    // Nothing changed anywhere: B's space, A's space, and no file by those names on disk.
    assert_eq!(snapshot_b(&server), before_b);
    let mut after_a = a.propfind(&dav(""), "1").hrefs();
    after_a.sort();
    assert_eq!(after_a, before_a);
    assert_eq!(a.propfind(&dav("sub/"), "1").hrefs(), vec![dav("sub/")]);
    let mut found = Vec::new();
    files_named(server.path(), "escape", &mut found);
    files_named(std::path::Path::new("/tmp"), "escape-tmp", &mut found);
    assert!(found.is_empty(), "files created outside: {found:?}");
    // The server is still healthy.
    assert_eq!(a.get(&dav("")).status, 200);
}

#[test]
fn wrong_password_gets_401_with_challenge() {
    let server = start();
    let cases = [
        server.client_as(&format!("{USER}@{TENANT}"), "wrong password"),
        server.client_as(&format!("nobody@{TENANT}"), PASSWORD),
        server.client_as(&format!("{USER}@nowhere"), PASSWORD),
        server.client_as("no-at-sign", PASSWORD),
        server.anonymous(),
    ];
    let mut bodies = Vec::new();
    for c in &cases {
        let r = c.propfind(&dav(""), "0");
        assert_eq!(r.status, 401, "{:?}", c.auth);
        let challenge = r.header_all("www-authenticate");
        assert!(
            challenge
                .iter()
                .any(|v| v.starts_with("Basic ") && v.contains("realm=")),
            "{challenge:?}"
        );
        bodies.push(r.body);
    }
    // A wrong password and an unknown user look the same.
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(server.client().propfind(&dav(""), "0").status, 207);
}

#[test]
fn repeated_wrong_passwords_throttle_only_that_account() {
    // Three free failures, then a long wait: deterministic whatever the machine's speed.
    let server = Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .user(TENANT, C_USER, C_PASSWORD)
            .config("[auth]\naccount_failures_free = 3\naccount_backoff_base_ms = 60000\n"),
    );
    let wrong = server.client_as(&format!("{USER}@{TENANT}"), "guess");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(wrong.propfind(&dav(""), "0").status);
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert!(statuses[4..].iter().all(|&s| s == 429), "{statuses:?}");
    // Even the right password waits now (the guesser cannot tell)...
    let r = server.client().propfind(&dav(""), "0");
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry >= 1);
    // ...but another account from the same address logs in at once.
    let c = server.client_as(&format!("{C_USER}@{TENANT}"), C_PASSWORD);
    let r = c.propfind(&format!("/dav/{TENANT}/{C_USER}/"), "0");
    assert_eq!(r.status, 207, "{}", r.text());
    let r = server
        .client_as(&format!("{C_USER}@{TENANT}"), "one typo")
        .propfind(&format!("/dav/{TENANT}/{C_USER}/"), "0");
    assert_eq!(r.status, 401);
}

#[test]
fn if_header_cannot_probe_another_space() {
    let server = start();
    seed_b(&server);
    let b = server.client_as(&format!("{B_USER}@{B_TENANT}"), B_PASSWORD);
    let real = b.get(&b_path("secret.txt"));
    let etag = real.header("etag").unwrap().to_string();
    let a = server.client();
    assert_eq!(a.put(&dav("mine.txt"), b"v0").status, 201);
    // The same If conditions on B's existing file and on a missing one answer alike,
    // whatever B's real ETag is.
    let mut answers = Vec::new();
    for target in [b_path("secret.txt"), b_path("missing.txt")] {
        for cond in [
            format!("[{etag}]"),
            "[\"bogus\"]".to_string(),
            format!("Not [{etag}]"),
        ] {
            let iff = format!("<http://127.0.0.1{target}> ({cond})");
            let r = a.send("PROPPATCH", &dav("mine.txt"), &[("If", &iff)], br#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:p xmlns:x="urn:x">v</x:p></D:prop></D:set></D:propertyupdate>"#);
            answers.push((cond, r.status));
        }
    }
    let (hit, miss) = answers.split_at(3);
    assert_eq!(hit, miss, "the If header reveals B's file");
    // B's real ETag does not make a condition true.
    assert_eq!(hit[0].1, 412);
}

/// A hand-in of tenant `TENANT` that `USER` (a pupil) has handed in to: nobody outside its
/// group (another pupil of the school, a user of another tenant) reaches it by any method, and
/// every answer is the one a hand-in that does not exist gets.
#[test]
fn handins_are_invisible_outside_their_group() {
    const D_USER: &str = "dora";
    const D_PASSWORD: &str = "doras own password";
    let server = Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .user(TENANT, C_USER, C_PASSWORD)
            .user(TENANT, D_USER, D_PASSWORD)
            .user(B_TENANT, B_USER, B_PASSWORD),
    );
    let data = server.data_dir();
    let d = data.to_str().unwrap();
    for args in [
        &[
            "group",
            "add",
            "--tenant",
            TENANT,
            "--group",
            "9a",
            "--members",
            USER,
        ][..],
        &[
            "handin",
            "add",
            "--tenant",
            TENANT,
            "--handin",
            "exam",
            "--owner",
            C_USER,
            "--group",
            "9a",
            "--closes",
            "2099-06-12T12:00:00Z",
        ][..],
    ] {
        let mut all = args.to_vec();
        all.extend(["--data-dir", d]);
        let (ok, out) = common::skab(&all, None);
        assert!(ok, "skab {args:?}: {out}");
    }
    let base = format!("/dav/{TENANT}/handin/exam/");
    let answer = format!("{base}answer.txt");
    let a = server.client();
    // Group changes reach the running server within a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = a.put(&answer, SECRET);
        if r.status == 201 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pupil never got into the hand-in: {}",
            r.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let outsiders = [
        (
            server.client_as(&format!("{D_USER}@{TENANT}"), D_PASSWORD),
            format!("/dav/{TENANT}/{D_USER}/taken.txt"),
        ),
        (
            server.client_as(&format!("{B_USER}@{B_TENANT}"), B_PASSWORD),
            b_path("taken.txt"),
        ),
    ];
    let missing = format!("/dav/{TENANT}/handin/no-such-exam/");
    for (who, own) in &outsiders {
        for (existing, missing) in [
            (base.clone(), missing.clone()),
            (answer.clone(), format!("{missing}answer.txt")),
            (
                format!("{base}{USER}/answer.txt"),
                format!("{missing}{USER}/answer.txt"),
            ),
        ] {
            let hit = attacks(who, &existing, own);
            let miss = attacks(who, &missing, own);
            for ((what, h), (_, m)) in hit.iter().zip(&miss) {
                assert!(
                    matches!(h.status, 401 | 403 | 404),
                    "{what} {existing}: {} {}",
                    h.status,
                    h.text()
                );
                assert!(
                    !h.body.windows(SECRET.len()).any(|w| w == SECRET),
                    "{what} {existing} leaked content"
                );
                assert_eq!(
                    (h.status, &h.body),
                    (m.status, &m.body),
                    "{what}: answers differ for existing {existing} and missing {missing}"
                );
            }
        }
        assert_eq!(who.get(own).status, 404, "something reached {own}");
    }
    // The same-tenant outsider is told nothing exists (404, never 403).
    let dora = &outsiders[0].0;
    assert_eq!(dora.propfind(&base, "0").status, 404);
    assert_eq!(dora.get(&answer).status, 404);
    // The hand-in is as the pupil left it.
    assert_eq!(a.get(&answer).body, SECRET);
    let listing = a.propfind(&base, "1").hrefs();
    assert_eq!(listing.len(), 2, "{listing:?}");
}

/// `skab` against the server's data dir; panics when it fails.
fn admin(server: &Server, args: &[&str]) -> String {
    let d = server.data_dir().to_str().unwrap().to_string();
    let mut all = args.to_vec();
    all.extend(["--data-dir", d.as_str()]);
    let (ok, out) = skab(&all, None);
    assert!(ok, "skab {args:?}: {out}");
    out
}

#[test]
fn spaces_and_shares_of_another_tenant_or_of_others_are_unreachable() {
    let server = start();
    seed_b(&server);
    let b = server.client_as(&format!("{B_USER}@{B_TENANT}"), B_PASSWORD);
    // B's tenant: a space of B's, and B's folder shared with a group of B's tenant.
    common::add_user(&server.data_dir(), B_TENANT, "dora", "dora pw");
    admin(
        &server,
        &[
            "group",
            "add",
            "--tenant",
            B_TENANT,
            "--group",
            "staff",
            "--members",
            "dora",
        ],
    );
    admin(
        &server,
        &[
            "space",
            "add",
            "--tenant",
            B_TENANT,
            "--space",
            "labs",
            "--owner",
            B_USER,
            "--share",
            "group:staff=write",
        ],
    );
    let share = admin(
        &server,
        &[
            "share",
            "add",
            "--tenant",
            B_TENANT,
            "--owner",
            B_USER,
            "--path",
            "dir",
            "--with",
            "group:staff",
            "--perm",
            "write",
        ],
    );
    let share_id = share
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let labs = format!("/dav/{B_TENANT}/spaces/labs/");
    assert_eq!(b.put(&format!("{labs}secret.txt"), SECRET).status, 201);
    // A's own tenant: a space of the same name A is not a member of.
    admin(
        &server,
        &[
            "space", "add", "--tenant", TENANT, "--space", "labs", "--owner", C_USER,
        ],
    );
    let c = server.client_as(&format!("{C_USER}@{TENANT}"), C_PASSWORD);
    assert_eq!(
        c.put(&format!("/dav/{TENANT}/spaces/labs/c.txt"), SECRET)
            .status,
        201
    );

    let a = server.client();
    for (existing, missing) in [
        (format!("{labs}secret.txt"), format!("{labs}none.txt")),
        (labs.clone(), format!("/dav/{B_TENANT}/spaces/nolabs/")),
        (
            format!("/dav/{TENANT}/spaces/labs/c.txt"),
            format!("/dav/{TENANT}/spaces/nolabs/c.txt"),
        ),
        (
            format!("/dav/{TENANT}/spaces/labs/"),
            format!("/dav/{TENANT}/spaces/nolabs/"),
        ),
    ] {
        let hit = attacks(&a, &existing, &dav("taken.txt"));
        let miss = attacks(&a, &missing, &dav("taken.txt"));
        for ((what, h), (_, m)) in hit.iter().zip(&miss) {
            assert_eq!(h.status, 404, "{what} {existing}: {}", h.text());
            assert_eq!(
                (h.status, &h.body),
                (m.status, &m.body),
                "{what}: answers differ for existing {existing} and missing {missing}"
            );
        }
    }
    // Through A's own home, the names mean A's own folders; B's share never shows.
    let home = a.propfind(&dav(""), "1").text();
    assert!(!home.contains("labs") && !home.contains("/dir/"), "{home}");
    assert_eq!(a.get(&dav("dir/inner.txt")).status, 404);
    assert_eq!(a.get(&dav("labs/secret.txt")).status, 404);
    // A Destination into a space is refused.
    assert_eq!(a.put(&dav("mine.txt"), b"A").status, 201);
    for dest in [
        format!("{labs}stolen.txt"),
        format!("/dav/{TENANT}/spaces/labs/stolen.txt"),
        format!("http://127.0.0.1{labs}stolen.txt"),
    ] {
        let r = a.send("COPY", &dav("mine.txt"), &[("Destination", &dest)], b"");
        assert!(
            r.status == 403 || r.status == 404,
            "COPY -> {dest}: {}",
            r.status
        );
    }
    // Versions and trash of the spaces: as if they did not exist.
    for url in [
        format!("/dav-versions/{B_TENANT}/_space_labs/versions/1/"),
        format!("/dav-trash/{B_TENANT}/_space_labs/trash/"),
        format!("/dav-trash/{TENANT}/_space_labs/trash/"),
    ] {
        assert_eq!(a.propfind(&url, "1").status, 404, "{url}");
        assert_eq!(a.send("DELETE", &url, &[], b"").status, 404, "{url}");
    }
    // The OCS share API: another tenant's share is neither listed, shown nor deleted.
    let shares = "/ocs/v2.php/apps/files_sharing/api/v1/shares";
    let listed = a.send(
        "GET",
        &format!("{shares}?shared_with_me=true&format=json"),
        &[("OCS-APIRequest", "true")],
        b"",
    );
    assert_eq!(listed.status, 200);
    assert!(!listed.text().contains("\"id\""), "{}", listed.text());
    for m in ["GET", "DELETE", "PUT"] {
        let r = a.send(
            m,
            &format!("{shares}/{share_id}"),
            &[("OCS-APIRequest", "true")],
            b"permissions=31",
        );
        assert_eq!(r.status, 404, "{m}: {}", r.text());
    }
    // B's data and share are untouched; the member still reaches both.
    let dora = server.client_as(&format!("dora@{B_TENANT}"), "dora pw");
    // The server rereads users and groups at most once a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while dora
        .get(&format!("/dav/{B_TENANT}/dora/labs/secret.txt"))
        .status
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "dora never let in");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        dora.get(&format!("/dav/{B_TENANT}/dora/dir/inner.txt"))
            .body,
        SECRET
    );
    assert_eq!(
        dora.get(&format!("/dav/{B_TENANT}/dora/labs/secret.txt"))
            .body,
        SECRET
    );
    assert_eq!(b.get(&format!("{labs}secret.txt")).body, SECRET);
}
