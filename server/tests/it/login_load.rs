//! Password logins under load (issue 14, part 2), against the real `skab` on loopback.
//!
//! At 08:00 the argon2 work of everyone's first login starved the polls of sessions already
//! logged in, and five minutes later the whole cohort's cached credentials expired at once.
//! These tests pin the behaviour that fixes it, without timing anything: with the hashing
//! queue allowed no wait, a burst of uncached password logins is partly refused with `503` and
//! `Retry-After` while cached passwords, app tokens and unauthenticated `OPTIONS` in the same
//! burst are all answered; `/metrics` counts the refusals; a credential in use outlives the
//! cache TTL (sliding expiry, re-verified in the background before its max age); the cache
//! holds at most its configured number of users; `skab user import` hashes on every core and
//! says so.

use crate::common;

use common::*;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Users with their own (standard-cost) plaintext password, imported as CSV.
const COLD_USERS: usize = 24;

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn metrics(server: &Server) -> String {
    let r = server.anonymous().get("/metrics");
    assert_eq!(r.status, 200);
    r.text()
}

fn import(data: &Path, csv: &str) -> String {
    let file = data.parent().unwrap().join("users.csv");
    std::fs::write(&file, csv).unwrap();
    let (ok, out) = skab(
        &[
            "user",
            "import",
            "--data-dir",
            data.to_str().unwrap(),
            "--csv",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "import failed: {out}");
    out
}

fn token_for(data: &Path, tenant: &str, user: &str) -> String {
    let (ok, out) = skab(
        &[
            "token",
            "create",
            "--data-dir",
            data.to_str().unwrap(),
            "--tenant",
            tenant,
            "--user",
            user,
            "--label",
            "sync",
        ],
        None,
    );
    assert!(ok, "token create failed: {out}");
    out.lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_string()
}

fn cold_password(i: usize) -> String {
    format!("cold password {i}")
}

#[test]
fn a_full_hashing_queue_refuses_password_logins_while_cached_and_token_requests_pass() {
    let out = Arc::new(std::sync::Mutex::new(String::new()));
    let token = Arc::new(std::sync::Mutex::new(String::new()));
    let (o2, t2) = (out.clone(), token.clone());
    let mut csv = String::from("tenant,user,password\n");
    csv.push_str(&format!("{TENANT},{USER},{PASSWORD}\n"));
    for i in 0..COLD_USERS {
        csv.push_str(&format!("{TENANT},cold{i},{}\n", cold_password(i)));
    }
    // One hashing thread and no wait allowed: a verification that would queue is refused.
    let server = Server::start_opts(Opts {
        before_start: Some(Arc::new(move |data: &Path| {
            std::fs::create_dir_all(data).unwrap();
            *o2.lock().unwrap() = import(data, &csv);
            *t2.lock().unwrap() = token_for(data, TENANT, USER);
        })),
        config: Some(
            "[http]\ncors_origins = [\"https://app.example\"]\n\
             [auth]\nhash_concurrency = 1\nhash_wait_max_ms = 0\n"
                .into(),
        ),
        ..Opts::default()
    });
    let imported = out.lock().unwrap().clone();
    assert!(
        imported.contains(&format!("imported {} users", COLD_USERS + 1)),
        "{imported}"
    );
    assert!(
        imported.contains("hashing: ") && imported.contains("threads"),
        "the import tells how it hashed: {imported}"
    );
    let token = token.lock().unwrap().clone();

    // Warm the cache for the polling user.
    let cached = server.client();
    assert_eq!(cached.propfind(&dav(""), "0").status, 207);
    let tok = server.client_as(&format!("{USER}@{TENANT}"), &token);
    let bearer = Http {
        port: server.port,
        auth: Some(format!("Bearer {token}")),
    };
    let anon = server.anonymous();
    let hashes_before = metric(&metrics(&server), "skab_login_password_hashes_total").unwrap();

    // The burst: every uncached login at once, with cached, token and anonymous requests.
    let n = COLD_USERS + 3 * 8;
    let barrier = Arc::new(Barrier::new(n));
    let mut handles = Vec::new();
    for k in 0..n {
        let barrier = barrier.clone();
        let (cached, tok, bearer, anon) =
            (cached.clone(), tok.clone(), bearer.clone(), anon.clone());
        let cold = server.client_as(&format!("cold{k}@{TENANT}"), &cold_password(k));
        handles.push(std::thread::spawn(move || {
            barrier.wait();
            if k < COLD_USERS {
                (
                    "cold",
                    cold.propfind(&format!("/dav/{TENANT}/cold{k}/"), "0"),
                )
            } else {
                match k % 4 {
                    0 => ("cached", cached.propfind(&dav(""), "0")),
                    1 => ("token", tok.propfind(&dav(""), "0")),
                    2 => ("bearer", bearer.propfind(&dav(""), "0")),
                    // A browser's CORS preflight: no credentials.
                    _ => (
                        "options",
                        anon.send(
                            "OPTIONS",
                            &dav(""),
                            &[
                                ("Origin", "https://app.example"),
                                ("Access-Control-Request-Method", "PROPFIND"),
                            ],
                            b"",
                        ),
                    ),
                }
            }
        }));
    }
    let mut refused = Vec::new();
    let mut admitted = 0;
    for (k, h) in handles.into_iter().enumerate() {
        let (kind, r) = h.join().unwrap();
        match kind {
            "cold" => match r.status {
                207 => admitted += 1,
                503 => {
                    let after: u64 = r
                        .header("retry-after")
                        .expect("a 503 says when to come back")
                        .parse()
                        .unwrap();
                    assert!((1..=60).contains(&after), "Retry-After {after}");
                    refused.push(k);
                }
                s => panic!("cold login {k}: status {s}"),
            },
            "options" => assert_eq!(r.status, 204, "preflight {k}"),
            _ => assert_eq!(r.status, 207, "{kind} request {k} in the burst"),
        }
    }
    assert!(admitted >= 1, "the first login gets the thread");
    assert!(!refused.is_empty(), "a burst of {COLD_USERS} on one thread");
    let m = metrics(&server);
    assert_eq!(
        metric(&m, "skab_login_hash_refused_total").unwrap(),
        refused.len() as f64,
        "every 503 is counted"
    );
    assert_eq!(metric(&m, "skab_login_hash_threads").unwrap(), 1.0);
    let waits = metric(&m, "skab_login_hash_wait_seconds_count").unwrap();
    assert!(
        waits >= admitted as f64,
        "{waits} waits for {admitted} runs"
    );
    // Refused logins cost no argon2: only the admitted ones ran.
    let hashes = metric(&m, "skab_login_password_hashes_total").unwrap() - hashes_before;
    assert_eq!(hashes, admitted as f64);

    // A refusal is not a failed login: coming back one at a time, every one gets in.
    for k in refused {
        let c = server.client_as(&format!("cold{k}@{TENANT}"), &cold_password(k));
        let home = format!("/dav/{TENANT}/cold{k}/");
        assert_eq!(c.propfind(&home, "0").status, 207, "cold{k} again");
    }
}

#[test]
fn a_credential_in_use_outlives_the_ttl_and_the_cache_is_bounded() {
    // Cheap hashes (imported as PHC strings) so that a hundred logins cost nothing.
    let mut csv = String::from("tenant,user,password\n");
    for i in 0..100 {
        let phc = skab_server::users::password::hash_with(&format!("pw{i}"), 64, 1, 1).unwrap();
        csv.push_str(&format!("{TENANT},u{i},\"{phc}\"\n"));
    }
    let server = Server::start_opts(Opts {
        before_start: Some(Arc::new(move |data: &Path| {
            std::fs::create_dir_all(data).unwrap();
            import(data, &csv);
        })),
        config: Some(
            "[auth]\ncredential_cache_ttl_s = 4\ncredential_cache_max_age_s = 8\ncredential_cache_entries = 16\n"
                .into(),
        ),
        ..Opts::default()
    });
    let hashes = |s: &Server| metric(&metrics(s), "skab_login_password_hashes_total").unwrap();
    let misses =
        |s: &Server| metric(&metrics(s), "skab_login_credential_cache_misses_total").unwrap();

    // Bounded: a hundred users through a cache of 16.
    for i in 0..100 {
        let c = server.client_as(&format!("u{i}@{TENANT}"), &format!("pw{i}"));
        assert_eq!(c.propfind(&format!("/dav/{TENANT}/u{i}/"), "0").status, 207);
    }
    let held = metric(&metrics(&server), "skab_login_credential_cache_entries").unwrap();
    assert!((1.0..=16.0).contains(&held), "{held} users held");

    // In use (a request a second): answered from the cache for 3 x the TTL, past the max age,
    // because it is re-verified in the background (nobody waits for it) before that.
    let c = server.client_as(&format!("u0@{TENANT}"), "pw0");
    let home = format!("/dav/{TENANT}/u0/");
    assert_eq!(c.propfind(&home, "0").status, 207);
    let (misses0, hashes0) = (misses(&server), hashes(&server));
    for _ in 0..12 {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(c.propfind(&home, "0").status, 207);
    }
    assert_eq!(
        misses(&server),
        misses0,
        "no request of the user in use waited for argon2"
    );
    let m = metrics(&server);
    let reverified = metric(&m, "skab_login_hash_reverify_queued_total").unwrap();
    assert!(
        reverified >= 1.0,
        "re-verified in the background before the max age"
    );
    // Each queued re-verification runs one hash; the last may still be running.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hashes(&server) < hashes0 + reverified && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(hashes(&server), hashes0 + reverified);

    // Unused for longer than the TTL: verified again on the next request.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(c.propfind(&home, "0").status, 207);
    assert_eq!(misses(&server), misses0 + 1.0);
}
