//! Every storage backend stores and reads back the same bytes as a simple model.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use skab_engine::io::{open_storage, IoChoice, MemStorage, StdStorage, Storage};

/// The backends this machine can run, each on its own root under `dir`.
fn backends(dir: &Path) -> Vec<Arc<dyn Storage>> {
    let mut v: Vec<Arc<dyn Storage>> = vec![
        Arc::new(StdStorage::new(&dir.join("std")).unwrap()),
        Arc::new(MemStorage::new()),
    ];
    if let Some(u) = uring(&dir.join("uring")) {
        v.push(u);
    }
    v
}

#[cfg(target_os = "linux")]
fn uring(root: &Path) -> Option<Arc<dyn Storage>> {
    match skab_engine::io::UringStorage::try_new(root) {
        Ok(u) => Some(Arc::new(u)),
        Err(e) => {
            eprintln!("io_uring not available here, testing std and memory only: {e}");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn uring(_root: &Path) -> Option<Arc<dyn Storage>> {
    None
}

fn read_all(s: &dyn Storage, name: &str) -> Vec<u8> {
    let f = s.open(name, false).unwrap();
    let mut buf = vec![0u8; f.len().unwrap() as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

fn apply(model: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if model.len() < end {
        model.resize(end, 0);
    }
    model[start..end].copy_from_slice(data);
}

#[test]
fn auto_choice_matches_uring_availability() {
    let dir = tempfile::tempdir().unwrap();
    let auto = open_storage(&dir.path().join("a"), IoChoice::Auto).unwrap();
    let forced = open_storage(&dir.path().join("u"), IoChoice::Uring);
    match forced {
        Ok(u) => {
            assert_eq!(u.kind(), "io_uring");
            assert_eq!(auto.kind(), "io_uring");
        }
        Err(e) => {
            assert!(e.to_string().contains("io_uring"), "unclear error: {e}");
            assert_eq!(auto.kind(), "std");
        }
    }
    let std = open_storage(&dir.path().join("s"), IoChoice::Std).unwrap();
    assert_eq!(std.kind(), "std");
}

#[test]
fn random_batches_match_a_model_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let stores = backends(dir.path());
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let names = ["packs/00000001.pack", "wal/07/00000003.wal", "top"];
    let mut models = vec![Vec::<u8>::new(); names.len()];
    let files: Vec<Vec<_>> = stores
        .iter()
        .map(|s| names.iter().map(|n| s.open(n, true).unwrap()).collect())
        .collect();
    for round in 0..120 {
        let which = rng.gen_range(0..names.len());
        let model = &mut models[which];
        if rng.gen_ratio(1, 12) {
            let len = rng.gen_range(0..=model.len() as u64 + 100);
            model.resize(len as usize, 0);
            for f in &files {
                f[which].truncate(len).unwrap();
            }
            continue;
        }
        let count = rng.gen_range(0..8);
        let mut bufs = Vec::new();
        for _ in 0..count {
            let size = if rng.gen_ratio(1, 6) {
                rng.gen_range(64 * 1024..300 * 1024)
            } else {
                rng.gen_range(0..700)
            };
            let offset = if rng.gen_bool(0.7) {
                model.len() as u64 // append
            } else {
                rng.gen_range(0..=model.len() as u64 + 5000)
            };
            let mut data = vec![0u8; size];
            rng.fill(&mut data[..]);
            apply(model, offset, &data);
            bufs.push((offset, data));
        }
        let batch: Vec<(u64, &[u8])> = bufs.iter().map(|(o, d)| (*o, &d[..])).collect();
        let sync = rng.gen_bool(0.3);
        for f in &files {
            f[which].write_batch(&batch, sync).unwrap();
        }
        if round % 10 == 0 {
            for f in &files {
                f[which].sync_data().unwrap();
            }
        }
    }
    for (s, f) in stores.iter().zip(&files) {
        for (i, name) in names.iter().enumerate() {
            assert_eq!(
                f[i].len().unwrap(),
                models[i].len() as u64,
                "{} {name}",
                s.kind()
            );
            assert!(
                read_all(&**s, name) == models[i],
                "{} {name} differs",
                s.kind()
            );
            // Random windows read through the same handle.
            for _ in 0..20 {
                if models[i].is_empty() {
                    break;
                }
                let a = rng.gen_range(0..models[i].len());
                let b = rng.gen_range(a..=models[i].len());
                let mut buf = vec![0u8; b - a];
                f[i].read_exact_at(&mut buf, a as u64).unwrap();
                assert!(buf == models[i][a..b], "{} window", s.kind());
            }
        }
        assert_eq!(s.list("").unwrap(), {
            let mut v: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            v.sort();
            v
        });
    }
}

#[test]
fn concurrent_threads_write_and_read_their_own_regions() {
    const THREADS: u64 = 8;
    const REGION: u64 = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    for s in backends(dir.path()) {
        let shared = s.open("shared", true).unwrap();
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let s = s.clone();
                let shared = shared.clone();
                scope.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(t);
                    let own = s.open(&format!("t/{t}"), true).unwrap();
                    let mut own_model = Vec::new();
                    let base = t * REGION;
                    let mut pos = 0u64;
                    while pos < REGION {
                        let n = rng.gen_range(1..16 * 1024).min(REGION - pos);
                        let mut data = vec![0u8; n as usize];
                        rng.fill(&mut data[..]);
                        let sync = rng.gen_bool(0.2);
                        shared.write_batch(&[(base + pos, &data)], sync).unwrap();
                        own.write_batch(&[(pos, &data)], sync).unwrap();
                        own_model.extend_from_slice(&data);
                        let mut back = vec![0u8; data.len()];
                        shared.read_exact_at(&mut back, base + pos).unwrap();
                        assert!(back == data);
                        pos += n;
                    }
                    let mut all = vec![0u8; REGION as usize];
                    own.read_exact_at(&mut all, 0).unwrap();
                    assert!(all == own_model, "{} thread {t}", s.kind());
                });
            }
        });
        assert_eq!(shared.len().unwrap(), THREADS * REGION, "{}", s.kind());
        for t in 0..THREADS {
            let own = read_all(&*s, &format!("t/{t}"));
            let mut part = vec![0u8; REGION as usize];
            shared.read_exact_at(&mut part, t * REGION).unwrap();
            assert!(part == own, "{} region {t}", s.kind());
        }
        assert_eq!(s.list("t/").unwrap().len(), THREADS as usize);
    }
}

#[test]
fn large_writes_and_batches_longer_than_a_ring() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut big = vec![0u8; 9 * 1024 * 1024 + 17];
    rng.fill(&mut big[..]);
    for s in backends(dir.path()) {
        let f = s.open("big", true).unwrap();
        f.write_batch(&[(0, &big)], true).unwrap();
        assert!(read_all(&*s, "big") == big, "{}", s.kind());
        // 1000 small overlapping writes in one batch: later ones win, in order.
        let g = s.open("many", true).unwrap();
        let mut model = Vec::new();
        let mut bufs = Vec::new();
        for i in 0..1000u64 {
            let off = i * 3;
            let data = vec![(i % 251) as u8; 5];
            apply(&mut model, off, &data);
            bufs.push((off, data));
        }
        let batch: Vec<(u64, &[u8])> = bufs.iter().map(|(o, d)| (*o, &d[..])).collect();
        g.write_batch(&batch, true).unwrap();
        assert!(read_all(&*s, "many") == model, "{}", s.kind());
        // Empty batches are fine, with and without sync.
        g.write_batch(&[], true).unwrap();
        g.write_batch(&[], false).unwrap();
        g.write_batch(&[(0, &[])], true).unwrap();
        assert_eq!(g.len().unwrap(), model.len() as u64);
    }
}

#[test]
fn misuse_gets_clear_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    for s in backends(dir.path()) {
        let k = s.kind();
        let f = s.open("d/f", true).unwrap();
        f.write_batch(&[(0, b"0123456789")], false).unwrap();
        let mut buf = [0u8; 4];
        let e = f.read_exact_at(&mut buf, 8).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{k}");
        let e = f.read_exact_at(&mut buf, 1 << 40).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{k}");
        let e = f.read_exact_at(&mut buf, u64::MAX - 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{k}");
        let e = f.write_batch(&[(u64::MAX - 2, b"xyz")], true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{k}");
        let e = f.truncate(u64::MAX).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{k}");
        // Nothing of the rejected batch was written.
        assert_eq!(read_all(&*s, "d/f"), b"0123456789", "{k}");
        let e = s.open("missing", false).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{k}");
        assert!(
            s.open("d", true).is_err(),
            "{k}: a directory opened as a file"
        );
        for bad in ["/abs", "../up", "a//b", "a/./b", ""] {
            let e = s.open(bad, true).err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{k} {bad}");
            assert_eq!(
                s.rename("d/f", bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        assert_eq!(
            s.rename("nope", "d/g").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // The handle outlives its name.
        s.remove("d/f").unwrap();
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"0123", "{k}");
        f.write_batch(&[(10, b"!")], true).unwrap();
        assert_eq!(f.len().unwrap(), 11, "{k}");
    }
}

#[test]
fn renames_replace_and_list_is_sorted() {
    let dir = tempfile::tempdir().unwrap();
    for s in backends(dir.path()) {
        let k = s.kind();
        for name in ["b/2", "a/1", "b/10", "c", "b/1"] {
            s.open(name, true)
                .unwrap()
                .write_batch(&[(0, name.as_bytes())], true)
                .unwrap();
        }
        s.rename("b/1", "b/2").unwrap();
        s.sync_dir("b").unwrap();
        s.sync_dir("").unwrap();
        assert_eq!(read_all(&*s, "b/2"), b"b/1", "{k}");
        assert_eq!(s.list("").unwrap(), vec!["a/1", "b/10", "b/2", "c"], "{k}");
        assert_eq!(s.list("b/").unwrap(), vec!["b/10", "b/2"], "{k}");
        assert_eq!(s.list("b/1").unwrap(), vec!["b/10"], "{k}");
        s.rename("c", "x/y/c").unwrap();
        assert_eq!(s.list("x").unwrap(), vec!["x/y/c"], "{k}");
    }
}

/// Env var that makes the test below run its child part.
const FSIZE_CHILD_ENV: &str = "SKAB_IO_TEST_FSIZE_CHILD";

/// A write that crosses RLIMIT_FSIZE is cut short by the kernel and the rest fails with
/// EFBIG: the backends store the prefix, resubmit the remainder, and return the error
/// (no panic, no success). Runs in a child process so the limit touches no other test.
#[test]
fn short_write_at_file_size_limit_returns_the_error() {
    const LIMIT: u64 = 100_000;
    if let Ok(dir) = std::env::var(FSIZE_CHILD_ENV) {
        // SAFETY: plain libc calls on this (child) process; no Rust state involved.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
        }
        let mut checked = 0;
        for s in backends(Path::new(&dir)) {
            if s.kind() == "memory" {
                continue;
            }
            let f = s.open("capped", true).unwrap();
            let a = vec![1u8; 60_000];
            let b = vec![2u8; 60_000];
            let e = f.write_batch(&[(0, &a), (60_000, &b)], true).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{}: {e}", s.kind());
            assert_eq!(f.len().unwrap(), LIMIT, "{}", s.kind());
            let got = read_all(&*s, "capped");
            assert!(got[..60_000].iter().all(|&x| x == 1) && got[60_000..].iter().all(|&x| x == 2));
            // Under the limit everything works again.
            f.write_batch(&[(10, b"ok")], true).unwrap();
            checked += 1;
            println!("FSIZE-CHECKED {}", s.kind());
        }
        assert!(checked >= 1);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "short_write_at_file_size_limit_returns_the_error",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FSIZE_CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("FSIZE-CHECKED std"), "{stdout}");
    if uring(&dir.path().join("probe")).is_some() {
        assert!(stdout.contains("FSIZE-CHECKED io_uring"), "{stdout}");
    }
}
