//! HTTPS: `skab serve` with `[tls]` cert/key from a config file; a rustls client that trusts
//! only that self-signed certificate does PUT/GET/PROPFIND; an untrusting client and a
//! cleartext client get nothing.

mod common;

use std::net::TcpStream;
use std::sync::Arc;

use common::{basic, build_request, dav, exchange, pseudo_random, Opts, Reply, Server};
use common::{IO_TIMEOUT, PASSWORD, TENANT, USER};
use rustls::pki_types::{CertificateDer, ServerName};

struct Tls {
    server: Server,
    cert_der: CertificateDer<'static>,
}

fn start() -> Tls {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cert = keys.path().join("cert.pem");
    let key = keys.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let mut opts = Opts::default()
        .user(TENANT, USER, PASSWORD)
        .config(&format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap()
        ));
    opts.tls = true;
    let server = Server::start_opts(opts);
    // The key files may go once the server has read them.
    drop(keys);
    Tls {
        server,
        cert_der: certified.cert.der().clone(),
    }
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
