//! HTTPS: `skab serve` with `[tls]` cert/key from a config file; a rustls client that trusts
//! only that self-signed certificate does PUT/GET/PROPFIND; an untrusting client and a
//! cleartext client get nothing.

use crate::common;
use common::tls::TlsServer as Tls;

use std::net::TcpStream;
use std::sync::Arc;

use common::{basic, build_request, dav, exchange, pseudo_random, Opts, Reply, Server};
use common::{IO_TIMEOUT, PASSWORD, TENANT, USER};
use rustls::pki_types::{CertificateDer, ServerName};

fn start() -> Tls {
    common::tls::start("")
}

fn client_config(trusted: Option<&CertificateDer<'static>>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(c) = trusted {
        roots.add(c.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// One HTTPS request over a fresh connection.
fn https(
    port: u16,
    config: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
    let req = build_request(method, path, Some(&auth), headers, body);
    exchange(&mut tls, &req)
}

#[test]
fn https_put_get_with_a_trusted_self_signed_certificate() {
    let t = start();
    let port = t.server.port;
    let trusted = client_config(Some(&t.cert_der));
    let data = pseudo_random(42, 300_000);
    let r = https(port, &trusted, "PUT", &dav("secure.bin"), &[], &data).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = https(port, &trusted, "GET", &dav("secure.bin"), &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == data, "bytes differ over TLS");
    let r = https(port, &trusted, "PROPFIND", &dav(""), &[("Depth", "1")], b"").unwrap();
    assert_eq!(r.status, 207);
    assert!(r.hrefs().contains(&dav("secure.bin")), "{}", r.text());
    let r = https(port, &trusted, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn untrusting_and_cleartext_clients_get_nothing() {
    let t = start();
    let port = t.server.port;
    // A client that does not trust the certificate fails the handshake.
    let untrusting = client_config(None);
    let r = https(port, &untrusting, "GET", "/healthz", &[], b"");
    let err = r.expect_err("handshake with an untrusted certificate must fail");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // Cleartext HTTP on the TLS port is not served.
    let plain = t
        .server
        .raw("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if let Ok((status, text)) = plain {
        assert_ne!(status, 200, "served cleartext: {text}");
    }
    // And the server still serves TLS afterwards.
    let trusted = client_config(Some(&t.cert_der));
    let r = https(port, &trusted, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!(r.status, 200);
}

/// A certificate for 127.0.0.1 and its PEM files in `dir`.
fn write_cert(dir: &std::path::Path) -> CertificateDer<'static> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    // Written whole and renamed, as a certificate renewal tool does.
    for (name, pem) in [
        ("cert.pem", certified.cert.pem()),
        ("key.pem", certified.key_pair.serialize_pem()),
    ] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    certified.cert.der().clone()
}

/// The certificate the server shows to a new connection.
fn served_certificate(port: u16, config: &Arc<rustls::ClientConfig>) -> CertificateDer<'static> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    conn.peer_certificates().unwrap()[0].clone()
}

#[test]
fn sighup_reloads_the_certificate_and_open_connections_go_on() {
    let keys = tempfile::tempdir().unwrap();
    let first = write_cert(keys.path());
    let mut opts = Opts::default()
        .user(TENANT, USER, PASSWORD)
        .config(&format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            keys.path().join("cert.pem").to_str().unwrap(),
            keys.path().join("key.pem").to_str().unwrap()
        ));
    opts.tls = true;
    let server = Server::start_opts(opts);
    let port = server.port;
    let both = {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(first.clone()).unwrap();
        roots
    };
    let trusting_first = client_config(Some(&first));
    assert_eq!(served_certificate(port, &trusting_first), first);

    // A connection opened before the renewal.
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let conn = rustls::ClientConnection::new(
        trusting_first.clone(),
        ServerName::try_from("127.0.0.1").unwrap(),
    )
    .unwrap();
    let mut open = rustls::StreamOwned::new(conn, tcp);
    let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
    // build_request asks to close; this connection stays open for a second request.
    let keep_alive = |path: &str| {
        let r = build_request("GET", path, Some(&auth), &[], b"");
        String::from_utf8(r)
            .unwrap()
            .replace("Connection: close\r\n", "")
            .into_bytes()
    };
    use std::io::{Read, Write};
    open.write_all(&keep_alive("/healthz")).unwrap();
    let mut buf = [0u8; 512];
    let n = open.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let second = write_cert(keys.path());
    server.signal(1);
    let trusting_second = client_config(Some(&second));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let config = {
            let mut roots = both.clone();
            roots.add(second.clone()).unwrap();
            Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
            )
        };
        if served_certificate(port, &config) == second {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not served"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // New connections get the new certificate; the open one still works.
    let r = https(port, &trusting_second, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    open.write_all(&keep_alive("/readyz")).unwrap();
    let n = open.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // A broken pair is refused and the certificate in use stays.
    std::fs::write(keys.path().join("key.pem"), "not a key").unwrap();
    server.signal(1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(served_certificate(port, &trusting_second), second);
    assert!(server.log().contains("TLS certificate not reloaded"));
}

#[test]
fn http2_over_tls_serves_webdav() {
    let t = start();
    let port = t.server.port;
    let mut config = (*client_config(Some(&t.cert_der))).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        use http_body_util::{BodyExt, Full};
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
        let data = pseudo_random(7, 100_000);
        let req = |method: &str, path: &str, body: Vec<u8>| {
            hyper::Request::builder()
                .method(method)
                .uri(format!("https://127.0.0.1:{port}{path}"))
                .header("authorization", &auth)
                .header("depth", "1")
                .body(Full::new(bytes::Bytes::from(body)))
                .unwrap()
        };
        let r = send
            .send_request(req("PUT", &dav("h2.bin"), data.clone()))
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.version(), hyper::Version::HTTP_2);
        let r = send
            .send_request(req("GET", &dav("h2.bin"), Vec::new()))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = r.into_body().collect().await.unwrap().to_bytes();
        assert!(got[..] == data[..], "bytes differ over HTTP/2");
        let r = send
            .send_request(req("PROPFIND", &dav(""), Vec::new()))
            .await
            .unwrap();
        assert_eq!(r.status(), 207);
    });
}

/// Reads one response with a `Content-Length` body from `s`, keeping what follows in `pending`.
fn read_response<S: std::io::Read>(s: &mut S, pending: &mut Vec<u8>) -> Reply {
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = common::parse_reply(&pending[..end + 4]);
            if head.status == 100 {
                pending.drain(..end + 4);
                return head;
            }
            let len: usize = head
                .header("content-length")
                .unwrap_or_else(|| panic!("no content-length in {:?}", head.headers))
                .parse()
                .unwrap();
            if pending.len() >= end + 4 + len {
                let reply = common::parse_reply(&pending[..end + 4 + len]);
                pending.drain(..end + 4 + len);
                return reply;
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed inside a response");
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// HTTP/1.1 over TLS is served by Skab's own connection code (an idle connection holds no
/// buffer between requests): one kept-alive TLS connection carries an upload that waits for
/// `100 Continue`, a chunked upload, and pipelined requests, with idle pauses between them.
#[test]
fn keep_alive_tls_connection_serves_continue_chunked_and_pipelined_requests() {
    use std::io::Write;
    let t = start();
    let config = client_config(Some(&t.cert_der));
    let tcp = TcpStream::connect(("127.0.0.1", t.server.port)).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
    let mut pending = Vec::new();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(200));

    let first = pseudo_random(3, 70_000);
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        dav("continue.bin"),
        first.len()
    );
    tls.write_all(head.as_bytes()).unwrap();
    tls.flush().unwrap();
    assert_eq!(read_response(&mut tls, &mut pending).status, 100);
    tls.write_all(&first).unwrap();
    tls.flush().unwrap();
    let r = read_response(&mut tls, &mut pending);
    assert_eq!(r.status, 201, "{}", r.text());
    pause();

    let second = pseudo_random(4, 300_000);
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n",
        dav("chunked.bin")
    );
    tls.write_all(head.as_bytes()).unwrap();
    for part in second.chunks(40_000) {
        tls.write_all(format!("{:x}\r\n", part.len()).as_bytes())
            .unwrap();
        tls.write_all(part).unwrap();
        tls.write_all(b"\r\n").unwrap();
        tls.flush().unwrap();
    }
    tls.write_all(b"0\r\n\r\n").unwrap();
    tls.flush().unwrap();
    let r = read_response(&mut tls, &mut pending);
    assert_eq!(r.status, 201, "{}", r.text());
    pause();

    let get = |name: &str| {
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n",
            dav(name)
        )
    };
    let pipelined = get("continue.bin") + &get("chunked.bin") + &get("continue.bin");
    tls.write_all(pipelined.as_bytes()).unwrap();
    tls.flush().unwrap();
    for want in [&first, &second, &first] {
        let r = read_response(&mut tls, &mut pending);
        assert_eq!(r.status, 200);
        assert!(
            r.body == **want,
            "bytes differ on a kept-alive TLS connection"
        );
    }
    assert!(pending.is_empty(), "more than three answers");
}
