//! Skab's own HTTP/1.1 connection handling, end to end over raw sockets: keep-alive and
//! pipelining, `Expect: 100-continue`, HTTP/1.0, framing that could be read two ways,
//! unread bodies after an early answer, and HTTP/2 with prior knowledge handed to hyper.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;

fn connect(server: &Server) -> BufReader<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    BufReader::new(s)
}

fn send(conn: &mut BufReader<TcpStream>, bytes: &[u8]) {
    conn.get_mut().write_all(bytes).unwrap();
}

/// Reads exactly one response (head, then a Content-Length or chunked body) from `conn`.
/// `head_only`: the response to a HEAD request.
fn read_one(conn: &mut BufReader<TcpStream>, head_only: bool) -> Reply {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = conn.read_until(b'\n', &mut line).unwrap();
        assert!(
            n > 0,
            "connection closed inside a head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let mut reply = parse_reply(&head);
    if head_only || reply.status == 204 || reply.status == 304 || reply.status < 200 {
        return reply;
    }
    if let Some(len) = reply.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        conn.read_exact(&mut body).unwrap();
        reply.body = body;
    } else if reply.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut size = String::new();
            conn.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut data = vec![0; n + 2];
            conn.read_exact(&mut data).unwrap();
            if n == 0 {
                break;
            }
            reply.body.extend_from_slice(&data[..n]);
        }
    }
    reply
}

/// Whether the server closed `conn` (reads EOF within the timeout).
fn closed(conn: &mut BufReader<TcpStream>) -> bool {
    conn.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

fn auth() -> String {
    basic(&format!("{USER}@{TENANT}"), PASSWORD)
}

fn request(method: &str, path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n{extra}",
        auth()
    );
    if !extra.to_ascii_lowercase().contains("transfer-encoding") {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    let mut c = connect(&server);
    // Three requests in one write: PUT with a body, GET, HEAD.
    let mut all = request("PUT", &dav("p.txt"), "", b"pipelined body");
    all.extend(request("GET", &dav("p.txt"), "", b""));
    all.extend(request("HEAD", &dav("p.txt"), "", b""));
    send(&mut c, &all);
    assert_eq!(read_one(&mut c, false).status, 201);
    let get = read_one(&mut c, false);
    assert_eq!(
        (get.status, get.body.as_slice()),
        (200, &b"pipelined body"[..])
    );
    let head = read_one(&mut c, true);
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("14"))
    );
    assert!(head.header("date").is_some_and(|d| d.ends_with(" GMT")));
    // The same connection goes on serving, with a chunked upload split across writes.
    send(
        &mut c,
        format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
            dav("c.txt"),
            auth()
        )
        .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(50));
    send(&mut c, b"\r\n6\r\n world\r\n0\r\n\r\n");
    assert_eq!(read_one(&mut c, false).status, 201);
    send(&mut c, &request("GET", &dav("c.txt"), "", b""));
    assert_eq!(read_one(&mut c, false).body, b"hello world");
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let server = Server::start();
    let mut c = connect(&server);
    send(
        &mut c,
        format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
            dav("e.txt"),
            auth()
        )
        .as_bytes(),
    );
    let cont = read_one(&mut c, false);
    assert_eq!(cont.status, 100, "no 100 Continue before the body");
    send(&mut c, b"data");
    assert_eq!(read_one(&mut c, false).status, 201);
    // Refused from the head alone: no 100, the final answer, and no body is waited for.
    let wrong = basic(&format!("{USER}@{TENANT}"), "wrong password");
    send(
        &mut c,
        format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
            dav("e2.txt")
        )
        .as_bytes(),
    );
    assert_eq!(read_one(&mut c, false).status, 401);
    assert_eq!(server.client().get(&dav("e.txt")).body, b"data");
}

#[test]
fn an_unread_small_body_keeps_the_connection_and_a_large_one_closes_it() {
    let server = Server::start();
    let mut c = connect(&server);
    // A 401 to a PUT whose (small) body the handler never read: the body is skipped.
    let wrong = basic(&format!("{USER}@{TENANT}"), "wrong password");
    let mut bad = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\nContent-Length: 5000\r\n\r\n",
        dav("u.txt")
    )
    .into_bytes();
    bad.extend(vec![b'x'; 5000]);
    send(&mut c, &bad);
    assert_eq!(read_one(&mut c, false).status, 401);
    send(&mut c, &request("PUT", &dav("u.txt"), "", b"after"));
    assert_eq!(
        read_one(&mut c, false).status,
        201,
        "the connection went on"
    );
    // A body too large to skip: the answer says close, and the connection closes.
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\nContent-Length: 100000000\r\n\r\n",
        dav("u.txt")
    );
    send(&mut c, head.as_bytes());
    let r = read_one(&mut c, false);
    assert_eq!((r.status, r.header("connection")), (401, Some("close")));
    assert!(closed(&mut c));
    assert_eq!(server.client().get(&dav("u.txt")).body, b"after");
}

#[test]
fn http_1_0_and_ambiguous_framing() {
    let server = Server::start();
    // HTTP/1.0: answered in kind and closed (no keep-alive asked).
    let mut c = connect(&server);
    send(&mut c, b"GET /healthz HTTP/1.0\r\n\r\n");
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nok\n"), "{text}");
    // HTTP/1.0 with keep-alive stays open.
    let mut c = connect(&server);
    send(
        &mut c,
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let r = read_one(&mut c, false);
    assert_eq!(
        (r.status, r.header("connection")),
        (200, Some("keep-alive"))
    );
    send(
        &mut c,
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_eq!(read_one(&mut c, false).status, 200);
    // Framing that a proxy could read differently is refused, and the connection closed.
    for (head, want) in [
        ("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", 400),
        ("Content-Length: 4\r\nContent-Length: 5\r\n", 400),
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
    ] {
        let mut c = connect(&server);
        send(
            &mut c,
            format!(
                "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n{head}\r\n0\r\n\r\n",
                dav("s.txt"),
                auth()
            )
            .as_bytes(),
        );
        let r = read_one(&mut c, false);
        assert_eq!(r.status, want, "{head:?}: {}", r.text());
        assert!(closed(&mut c), "{head:?}");
    }
    // A bad chunk size mid-body: the upload fails and leaves nothing.
    let mut c = connect(&server);
    send(
        &mut c,
        format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
            dav("s.txt"),
            auth()
        )
        .as_bytes(),
    );
    let r = read_one(&mut c, false);
    assert!(r.status >= 400, "{}", r.status);
    assert_eq!(server.client().get(&dav("s.txt")).status, 404);
}

#[test]
fn http2_with_prior_knowledge_is_served_by_hyper() {
    require_tool("curl");
    let server = Server::start();
    server.client().put(&dav("h2.txt"), b"over h2c");
    let out = Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-u"])
        .arg(format!("{USER}@{TENANT}:{PASSWORD}"))
        .arg("-w")
        .arg("\n%{http_version} %{http_code}")
        .arg(format!("http://127.0.0.1:{}{}", server.port, dav("h2.txt")))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "over h2c\n2 200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_hyper_implementation_can_still_be_chosen() {
    let server = Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .config("http1 = \"hyper\"\n"),
    );
    let c = server.client();
    assert_eq!(c.put(&dav("y.txt"), b"via hyper").status, 201);
    assert_eq!(c.get(&dav("y.txt")).body, b"via hyper");
    assert!(
        server.log().contains("HTTP/1.1 by hyper"),
        "{}",
        server.log()
    );
}

#[test]
fn a_large_upload_refused_from_its_head_still_gets_its_answer() {
    let server = Server::start();
    let wrong = basic(&format!("{USER}@{TENANT}"), "wrong password");
    let body = vec![b'x'; 16 << 20];
    // The server answers 401 before reading the body and closes; unless it reads what the
    // client still sends first, the close resets the connection and the answer is lost.
    for round in 0..5 {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut req = format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\nContent-Length: {}\r\n\r\n",
            dav("big.bin"),
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        if let Err(e) = s.write_all(&req) {
            panic!("round {round}: the server cut the upload off instead of answering: {e}");
        }
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 401"), "round {round}: {text:?}");
    }
}
