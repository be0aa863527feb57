//! Per-request entry point: which part of the server answers a path (health, metrics, WebDAV),
//! then authentication, the space check and method dispatch. The HTTP layer calls it through
//! [`http::Handler`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};

use crate::app::App;
use crate::dav::path::parse_target;
use crate::dav::status::path_error;
use crate::http::body::ReqBody;
use crate::http::response::{status, text, Resp};
use crate::http::{self, Handler};
use crate::methods::{self, engine_names, status_of, Ctx};

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
        let resp = crate::cors::handle(self.cors.as_ref(), req, |req| {
            route(self.app.clone(), req, peer)
        })
        .await;
        self.app
            .metrics
            .observe(&method, resp.status(), started.elapsed());
        resp
    }
}

/// The HTTP layer's settings from the server's configuration.
pub fn http_settings(config: &crate::config::Config) -> http::Settings {
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
        "/metrics" => return app.metrics.render(&app.store),
        _ => {}
    }
    if !(path == "/dav" || path.starts_with("/dav/")) {
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
        Err(e) => return unauthorized(&app, &e),
    };
    let target = match parse_target(req.uri().path()) {
        Ok(t) => t,
        Err(e) => return text(path_error(&e), &e.to_string()),
    };
    // A user reaches only their own home: anything else is 403 whether or not it exists,
    // so nothing about other spaces can be learned.
    if target.space.tenant != principal.tenant.as_str()
        || target.space.user != principal.user.as_str()
    {
        return text(StatusCode::FORBIDDEN, "outside your space");
    }
    let space = match skab_engine::SpaceKey::new(principal.tenant.as_str(), principal.user.as_str())
    {
        Ok(s) => s,
        Err(e) => return text(StatusCode::FORBIDDEN, &e.to_string()),
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
    let ctx = Ctx {
        app,
        space,
        target,
        names,
    };
    methods::dispatch(ctx, req).await
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
