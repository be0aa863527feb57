//! Chunked uploads as the ownCloud and Nextcloud clients make them ("chunking NG", Nextcloud's
//! v2): `MKCOL /remote.php/dav/uploads/<user>@<tenant>/<transfer>`, `PUT` each chunk into
//! it, then `MOVE <transfer>/.file` to the destination. The chunks are ordinary files of
//! the tenant's upload space (folder `<user>/<transfer>/`), stored, deduplicated and made
//! durable as they arrive, so an acknowledged chunk survives a crash and the client can
//! resume (it lists the folder with PROPFIND). The final MOVE commits the destination as the
//! chunks' contents end to end (`Store::put_assembled`): no byte is copied. Uploads left
//! alone for `storage.upload_ttl_s` are removed at start and by the maintenance loop. Design and costs:
//! `docs/webdav.md`, "Sync clients".
// A refusal is the response itself, as in `methods::common`.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use skab_engine::ns::{Content, EntryInfo, Kind, Name};
use skab_engine::SpaceKey;

use super::checksum::{Expected, Hasher};
use super::headers::{after_upload, upload_headers};
use crate::app::App;
use crate::dav::headers::{evaluate_preconditions, Precondition};
use crate::dav::locks::WriteScope;
use crate::dav::path::{parse_destination, DavPath, Destination, Mount, UPLOADS_SPACE_USER};
use crate::dav::status::destination_status;
use crate::http::body::ReqBody;
use crate::http::response::{status, text, Resp};
use crate::limits::{OC_CHUNKS_PER_UPLOAD_MAX, OC_UPLOADS_PER_USER_MAX};
use crate::methods::common::{check_write, engine_error, etag, host, is_dir};
use crate::methods::{engine_names, Ctx};

/// The name the final MOVE gives as its source inside the upload folder.
pub const ASSEMBLED_NAME: &str = ".file";

/// The upload space of `tenant`.
pub fn uploads_space(tenant: &str) -> Result<SpaceKey, skab_engine::Error> {
    SpaceKey::new(tenant, UPLOADS_SPACE_USER)
}

/// Makes sure the tenant's upload space and the user's folder in it exist.
pub async fn prepare(app: &App, uploads: &SpaceKey, user: &str) -> Result<(), Resp> {
    if !app.store.space_exists(uploads) {
        app.store
            .create_space(uploads)
            .await
            .map_err(|e| engine_error(&e))?;
    }
    let folder = [Name::new(user).map_err(|e| engine_error(&e))?];
    if app.store.stat(uploads, &folder).is_err() {
        match app.store.mkdir(uploads, &folder).await {
            Ok(_) | Err(skab_engine::Error::AlreadyExists) => {}
            Err(e) => return Err(engine_error(&e)),
        }
    }
    Ok(())
}

/// The user whose home an upload-space request acts for, and that home's key.
fn home_of(ctx: &Ctx) -> Result<SpaceKey, Resp> {
    let user = ctx
        .target
        .path
        .segments()
        .next()
        .ok_or_else(|| status(StatusCode::FORBIDDEN))?;
    SpaceKey::new(ctx.space.tenant(), user).map_err(|e| engine_error(&e))
}

/// `OC-Total-Length`, when sent.
fn total_length(req: &Request<ReqBody>) -> Result<Option<u64>, Resp> {
    match req.headers().get("oc-total-length") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| text(StatusCode::BAD_REQUEST, "OC-Total-Length is not a number")),
    }
}

/// Bytes the user's home can still take, less what their pending uploads already hold.
fn room(ctx: &Ctx, home: &SpaceKey) -> Option<u64> {
    let available = ctx.app.store.usage(home).ok()?.available_bytes()?;
    let folder = ctx.app.store.stat(&ctx.space, &ctx.names[..1]).ok()?;
    let pending = ctx.app.store.tree_bytes(&ctx.space, folder.id);
    Some(available.saturating_sub(pending))
}

/// Checks before an upload folder is made: the per-user count, and that the declared total
/// fits the quota.
pub fn before_mkcol(ctx: &Ctx, req: &Request<ReqBody>) -> Result<(), Resp> {
    if ctx.names.len() != 2 {
        return Err(text(
            StatusCode::FORBIDDEN,
            "an upload folder is made directly inside your uploads",
        ));
    }
    let open = ctx
        .app
        .store
        .list(&ctx.space, &ctx.names[..1])
        .map(|(_, c)| c.len())
        .unwrap_or(0);
    if open >= OC_UPLOADS_PER_USER_MAX {
        return Err(text(
            StatusCode::INSUFFICIENT_STORAGE,
            "too many unfinished uploads; finish or delete some",
        ));
    }
    check_total(ctx, req)
}

fn check_total(ctx: &Ctx, req: &Request<ReqBody>) -> Result<(), Resp> {
    let home = home_of(ctx)?;
    if let (Some(total), Some(room)) = (total_length(req)?, room(ctx, &home)) {
        if total > room {
            return Err(text(StatusCode::INSUFFICIENT_STORAGE, "quota exceeded"));
        }
    }
    Ok(())
}

/// Checks before a chunk is stored: it goes into an upload folder, their number is bounded,
/// and the declared total fits the quota. Returns the most bytes the chunk may have.
pub fn before_chunk(ctx: &Ctx, req: &Request<ReqBody>) -> Result<Option<u64>, Resp> {
    if ctx.names.len() != 3 {
        return Err(text(
            StatusCode::FORBIDDEN,
            "chunks go into an upload folder (MKCOL it first)",
        ));
    }
    let chunks = ctx
        .app
        .store
        .list(&ctx.space, &ctx.names[..2])
        .map(|(_, c)| c.len())
        .map_err(|e| engine_error(&e))?;
    if chunks >= OC_CHUNKS_PER_UPLOAD_MAX {
        return Err(text(
            StatusCode::INSUFFICIENT_STORAGE,
            "too many chunks in one upload",
        ));
    }
    check_total(ctx, req)?;
    let home = home_of(ctx)?;
    Ok(room(ctx, &home))
}

/// The chunks of an upload folder in upload order: by number when every name is one (the
/// clients name them by offset or index), else by name.
fn chunks_in_order(mut chunks: Vec<EntryInfo>) -> Vec<EntryInfo> {
    chunks.retain(|c| c.kind == Kind::File);
    let numeric = chunks
        .iter()
        .all(|c| !c.name.is_empty() && c.name.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        chunks.sort_by(|a, b| {
            let (x, y) = (
                a.name.trim_start_matches('0'),
                b.name.trim_start_matches('0'),
            );
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        });
    } else {
        chunks.sort_by(|a, b| a.name.cmp(&b.name));
    }
    chunks
}

/// `MOVE <transfer>/.file`: commits the chunks as the destination file.
pub async fn finish(ctx: &Ctx, req: &Request<ReqBody>) -> Resp {
    if ctx.names.len() != 3 {
        return text(StatusCode::NOT_FOUND, "not an upload folder");
    }
    let home = match home_of(ctx) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let Some(dest_raw) = req
        .headers()
        .get("destination")
        .and_then(|v| v.to_str().ok())
    else {
        return text(StatusCode::BAD_REQUEST, "MOVE needs a Destination header");
    };
    let dest = parse_destination(
        dest_raw,
        &ctx.target.space,
        host(req.headers(), ctx.app.public_authority.as_deref()),
    );
    if let Some(code) = destination_status(&dest).filter(|c| *c != StatusCode::FORBIDDEN) {
        return text(code, "bad Destination");
    }
    let dest: DavPath = match dest {
        Ok(Destination::Local(p) | Destination::OtherSpace(p)) => p,
        _ => return text(StatusCode::BAD_REQUEST, "bad Destination"),
    };
    if dest.mount == Mount::OcUploads
        || dest.space.tenant != home.tenant()
        || dest.space.user != home.user()
    {
        return text(
            StatusCode::FORBIDDEN,
            "an upload is finished into your own files",
        );
    }
    let names = match engine_names(&dest.path) {
        Ok(n) if !n.is_empty() => n,
        Ok(_) => return text(StatusCode::METHOD_NOT_ALLOWED, "cannot replace the home"),
        Err(e) => return engine_error(&e),
    };
    let (mtime, expected) = match upload_headers(req.headers()) {
        Ok(h) => h,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    let home_ctx = Ctx {
        app: ctx.app.clone(),
        space: home.clone(),
        target: dest,
        names,
        access: Default::default(),
    };
    // Into a space or share shown in the home: its space, under its permissions.
    let home_ctx = match crate::spaces::access::upload_ctx(
        &ctx.app,
        home.tenant(),
        home.user(),
        &home_ctx.target,
    )
    .await
    {
        Ok(Some(c)) => c,
        Ok(None) => home_ctx,
        Err(r) => return r,
    };
    let home = home_ctx.space.clone();
    let existing = ctx.app.store.stat(&home, &home_ctx.names).ok();
    if existing.as_ref().is_some_and(is_dir) {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "a collection exists at the destination",
        );
    }
    // The clients send the destination's expected ETag as `OC-If-Destination-Match`
    // (and some as `If-Match`): a file changed meanwhile is a conflict, not overwritten.
    let tag = existing.as_ref().map(etag);
    for h in ["oc-if-destination-match", "if-match"] {
        if let Some(want) = req.headers().get(h).and_then(|v| v.to_str().ok()) {
            let mut headers = hyper::HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(want) {
                headers.insert(hyper::header::IF_MATCH, v);
            }
            let ok = evaluate_preconditions(
                &headers,
                &hyper::Method::PUT,
                existing.is_some(),
                tag.as_deref(),
                None,
            ) == Precondition::Proceed;
            if !ok {
                return status(StatusCode::PRECONDITION_FAILED);
            }
        }
    }
    let scope = if existing.is_some() {
        WriteScope::CONTENT
    } else {
        WriteScope::CREATE
    };
    if let Err(r) = check_write(&home_ctx, req, &[(&home_ctx.target.path, scope)]) {
        return r;
    }
    let listed = match ctx.app.store.list(&ctx.space, &ctx.names[..2]) {
        Ok((_, c)) => c,
        Err(e) => return engine_error(&e),
    };
    let chunks = chunks_in_order(listed);
    let parts: Vec<Arc<Content>> = chunks.iter().filter_map(|c| c.content.clone()).collect();
    if parts.is_empty() {
        return text(StatusCode::BAD_REQUEST, "the upload has no chunks");
    }
    let size: u64 = parts.iter().map(|p| p.size).sum();
    match total_length(req) {
        Ok(Some(total)) if total != size => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("the chunks hold {size} bytes, OC-Total-Length says {total}"),
            )
        }
        Ok(_) => {}
        Err(r) => return r,
    }
    if let Some(e) = &expected {
        match digest(ctx, &chunks, e).await {
            Ok(hex) if hex == e.hex => {}
            Ok(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "the uploaded bytes differ from their OC-Checksum",
                )
            }
            Err(r) => return r,
        }
    }
    let info = match ctx
        .app
        .store
        .put_assembled(&home, &home_ctx.names, &parts, mtime)
        .await
    {
        Ok(i) => i,
        Err(e) => return engine_error(&e),
    };
    super::checksum::keep(&ctx.app, &home, &home_ctx.names, &info, expected.as_ref()).await;
    // The destination holds the chunks now; the folder goes for good (no trash).
    if let Err(e) = purge(&ctx.app, &ctx.space, &ctx.names[..2]).await {
        tracing::warn!(error = %e, "an upload folder was not removed after its MOVE");
    }
    let code = if existing.is_some() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    };
    let mut r = status(code);
    after_upload(
        &mut r,
        &etag(&info),
        mtime.is_some(),
        home_ctx.access.file_id(&info),
    );
    r
}

/// The digest of the chunks end to end (read back: the clients send the whole file's
/// checksum with the final MOVE).
async fn digest(ctx: &Ctx, chunks: &[EntryInfo], e: &Expected) -> Result<String, Resp> {
    let mut h = Hasher::new(e.kind);
    let mut path = ctx.names[..2].to_vec();
    for c in chunks {
        let name = Name::new(&c.name).map_err(|e| engine_error(&e))?;
        path.push(name);
        let (_, mut stream) = ctx
            .app
            .store
            .read(&ctx.space, &path, None)
            .map_err(|e| engine_error(&e))?;
        path.pop();
        while let Some(b) = stream.next().await {
            h.update(&b.map_err(|e| engine_error(&e))?);
        }
    }
    Ok(h.finish())
}

/// `DELETE` inside the uploads: removes for good (no trash), so the chunks' bytes go.
pub async fn remove(ctx: &Ctx) -> Resp {
    if ctx.names.len() < 2 {
        return text(StatusCode::FORBIDDEN, "your uploads folder stays");
    }
    match purge(&ctx.app, &ctx.space, &ctx.names).await {
        Ok(()) => status(StatusCode::NO_CONTENT),
        Err(e) => engine_error(&e),
    }
}

/// Deletes `path` and drops it from the trash at once.
async fn purge(app: &App, key: &SpaceKey, path: &[Name]) -> Result<(), skab_engine::Error> {
    app.store.delete(key, path).await?;
    let id = app
        .store
        .trash(key)?
        .into_iter()
        .filter(|t| t.orig_path == path)
        .map(|t| t.id)
        .max();
    if let Some(id) = id {
        app.store.purge(key, id).await?;
    }
    Ok(())
}

/// Removes upload folders untouched for `storage.upload_ttl_s` (at start and from the
/// maintenance loop). Returns how many went.
pub async fn expire(app: &App) -> usize {
    let ttl = Duration::from_secs(app.config.storage.upload_ttl_s);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64;
    let mut removed = 0;
    for tenant in app.store.tenants() {
        let Ok(key) = uploads_space(&tenant) else {
            continue;
        };
        let Ok((_, users)) = app.store.list(&key, &[]) else {
            continue;
        };
        for user in users.iter().filter(|u| u.kind == Kind::Dir) {
            let Ok(user_name) = Name::new(&user.name) else {
                continue;
            };
            let Ok((_, uploads)) = app.store.list(&key, std::slice::from_ref(&user_name)) else {
                continue;
            };
            for up in uploads {
                if now.saturating_sub(up.mtime) < ttl.as_nanos() as i64 {
                    continue;
                }
                let Ok(name) = Name::new(&up.name) else {
                    continue;
                };
                let path = [user_name.clone(), name];
                match purge(app, &key, &path).await {
                    Ok(()) => removed += 1,
                    Err(e) => tracing::warn!(error = %e, "an expired upload was not removed"),
                }
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use skab_engine::NodeId;

    fn file(name: &str) -> EntryInfo {
        EntryInfo {
            id: NodeId(1),
            name: name.into(),
            kind: Kind::File,
            size: 1,
            mtime: 0,
            ctime: 0,
            etag: skab_engine::ns::Etag::Content(skab_engine::ContentHash([0; 32])),
            content: None,
        }
    }

    #[test]
    fn chunks_are_ordered_by_number_or_name() {
        let names = |v: Vec<EntryInfo>| -> Vec<String> {
            chunks_in_order(v).into_iter().map(|c| c.name).collect()
        };
        assert_eq!(
            names(vec![file("10485760"), file("0"), file("20971520")]),
            ["0", "10485760", "20971520"]
        );
        assert_eq!(
            names(vec![file("00002"), file("00010"), file("00001")]),
            ["00001", "00002", "00010"]
        );
        assert_eq!(
            names(vec![file("b"), file("a1"), file("a")]),
            ["a", "a1", "b"]
        );
    }
}
