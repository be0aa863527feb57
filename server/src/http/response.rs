//! Small builders for the responses every method sends.

use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::body::{empty, full, Body};

pub type Resp = Response<Body>;

/// A bodyless response.
pub fn status(code: StatusCode) -> Resp {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    if code != StatusCode::NO_CONTENT && code != StatusCode::NOT_MODIFIED {
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    r
}

/// A short plain-text response (errors people may read).
pub fn text(code: StatusCode, msg: &str) -> Resp {
    let body = format!("{msg}\n");
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// An XML response (`application/xml; charset=utf-8`).
pub fn xml(code: StatusCode, body: String) -> Resp {
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    r
}
