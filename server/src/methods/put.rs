//! PUT (RFC 9110 §9.3.4, RFC 4918 §9.7): the body is streamed into the engine, never held
//! whole; the file appears atomically once durable. 201 when created, 204 when replaced.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::http::body::ReqBody;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, ETAG};
use hyper::{Request, StatusCode};

use super::common::{check_write, engine_error, etag, is_dir, time_of};
use super::ctx::Ctx;
use crate::dav::headers::{evaluate_preconditions, Precondition};
use crate::dav::locks::WriteScope;
use crate::http::body::{BodyFault, RequestStream};
use crate::http::response::{status, text, Resp};

pub async fn handle(ctx: &Ctx, req: Request<ReqBody>) -> Resp {
    if ctx.names.is_empty() {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "cannot PUT on the home collection",
        );
    }
    if req.headers().contains_key(CONTENT_RANGE) {
        // RFC 9110 §14.4: a partial PUT must not be taken as a full replacement.
        return text(
            StatusCode::BAD_REQUEST,
            "Content-Range on PUT is not supported",
        );
    }
    let existing = ctx.app.store.stat(&ctx.space, &ctx.names).ok();
    if let Some(info) = &existing {
        if is_dir(info) {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "a collection exists at this URL",
            );
        }
    }
    let tag = existing.as_ref().map(etag);
    let mtime = existing.as_ref().map(|i| time_of(i.mtime));
    if evaluate_preconditions(
        req.headers(),
        req.method(),
        existing.is_some(),
        tag.as_deref(),
        mtime,
    ) != Precondition::Proceed
    {
        return status(StatusCode::PRECONDITION_FAILED);
    }
    let scope = if existing.is_some() {
        WriteScope::CONTENT
    } else {
        WriteScope::CREATE
    };
    if let Err(r) = check_write(ctx, &req, &[(&ctx.target.path, scope)]) {
        return r;
    }
    let limits = &ctx.app.config.limits;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared {
        if n > limits.body_size_max {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file larger than the server accepts",
            );
        }
        // Refuse before reading a byte when the quota cannot take it (RFC 4331 §6).
        if let Ok(usage) = ctx.app.store.usage(&ctx.space) {
            let old = existing.as_ref().map(|i| i.size).unwrap_or(0);
            if usage
                .available_bytes()
                .is_some_and(|a| n > a.saturating_add(old))
            {
                return text(StatusCode::INSUFFICIENT_STORAGE, "quota exceeded");
            }
        }
    }
    let stream = RequestStream::new(
        req.into_body(),
        limits.body_size_max,
        Duration::from_secs(limits.body_stall_timeout_s),
    );
    let too_large = stream.too_large.clone();
    let result = ctx.app.store.put(&ctx.space, &ctx.names, stream).await;
    match result {
        Ok(info) => {
            let code = if existing.is_some() {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::CREATED
            };
            let mut r = status(code);
            if let Ok(v) = HeaderValue::from_str(&etag(&info)) {
                r.headers_mut().insert(ETAG, v);
            }
            r
        }
        Err(skab_engine::Error::Aborted(msg)) => {
            if too_large.load(Ordering::Relaxed) {
                text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "file larger than the server accepts",
                )
            } else if msg == BodyFault::Stalled.to_string() {
                text(StatusCode::REQUEST_TIMEOUT, "request body stalled")
            } else {
                text(StatusCode::BAD_REQUEST, &msg)
            }
        }
        Err(e) => engine_error(&e),
    }
}
