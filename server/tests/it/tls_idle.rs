//! TLS connections on rustls's unbuffered API (no record buffer held while idle): a kept-alive
//! connection left idle and then reused, on TLS 1.2 and 1.3, with session resumption and a
//! clean `close_notify` at the end; a large upload and download byte-exact on one connection;
//! a handshake and a request that arrive a few bytes per TCP segment; clients that stall in
//! the middle of a record (during and after the handshake) are cut off and their slots freed.

use crate::common;
use common::tls::TlsServer as Tls;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{basic, build_request, dav, pseudo_random, Reply};
use common::{IO_TIMEOUT, PASSWORD, TENANT, USER};
use rustls::pki_types::{CertificateDer, ServerName};

/// Short timeouts and few slots, so that stalled clients meet them fast.
const LIMITS: &str = "[limits]
header_read_timeout_s = 1
idle_timeout_s = 3
connections_max = 4
";

fn start() -> Tls {
    common::tls::start(LIMITS)
}

fn client_config(
    trusted: &CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

fn connect<S: Read + Write>(
    config: &Arc<rustls::ClientConfig>,
    sock: S,
) -> rustls::StreamOwned<rustls::ClientConnection, S> {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

fn tcp(port: u16) -> TcpStream {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// A request without `Connection: close`.
fn keep_alive_request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: {auth}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Reads one response with a `Content-Length` body.
fn read_response<S: Read>(s: &mut S) -> Reply {
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = common::parse_reply(&got[..end + 4]);
            let len: usize = match head.status {
                204 | 304 => 0,
                _ => head
                    .header("content-length")
                    .unwrap_or_else(|| panic!("no content-length in {:?}", head.headers))
                    .parse()
                    .unwrap(),
            };
            if got.len() >= end + 4 + len {
                assert_eq!(got.len(), end + 4 + len, "bytes after the response");
                return common::parse_reply(&got);
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed inside a response");
        got.extend_from_slice(&chunk[..n]);
    }
}

/// The server's answer to a plain client is still prompt (the slots are not all held).
fn still_serving(t: &Tls, config: &Arc<rustls::ClientConfig>) {
    let mut s = connect(config, tcp(t.server.port));
    let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
    let r = common::exchange(
        &mut s,
        &build_request("PROPFIND", &dav(""), Some(&auth), &[("Depth", "0")], b""),
    )
    .unwrap();
    assert_eq!(r.status, 207);
}

#[test]
fn idle_kept_alive_tls_connections_are_reused_resumed_and_closed_cleanly() {
    let t = start();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = client_config(&t.cert_der, version);
        let data = pseudo_random(7, 20_000);
        let mut s = connect(&config, tcp(t.server.port));
        s.write_all(&keep_alive_request("PUT", &dav("idle.bin"), &data))
            .unwrap();
        let r = read_response(&mut s);
        assert!(r.status == 201 || r.status == 204, "{}", r.text());
        assert_eq!(
            s.conn.protocol_version(),
            Some(version.version),
            "negotiated version"
        );
        // Idle (under idle_timeout_s = 3), then the same connection serves again.
        std::thread::sleep(Duration::from_millis(1500));
        s.write_all(&keep_alive_request("GET", &dav("idle.bin"), b""))
            .unwrap();
        let r = read_response(&mut s);
        assert_eq!(r.status, 200);
        assert!(r.body == data, "bytes differ after an idle pause");
        // `Connection: close`: the answer, then the server's close_notify (rustls reports
        // an end without it as an error).
        let auth = basic(&format!("{USER}@{TENANT}"), PASSWORD);
        s.write_all(&build_request(
            "GET",
            &dav("idle.bin"),
            Some(&auth),
            &[],
            b"",
        ))
        .unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)
            .expect("the server ends with close_notify");
        assert_eq!(common::parse_reply(&rest).body, data);
        assert_eq!(
            s.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Full),
            "first connection"
        );
        // A second connection resumes the session (a ticket, or TLS 1.2's session cache).
        let mut s = connect(&config, tcp(t.server.port));
        s.write_all(&keep_alive_request("GET", "/healthz", b""))
            .unwrap();
        assert_eq!(read_response(&mut s).status, 200);
        assert_eq!(
            s.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed),
            "{version:?}: the second connection is resumed"
        );
    }
}

#[test]
fn large_upload_and_download_over_tls_are_byte_exact() {
    let t = start();
    let config = client_config(&t.cert_der, &rustls::version::TLS13);
    let data = pseudo_random(99, 6 * 1024 * 1024 + 12_345);
    let mut s = connect(&config, tcp(t.server.port));
    s.write_all(&keep_alive_request("PUT", &dav("large.bin"), &data))
        .unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 201, "{}", r.text());
    for _ in 0..2 {
        s.write_all(&keep_alive_request("GET", &dav("large.bin"), b""))
            .unwrap();
        let r = read_response(&mut s);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), data.len());
        assert!(r.body == data, "downloaded bytes differ");
    }
}

/// A socket whose every write sends at most 3 bytes, each in a TCP segment of its own.
struct Trickle(TcpStream);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(&buf[..buf.len().min(3)])?;
        std::thread::sleep(Duration::from_micros(200));
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[test]
fn a_handshake_and_request_in_tiny_segments_are_served() {
    let t = start();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = client_config(&t.cert_der, version);
        let data = pseudo_random(3, 3000);
        let mut s = connect(&config, Trickle(tcp(t.server.port)));
        s.write_all(&keep_alive_request("PUT", &dav("tiny.bin"), &data))
            .unwrap();
        let r = read_response(&mut s);
        assert!(r.status == 201 || r.status == 204, "{}", r.text());
        s.write_all(&keep_alive_request("GET", &dav("tiny.bin"), b""))
            .unwrap();
        let r = read_response(&mut s);
        assert!(r.body == data, "{version:?}: bytes differ");
    }
}

/// Waits until the server closes `tcp` (end of stream or reset); how long it took.
fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Duration {
    let t0 = Instant::now();
    tcp.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            // Alerts or close_notify before the end.
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("still open after {:?}", t0.elapsed())
            }
            Err(_) => return t0.elapsed(),
        }
    }
}

#[test]
fn clients_stalled_inside_a_record_are_cut_off_and_freed() {
    let t = start();
    let config = client_config(&t.cert_der, &rustls::version::TLS13);
    // connections_max = 4: if stalled connections kept their slots, a fifth would be refused.
    for round in 0..2 {
        let mut stalled = Vec::new();
        for i in 0..4 {
            let mut sock = tcp(t.server.port);
            if i % 2 == 0 {
                // Half a ClientHello: a record header announcing 512 bytes, then 20 of them.
                let mut partial = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];
                partial.extend_from_slice(&[0u8; 11]);
                sock.write_all(&partial).unwrap();
            } else {
                // A finished handshake, then an application-data record cut short.
                let name = ServerName::try_from("127.0.0.1").unwrap();
                let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
                while conn.is_handshaking() {
                    conn.complete_io(&mut sock).unwrap();
                }
                sock.write_all(&[0x17, 0x03, 0x03, 0x03, 0xe8]).unwrap();
                sock.write_all(&[0xaa; 10]).unwrap();
            }
            stalled.push((i, sock));
        }
        for (i, mut sock) in stalled {
            // header_read_timeout_s = 1 during the handshake, idle_timeout_s = 3 after it.
            let took = closed_within(&mut sock, Duration::from_secs(10));
            assert!(
                took < Duration::from_secs(8),
                "round {round}, client {i}: closed after {took:?}"
            );
        }
        // The slot goes back just after the socket closes.
        std::thread::sleep(Duration::from_millis(300));
        still_serving(&t, &config);
    }
}

/// A client whose key updates ask the server for its own: the server's record layer (rustls's
/// session is gone after the handshake) switches both keys and goes on serving, on each
/// TLS 1.3 cipher.
#[test]
fn key_updates_over_a_kept_alive_connection_switch_both_keys() {
    // Default limits: the tight ones of `start` would cut a slow client off mid-test.
    let t = common::tls::start("");
    let suites = [
        rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
        rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
        rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    for suite in suites {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(t.cert_der.clone()).unwrap();
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: vec![suite],
            ..rustls::crypto::ring::default_provider()
        };
        let config = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let mut s = connect(&config, tcp(t.server.port));
        let body = pseudo_random(100_000, 7);
        let name = format!("ku-{:?}.bin", suite.suite());
        s.write_all(&keep_alive_request("PUT", &dav(&name), &body))
            .unwrap();
        assert_eq!(read_response(&mut s).status, 201, "{suite:?}");
        for round in 0..3 {
            // A key update that asks for the server's, then requests under the new keys.
            s.conn.refresh_traffic_keys().unwrap();
            s.write_all(&keep_alive_request("GET", &dav(&name), b""))
                .unwrap();
            let r = read_response(&mut s);
            assert_eq!(r.status, 200, "{suite:?} round {round}");
            assert!(r.body == body, "{suite:?} round {round}: body differs");
        }
        assert!(
            s.conn.negotiated_cipher_suite() == Some(suite),
            "{suite:?} was not used"
        );
    }
}

/// OpenSSL's client against the record layer: TLS 1.3 with key updates asked and not asked
/// (`K`, `k` in `s_client`), TLS 1.2 with each cipher the server offers.
#[test]
fn openssl_clients_are_served_on_every_cipher_with_key_updates() {
    common::require_tool("openssl");
    // Default limits: `start`'s 1 s for a request head is shorter than OpenSSL's start on a
    // loaded machine.
    let t = common::tls::start("");
    let request = format!(
        "PROPFIND /dav/{TENANT}/{USER}/ HTTP/1.1\nHost: localhost\nAuthorization: {}\nDepth: 0\nContent-Length: 0\n\n",
        basic(&format!("{USER}@{TENANT}"), PASSWORD)
    );
    let cases: [(&str, &str, &[&str]); 6] = [
        ("-tls1_3", "-ciphersuites", &["K\n", "k\n"]),
        ("-tls1_3", "-ciphersuites", &["K\n"]),
        ("-tls1_3", "-ciphersuites", &["k\n"]),
        ("-tls1_2", "-cipher", &[]),
        ("-tls1_2", "-cipher", &[]),
        ("-tls1_2", "-cipher", &[]),
    ];
    let ciphers = [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ];
    for ((version, flag, updates), cipher) in cases.iter().zip(ciphers) {
        let mut child = std::process::Command::new("openssl")
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{}", t.server.port))
            .args([*version, *flag, cipher, "-crlf", "-servername", "localhost"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // `s_client` reports key updates on stderr, the server's answers on stdout.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for out in [stdout, stderr] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        // Waits for a line containing `what` (all of `s_client`'s output goes by here).
        let mut seen = Vec::new();
        let mut wait_for = |what: &str| {
            let deadline = Instant::now() + IO_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) if line.contains(what) => return,
                    Ok(line) => seen.push(line),
                    Err(_) => panic!(
                        "{version} {cipher}: no {what:?} from openssl; it wrote:\n{}",
                        seen.join("\n")
                    ),
                }
            }
        };
        wait_for("Verify return code");
        let mut answers = 0;
        for command in updates.iter().copied().chain([""]) {
            if !command.is_empty() {
                stdin.write_all(command.as_bytes()).unwrap();
                wait_for("KEYUPDATE");
            }
            stdin.write_all(request.as_bytes()).unwrap();
            wait_for("HTTP/1.1 207");
            answers += 1;
        }
        assert_eq!(answers, updates.len() + 1);
        drop(stdin);
        let _ = child.kill();
        let _ = child.wait();
    }
}
