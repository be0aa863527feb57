//! MKCOL (RFC 4918 §9.3): 201 created, 405 when the URL is mapped, 409 without a parent
//! collection, 415 for a request body (no extended MKCOL).

use crate::http::body::ReqBody;
use hyper::body::Body as _;
use hyper::{Request, StatusCode};

use super::common::{check_write, engine_error};
use super::ctx::Ctx;
use crate::dav::locks::WriteScope;
use crate::dav::path::Mount;
use crate::http::response::{status, text, Resp};
use crate::oc;
use hyper::header::HeaderValue;

pub async fn handle(ctx: &Ctx, req: Request<ReqBody>) -> Resp {
    let has_body = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "0")
        || (!req.body().is_end_stream()
            && req.headers().contains_key(hyper::header::TRANSFER_ENCODING));
    if has_body {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "MKCOL with a body is not supported",
        );
    }
    if ctx.app.store.stat(&ctx.space, &ctx.names).is_ok() {
        return text(StatusCode::METHOD_NOT_ALLOWED, "the URL is already mapped");
    }
    if let Err(r) = check_write(ctx, &req, &[(&ctx.target.path, WriteScope::CREATE)]) {
        return r;
    }
    if ctx.target.mount == Mount::OcUploads {
        if let Err(r) = oc::upload::before_mkcol(ctx, &req) {
            return r;
        }
    }
    match ctx.app.store.mkdir(&ctx.space, &ctx.names).await {
        Ok(info) => {
            let mut r = status(StatusCode::CREATED);
            if let Ok(v) = HeaderValue::from_str(&oc::headers::oc_id_of(ctx.access.file_id(&info)))
            {
                r.headers_mut().insert("oc-fileid", v);
            }
            r
        }
        Err(skab_engine::Error::AlreadyExists) => status(StatusCode::METHOD_NOT_ALLOWED),
        Err(e) => engine_error(&e),
    }
}
