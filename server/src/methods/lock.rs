//! LOCK and UNLOCK (RFC 4918 §9.10, §9.11): exclusive and shared write locks, depth 0 and
//! infinity, refresh by an empty body with the token in `If`, and locks on unmapped URLs,
//! which create an empty resource (§7.3).

use crate::http::body::ReqBody;
use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};

use super::common::{engine_error, if_header, if_holds, is_dir, read_xml_body};
use super::ctx::Ctx;
use super::reply::condition;
use crate::dav::headers::{parse_depth, parse_lock_token, parse_timeout, Depth};
use crate::dav::locks::{LockDepth, LockRequest};
use crate::dav::status::{lock_error, xml_error, LockOp};
use crate::dav::xml::{lock_response_body, parse_lockinfo_limited, XmlLimits};
use crate::http::response::{status, text, xml, Resp};

pub async fn handle_lock(ctx: &Ctx, req: Request<ReqBody>) -> Resp {
    let lcfg = &ctx.app.lock_config;
    let timeout = parse_timeout(
        req.headers().get("timeout").and_then(|v| v.to_str().ok()),
        lcfg.default_timeout,
        lcfg.max_timeout,
    );
    let depth = match parse_depth(
        req.headers().get("depth").and_then(|v| v.to_str().ok()),
        Depth::Infinity,
    ) {
        Ok(Depth::Zero) => LockDepth::Zero,
        Ok(Depth::Infinity) => LockDepth::Infinity,
        Ok(Depth::One) | Err(_) => {
            return text(StatusCode::BAD_REQUEST, "LOCK Depth must be 0 or infinity")
        }
    };
    let ifh = match if_header(req.headers()) {
        Ok(h) => h,
        Err(r) => return r,
    };
    if let Some(h) = &ifh {
        if !if_holds(ctx, req.headers(), h) {
            return status(StatusCode::PRECONDITION_FAILED);
        }
    }
    let body = match read_xml_body(ctx, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let existing = ctx.app.store.stat(&ctx.space, &ctx.names).ok();
    let root_href = |info: &crate::dav::locks::LockInfo| {
        let collection = existing.as_ref().is_some_and(is_dir) && info.root == ctx.target.path;
        ctx.href(&info.root, collection)
    };
    let parsed = if body.iter().all(|b| b.is_ascii_whitespace()) {
        Ok(None)
    } else {
        parse_lockinfo_limited(&body, XmlLimits::from_config(&ctx.app.config.limits))
    };
    let lockinfo = match parsed {
        Ok(l) => l,
        Err(e) => {
            let (code, cond) = xml_error(&e);
            return condition(code, cond.as_ref());
        }
    };
    let Some(lockinfo) = lockinfo else {
        // Refresh (§9.10.2): the lock is named by a token in the If header.
        let tokens: Vec<&str> = ifh
            .as_ref()
            .map(|h| h.submitted_tokens())
            .unwrap_or_default();
        if tokens.is_empty() {
            return text(
                StatusCode::BAD_REQUEST,
                "a lock refresh needs the lock token in an If header",
            );
        }
        return match ctx.app.locks.refresh(
            &ctx.lock_space(),
            &ctx.target.path,
            &tokens,
            timeout,
            &ctx.principal(),
        ) {
            Ok(info) => xml(StatusCode::OK, lock_response_body(&info, &root_href(&info))),
            Err(e) => {
                let (code, cond) = lock_error(&e, LockOp::Refresh, |p| ctx.href(p, false));
                condition(code, cond.as_ref())
            }
        };
    };
    let request = LockRequest {
        path: &ctx.target.path,
        scope: lockinfo.scope,
        depth,
        timeout,
        owner: lockinfo.owner,
        principal: &ctx.principal(),
        resource_exists: existing.is_some(),
    };
    let info = match ctx.app.locks.lock(&ctx.lock_space(), request) {
        Ok(i) => i,
        Err(e) => {
            let (code, cond) = lock_error(&e, LockOp::Lock, |p| ctx.href(p, false));
            return condition(code, cond.as_ref());
        }
    };
    let mut code = StatusCode::OK;
    if existing.is_none() {
        // §7.3: a LOCK on an unmapped URL creates an empty resource.
        if let Err(e) = ctx
            .app
            .store
            .put_bytes(&ctx.space, &ctx.names, Bytes::new())
            .await
        {
            let _ = ctx.app.locks.unlock(
                &ctx.lock_space(),
                &ctx.target.path,
                &info.token,
                &ctx.principal(),
            );
            return engine_error(&e);
        }
        code = StatusCode::CREATED;
    }
    let mut r = xml(code, lock_response_body(&info, &root_href(&info)));
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>", info.token)) {
        r.headers_mut().insert("lock-token", v);
    }
    r
}

pub fn handle_unlock(ctx: &Ctx, req: &Request<ReqBody>) -> Resp {
    let Some(raw) = req
        .headers()
        .get("lock-token")
        .and_then(|v| v.to_str().ok())
    else {
        return text(StatusCode::BAD_REQUEST, "Lock-Token header missing");
    };
    let token = match parse_lock_token(raw) {
        Ok(t) => t,
        Err(_) => return text(StatusCode::BAD_REQUEST, "bad Lock-Token header"),
    };
    match ctx.app.locks.unlock(
        &ctx.lock_space(),
        &ctx.target.path,
        &token,
        &ctx.principal(),
    ) {
        Ok(_) => status(StatusCode::NO_CONTENT),
        Err(e) => {
            let (code, cond) = lock_error(&e, LockOp::Unlock, |p| ctx.href(p, false));
            condition(code, cond.as_ref())
        }
    }
}
