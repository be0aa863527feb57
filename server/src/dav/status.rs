//! The HTTP status (and `DAV:error` condition) for each error of the protocol layer.
//!
//! The full table with its RFC citations is in `docs/webdav.md`.

use http::StatusCode;

use super::headers::HeaderError;
use super::locks::LockError;
use super::path::{Destination, PathError, SpacePath};
use super::xml::{DavCondition, XmlError};

/// A status with an optional `DAV:error` body condition.
pub type DavStatus = (StatusCode, Option<DavCondition>);

/// Request-target errors: RFC 9110 §15.5.15 (414), §15.5.5 (404), §15.5.1 (400).
pub fn path_error(e: &PathError) -> StatusCode {
    match e {
        PathError::TooLong => StatusCode::URI_TOO_LONG,
        PathError::NotDav | PathError::NoSpace => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Destination errors and placement: a bad URI is 400; another server 502 and another
/// space 403 (RFC 4918 §9.8.5, §9.9.4). None when the destination is usable.
pub fn destination_status(d: &Result<Destination, PathError>) -> Option<StatusCode> {
    match d {
        Ok(Destination::Local(_)) => None,
        Ok(Destination::OtherSpace(_)) => Some(StatusCode::FORBIDDEN),
        Ok(Destination::OtherHost) => Some(StatusCode::BAD_GATEWAY),
        Err(PathError::TooLong) => Some(StatusCode::URI_TOO_LONG),
        Err(_) => Some(StatusCode::BAD_REQUEST),
    }
}

/// Malformed Depth/Overwrite/If/Lock-Token: 400 (RFC 4918 §10, RFC 9110 §15.5.1).
pub fn header_error(_: &HeaderError) -> StatusCode {
    StatusCode::BAD_REQUEST
}

/// Request bodies: 413 when too large (RFC 9110 §15.5.14), 403 `no-external-entities` for any
/// DTD (RFC 4918 §16), otherwise 400 (RFC 4918 §8.2: not well-formed or not as expected).
pub fn xml_error(e: &XmlError) -> DavStatus {
    match e {
        XmlError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, None),
        XmlError::Dtd => (
            StatusCode::FORBIDDEN,
            Some(DavCondition::NoExternalEntities),
        ),
        _ => (StatusCode::BAD_REQUEST, None),
    }
}

/// Which request met the lock error (the same error answers differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOp {
    Lock,
    Refresh,
    Unlock,
    /// Any write checked with `check_write`.
    Write,
}

/// Lock errors (RFC 4918 §9.10.6, §9.11.1, §11.3, §16); `href` encodes a lock root.
pub fn lock_error(e: &LockError, op: LockOp, href: impl Fn(&SpacePath) -> String) -> DavStatus {
    match (e, op) {
        (LockError::Conflict { root }, _) => (
            StatusCode::LOCKED,
            Some(DavCondition::NoConflictingLock(vec![href(root)])),
        ),
        (LockError::Locked { root }, _) => (
            StatusCode::LOCKED,
            Some(DavCondition::LockTokenSubmitted(vec![href(root)])),
        ),
        (LockError::NoSuchLock | LockError::NotInScope, LockOp::Unlock) => (
            StatusCode::CONFLICT,
            Some(DavCondition::LockTokenMatchesRequestUri),
        ),
        (LockError::NoSuchLock | LockError::NotInScope, _) => {
            (StatusCode::PRECONDITION_FAILED, None)
        }
        (LockError::NotOwner, _) => (StatusCode::FORBIDDEN, None),
        (LockError::TooManyLocks, _) => (StatusCode::SERVICE_UNAVAILABLE, None),
        (LockError::OwnerTooLarge, _) => (StatusCode::BAD_REQUEST, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::path::{parse_destination, HostCheck, SpaceKey};

    #[test]
    fn table() {
        assert_eq!(path_error(&PathError::TooLong), StatusCode::URI_TOO_LONG);
        assert_eq!(path_error(&PathError::DotSegment), StatusCode::BAD_REQUEST);
        assert_eq!(path_error(&PathError::NotDav), StatusCode::NOT_FOUND);
        assert_eq!(
            xml_error(&XmlError::TooLarge).0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            xml_error(&XmlError::Dtd),
            (
                StatusCode::FORBIDDEN,
                Some(DavCondition::NoExternalEntities)
            )
        );
        assert_eq!(
            xml_error(&XmlError::Malformed("x".into())).0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            header_error(&HeaderError::BadDepth),
            StatusCode::BAD_REQUEST
        );
        let href = |p: &SpacePath| format!("/dav/t/u/{}", p.as_str());
        let root = SpacePath::from_segments(["a"]).unwrap();
        assert_eq!(
            lock_error(
                &LockError::Locked { root: root.clone() },
                LockOp::Write,
                href
            ),
            (
                StatusCode::LOCKED,
                Some(DavCondition::LockTokenSubmitted(vec!["/dav/t/u/a".into()]))
            )
        );
        assert_eq!(
            lock_error(&LockError::Conflict { root }, LockOp::Lock, href),
            (
                StatusCode::LOCKED,
                Some(DavCondition::NoConflictingLock(vec!["/dav/t/u/a".into()]))
            )
        );
        assert_eq!(
            lock_error(&LockError::NoSuchLock, LockOp::Unlock, href).0,
            StatusCode::CONFLICT
        );
        assert_eq!(
            lock_error(&LockError::NoSuchLock, LockOp::Refresh, href).0,
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            lock_error(&LockError::NotOwner, LockOp::Unlock, href).0,
            StatusCode::FORBIDDEN
        );

        let me = SpaceKey {
            tenant: "t".into(),
            user: "u".into(),
        };
        let h = HostCheck::Require("h");
        assert_eq!(
            destination_status(&parse_destination("http://h/dav/t/u/x", &me, h)),
            None
        );
        assert_eq!(
            destination_status(&parse_destination("http://h/dav/t/v/x", &me, h)),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            destination_status(&parse_destination("http://g/dav/t/u/x", &me, h)),
            Some(StatusCode::BAD_GATEWAY)
        );
        assert_eq!(
            destination_status(&parse_destination("x", &me, h)),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
