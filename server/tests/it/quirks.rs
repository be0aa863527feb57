//! Client quirks against a real `skab` (docs/webdav.md, "Client quirks"): what macOS Finder,
//! the Windows Mini-Redirector, Microsoft Office and browsers send, byte for byte.

use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{dav, enc, exchange, pseudo_random, Server, IO_TIMEOUT};

/// "blåbær-café.txt" as macOS sends it (NFD: å = a + U+030A, é = e + U+0301).
const NAME_NFD: &str = "bla\u{30a}bær-cafe\u{301}.txt";
/// The same name as Windows sends it (NFC).
const NAME_NFC: &str = "blåbær-café.txt";

#[test]
fn finder_nfd_name_is_the_same_file_as_nfc() {
    assert_ne!(NAME_NFD.as_bytes(), NAME_NFC.as_bytes());
    let server = Server::start();
    let c = server.client();
    let body = b"written on a Mac".to_vec();
    let r = c.put(&dav(&enc(NAME_NFD)), &body);
    assert_eq!(r.status, 201, "{}", r.text());
    // Windows opens it by its NFC name.
    let r = c.get(&dav(&enc(NAME_NFC)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, body);
    // Saving under the NFC name replaces the same file, not a twin.
    let body2 = b"saved on Windows".to_vec();
    let r = c.put(&dav(&enc(NAME_NFC)), &body2);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(c.get(&dav(&enc(NAME_NFD))).body, body2);
    let r = c.propfind(&dav(""), "1");
    assert_eq!(r.status, 207);
    let hrefs = r.hrefs();
    assert_eq!(
        hrefs,
        vec![dav(""), dav(&enc(NAME_NFC))],
        "one entry, NFC-named: {}",
        r.text()
    );
}

#[test]
fn appledouble_and_ds_store_are_plain_files() {
    let server = Server::start();
    let c = server.client();
    assert_eq!(c.put(&dav("foo.txt"), b"data").status, 201);
    let meta = pseudo_random(1, 4096);
    assert_eq!(c.put(&dav("._foo.txt"), &meta).status, 201);
    assert_eq!(c.put(&dav(".DS_Store"), b"\0\0\0\x01Bud1").status, 201);
    assert_eq!(c.get(&dav("._foo.txt")).body, meta);
    assert_eq!(c.get(&dav(".DS_Store")).body, b"\0\0\0\x01Bud1");
    let mut hrefs = c.propfind(&dav(""), "1").hrefs();
    hrefs.sort();
    let mut want = vec![dav(""), dav("foo.txt"), dav("._foo.txt"), dav(".DS_Store")];
    want.sort();
    assert_eq!(hrefs, want);
    assert_eq!(c.delete(&dav("._foo.txt")).status, 204);
    assert_eq!(c.get(&dav("._foo.txt")).status, 404);
    assert_eq!(c.get(&dav("foo.txt")).body, b"data");
}

/// Sends a PUT with `Transfer-Encoding: chunked` in several pieces with pauses, as Finder does.
fn chunked_put(server: &Server, path: &str, pieces: &[Vec<u8>], extra: &str) -> common::Reply {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let auth = common::basic(
        &format!("{}@{}", common::USER, common::TENANT),
        common::PASSWORD,
    );
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
         Transfer-Encoding: chunked\r\n{extra}Connection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    for p in pieces {
        s.write_all(format!("{:x}\r\n", p.len()).as_bytes())
            .unwrap();
        s.write_all(p).unwrap();
        s.write_all(b"\r\n").unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    exchange(&mut s, b"0\r\n\r\n").unwrap()
}

#[test]
fn chunked_put_without_content_length_is_stored_whole() {
    let server = Server::start();
    let c = server.client();
    let pieces: Vec<Vec<u8>> = (0..6u64)
        .map(|i| pseudo_random(10 + i, 1000 + 7919 * i as usize))
        .collect();
    let whole: Vec<u8> = pieces.concat();
    let r = chunked_put(&server, &dav("chunked.bin"), &pieces, "");
    assert_eq!(r.status, 201, "{}", r.text());
    let got = c.get(&dav("chunked.bin"));
    assert_eq!(got.status, 200);
    assert_eq!(
        got.header("content-length"),
        Some(&*whole.len().to_string())
    );
    assert!(got.body == whole, "chunked upload stored differently");
    // Finder's variant: chunked with X-Expected-Entity-Length, replacing the file.
    let pieces2 = vec![pseudo_random(99, 5000), pseudo_random(98, 3)];
    let whole2 = pieces2.concat();
    let r = chunked_put(
        &server,
        &dav("chunked.bin"),
        &pieces2,
        &format!("X-Expected-Entity-Length: {}\r\n", whole2.len()),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(c.get(&dav("chunked.bin")).body == whole2);
    // An empty chunked body is an empty file.
    let r = chunked_put(&server, &dav("empty"), &[], "");
    assert_eq!(r.status, 201);
    let got = c.get(&dav("empty"));
    assert_eq!(got.status, 200);
    assert!(got.body.is_empty());
}

#[test]
fn windows_options_advertise_dav_and_ms_author_via() {
    let server = Server::start();
    for (client, path) in [
        (server.anonymous(), "/".to_string()),
        (server.client(), dav("")),
    ] {
        let r = client.send("OPTIONS", &path, &[("Translate", "f")], b"");
        assert_eq!(r.status, 200, "OPTIONS {path}");
        assert_eq!(r.header("ms-author-via"), Some("DAV"), "OPTIONS {path}");
        let dav_h = r.header("dav").unwrap_or_default().replace(' ', "");
        let classes: Vec<&str> = dav_h.split(',').collect();
        assert!(
            classes.contains(&"1") && classes.contains(&"2"),
            "DAV: {dav_h}"
        );
        let allow = r.header("allow").unwrap_or_default();
        for m in ["PROPFIND", "LOCK", "UNLOCK", "PUT", "MOVE"] {
            assert!(allow.contains(m), "Allow lacks {m}: {allow}");
        }
    }
}

#[test]
fn windows_propfind_without_depth_is_depth_one_and_infinity_is_refused() {
    let server = Server::start();
    let c = server.client();
    assert_eq!(c.mkcol(&dav("sub")).status, 201);
    assert_eq!(c.put(&dav("sub/deep.txt"), b"deep").status, 201);
    assert_eq!(c.put(&dav("top.txt"), b"top").status, 201);
    let r = c.send("PROPFIND", &dav(""), &[("Translate", "f")], b"");
    assert_eq!(r.status, 207, "{}", r.text());
    let mut hrefs = r.hrefs();
    hrefs.sort();
    assert_eq!(hrefs, vec![dav(""), dav("sub/"), dav("top.txt")]);
    // Windows expects these formats.
    let t = r.text();
    assert!(t.contains("getlastmodified") && t.contains("GMT"), "{t}");
    assert!(t.contains("creationdate"), "{t}");
    let r = c.propfind(&dav(""), "infinity");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("propfind-finite-depth"), "{}", r.text());
    assert!(!r.text().contains("deep.txt"));
}

/// LOCK as Word sends it: exclusive, depth 0, an hour; returns the token and the reply.
fn office_lock(c: &common::Http, doc: &str) -> (String, common::Reply) {
    let r = c.send(
        "LOCK",
        doc,
        &[
            ("Depth", "0"),
            ("Timeout", "Second-3600"),
            ("Content-Type", "text/xml"),
        ],
        LOCKINFO.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r
        .header("lock-token")
        .expect("Lock-Token header")
        .trim_matches(['<', '>'])
        .to_string();
    (token, r)
}

/// A lock refresh as office suites send it (`iff` names the token).
fn refresh_lock(c: &common::Http, doc: &str, iff: &str) -> common::Reply {
    let r = c.send("LOCK", doc, &[("If", iff), ("Timeout", "Second-3600")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>Word user</D:href></D:owner></D:lockinfo>"#;

#[test]
fn office_lock_refresh_save_unlock() {
    let server = Server::start();
    let c = server.client();
    let doc = dav("Opgave.docx");
    assert_eq!(c.put(&doc, b"version 1").status, 201);
    let (token, r) = office_lock(&c, &doc);
    assert!(token.starts_with("opaquelocktoken:"), "{token}");
    assert!(r.text().contains(&token));
    let iff = format!("(<{token}>)");
    // Office refreshes about every 45 s; many refreshes in a row must all work.
    for _ in 0..25 {
        let r = refresh_lock(&c, &doc, &iff);
        assert!(r.text().contains(&token), "{}", r.text());
    }
    // Someone else (no token) cannot save; the lock holder can.
    assert_eq!(c.put(&doc, b"intruder").status, 423);
    let r = c.send("PUT", &doc, &[("If", &iff)], b"version 2");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(c.get(&doc).body, b"version 2");
    // lockdiscovery shows the lock before UNLOCK.
    let r = c.send(
        "PROPFIND",
        &doc,
        &[("Depth", "0")],
        br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/><D:supportedlock/></D:prop></D:propfind>"#,
    );
    assert!(r.text().contains(&token), "{}", r.text());
    let r = c.send(
        "UNLOCK",
        &doc,
        &[("Lock-Token", &format!("<{token}>"))],
        b"",
    );
    assert_eq!(r.status, 204);
    // The token is gone: a refresh fails, and a plain PUT works again.
    let r = c.send("LOCK", &doc, &[("If", &iff)], b"");
    assert_eq!(r.status, 412);
    assert_eq!(c.put(&doc, b"version 3").status, 204);
    assert_eq!(c.get(&doc).body, b"version 3");
}

/// A planned restart (SIGTERM) keeps the locks an office suite holds, less the time it
/// took, so its next save with the lock token works; a crash loses them (no lock released
/// meanwhile can come back as a ghost).
#[test]
fn office_locks_survive_a_planned_restart_not_a_crash() {
    let mut server = Server::start();
    let c = server.client();
    let doc = dav("Stil.docx");
    assert_eq!(c.put(&doc, b"draft").status, 201);
    let (token, _) = office_lock(&c, &doc);
    let iff = format!("(<{token}>)");
    server.signal(15);
    let st = server
        .wait_exit(Duration::from_secs(15))
        .expect("server did not exit after SIGTERM");
    assert!(st.success(), "exit status {st:?}\n{}", server.log());
    server.restart();
    let c = server.client();
    assert_eq!(c.put(&doc, b"intruder").status, 423, "{}", server.log());
    let r = c.send("PUT", &doc, &[("If", &iff)], b"saved after the restart");
    assert_eq!(r.status, 204, "{}", r.text());
    let r = refresh_lock(&c, &doc, &iff);
    assert!(r.text().contains("Word user"), "owner kept: {}", r.text());
    // `restart` kills the process: nothing is saved, the lock is gone.
    server.restart();
    let c = server.client();
    assert_eq!(c.put(&doc, b"after a crash").status, 204);
    assert_eq!(c.get(&doc).body, b"after a crash");
}

/// `href="..."` values of an HTML page.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|s| s.to_string())
        .collect()
}

/// Resolves a link against the page's path as a browser does (RFC 3986 §5.2, path only).
fn resolve(base: &str, link: &str) -> String {
    let merged = if link.starts_with('/') {
        link.to_string()
    } else {
        format!(
            "{}/{link}",
            base.rsplit_once('/').map_or("", |(dir, _)| dir)
        )
    };
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = merged.split('/').skip(1).collect();
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        match *seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        if last && (*seg == "." || *seg == "..") {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

#[test]
fn resolve_is_rfc3986() {
    assert_eq!(resolve("/a/b/", "c.txt"), "/a/b/c.txt");
    assert_eq!(resolve("/a/b", "c.txt"), "/a/c.txt");
    assert_eq!(resolve("/a/b/", "../"), "/a/");
    assert_eq!(resolve("/a/b", "../"), "/");
    assert_eq!(resolve("/a/b/", "/x/y"), "/x/y");
}

#[test]
fn browser_get_on_collection_lists_working_links() {
    let server = Server::start();
    let c = server.client();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("plain.txt", b"plain".to_vec()),
        ("with space & <tag>.txt", b"odd".to_vec()),
        ("æøå 日本.bin", pseudo_random(5, 3000)),
    ];
    assert_eq!(c.mkcol(&dav("Mappe%20A")).status, 201);
    for (name, body) in &files {
        assert_eq!(c.put(&dav(&enc(name)), body).status, 201);
    }
    let r = c.send("GET", &dav(""), &[("Accept", "text/html")], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{:?}",
        r.headers
    );
    let page = r.text();
    assert!(
        !page.contains("<tag>"),
        "names must be HTML-escaped: {page}"
    );
    let hrefs = links(&page);
    // Every file and the folder are linked, and each link opens the right thing.
    assert_eq!(hrefs.len(), files.len() + 1, "{page}");
    for h in &hrefs {
        assert!(!h.contains("://"), "same server: {h}");
        // The page is HTML: undo the HTML escaping of the attribute first.
        let h = h.replace("&amp;", "&");
        let url = resolve(&dav(""), &h);
        let r = c.get(&url);
        assert_eq!(r.status, 200, "link {h} ({url}) does not work");
        if h.ends_with('/') {
            assert!(r.header("content-type").unwrap().starts_with("text/html"));
        } else {
            let name = url.rsplit('/').next().unwrap();
            let decoded = percent_encoding::percent_decode_str(name)
                .decode_utf8()
                .unwrap();
            let (_, body) = files
                .iter()
                .find(|(n, _)| *n == decoded)
                .unwrap_or_else(|| panic!("unknown link {h}"));
            assert_eq!(&r.body, body, "link {h}");
        }
    }
    // A sub-collection's page links back up to the home: its breadcrumb `Home` and `../`.
    let r = c.get(&dav("Mappe%20A/"));
    let up: Vec<String> = links(&r.text())
        .iter()
        .map(|l| resolve(&dav("Mappe%20A/"), l))
        .collect();
    assert_eq!(up, vec![dav(""), dav("")]);
}

#[test]
fn range_and_if_none_match() {
    let server = Server::start();
    let c = server.client();
    let data = pseudo_random(7, 1000);
    assert_eq!(c.put(&dav("r.bin"), &data).status, 201);
    let r = c.send("GET", &dav("r.bin"), &[("Range", "bytes=100-199")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/1000"));
    assert_eq!(r.body, data[100..200]);
    let r = c.send("GET", &dav("r.bin"), &[("Range", "bytes=-10")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 990-999/1000"));
    assert_eq!(r.body, data[990..]);
    let r = c.send("GET", &dav("r.bin"), &[("Range", "bytes=5000-")], b"");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));
    let etag = c.get(&dav("r.bin")).header("etag").unwrap().to_string();
    let r = c.send("GET", &dav("r.bin"), &[("If-None-Match", &etag)], b"");
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = c.send(
        "GET",
        &dav("r.bin"),
        &[("If-None-Match", "\"something-else\"")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    // After a change the old ETag no longer matches.
    assert_eq!(c.put(&dav("r.bin"), b"new").status, 204);
    let r = c.send("GET", &dav("r.bin"), &[("If-None-Match", &etag)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"new");
}

#[test]
fn browser_links_work_without_trailing_slash() {
    let server = Server::start();
    let c = server.client();
    assert_eq!(c.mkcol(&dav("Mappe")).status, 201);
    assert_eq!(c.put(&dav("Mappe/inde.txt"), b"inside").status, 201);
    // A person types the folder's address without the final slash.
    let base = dav("Mappe");
    let r = c.get(&base);
    let page = match r.status {
        200 => r.text(),
        301 | 302 | 307 | 308 => {
            let to = r.header("location").expect("Location").to_string();
            assert!(to.ends_with(&dav("Mappe/")), "{to}");
            c.get(&dav("Mappe/")).text()
        }
        s => panic!("GET {base}: {s}"),
    };
    let hrefs = links(&page);
    assert!(!hrefs.is_empty(), "{page}");
    let shown_at = if r.status == 200 { base } else { dav("Mappe/") };
    for h in hrefs {
        // Resolve as a browser does against the URL it displayed the page for.
        let url = resolve(&shown_at, &h);
        let got = c.get(&url);
        assert_eq!(got.status, 200, "link {h} resolved to {url} is broken");
        if h.ends_with("inde.txt") {
            assert_eq!(got.body, b"inside");
        }
    }
}

#[test]
fn windows_create_is_empty_put_then_lock_then_put() {
    let server = Server::start();
    let c = server.client();
    let f = dav("Ny%20tekst.txt");
    assert_eq!(c.put(&f, b"").status, 201);
    let r = c.send(
        "LOCK",
        &f,
        &[("Depth", "0"), ("Timeout", "Infinite, Second-4100000000")],
        LOCKINFO.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.text();
    // The huge timeout is clamped to the server's maximum, not kept forever.
    let secs: u64 = t
        .split("Second-")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no timeout in {t}"));
    assert!((1..=3600).contains(&secs), "{t}");
    let token = r.header("lock-token").unwrap().to_string();
    let r = c.send("PUT", &f, &[("If", &format!("({token})"))], b"hello");
    assert_eq!(r.status, 204);
    // Windows stores its file attributes as dead properties.
    let patch = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>
<Z:Win32CreationTime>Sun, 29 Nov 2026 06:00:00 GMT</Z:Win32CreationTime>
<Z:Win32LastAccessTime>Sun, 29 Nov 2026 06:00:01 GMT</Z:Win32LastAccessTime>
<Z:Win32LastModifiedTime>Sun, 29 Nov 2026 06:00:02 GMT</Z:Win32LastModifiedTime>
<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>
</D:prop></D:set></D:propertyupdate>"#;
    let r = c.send(
        "PROPPATCH",
        &f,
        &[("If", &format!("({token})"))],
        patch.as_bytes(),
    );
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(r.text().contains("200 OK") && !r.text().contains("HTTP/1.1 4"));
    let r = c.propfind(&f, "0");
    let t = r.text();
    assert!(
        t.contains("Win32FileAttributes") && t.contains("00000020"),
        "{t}"
    );
    assert!(t.contains("urn:schemas-microsoft-com:"), "{t}");
    assert_eq!(
        c.send("UNLOCK", &f, &[("Lock-Token", &token)], b"").status,
        204
    );
    assert_eq!(c.get(&f).body, b"hello");
}

#[test]
fn lock_on_unmapped_url_creates_an_empty_file() {
    let server = Server::start();
    let c = server.client();
    let f = dav("Document1.docx");
    let r = c.send("LOCK", &f, &[("Depth", "0")], LOCKINFO.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.header("lock-token").unwrap().to_string();
    let r = c.get(&f);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(c.put(&f, b"x").status, 423);
    let r = c.send("PUT", &f, &[("If", &format!("({token})"))], b"content");
    assert_eq!(r.status, 204);
    assert_eq!(c.get(&f).body, b"content");
}

#[test]
fn office_saves_through_a_temp_file_moved_over_the_locked_original() {
    let server = Server::start();
    let c = server.client();
    let doc = dav("Rapport.docx");
    assert_eq!(c.put(&doc, b"old text").status, 201);
    let r = c.send("LOCK", &doc, &[("Depth", "0")], LOCKINFO.as_bytes());
    assert_eq!(r.status, 200);
    let token = r.header("lock-token").unwrap().to_string();
    let tmp = dav("~WRL0001.tmp");
    assert_eq!(c.put(&tmp, b"new text").status, 201);
    let dest = format!("http://127.0.0.1{doc}");
    // Without the original's token the MOVE is refused...
    let r = c.send(
        "MOVE",
        &tmp,
        &[("Destination", &dest), ("Overwrite", "T")],
        b"",
    );
    assert_eq!(r.status, 423, "{}", r.text());
    // ...with it (tagged to the destination, as Office and LibreOffice send it) it works.
    let iff = format!("<{dest}> ({token})");
    let r = c.send(
        "MOVE",
        &tmp,
        &[("Destination", &dest), ("Overwrite", "T"), ("If", &iff)],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(c.get(&doc).body, b"new text");
    assert_eq!(c.get(&tmp).status, 404);
    // A refresh with a tagged list (LibreOffice) still finds the lock.
    let r = c.send("LOCK", &doc, &[("If", &iff)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        c.send("UNLOCK", &doc, &[("Lock-Token", &token)], b"")
            .status,
        204
    );
}
