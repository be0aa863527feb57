//! What several methods share: the `If` header, lock checks, validators and error responses.

// Handlers return a ready response as the error of their checks; it is built once per
// request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::body::ReqBody;
use hyper::{HeaderMap, Request, StatusCode};
use skab_engine::ns::{EntryInfo, Etag, Kind};

use super::ctx::{engine_names, Ctx};
use super::reply::condition;
use super::status::status_of;
use crate::dav::headers::{IfHeader, ResourceState};
use crate::dav::locks::WriteScope;
use crate::dav::path::{parse_uri_ref, HostCheck, SpacePath, UriTarget};
use crate::dav::status::{lock_error, LockOp};
use crate::http::body::{read_all, BodyFault};
use crate::http::response::{status, text, Resp};

/// Bytes of the content hash shown in an ETag: 128 bits stay collision-free for every file
/// a server will hold, and keep `If` headers short (some clients, litmus among them, cut
/// `If` headers near 200 bytes, and a full 64-digit hash twice would not fit).
pub const ETAG_HASH_BYTES: usize = 16;

/// The body length a request declares (`Content-Length`), if any and well-formed.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The strong ETag of an entry, quoted: a file's content hash (truncated), or a
/// collection's identity and change time.
pub fn etag(info: &EntryInfo) -> String {
    match &info.etag {
        Etag::Content(h) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut s = String::with_capacity(2 + 2 * ETAG_HASH_BYTES);
            s.push('"');
            for b in &h.0[..ETAG_HASH_BYTES] {
                s.push(HEX[(b >> 4) as usize] as char);
                s.push(HEX[(b & 15) as usize] as char);
            }
            s.push('"');
            s
        }
        other => format!("\"{other}\""),
    }
}

/// The media type guessed from a file name's extension (static, no allocation).
///
/// `mime_guess` searches its whole table per call (7 % of a PROPFIND Depth 1); the files of
/// one listing mostly share a few extensions, so each thread remembers its last few answers.
pub fn content_type(name: &str) -> &'static str {
    const OCTET: &str = "application/octet-stream";
    let ext = match name.rsplit_once('.') {
        // `.profile` has no extension (as `Path::extension` says).
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => return OCTET,
    };
    let guess = |ext: &str| mime_guess::from_ext(ext).first_raw().unwrap_or(OCTET);
    if ext.len() > CONTENT_TYPE_CACHE_EXT_MAX {
        return guess(ext);
    }
    CONTENT_TYPES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, ct)) = cache.entries.iter().find(|(e, _)| e.as_str() == ext) {
            return *ct;
        }
        let ct = guess(ext);
        let slot = cache.next % CONTENT_TYPE_CACHE_ENTRIES;
        cache.next = cache.next.wrapping_add(1);
        if slot < cache.entries.len() {
            cache.entries[slot] = (ext.to_string(), ct);
        } else {
            cache.entries.push((ext.to_string(), ct));
        }
        ct
    })
}

/// Extensions each thread remembers in [`content_type`] (replaced round-robin).
const CONTENT_TYPE_CACHE_ENTRIES: usize = 8;
/// Longer extensions are looked up every time (they are rare; keeps the cache small).
const CONTENT_TYPE_CACHE_EXT_MAX: usize = 16;

#[derive(Default)]
struct ContentTypeCache {
    entries: Vec<(String, &'static str)>,
    next: usize,
}

thread_local! {
    static CONTENT_TYPES: std::cell::RefCell<ContentTypeCache> =
        std::cell::RefCell::new(ContentTypeCache::default());
}

/// Nanoseconds since the epoch as a SystemTime.
pub fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH
    }
}

pub fn is_dir(info: &EntryInfo) -> bool {
    info.kind == Kind::Dir
}

/// An engine error as a response.
pub fn engine_error(e: &skab_engine::Error) -> Resp {
    let code = status_of(e);
    if code == StatusCode::INSUFFICIENT_STORAGE {
        return text(code, "insufficient storage: quota or disk full");
    }
    if code.is_server_error() {
        tracing::error!(error = %e, "engine error");
        return text(code, "internal error");
    }
    text(code, &e.to_string())
}

/// Stat of a path in the requester's space, `None` when unmapped.
pub fn stat(ctx: &Ctx, path: &SpacePath) -> Option<EntryInfo> {
    let names = engine_names(path).ok()?;
    ctx.app.store.stat(&ctx.space, &names).ok()
}

/// Parses the `If` header (RFC 4918 §10.4), if present.
pub fn if_header(headers: &HeaderMap) -> Result<Option<IfHeader>, Resp> {
    match headers.get("if") {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| text(StatusCode::BAD_REQUEST, "If header is not ASCII"))?;
            IfHeader::parse(s)
                .map(Some)
                .map_err(|e| text(StatusCode::BAD_REQUEST, &format!("bad If header: {e}")))
        }
    }
}

/// The request's `Host` (or `:authority`), and `http.public_url`'s authority when set, for
/// matching absolute URIs.
pub fn host<'a>(headers: &'a HeaderMap, public: Option<&'a str>) -> HostCheck<'a> {
    match (
        headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok()),
        public,
    ) {
        (Some(h), Some(p)) => HostCheck::Either(h, p),
        (Some(h), None) => HostCheck::Require(h),
        (None, Some(p)) => HostCheck::Require(p),
        (None, None) => HostCheck::Ignore,
    }
}

/// Evaluates the `If` header against current state; false is 412 (RFC 4918 §10.4.1).
pub fn if_holds(ctx: &Ctx, headers: &HeaderMap, ifh: &IfHeader) -> bool {
    let hostc = host(headers, ctx.app.public_authority.as_deref());
    ifh.evaluate(|tag| {
        let path = match tag {
            None => Some(ctx.target.path.clone()),
            Some(uri) => match parse_uri_ref(uri, hostc, Some(&ctx.target.space)) {
                Ok(UriTarget::Local(p)) if p.space == ctx.target.space => Some(p.path),
                _ => None,
            },
        };
        let Some(path) = path else {
            return ResourceState::default();
        };
        let etag = stat(ctx, &path).map(|i| etag(&i));
        let lock_tokens = ctx
            .app
            .locks
            .locks_covering(&ctx.lock_space(), &path)
            .into_iter()
            .map(|l| l.token)
            .collect();
        ResourceState { etag, lock_tokens }
    })
}

/// The `If` header checks of a write: the header must hold, and every lock protecting what
/// the write touches must have its token submitted. Returns the submitted tokens.
pub fn check_write(
    ctx: &Ctx,
    req: &Request<ReqBody>,
    writes: &[(&SpacePath, WriteScope)],
) -> Result<(), Resp> {
    check_write_headers(ctx, req.headers(), writes)
}

/// [`check_write`] with the request's headers only (for a body already being consumed).
pub fn check_write_headers(
    ctx: &Ctx,
    headers: &HeaderMap,
    writes: &[(&SpacePath, WriteScope)],
) -> Result<(), Resp> {
    let ifh = if_header(headers)?;
    if let Some(ifh) = &ifh {
        if !if_holds(ctx, headers, ifh) {
            return Err(status(StatusCode::PRECONDITION_FAILED));
        }
    }
    let tokens: Vec<&str> = ifh
        .as_ref()
        .map(|h| h.submitted_tokens())
        .unwrap_or_default();
    for (path, scope) in writes {
        if let Err(e) =
            ctx.app
                .locks
                .check_write(&ctx.lock_space(), path, *scope, &tokens, &ctx.principal())
        {
            let (code, cond) = lock_error(&e, LockOp::Write, |p| ctx.href(p, false));
            return Err(condition(code, cond.as_ref()));
        }
    }
    Ok(())
}

/// Reads a request's XML body (PROPFIND, PROPPATCH, LOCK) within the size and stall limits.
pub async fn read_xml_body(ctx: &Ctx, req: Request<ReqBody>) -> Result<Vec<u8>, Resp> {
    let limits = &ctx.app.config.limits;
    let stall = Duration::from_secs(limits.body_stall_timeout_s);
    match read_all(req.into_body(), limits.xml_size_max, stall).await {
        Ok(b) => Ok(b),
        Err(BodyFault::TooLarge) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )),
        Err(f) => Err(text(StatusCode::BAD_REQUEST, &f.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn content_type_matches_mime_guess_with_and_without_the_cache() {
        let names = [
            "a.txt",
            "b.PDF",
            "c.docx",
            "d.odt",
            "e.png",
            "f.jpg",
            "g.html",
            "h.css",
            "i.js",
            "j.json",
            "k.xml",
            "l.bin",
            ".profile",
            "noext",
            "trailing.",
            "x.tar.gz",
            "weird.ÆØÅ",
            "long.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "a.txt",
            "z.TXT",
        ];
        for round in 0..3 {
            for n in names {
                let expected = mime_guess::from_path(n)
                    .first_raw()
                    .unwrap_or("application/octet-stream");
                assert_eq!(content_type(n), expected, "{n} (round {round})");
            }
        }
    }
}
