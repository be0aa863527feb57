//! Storage administration from the command line: quota, usage, scrub and gc, both with the
//! server stopped (the command opens the store) and running (through its admin socket).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;

use base64::Engine;
use common::{skab, Server, PASSWORD, TENANT, USER};

/// One request as `pupil@school`; returns the status code.
fn request(server: &Server, method: &str, path: &str, body: &[u8]) -> u16 {
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}@{TENANT}:{PASSWORD}"));
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let head = format!(
        "{method} /dav/{TENANT}/{USER}/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (507) before reading the body; a reset then is fine.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn quota_usage_scrub_gc_with_the_server_running() {
    let server = Server::start();
    let data = server.data_dir();
    let d = data.to_str().unwrap();
    assert_eq!(request(&server, "PUT", "small.txt", &[7u8; 1000]), 201);
    let (ok, out) = skab(
        &[
            "quota",
            "set",
            "--data-dir",
            d,
            "--tenant",
            TENANT,
            "--user",
            USER,
            "--bytes",
            "50000",
        ],
        None,
    );
    assert!(ok, "{out}");
    assert!(out.contains("quota of pupil@school"), "{out}");
    // Over quota: 507 and nothing left behind.
    assert_eq!(request(&server, "PUT", "big.bin", &vec![1u8; 100_000]), 507);
    assert_eq!(request(&server, "GET", "big.bin", b""), 404);
    assert_eq!(request(&server, "PUT", "fits.bin", &vec![2u8; 20_000]), 201);
    let (ok, out) = skab(&["usage", "--data-dir", d, "--tenant", TENANT], None);
    assert!(ok, "{out}");
    assert!(out.contains("pupil@school"), "{out}");
    assert!(
        out.contains("20.5 KiB") || out.contains("20.5"),
        "usage should count 21000 bytes: {out}"
    );
    let (ok, out) = skab(&["scrub", "--data-dir", d], None);
    assert!(ok, "{out}");
    assert!(out.contains("no corruption found"), "{out}");
    assert_eq!(request(&server, "DELETE", "fits.bin", b""), 204);
    let (ok, out) = skab(&["gc", "--data-dir", d], None);
    assert!(ok, "{out}");
    assert!(out.contains("collected"), "{out}");
    // Unlimited again.
    let (ok, out) = skab(
        &[
            "quota",
            "set",
            "--data-dir",
            d,
            "--tenant",
            TENANT,
            "--user",
            USER,
            "--unlimited",
        ],
        None,
    );
    assert!(ok, "{out}");
    assert_eq!(request(&server, "PUT", "big.bin", &vec![1u8; 100_000]), 201);
}

#[test]
fn scrub_reports_corruption_with_the_server_stopped() {
    let mut server = Server::start();
    let data = server.data_dir();
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(request(&server, "PUT", "exam.bin", &payload), 201);
    server.stop();
    let d = data.to_str().unwrap();
    let (ok, out) = skab(&["scrub", "--data-dir", d], None);
    assert!(ok, "{out}");
    // Flip one byte in the middle of the records of the pack that holds the file (the
    // newest pack ends in zeros kept ahead of the writer: not data).
    let packs = data.join("store/packs");
    let pack = std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let records_end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert!(
        records_end > payload.len(),
        "the file's chunks are in {pack:?}"
    );
    let mid = records_end / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&pack, bytes).unwrap();
    let (ok, out) = skab(&["scrub", "--data-dir", d], None);
    assert!(!ok, "scrub must fail on corruption: {out}");
    assert!(out.contains("CORRUPT"), "{out}");
}

#[test]
fn tenant_quota_applies_to_all_its_users() {
    let server = Server::start_with(&[(TENANT, USER, PASSWORD)], &[]);
    let d = server.data_dir();
    let (ok, out) = skab(
        &[
            "quota",
            "set",
            "--data-dir",
            d.to_str().unwrap(),
            "--tenant",
            TENANT,
            "--bytes",
            "10000",
        ],
        None,
    );
    assert!(ok, "{out}");
    assert_eq!(request(&server, "PUT", "a.bin", &vec![3u8; 8_000]), 201);
    assert_eq!(request(&server, "PUT", "b.bin", &vec![4u8; 8_000]), 507);
}
