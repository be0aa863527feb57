//! Per-login CPU cost: argon2id verify vs verified-credential cache hit vs app-token verify,
//! and a Bearer JWT (HS256, ES256) through the authenticator with and without the
//! verified-JWT cache.

use criterion::{criterion_group, criterion_main, Criterion};
use skab_server::auth::cache::CredentialCache;
use skab_server::users::{password, token};
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

    let cache = CredentialCache::new(
        Duration::from_secs(300),
        Duration::from_secs(8 * 3600),
        100_000,
    );
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

/// `Authorization: Bearer` through `Authenticator::authenticate`, per algorithm, with the
/// verified-JWT cache (the default) and without it (`credential_cache_entries = 0`).
fn per_bearer(c: &mut Criterion) {
    use skab_server::auth::Authenticator;
    use skab_server::config::{AuthConfig, JwtAlgorithm, JwtIssuerConfig};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(UserDb::open(dir.path()).unwrap());
    let phc = password::hash_with("unused", 64, 1, 1).unwrap();
    db.add_user(
        &TenantName::new("skole").unwrap(),
        &UserName::new("anna").unwrap(),
        &phc,
    )
    .unwrap();
    let ec = rcgen::KeyPair::generate().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"iss": "https://idp.example", "aud": "skab",
        "exp": now + 3600, "preferred_username": "anna@skole"});
    let cases = [
        (
            "hs256",
            JwtIssuerConfig {
                issuer: "https://idp.example".into(),
                audience: "skab".into(),
                secret: Some("bench-secret".into()),
                ..Default::default()
            },
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(b"bench-secret"),
            )
            .unwrap(),
        ),
        (
            "es256",
            JwtIssuerConfig {
                issuer: "https://idp.example".into(),
                audience: "skab".into(),
                algorithm: JwtAlgorithm::ES256,
                public_key_pem: Some(ec.public_key_pem()),
                ..Default::default()
            },
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
                &claims,
                &jsonwebtoken::EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap(),
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    for (alg, issuer, token) in cases {
        let header = format!("Bearer {token}");
        for (label, entries) in [("cached", 100_000), ("uncached", 0)] {
            let cfg = AuthConfig {
                jwt: vec![issuer.clone()],
                credential_cache_entries: entries,
                ..Default::default()
            };
            let a = Authenticator::new(db.clone(), &cfg).unwrap();
            rt.block_on(a.authenticate(Some(&header), peer)).unwrap();
            c.bench_function(&format!("bearer/{alg}_{label}"), |b| {
                b.iter(|| rt.block_on(a.authenticate(Some(black_box(&header)), peer)))
            });
        }
    }
}

criterion_group!(benches, per_login, per_bearer);
criterion_main!(benches);
