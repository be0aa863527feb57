//! OPTIONS (RFC 4918 §10.1, §18): advertise class 1 and 2 and the methods.

use hyper::header::{HeaderValue, ALLOW};
use hyper::StatusCode;

use super::ctx::Ctx;
use crate::http::response::{status, Resp};

const ALLOWED: &str =
    "OPTIONS, GET, HEAD, PUT, POST, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK, REPORT";

fn with_dav_headers(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert("dav", HeaderValue::from_static("1, 2"));
    // Windows' Mini-Redirector and Office look for this to treat the server as WebDAV.
    h.insert("ms-author-via", HeaderValue::from_static("DAV"));
    h.insert(ALLOW, HeaderValue::from_static(ALLOWED));
    h.insert("accept-ranges", HeaderValue::from_static("bytes"));
    r
}

pub fn handle(_ctx: &Ctx) -> Resp {
    with_dav_headers(status(StatusCode::OK))
}

/// OPTIONS outside `/dav/` (clients probe the server root before logging in).
pub fn handle_root() -> Resp {
    with_dav_headers(status(StatusCode::OK))
}
