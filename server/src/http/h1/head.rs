//! Request heads: parsing with `httparse` into `http` types, and the framing, persistence
//! and expectation rules of RFC 9112 §6 and §9 (refusing what could be read two ways).

use bytes::BytesMut;
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use crate::limits::H1_HEADERS_MAX;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The client allows the connection to stay open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a 100 before sending the body.
    pub expects_continue: bool,
}

/// A head that cannot be served: the status to answer with (the connection then closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadError {
    pub status: StatusCode,
    pub reason: &'static str,
}

fn bad(status: StatusCode, reason: &'static str) -> HeadError {
    HeadError { status, reason }
}

/// The outcome of trying to parse a head from the start of the read buffer.
#[derive(Debug)]
pub enum Parsed {
    Complete(Box<Head>),
    /// The head is not complete yet.
    Partial,
    /// The connection starts with the HTTP/2 preface (h2c with prior knowledge).
    Http2Preface,
}

/// The HTTP/2 connection preface (RFC 9113 §3.4), as far as it tells HTTP/2 from HTTP/1.
pub const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Parses a request head at the start of `buf`, removing it from `buf` when complete.
/// `max` bounds the head's size in bytes.
pub fn parse(buf: &mut BytesMut, max: usize) -> Result<Parsed, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; H1_HEADERS_MAX];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > max {
                return Err(bad(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request head too large",
                ));
            }
            return Ok(Parsed::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(bad(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ))
        }
        Err(httparse::Error::Version) if buf.starts_with(H2_PREFACE_START) => {
            return Ok(Parsed::Http2Preface)
        }
        Err(httparse::Error::Version) => {
            return Err(bad(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "only HTTP/1.0 and HTTP/1.1 are spoken here",
            ))
        }
        Err(_) => return Err(bad(StatusCode::BAD_REQUEST, "malformed request head")),
    };
    if len > max {
        return Err(bad(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        ));
    }
    // Offsets into the buffer, so that the frozen head can be sliced without copying.
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let method = req
        .method
        .map(|m| Method::from_bytes(m.as_bytes()))
        .and_then(Result::ok)
        .ok_or(bad(StatusCode::BAD_REQUEST, "bad method"))?;
    let path = span(req.path.unwrap_or("").as_bytes());
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut names = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| bad(StatusCode::BAD_REQUEST, "bad header name"))?;
        names.push((name, span(h.value)));
    }
    let head = buf.split_to(len).freeze();
    let slice = |(at, n): (usize, usize)| head.slice(at..at + n);
    let uri = Uri::from_maybe_shared(slice(path))
        .map_err(|_| bad(StatusCode::BAD_REQUEST, "bad request target"))?;
    let mut headers = HeaderMap::with_capacity(names.len());
    for (name, value) in names {
        let value = HeaderValue::from_maybe_shared(slice(value))
            .map_err(|_| bad(StatusCode::BAD_REQUEST, "bad header value"))?;
        headers.append(name, value);
    }
    let framing = framing(&headers, version)?;
    let keep_alive = keep_alive(&headers, version);
    let expects_continue = version == Version::HTTP_11
        && headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    Ok(Parsed::Complete(Box::new(Head {
        method,
        uri,
        version,
        headers,
        framing,
        keep_alive,
        expects_continue,
    })))
}

/// RFC 9112 §6.3, strictly: chunked must be the only coding; Transfer-Encoding together
/// with Content-Length, or Content-Length values that disagree, are refused (smuggling).
fn framing(headers: &HeaderMap, version: Version) -> Result<Framing, HeadError> {
    let mut te = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if te.peek().is_some() {
        if version == Version::HTTP_10 {
            return Err(bad(
                StatusCode::BAD_REQUEST,
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(bad(
                StatusCode::BAD_REQUEST,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let mut codings = te.flat_map(|v| v.as_bytes().split(|&b| b == b','));
        let only_chunked = codings
            .next()
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
            && codings.next().is_none();
        if !only_chunked {
            return Err(bad(
                StatusCode::NOT_IMPLEMENTED,
                "unsupported Transfer-Encoding (only chunked)",
            ));
        }
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    for v in headers.get_all(CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let n = parse_length(part.trim_ascii())
                .ok_or(bad(StatusCode::BAD_REQUEST, "bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad(StatusCode::BAD_REQUEST, "conflicting Content-Length"));
            }
            length = Some(n);
        }
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

/// A Content-Length value: 1 to 19 decimal digits (no sign, no overflow).
fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, d| n * 10 + (d - b'0') as u64))
}

/// RFC 9112 §9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive`.
fn keep_alive(headers: &HeaderMap, version: Version) -> bool {
    let mut close = false;
    let mut keep = false;
    for v in headers.get_all(CONNECTION) {
        for token in v.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    !close && (version == Version::HTTP_11 || keep)
}

/// Drops empty lines before a request line (RFC 9112 §2.2: a server should ignore at least
/// one; some clients send a CRLF after a body).
pub fn skip_leading_empty_lines(buf: &mut BytesMut) {
    let n = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if n > 0 {
        let _ = buf.split_to(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Parsed, HeadError> {
        parse(&mut BytesMut::from(s.as_bytes()), 64 * 1024)
    }

    fn head(s: &str) -> Head {
        match parse_str(s) {
            Ok(Parsed::Complete(h)) => *h,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    fn status(s: &str) -> StatusCode {
        match parse_str(s) {
            Err(e) => e.status,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn parses_a_webdav_request_and_leaves_the_rest() {
        let mut buf = BytesMut::from(
            &b"PROPFIND /dav/t/u/a%20b HTTP/1.1\r\nHost: x\r\nDepth: 1\r\nContent-Length: 3\r\n\r\nabcNEXT"[..],
        );
        let Ok(Parsed::Complete(h)) = parse(&mut buf, 1024) else {
            panic!()
        };
        assert_eq!(h.method.as_str(), "PROPFIND");
        assert_eq!(h.uri.path(), "/dav/t/u/a%20b");
        assert_eq!(h.version, Version::HTTP_11);
        assert_eq!(h.headers["depth"], "1");
        assert_eq!(h.framing, Framing::Length(3));
        assert!(h.keep_alive && !h.expects_continue);
        assert_eq!(&buf[..], b"abcNEXT");
    }

    #[test]
    fn framing_and_persistence_rules() {
        let h =
            head("PUT /a HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nExpect: 100-Continue\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.expects_continue);
        assert_eq!(head("GET / HTTP/1.1\r\n\r\n").framing, Framing::Length(0));
        assert!(!head("GET / HTTP/1.1\r\nConnection: x, Close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert_eq!(
            head("PUT / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").framing,
            Framing::Length(5)
        );
        assert!(!head("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expects_continue);
    }

    #[test]
    fn ambiguous_or_unsupported_heads_are_refused() {
        for (req, want) in [
            (
                "PUT / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "PUT / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                400,
            ),
            ("PUT / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", 400),
            ("PUT / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
            ("PUT / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400),
            (
                "PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                400,
            ),
            (
                "PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            (
                "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                501,
            ),
            ("PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            ("GET / HTTP/3.0\r\n\r\n", 505),
            ("G\0T / HTTP/1.1\r\n\r\n", 400),
        ] {
            assert_eq!(status(req).as_u16(), want, "{req:?}");
        }
        let many: String = (0..=H1_HEADERS_MAX)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\n{many}\r\n")).as_u16(),
            431
        );
        let mut long = BytesMut::from(format!("GET /{} HTTP/1.1\r\n", "a".repeat(100)).as_bytes());
        assert_eq!(parse(&mut long, 64).unwrap_err().status.as_u16(), 431);
    }

    #[test]
    fn partial_heads_and_the_h2_preface() {
        assert!(matches!(
            parse_str("GET / HTTP/1.1\r\nHost: x\r\n"),
            Ok(Parsed::Partial)
        ));
        assert!(matches!(
            parse_str("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Ok(Parsed::Http2Preface)
        ));
        let mut buf = BytesMut::from(&b"\r\n\r\nGET"[..]);
        skip_leading_empty_lines(&mut buf);
        assert_eq!(&buf[..], b"GET");
    }

    #[test]
    fn parse_never_panics() {
        use proptest::prelude::*;
        proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..300))| {
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = parse(&mut buf, 200);
        });
    }
}
