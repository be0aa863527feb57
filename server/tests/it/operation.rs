//! Running `skab` in production: health and readiness, Prometheus metrics, quotas, users
//! added and removed while it runs, graceful shutdown during an upload, and SIGKILL.

use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{add_user, dav, exchange, pseudo_random, skab, Opts, Server, IO_TIMEOUT};
use common::{PASSWORD, TENANT, USER};

/// The value of the first metric line starting with `prefix` (name and labels).
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn metrics(server: &Server) -> String {
    let r = server.anonymous().get("/metrics");
    assert_eq!(r.status, 200);
    r.text()
}

#[test]
fn health_readiness_and_metrics() {
    let server = Server::start();
    let anon = server.anonymous();
    assert_eq!(anon.get("/healthz").status, 200);
    assert_eq!(anon.get("/readyz").status, 200);
    let c = server.client();
    let data = pseudo_random(1, 200_000);
    assert_eq!(c.put(&dav("one.bin"), &data).status, 201);
    assert_eq!(c.put(&dav("two.bin"), &data).status, 201);
    assert_eq!(c.put(&dav("three.bin"), &data).status, 201);
    assert_eq!(c.get(&dav("one.bin")).status, 200);
    assert_eq!(c.get(&dav("two.bin")).status, 200);
    assert_eq!(c.propfind(&dav(""), "1").status, 207);
    assert_eq!(c.get(&dav("missing")).status, 404);
    let m = metrics(&server);
    // Request counters per method and status.
    let put = metric(
        &m,
        "skab_http_requests_total{method=\"PUT\",status=\"201\"}",
    );
    assert_eq!(put, Some(3.0), "{m}");
    let get404 = metric(
        &m,
        "skab_http_requests_total{method=\"GET\",status=\"404\"}",
    );
    assert_eq!(get404, Some(1.0), "{m}");
    assert!(
        metric(
            &m,
            "skab_http_requests_total{method=\"PROPFIND\",status=\"207\"}"
        )
        .is_some(),
        "{m}"
    );
    // Latency histograms per method: buckets, count and sum.
    assert_eq!(
        metric(
            &m,
            "skab_http_request_duration_seconds_count{method=\"PUT\"}"
        ),
        Some(3.0),
        "{m}"
    );
    assert!(
        m.lines().any(
            |l| l.starts_with("skab_http_request_duration_seconds_bucket{")
                && l.contains("method=\"GET\"")
        ),
        "{m}"
    );
    assert!(
        metric(&m, "skab_http_request_duration_seconds_sum{method=\"PUT\"}")
            .is_some_and(|s| s > 0.0),
        "{m}"
    );
    // Engine figures: three copies of the same bytes are stored once.
    let logical = metric(&m, "skab_logical_bytes").expect("logical bytes");
    let stored = metric(&m, "skab_stored_bytes").expect("stored bytes");
    let ratio = metric(&m, "skab_dedup_ratio").expect("dedup ratio");
    assert_eq!(logical, 600_000.0, "{m}");
    assert!(
        (200_000.0..300_000.0).contains(&stored),
        "stored {stored}: {m}"
    );
    assert!(
        (ratio - logical / stored).abs() < 0.01,
        "ratio {ratio}: {m}"
    );
    // two.bin has one.bin's chunks: its GET is served by the chunk cache.
    let hits = metric(&m, "skab_chunk_cache_hits_total").expect("cache hits");
    let misses = metric(&m, "skab_chunk_cache_misses_total").expect("cache misses");
    let cached = metric(&m, "skab_chunk_cache_bytes").expect("cache bytes");
    assert!(
        misses >= 1.0 && hits == misses,
        "hits {hits} misses {misses}: {m}"
    );
    assert!(
        cached >= stored,
        "cache holds {cached} of {stored} bytes: {m}"
    );
}

/// `quota-used-bytes` of the home collection.
fn used_bytes(c: &common::Http) -> u64 {
    let r = c.send(
        "PROPFIND",
        &dav(""),
        &[("Depth", "0")],
        br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/><D:quota-available-bytes/></D:prop></D:propfind>"#,
    );
    assert_eq!(r.status, 207);
    let t = r.text();
    let v = t
        .split("quota-used-bytes>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("no quota-used-bytes in {t}"));
    v.parse().unwrap()
}

/// A PUT with `Transfer-Encoding: chunked` (the size is not announced).
fn chunked_put(server: &Server, path: &str, data: &[u8]) -> common::Reply {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let auth = common::basic(&format!("{USER}@{TENANT}"), PASSWORD);
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for piece in data.chunks(16_384) {
        req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    exchange(&mut s, &req).unwrap()
}

#[test]
fn put_over_quota_is_507_and_leaves_nothing() {
    let server = Server::start_opts(
        Opts::default()
            .user(TENANT, USER, PASSWORD)
            .config("[storage]\ndefault_quota_bytes = 100000\n"),
    );
    let c = server.client();
    assert_eq!(
        c.put(&dav("fits.bin"), &pseudo_random(1, 60_000)).status,
        201
    );
    assert_eq!(used_bytes(&c), 60_000);
    // Announced size over the quota: refused before the body is read.
    let r = c.put(&dav("toobig.bin"), &pseudo_random(2, 50_000));
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(c.get(&dav("toobig.bin")).status, 404);
    assert_eq!(used_bytes(&c), 60_000);
    // Size not announced (chunked): refused while streaming, nothing left behind.
    let r = chunked_put(&server, &dav("toobig2.bin"), &pseudo_random(3, 50_000));
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(c.get(&dav("toobig2.bin")).status, 404);
    assert_eq!(used_bytes(&c), 60_000);
    let mut hrefs = c.propfind(&dav(""), "1").hrefs();
    hrefs.sort();
    assert_eq!(hrefs, vec![dav(""), dav("fits.bin")]);
    // Replacing a file counts only the difference.
    let bigger = pseudo_random(4, 90_000);
    let r = c.put(&dav("fits.bin"), &bigger);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(c.get(&dav("fits.bin")).body, bigger);
    assert_eq!(used_bytes(&c), 90_000);
    // Deleting frees the space again.
    assert_eq!(c.delete(&dav("fits.bin")).status, 204);
    assert_eq!(used_bytes(&c), 0);
    assert_eq!(
        c.put(&dav("now.bin"), &pseudo_random(5, 99_000)).status,
        201
    );
}

/// Polls `f` until it is true or `limit` passes; returns how long it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn users_added_and_removed_while_running() {
    let server = Server::start();
    let login = format!("newbie@{TENANT}");
    let home = format!("/dav/{TENANT}/newbie/");
    let newbie = server.client_as(&login, "fresh password");
    assert_eq!(newbie.propfind(&home, "0").status, 401);
    add_user(&server.data_dir(), TENANT, "newbie", "fresh password");
    let took = within(Duration::from_secs(5), || {
        newbie.propfind(&home, "0").status == 207
    });
    assert!(took.is_some(), "new user could not log in within 5 s");
    assert_eq!(newbie.put(&format!("{home}x.txt"), b"hi").status, 201);
    // Disabling and deleting take effect too, even for a password just verified (cached).
    let (ok, out) = skab(
        &[
            "user",
            "disable",
            "--data-dir",
            server.data_dir().to_str().unwrap(),
            "--tenant",
            TENANT,
            "--user",
            "newbie",
        ],
        None,
    );
    assert!(ok, "{out}");
    let took = within(Duration::from_secs(5), || {
        newbie.propfind(&home, "0").status == 401
    });
    assert!(took.is_some(), "disabled user could still log in after 5 s");
    // The other user is unaffected.
    assert_eq!(server.client().propfind(&dav(""), "0").status, 207);
}

#[test]
fn users_imported_while_running_log_in_at_the_first_request() {
    let server = Server::start();
    // Warm the auth path so the first miss below is not the server's first refresh.
    assert_eq!(server.client().propfind(&dav(""), "0").status, 207);
    const N: usize = 40;
    let phc = skab_server::users::password::hash_password("imported pw").unwrap();
    let mut csv = String::from("user,tenant,password\n");
    for i in 0..N {
        csv.push_str(&format!("pupil{i},{TENANT},{phc}\n"));
    }
    let file = server.data_dir().join("..").join("import.csv");
    std::fs::write(&file, csv).unwrap();
    let (ok, out) = skab(
        &[
            "user",
            "import",
            "--data-dir",
            server.data_dir().to_str().unwrap(),
            "--csv",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{out}");
    // All at once, right after the import: the requests that miss while the server is
    // re-reading the user log must wait for it, not get a 401.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let c = server.client_as(&format!("pupil{i}@{TENANT}"), "imported pw");
                s.spawn(move || c.propfind(&format!("/dav/{TENANT}/pupil{i}/"), "0").status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused = statuses.iter().filter(|s| **s != 207).count();
    assert_eq!(refused, 0, "statuses: {statuses:?}");
}

#[test]
fn sigterm_lets_a_slow_upload_finish() {
    let mut server = Server::start();
    let data = pseudo_random(9, 300_000);
    let auth = common::basic(&format!("{USER}@{TENANT}"), PASSWORD);
    // An idle keep-alive connection (Finder and Explorer keep several) must not hold up
    // the shutdown.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    idle.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    idle.write_all(
        format!(
            "OPTIONS {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n",
            dav("")
        )
        .as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = std::io::Read::read(&mut idle, &mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(
        format!(
            "PUT {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            dav("slow.bin"),
            data.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let (first, rest) = data.split_at(100_000);
    s.write_all(first).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.signal(15);
    // The upload keeps going, slowly, after the signal.
    for piece in rest.chunks(50_000) {
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            server.wait_exit(Duration::ZERO).is_none(),
            "server exited with an upload in flight:\n{}",
            server.log()
        );
        s.write_all(piece).unwrap();
    }
    let r = exchange(&mut s, b"").unwrap();
    assert_eq!(r.status, 201, "{}\n{}", r.text(), server.log());
    // Well before the 30 s grace period: nothing else was in flight.
    let st = server
        .wait_exit(Duration::from_secs(15))
        .expect("server did not exit after SIGTERM");
    assert!(st.success(), "exit status {st:?}\n{}", server.log());
    server.restart();
    drop(idle);
    let got = server.client().get(&dav("slow.bin"));
    assert_eq!(got.status, 200);
    assert!(got.body == data, "upload finished during shutdown was lost");
}

#[test]
fn sigkill_keeps_every_acknowledged_write() {
    let mut server = Server::start();
    let c = server.client();
    assert_eq!(c.mkcol(&dav("w")).status, 201);
    let acked_puts = Arc::new(Mutex::new(Vec::<u64>::new()));
    let acked_deletes = Arc::new(Mutex::new(Vec::<u64>::new()));
    let attempted_deletes = Arc::new(Mutex::new(Vec::<u64>::new()));
    let body = |i: u64| pseudo_random(i, 1000 + (i as usize * 7919) % 50_000);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let c = c.clone();
            let puts = acked_puts.clone();
            let deletes = acked_deletes.clone();
            let attempted = attempted_deletes.clone();
            std::thread::spawn(move || {
                for k in 0.. {
                    let i = t * 1_000_000 + k;
                    let req = common::build_request(
                        "PUT",
                        &dav(&format!("w/{i}.bin")),
                        c.auth.as_deref(),
                        &[],
                        &body(i),
                    );
                    let Some(r) = try_send(c.port, &req) else {
                        return;
                    };
                    if r.status == 201 {
                        puts.lock().unwrap().push(i);
                    }
                    if k % 4 == 3 {
                        let victim = i - 2;
                        // From here on the DELETE may take effect whether or not its
                        // answer arrives before the kill.
                        attempted.lock().unwrap().push(victim);
                        let req = common::build_request(
                            "DELETE",
                            &dav(&format!("w/{victim}.bin")),
                            c.auth.as_deref(),
                            &[],
                            b"",
                        );
                        let Some(r) = try_send(c.port, &req) else {
                            return;
                        };
                        if r.status == 204 {
                            deletes.lock().unwrap().push(victim);
                        }
                    }
                }
            })
        })
        .collect();
    // Let writes pile up, then pull the plug.
    let enough = within(Duration::from_secs(30), || {
        acked_puts.lock().unwrap().len() >= 40
    });
    assert!(enough.is_some(), "too few writes acknowledged");
    server.signal(9);
    for t in threads {
        t.join().unwrap();
    }
    server
        .wait_exit(Duration::from_secs(10))
        .expect("server did not die on SIGKILL");
    server.restart();
    let c = server.client();
    let puts = acked_puts.lock().unwrap().clone();
    let deletes = acked_deletes.lock().unwrap().clone();
    let attempted = attempted_deletes.lock().unwrap().clone();
    assert!(!deletes.is_empty());
    for i in &puts {
        let r = c.get(&dav(&format!("w/{i}.bin")));
        if deletes.contains(i) {
            assert_eq!(r.status, 404, "acknowledged DELETE of {i} lost");
        } else if attempted.contains(i) {
            // A DELETE in flight at the kill: either outcome is allowed, but a
            // surviving file must still be whole.
            assert!(r.status == 200 || r.status == 404, "{i}: {}", r.status);
            if r.status == 200 {
                assert!(r.body == body(*i), "{i} has other bytes after recovery");
            }
        } else {
            assert_eq!(r.status, 200, "acknowledged PUT of {i} lost");
            assert!(r.body == body(*i), "{i} has other bytes after recovery");
        }
    }
}

/// One request; `None` when the connection fails (the server is gone).
fn try_send(port: u16, req: &[u8]) -> Option<common::Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    s.write_all(req).ok()?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut out).ok()?;
    if out.windows(4).any(|w| w == b"\r\n\r\n") {
        Some(common::parse_reply(&out))
    } else {
        None
    }
}

#[test]
fn the_login_path_and_connections_are_in_the_metrics() {
    let server = Server::start();
    let c = server.client();
    // First login: argon2 once; the next ones come from the credential cache.
    for _ in 0..3 {
        assert_eq!(c.propfind(&dav(""), "0").status, 207);
    }
    let wrong = server.client_as(&format!("{USER}@{TENANT}"), "not the password");
    assert_eq!(wrong.propfind(&dav(""), "0").status, 401);
    // A connection held open while the metrics are read.
    let held = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let m = metrics(&server);
    let hashes = metric(&m, "skab_login_password_hashes_total").unwrap();
    assert!((2.0..=3.0).contains(&hashes), "{m}");
    assert!(
        metric(&m, "skab_login_credential_cache_hits_total").unwrap() >= 2.0,
        "{m}"
    );
    assert!(
        metric(&m, "skab_login_credential_cache_misses_total").unwrap() >= 2.0,
        "{m}"
    );
    assert_eq!(metric(&m, "skab_login_hashes_queued"), Some(0.0), "{m}");
    assert!(metric(&m, "skab_open_connections").unwrap() >= 2.0, "{m}");
    assert_eq!(
        metric(&m, "skab_login_throttled_total{kind=\"account\"}"),
        Some(0.0),
        "{m}"
    );
    drop(held);
    // Flush times of the logs and the packs, as histograms whose buckets only grow.
    assert_eq!(c.put(&dav("f.bin"), &pseudo_random(3, 100_000)).status, 201);
    let m = metrics(&server);
    for name in ["skab_wal_flush_seconds", "skab_pack_flush_seconds"] {
        let count = metric(&m, &format!("{name}_count")).unwrap_or(0.0);
        assert!(count >= 1.0, "{name}: {m}");
        let buckets: Vec<f64> = m
            .lines()
            .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        assert_eq!(buckets.len(), 18, "{name}: {m}");
        assert!(
            buckets.windows(2).all(|w| w[0] <= w[1]),
            "{name}: {buckets:?}"
        );
        assert_eq!(buckets.last(), Some(&count), "{name}");
        assert!(metric(&m, &format!("{name}_sum")).unwrap() > 0.0, "{name}");
    }
}
