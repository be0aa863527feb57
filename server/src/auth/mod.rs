//! Authentication of requests: Basic (password or app token), Bearer (JWT or app token).
//!
//! Design, costs and the order of checks: `docs/auth.md`.

pub mod cache;
pub mod expiring;
pub mod flight;
pub mod hash_pool;
pub mod jwt;
pub mod jwt_cache;
pub mod throttle;

use crate::config::AuthConfig;
use crate::limits::{
    AUTH_HEADER_LEN_MAX, PENALTY_LANE_SLOTS, PENALTY_LANE_WAIT_MS, TOKEN_LAST_USED_RESOLUTION_S,
    USER_DB_REFRESH_INTERVAL_MS, USER_DB_REFRESH_ON_MISS_MIN_MS,
};
use crate::users::{
    now_unix, parse_login, password, token, GroupName, TenantName, TokenId, UserDb, UserName,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cache::{Check, CredentialCache};
use flight::Flights;
use hash_pool::{HashPool, PoolConfig, PoolFigures};
use jwt::JwtVerifier;
use jwt_cache::JwtCache;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use throttle::{Throttle, ThrottleConfig};
use tokio::sync::Semaphore;

/// How a principal proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    /// Password verified with argon2 on this request.
    Password,
    /// Password matched the verified-credential cache (no argon2).
    Cached,
    /// App token (as Basic password or Bearer).
    AppToken,
    /// Bearer JWT from a configured issuer.
    Jwt,
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantName,
    pub user: UserName,
    pub via: AuthVia,
}

/// What the login path did since start (`/metrics`: the first thing to look at at 08:00).
#[derive(Debug, Default)]
pub struct LoginCounters {
    /// Password checks that found the password in the verified-credential cache.
    pub cache_hits: AtomicU64,
    /// Password checks that had to run argon2 (or join a run of the same login).
    pub cache_misses: AtomicU64,
    /// Cache hits that queued a background re-verification of their entry.
    pub reverify_queued: AtomicU64,
    /// Bearer JWTs answered from the verified-JWT cache.
    pub jwt_cache_hits: AtomicU64,
    /// 429s: an account in backoff after failures.
    pub refused_account: AtomicU64,
    /// 429s: a source whose failed-login bucket is empty (forged tokens).
    pub refused_source: AtomicU64,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header: 401 with the challenges.
    #[error("authentication required")]
    Missing,
    /// Header not understood: 401 with the challenges.
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    /// Wrong name, password, token or JWT, or a disabled user: 401 with the challenges.
    #[error("invalid credentials")]
    BadCredentials,
    /// Too many failures for this account or source: 429 with `Retry-After`.
    #[error("too many failed logins; retry after {} s", retry_after.as_secs())]
    Throttled { retry_after: Duration },
    /// The user database could not be read, or hashing failed: 503.
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
    /// The password-hashing queue's expected wait is over `auth.hash_wait_max_ms`: 503 with
    /// `Retry-After`, at once.
    #[error("too many logins being verified; retry after {} s", retry_after.as_secs().max(1))]
    Overloaded { retry_after: Duration },
}

impl AuthError {
    /// HTTP status for this error.
    pub fn status(&self) -> http::StatusCode {
        match self {
            AuthError::Missing | AuthError::Malformed(_) | AuthError::BadCredentials => {
                http::StatusCode::UNAUTHORIZED
            }
            AuthError::Throttled { .. } => http::StatusCode::TOO_MANY_REQUESTS,
            AuthError::Unavailable(_) | AuthError::Overloaded { .. } => {
                http::StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Value for `Retry-After` (seconds), for a 429 or an overloaded 503.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::Throttled { retry_after } => Some(retry_after.as_secs().max(1)),
            // Rounded up: a client that comes back at the promised time finds the queue
            // drained.
            AuthError::Overloaded { retry_after } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            _ => None,
        }
    }

    /// Whether the response carries `WWW-Authenticate` challenges.
    pub fn wants_challenge(&self) -> bool {
        self.status() == http::StatusCode::UNAUTHORIZED
    }
}

/// What an `Authorization` header presents, before any check against the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// `Basic`: the login and password after base64 and UTF-8 decoding.
    Basic { login: String, password: String },
    /// `Bearer`: the token text (a JWT or an app token).
    Bearer(&'a str),
}

/// Parses an `Authorization` header value (pure: no I/O, no user database).
pub fn parse_authorization(header: &str) -> Result<Credentials<'_>, AuthError> {
    if header.len() > AUTH_HEADER_LEN_MAX {
        return Err(AuthError::Malformed("too long"));
    }
    let (scheme, rest) = header
        .trim()
        .split_once(' ')
        .ok_or(AuthError::Malformed("no scheme"))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest)
            .map_err(|_| AuthError::Malformed("bad base64"))?;
        let mut login =
            String::from_utf8(decoded).map_err(|_| AuthError::Malformed("not UTF-8"))?;
        let colon = login.find(':').ok_or(AuthError::Malformed("no colon"))?;
        // Split the decoded text in place: one allocation for the password, none for the login.
        let password = login.split_off(colon + 1);
        login.truncate(colon);
        Ok(Credentials::Basic { login, password })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credentials::Bearer(rest))
    } else {
        Err(AuthError::Malformed("unknown scheme"))
    }
}

type TokenUseKey = (TenantName, UserName, TokenId);
/// A verified JWT's account, and the groups its claim names with the token's end.
type VerifiedJwt = ((TenantName, UserName), Option<(Vec<GroupName>, Instant)>);
/// Groups from a JWT's groups claim, until when they count, and the `created` time of the
/// account they were given to (a later account of the same name does not get them).
type ClaimGroups = (Vec<GroupName>, Instant, u64);

/// Checks credentials against the user database. Share one per server (`Arc`).
pub struct Authenticator {
    db: Arc<UserDb>,
    cache: Arc<CredentialCache>,
    throttle: Throttle,
    jwt: JwtVerifier,
    jwt_cache: JwtCache,
    jwt_verifications: AtomicU64,
    hashes: HashPool,
    /// Password checks of logins from sources whose failed-login bucket is empty: they run
    /// here, `PENALTY_LANE_SLOTS` at a time, instead of being refused outright.
    penalty_lane: Arc<Semaphore>,
    penalty_refusals: AtomicU64,
    counters: LoginCounters,
    flights: Flights<AuthError>,
    challenges: Vec<String>,
    last_refresh: Mutex<Instant>,
    /// Refreshes on a miss, one at a time: when the last one ran and whether it changed
    /// anything. Requests that missed wait here instead of failing (see `refresh_on_miss`).
    miss_refresh: tokio::sync::Mutex<Option<(Instant, bool)>>,
    refreshing: Arc<AtomicBool>,
    token_use: Mutex<HashMap<TokenUseKey, u64>>,
    /// Groups named by the groups claim of each user's latest verified JWT, until that
    /// token's `exp` (`auth.jwt[].groups_claim`; at most `JWT_CLAIM_GROUPS_USERS_MAX`).
    claim_groups: Mutex<HashMap<(TenantName, UserName), ClaimGroups>>,
}

impl Authenticator {
    /// Builds the authenticator; fails on a bad JWT key.
    pub fn new(db: Arc<UserDb>, cfg: &AuthConfig) -> Result<Authenticator, String> {
        let jwt = JwtVerifier::from_config(&cfg.jwt)?;
        let threads = if cfg.hash_concurrency == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            cfg.hash_concurrency
        };
        let hashes = HashPool::start(PoolConfig {
            threads,
            nice: cfg.hash_nice,
            wait_max: Duration::from_millis(cfg.hash_wait_max_ms),
        })
        .map_err(|e| format!("starting the password-hashing threads: {e}"))?;
        let realm = cfg.realm.replace(['"', '\\'], "");
        let mut challenges = vec![format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")];
        if jwt.is_enabled() {
            challenges.push(format!("Bearer realm=\"{realm}\""));
        }
        Ok(Authenticator {
            db,
            cache: Arc::new(CredentialCache::new(
                Duration::from_secs(cfg.credential_cache_ttl_s),
                Duration::from_secs(cfg.credential_cache_max_age_s),
                cfg.credential_cache_entries,
            )),
            throttle: Throttle::new(ThrottleConfig {
                account_failures_free: cfg.account_failures_free,
                account_backoff_base: Duration::from_millis(cfg.account_backoff_base_ms),
                account_backoff_max: Duration::from_secs(cfg.account_backoff_max_s),
                source_burst: cfg.source_failures_burst,
                source_per_minute: cfg.source_failures_per_minute,
            }),
            jwt,
            jwt_cache: JwtCache::new(
                Duration::from_secs(cfg.credential_cache_ttl_s),
                cfg.credential_cache_entries,
            ),
            jwt_verifications: AtomicU64::new(0),
            hashes,
            penalty_lane: Arc::new(Semaphore::new(PENALTY_LANE_SLOTS)),
            penalty_refusals: AtomicU64::new(0),
            counters: LoginCounters::default(),
            flights: Flights::new(),
            challenges,
            last_refresh: Mutex::new(Instant::now()),
            miss_refresh: tokio::sync::Mutex::new(None),
            refreshing: Arc::new(AtomicBool::new(false)),
            token_use: Mutex::new(HashMap::new()),
            claim_groups: Mutex::new(HashMap::new()),
        })
    }

    /// The user database.
    pub fn db(&self) -> &Arc<UserDb> {
        &self.db
    }

    /// The groups the user's latest verified JWT named in its groups claim, while that
    /// token is valid (empty without a groups claim).
    pub fn claim_groups(&self, tenant: &TenantName, user: &UserName) -> Vec<GroupName> {
        let map = self.claim_groups.lock();
        match map.get(&(tenant.clone(), user.clone())) {
            Some((g, until, created))
                if *until > Instant::now()
                    && self.db.user(tenant, user).map(|u| u.created) == Some(*created) =>
            {
                g.clone()
            }
            _ => Vec::new(),
        }
    }

    fn remember_claim_groups(
        &self,
        tenant: &TenantName,
        user: &UserName,
        groups: Vec<GroupName>,
        until: Instant,
    ) {
        let created = self.db.user(tenant, user).map(|u| u.created);
        let mut map = self.claim_groups.lock();
        let key = (tenant.clone(), user.clone());
        let Some(created) = created.filter(|_| !groups.is_empty()) else {
            // A token without the groups (or for no account) takes them away.
            map.remove(&key);
            return;
        };
        if map.len() >= crate::limits::JWT_CLAIM_GROUPS_USERS_MAX && !map.contains_key(&key) {
            let now = Instant::now();
            map.retain(|_, (_, u, _)| *u > now);
            if map.len() >= crate::limits::JWT_CLAIM_GROUPS_USERS_MAX {
                tracing::warn!("groups from a JWT claim not kept: too many users at once");
                return;
            }
        }
        map.insert(key, (groups, until, created));
    }

    /// Password verifications (argon2 runs) done since start.
    pub fn argon2_runs(&self) -> u64 {
        self.hashes.figures().runs
    }

    /// Users held in the verified-credential cache now.
    pub fn credential_cache_len(&self) -> usize {
        self.cache.len()
    }

    /// The password-hashing pool's figures (queue, waits, refusals).
    pub fn hash_pool(&self) -> PoolFigures {
        self.hashes.figures()
    }

    /// JWT signature checks done since start (the verified-JWT cache answers the rest).
    pub fn jwt_verifications(&self) -> u64 {
        self.jwt_verifications.load(Ordering::Relaxed)
    }

    /// The login path's counters.
    pub fn counters(&self) -> &LoginCounters {
        &self.counters
    }

    /// Logins from throttled sources refused because the penalty lane stayed full.
    pub fn penalty_refusals(&self) -> u64 {
        self.penalty_refusals.load(Ordering::Relaxed)
    }

    /// Password verifications in progress that a concurrent identical login would join.
    pub fn argon2_in_flight(&self) -> usize {
        self.flights.len()
    }

    /// `WWW-Authenticate` values to send with a 401, one header each.
    pub fn challenges(&self) -> &[String] {
        &self.challenges
    }

    /// Authenticates one request from its `Authorization` header and peer address.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        peer: IpAddr,
    ) -> Result<Principal, AuthError> {
        let now = Instant::now();
        self.background_refresh(now);
        match parse_authorization(header.ok_or(AuthError::Missing)?)? {
            Credentials::Basic { login, password } => {
                self.basic(&login, &password, peer, now).await
            }
            Credentials::Bearer(token) => self.bearer(token, peer).await,
        }
    }

    /// A Bearer token. The credentials are tried first (an app token is one keyed hash, a
    /// JWT one cached lookup or signature check): the source's failed-login bucket never
    /// stands between a valid token and its request. Only forged JWTs count as failures; an
    /// expired JWT or a revoked app token is a plain 401 (docs/auth.md, "Throttling").
    async fn bearer(&self, token_str: &str, peer: IpAddr) -> Result<Principal, AuthError> {
        if token_str.starts_with(token::APP_TOKEN_PREFIX) {
            if let Some(p) = self.app_token_any(token_str) {
                return Ok(p);
            }
            self.refresh_on_miss().await?;
            if let Some(p) = self.app_token_any(token_str) {
                return Ok(p);
            }
            // Unknown or revoked: 256 random bits are not guessed, so no source failure.
            return Err(AuthError::BadCredentials);
        }
        let now = Instant::now();
        let ((tenant, user), claimed) = match self.jwt_cache.get(token_str, now) {
            Some(tu) => {
                self.counters.jwt_cache_hits.fetch_add(1, Ordering::Relaxed);
                (tu, None)
            }
            None => self.verify_jwt(token_str, peer, now)?,
        };
        let mut state = self.db.credential_state(&tenant, &user);
        if state.is_none() {
            self.refresh_on_miss().await?;
            state = self.db.credential_state(&tenant, &user);
        }
        match state {
            Some((disabled, _)) if !disabled => {
                // Known now (after a refresh for a new account): its claimed groups count.
                if let Some((groups, until)) = claimed {
                    self.remember_claim_groups(&tenant, &user, groups, until);
                }
                Ok(Principal {
                    tenant,
                    user,
                    via: AuthVia::Jwt,
                })
            }
            _ => Err(AuthError::BadCredentials),
        }
    }

    /// Checks a JWT's signature and claims and remembers it until its `exp` (without the
    /// leeway the check allows) in the verified-JWT cache.
    fn verify_jwt(
        &self,
        token_str: &str,
        peer: IpAddr,
        now: Instant,
    ) -> Result<VerifiedJwt, AuthError> {
        self.jwt_verifications.fetch_add(1, Ordering::Relaxed);
        match self.jwt.verify_with_groups(token_str) {
            Ok((tenant, user, exp, groups)) => {
                let left = Duration::from_secs(exp.saturating_sub(now_unix()));
                self.jwt_cache.insert(token_str, &tenant, &user, left, now);
                Ok(((tenant, user), Some((groups, now + left))))
            }
            // Signed by an issuer but expired (or refused for a claim): the client fetches a
            // new token; nothing was guessed.
            Err(e) if e.signature_valid() => Err(AuthError::BadCredentials),
            Err(_) => {
                self.throttle.record_source_failure(peer, now);
                match self.throttle.check_source(peer, now) {
                    Ok(()) => Err(AuthError::BadCredentials),
                    Err(retry_after) => {
                        self.counters.refused_source.fetch_add(1, Ordering::Relaxed);
                        Err(AuthError::Throttled { retry_after })
                    }
                }
            }
        }
    }

    /// An app token presented alone (Bearer): found by its keyed hash.
    fn app_token_any(&self, token_str: &str) -> Option<Principal> {
        let raw = token::parse(token_str)?;
        let hash = token::hash(self.db.token_key(), &raw);
        let (tenant, user, id) = self.db.token_owner(&hash)?;
        let creds = self.db.credentials(&tenant, &user)?;
        if creds.disabled {
            return None;
        }
        self.note_token_use(&tenant, &user, id);
        Some(Principal {
            tenant,
            user,
            via: AuthVia::AppToken,
        })
    }

    async fn basic(
        &self,
        login: &str,
        password: &str,
        peer: IpAddr,
        now: Instant,
    ) -> Result<Principal, AuthError> {
        let Ok((tenant, user)) = parse_login(login) else {
            return Err(AuthError::BadCredentials);
        };
        let mut refreshed = false;
        let mut state = self.db.credential_state(&tenant, &user);
        if state.is_none() {
            self.refresh_on_miss().await?;
            refreshed = true;
            state = self.db.credential_state(&tenant, &user);
        }
        // 1. App token as the password: one keyed hash, no argon2, no account throttle.
        if token::parse(password).is_some() {
            let mut found = self.app_token_any(password);
            if found.is_none() && !refreshed {
                self.refresh_on_miss().await?;
                found = self.app_token_any(password);
            }
            if let Some(p) = found {
                if p.tenant == tenant && p.user == user {
                    return Ok(p);
                }
            }
            // A well-formed token that is not (or no longer) this user's: a plain 401. Its
            // 256 random bits are not guessed, so neither the account nor the source counts
            // it, and no argon2 is paid (a revoked app password in a sync client at 08:00).
            return Err(AuthError::BadCredentials);
        }
        // 2. Cache: this password was verified for this user recently.
        if let Some((disabled, epoch)) = state {
            let check = if disabled {
                Check::Miss
            } else {
                self.cache.check(&tenant, &user, password, epoch, now)
            };
            if let Check::Hit { reverify } = check {
                self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                if reverify {
                    self.reverify_in_background(&tenant, &user, password, epoch);
                }
                return Ok(Principal {
                    tenant,
                    user,
                    via: AuthVia::Cached,
                });
            }
        }
        let account = format!("{user}@{tenant}");
        let mut creds = self.db.credentials(&tenant, &user);
        // 3. Throttle before paying for argon2: an account in backoff waits; a source whose
        // bucket is empty goes through the narrow penalty lane (held until the end).
        self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        self.throttle
            .check_account(&account, now)
            .map_err(|retry_after| {
                self.counters
                    .refused_account
                    .fetch_add(1, Ordering::Relaxed);
                AuthError::Throttled { retry_after }
            })?;
        let _lane = match self.throttle.check_source(peer, now) {
            Ok(()) => None,
            Err(retry_after) => Some(self.penalty_lane(retry_after).await?),
        };
        // 4. argon2 (against a dummy hash for a missing user, to cost the same).
        let mut ok = self
            .verify_shared(&tenant, &user, creds.as_ref(), password)
            .await?;
        if !ok && !refreshed {
            // The password may have just been changed by `skab user passwd`.
            if self.refresh_unless_recent().await? {
                let fresh = self.db.credentials(&tenant, &user);
                let changed = match (&creds, &fresh) {
                    (Some(a), Some(b)) => a.epoch != b.epoch,
                    (None, Some(_)) => true,
                    _ => false,
                };
                creds = fresh;
                if changed {
                    ok = self
                        .verify_shared(&tenant, &user, creds.as_ref(), password)
                        .await?;
                }
            }
        }
        match creds {
            Some(c) if ok && !c.disabled => {
                self.throttle.record_success(&account);
                self.cache
                    .insert(&tenant, &user, password, c.epoch, Instant::now());
                Ok(Principal {
                    tenant,
                    user,
                    via: AuthVia::Password,
                })
            }
            _ => {
                self.throttle.record_failure(&account, peer, Instant::now());
                Err(AuthError::BadCredentials)
            }
        }
    }

    /// A place in the penalty lane, waiting at most `PENALTY_LANE_WAIT_MS`; 429 otherwise.
    async fn penalty_lane(
        &self,
        retry_after: Duration,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, AuthError> {
        let wait = Duration::from_millis(PENALTY_LANE_WAIT_MS);
        match tokio::time::timeout(wait, self.penalty_lane.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(e)) => Err(AuthError::Unavailable(e.to_string())),
            Err(_) => {
                self.penalty_refusals.fetch_add(1, Ordering::Relaxed);
                Err(AuthError::Throttled { retry_after })
            }
        }
    }

    /// `verify`, shared with concurrent verifications of the same password for the same user
    /// against the same stored hash (single-flight, see `flight`).
    async fn verify_shared(
        &self,
        tenant: &TenantName,
        user: &UserName,
        creds: Option<&crate::users::Credentials>,
        password: &str,
    ) -> Result<bool, AuthError> {
        let key = (
            self.cache.digest(tenant, user, password),
            creds.map(|c| c.epoch),
        );
        self.flights
            .run(key, || self.verify(creds.map(|c| &*c.phc), password))
            .await
    }

    /// Runs argon2 on the hashing pool (never on a serving thread), or refuses at once when
    /// the pool's queue promises a longer wait than `auth.hash_wait_max_ms`.
    async fn verify(&self, phc: Option<&str>, password: &str) -> Result<bool, AuthError> {
        let exists = phc.is_some();
        let phc = phc.unwrap_or_else(|| password::dummy_hash()).to_string();
        let done =
            self.hashes
                .verify(phc, password.to_string())
                .map_err(|o| AuthError::Overloaded {
                    retry_after: o.expected_wait,
                })?;
        let r = done
            .await
            .map_err(|_| AuthError::Unavailable("password hashing thread ended".into()))?;
        // A stored hash that does not parse is a bad login, not an outage.
        Ok(exists && r.unwrap_or(false))
    }

    /// A cached credential due for re-verification: argon2 runs on the pool when its queue
    /// is empty, nobody waits for it, and success renews the entry's verification time.
    fn reverify_in_background(
        &self,
        tenant: &TenantName,
        user: &UserName,
        password: &str,
        epoch: u64,
    ) {
        let Some(creds) = self.db.credentials(tenant, user) else {
            return;
        };
        if creds.epoch != epoch {
            return;
        }
        let cache = self.cache.clone();
        let (t, u, pw) = (tenant.clone(), user.clone(), password.to_string());
        let queued = self.hashes.verify_in_background(
            creds.phc.to_string(),
            password.to_string(),
            move |ok| {
                if ok {
                    cache.insert(&t, &u, &pw, epoch, Instant::now());
                } else {
                    cache.invalidate(&t, &u);
                }
            },
        );
        if queued {
            self.counters
                .reverify_queued
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// After a wrong password (it may have been changed a moment ago): re-reads the user log
    /// unless that was done within `USER_DB_REFRESH_ON_MISS_MIN_MS`; never waits for another
    /// refresh. True if anything changed.
    async fn refresh_unless_recent(&self) -> Result<bool, AuthError> {
        {
            let mut last = self.last_refresh.lock();
            if last.elapsed() < Duration::from_millis(USER_DB_REFRESH_ON_MISS_MIN_MS) {
                return Ok(false);
            }
            *last = Instant::now();
        }
        let db = self.db.clone();
        let r = tokio::task::spawn_blocking(move || db.refresh())
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        Ok(matches!(r, crate::users::Refresh::Applied(_)))
    }

    /// Makes sure the user log was re-read after this call began (a user imported a moment
    /// ago must not get a 401); true if that read changed anything. Misses share refreshes:
    /// one runs at a time, a refresh that started after a caller's miss answers it, and
    /// refreshes start at most once per `USER_DB_REFRESH_ON_MISS_MIN_MS` however many
    /// unknown names arrive.
    async fn refresh_on_miss(&self) -> Result<bool, AuthError> {
        let missed_at = Instant::now();
        let mut gate = self.miss_refresh.lock().await;
        if let Some((started, changed)) = *gate {
            if started >= missed_at {
                return Ok(changed);
            }
            let min = Duration::from_millis(USER_DB_REFRESH_ON_MISS_MIN_MS);
            let since = started.elapsed();
            if since < min {
                tokio::time::sleep(min - since).await;
            }
        }
        let started = Instant::now();
        *self.last_refresh.lock() = started;
        let db = self.db.clone();
        let r = tokio::task::spawn_blocking(move || db.refresh())
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let changed = matches!(r, crate::users::Refresh::Applied(_));
        *gate = Some((started, changed));
        Ok(changed)
    }

    /// Re-reads the user log now (e.g. after an admin change made in another process).
    pub async fn refresh_now(&self) -> Result<(), AuthError> {
        *self.last_refresh.lock() = Instant::now();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.refresh())
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        Ok(())
    }

    /// Starts a refresh on the blocking pool if the last one is older than the interval.
    fn background_refresh(&self, now: Instant) {
        {
            let mut last = self.last_refresh.lock();
            if now.saturating_duration_since(*last)
                < Duration::from_millis(USER_DB_REFRESH_INTERVAL_MS)
            {
                return;
            }
            *last = now;
        }
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let db = self.db.clone();
        let flag = self.refreshing.clone();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            flag.store(false, Ordering::Release);
            return;
        };
        handle.spawn_blocking(move || {
            if let Err(e) = db.refresh() {
                tracing::warn!("user database refresh failed: {e}");
            }
            flag.store(false, Ordering::Release);
        });
    }

    fn note_token_use(&self, tenant: &TenantName, user: &UserName, id: TokenId) {
        let now = now_unix();
        let stale = match self.db.token_last_used(tenant, user, id) {
            Some(Some(t)) => now.saturating_sub(t) >= TOKEN_LAST_USED_RESOLUTION_S,
            Some(None) => true,
            None => false,
        };
        if stale {
            self.token_use
                .lock()
                .insert((tenant.clone(), user.clone(), id), now);
        }
    }

    /// Compacts the user log when it has grown well past the live state (app-token uses add
    /// a record per used token at every flush), on a blocking thread.
    pub async fn compact_users_if_due(&self) -> Result<Option<crate::users::Compaction>, String> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            if !db.compaction_due() {
                return Ok(None);
            }
            db.compact().map(Some).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Writes pending token last-use times to the log, if no other writer holds it.
    /// Call periodically (e.g. every minute). Returns how many were written.
    pub async fn flush_token_use(&self) -> Result<usize, String> {
        let uses: Vec<(TenantName, UserName, TokenId, u64)> = self
            .token_use
            .lock()
            .drain()
            .map(|((t, u, id), at)| (t, u, id, at))
            .collect();
        if uses.is_empty() {
            return Ok(0);
        }
        let db = self.db.clone();
        let n = uses.len();
        let (written, uses) = tokio::task::spawn_blocking(move || {
            let r = db.record_token_use(&uses);
            (r, uses)
        })
        .await
        .map_err(|e| e.to_string())?;
        match written {
            Ok(true) => Ok(n),
            Ok(false) => {
                // Busy: keep them for the next flush.
                let mut pending = self.token_use.lock();
                for (t, u, id, at) in uses {
                    pending.entry((t, u, id)).or_insert(at);
                }
                Ok(0)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Forgets cached credentials of a user (call after changing them in this process;
    /// other processes' changes are caught by the epoch check after a refresh).
    pub fn invalidate(&self, tenant: &TenantName, user: &UserName) {
        self.cache.invalidate(tenant, user);
    }
}

#[cfg(test)]
mod tests;
