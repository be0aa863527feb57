//! argon2id cost per core: the time of one verification with the standard parameters on one
//! thread, and verifications per second with 1..=N threads at once (N = the cores), which is
//! the most password logins per second the hashing pool can give per core. Also the memory
//! of the verified-credential cache per user (RSS growth while filling it).
//!
//! `cargo bench -p skab-server --bench hash_rate` (`HASH_RATE_SECS` per step, default 3;
//! `CACHE_USERS`, default 1,000,000). Figures: docs/benchmarks.md, "Password logins".

use skab_server::auth::cache::CredentialCache;
use skab_server::users::password;
use skab_server::users::{TenantName, UserName};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = std::env::var("HASH_RATE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let phc = password::hash_password("hemmelig-kodeord").expect("hash");
    // One thread: the time of one verification.
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        assert!(password::verify_password(&phc, "hemmelig-kodeord").unwrap());
        n += 1;
    }
    let one = t0.elapsed() / n as u32;
    println!(
        "argon2id m=19456 t=2 p=1 verify, one thread: {:.2} ms ({n} runs)",
        one.as_secs_f64() * 1e3
    );
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    for threads in 1..=cores {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (stop, done, phc) = (stop.clone(), done.clone(), phc.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = password::verify_password(&phc, "hemmelig-kodeord");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.join();
        }
        let rate = done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
        println!(
            "{threads} thread(s): {rate:.1} verifications/s, {:.1} per thread",
            rate / threads as f64
        );
    }
    // The credential cache's memory per user.
    let users: usize = std::env::var("CACHE_USERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let cache = CredentialCache::new(
        Duration::from_secs(300),
        Duration::from_secs(8 * 3600),
        users,
    );
    let tenant = TenantName::new("skole").unwrap();
    let names: Vec<UserName> = (0..users)
        .map(|i| UserName::new(&format!("u{i}")).unwrap())
        .collect();
    let before = rss_bytes();
    let now = Instant::now();
    let t0 = Instant::now();
    for u in &names {
        cache.insert(&tenant, u, "hemmelig-kodeord", 1, now);
    }
    let took = t0.elapsed();
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "credential cache: {} users held of {users} inserted in {:.2} s; RSS +{:.1} MB, {:.0} bytes per user held",
        cache.len(),
        took.as_secs_f64(),
        grown as f64 / 1e6,
        grown as f64 / cache.len().max(1) as f64
    );
}
