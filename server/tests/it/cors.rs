//! CORS for browser frontends (`http.cors_origins`): preflights, actual responses (401s and
//! errors included), other origins and no configuration, against a real `skab serve`; and a
//! real browser (headless chromium) running a page from another origin that calls the
//! server with `fetch` (PROPFIND, a 401, and a multipart upload built by the browser).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const ALLOWED: &str = "https://portal.school.example";
const OTHER: &str = "https://evil.example";

fn with_origins(origins: &[&str]) -> Server {
    let list: Vec<String> = origins.iter().map(|o| format!("\"{o}\"")).collect();
    Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .config(&format!("[http]\ncors_origins = [{}]\n", list.join(", "))),
    )
}

fn cors_headers(r: &Reply) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-"))
        .map(|(n, v)| format!("{n}: {v}"))
        .collect()
}

fn assert_actual_cors(r: &Reply, origin: &str, what: &str) {
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(origin),
        "{what}: {:?}",
        r.headers
    );
    assert_eq!(
        r.header("access-control-allow-credentials"),
        Some("true"),
        "{what}"
    );
    let expose = r.header("access-control-expose-headers").unwrap_or("");
    for h in [
        "ETag",
        "DAV",
        "Lock-Token",
        "Location",
        "Content-Range",
        "OC-FileId",
    ] {
        assert!(expose.contains(h), "{what}: expose lacks {h}: {expose}");
    }
    assert!(
        r.header_all("vary").iter().any(|v| v.contains("Origin")),
        "{what}: no Vary: Origin"
    );
}

#[test]
fn a_preflight_from_an_allowed_origin_is_answered_without_credentials() {
    let s = with_origins(&[ALLOWED, "http://127.0.0.1:9"]);
    // Origins compare case-insensitively (browsers send them lower-case anyway).
    for origin in [ALLOWED, "HTTPS://Portal.School.Example"] {
        let r = s.anonymous().send(
            "OPTIONS",
            &dav(""),
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "PROPFIND"),
                ("Access-Control-Request-Headers", "authorization, depth"),
            ],
            b"",
        );
        assert_eq!(r.status, 204, "{}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        let methods = r.header("access-control-allow-methods").unwrap_or("");
        for m in [
            "OPTIONS",
            "GET",
            "HEAD",
            "PUT",
            "POST",
            "DELETE",
            "MKCOL",
            "COPY",
            "MOVE",
            "PROPFIND",
            "PROPPATCH",
            "LOCK",
            "UNLOCK",
            "REPORT",
        ] {
            assert!(
                methods.split(", ").any(|x| x == m),
                "{m} missing: {methods}"
            );
        }
        let headers = r.header("access-control-allow-headers").unwrap_or("");
        for h in [
            "Authorization",
            "Depth",
            "Destination",
            "Overwrite",
            "If",
            "Lock-Token",
            "Timeout",
            "Content-Type",
            "Content-Range",
            "Range",
            "If-Match",
            "If-None-Match",
            "OC-Checksum",
            "X-OC-Mtime",
            "OC-Total-Length",
            "X-Requested-With",
            "Requesttoken",
        ] {
            assert!(
                headers.split(", ").any(|x| x == h),
                "{h} missing: {headers}"
            );
        }
        assert_eq!(r.header("access-control-max-age"), Some("600"));
        assert!(r.header("www-authenticate").is_none());
    }
    // The preflight is answered on every route, not only under /dav/.
    let r = s.anonymous().send(
        "OPTIONS",
        "/remote.php/dav/files/x/",
        &[
            ("Origin", ALLOWED),
            ("Access-Control-Request-Method", "PUT"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
}

#[test]
fn actual_responses_for_an_allowed_origin_carry_cors_headers_errors_included() {
    let s = with_origins(&[ALLOWED]);
    let c = s.client();
    assert_eq!(c.put(&dav("a.txt"), b"abc").status, 201);
    let o = [("Origin", ALLOWED)];
    let r = c.send("GET", &dav("a.txt"), &o, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"abc");
    assert_actual_cors(&r, ALLOWED, "GET");
    let r = c.send(
        "PROPFIND",
        &dav(""),
        &[("Origin", ALLOWED), ("Depth", "1")],
        b"",
    );
    assert_eq!(r.status, 207);
    assert_actual_cors(&r, ALLOWED, "PROPFIND");
    let r = s.anonymous().send(
        "PROPFIND",
        &dav(""),
        &[("Origin", ALLOWED), ("Depth", "1")],
        b"",
    );
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    assert_actual_cors(&r, ALLOWED, "401");
    let r = c.send("GET", &dav("missing.txt"), &o, b"");
    assert_eq!(r.status, 404);
    assert_actual_cors(&r, ALLOWED, "404");
    let r = s.anonymous().send("GET", "/healthz", &o, b"");
    assert_eq!(r.status, 200);
    assert_actual_cors(&r, ALLOWED, "healthz");
    // A plain OPTIONS (no Access-Control-Request-Method) is not a preflight: it is routed.
    let r = s.anonymous().send("OPTIONS", &dav(""), &o, b"");
    assert_eq!(r.status, 401);
    assert_actual_cors(&r, ALLOWED, "plain OPTIONS");
}

#[test]
fn other_origins_get_no_cors_headers() {
    let s = with_origins(&[ALLOWED]);
    let c = s.client();
    assert_eq!(c.put(&dav("a.txt"), b"abc").status, 201);
    for origin in [
        OTHER,
        "null",
        "https://portal.school.example.evil.example",
        ALLOWED.trim_end_matches(".example"),
    ] {
        let plain = s.anonymous().send("OPTIONS", &dav(""), &[], b"");
        let r = s.anonymous().send(
            "OPTIONS",
            &dav(""),
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "PROPFIND"),
            ],
            b"",
        );
        assert_eq!(
            r.status, plain.status,
            "{origin}: preflight is a plain OPTIONS"
        );
        assert_eq!(r.status, 401);
        assert!(
            cors_headers(&r).is_empty(),
            "{origin}: {:?}",
            cors_headers(&r)
        );
        let r = s.anonymous().send(
            "OPTIONS",
            "/",
            &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
            b"",
        );
        assert_eq!(r.status, 200);
        assert!(r.header("allow").is_some_and(|a| a.contains("PROPFIND")));
        assert!(
            cors_headers(&r).is_empty(),
            "{origin}: {:?}",
            cors_headers(&r)
        );
        for (m, path) in [("GET", dav("a.txt")), ("PROPFIND", dav(""))] {
            let r = c.send(m, &path, &[("Origin", origin), ("Depth", "0")], b"");
            assert!(r.status == 200 || r.status == 207, "{m}: {}", r.status);
            assert!(
                cors_headers(&r).is_empty(),
                "{origin} {m}: {:?}",
                cors_headers(&r)
            );
        }
        let r = s
            .anonymous()
            .send("GET", &dav("a.txt"), &[("Origin", origin)], b"");
        assert_eq!(r.status, 401);
        assert!(cors_headers(&r).is_empty());
    }
}

#[test]
fn without_configured_origins_there_are_no_cors_headers() {
    let s = Server::start();
    let c = s.client();
    for origin in [ALLOWED, OTHER] {
        let r = s.anonymous().send(
            "OPTIONS",
            &dav(""),
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "PROPFIND"),
            ],
            b"",
        );
        assert_eq!(
            r.status, 401,
            "no configuration: a preflight is a plain OPTIONS"
        );
        assert!(cors_headers(&r).is_empty());
        let r = c.send(
            "PROPFIND",
            &dav(""),
            &[("Origin", origin), ("Depth", "1")],
            b"",
        );
        assert_eq!(r.status, 207);
        assert!(cors_headers(&r).is_empty());
        assert!(r.header("vary").is_none());
    }
}

#[test]
fn any_origin_and_malformed_origins_are_refused_at_start() {
    for bad in ["*", "https://a.example/", "portal.school.example"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("skab.toml");
        std::fs::write(&cfg, format!("[http]\ncors_origins = [\"{bad}\"]\n")).unwrap();
        let (ok, out) = skab(
            &[
                "serve",
                "--data-dir",
                dir.path().join("data").to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--config",
                cfg.to_str().unwrap(),
            ],
            None,
        );
        assert!(!ok, "{bad} accepted: {out}");
        assert!(out.contains("http.cors_origins"), "{bad}: {out}");
    }
}

/// A one-page HTTP server on loopback (the page's own origin): every request gets the
/// page set in the returned cell.
fn page_server() -> (u16, Arc<Mutex<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let page = Arc::new(Mutex::new(String::new()));
    let served = page.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let html = served.lock().unwrap().clone();
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    (port, page)
}

fn chromium() -> &'static str {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| have(c))
        .expect("chromium is needed (apt-get install -y chromium)")
}

/// Loads `url` in headless chromium (a fresh profile) and returns the DOM after its scripts
/// ran (virtual time waits for the page's network requests).
fn dump_dom(url: &str, profile: &Path) -> String {
    let o = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=20000",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            url,
        ])
        .output()
        .expect("run chromium");
    assert!(
        o.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The page a frontend on another origin would be: PROPFIND with the user's login, the same
/// without it (401), then a file upload as `FormData` (the browser builds the multipart).
fn frontend_page(skab: &str) -> String {
    let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
    format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<p id="propfind">pending</p><p id="anonymous">pending</p><p id="upload">pending</p>
<script>
const base = "{skab}/dav/{TENANT}/{USER}/";
const set = (id, text) => {{ document.getElementById(id).textContent = text; }};
async function run() {{
  try {{
    const r = await fetch(base, {{method: 'PROPFIND', headers: {{Authorization: '{auth}', Depth: '1'}}}});
    const body = await r.text();
    set('propfind', 'status ' + r.status + (body.includes('multistatus') ? ' multistatus' : ''));
  }} catch (e) {{ set('propfind', 'failed ' + e); }}
  try {{
    const r = await fetch(base, {{method: 'PROPFIND', headers: {{Depth: '1'}}}});
    set('anonymous', 'status ' + r.status);
  }} catch (e) {{ set('anonymous', 'failed ' + e); }}
  try {{
    const fd = new FormData();
    fd.append('file', new Blob(['from the browser \u00f8'], {{type: 'text/plain'}}), 'Browser \u00f8.txt');
    const r = await fetch(base, {{method: 'POST', headers: {{Authorization: '{auth}'}}, body: fd}});
    set('upload', 'status ' + r.status + ' location ' + r.headers.get('Location'));
  }} catch (e) {{ set('upload', 'failed ' + e); }}
}}
run();
</script></body></html>"#
    )
}

fn text_of(dom: &str, id: &str) -> String {
    let start = format!("<p id=\"{id}\">");
    let Some(i) = dom.find(&start) else {
        panic!("no #{id} in {dom}");
    };
    let rest = &dom[i + start.len()..];
    rest[..rest.find("</p>").unwrap()].to_string()
}

#[test]
fn a_browser_page_on_an_allowed_origin_can_use_the_server_and_others_cannot() {
    let (allowed, allowed_page) = page_server();
    let (other, other_page) = page_server();
    let s = with_origins(&[&format!("http://127.0.0.1:{allowed}")]);
    let html = frontend_page(&s.base());
    *allowed_page.lock().unwrap() = html.clone();
    *other_page.lock().unwrap() = html;
    let tmp = tempfile::tempdir().unwrap();

    let dom = dump_dom(
        &format!("http://127.0.0.1:{allowed}/"),
        &tmp.path().join("a"),
    );
    assert_eq!(text_of(&dom, "propfind"), "status 207 multistatus", "{dom}");
    assert_eq!(text_of(&dom, "anonymous"), "status 401", "{dom}");
    assert_eq!(
        text_of(&dom, "upload"),
        format!("status 201 location /dav/{TENANT}/{USER}/"),
        "{dom}"
    );
    let r = s.client().get(&dav(&enc("Browser ø.txt")));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "from the browser ø");

    assert_eq!(s.client().delete(&dav(&enc("Browser ø.txt"))).status, 204);
    let dom = dump_dom(&format!("http://127.0.0.1:{other}/"), &tmp.path().join("b"));
    for id in ["propfind", "anonymous", "upload"] {
        let t = text_of(&dom, id);
        assert!(
            t.starts_with("failed TypeError"),
            "#{id} from another origin: {t}"
        );
    }
    // The upload's preflight was refused, so the POST never happened.
    assert_eq!(s.client().get(&dav(&enc("Browser ø.txt"))).status, 404);
}
