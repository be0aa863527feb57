//! Hostile input end to end: XML bombs and external entities, huge and endless bodies,
//! slowloris, too many connections and oversized headers each get a clear error (or a cut
//! connection) quickly, and the server keeps serving everyone else.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Small limits so each attack meets them fast.
const CONFIG: &str = "[limits]
body_size_max = 1048576
xml_size_max = 65536
header_size_max = 8192
header_read_timeout_s = 1
body_stall_timeout_s = 2
connections_max = 16
idle_timeout_s = 2
";

fn server() -> Server {
    Server::start_opts(Opts::default().user(TENANT, USER, PASSWORD).config(CONFIG))
}

/// The server still answers a normal client promptly.
fn still_serving(server: &Server) {
    let t = Instant::now();
    let r = server.client().propfind(&dav(""), "0");
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "slow: {:?}",
        t.elapsed()
    );
}

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"#;

fn bodies(root: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "billion laughs",
            format!("{BILLION_LAUGHS}<D:{root} xmlns:D=\"DAV:\">&lol9;</D:{root}>"),
        ),
        (
            "external entity",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
                 <D:{root} xmlns:D=\"DAV:\">&xxe;</D:{root}>"
            ),
        ),
        (
            "parameter entity",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY % p SYSTEM \"http://127.0.0.1:1/x.dtd\"> %p;]>\
                 <D:{root} xmlns:D=\"DAV:\"/>"
            ),
        ),
        (
            "undeclared entity",
            format!("<?xml version=\"1.0\"?><D:{root} xmlns:D=\"DAV:\">&lol9;</D:{root}>"),
        ),
        (
            "deep nesting",
            format!(
                "<D:{root} xmlns:D=\"DAV:\">{}{}</D:{root}>",
                "<a>".repeat(5000),
                "</a>".repeat(5000)
            ),
        ),
        ("over xml_size_max", format!("<D:{root} xmlns:D=\"DAV:\"><!--{}--></D:{root}>", "x".repeat(70_000))),
    ]
}

#[test]
fn xml_bombs_and_external_entities_are_refused_quickly() {
    let server = server();
    let c = server.client();
    assert_eq!(c.put(&dav("doc.txt"), b"hello").status, 201);
    let mut tried = 0;
    for (method, root, depth) in [
        ("PROPFIND", "propfind", Some("0")),
        ("PROPPATCH", "propertyupdate", None),
        ("LOCK", "lockinfo", None),
    ] {
        for (what, body) in bodies(root) {
            let mut headers = vec![("Content-Type", "application/xml")];
            if let Some(d) = depth {
                headers.push(("Depth", d));
            }
            let t = Instant::now();
            let r = c.send(method, &dav("doc.txt"), &headers, body.as_bytes());
            assert!(
                (400..500).contains(&r.status),
                "{method} with {what}: {} {}",
                r.status,
                r.text()
            );
            assert!(
                !r.text().contains("root:"),
                "{method} with {what} leaked a file"
            );
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{method} with {what} took {:?}",
                t.elapsed()
            );
            tried += 1;
        }
    }
    assert_eq!(tried, 18);
    // Nothing was locked or changed by the refused requests.
    assert_eq!(c.put(&dav("doc.txt"), b"still writable").status, 204);
    still_serving(&server);
}

#[test]
fn huge_and_endless_bodies_are_cut() {
    let server = server();
    let c = server.client();
    // Declared too large: refused from the head alone.
    let head = build_request(
        "PUT",
        &dav("big.bin"),
        c.auth.as_deref(),
        &[("Content-Length", "1048577")],
        b"",
    );
    let r = c.send_raw(&head);
    assert_eq!(r.status, 413, "{}", r.text());
    // Exactly the limit is fine.
    assert_eq!(c.put(&dav("limit.bin"), &vec![7u8; 1 << 20]).status, 201);

    // Chunked and endless: the server answers 413 and stops reading soon after the limit.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        dav("endless.bin"),
        c.auth.as_deref().unwrap()
    );
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'z'; 64 * 1024];
    let mut sent = 0u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if s.write_all(&frame).is_err() {
            break;
        }
        sent += chunk.len() as u64;
        if sent > 64 << 20 {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(
        sent < 32 << 20,
        "the server kept reading an endless body ({sent} bytes sent)"
    );
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 413"),
        "endless body answer: {text}"
    );
    assert_eq!(
        c.get(&dav("endless.bin")).status,
        404,
        "a cut body left a file"
    );
    assert_eq!(c.get(&dav("limit.bin")).body.len(), 1 << 20);
    still_serving(&server);
}

#[test]
fn slowloris_clients_are_cut_off_while_others_are_served() {
    let server = server();
    let port = server.port;
    let slow: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ");
                let t = Instant::now();
                for b in req.bytes().chain(std::iter::repeat(b'a')) {
                    if s.write_all(&[b]).is_err() {
                        break;
                    }
                    // Check whether the server hung up.
                    s.set_nonblocking(true).unwrap();
                    let mut buf = [0u8; 256];
                    let closed = s.read(&mut buf).is_ok();
                    s.set_nonblocking(false).unwrap();
                    if closed || t.elapsed() > Duration::from_secs(15) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                t.elapsed()
            })
        })
        .collect();
    // Meanwhile everyone else is served normally.
    for _ in 0..5 {
        still_serving(&server);
        std::thread::sleep(Duration::from_millis(200));
    }
    for t in slow {
        let took = t.join().unwrap();
        assert!(
            took < Duration::from_secs(6),
            "a slowloris client was kept for {took:?} (header_read_timeout_s = 1)"
        );
    }
    still_serving(&server);
}

#[test]
fn too_many_connections_are_closed_and_a_fresh_client_is_served() {
    let server = server();
    // Far more idle connections than connections_max = 16.
    let idle: Vec<TcpStream> = (0..64)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", server.port)).ok())
        .collect();
    assert!(idle.len() >= 32);
    // Those over the limit are closed at once; the rest by the header read timeout.
    let t = Instant::now();
    let mut served = false;
    while t.elapsed() < Duration::from_secs(10) {
        let r = try_get_health(server.port);
        if r == Some(200) {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        served,
        "a fresh client was not served while idle connections were held"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    let held = idle.len();
    let mut closed = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            // EOF or reset: the server closed it. A timeout means it is still held.
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert_eq!(closed, held, "idle connections were kept open");
    still_serving(&server);
}

fn try_get_health(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
}

#[test]
fn oversized_headers_get_431_or_a_closed_connection() {
    let server = server();
    for (what, req) in [
        (
            "one huge header",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(100_000)
            ),
        ),
        (
            "many headers",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..2000)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>()
            ),
        ),
        (
            "huge request line",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000)),
        ),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(req.as_bytes());
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).to_string();
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        assert!(
            status == 0 || status == 431 || status == 414 || status == 400,
            "{what}: {text}"
        );
        still_serving(&server);
    }
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let server = server();
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Keep-alive, then silence: the server closes the connection after idle_timeout_s.
    let t = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the idle connection to be closed");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "closed only after {:?}",
        t.elapsed()
    );
    still_serving(&server);
}

#[test]
fn a_client_that_stops_reading_is_cut_off_and_costs_no_memory() {
    // Skab's own HTTP/1, and hyper's (which serves TLS and HTTP/2 connections).
    for http1 in ["skab", "hyper"] {
        let server = Server::start_opts(
            Opts::default()
                .user(TENANT, USER, PASSWORD)
                .config(&format!("http1 = \"{http1}\"\n{CONFIG}")),
        );
        stuck_reader_is_cut_off(&server);
    }
}

fn stuck_reader_is_cut_off(server: &Server) {
    let c = server.client();
    // 256 KiB: far more than the socket buffers hold once a few answers pile up.
    let big: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(c.put(&dav("big.bin"), &big).status, 201);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let get = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        dav("big.bin"),
        c.auth.as_deref().unwrap()
    );
    // 400 pipelined GETs (100 MiB of answers), and then nothing is read.
    let mut sent = 0;
    for _ in 0..400 {
        if s.write_all(get.as_bytes()).is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent > 0);
    let rss_before = rss_kib(server.pid());
    std::thread::sleep(Duration::from_secs(5));
    // idle_timeout_s is 2: the stuck write was given up and the connection closed, so what
    // the socket still holds ends in EOF (or a reset), far short of 400 answers.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let t = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the connection stayed open"
        );
    }
    assert!(
        got < 100 * big.len(),
        "read {got} bytes: the server kept writing"
    );
    let rss_after = rss_kib(server.pid());
    assert!(
        rss_after < rss_before + 32 * 1024,
        "server grew from {rss_before} to {rss_after} KiB for one stuck client"
    );
    still_serving(server);
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn an_upload_that_stalls_gets_408_and_leaves_nothing() {
    // Skab's own HTTP/1 guards the stall with the connection's timer, hyper's path with the
    // body stream's own; both must answer. The idle timeout is longer, so only the stall cuts.
    for http1 in ["skab", "hyper"] {
        let config = format!(
            "http1 = \"{http1}\"\n[limits]\nbody_stall_timeout_s = 2\nidle_timeout_s = 30\n"
        );
        let server =
            Server::start_opts(Opts::default().user(TENANT, USER, PASSWORD).config(&config));
        let c = server.client();
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let head = format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 100000\r\n\r\n",
            dav("stalled.bin"),
            c.auth.as_deref().unwrap()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&[7u8; 1000]).unwrap();
        let t = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        let took = t.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{http1}: after {took:?}: {answer:?}"
        );
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
            "{http1}: the stall was cut after {took:?} (body_stall_timeout_s = 2)"
        );
        assert_eq!(c.get(&dav("stalled.bin")).status, 404, "{http1}");
        still_serving(&server);
    }
}
