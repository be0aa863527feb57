//! One place mapping engine errors to HTTP statuses, citing the RFCs.

use hyper::StatusCode;
use skab_engine::Error;

/// The status for an engine error, where the method adds nothing more specific.
pub fn status_of(e: &Error) -> StatusCode {
    if e.is_no_space() {
        return StatusCode::INSUFFICIENT_STORAGE;
    }
    match e {
        Error::NotFound => StatusCode::NOT_FOUND,
        // RFC 4918 §9.3.1 (MKCOL on an existing resource: 405) is handled by the method;
        // elsewhere an existing target without Overwrite is a failed precondition (§9.8.5, §9.9.4).
        Error::AlreadyExists => StatusCode::PRECONDITION_FAILED,
        // RFC 4918 §9.7.1 / §9.3.1: missing intermediate collection.
        Error::ParentMissing | Error::NotADirectory => StatusCode::CONFLICT,
        Error::IsADirectory => StatusCode::METHOD_NOT_ALLOWED,
        Error::NotEmpty => StatusCode::CONFLICT,
        Error::InvalidName(_) => StatusCode::BAD_REQUEST,
        // Moving a collection into itself and similar (RFC 4918 §9.8.5, §9.9.4: 403).
        Error::Invalid(_) => StatusCode::FORBIDDEN,
        // RFC 4918 §11.5 / RFC 4331 §6: insufficient storage.
        Error::QuotaExceeded | Error::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
        Error::LimitExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Aborted(_) => StatusCode::BAD_REQUEST,
        Error::Poisoned | Error::Busy => StatusCode::SERVICE_UNAVAILABLE,
        // An erased tenant (its key destroyed) or a key store problem: the server understood
        // the request and refuses it (RFC 9110 §15.5.4).
        Error::Key(_) => StatusCode::FORBIDDEN,
        Error::Integrity(_) | Error::Corrupt(_) | Error::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
