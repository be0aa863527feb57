//! Response heads: status line, the handler's fields, `date`, and the framing fields the
//! connection decides (RFC 9112 §6.1-6.3), written into one buffer.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Version};
use hyper::body::Body as _;

use crate::http::body::Body;
use crate::http::date::{imf_fixdate, IMF_FIXDATE_LEN};

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and a body of unknown length).
    Close,
}

/// Decides the framing of a response and fixes its framing fields. `keep_alive` is what
/// the exchange allows so far; it is turned off when the handler asks or the framing
/// needs the close.
pub fn framing(
    method: &Method,
    version: Version,
    status: StatusCode,
    headers: &mut HeaderMap,
    body: &Body,
    keep_alive: &mut bool,
) -> Framing {
    if headers
        .get(CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
    {
        *keep_alive = false;
    }
    headers.remove(CONNECTION);
    headers.remove(TRANSFER_ENCODING);
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        headers.remove(CONTENT_LENGTH);
        return Framing::None;
    }
    if method == Method::HEAD {
        return Framing::None;
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared {
        return Framing::Length(n);
    }
    headers.remove(CONTENT_LENGTH);
    if let Some(n) = body.size_hint().exact() {
        headers.insert(CONTENT_LENGTH, n.into());
        return Framing::Length(n);
    }
    if version == Version::HTTP_11 {
        return Framing::Chunked;
    }
    *keep_alive = false;
    Framing::Close
}

/// Appends the head of a response to `out`.
pub fn head(
    out: &mut Vec<u8>,
    version: Version,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    keep_alive: bool,
) {
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(&date_now());
    out.extend_from_slice(b"\r\n\r\n");
}

/// The head of a chunk of `len` bytes (`<hex>\r\n`).
pub fn chunk_head(len: usize) -> Vec<u8> {
    format!("{len:x}\r\n").into_bytes()
}

thread_local! {
    /// The `date` value of the current second, per serving thread.
    static DATE: Cell<(u64, [u8; IMF_FIXDATE_LEN])> = const { Cell::new((u64::MAX, [0; IMF_FIXDATE_LEN])) };
}

/// Now as an IMF-fixdate, rendered at most once a second per thread.
fn date_now() -> [u8; IMF_FIXDATE_LEN] {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let (at, text) = d.get();
        if at == secs {
            return text;
        }
        let text = imf_fixdate(now);
        d.set((secs, text));
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::{empty, full, streamed};
    use http::HeaderValue;

    fn decide(
        method: Method,
        version: Version,
        status: u16,
        body: &Body,
        cl: Option<&str>,
    ) -> (Framing, bool, HeaderMap) {
        let mut h = HeaderMap::new();
        if let Some(v) = cl {
            h.insert(CONTENT_LENGTH, HeaderValue::from_str(v).unwrap());
        }
        let mut keep = true;
        let f = framing(
            &method,
            version,
            StatusCode::from_u16(status).unwrap(),
            &mut h,
            body,
            &mut keep,
        );
        (f, keep, h)
    }

    #[test]
    fn framing_rules() {
        let stream = || streamed(futures::stream::empty());
        assert_eq!(
            decide(Method::GET, Version::HTTP_11, 200, &full("abc"), None).0,
            Framing::Length(3)
        );
        assert_eq!(
            decide(Method::GET, Version::HTTP_11, 200, &empty(), Some("9")).0,
            Framing::Length(9)
        );
        assert_eq!(
            decide(Method::HEAD, Version::HTTP_11, 200, &empty(), Some("9")).0,
            Framing::None
        );
        let (f, keep, h) = decide(Method::PUT, Version::HTTP_11, 204, &empty(), Some("0"));
        assert_eq!((f, keep), (Framing::None, true));
        assert!(!h.contains_key(CONTENT_LENGTH));
        assert_eq!(
            decide(Method::GET, Version::HTTP_11, 200, &stream(), None).0,
            Framing::Chunked
        );
        let (f, keep, _) = decide(Method::GET, Version::HTTP_10, 200, &stream(), None);
        assert_eq!((f, keep), (Framing::Close, false));
    }

    #[test]
    fn head_is_well_formed() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
        let mut out = Vec::new();
        head(
            &mut out,
            Version::HTTP_11,
            StatusCode::MULTI_STATUS,
            &h,
            Framing::Length(3),
            false,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 207 Multi-Status\r\ncontent-length: 3\r\nconnection: close\r\ndate: "
            ),
            "{text}"
        );
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
        assert_eq!(chunk_head(255), b"ff\r\n");
    }
}
