//! PUT (RFC 9110 §9.3.4, RFC 4918 §9.7): the body is streamed into the engine, never held
//! whole; the file appears atomically once durable. 201 when created, 204 when replaced.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::http::body::ReqBody;
use hyper::header::CONTENT_RANGE;
use hyper::{Request, StatusCode};

use super::common::{check_write, declared_length, engine_error, etag, is_dir, time_of};
use super::ctx::Ctx;
use crate::dav::headers::{evaluate_preconditions, Precondition};
use crate::dav::locks::WriteScope;
use crate::dav::path::Mount;
use crate::http::body::{BodyFault, RequestStream};
use crate::http::response::{status, text, Resp};
use crate::oc::{self, checksum::Verifying};

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
    let (mtime, expected) = match oc::headers::upload_headers(req.headers()) {
        Ok(h) => h,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    // A chunk of a client's chunked upload: bounded by what the user's home can take.
    let room = if ctx.target.mount == Mount::OcUploads {
        match oc::upload::before_chunk(ctx, &req) {
            Ok(r) => r,
            Err(r) => return r,
        }
    } else {
        None
    };
    // An upload into a hand-in earns a receipt (`handin::access`): its BLAKE3 is taken here.
    let handin = req.extensions().get::<crate::handin::Upload>().cloned();
    let limits = &ctx.app.config.limits;
    let declared = declared_length(req.headers());
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
        if room.is_some_and(|r| n > r) {
            return text(StatusCode::INSUFFICIENT_STORAGE, "quota exceeded");
        }
    }
    let max = room.map_or(limits.body_size_max, |r| r.min(limits.body_size_max));
    let stream = RequestStream::new(
        req.into_body(),
        max,
        Duration::from_secs(limits.body_stall_timeout_s),
    );
    let fault = stream.fault.clone();
    let stream = Verifying::new(stream, expected.clone());
    let mismatch = stream.mismatch.clone();
    let stream = crate::handin::receipt::Hashing::new(stream, handin.is_some());
    let hashed = stream.done.clone();
    let result = ctx
        .app
        .store
        .put_at(&ctx.space, &ctx.names, stream, mtime)
        .await;
    match result {
        Ok(info) => {
            if expected.is_some() || existing.is_some() {
                oc::checksum::keep(&ctx.app, &ctx.space, &ctx.names, &info, expected.as_ref())
                    .await;
            }
            let code = if existing.is_some() {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::CREATED
            };
            let mut r = status(code);
            oc::headers::after_upload(
                &mut r,
                &etag(&info),
                mtime.is_some(),
                ctx.access.file_id(&info),
            );
            if let Some(u) = &handin {
                let hash = *hashed.lock();
                if let Err(e) = crate::handin::access::after_put(ctx, u, &info, hash, &mut r).await
                {
                    return e;
                }
            }
            r
        }
        // The engine reports a failed body stream as `Aborted`; why it failed is known here.
        Err(skab_engine::Error::Aborted(msg)) => {
            if mismatch.load(Ordering::Relaxed) {
                return text(
                    StatusCode::BAD_REQUEST,
                    "the uploaded bytes differ from their OC-Checksum",
                );
            }
            match fault.get() {
                // Over what the user's quota leaves of a chunked upload, or over the size limit.
                Some(BodyFault::TooLarge) if room.is_some_and(|r| r < limits.body_size_max) => {
                    text(StatusCode::INSUFFICIENT_STORAGE, "quota exceeded")
                }
                Some(BodyFault::TooLarge) => text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "file larger than the server accepts",
                ),
                Some(BodyFault::Stalled) => {
                    text(StatusCode::REQUEST_TIMEOUT, "request body stalled")
                }
                Some(BodyFault::Broken) | None => text(StatusCode::BAD_REQUEST, &msg),
            }
        }
        Err(e) => engine_error(&e),
    }
}
