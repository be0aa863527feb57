//! COPY and MOVE between two engine spaces that one user reaches through their home: from
//! the home into a space or share shown in it, back, or from one to another (a sync client
//! moving a file into the class folder). The engine copies and renames inside one space
//! only, so this copies entry by entry, each file by reference to its stored content (no
//! byte is read or written again: dedup), then, for MOVE, deletes the source. A crash half
//! way leaves a partial copy and the whole source, never a loss.
// A refusal is the response itself, as in `methods::common`.
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use hyper::{Request, StatusCode};
use skab_engine::ns::{EntryInfo, Name};
use skab_engine::SpaceKey;

use crate::dav::locks::WriteScope;
use crate::http::body::ReqBody;
use crate::http::response::{status, text, Resp};
use crate::limits::CROSS_COPY_ENTRIES_MAX;
use crate::methods::common::{check_write, engine_error, is_dir};
use crate::methods::Ctx;

/// Counts the entries of the tree at `path` (itself included), up to `max` + 1.
fn count(store: &skab_engine::Store, space: &SpaceKey, path: &[Name], max: usize) -> usize {
    let mut n = 0;
    let mut stack = vec![path.to_vec()];
    while let Some(p) = stack.pop() {
        n += 1;
        if n > max {
            return n;
        }
        if let Ok((info, children)) = store.list(space, &p) {
            if is_dir(&info) {
                for c in children {
                    if let Ok(name) = Name::new(&c.name) {
                        let mut q = p.clone();
                        q.push(name);
                        stack.push(q);
                    }
                }
            }
        }
    }
    n
}

type Step<'a> = Pin<Box<dyn Future<Output = Result<(), skab_engine::Error>> + Send + 'a>>;

/// Copies the entry `info` at `from` in `src` to `to` in `dest`, folders with everything in
/// them, files by reference to their content (with their modification time).
fn copy_tree<'a>(
    store: &'a skab_engine::Store,
    src: &'a SpaceKey,
    from: Vec<Name>,
    info: EntryInfo,
    dest: &'a SpaceKey,
    to: Vec<Name>,
) -> Step<'a> {
    Box::pin(async move {
        if is_dir(&info) {
            store.mkdir(dest, &to).await?;
            let (_, children) = store.list(src, &from)?;
            for c in children {
                let name = Name::new(&c.name)?;
                let mut f = from.clone();
                f.push(name.clone());
                let mut t = to.clone();
                t.push(name);
                copy_tree(store, src, f, c, dest, t).await?;
            }
            return Ok(());
        }
        match &info.content {
            Some(c) if c.size > 0 => {
                store
                    .put_assembled(dest, &to, std::slice::from_ref(c), Some(info.mtime))
                    .await?;
            }
            _ => {
                store.put_bytes(dest, &to, Bytes::new()).await?;
            }
        }
        Ok(())
    })
}

/// COPY or MOVE of `src`'s target to `dest`'s target, two contexts of different spaces
/// (both already checked for what the requester may do there).
pub async fn copy_across(src: &Ctx, dest: &Ctx, req: &Request<ReqBody>, is_move: bool) -> Resp {
    let store = &src.app.store;
    let info = match store.stat(&src.space, &src.names) {
        Ok(i) => i,
        Err(e) => return engine_error(&e),
    };
    if dest.names.is_empty() || (is_move && src.names.is_empty()) {
        return text(StatusCode::FORBIDDEN, "a root cannot be replaced or moved");
    }
    // Two URLs of one space (a space's own and its folder in a home): not into itself.
    if src.space == dest.space && dest.names.starts_with(&src.names) {
        return text(
            StatusCode::FORBIDDEN,
            "the destination lies inside the source",
        );
    }
    let overwrite = !req
        .headers()
        .get("overwrite")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("f"));
    let existing = store.stat(&dest.space, &dest.names).ok();
    if existing.is_some() && !overwrite {
        return status(StatusCode::PRECONDITION_FAILED);
    }
    if dest
        .target
        .path
        .parent()
        .and_then(|p| crate::methods::common::stat(dest, &p))
        .is_none_or(|p| !is_dir(&p))
    {
        return text(
            StatusCode::CONFLICT,
            "the destination's folder does not exist",
        );
    }
    if count(store, &src.space, &src.names, CROSS_COPY_ENTRIES_MAX) > CROSS_COPY_ENTRIES_MAX {
        return text(
            StatusCode::FORBIDDEN,
            &format!("more than {CROSS_COPY_ENTRIES_MAX} files and folders: copy them in parts"),
        );
    }
    let scope = if existing.is_some() {
        WriteScope::REMOVE_TREE
    } else {
        WriteScope::CREATE
    };
    if let Err(r) = check_write(dest, req, &[(&dest.target.path, scope)]) {
        return r;
    }
    if is_move {
        if let Err(r) = check_write(src, req, &[(&src.target.path, WriteScope::REMOVE_TREE)]) {
            return r;
        }
    }
    if existing.is_some() {
        if let Err(e) = store.delete(&dest.space, &dest.names).await {
            return engine_error(&e);
        }
    }
    if let Err(e) = copy_tree(
        store,
        &src.space,
        src.names.clone(),
        info,
        &dest.space,
        dest.names.clone(),
    )
    .await
    {
        return engine_error(&e);
    }
    if is_move {
        if let Err(e) = store.delete(&src.space, &src.names).await {
            return engine_error(&e);
        }
        src.app
            .locks
            .remove_tree(&src.lock_space(), &src.target.path);
    }
    status(if existing.is_some() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    })
}
