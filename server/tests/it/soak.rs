//! Soak: a school-day mix (browse, save, copy, move, delete) from several clients for
//! `SKAB_SOAK_SECS` seconds (default 15) while `skab gc` runs through the admin socket;
//! no request may fail, memory must stay flat and a scrub at the end must be clean.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// Clients working at once.
const CLIENTS: u64 = 4;
/// Distinct document contents each client saves (bounds the store's size, about 6 MiB each).
const DOC_VARIANTS: u64 = 64;
/// Versions kept per file: small, so that overwrites keep dropping contents for GC.
/// Versions and trash are kept in memory; a short trash retention (expired by each `skab gc`)
/// keeps what the soak measures to the server's own memory, not its retained history.
const CONFIG: &str = "[storage]\nversions_kept = 2\ntrash_retention_s = 2\n";

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc")
}

fn ok(r: &Reply, what: &str) {
    assert!(
        (200..300).contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.text()
    );
}

/// One client's day: its own folder of documents, edited, copied, moved and deleted.
fn client_day(c: Http, id: u64, stop: Arc<AtomicBool>, ops: Arc<AtomicU64>) {
    let dir = format!("c{id}");
    ok(&c.mkcol(&dav(&dir)), "MKCOL");
    let mut x = id * 7919 + 1;
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let doc = format!("{dir}/doc{}.odt", x % 8);
        match x % 10 {
            0..=2 => {
                let r = c.propfind(&dav(&format!("{dir}/")), "1");
                assert_eq!(r.status, 207, "PROPFIND: {}", r.text());
            }
            3..=5 => {
                // Saves come from a bounded set of versions (a class's documents), so the
                // store stays bounded however long the soak runs; versions and trash churn.
                let variant = (x >> 8) % DOC_VARIANTS;
                let data = pseudo_random(
                    id * 1000 + variant,
                    40_000 + (variant % 5) as usize * 30_000,
                );
                ok(&c.put(&dav(&doc), &data), "PUT");
            }
            6 => {
                let r = c.get(&dav(&doc));
                assert!(r.status == 200 || r.status == 404, "GET: {}", r.status);
            }
            7 => {
                let dest = dav(&format!("{dir}/copy{}.odt", x % 3));
                let r = c.send("COPY", &dav(&doc), &[("Destination", &dest)], b"");
                assert!(
                    matches!(r.status, 201 | 204 | 404),
                    "COPY: {} {}",
                    r.status,
                    r.text()
                );
            }
            8 => {
                let dest = dav(&format!("{dir}/moved{}.odt", x % 3));
                let r = c.send("MOVE", &dav(&doc), &[("Destination", &dest)], b"");
                assert!(
                    matches!(r.status, 201 | 204 | 404),
                    "MOVE: {} {}",
                    r.status,
                    r.text()
                );
            }
            _ => {
                let r = c.delete(&dav(&doc));
                assert!(matches!(r.status, 204 | 404), "DELETE: {}", r.status);
            }
        }
        ops.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn school_day_with_gc_keeps_memory_flat_and_scrub_clean() {
    let secs: u64 = std::env::var("SKAB_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
        .max(4);
    let mut server =
        Server::start_opts(Opts::default().user(TENANT, USER, PASSWORD).config(CONFIG));
    let data = server.data_dir();
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (c, stop, ops) = (server.client(), stop.clone(), ops.clone());
            std::thread::spawn(move || client_day(c, id, stop, ops))
        })
        .collect();
    let started = Instant::now();
    let warm_at = Duration::from_secs(secs / 4);
    let mut warm_rss = None;
    let mut peak_rss = 0;
    let mut gcs = 0;
    let mut next_gc = Instant::now() + Duration::from_secs(2);
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(250));
        if workers.iter().any(|w| w.is_finished()) {
            let log = server.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "a client failed after {:?}; see its panic above; server log tail:\n{}",
                started.elapsed(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let rss = rss_kib(server.pid());
        peak_rss = peak_rss.max(rss);
        if warm_rss.is_none() && started.elapsed() >= warm_at {
            warm_rss = Some(rss);
        }
        if Instant::now() >= next_gc {
            let (ok, out) = skab(
                &[
                    "gc",
                    "--data-dir",
                    data.to_str().unwrap(),
                    "--compact-ratio",
                    "0.2",
                ],
                None,
            );
            assert!(ok, "gc during the soak: {out}");
            gcs += 1;
            next_gc = Instant::now() + Duration::from_secs(3);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a client failed");
    }
    let final_rss = rss_kib(server.pid());
    let warm = warm_rss.expect("warm-up RSS");
    let total = ops.load(Ordering::Relaxed);
    eprintln!(
        "soak: secs={secs} ops={total} gc_runs={gcs} rss_warm_kib={warm} rss_final_kib={final_rss} rss_peak_kib={peak_rss}"
    );
    assert!(total > secs, "the load did almost nothing ({total} ops)");
    assert!(gcs >= 1);
    // Flat-ish: allocator slack and caches settle; growth with time is a leak.
    assert!(
        final_rss < warm * 2 + 16 * 1024,
        "RSS grew from {warm} KiB after warm-up to {final_rss} KiB"
    );
    server.stop();
    let (ok, out) = skab(&["scrub", "--data-dir", data.to_str().unwrap()], None);
    assert!(ok, "scrub after the soak: {out}");
}
