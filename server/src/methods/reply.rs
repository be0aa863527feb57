//! Response builders that carry WebDAV bodies (`DAV:error` conditions, 207 Multi-Status).

use hyper::StatusCode;

use crate::dav::xml::{error_body, DavCondition};
use crate::http::response::{status, xml, Resp};

/// A status with a `DAV:error` body naming a precondition (RFC 4918 §16).
pub fn condition(code: StatusCode, cond: Option<&DavCondition>) -> Resp {
    match cond {
        Some(c) => xml(code, error_body(c)),
        None => status(code),
    }
}

/// 207 Multi-Status.
pub fn multistatus(body: String) -> Resp {
    xml(StatusCode::MULTI_STATUS, body)
}
