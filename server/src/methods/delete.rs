//! DELETE (RFC 4918 §9.6): moves the entry or subtree to the user's trash (restorable);
//! locks on the removed URLs go with it. 204 on success.

use crate::http::body::ReqBody;
use hyper::{Request, StatusCode};

use super::common::{check_write, engine_error};
use super::ctx::Ctx;
use crate::dav::locks::WriteScope;
use crate::dav::path::Mount;
use crate::http::response::{status, text, Resp};
use crate::oc;

pub async fn handle(ctx: &Ctx, req: &Request<ReqBody>) -> Resp {
    if ctx.names.is_empty() {
        return text(
            StatusCode::FORBIDDEN,
            "the home collection cannot be deleted",
        );
    }
    if ctx.app.store.stat(&ctx.space, &ctx.names).is_err() {
        return status(StatusCode::NOT_FOUND);
    }
    if ctx.target.mount == Mount::OcUploads {
        return oc::upload::remove(ctx).await;
    }
    if let Err(r) = check_write(ctx, req, &[(&ctx.target.path, WriteScope::REMOVE_TREE)]) {
        return r;
    }
    match ctx.app.store.delete(&ctx.space, &ctx.names).await {
        Ok(()) => {
            ctx.app
                .locks
                .remove_tree(&ctx.lock_space(), &ctx.target.path);
            status(StatusCode::NO_CONTENT)
        }
        Err(e) => engine_error(&e),
    }
}
