//! Per-login CPU cost: argon2id verify vs verified-credential cache hit vs app-token verify.

use criterion::{criterion_group, criterion_main, Criterion};
use skab_server::auth::cache::CredentialCache;
use skab_server::auth::{password, token};
use skab_server::users::{TenantName, UserDb, UserName};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn per_login(c: &mut Criterion) {
    let t = TenantName::new("skole").unwrap();
    let u = UserName::new("anna").unwrap();
    let phc = password::hash_password("hemmelig-kodeord").unwrap();

    let mut g = c.benchmark_group("login");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    // Anchor: a full argon2id verification with the standard cost (m=19 MiB, t=2, p=1).
    g.bench_function("argon2id_verify", |b| {
        b.iter(|| password::verify_password(black_box(&phc), black_box("hemmelig-kodeord")))
    });
    g.finish();

    let cache = CredentialCache::new(Duration::from_secs(300), 100_000);
    let now = Instant::now();
    cache.insert(&t, &u, "hemmelig-kodeord", 1, now);
    c.bench_function("login/cached_verify", |b| {
        b.iter(|| cache.check(&t, &u, black_box("hemmelig-kodeord"), 1, now))
    });

    let dir = tempfile::tempdir().unwrap();
    let db = UserDb::open(dir.path()).unwrap();
    db.add_user(&t, &u, &phc).unwrap();
    let (_id, secret) = db.create_token(&t, &u, "bench").unwrap();
    let key_bytes = std::fs::read(dir.path().join("users/token.key")).unwrap();
    let key: [u8; 32] = key_bytes.try_into().unwrap();
    c.bench_function("login/app_token_verify", |b| {
        b.iter(|| {
            let raw = token::parse(black_box(&secret)).unwrap();
            black_box(token::hash(&key, &raw))
        })
    });
}

criterion_group!(benches, per_login);
criterion_main!(benches);
