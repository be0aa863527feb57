//! Import rate: generates a CSV of PHC hashes (`IMPORT_ROWS`, default 1,000,000), imports it
//! into a fresh data dir, then reopens the database (the server's start-up load). With
//! `SEALED=1` the data dir has encryption at rest: the user records are sealed with their
//! tenants' keys (docs/security.md), so the figures show what sealing costs.
//!
//! `cargo bench -p skab-server --bench import_rate` (`SEALED=1 cargo bench ...`)

use skab_server::users::password;
use skab_server::users::{import::import_csv, UserDb};
use std::io::Write;
use std::time::Instant;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` asks for the list of benchmarks; this one has no cases.
        return;
    }
    let rows: usize = std::env::var("IMPORT_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    // Real argon2id hashes with the standard cost, each with its own salt; cycled over rows
    // (import checks their format and costs but does not compute them).
    let hashes: Vec<String> = (0..16)
        .map(|i| password::hash_password(&format!("pw{i}")).expect("hash"))
        .collect();
    let csv = dir.path().join("users.csv");
    let t0 = Instant::now();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).expect("csv"));
        writeln!(f, "user,tenant,password").expect("write");
        for i in 0..rows {
            writeln!(
                f,
                "elev{i},skole-{},\"{}\"",
                i % 1300,
                hashes[i % hashes.len()]
            )
            .expect("write");
        }
    }
    let csv_bytes = std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0);
    println!(
        "generated {rows} rows ({:.1} MiB) in {:.2} s",
        csv_bytes as f64 / 1048576.0,
        t0.elapsed().as_secs_f64()
    );

    if std::env::var("SEALED").is_ok_and(|v| v == "1") {
        let keys = skab_engine::crypt::KeyStore::open(
            &dir.path().join("keys"),
            skab_engine::crypt::MasterKey::from_bytes(&[7; 32]),
            true,
        )
        .expect("key store");
        skab_server::crypt::register_keys(dir.path(), std::sync::Arc::new(keys));
        println!("sealed: user records sealed with their tenants' keys");
    }
    let db = UserDb::open(dir.path()).expect("open");
    let t1 = Instant::now();
    let file = std::fs::File::open(&csv).expect("open csv");
    let report = import_csv(&db, std::io::BufReader::with_capacity(1 << 20, file)).expect("import");
    let import_s = t1.elapsed().as_secs_f64();
    println!(
        "imported {} users in {import_s:.2} s ({:.0} rows/s)",
        report.users,
        report.users as f64 / import_s
    );
    drop(db);
    let log_bytes = std::fs::metadata(dir.path().join("users/users.log"))
        .map(|m| m.len())
        .unwrap_or(0);
    let log = std::fs::read(dir.path().join("users/users.log")).unwrap_or_default();
    println!(
        "user names in the clear in the log: {}",
        log.windows(6).any(|w| w == b"elev12")
    );
    drop(log);
    let t2 = Instant::now();
    let db = UserDb::open(dir.path()).expect("reopen");
    println!(
        "reopened ({} users, log {:.1} MiB) in {:.2} s",
        db.user_count(),
        log_bytes as f64 / 1048576.0,
        t2.elapsed().as_secs_f64()
    );
}
