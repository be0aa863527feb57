//! Per-request entry point: which part of the server answers a path (health, metrics, WebDAV),
//! then authentication, the space check and method dispatch. The HTTP layer calls it through
//! [`http::Handler`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};

use crate::access_log;
use crate::app::App;
use crate::dav::path::{mount_of, parse_target_as, Mount};
use crate::dav::status::path_error;
use crate::http::body::ReqBody;
use crate::http::response::{status, text, Resp};
use crate::http::{self, Handler};
use crate::methods::{self, engine_names, status_of, Ctx};
use crate::oc;

/// The server's request handler: everything behind the HTTP layer.
pub struct Router {
    app: Arc<App>,
    /// Browser frontends on other origins (`None`: no origin configured).
    cors: Option<crate::cors::Cors>,
}

impl Router {
    pub fn new(app: Arc<App>) -> Router {
        let cors = crate::cors::Cors::new(&app.config.http.cors_origins);
        Router { app, cors }
    }
}

impl Handler for Router {
    async fn handle(&self, req: Request<ReqBody>, peer: SocketAddr) -> Resp {
        let started = Instant::now();
        let method = req.method().clone();
        // What the access log needs of the request, taken only when it is on.
        let logged = self.app.access_log.as_ref().map(|_| {
            let target = req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
            let ua = req
                .headers()
                .get(hyper::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (target, req.version(), ua)
        });
        // Behind a trusted proxy, the client it names (http/proxy.rs).
        let peer = self.app.trusted_proxies.client(peer, req.headers());
        let resp = crate::cors::handle(self.cors.as_ref(), req, |req| {
            route(self.app.clone(), req, peer)
        })
        .await;
        let elapsed = started.elapsed();
        self.app.metrics.observe(&method, resp.status(), elapsed);
        if let (Some(log), Some((target, version, ua))) = (&self.app.access_log, logged) {
            log.record(&access_log::Entry {
                time: std::time::SystemTime::now(),
                client: peer,
                who: resp.extensions().get::<access_log::Who>(),
                method: method.as_str(),
                target: &target,
                version: version_name(version),
                status: resp.status().as_u16(),
                bytes: hyper::body::Body::size_hint(resp.body()).exact(),
                duration: elapsed,
                user_agent: ua.as_deref(),
            });
        }
        resp
    }
}

fn version_name(v: hyper::Version) -> &'static str {
    match v {
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// What the metrics show of the login path and the connections.
fn live_figures(app: &App) -> crate::metrics::LiveFigures {
    use std::sync::atomic::Ordering::Relaxed;
    let c = app.auth.counters();
    let pool = app.auth.hash_pool();
    crate::metrics::LiveFigures {
        open_connections: app.open_connections.load(Relaxed),
        password_hashes: pool.runs,
        hashes_queued: pool.queued,
        hash_threads: pool.threads,
        hashes_running: pool.running,
        hashes_refused: pool.refused,
        hash_reverify_queued: c.reverify_queued.load(Relaxed),
        hash_mean_us: pool.mean_hash_us,
        hash_wait_buckets: pool.wait_buckets,
        hash_wait_sum_us: pool.wait_sum_us,
        logins_verifying: app.auth.argon2_in_flight() as u64,
        credential_cache_hits: c.cache_hits.load(Relaxed),
        credential_cache_misses: c.cache_misses.load(Relaxed),
        credential_cache_entries: app.auth.credential_cache_len() as u64,
        jwt_verifications: app.auth.jwt_verifications(),
        jwt_cache_hits: c.jwt_cache_hits.load(Relaxed),
        throttled_account: c.refused_account.load(Relaxed),
        throttled_source: c.refused_source.load(Relaxed),
        throttled_penalty_lane: app.auth.penalty_refusals(),
    }
}

/// The HTTP layer's settings from the server's configuration.
pub fn http_settings(app: &App) -> http::Settings {
    http_settings_of(
        &app.config,
        app.trusted_proxies.clone(),
        app.open_connections.clone(),
    )
}

/// As [`http_settings`], for a listener that is not one data dir's (a cluster node).
pub fn http_settings_of(
    config: &crate::config::Config,
    trusted_proxies: Arc<http::proxy::TrustedProxies>,
    open_connections: Arc<std::sync::atomic::AtomicU64>,
) -> http::Settings {
    let limits = &config.limits;
    http::Settings {
        tls: config.tls.cert.clone().zip(config.tls.key.clone()),
        own_http1: config.http1 == crate::config::Http1::Skab,
        workers: config.workers,
        connections_max: limits.connections_max,
        header_read: Duration::from_secs(limits.header_read_timeout_s),
        idle: Duration::from_secs(limits.idle_timeout_s),
        header_size_max: limits.header_size_max,
        body_stall: Duration::from_secs(limits.body_stall_timeout_s),
        trusted_proxies,
        open_connections,
    }
}

async fn route(app: Arc<App>, req: Request<ReqBody>, peer: SocketAddr) -> Resp {
    let path = req.uri().path();
    match path {
        "/healthz" => return text(StatusCode::OK, "ok"),
        "/readyz" => {
            return if app.store.is_failed() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage failed; restart needed",
                )
            } else {
                text(StatusCode::OK, "ready")
            };
        }
        "/metrics" => return app.metrics.render(&app.store, &live_figures(&app)),
        "/status.php" => return oc::discovery::status_php(),
        _ => {}
    }
    let mount = mount_of(path).map(|(m, _)| m);
    let ocs = oc::discovery::is_ocs(path);
    let history = crate::history_dav::is_history(path);
    if mount.is_none() && !ocs && !history {
        if path == "/" && (req.method() == Method::GET || req.method() == Method::HEAD) {
            return text(
                StatusCode::OK,
                "Skab WebDAV server: your files are at /dav/<tenant>/<user>/",
            );
        }
        if req.method() == Method::OPTIONS {
            return methods::options::handle_root();
        }
        return text(StatusCode::NOT_FOUND, "not found");
    }
    let auth_header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match app.auth.authenticate(auth_header, peer.ip()).await {
        Ok(p) => p,
        Err(e) => {
            if let Some(audit) = &app.audit {
                audit.logins.failed(audit, auth_header, &e, peer.ip());
            }
            return unauthorized(&app, &e);
        }
    };
    if let Some(audit) = &app.audit {
        audit.logins.ok(audit, &principal, peer.ip());
    }
    let who = app.access_log.is_some().then(|| access_log::Who {
        tenant: principal.tenant.as_str().to_string(),
        user: principal.user.as_str().to_string(),
    });
    // In flight from here to the end of the handler (fair_share.rs).
    let slot = app
        .fair_share
        .admit(principal.tenant.as_str(), principal.user.as_str());
    let mut resp = match slot {
        Ok(_slot) if history => crate::history_dav::handle(&app, req, &principal).await,
        Ok(_slot) => authenticated(app, req, principal, ocs).await,
        Err(refused) => crate::fair_share::refusal(refused),
    };
    if let Some(who) = who {
        resp.extensions_mut().insert(who);
    }
    resp
}

/// A request whose credentials are good: OCS, or WebDAV in one of the mounts.
async fn authenticated(
    app: Arc<App>,
    req: Request<ReqBody>,
    principal: crate::auth::Principal,
    ocs: bool,
) -> Resp {
    if ocs {
        if crate::spaces::ocs::is_shares(req.uri().path()) {
            return crate::spaces::ocs::handle(&app, req, &principal).await;
        }
        return oc::discovery::ocs(&req, &principal);
    }
    if crate::handin::access::is_handin_path(req.uri().path()) {
        return crate::handin::access::serve(app, req, principal).await;
    }
    if crate::spaces::access::is_space_path(req.uri().path()) {
        return crate::spaces::access::serve_direct(app, req, principal).await;
    }
    let me = crate::dav::path::SpaceKey {
        tenant: principal.tenant.as_str().to_string(),
        user: principal.user.as_str().to_string(),
    };
    let target = match parse_target_as(req.uri().path(), Some(&me))
        .and_then(|t| t.path.check_len(app.config.limits.path_len_max).map(|()| t))
    {
        Ok(t) => t,
        Err(e) => return text(path_error(&e), &e.to_string()),
    };
    let home = match skab_engine::SpaceKey::new(principal.tenant.as_str(), principal.user.as_str())
    {
        Ok(s) => s,
        Err(e) => return text(StatusCode::FORBIDDEN, &e.to_string()),
    };
    let space = if target.mount == Mount::OcUploads {
        // The user's own folder of the tenant's upload space, and nothing else there.
        let own = target.space.tenant == me.tenant
            && target.path.segments().next() == Some(me.user.as_str());
        if !own {
            return text(StatusCode::FORBIDDEN, "outside your uploads");
        }
        let uploads = match oc::upload::uploads_space(&me.tenant) {
            Ok(k) => k,
            Err(e) => return text(status_of(&e), &e.to_string()),
        };
        // The home is where the upload ends up and whose quota bounds it.
        if !app.store.space_exists(&home) {
            if let Err(e) = app.store.create_space(&home).await {
                return text(status_of(&e), &e.to_string());
            }
        }
        if let Err(r) = oc::upload::prepare(&app, &uploads, &me.user).await {
            return r;
        }
        uploads
    } else {
        // A user reaches only their own home: anything else is 403 whether or not it
        // exists, so nothing about other spaces can be learned.
        if target.space != me {
            return text(StatusCode::FORBIDDEN, "outside your space");
        }
        // A space or share shown in the home: served as itself (`crate::spaces`).
        if let Some(m) = crate::spaces::access::mount_of_home_path(&app, &principal, &target.path) {
            return crate::spaces::access::serve_mounted(app, req, &principal, &m).await;
        }
        home
    };
    if !app.store.space_exists(&space) {
        if let Err(e) = app.store.create_space(&space).await {
            return text(status_of(&e), &e.to_string());
        }
    }
    let names = match engine_names(&target.path) {
        Ok(n) => n,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut access = crate::spaces::access::Access::default();
    // What lists the root: PROPFIND, and GET/HEAD of the HTML listing.
    let lists = matches!(req.method().as_str(), "PROPFIND" | "GET" | "HEAD");
    if target.mount != Mount::OcUploads && target.path.is_root() && lists {
        access.home_mounts = crate::spaces::access::home_listing(
            &app,
            principal.tenant.as_str(),
            principal.user.as_str(),
            target.mount,
        )
        .await;
    }
    let ctx = Ctx {
        app,
        space,
        target,
        names,
        access,
    };
    if ctx.target.mount == Mount::OcUploads {
        return methods::dispatch(ctx, req).await;
    }
    crate::spaces::access::dispatch(ctx, req, &principal).await
}

fn unauthorized(app: &App, e: &crate::auth::AuthError) -> Resp {
    let mut r = if e.status() == StatusCode::UNAUTHORIZED {
        status(StatusCode::UNAUTHORIZED)
    } else {
        text(e.status(), &e.to_string())
    };
    if let Some(secs) = e.retry_after_secs() {
        r.headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if e.wants_challenge() {
        for c in app.auth.challenges() {
            if let Ok(v) = HeaderValue::from_str(c) {
                r.headers_mut().append(WWW_AUTHENTICATE, v);
            }
        }
    }
    r
}
