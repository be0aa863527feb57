//! One file per WebDAV method (RFC 4918, RFC 9110), dispatched here.

pub mod common;
mod copymove;
mod ctx;
mod delete;
mod get;
mod listing;
mod lock;
mod mkcol;
pub mod options;
mod post;
mod propfind;
mod proppatch;
mod put;
mod reply;
mod report;
mod status;

pub use ctx::{engine_names, Ctx};
pub use status::status_of;

use crate::http::body::ReqBody;
use hyper::{Request, StatusCode};

use crate::http::response::{text, Resp};

pub async fn dispatch(ctx: Ctx, req: Request<ReqBody>) -> Resp {
    match req.method().as_str() {
        "OPTIONS" => options::handle(&ctx),
        "GET" | "HEAD" => get::handle(&ctx, &req).await,
        "PUT" => put::handle(&ctx, req).await,
        "DELETE" => delete::handle(&ctx, &req).await,
        "MKCOL" => mkcol::handle(&ctx, req).await,
        "COPY" | "MOVE" => copymove::handle(&ctx, &req).await,
        "PROPFIND" => propfind::handle(&ctx, req).await,
        "PROPPATCH" => proppatch::handle(&ctx, req).await,
        "REPORT" => report::handle(&ctx, req).await,
        "LOCK" => lock::handle_lock(&ctx, req).await,
        "UNLOCK" => lock::handle_unlock(&ctx, &req),
        "POST" => post::handle(&ctx, req).await,
        _ => text(StatusCode::NOT_IMPLEMENTED, "method not implemented"),
    }
}
