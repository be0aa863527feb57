//! Server-side CPU per TLS handshake, full and resumed, for each crypto provider (ring,
//! aws-lc-rs) and certificate key type (ECDSA P-256, RSA 2048), in memory (no sockets): what
//! `skab` spends in rustls per connection. Keys come from the `openssl` command. The client
//! side (ring, the same for every case) is not timed. docs/benchmarks.md has the results.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// Handshakes per timed round and case (full; resumed handshakes run 4x as many).
const FULL_PER_ROUND: u32 = 400;
/// Rounds; the cases alternate within each round so that machine noise hits all alike.
const ROUNDS: usize = 5;

fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(st.success(), "openssl {args:?} failed");
}

/// A CA and a leaf certificate for `localhost` signed by it, with keys of `newkey` (an
/// `openssl req -newkey` argument); returns (CA, leaf chain, leaf key).
fn make_keys(
    dir: &Path,
    newkey: &[&str],
) -> (
    CertificateDer<'static>,
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
) {
    let mut req = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=bench-ca",
    ];
    req.extend_from_slice(newkey);
    req.extend_from_slice(&["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &req);
    let mut req = vec!["req", "-nodes", "-subj", "/CN=localhost"];
    req.extend_from_slice(newkey);
    req.extend_from_slice(&["-keyout", "leaf.key", "-out", "leaf.csr"]);
    openssl(dir, &req);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "leaf.pem",
        ],
    );
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let ca = rustls_pemfile::certs(&mut read("ca.pem").as_slice())
        .next()
        .unwrap()
        .unwrap();
    let chain = rustls_pemfile::certs(&mut read("leaf.pem").as_slice())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut read("leaf.key").as_slice())
        .unwrap()
        .unwrap();
    (ca, chain, key)
}

struct Case {
    name: String,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    full_ns: Vec<f64>,
    resumed_ns: Vec<f64>,
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let ring = Arc::new(rustls::crypto::ring::default_provider());
    let aws = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cases = Vec::new();
    for (kname, newkey) in [
        (
            "ECDSA P-256",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        ("RSA 2048", &["-newkey", "rsa:2048"][..]),
    ] {
        let dir = tmp.path().join(kname.replace(' ', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, chain, key) = make_keys(&dir, newkey);
        let mut roots = RootCertStore::empty();
        roots.add(ca).unwrap();
        let client = Arc::new(
            ClientConfig::builder_with_provider(ring.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        for (pname, provider) in [("ring", &ring), ("aws-lc-rs", &aws)] {
            for server_order in [false, true] {
                let provider = if server_order {
                    Arc::new(prefer_aes128_sha256(provider))
                } else {
                    provider.clone()
                };
                let mut server = ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(chain.clone(), key.clone_key())
                    .unwrap();
                server.ignore_client_order = server_order;
                server.ticketer = if pname == "ring" {
                    rustls::crypto::ring::Ticketer::new().unwrap()
                } else {
                    rustls::crypto::aws_lc_rs::Ticketer::new().unwrap()
                };
                // A client config per case: each keeps its own tickets.
                let mut own = (*client).clone();
                own.resumption = rustls::client::Resumption::in_memory_sessions(256);
                let client = Arc::new(own);
                let suite = if server_order {
                    "AES-128-GCM-SHA256"
                } else {
                    "client's (AES-256-GCM-SHA384)"
                };
                cases.push(Case {
                    name: format!("{pname}, {kname}, {suite}"),
                    server: Arc::new(server),
                    client,
                    full_ns: Vec::new(),
                    resumed_ns: Vec::new(),
                });
            }
        }
    }
    for _ in 0..ROUNDS {
        for c in cases.iter_mut() {
            let mut fresh = (*c.client).clone();
            fresh.resumption = rustls::client::Resumption::disabled();
            let fresh = Arc::new(fresh);
            let t = timed_handshakes(&c.server, &fresh, FULL_PER_ROUND, false);
            c.full_ns.push(t.as_nanos() as f64 / FULL_PER_ROUND as f64);
            let n = FULL_PER_ROUND * 4;
            let t = timed_handshakes(&c.server, &c.client, n, true);
            c.resumed_ns.push(t.as_nanos() as f64 / n as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{:<58} {:>8} {:>13} {:>11} {:>16}",
        "provider, key, TLS 1.3 suite", "full µs", "full /s/core", "resumed µs", "resumed /s/core"
    );
    for c in cases.iter_mut() {
        let f = median(&mut c.full_ns) / 1000.0;
        let r = median(&mut c.resumed_ns) / 1000.0;
        println!(
            "{:<58} {:>8.1} {:>13.0} {:>11.1} {:>16.0}",
            c.name,
            f,
            1e6 / f,
            r,
            1e6 / r
        );
    }
}

/// `p` with TLS 1.3's AES-128-GCM-SHA256 first (for a server that picks by its own order):
/// SHA-256 has CPU instructions (SHA-NI) that SHA-384 lacks.
fn prefer_aes128_sha256(p: &CryptoProvider) -> CryptoProvider {
    let mut p = p.clone();
    p.cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    p
}

/// Runs `n` handshakes (each followed by one 100-byte request and response, and the client
/// reading its tickets) and returns the time spent in the server's calls only.
fn timed_handshakes(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    n: u32,
    expect_resumed: bool,
) -> Duration {
    let mut spent = Duration::ZERO;
    let name = ServerName::try_from("localhost").unwrap();
    // Prime the ticket store (its first handshake is full and is not counted).
    if expect_resumed {
        let mut priming = Duration::ZERO;
        one(server, client, &name, &mut priming);
    }
    for _ in 0..n {
        let kind = one(server, client, &name, &mut spent);
        assert_eq!(
            kind == rustls::HandshakeKind::Resumed,
            expect_resumed,
            "unexpected handshake kind {kind:?}"
        );
    }
    spent
}

fn one(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    name: &ServerName<'static>,
    spent: &mut Duration,
) -> rustls::HandshakeKind {
    let mut c = ClientConnection::new(client.clone(), name.clone()).unwrap();
    let mut s = {
        let t = Instant::now();
        let s = ServerConnection::new(server.clone()).unwrap();
        *spent += t.elapsed();
        s
    };
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut sent_request = false;
    let mut answered = false;
    loop {
        // Client to server.
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            let t = Instant::now();
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
                s.process_new_packets().unwrap();
            }
            *spent += t.elapsed();
        }
        if !s.is_handshaking() && !answered {
            let mut req = [0u8; 100];
            if let Ok(k) = s.reader().read(&mut req) {
                if k > 0 {
                    let t = Instant::now();
                    s.writer().write_all(&[b'x'; 100]).unwrap();
                    *spent += t.elapsed();
                    answered = true;
                }
            }
        }
        // Server to client.
        buf.clear();
        let t = Instant::now();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        *spent += t.elapsed();
        if !buf.is_empty() {
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets().unwrap();
            }
        }
        if !c.is_handshaking() && !sent_request {
            c.writer().write_all(&[b'g'; 100]).unwrap();
            sent_request = true;
        }
        if answered && !s.wants_write() && !c.wants_write() {
            let mut got = [0u8; 100];
            let _ = c.reader().read(&mut got);
            return c.handshake_kind().unwrap();
        }
    }
}
