//! The browser side of a collection: the HTML listing (escaping, encoding, breadcrumbs,
//! order, sizes, the upload form), checked as text and rendered in headless chromium; and
//! uploads through POST multipart/form-data built by curl -F exactly as a browser builds
//! them (one and several files, non-ASCII names, overwrite, limits, malformed bodies).

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Body limit of these servers: a part over it is 413.
const BODY_MAX: u64 = 1024 * 1024;
/// Quota of every space: larger than one body, so that filling it takes two uploads.
const QUOTA: u64 = 3 * 1024 * 1024 / 2;

fn server() -> Server {
    require_tool("curl");
    Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .config(&format!(
                "[limits]\nbody_size_max = {BODY_MAX}\n[storage]\ndefault_quota_bytes = {QUOTA}\n"
            )),
    )
}

struct Curl {
    status: u16,
    headers: String,
    body: String,
}

/// curl as pupil@school with `args`, against `url`.
fn curl(args: &[&str], url: &str) -> Curl {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-s", "-u", &format!("{USER}@{TENANT}:{PASSWORD}")])
        .args(["-D", head.to_str().unwrap(), "-o", body.to_str().unwrap()])
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    Curl {
        status: code.trim().parse().unwrap_or(0),
        headers: std::fs::read_to_string(&head).unwrap_or_default(),
        body: String::from_utf8_lossy(&std::fs::read(&body).unwrap_or_default()).to_string(),
    }
}

fn file(dir: &Path, name: &str, content: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn curl_uploads_through_the_form_land_in_the_collection() {
    let s = server();
    let c = s.client();
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(c.mkcol(&dav("Docs")).status, 201);
    let docs = format!("{}Docs/", s.home());

    // One file.
    let a = file(tmp.path(), "a.txt", b"first");
    let r = curl(&["-F", &format!("file=@{a}")], &docs);
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.contains("a.txt"), "{}", r.body);
    assert_eq!(c.get(&dav("Docs/a.txt")).body, b"first");

    // Several files, one with a non-ASCII name, with a text field between them.
    let b = file(tmp.path(), "Skærmbillede ø.png", &pseudo_random(7, 200_000));
    let q = file(tmp.path(), "notes.md", b"# notes\n");
    let r = curl(
        &[
            "-F",
            &format!("file=@{b}"),
            "-F",
            "comment=ignored",
            "-F",
            &format!("file=@{q}"),
        ],
        &docs,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let got = c.get(&dav(&format!("Docs/{}", enc("Skærmbillede ø.png"))));
    assert_eq!(got.status, 200);
    assert_eq!(got.body, pseudo_random(7, 200_000));
    assert_eq!(c.get(&dav("Docs/notes.md")).body, b"# notes\n");
    assert_eq!(
        c.get(&dav("Docs/comment")).status,
        404,
        "text fields are not files"
    );

    // An existing file is overwritten; a browser (Accept: text/html) is sent back.
    let a2 = file(
        tmp.path(),
        "second/a.txt".replace('/', "_").as_str(),
        b"second",
    );
    let r = curl(
        &[
            "-H",
            "Accept: text/html,application/xhtml+xml,*/*;q=0.8",
            "-F",
            &format!("file=@{a2};filename=a.txt"),
        ],
        &docs,
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        r.headers
            .to_ascii_lowercase()
            .contains(&format!("location: /dav/{TENANT}/{USER}/docs/")),
        "{}",
        r.headers
    );
    assert_eq!(c.get(&dav("Docs/a.txt")).body, b"second");

    // A name with a quote (browsers send it as %22) and one with characters to escape.
    let r = curl(
        &[
            "-F",
            &format!("file=@{a};filename=\"say \\\"hi\\\" <b>.txt\""),
        ],
        &docs,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        c.get(&dav(&format!("Docs/{}", enc("say \"hi\" <b>.txt"))))
            .body,
        b"first"
    );
    let r = curl(&["-F", &format!("file=@{a};filename=50%22 off.txt")], &docs);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        c.get(&dav(&format!("Docs/{}", enc("50\" off.txt")))).status,
        200
    );

    // Into the home collection too.
    let r = curl(&["-F", &format!("file=@{a}")], &s.home());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(c.get(&dav("a.txt")).body, b"first");
}

#[test]
fn bad_uploads_get_the_right_status_and_leave_nothing_behind() {
    let s = server();
    let c = s.client();
    let tmp = tempfile::tempdir().unwrap();
    let home = s.home();
    let small = file(tmp.path(), "small.txt", b"small");

    // Larger than the body limit: 413; nothing stored.
    let big = file(
        tmp.path(),
        "big.bin",
        &pseudo_random(1, BODY_MAX as usize + 10),
    );
    let r = curl(&["-F", &format!("file=@{big}")], &home);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(c.get(&dav("big.bin")).status, 404);
    // The same without a declared length (chunked): still 413.
    let r = curl(
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "-F",
            &format!("file=@{big}"),
        ],
        &home,
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(c.get(&dav("big.bin")).status, 404);

    // Malformed multipart: 400.
    for body in [
        "garbage without any boundary",
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.txt\"\r\n\r\nno end",
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.txt\"\r\nbroken header\r\n\r\nx\r\n--XyZ--\r\n",
    ] {
        let r = curl(
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: multipart/form-data; boundary=XyZ",
                "--data-binary",
                body,
            ],
            &home,
        );
        assert_eq!(r.status, 400, "{body:?}: {}", r.body);
        assert!(r.body.contains("multipart"), "{}", r.body);
    }
    assert_eq!(c.get(&dav("t.txt")).status, 404);
    // No boundary: 400; not multipart at all: 415; an empty form: 400.
    let r = curl(
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: multipart/form-data",
            "-d",
            "x",
        ],
        &home,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = curl(&["-X", "POST", "-d", "a=b"], &home);
    assert_eq!(r.status, 415, "{}", r.body);
    let r = curl(&["-F", "comment=only text"], &home);
    assert_eq!(r.status, 400, "{}", r.body);
    // A form submitted without choosing a file sends an empty filename.
    let r = curl(&["-F", "file=@/dev/null;filename="], &home);
    assert_eq!(r.status, 400, "{}", r.body);

    // File names that are not one path segment: 400.
    for name in ["../escape.txt", "a/b.txt", "..", "back\\\\slash.txt"] {
        let r = curl(&["-F", &format!("file=@{small};filename={name}")], &home);
        assert_eq!(r.status, 400, "{name}: {}", r.body);
    }
    assert_eq!(c.get(&dav("escape.txt")).status, 404);
    let long = "x".repeat(300);
    let r = curl(&["-F", &format!("file=@{small};filename={long}")], &home);
    assert_eq!(r.status, 400, "{}", r.body);

    // A missing collection: 409; a file: 405 as before; a folder of the same name: 409.
    let r = curl(
        &["-F", &format!("file=@{small}")],
        &format!("{home}missing/"),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(c.put(&dav("plain.txt"), b"x").status, 201);
    let r = curl(
        &["-F", &format!("file=@{small}")],
        &format!("{home}plain.txt"),
    );
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(c.mkcol(&dav("small.txt")).status, 201);
    let r = curl(&["-F", &format!("file=@{small}")], &home);
    assert_eq!(r.status, 409, "{}", r.body);

    // A locked collection: 423 without the token, stored with it.
    assert_eq!(c.mkcol(&dav("Locked")).status, 201);
    let lock = c.send(
        "LOCK",
        &dav("Locked/"),
        &[("Depth", "infinity"), ("Timeout", "Second-60")],
        br#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#,
    );
    assert_eq!(lock.status, 200, "{}", lock.text());
    let token = lock.header("lock-token").unwrap().to_string();
    let locked = format!("{home}Locked/");
    let r = curl(&["-F", &format!("file=@{small}")], &locked);
    assert_eq!(r.status, 423, "{}", r.body);
    assert!(r.body.contains("locked"), "{}", r.body);
    assert_eq!(c.get(&dav("Locked/small.txt")).status, 404);
    let r = curl(
        &[
            "-H",
            &format!("If: ({token})"),
            "-F",
            &format!("file=@{small}"),
        ],
        &locked,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(c.get(&dav("Locked/small.txt")).body, b"small");

    // Within the body limit but over the quota (what is stored plus this): 507.
    let filler = pseudo_random(4, 900 * 1024);
    assert_eq!(c.put(&dav("filler.bin"), &filler).status, 201);
    let fat = file(tmp.path(), "fat.bin", &pseudo_random(2, 800 * 1024));
    let r = curl(&["-F", &format!("file=@{fat}")], &home);
    assert_eq!(r.status, 507, "{}", r.body);
    assert_eq!(c.get(&dav("fat.bin")).status, 404);

    // Anonymous: 401.
    let r = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-F"])
        .arg(format!("file=@{small}"))
        .arg(&home)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&r.stdout), "401");
    assert!(s.client().get("/healthz").status == 200, "server still up");
}

#[test]
fn hostile_multipart_bodies_are_bounded() {
    let s = server();
    let c = s.client();
    // Too many parts: 413 before the limit's worth is processed.
    let mut body = String::new();
    for i in 0..1001 {
        body.push_str(&format!(
            "--B\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n"
        ));
    }
    body.push_str("--B--\r\n");
    let r = c.send(
        "POST",
        &dav(""),
        &[("Content-Type", "multipart/form-data; boundary=B")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    // An endless part header (no blank line): refused once it passes the bound.
    let mut body =
        b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"h.txt\"\r\nX-Long: "
            .to_vec();
    body.extend(std::iter::repeat_n(b'a', 900 * 1024));
    body.extend_from_slice(b"\r\n\r\nx\r\n--B--\r\n");
    let r = c.send(
        "POST",
        &dav(""),
        &[("Content-Type", "multipart/form-data; boundary=B")],
        &body,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // A long field name.
    let name = "n".repeat(300);
    let body = format!(
        "--B\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"n.txt\"\r\n\r\nx\r\n--B--\r\n"
    );
    let r = c.send(
        "POST",
        &dav(""),
        &[("Content-Type", "multipart/form-data; boundary=B")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(c.get(&dav("n.txt")).status, 404);
    assert_eq!(c.get(&dav("h.txt")).status, 404);
    assert_eq!(c.get("/healthz").status, 200);
}

#[test]
fn the_listing_shows_breadcrumbs_folders_then_files_and_the_upload_form() {
    let s = Server::start();
    let c = s.client();
    assert_eq!(c.mkcol(&dav("Skole")).status, 201);
    assert_eq!(
        c.mkcol(&dav(&format!("Skole/{}", enc("Mappe <b>&\"x\""))))
            .status,
        201
    );
    let here = format!("Skole/{}/", enc("Mappe <b>&\"x\""));
    assert_eq!(c.mkcol(&dav(&format!("{here}zeta"))).status, 201);
    assert_eq!(c.mkcol(&dav(&format!("{here}alpha"))).status, 201);
    for (name, size) in [
        ("Skærmbillede ø.png", 1536usize),
        ("b.txt", 10),
        ("a.bin", 3 * 1024 * 1024 / 2),
        ("<img src=x onerror=alert(1)>.txt", 1),
    ] {
        let r = c.put(
            &dav(&format!("{here}{}", enc(name))),
            &pseudo_random(3, size),
        );
        assert_eq!(r.status, 201, "{name}");
    }
    let r = c.send("GET", &dav(&here), &[("Accept", "text/html")], b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let page = r.text();
    let base = format!("/dav/{TENANT}/{USER}/");
    let title = "/Skole/Mappe &lt;b&gt;&amp;&quot;x&quot;";
    assert!(page.contains(&format!("<title>{title}</title>")), "{page}");
    assert!(
        page.contains(&format!("<h1 id=\"path\">{title}</h1>")),
        "{page}"
    );
    // Breadcrumbs: every ancestor a link, the collection itself not.
    assert!(
        page.contains(&format!("<a href=\"{base}\">Home</a>")),
        "{page}"
    );
    assert!(
        page.contains(&format!("<a href=\"{base}Skole/\">Skole</a>")),
        "{page}"
    );
    assert!(
        page.contains("<span>Mappe &lt;b&gt;&amp;&quot;x&quot;</span>"),
        "{page}"
    );
    // Folders first, then files, each by name; hrefs percent-encoded, names escaped.
    let dirp = format!("{base}Skole/Mappe%20%3Cb%3E%26%22x%22/");
    let order = [
        format!("<a href=\"{dirp}alpha/\">alpha/</a>"),
        format!("<a href=\"{dirp}zeta/\">zeta/</a>"),
        format!(
            "<a href=\"{dirp}%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt\">&lt;img src=x onerror=alert(1)&gt;.txt</a>"
        ),
        format!(
            "<a href=\"{dirp}Sk%C3%A6rmbillede%20%C3%B8.png\">Skærmbillede ø.png</a>"
        ),
        format!("<a href=\"{dirp}a.bin\">a.bin</a>"),
        format!("<a href=\"{dirp}b.txt\">b.txt</a>"),
    ];
    let mut at = 0;
    for o in &order {
        let i = page[at..]
            .find(o.as_str())
            .unwrap_or_else(|| panic!("{o} not after {at}: {page}"));
        at += i + o.len();
    }
    assert!(!page.contains("<img"), "{page}");
    // Human sizes and times.
    for size in ["1.5 KiB", "10 B", "1.5 MiB", "1 B"] {
        assert!(page.contains(&format!(">{size}</td>")), "{size}: {page}");
    }
    assert!(page.contains(" UTC</td>"), "{page}");
    // The upload form posts into this collection.
    assert!(
        page.contains(&format!(
            "<form id=\"upload\" method=\"post\" enctype=\"multipart/form-data\" action=\"{dirp}\">"
        )),
        "{page}"
    );
    assert!(
        page.contains("<input type=\"file\" name=\"file\" multiple"),
        "{page}"
    );
    // HEAD: the same headers, no body.
    let h = c.send("HEAD", &dav(&here), &[], b"");
    assert_eq!(h.status, 200);
    assert_eq!(
        h.header("content-length").unwrap(),
        page.len().to_string().as_str()
    );
    assert!(h.body.is_empty());
    // Without the trailing slash, links still resolve (they are absolute).
    let r = c.get(&dav(here.trim_end_matches('/')));
    assert!(r.text().contains(&format!("action=\"{dirp}\"")));

    // Rendered by a real browser, with the login in the URL.
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| have(c))
        .expect("chromium is needed (apt-get install -y chromium)");
    let tmp = tempfile::tempdir().unwrap();
    let url = format!(
        "http://{}%40{}:{}@127.0.0.1:{}{}",
        USER,
        TENANT,
        enc(PASSWORD),
        s.port,
        &dirp
    );
    let common = |profile: &str| {
        vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", tmp.path().join(profile).display()),
        ]
    };
    let mut a = common("dom");
    a.push("--dump-dom".into());
    a.push(url.clone());
    let o = Command::new(chromium).args(&a).output().expect("chromium");
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(dom.contains("Skærmbillede ø.png"), "{dom}");
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;.txt") && !dom.contains("<img"),
        "{dom}"
    );
    assert!(dom.contains("<form id=\"upload\""), "{dom}");
    assert!(dom.contains("type=\"file\""), "{dom}");
    let shot = tmp.path().join("listing.png");
    let mut a = common("shot");
    a.push(format!("--screenshot={}", shot.display()));
    a.push("--window-size=900,600".into());
    a.push(url);
    let o = Command::new(chromium).args(&a).output().expect("chromium");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // A 401 page or a blank one is a few KB; the table and form are more.
    assert!(png.len() > 15_000, "screenshot only {} bytes", png.len());
    if let Ok(keep) = std::env::var("LISTING_SCREENSHOT_OUT") {
        let _ = std::fs::copy(&shot, keep);
    }
}
