//! Per-request entry point: routing, authentication, space checks and method dispatch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::http::body::ReqBody;
use hyper::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use skab_engine::ns::Name;

use super::response::{status, text, Resp};
use crate::app::App;
use crate::dav::path::{parse_target, DavPath};
use crate::dav::status::path_error;
use crate::methods;

/// What every WebDAV handler gets: who asks, for what, in which space.
pub struct Ctx {
    pub app: Arc<App>,
    /// The engine's key of the requester's home space (a user reaches only their own).
    pub space: skab_engine::SpaceKey,
    pub target: DavPath,
    /// The target's path as engine names (NFC-normalized).
    pub names: Vec<Name>,
}

impl Ctx {
    /// `user@tenant`: the principal that owns locks (built only by the lock paths).
    pub fn principal(&self) -> String {
        format!("{}@{}", self.space.user(), self.space.tenant())
    }

    pub fn href(&self, path: &crate::dav::path::SpacePath, collection: bool) -> String {
        crate::dav::path::href(&self.target.space, path, collection)
    }
}

/// Converts the protocol layer's path into engine names.
pub fn engine_names(path: &crate::dav::path::SpacePath) -> Result<Vec<Name>, skab_engine::Error> {
    path.segments().map(Name::new).collect()
}

pub async fn handle(app: Arc<App>, req: Request<ReqBody>, peer: SocketAddr) -> Resp {
    let started = Instant::now();
    let method = req.method().clone();
    let resp = route(app.clone(), req, peer).await;
    app.metrics
        .observe(&method, resp.status(), started.elapsed());
    resp
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
    let target = match parse_target(req.uri().path())
        .and_then(|t| t.path.check_len(app.config.limits.path_len_max).map(|()| t))
    {
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
            return text(super::status::status_of(&e), &e.to_string());
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
