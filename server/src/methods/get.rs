//! GET and HEAD (RFC 9110 §9.3.1-2): files streamed chunk by chunk with single byte ranges
//! (RFC 9110 §14), conditional requests (§13); a collection gets an HTML listing
//! (`listing.rs`).

use crate::http::body::ReqBody;
use futures::StreamExt;
use hyper::header::{
    HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE,
    LAST_MODIFIED, RANGE,
};
use hyper::{Method, Request, Response, StatusCode};

use super::common::{engine_error, etag, is_dir, time_of};
use super::ctx::Ctx;
use crate::dav::headers::{
    evaluate_preconditions, if_range_allows, parse_range, Precondition, RangeRequest,
};
use crate::http::body::{empty, full, streamed};
use crate::http::response::{status, Resp};

pub async fn handle(ctx: &Ctx, req: &Request<ReqBody>) -> Resp {
    let head = req.method() == Method::HEAD;
    let info = match ctx.app.store.stat(&ctx.space, &ctx.names) {
        Ok(i) => i,
        Err(e) => return engine_error(&e),
    };
    let tag = etag(&info);
    let mtime = time_of(info.mtime);
    match evaluate_preconditions(req.headers(), req.method(), true, Some(&tag), Some(mtime)) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            let mut r = status(StatusCode::NOT_MODIFIED);
            if let Ok(v) = HeaderValue::from_str(&tag) {
                r.headers_mut().insert(ETAG, v);
            }
            return r;
        }
        Precondition::Failed => return status(StatusCode::PRECONDITION_FAILED),
    }
    if is_dir(&info) {
        return super::listing::page(ctx, head);
    }
    let size = info.size;
    let mut range: Option<(u64, u64)> = None;
    if let Some(r) = req.headers().get(RANGE).and_then(|v| v.to_str().ok()) {
        let honour = match req.headers().get(IF_RANGE).and_then(|v| v.to_str().ok()) {
            Some(ir) => if_range_allows(ir, Some(&tag), Some(mtime)),
            None => true,
        };
        if honour {
            match parse_range(r, size) {
                RangeRequest::Full => {}
                // One range is served as 206; several are answered with the whole body,
                // which RFC 9110 §14.2 allows (it bounds multipart abuse too).
                RangeRequest::Partial(ranges) if ranges.len() == 1 => {
                    range = Some((ranges[0].first, ranges[0].len()));
                }
                RangeRequest::Partial(_) => {}
                RangeRequest::Unsatisfiable => {
                    let mut r = status(StatusCode::RANGE_NOT_SATISFIABLE);
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                        r.headers_mut().insert(CONTENT_RANGE, v);
                    }
                    return r;
                }
            }
        }
    }
    let (code, start, len) = match range {
        Some((s, l)) => (StatusCode::PARTIAL_CONTENT, s, l),
        None => (StatusCode::OK, 0, size),
    };
    let body = if head || len == 0 {
        empty()
    } else {
        match ctx
            .app
            .store
            .read_entry(&ctx.space, &info, Some((start, len)))
        {
            // One chunk (every small file): read it before answering (from a cache at once, or
            // by a reader thread while this loop serves others), so a read error is still a
            // clean error status and headers and body leave in one write.
            Ok(mut stream) if stream.chunks_left() == 1 => match stream.next().await {
                Some(Ok(data)) => full(data),
                Some(Err(e)) => return engine_error(&e),
                None => empty(),
            },
            Ok(stream) => streamed(stream.map(|r| {
                r.map_err(|e| {
                    tracing::error!(error = %e, "read failed mid-body");
                    std::io::Error::other(e.to_string())
                })
            })),
            Err(e) => return engine_error(&e),
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_bytes(&crate::http::date::imf_fixdate(mtime)) {
        h.insert(LAST_MODIFIED, v);
    }
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(super::common::content_type(&info.name)),
    );
    if code == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {}-{}/{}", start, start + len - 1, size);
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(CONTENT_RANGE, v);
        }
    }
    resp
}
