//! COPY and MOVE (RFC 4918 §9.8, §9.9) inside the requester's space. COPY shares chunks
//! (metadata only). A Destination in another space is 403, on another server 502.

use crate::http::body::ReqBody;
use hyper::{Request, StatusCode};

use super::common::{check_write, engine_error, host, is_dir};
use super::ctx::{engine_names, Ctx};
use crate::dav::headers::{parse_depth, parse_overwrite, Depth};
use crate::dav::locks::WriteScope;
use crate::dav::path::{parse_destination, Destination, Mount};
use crate::dav::status::destination_status;
use crate::http::response::{status, text, Resp};
use crate::oc;

pub async fn handle(ctx: &Ctx, req: &Request<ReqBody>) -> Resp {
    let is_move = req.method().as_str() == "MOVE";
    if ctx.target.mount == Mount::OcUploads {
        return if is_move && ctx.target.path.name() == Some(oc::upload::ASSEMBLED_NAME) {
            oc::upload::finish(ctx, req).await
        } else {
            text(
                StatusCode::FORBIDDEN,
                "uploads are finished by MOVE of <upload>/.file",
            )
        };
    }
    let headers = req.headers();
    let Some(dest_raw) = headers.get("destination").and_then(|v| v.to_str().ok()) else {
        return text(StatusCode::BAD_REQUEST, "Destination header missing");
    };
    let dest = parse_destination(
        dest_raw,
        &ctx.target.space,
        host(headers, ctx.app.public_authority.as_deref()),
    )
    .and_then(|d| match d {
        Destination::Local(p) => p
            .path
            .check_len(ctx.app.config.limits.path_len_max)
            .map(|()| Destination::Local(p)),
        other => Ok(other),
    });
    if let Some(code) = destination_status(&dest) {
        return text(
            code,
            "Destination must be inside your own space on this server",
        );
    }
    let Ok(Destination::Local(dest)) = dest else {
        return text(StatusCode::BAD_REQUEST, "bad Destination");
    };
    let overwrite = match parse_overwrite(headers.get("overwrite").and_then(|v| v.to_str().ok())) {
        Ok(o) => o,
        Err(_) => return text(StatusCode::BAD_REQUEST, "bad Overwrite header"),
    };
    let depth = match parse_depth(
        headers.get("depth").and_then(|v| v.to_str().ok()),
        Depth::Infinity,
    ) {
        Ok(d) => d,
        Err(_) => return text(StatusCode::BAD_REQUEST, "bad Depth header"),
    };
    match (is_move, depth) {
        (true, Depth::Infinity) | (false, Depth::Infinity | Depth::Zero) => {}
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "Depth must be 0 or infinity (MOVE: infinity)",
            )
        }
    }
    let src_info = match ctx.app.store.stat(&ctx.space, &ctx.names) {
        Ok(i) => i,
        Err(e) => return engine_error(&e),
    };
    let dest_names = match engine_names(&dest.path) {
        Ok(n) => n,
        Err(e) => return engine_error(&e),
    };
    if dest_names.is_empty() || ctx.names.is_empty() {
        return text(
            StatusCode::FORBIDDEN,
            "the home collection cannot be copied or moved",
        );
    }
    if dest_names == ctx.names {
        return text(StatusCode::FORBIDDEN, "source and destination are the same");
    }
    if dest_names.starts_with(&ctx.names) {
        return text(
            StatusCode::FORBIDDEN,
            "cannot copy or move a collection into itself",
        );
    }
    let dest_exists = ctx.app.store.stat(&ctx.space, &dest_names).is_ok();
    if dest_exists && !overwrite {
        return status(StatusCode::PRECONDITION_FAILED);
    }
    let dest_scope = if dest_exists {
        WriteScope::REMOVE_TREE
    } else {
        WriteScope::CREATE
    };
    let checks: Vec<(&crate::dav::path::SpacePath, WriteScope)> = if is_move {
        vec![
            (&ctx.target.path, WriteScope::REMOVE_TREE),
            (&dest.path, dest_scope),
        ]
    } else {
        vec![(&dest.path, dest_scope)]
    };
    if let Err(r) = check_write(ctx, req, &checks) {
        return r;
    }
    let store = &ctx.app.store;
    let result = if is_move {
        store
            .rename(&ctx.space, &ctx.names, &dest_names, overwrite)
            .await
    } else if depth == Depth::Zero && is_dir(&src_info) {
        copy_collection_shallow(ctx, &dest_names, dest_exists).await
    } else {
        store
            .copy(&ctx.space, &ctx.names, &dest_names, overwrite)
            .await
    };
    match result {
        Ok(()) => {
            // Locks live on URLs: a lock on the destination (whose token the client had to
            // submit) stays and now covers the new resource (RFC 4918 §7.5); Office keeps
            // editing under it after saving through a temp file moved over the original.
            if is_move {
                ctx.app
                    .locks
                    .on_move(&ctx.lock_space(), &ctx.target.path, &dest.path);
            }
            status(if dest_exists {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::CREATED
            })
        }
        Err(e) => engine_error(&e),
    }
}

/// COPY with Depth 0 of a collection: the collection and its properties, no members.
async fn copy_collection_shallow(
    ctx: &Ctx,
    dest: &[skab_engine::ns::Name],
    dest_exists: bool,
) -> Result<(), skab_engine::Error> {
    let store = &ctx.app.store;
    if dest_exists {
        store.delete(&ctx.space, dest).await?;
    }
    store.mkdir(&ctx.space, dest).await?;
    let props = store.props(&ctx.space, &ctx.names)?;
    if !props.is_empty() {
        store.set_props(&ctx.space, dest, props, Vec::new()).await?;
    }
    Ok(())
}
