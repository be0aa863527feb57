//! CORS (Fetch standard, "CORS protocol") for browser frontends on other origins: web pages
//! from the origins in `http.cors_origins` may call every route with the user's credentials.
//!
//! Applied in one place for every route ([`handle`], called by `route::Router`). With no
//! origins configured it costs one branch per request. A preflight (`OPTIONS` with `Origin`
//! and `Access-Control-Request-Method`) from an allowed origin is answered here, before
//! authentication (browsers send preflights without credentials); every other request is
//! routed as usual and, for an allowed origin, its response (401s and errors included) gets
//! the CORS headers. Requests from other origins get no CORS headers at all, so the browser
//! withholds the response from the page.
//!
//! `*` (any origin) is refused: the server answers with `Access-Control-Allow-Credentials`
//! (browsers send a user's remembered Basic login with credentialed requests), and reflecting
//! every origin would let any web page read and change a signed-in pupil's files.

use std::future::Future;

use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use hyper::{Method, Request, StatusCode};

use crate::http::body::ReqBody;
use crate::http::response::{status, Resp};
use crate::limits::{CORS_ORIGINS_MAX, CORS_ORIGIN_LEN_MAX, CORS_PREFLIGHT_MAX_AGE_S};

/// Every method the server answers (WebDAV, RFC 4918; REPORT for clients that probe it).
pub const ALLOW_METHODS: &str = "OPTIONS, GET, HEAD, PUT, POST, DELETE, MKCOL, COPY, MOVE, \
     PROPFIND, PROPPATCH, LOCK, UNLOCK, REPORT";
/// Request headers a page may send: WebDAV's, conditional and range requests, and those of
/// ownCloud/Nextcloud web clients.
pub const ALLOW_HEADERS: &str = "Authorization, Depth, Destination, Overwrite, If, Lock-Token, \
     Timeout, Content-Type, Content-Range, Range, If-Match, If-None-Match, OC-Checksum, \
     X-OC-Mtime, OC-Total-Length, X-Requested-With, Requesttoken";
/// Response headers a page may read besides the CORS-safelisted ones.
pub const EXPOSE_HEADERS: &str = "ETag, DAV, Lock-Token, OC-FileId, OC-ETag, Content-Length, \
     Content-Range, Location, X-OC-MTime, OC-Checksum";

/// The allowed origins, lower-case, as browsers serialize them (`scheme://host[:port]`).
#[derive(Debug)]
pub struct Cors {
    origins: Box<[String]>,
}

impl Cors {
    /// `None` when no origin is configured (then CORS costs nothing per request).
    pub fn new(origins: &[String]) -> Option<Cors> {
        if origins.is_empty() {
            return None;
        }
        Some(Cors {
            origins: origins.iter().map(|o| o.to_ascii_lowercase()).collect(),
        })
    }

    /// The request's `Origin` when it is one of the allowed ones.
    fn allowed<'r>(&self, req: &'r Request<ReqBody>) -> Option<&'r HeaderValue> {
        let origin = req.headers().get(ORIGIN)?;
        let bytes = origin.as_bytes();
        self.origins
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(bytes))
            .then_some(origin)
    }
}

/// Answers `req` through `next`, applying the CORS rules when origins are configured.
pub async fn handle<F, Fut>(cors: Option<&Cors>, req: Request<ReqBody>, next: F) -> Resp
where
    F: FnOnce(Request<ReqBody>) -> Fut,
    Fut: Future<Output = Resp>,
{
    let Some(cors) = cors else {
        return next(req).await;
    };
    let origin = cors.allowed(&req).cloned();
    let mut resp = match &origin {
        Some(_)
            if req.method() == Method::OPTIONS
                && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD) =>
        {
            preflight()
        }
        _ => next(req).await,
    };
    let h = resp.headers_mut();
    // The answer depends on `Origin` whenever origins are configured: caches must key on it.
    h.append(VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = origin {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    resp
}

/// 204 for a preflight from an allowed origin (the caller adds the origin headers).
fn preflight() -> Resp {
    let mut r = status(StatusCode::NO_CONTENT);
    let h = r.headers_mut();
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(CORS_PREFLIGHT_MAX_AGE_S),
    );
    r
}

/// Checks `http.cors_origins`: each an origin as a browser sends it in `Origin`.
pub fn validate_origins(origins: &[String]) -> Result<(), String> {
    if origins.len() > CORS_ORIGINS_MAX {
        return Err(format!(
            "http.cors_origins: at most {CORS_ORIGINS_MAX} origins"
        ));
    }
    for o in origins {
        validate_origin(o).map_err(|why| format!("http.cors_origins: {o:?}: {why}"))?;
    }
    Ok(())
}

fn validate_origin(o: &str) -> Result<(), &'static str> {
    if o == "*" {
        return Err("any origin (*) is not allowed: list the origins of your web frontends");
    }
    if o.len() > CORS_ORIGIN_LEN_MAX {
        return Err("too long");
    }
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    if rest.is_empty() {
        return Err("no host");
    }
    if rest.contains('/') {
        return Err("an origin has no path (not even a trailing /)");
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        return Err("only host and port are allowed after the scheme (IDN hosts in punycode)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        let ok = |o: &str| validate_origins(&[o.to_string()]).is_ok();
        assert!(ok("https://portal.school.example"));
        assert!(ok("http://127.0.0.1:8081"));
        assert!(ok("https://[::1]:8443"));
        assert!(!ok("*"));
        assert!(!ok("null"));
        assert!(!ok("https://a.example/"));
        assert!(!ok("https://a.example/app"));
        assert!(!ok("ftp://a.example"));
        assert!(!ok("https://"));
        assert!(!ok("https://user@a.example"));
        assert!(!ok("https://a.example, https://b.example"));
        let many: Vec<String> = (0..=CORS_ORIGINS_MAX)
            .map(|i| format!("https://h{i}.example"))
            .collect();
        assert!(validate_origins(&many).is_err());
        assert!(Cors::new(&[]).is_none());
    }
}
