//! Writes the committed seed corpora under `fuzz/corpus/<target>/`: real files from a small
//! store (WAL segments, snapshot, packs, checkpoint, meta) built over an in-memory storage,
//! hand-written header and XML examples, and hostile variants (cut, flipped, oversized).
//!
//! Run from `fuzz/`: `cargo run --example make-seeds` (plain `cargo`, no fuzzer flags needed).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use skab_engine::fuzzing as f;
use skab_engine::io::{MemStorage, Storage};
use skab_engine::ns::parse_path;
use skab_engine::{SpaceKey, Store, StoreConfig};
use skab_fuzz::*;

type Seeds = Vec<(&'static str, String, Vec<u8>)>;

fn add(
    seeds: &mut Seeds,
    target: &'static str,
    name: impl Into<String>,
    bytes: impl Into<Vec<u8>>,
) {
    seeds.push((target, name.into(), bytes.into()));
}

/// Cut-short and bit-flipped copies of `b`.
fn hostile(seeds: &mut Seeds, target: &'static str, name: &str, b: &[u8]) {
    if b.is_empty() {
        return;
    }
    add(seeds, target, format!("{name}-cut-half"), &b[..b.len() / 2]);
    add(seeds, target, format!("{name}-cut-one"), &b[..b.len() - 1]);
    let mut flipped = b.to_vec();
    let at = flipped.len() * 2 / 3;
    flipped[at] ^= 0x10;
    add(seeds, target, format!("{name}-flip"), flipped);
}

fn read_all(s: &MemStorage, name: &str) -> Vec<u8> {
    let file = s.open(name, false).expect("open");
    let mut b = vec![0u8; file.len().expect("len") as usize];
    file.read_exact_at(&mut b, 0).expect("read");
    b
}

/// A one-shard store with a little of everything; returns its files.
fn real_store() -> Vec<(String, Vec<u8>)> {
    let mem = Arc::new(MemStorage::new());
    let config = StoreConfig {
        shards: 1,
        pack_size_target: skab_engine::limits::PACK_SIZE_TARGET_MIN,
        ..StoreConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = Store::open_with_storage(mem.clone(), config).expect("open");
        let key = SpaceKey::new("skole1", "anna").expect("key");
        store.create_space(&key).await.expect("space");
        store
            .set_tenant_quota("skole1", Some(1 << 30))
            .await
            .expect("quota");
        let p = |s: &str| parse_path(s).expect("path");
        store.mkdir(&key, &p("Mapper")).await.expect("mkdir");
        let big: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        store
            .put_bytes(&key, &p("Mapper/stor.bin"), Bytes::from(big))
            .await
            .expect("put");
        store
            .put_bytes(
                &key,
                &p("Mapper/Brev til mor.txt"),
                Bytes::from_static(b"Kaere mor"),
            )
            .await
            .expect("put");
        store.checkpoint().expect("checkpoint");
        store
            .put_bytes(
                &key,
                &p("Mapper/Brev til mor.txt"),
                Bytes::from_static(b"Kaere mor, igen"),
            )
            .await
            .expect("overwrite");
        store
            .copy(&key, &p("Mapper"), &p("Kopi"), false)
            .await
            .expect("copy");
        store
            .rename(&key, &p("Kopi"), &p("Kopi2"), false)
            .await
            .expect("rename");
        store
            .delete(&key, &p("Kopi2/stor.bin"))
            .await
            .expect("delete");
        let key2 = SpaceKey::new("skole1", "bo").expect("key");
        store.create_space(&key2).await.expect("space");
        store
            .put_bytes(&key2, &p("x"), Bytes::from_static(b"x"))
            .await
            .expect("put");
    });
    let mut files = Vec::new();
    for name in mem.list("").expect("list") {
        let b = read_all(&mem, &name);
        files.push((name, b));
    }
    files
}

fn engine_seeds(seeds: &mut Seeds) {
    let real = real_store();
    let mut store_input = Vec::new();
    let mut wal_input = Vec::new();
    for (name, bytes) in &real {
        let flat = name.replace('/', "_");
        eprintln!("store file {name}: {} bytes", bytes.len());
        if name.ends_with(".wal") {
            add(seeds, "engine_wal_segment", flat.clone(), bytes.clone());
            hostile(seeds, "engine_wal_segment", &flat, bytes);
            let recs = f::wal_payloads(bytes);
            let mut body = Vec::new();
            if let Some((seq, _)) = recs.first() {
                let segment = name
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.strip_suffix(".wal"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                body.extend_from_slice(&segment.to_le_bytes());
                body.extend_from_slice(&seq.to_le_bytes());
            }
            section(&mut wal_input, TAG_WAL_SEGMENT, &body);
            for (i, (seq, payload)) in recs.iter().enumerate() {
                add(
                    seeds,
                    "engine_wal_record",
                    format!("{flat}-{seq}"),
                    payload.clone(),
                );
                if i == 0 {
                    hostile(
                        seeds,
                        "engine_wal_record",
                        &format!("{flat}-{seq}"),
                        payload,
                    );
                }
                section(&mut wal_input, TAG_WAL_RECORD, payload);
            }
        } else if name.ends_with(".snap") {
            let archive = bytes.get(24..).unwrap_or_default();
            add(seeds, "engine_snapshot", flat.clone(), archive);
            hostile(seeds, "engine_snapshot", &flat, archive);
            section(&mut store_input, TAG_SNAPSHOT_ARCHIVE, archive);
        } else if name.ends_with(".pack") {
            add(
                seeds,
                "engine_pack",
                format!("{flat}-header"),
                &bytes[..16.min(bytes.len())],
            );
            let rec = bytes.get(16..64).unwrap_or_default();
            add(seeds, "engine_pack", format!("{flat}-record-header"), rec);
            hostile(seeds, "engine_pack", &format!("{flat}-record-header"), rec);
            section(&mut store_input, TAG_PACK_NEW, &[]);
            section(
                &mut store_input,
                TAG_PACK_RAW,
                bytes.get(16..).unwrap_or_default(),
            );
        } else if name.ends_with(".ckpt") {
            add(seeds, "engine_pack", flat.clone(), bytes.clone());
            hostile(seeds, "engine_pack", &flat, bytes);
            section(&mut store_input, TAG_CHECKPOINT_RAW, bytes);
        } else if name == "store.meta" {
            add(seeds, "engine_pack", flat.clone(), bytes.clone());
            hostile(seeds, "engine_pack", &flat, bytes);
            section(&mut store_input, TAG_META_RAW, bytes);
        }
    }
    store_input.extend_from_slice(&wal_input);
    // The real store must open from its own sections, or the seed teaches nothing.
    f::open_store(&files(&store_input)).expect("seed store opens");
    add(
        seeds,
        "engine_open_store",
        "real-store",
        store_input.clone(),
    );
    hostile(seeds, "engine_open_store", "real-store", &store_input);
    let mut only_wal = Vec::new();
    section(&mut only_wal, TAG_PACK_CHUNK, b"hello chunk");
    only_wal.extend_from_slice(&wal_input);
    add(seeds, "engine_open_store", "wal-only", only_wal);
    let mut hostile_ckpt = Vec::new();
    section(&mut hostile_ckpt, TAG_PACK_CHUNK, b"abc");
    let mut body = b"SKABCKP1".to_vec();
    body.extend_from_slice(&u64::MAX.to_le_bytes());
    body.extend_from_slice(&1u64.to_le_bytes());
    body.extend_from_slice(&[7u8; 32]);
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&u64::MAX.to_le_bytes());
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    section(&mut hostile_ckpt, TAG_CHECKPOINT_BODY, &body);
    add(
        seeds,
        "engine_open_store",
        "checkpoint-beyond-pack",
        hostile_ckpt,
    );
    add(seeds, "engine_open_store", "empty", Vec::new());

    let mut huge_count = b"SKABCKP1".to_vec();
    huge_count.extend_from_slice(&0u64.to_le_bytes());
    huge_count.extend_from_slice(&u64::MAX.to_le_bytes());
    let crc = crc32c(&huge_count);
    huge_count.extend_from_slice(&crc.to_le_bytes());
    add(seeds, "engine_pack", "checkpoint-huge-count", huge_count);
    add(
        seeds,
        "engine_wal_segment",
        "header-only",
        f::wal_segment_header(3),
    );
    let mut long_rec = f::wal_segment_header(0);
    long_rec.extend_from_slice(&1u64.to_le_bytes());
    long_rec.extend_from_slice(&u32::MAX.to_le_bytes());
    long_rec.extend_from_slice(&0u32.to_le_bytes());
    add(seeds, "engine_wal_segment", "record-length-max", long_rec);
    let mut seq_max = f::wal_segment_header(0);
    f::wal_frame_record(u64::MAX, b"a", &mut seq_max);
    f::wal_frame_record(0, b"b", &mut seq_max);
    add(seeds, "engine_wal_segment", "seq-wraps", seq_max);
    add(seeds, "engine_wal_record", "version-only", vec![1u8]);
    add(seeds, "engine_wal_record", "bad-version", vec![9u8, 0, 0]);
    add(seeds, "engine_snapshot", "zeros", vec![0u8; 64]);
    add(seeds, "engine_snapshot", "ones", vec![0xffu8; 64]);

    for (i, s) in [
        "a",
        "Brev til mor.docx",
        "æøå",
        "e\u{301}",
        ".",
        "..",
        "a/b",
        "/a//b/",
        "con",
        "a\0b",
        "x\u{202e}y",
        &"n".repeat(300),
        " lead",
        "trail ",
        "a\\b",
    ]
    .iter()
    .enumerate()
    {
        add(seeds, "engine_names", format!("name-{i}"), s.as_bytes());
    }
}

fn server_seeds(seeds: &mut Seeds) {
    let paths = [
        "/dav/skole1/anna/Mapper/Brev%20til%20mor.docx",
        "/dav/skole1/anna/",
        "/dav",
        "/dav/skole1/anna/a/../b",
        "/dav/skole1/anna/%2e%2e/x",
        "/dav/skole1/anna/%00",
        "/dav/skole1/anna/%C3%A6%C3%B8%C3%A5?x=1#f",
        "/dav/skole1/anna/%ZZ",
        "/dav/skole1/anna/%e2%80%ae",
        "https://dav.example.dk/dav/skole1/anna/x",
        "http://dav.example.dk:80/dav/skole1/bo/y/",
        "http://other.example/dav/skole1/anna/x",
        "http://user@dav.example.dk/dav/skole1/anna/x",
        "ftp://dav.example.dk/dav/a/b",
        "//dav//skole1///anna//x",
    ];
    for (i, p) in paths.iter().enumerate() {
        add(seeds, "dav_path", format!("path-{i}"), p.as_bytes());
    }
    let deep = format!("/dav/t/u/{}", "a/".repeat(300));
    add(seeds, "dav_path", "deep", deep.into_bytes());

    let headers = [
        "0", "1", "infinity", "T", "f", "Second-3600", "Infinite, Second-10", "Second-99999999999999999999",
        "<opaquelocktoken:abc>", "<>",
        "(<opaquelocktoken:abc>)",
        "(Not <DAV:no-lock> [\"e1\"])",
        "<http://dav.example.dk/dav/skole1/anna/x> (<opaquelocktoken:abc> [W/\"e1\"]) (Not <DAV:no-lock>)",
        "((", "bytes=0-99", "bytes=-5, 10-, 3-4", "bytes=99999999999999999999999-", "bytes=5-1",
        "\"e1\"", "W/\"e1\"", "*", "\"a\", W/\"b\"\nSun, 06 Nov 1994 08:49:37 GMT\n*\nTue, 14 Nov 2023 22:13:20 GMT",
        "Tue, 14 Nov 2023 22:13:20 GMT",
    ];
    for (i, h) in headers.iter().enumerate() {
        let mut b = 1000u64.to_le_bytes().to_vec();
        b.extend_from_slice(h.as_bytes());
        add(seeds, "dav_headers", format!("header-{i}"), b);
    }
    let mut zero_len = 0u64.to_le_bytes().to_vec();
    zero_len.extend_from_slice(b"bytes=0-0,-1");
    add(seeds, "dav_headers", "range-empty-resource", zero_len);
    let mut max_len = u64::MAX.to_le_bytes().to_vec();
    max_len.extend_from_slice(b"bytes=0-,-18446744073709551615");
    add(seeds, "dav_headers", "range-max-resource", max_len);

    let xml = [
        r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:resourcetype/></D:prop></D:propfind>"#,
        r#"<propfind xmlns="DAV:"><allprop/><include><x:a xmlns:x="urn:x"/></include></propfind>"#,
        r#"<propfind xmlns="DAV:"><propname/></propfind>"#,
        r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:Author xml:lang="da">Anna &amp; Bo<Z:b/></Z:Author></D:prop></D:set><D:remove><D:prop><Z:Old/></D:prop></D:remove></D:propertyupdate>"#,
        r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>mailto:anna@skole1</D:href></D:owner></D:lockinfo>"#,
        r#"<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><propfind xmlns="DAV:"><prop>&b;</prop></propfind>"#,
        r#"<propfind xmlns="DAV:"><prop><a:x xmlns:a=""/></prop></propfind>"#,
        "",
        "   ",
    ];
    for (i, x) in xml.iter().enumerate() {
        add(seeds, "dav_xml", format!("xml-{i}"), x.as_bytes());
    }
    add(
        seeds,
        "dav_xml",
        "deep",
        "<a xmlns=\"DAV:\">".repeat(100).into_bytes(),
    );

    let auth = [
        "Basic YW5uYUBza29sZTE6aGVtbWVsaWc=",
        "basic   YW5uYUBza29sZTE6c2thYl9hdF9BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        "Basic !!!",
        "Basic Og==",
        "Bearer skab_at_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwiYXVkIjoic2thYiIsImV4cCI6NDEwMjQ0NDgwMCwic3ViIjoiYW5uYUBza29sZTEifQ.c2lnbmF0dXJl",
        "Bearer a.b.c",
        "Digest x",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$argon2id$v=19$m=4294967295,t=4294967295,p=255$AA$AA",
    ];
    for (i, a) in auth.iter().enumerate() {
        add(seeds, "auth_header", format!("auth-{i}"), a.as_bytes());
    }

    // First byte: the read size the target feeds the parser with.
    let http1: [(&str, &[u8]); 4] = [
        ("chunked", b"\x07PUT /dav/t/u/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("length", b"\x03GET / HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"),
        ("http10", b"\x01PROPFIND /dav/ HTTP/1.0\r\nDepth: 1\r\nExpect: 100-continue\r\n\r\n"),
        ("smuggle", b"\x10POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ];
    for (name, bytes) in http1 {
        add(seeds, "http1_request", name, bytes);
        hostile(seeds, "http1_request", name, bytes);
    }
}

fn users_seeds(seeds: &mut Seeds) {
    use skab_server::users::password::hash_with;
    use skab_server::users::{TenantName, UserDb, UserName};
    let dir = tempfile::tempdir().expect("temp dir");
    let db = UserDb::open(dir.path()).expect("user db");
    let t = TenantName::new("skole1").expect("tenant");
    let (anna, bo) = (
        UserName::new("anna").expect("user"),
        UserName::new("bo").expect("user"),
    );
    db.add_user(&t, &anna, &hash_with("pw-anna", 64, 1, 1).expect("hash"))
        .expect("add");
    db.add_user(&t, &bo, &hash_with("pw-bo", 64, 1, 1).expect("hash"))
        .expect("add");
    let (id, _) = db.create_token(&t, &anna, "laptop").expect("token");
    db.create_token(&t, &bo, "phone").expect("token");
    db.set_disabled(&t, &bo, true).expect("disable");
    db.revoke_token(&t, &anna, id).expect("revoke");
    let log = std::fs::read(dir.path().join("users/users.log")).expect("read log");
    let input = user_log_sections(&log);
    assert_eq!(user_log(&input), log, "user log sections round trip");
    add(seeds, "users_log", "real-log", input.clone());
    hostile(seeds, "users_log", "real-log", &input);
    add(seeds, "users_log", "empty", Vec::new());
}

/// PROXY protocol headers (v1, v1 UNKNOWN, v2 over IPv4) and forwarding headers.
fn proxy_seeds(seeds: &mut Seeds) {
    add(
        seeds,
        "proxy_header",
        "v1",
        &b"PROXY TCP4 198.51.100.22 203.0.113.7 35646 80\r\nGET / HTTP/1.1\r\n"[..],
    );
    add(seeds, "proxy_header", "v1-unknown", &b"PROXY UNKNOWN\r\n"[..]);
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[0x21, 0x11, 0, 12, 198, 51, 100, 22, 203, 0, 113, 7]);
    v2.extend_from_slice(&35646u16.to_be_bytes());
    v2.extend_from_slice(&443u16.to_be_bytes());
    add(seeds, "proxy_header", "v2", v2);
    add(seeds, "proxy_header", "xff", &b"6.6.6.6, 198.51.100.7, 10.0.0.2"[..]);
    add(
        seeds,
        "proxy_header",
        "forwarded",
        &b"for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https"[..],
    );
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut seeds = Seeds::new();
    engine_seeds(&mut seeds);
    server_seeds(&mut seeds);
    users_seeds(&mut seeds);
    proxy_seeds(&mut seeds);
    for (target, name, bytes) in &seeds {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    }
    eprintln!("wrote {} seeds under {}", seeds.len(), root.display());
}
