//! Fuzzes the WebDAV/HTTP header parsers: Depth, Overwrite, Timeout, Lock-Token, If (parse,
//! evaluate), Range (with its invariants), If-Range and the RFC 9110 preconditions.
//! Input: 8 bytes of representation length, then the header text; every parser sees the
//! whole text, and its lines become If-Match / If-None-Match / If-(Un)Modified-Since values.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use skab_server::dav::headers::{
    evaluate_preconditions, if_range_allows, parse_depth, parse_lock_token, parse_overwrite,
    parse_range, parse_timeout, Depth, IfHeader, RangeRequest, ResourceState,
};

fuzz_target!(|data: &[u8]| {
    let (len, text) = match data.split_first_chunk::<8>() {
        Some((l, rest)) => (u64::from_le_bytes(*l), rest),
        None => (0, data),
    };
    let Ok(s) = std::str::from_utf8(text) else {
        return;
    };
    let _ = parse_depth(Some(s), Depth::Infinity);
    let _ = parse_overwrite(Some(s));
    let max = Duration::from_secs(3600);
    let t = parse_timeout(Some(s), Duration::from_secs(600), max);
    assert!(t >= Duration::from_secs(1) && t <= max, "timeout {t:?}");
    let _ = parse_lock_token(s);
    if let Ok(h) = IfHeader::parse(s) {
        let _ = h.submitted_tokens();
        let _ = h.evaluate(|tag| ResourceState {
            etag: tag.map(|_| "\"e1\"".to_string()),
            lock_tokens: vec!["opaquelocktoken:abc".into()],
        });
        let _ = h.evaluate(|_| ResourceState::default());
    }
    if let RangeRequest::Partial(ranges) = parse_range(s, len) {
        assert!(!ranges.is_empty());
        let mut prev: Option<u64> = None;
        for r in &ranges {
            assert!(r.first <= r.last && r.last < len, "{r:?} of {len}");
            if let Some(p) = prev {
                assert!(
                    r.first > p.saturating_add(1),
                    "ranges not coalesced: {ranges:?}"
                );
            }
            prev = Some(r.last);
            let _ = r.len();
        }
    }
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let _ = if_range_allows(s, Some("\"e1\""), Some(modified));
    let _ = if_range_allows(s, None, None);

    let names = [
        http::header::IF_MATCH,
        http::header::IF_NONE_MATCH,
        http::header::IF_MODIFIED_SINCE,
        http::header::IF_UNMODIFIED_SINCE,
    ];
    let mut headers = HeaderMap::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(names[i % names.len()].clone(), v);
        }
    }
    for method in [Method::GET, Method::PUT] {
        for exists in [false, true] {
            let _ =
                evaluate_preconditions(&headers, &method, exists, Some("W/\"e1\""), Some(modified));
            let _ = evaluate_preconditions(&headers, &method, exists, None, None);
        }
    }
});
