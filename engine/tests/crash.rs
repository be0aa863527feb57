//! Crash test: a child process writes under load and is killed with SIGKILL at random moments,
//! many times; after each restart every acknowledged write must be present and intact, and no
//! file may hold bytes that no writer ever wrote (nothing half-written is visible).
//!
//! The child is this same test binary re-executed with `SKAB_CRASH_CHILD` set; it prints one
//! `ACK` line per acknowledged operation to stdout only after the engine acknowledged it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use skab_engine::ns::Name;
use skab_engine::{SpaceKey, Store, StoreConfig};

/// Kill/restart cycles (the full reliability run uses more: see docs/reliability.md).
const CYCLES: usize = 12;
/// Concurrent writers in the child.
const WRITERS: usize = 8;
/// Files each writer rotates over (each overwritten many times).
const FILES_PER_WRITER: u64 = 6;

fn path(s: &str) -> Vec<Name> {
    s.split('/').map(|c| Name::new(c).unwrap()).collect()
}

/// The bytes of version `v` of file (w, f): deterministic, with a size that varies a lot.
fn content(w: u64, f: u64, v: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(w << 40 ^ f << 20 ^ v);
    let len = match v % 4 {
        0 => rng.gen_range(32..2_000),
        1 => rng.gen_range(10_000..80_000),
        2 => rng.gen_range(100_000..400_000),
        // At least as long as the version tag, so every file says which version it is.
        _ => rng.gen_range(32..64),
    };
    let mut b = vec![0u8; len];
    rng.fill(&mut b[..]);
    // Versions share a prefix so that chunks deduplicate across versions.
    let shared = len.min(50_000);
    let mut prng = rand::rngs::StdRng::seed_from_u64(w << 40 ^ f << 20);
    prng.fill(&mut b[..shared]);
    let tag = format!("w{w}f{f}v{v};");
    let n = tag.len().min(b.len());
    b[..n].copy_from_slice(&tag.as_bytes()[..n]);
    b
}

fn child(dir: &Path, cycle: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(
            dir,
            StoreConfig {
                shards: 4,
                prezero: prezero_in(cycle),
                direct_io: direct_io_in(cycle),
                ..Default::default()
            },
        )
        .unwrap();
        let space = SpaceKey::new("school", "pupil").unwrap();
        store.create_space(&space).await.unwrap();
        println!("READY");
        let mut tasks = Vec::new();
        for w in 0..WRITERS as u64 {
            let store = store.clone();
            let space = space.clone();
            tasks.push(tokio::spawn(async move {
                let _ = store.mkdir(&space, &path(&format!("w{w}"))).await;
                let mut v = cycle * 1_000_000;
                loop {
                    v += 1;
                    let f = v % FILES_PER_WRITER;
                    let data = content(w, f, v);
                    let p = path(&format!("w{w}/f{f}"));
                    store
                        .put_bytes(&space, &p, Bytes::from(data))
                        .await
                        .unwrap();
                    println!("ACK {w} {f} {v}");
                    if v.is_multiple_of(7) {
                        // Rename away and back: both must be atomic.
                        let tmp = path(&format!("w{w}/tmp{f}"));
                        store.rename(&space, &p, &tmp, true).await.unwrap();
                        store.rename(&space, &tmp, &p, true).await.unwrap();
                        println!("ACK {w} {f} {v}");
                    }
                    if w == 0 && v.is_multiple_of(50) {
                        let s = store.clone();
                        tokio::task::spawn_blocking(move || s.checkpoint().unwrap())
                            .await
                            .unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() {
    if let Ok(spec) = std::env::var("SKAB_CRASH_CHILD") {
        let (dir, cycle) = spec.split_once('|').unwrap();
        child(Path::new(dir), cycle.parse().unwrap());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5ca8);
    // Last acknowledged version per (writer, file).
    let mut acked: HashMap<(u64, u64), u64> = HashMap::new();
    let mut total_acks = 0u64;
    for cycle in 1..=CYCLES as u64 {
        let mut proc = Command::new(&exe)
            .args([
                "--exact",
                "sigkill_never_loses_an_acknowledged_write",
                "--nocapture",
            ])
            .env("SKAB_CRASH_CHILD", format!("{}|{cycle}", dir.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = proc.stdout.take().unwrap();
        let run_for = Duration::from_millis(rng.gen_range(100..700));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child is up, then let it run a random while.
        let ready_deadline = Instant::now() + Duration::from_secs(60);
        let mut started = None;
        let mut cycle_acks = 0;
        loop {
            let now = Instant::now();
            if let Some(s) = started {
                if now >= s + run_for {
                    break;
                }
            } else if now > ready_deadline {
                panic!("child never became ready");
            }
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(line) if line == "READY" => started = Some(Instant::now()),
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("ACK ") {
                        let n: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
                        let e = acked.entry((n[0], n[1])).or_insert(0);
                        *e = (*e).max(n[2]);
                        cycle_acks += 1;
                    }
                }
                Err(_) => {}
            }
        }
        proc.kill().unwrap(); // SIGKILL
        proc.wait().unwrap();
        // Lines already written before the kill were acknowledged too.
        reader.join().unwrap();
        while let Ok(line) = rx.try_recv() {
            if let Some(rest) = line.strip_prefix("ACK ") {
                let n: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
                let e = acked.entry((n[0], n[1])).or_insert(0);
                *e = (*e).max(n[2]);
                cycle_acks += 1;
            }
        }
        total_acks += cycle_acks;

        // Restart and verify.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = Store::open(
            &dir,
            StoreConfig {
                shards: 4,
                prezero: prezero_in(cycle),
                direct_io: direct_io_in(cycle),
                ..Default::default()
            },
        )
        .unwrap();
        let report = store.recovery_report().clone();
        assert_eq!(report.wal_records_rejected, 0, "cycle {cycle}: {report:?}");
        assert_eq!(report.chunks_missing, 0, "cycle {cycle}: {report:?}");
        let space = SpaceKey::new("school", "pupil").unwrap();
        for (&(w, f), &v_acked) in &acked {
            let p = path(&format!("w{w}/f{f}"));
            // A crash between the two renames leaves the file under its temporary name.
            let tmp = path(&format!("w{w}/tmp{f}"));
            let got = rt
                .block_on(store.read_to_vec(&space, &p, None))
                .or_else(|e| {
                    if e.is_not_found() {
                        rt.block_on(store.read_to_vec(&space, &tmp, None))
                    } else {
                        Err(e)
                    }
                })
                .unwrap_or_else(|e| {
                    panic!("cycle {cycle}: w{w}/f{f} (acked v{v_acked}) unreadable: {e}")
                });
            // The file holds the acknowledged version or a later one that became durable
            // without its acknowledgement reaching us: never older, never a mix.
            let tag_end = got.iter().position(|&b| b == b';');
            let tag = std::str::from_utf8(&got[..tag_end.unwrap_or(0)]).unwrap_or("");
            let v: u64 = tag
                .rsplit_once('v')
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or_else(|| panic!("cycle {cycle}: w{w}/f{f} holds unknown bytes"));
            assert!(
                v >= v_acked,
                "cycle {cycle}: w{w}/f{f} went back from v{v_acked} to v{v}"
            );
            assert_eq!(
                got,
                content(w, f, v),
                "cycle {cycle}: w{w}/f{f} v{v} damaged"
            );
        }
        let scrub = store.scrub();
        assert!(scrub.is_clean(), "cycle {cycle}: {scrub:?}");
        drop(store);
    }
    assert!(
        total_acks > CYCLES as u64 * 5,
        "too few writes were acknowledged: {total_acks}"
    );
    eprintln!("crash test: {CYCLES} cycles, {total_acks} acknowledged operations, lost 0");
}

/// Cycles rotate over the ways packs are appended: through the page cache (the default),
/// into pre-zeroed space, and with direct I/O.
fn prezero_in(cycle: u64) -> bool {
    cycle % 3 == 1
}

/// See [`prezero_in`].
fn direct_io_in(cycle: u64) -> bool {
    cycle % 3 == 2
}
