//! Tests of the authenticator's flows over a real user database in a temp dir.

use super::*;
use crate::config::AuthConfig;

fn t(s: &str) -> TenantName {
    TenantName::new(s).unwrap()
}
fn u(s: &str) -> UserName {
    UserName::new(s).unwrap()
}
fn cheap(pw: &str) -> String {
    password::hash_with(pw, 64, 1, 1).unwrap()
}
fn basic(login: &str, pw: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{login}:{pw}")))
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn setup(cfg: AuthConfig) -> (tempfile::TempDir, Arc<UserDb>, Authenticator) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(UserDb::open(dir.path()).unwrap());
    db.add_user(&t("skole"), &u("anna"), &cheap("pw-anna"))
        .unwrap();
    db.add_user(&t("skole"), &u("bo"), &cheap("pw-bo")).unwrap();
    let auth = Authenticator::new(db.clone(), &cfg).unwrap();
    (dir, db, auth)
}

#[tokio::test]
async fn password_then_cached_then_wrong() {
    let (_d, _db, a) = setup(AuthConfig::default());
    let peer = ip("10.0.0.1");
    let p = a
        .authenticate(Some(&basic("anna@skole", "pw-anna")), peer)
        .await
        .unwrap();
    assert_eq!(p.via, AuthVia::Password);
    assert_eq!((p.tenant.as_str(), p.user.as_str()), ("skole", "anna"));
    let p = a
        .authenticate(Some(&basic("Anna@Skole", "pw-anna")), peer)
        .await
        .unwrap();
    assert_eq!(p.via, AuthVia::Cached);
    for (login, pw) in [
        ("anna@skole", "pw-bo"),
        ("anna@skole", ""),
        ("nobody@skole", "pw-anna"),
        ("anna@other", "pw-anna"),
        ("anna", "pw-anna"),
    ] {
        assert_eq!(
            a.authenticate(Some(&basic(login, pw)), peer).await,
            Err(AuthError::BadCredentials),
            "{login}:{pw}"
        );
    }
    assert_eq!(a.authenticate(None, peer).await, Err(AuthError::Missing));
    for h in ["Basic !!!", "Basic", "Digest abc", "Basic Zm9v"] {
        let e = a.authenticate(Some(h), peer).await.unwrap_err();
        assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED, "{h}");
    }
    assert!(a.challenges()[0].starts_with("Basic realm=\"skab\""));
}

#[tokio::test]
async fn change_from_another_process_invalidates_cache() {
    let (dir, _db, a) = setup(AuthConfig::default());
    let peer = ip("10.0.0.1");
    let hdr = basic("anna@skole", "pw-anna");
    a.authenticate(Some(&hdr), peer).await.unwrap();
    assert_eq!(
        a.authenticate(Some(&hdr), peer).await.unwrap().via,
        AuthVia::Cached
    );
    // The CLI, a separate handle on the same files, changes the password.
    let cli = UserDb::open(dir.path()).unwrap();
    cli.set_password(&t("skole"), &u("anna"), &cheap("new-pw"))
        .unwrap();
    a.refresh_now().await.unwrap();
    assert_eq!(
        a.authenticate(Some(&hdr), peer).await,
        Err(AuthError::BadCredentials)
    );
    let p = a
        .authenticate(Some(&basic("anna@skole", "new-pw")), peer)
        .await
        .unwrap();
    assert_eq!(p.via, AuthVia::Password);
    // Disabling wins over the cache.
    cli.set_disabled(&t("skole"), &u("anna"), true).unwrap();
    a.refresh_now().await.unwrap();
    assert_eq!(
        a.authenticate(Some(&basic("anna@skole", "new-pw")), peer)
            .await,
        Err(AuthError::BadCredentials)
    );
}

#[tokio::test]
async fn app_tokens_basic_and_bearer_and_revocation() {
    let (_d, db, a) = setup(AuthConfig::default());
    let peer = ip("10.0.0.2");
    let (id, secret) = db.create_token(&t("skole"), &u("anna"), "phone").unwrap();
    let p = a
        .authenticate(Some(&basic("anna@skole", &secret)), peer)
        .await
        .unwrap();
    assert_eq!(p.via, AuthVia::AppToken);
    let p = a
        .authenticate(Some(&format!("Bearer {secret}")), peer)
        .await
        .unwrap();
    assert_eq!((p.user.as_str(), p.via), ("anna", AuthVia::AppToken));
    // Anna's token does not log in as Bo.
    assert!(a
        .authenticate(Some(&basic("bo@skole", &secret)), peer)
        .await
        .is_err());
    // Last use is recorded.
    assert_eq!(a.flush_token_use().await.unwrap(), 1);
    assert!(db.tokens(&t("skole"), &u("anna")).unwrap()[0]
        .last_used
        .is_some());
    db.revoke_token(&t("skole"), &u("anna"), id).unwrap();
    assert!(a
        .authenticate(Some(&basic("anna@skole", &secret)), peer)
        .await
        .is_err());
    assert!(a
        .authenticate(Some(&format!("Bearer {secret}")), peer)
        .await
        .is_err());
}

#[tokio::test]
async fn jwt_bearer_maps_to_existing_users_only() {
    let mut cfg = AuthConfig::default();
    cfg.jwt.push(jwt::tests::hs_issuer("k"));
    let (_d, db, a) = setup(cfg);
    assert_eq!(a.challenges().len(), 2);
    let peer = ip("10.0.0.3");
    let claims = |name: &str| {
        serde_json::json!({"iss": "https://idp.example", "aud": "skab",
            "exp": now_unix() + 600, "preferred_username": name})
    };
    let tok = jwt::tests::hs_token("k", claims("bo@skole"));
    let p = a
        .authenticate(Some(&format!("Bearer {tok}")), peer)
        .await
        .unwrap();
    assert_eq!((p.user.as_str(), p.via), ("bo", AuthVia::Jwt));
    let tok = jwt::tests::hs_token("k", claims("ghost@skole"));
    assert_eq!(
        a.authenticate(Some(&format!("Bearer {tok}")), peer).await,
        Err(AuthError::BadCredentials)
    );
    let tok = jwt::tests::hs_token("wrong", claims("bo@skole"));
    assert!(a
        .authenticate(Some(&format!("Bearer {tok}")), peer)
        .await
        .is_err());
    db.set_disabled(&t("skole"), &u("bo"), true).unwrap();
    let tok = jwt::tests::hs_token("k", claims("bo@skole"));
    assert!(a
        .authenticate(Some(&format!("Bearer {tok}")), peer)
        .await
        .is_err());
}

#[tokio::test]
async fn a_verified_jwt_is_checked_once_until_it_expires() {
    let mut cfg = AuthConfig::default();
    cfg.jwt.push(jwt::tests::hs_issuer("k"));
    let (_d, db, a) = setup(cfg);
    let peer = ip("10.0.0.7");
    let bearer = |secret: &str, exp_in: u64| {
        let claims = serde_json::json!({"iss": "https://idp.example", "aud": "skab",
            "exp": now_unix() + exp_in, "preferred_username": "bo@skole"});
        format!("Bearer {}", jwt::tests::hs_token(secret, claims))
    };
    let long = bearer("k", 600);
    for _ in 0..5 {
        let p = a.authenticate(Some(&long), peer).await.unwrap();
        assert_eq!((p.user.as_str(), p.via), ("bo", AuthVia::Jwt));
    }
    assert_eq!(
        a.jwt_verifications(),
        1,
        "one signature check for five requests"
    );
    // Another signature is another token: checked, and refused.
    // (A character well inside the signature, so that no unused trailing bits are hit.)
    let at = long.len() - 10;
    let swap = if &long[at..at + 1] == "A" { "B" } else { "A" };
    let forged = format!("{}{swap}{}", &long[..at], &long[at + 1..]);
    assert!(a.authenticate(Some(&forged), peer).await.is_err());
    assert!(a
        .authenticate(Some(&bearer("other", 600)), peer)
        .await
        .is_err());
    assert_eq!(a.jwt_verifications(), 3);
    // Remembered only until `exp`: afterwards it is checked again (and passes within the
    // leeway the check allows).
    let short = bearer("k", 1);
    a.authenticate(Some(&short), peer).await.unwrap();
    assert_eq!(a.jwt_verifications(), 4);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.authenticate(Some(&short), peer).await.unwrap();
    assert_eq!(a.jwt_verifications(), 5);
    // The cache never overrides the user database: a disabled user is refused at once.
    db.set_disabled(&t("skole"), &u("bo"), true).unwrap();
    a.refresh_now().await.unwrap();
    assert_eq!(
        a.authenticate(Some(&long), peer).await,
        Err(AuthError::BadCredentials)
    );
    assert_eq!(
        a.jwt_verifications(),
        5,
        "answered from the cache, refused by the user"
    );
}

#[tokio::test]
async fn typos_throttle_the_account_not_the_classmates() {
    let (_d, _db, a) = setup(AuthConfig::default());
    let nat = ip("192.0.2.50");
    // Bo logs in fine first (his client then keeps using the cache).
    a.authenticate(Some(&basic("bo@skole", "pw-bo")), nat)
        .await
        .unwrap();
    let free = AuthConfig::default().account_failures_free;
    for _ in 0..=free {
        assert_eq!(
            a.authenticate(Some(&basic("anna@skole", "typo")), nat)
                .await,
            Err(AuthError::BadCredentials)
        );
    }
    let e = a
        .authenticate(Some(&basic("anna@skole", "pw-anna")), nat)
        .await
        .unwrap_err();
    assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert!(e.retry_after_secs().unwrap() >= 1);
    // Bo, behind the same address, is not affected.
    assert_eq!(
        a.authenticate(Some(&basic("bo@skole", "pw-bo")), nat)
            .await
            .unwrap()
            .via,
        AuthVia::Cached
    );
    let (_d2, db2, a2) = setup(AuthConfig::default());
    db2.add_user(&t("skole"), &u("carl"), &cheap("pw-carl"))
        .unwrap();
    a2.refresh_now().await.unwrap();
    for _ in 0..=free {
        let _ = a2
            .authenticate(Some(&basic("anna@skole", "typo")), nat)
            .await;
    }
    assert_eq!(
        a2.authenticate(Some(&basic("carl@skole", "pw-carl")), nat)
            .await
            .unwrap()
            .via,
        AuthVia::Password
    );
}

#[tokio::test]
async fn cached_password_survives_an_attack_on_the_account() {
    let (_d, _db, a) = setup(AuthConfig::default());
    let good = ip("10.1.1.1");
    let attacker = ip("203.0.113.9");
    a.authenticate(Some(&basic("anna@skole", "pw-anna")), good)
        .await
        .unwrap();
    for _ in 0..10 {
        let _ = a
            .authenticate(Some(&basic("anna@skole", "guess")), attacker)
            .await;
    }
    assert!(a
        .authenticate(Some(&basic("anna@skole", "guess2")), attacker)
        .await
        .is_err());
    assert_eq!(
        a.authenticate(Some(&basic("anna@skole", "pw-anna")), good)
            .await
            .unwrap()
            .via,
        AuthVia::Cached
    );
}

fn jwt_for(secret: &str, name: &str, exp_in: i64) -> String {
    let claims = serde_json::json!({"iss": "https://idp.example", "aud": "skab",
        "exp": now_unix() as i64 + exp_in, "preferred_username": name});
    format!("Bearer {}", jwt::tests::hs_token(secret, claims))
}

/// A small source bucket, so that a few failures empty it.
fn small_bucket() -> AuthConfig {
    let mut cfg = AuthConfig::default();
    cfg.jwt.push(jwt::tests::hs_issuer("k"));
    cfg.source_failures_burst = 5;
    cfg.source_failures_per_minute = 1;
    cfg
}

#[tokio::test]
async fn expired_jwts_and_revoked_tokens_by_the_hundred_block_no_one() {
    let (_d, db, a) = setup(small_bucket());
    // Everyone behind one address (a proxy that does not forward the client's).
    let proxy = ip("192.0.2.80");
    let (id, secret) = db.create_token(&t("skole"), &u("anna"), "laptop").unwrap();
    db.revoke_token(&t("skole"), &u("anna"), id).unwrap();
    a.refresh_now().await.unwrap();
    for i in 0..300 {
        let expired = jwt_for("k", "bo@skole", -3600 - i);
        assert_eq!(
            a.authenticate(Some(&expired), proxy).await,
            Err(AuthError::BadCredentials),
            "an expired token is a 401: the client fetches a new one"
        );
        assert_eq!(
            a.authenticate(Some(&format!("Bearer {secret}")), proxy)
                .await,
            Err(AuthError::BadCredentials)
        );
    }
    // The same revoked token as an app password over Basic (what sync clients send).
    for _ in 0..300 {
        assert_eq!(
            a.authenticate(Some(&basic("anna@skole", &secret)), proxy)
                .await,
            Err(AuthError::BadCredentials)
        );
    }
    assert_eq!(a.argon2_runs(), 0, "a token is not a password to hash");
    assert!(
        a.throttle.check_source(proxy, Instant::now()).is_ok(),
        "nothing guessed, nothing counted"
    );
    assert!(a
        .throttle
        .check_account("anna@skole", Instant::now())
        .is_ok());
    let p = a
        .authenticate(Some(&jwt_for("k", "bo@skole", 600)), proxy)
        .await
        .unwrap();
    assert_eq!(p.via, AuthVia::Jwt);
    let p = a
        .authenticate(Some(&basic("anna@skole", "pw-anna")), proxy)
        .await
        .unwrap();
    assert_eq!(p.via, AuthVia::Password);
}

#[tokio::test]
async fn forged_jwts_empty_the_bucket_but_valid_tokens_still_pass() {
    let (_d, db, a) = setup(small_bucket());
    let src = ip("198.51.100.66");
    let (_, secret) = db.create_token(&t("skole"), &u("bo"), "phone").unwrap();
    a.refresh_now().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let forged = jwt_for("guess", "bo@skole", 600);
        statuses.push(
            a.authenticate(Some(&forged), src)
                .await
                .unwrap_err()
                .status(),
        );
    }
    assert_eq!(statuses[0], http::StatusCode::UNAUTHORIZED);
    assert_eq!(
        statuses[7],
        http::StatusCode::TOO_MANY_REQUESTS,
        "forgeries count: {statuses:?}"
    );
    assert!(a.throttle.check_source(src, Instant::now()).is_err());
    // The bucket is empty, and valid credentials are not asked about it.
    let p = a
        .authenticate(Some(&jwt_for("k", "bo@skole", 600)), src)
        .await
        .unwrap();
    assert_eq!(p.via, AuthVia::Jwt);
    let p = a
        .authenticate(Some(&format!("Bearer {secret}")), src)
        .await
        .unwrap();
    assert_eq!(p.via, AuthVia::AppToken);
}

#[tokio::test]
async fn a_throttled_source_logs_in_through_the_penalty_lane() {
    let (_d, db, a) = setup(small_bucket());
    for i in 0..8 {
        db.add_user(&t("skole"), &u(&format!("p{i}")), &cheap("pw"))
            .unwrap();
    }
    a.refresh_now().await.unwrap();
    let src = ip("203.0.113.40");
    // Wrong passwords for many accounts empty the source's bucket.
    for i in 0..6 {
        let _ = a
            .authenticate(Some(&basic(&format!("p{i}@skole"), "wrong")), src)
            .await;
    }
    assert!(a.throttle.check_source(src, Instant::now()).is_err());
    // A valid password from there is not refused: it is checked in the penalty lane.
    let p = a
        .authenticate(Some(&basic("anna@skole", "pw-anna")), src)
        .await
        .unwrap();
    assert_eq!(p.via, AuthVia::Password);
    // A wrong one is a 401 (and counted), not a free pass.
    assert_eq!(
        a.authenticate(Some(&basic("p7@skole", "wrong")), src).await,
        Err(AuthError::BadCredentials)
    );
    // Another source is not in the lane at all.
    let other = ip("203.0.113.41");
    assert!(a.throttle.check_source(other, Instant::now()).is_ok());
    // With the lane full, a throttled source's login waits, then gets 429 with Retry-After.
    let hold = a
        .penalty_lane
        .clone()
        .acquire_many_owned(PENALTY_LANE_SLOTS as u32)
        .await
        .unwrap();
    let started = Instant::now();
    let e = a
        .authenticate(Some(&basic("bo@skole", "pw-bo")), src)
        .await
        .unwrap_err();
    assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert!(e.retry_after_secs().unwrap() >= 1);
    assert!(started.elapsed() >= Duration::from_millis(PENALTY_LANE_WAIT_MS));
    assert_eq!(a.penalty_refusals(), 1);
    // ...while the other source logs in at once, lane or not.
    let p = a
        .authenticate(Some(&basic("bo@skole", "pw-bo")), other)
        .await
        .unwrap();
    assert_eq!(p.via, AuthVia::Password);
    drop(hold);
    // The per-account backoff is as it was: the account in backoff waits, lane or not.
    for _ in 0..=AuthConfig::default().account_failures_free {
        let _ = a
            .authenticate(Some(&basic("p7@skole", "wrong")), other)
            .await;
    }
    let e = a
        .authenticate(Some(&basic("p7@skole", "pw")), other)
        .await
        .unwrap_err();
    assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
}

/// Runs `logins` together, holding every hashing thread until each has been polled to where it
/// waits (for a slot or for a shared run), so that none finishes before the last one starts
/// whatever the scheduling (argon2 is cheap in tests).
async fn all_at_once<F: std::future::Future>(
    a: &Authenticator,
    logins: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let hold = a.hashes.hold_all_threads();
    let mut all = Box::pin(futures::future::join_all(logins));
    for _ in 0..4 {
        assert!(futures::poll!(all.as_mut()).is_pending());
    }
    drop(hold);
    all.await
}

#[tokio::test]
async fn concurrent_identical_logins_share_one_argon2_run() {
    let (_d, _db, a) = setup(AuthConfig::default());
    let peer = ip("10.0.0.4");
    let good = basic("anna@skole", "pw-anna");
    let wrong = basic("anna@skole", "pw-bo");
    // A sync client opening several connections at once: every request is polled (and misses
    // the cache) before any argon2 result is taken up.
    let rs = all_at_once(&a, (0..16).map(|_| a.authenticate(Some(&good), peer))).await;
    for r in &rs {
        let via = r.as_ref().map(|p| p.via);
        assert!(
            via == Ok(AuthVia::Password) || via == Ok(AuthVia::Cached),
            "{via:?}"
        );
    }
    assert_eq!(a.argon2_runs(), 1, "16 identical logins, one argon2 run");
    assert_eq!(a.argon2_in_flight(), 0, "entries are removed when done");
    // Right and wrong passwords at once: never a shared "true" for the wrong one.
    let (bo_good, bo_wrong) = (basic("bo@skole", "pw-bo"), basic("bo@skole", "pw-anna"));
    let rs = all_at_once(
        &a,
        (0..8).flat_map(|_| {
            [
                a.authenticate(Some(&bo_good), peer),
                a.authenticate(Some(&bo_wrong), peer),
            ]
        }),
    )
    .await;
    for (i, r) in rs.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(r.as_ref().map(|p| p.via), Ok(AuthVia::Password), "{i}");
        } else {
            assert_eq!(r, &Err(AuthError::BadCredentials), "{i}");
        }
    }
    assert_eq!(a.argon2_runs(), 3, "one run per distinct (user, password)");
    assert_eq!(a.argon2_in_flight(), 0);
    // Every participant of a shared failure counts as a failure of the account.
    let free = AuthConfig::default().account_failures_free as usize;
    let rs = all_at_once(&a, (0..=free).map(|_| a.authenticate(Some(&wrong), peer))).await;
    assert!(rs.iter().all(|r| r == &Err(AuthError::BadCredentials)));
    assert_eq!(a.argon2_runs(), 4);
    let e = a.authenticate(Some(&wrong), peer).await.unwrap_err();
    assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.argon2_runs(), 4, "throttled before argon2");
}

#[tokio::test]
async fn a_waiting_login_takes_over_when_the_running_one_is_cancelled() {
    let (_d, _db, a) = setup(AuthConfig::default());
    let peer = ip("10.0.0.5");
    let hdr = basic("anna@skole", "pw-anna");
    // Every hashing thread is held while the logins are polled, so that none can finish
    // before the test cancels it, whatever the scheduling (argon2 is cheap in tests).
    let hold = a.hashes.hold_all_threads();
    let mut first = Box::pin(a.authenticate(Some(&hdr), peer));
    let mut second = Box::pin(a.authenticate(Some(&hdr), peer));
    assert!(futures::poll!(first.as_mut()).is_pending());
    assert!(futures::poll!(second.as_mut()).is_pending());
    assert_eq!(a.argon2_in_flight(), 1, "the second joined the first");
    drop(first); // the client of the running login went away
    assert!(
        futures::poll!(second.as_mut()).is_pending(),
        "waits for a slot"
    );
    assert_eq!(a.argon2_in_flight(), 1, "the second took the run over");
    drop(hold);
    assert_eq!(second.await.unwrap().via, AuthVia::Password);
    assert_eq!(a.argon2_runs(), 1, "the cancelled login never ran argon2");
    assert_eq!(a.argon2_in_flight(), 0);
    // A cancelled sole participant leaves nothing behind.
    let hold = a.hashes.hold_all_threads();
    let bo = basic("bo@skole", "pw-bo");
    let mut lone = Box::pin(a.authenticate(Some(&bo), peer));
    assert!(futures::poll!(lone.as_mut()).is_pending());
    assert_eq!(a.argon2_in_flight(), 1);
    drop(lone);
    assert_eq!(a.argon2_in_flight(), 0);
    drop(hold);
    assert_eq!(a.argon2_runs(), 1);
}

#[test]
fn parse_authorization_is_pure_and_strict() {
    assert_eq!(
        parse_authorization(&basic("anna@skole", "a:b")),
        Ok(Credentials::Basic {
            login: "anna@skole".into(),
            password: "a:b".into()
        })
    );
    assert_eq!(
        parse_authorization("  bearer   tok  "),
        Ok(Credentials::Bearer("tok"))
    );
    for (bad, why) in [
        ("Basic", "no scheme"),
        ("Basic !!!", "bad base64"),
        ("Basic Yw==", "no colon"),
        ("Basic /w==", "not UTF-8"),
        ("Digest x", "unknown scheme"),
    ] {
        assert_eq!(
            parse_authorization(bad),
            Err(AuthError::Malformed(why)),
            "{bad}"
        );
    }
    let long = format!("Bearer {}", "a".repeat(AUTH_HEADER_LEN_MAX));
    assert_eq!(
        parse_authorization(&long),
        Err(AuthError::Malformed("too long"))
    );
}
