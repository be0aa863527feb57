//! POST of `multipart/form-data` to a collection: the upload form of the HTML listing
//! (`listing.rs`). The body is parsed as it arrives (`multer`) and each file part streams
//! straight into the engine, as a PUT body does; nothing is held whole. POST to anything
//! but a collection is 405, as before.
//!
//! Limits: the whole body is bounded like a PUT body (`limits.body_size_max`, stall
//! timeout); at most `MULTIPART_PARTS_MAX` parts; field and file names are bounded; a file
//! name must be one valid path segment; a part's head may not make the parser buffer more
//! than `MULTIPART_PART_HEAD_MAX` (plus one poll's worth of data, `MULTIPART_POLL_BYTES_MAX`).
//!
//! Success: 303 See Other back to the collection for a browser (its `Accept` names
//! `text/html`), else 201 with the stored names. Errors are short plain text.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, LOCATION};
use hyper::{HeaderMap, Request, StatusCode};
use skab_engine::ns::Name;

use super::common::{check_write_headers, declared_length, engine_error, is_dir};
use super::ctx::Ctx;
use crate::dav::locks::WriteScope;
use crate::http::body::{BodyFault, ReqBody, RequestStream};
use crate::http::response::{text, Resp};
use crate::limits::{
    MULTIPART_FIELD_NAME_LEN_MAX, MULTIPART_FILE_NAME_LEN_MAX, MULTIPART_PARTS_MAX,
    MULTIPART_PART_HEAD_MAX, MULTIPART_POLL_BYTES_MAX,
};

pub async fn handle(ctx: &Ctx, req: Request<ReqBody>) -> Resp {
    match ctx.app.store.stat(&ctx.space, &ctx.names) {
        Ok(info) if is_dir(&info) => {}
        Ok(_) => return text(StatusCode::METHOD_NOT_ALLOWED, "POST is not supported"),
        Err(e) if e.is_not_found() => {
            return text(
                StatusCode::CONFLICT,
                "no such collection: create the folder first",
            )
        }
        Err(e) => return engine_error(&e),
    }
    let boundary = match req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(multer::parse_boundary)
    {
        Some(Ok(b)) => b,
        Some(Err(multer::Error::NoBoundary)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "multipart/form-data without a boundary",
            )
        }
        _ => {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "POST to a folder takes multipart/form-data (a file upload form)",
            )
        }
    };
    let limits = &ctx.app.config.limits;
    let declared = declared_length(req.headers());
    if declared.is_some_and(|n| n > limits.body_size_max) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let meter = Arc::new(Meter::default());
    let stream = RequestStream::new(
        body,
        limits.body_size_max,
        Duration::from_secs(limits.body_stall_timeout_s),
    );
    let body_fault = stream.fault.clone();
    let feed = Feed {
        inner: stream,
        rest: None,
        this_poll: 0,
        meter: meter.clone(),
    };
    let mut form = multer::Multipart::new(feed, boundary);
    let failed = |meter: &Meter, what: &str| -> Resp {
        if body_fault.get() == Some(BodyFault::TooLarge) {
            return too_large();
        }
        match meter.fault.load(Ordering::Relaxed) {
            FAULT_STALLED => text(StatusCode::REQUEST_TIMEOUT, "request body stalled"),
            FAULT_BROKEN => text(StatusCode::BAD_REQUEST, "request body broken off"),
            FAULT_HEAD => text(
                StatusCode::BAD_REQUEST,
                "malformed multipart body: a part's headers are too long",
            ),
            _ => text(
                StatusCode::BAD_REQUEST,
                &format!("malformed multipart body: {what}"),
            ),
        }
    };
    let mut stored: Vec<String> = Vec::new();
    let mut count = 0usize;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return failed(&meter, &e.to_string()),
        };
        count += 1;
        if count > MULTIPART_PARTS_MAX {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("at most {MULTIPART_PARTS_MAX} parts in one upload"),
            );
        }
        meter.part_started();
        if field
            .name()
            .is_some_and(|n| n.len() > MULTIPART_FIELD_NAME_LEN_MAX)
        {
            return text(
                StatusCode::BAD_REQUEST,
                "malformed multipart body: field name too long",
            );
        }
        let file_name = match field.file_name() {
            // An empty file input is sent as a part without a name: nothing to store.
            Some(n) if !n.is_empty() => browser_file_name(n),
            _ => {
                let mut counted = Counted {
                    field,
                    meter: meter.clone(),
                };
                while let Some(chunk) = counted.next().await {
                    if let Err(e) = chunk {
                        return failed(&meter, &e.to_string());
                    }
                }
                continue;
            }
        };
        let name = match check_file_name(&file_name) {
            Ok(n) => n,
            Err(why) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!("file name {file_name:?}: {why}"),
                )
            }
        };
        let Ok(path) = ctx.target.path.join(name.as_str()) else {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("file name {file_name:?} is not allowed"),
            );
        };
        let mut names = ctx.names.clone();
        names.push(name);
        let existing = ctx.app.store.stat(&ctx.space, &names).ok();
        if existing.as_ref().is_some_and(is_dir) {
            return text(
                StatusCode::CONFLICT,
                &format!("a folder named {file_name:?} exists here"),
            );
        }
        let scope = if existing.is_some() {
            WriteScope::CONTENT
        } else {
            WriteScope::CREATE
        };
        if let Err(r) = check_write_headers(ctx, &parts.headers, &[(&path, scope)]) {
            let code = r.status();
            let msg = if code == StatusCode::LOCKED {
                format!("{file_name:?} or its folder is locked")
            } else {
                format!("cannot write {file_name:?}")
            };
            return text(code, &msg);
        }
        let counted = Counted {
            field,
            meter: meter.clone(),
        };
        match ctx.app.store.put(&ctx.space, &names, counted).await {
            Ok(_) => stored.push(file_name),
            Err(skab_engine::Error::Aborted(msg)) => return failed(&meter, &msg),
            Err(e) => return engine_error(&e),
        }
    }
    if stored.is_empty() {
        return text(StatusCode::BAD_REQUEST, "no file in the upload");
    }
    let here = ctx.href(&ctx.target.path, true);
    if wants_html(&parts.headers) {
        let mut r = text(StatusCode::SEE_OTHER, "uploaded");
        if let Ok(v) = HeaderValue::from_str(&here) {
            r.headers_mut().insert(LOCATION, v);
        }
        return r;
    }
    let mut body = format!("stored {} file(s) in {here}:", stored.len());
    for n in &stored {
        body.push('\n');
        body.push_str(n);
    }
    let mut r = text(StatusCode::CREATED, &body);
    if let Ok(v) = HeaderValue::from_str(&here) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn too_large() -> Resp {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload larger than the server accepts",
    )
}

/// Whether the client is a browser showing pages (`Accept` names `text/html`).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

/// Browsers send a file name raw (UTF-8) but with `"`, CR and LF as `%22`, `%0D`, `%0A`
/// (HTML, "multipart/form-data encoding algorithm"); the last two are refused later anyway.
fn browser_file_name(raw: &str) -> String {
    raw.replace("%22", "\"")
        .replace("%0D", "\r")
        .replace("%0A", "\n")
}

/// A file name that is one valid path segment, as an engine name.
fn check_file_name(name: &str) -> Result<Name, &'static str> {
    if name.len() > MULTIPART_FILE_NAME_LEN_MAX {
        return Err("too long");
    }
    if name.contains('/') || name.contains('\\') {
        return Err("must not contain / or \\");
    }
    if name == "." || name == ".." {
        return Err("not a file name");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Name::new(name).map_err(|_| "not allowed by the server")
}

const FAULT_NONE: u8 = 0;
const FAULT_STALLED: u8 = 1;
const FAULT_BROKEN: u8 = 2;
const FAULT_HEAD: u8 = 3;

/// What the request feed and the parts tell each other (one request, one task).
#[derive(Default)]
struct Meter {
    /// Request bytes given to the parser.
    fed: AtomicU64,
    /// Part data bytes taken out of the parser.
    data: AtomicU64,
    /// `fed - data` when the current part started: the parser's overhead before it.
    baseline: AtomicU64,
    /// Why the feed failed (`FAULT_*`).
    fault: AtomicU8,
}

impl Meter {
    fn overhead(&self) -> u64 {
        self.fed
            .load(Ordering::Relaxed)
            .saturating_sub(self.data.load(Ordering::Relaxed))
    }

    fn part_started(&self) {
        self.baseline.store(self.overhead(), Ordering::Relaxed);
    }
}

/// Why the feed failed (the parser wraps it; the `Meter` keeps the kind).
#[derive(Debug)]
struct Fault(&'static str);

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Fault {}

/// The request body as the parser gets it: at most `MULTIPART_POLL_BYTES_MAX` per poll (the
/// parser reads greedily into its buffer), and failing when what the parser holds beyond
/// part data grows past a part head's bound (an endless header or preamble).
struct Feed {
    inner: RequestStream,
    rest: Option<Bytes>,
    this_poll: u64,
    meter: Arc<Meter>,
}

impl Stream for Feed {
    type Item = Result<Bytes, Fault>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.this_poll >= MULTIPART_POLL_BYTES_MAX {
            // Let the parser hand on what it has before it buffers more.
            this.this_poll = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut chunk = match this.rest.take() {
            Some(b) => b,
            None => match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => b,
                Poll::Ready(Some(Err(f))) => {
                    let code = match f {
                        BodyFault::Stalled => FAULT_STALLED,
                        BodyFault::Broken => FAULT_BROKEN,
                        // `RequestStream::fault` tells this one.
                        BodyFault::TooLarge => FAULT_NONE,
                    };
                    this.meter.fault.store(code, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(Fault("request body failed"))));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    this.this_poll = 0;
                    return Poll::Pending;
                }
            },
        };
        let room = MULTIPART_POLL_BYTES_MAX - this.this_poll;
        if chunk.len() as u64 > room {
            this.rest = Some(chunk.split_off(room as usize));
        }
        this.this_poll += chunk.len() as u64;
        let m = &this.meter;
        m.fed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        let held = m
            .overhead()
            .saturating_sub(m.baseline.load(Ordering::Relaxed));
        if held > MULTIPART_PART_HEAD_MAX + MULTIPART_POLL_BYTES_MAX {
            m.fault.store(FAULT_HEAD, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Fault("part head too long"))));
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

/// A part's data, counted into the `Meter` as it leaves the parser.
struct Counted {
    field: multer::Field<'static>,
    meter: Arc<Meter>,
}

impl Stream for Counted {
    type Item = Result<Bytes, multer::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.field).poll_next(cx);
        if let Poll::Ready(Some(Ok(b))) = &r {
            this.meter.data.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_single_segments() {
        assert!(check_file_name("Skærmbillede ø.png").is_ok());
        assert!(check_file_name("a \"quoted\" name.txt").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb", "a\rb"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_file_name(&"x".repeat(MULTIPART_FILE_NAME_LEN_MAX + 1)).is_err());
        assert_eq!(browser_file_name("a%22b%22.txt"), "a\"b\".txt");
    }
}
