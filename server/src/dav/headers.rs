//! Parsers and evaluators of the WebDAV (RFC 4918) and HTTP conditional/range (RFC 9110) headers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, Method};

use crate::limits::{DAV_HEADER_LEN_MAX, DAV_IF_CONDITIONS_MAX, DAV_RANGES_MAX};

/// Why a WebDAV header was refused (the handler answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("Depth must be 0, 1 or infinity")]
    BadDepth,
    #[error("Overwrite must be T or F")]
    BadOverwrite,
    #[error("Lock-Token must be a Coded-URL <...>")]
    BadLockToken,
    #[error("malformed If header: {0}")]
    BadIf(&'static str),
    #[error("header longer than {DAV_HEADER_LEN_MAX} bytes")]
    TooLong,
}

// ---------------------------------------------------------------- Depth, Overwrite, Timeout

/// The Depth header (RFC 4918 §10.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Depth {
    Zero,
    One,
    Infinity,
}

/// Parses Depth; absent means `default` (infinity for PROPFIND/COPY/MOVE/LOCK, per method).
pub fn parse_depth(value: Option<&str>, default: Depth) -> Result<Depth, HeaderError> {
    match value.map(str::trim) {
        None => Ok(default),
        Some("0") => Ok(Depth::Zero),
        Some("1") => Ok(Depth::One),
        Some(v) if v.eq_ignore_ascii_case("infinity") => Ok(Depth::Infinity),
        Some(_) => Err(HeaderError::BadDepth),
    }
}

/// Parses Overwrite (RFC 4918 §10.6); absent means `T`.
pub fn parse_overwrite(value: Option<&str>) -> Result<bool, HeaderError> {
    match value.map(str::trim) {
        None => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("t") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("f") => Ok(false),
        Some(_) => Err(HeaderError::BadOverwrite),
    }
}

/// Parses Timeout (RFC 4918 §10.7): the first understood `Second-n` or `Infinite` of the
/// list, clamped to `[1 s, max]`; absent or not understood gives `default` (also clamped).
pub fn parse_timeout(value: Option<&str>, default: Duration, max: Duration) -> Duration {
    let clamp = |d: Duration| d.clamp(Duration::from_secs(1), max.max(Duration::from_secs(1)));
    let Some(value) = value else {
        return clamp(default);
    };
    for item in value.split(',').map(str::trim) {
        if item.eq_ignore_ascii_case("infinite") {
            return clamp(max);
        }
        let Some(prefix) = item.get(..7) else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case("second-") {
            continue;
        }
        let digits = &item[7..];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        return clamp(Duration::from_secs(saturating_u64(digits)));
    }
    clamp(default)
}

/// Parses Lock-Token (RFC 4918 §10.5): `<token>` to `token`.
pub fn parse_lock_token(value: &str) -> Result<String, HeaderError> {
    let v = value.trim();
    if v.len() > DAV_HEADER_LEN_MAX {
        return Err(HeaderError::TooLong);
    }
    let inner = v
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .ok_or(HeaderError::BadLockToken)?;
    if inner.is_empty()
        || inner.contains(['<', '>'])
        || inner.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Err(HeaderError::BadLockToken);
    }
    Ok(inner.to_owned())
}

fn saturating_u64(digits: &str) -> u64 {
    digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    })
}

// ---------------------------------------------------------------- entity tags

/// An entity tag split into weakness and opaque part (without quotes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityTag<'a> {
    pub weak: bool,
    pub opaque: &'a str,
}

impl<'a> EntityTag<'a> {
    /// Parses `"x"` or `W/"x"`.
    pub fn parse(s: &'a str) -> Option<Self> {
        let s = s.trim();
        let (weak, rest) = match s.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let opaque = rest.strip_prefix('"')?.strip_suffix('"')?;
        if opaque.contains('"') {
            return None;
        }
        Some(EntityTag { weak, opaque })
    }

    /// RFC 9110 §8.8.3.2 strong comparison.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// RFC 9110 §8.8.3.2 weak comparison.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// An `If-Match`/`If-None-Match` value: `*` or a list of tags.
#[derive(Debug, PartialEq, Eq)]
enum TagList<'a> {
    Any,
    Tags(Vec<EntityTag<'a>>),
}

/// Parses `*` or `#entity-tag` (quote-aware: an opaque tag may hold commas).
fn parse_tag_list(v: &str) -> Option<TagList<'_>> {
    if v.trim() == "*" {
        return Some(TagList::Any);
    }
    let b = v.as_bytes();
    let mut i = 0;
    let mut tags = Vec::new();
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        if v[i..].starts_with("W/") {
            i += 2;
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let close = v[i + 1..].find('"')? + i + 1;
        i = close + 1;
        tags.push(EntityTag::parse(&v[start..i])?);
        if tags.len() > DAV_IF_CONDITIONS_MAX {
            return None;
        }
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i < b.len() && b[i] != b',' {
            return None;
        }
    }
    if tags.is_empty() {
        None
    } else {
        Some(TagList::Tags(tags))
    }
}

// ---------------------------------------------------------------- If header (RFC 4918 §10.4)

/// One condition of an If list: a state token or an entity tag, maybe negated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfCondition {
    pub not: bool,
    pub test: IfTest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfTest {
    /// A state token (Coded-URL contents), e.g. `opaquelocktoken:...` or `DAV:no-lock`.
    Token(String),
    /// An entity tag as written, e.g. `"abc"` or `W/"abc"`.
    ETag(String),
}

/// One parenthesised list (conditions AND-ed), applying to a tagged resource or the request-URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfList {
    /// The Resource-Tag as written (absolute URI or path), None for a No-tag-list.
    pub resource: Option<String>,
    pub conditions: Vec<IfCondition>,
}

/// A parsed If header: lists OR-ed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfHeader {
    pub lists: Vec<IfList>,
}

/// The state of one resource as the If evaluator needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceState {
    /// Current entity tag as sent in ETag (quoted); None if the URL is unmapped.
    pub etag: Option<String>,
    /// Tokens of the locks whose scope covers the resource.
    pub lock_tokens: Vec<String>,
}

struct IfLexer<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> IfLexer<'a> {
    fn skip_ws(&mut self) {
        let b = self.s.as_bytes();
        while self.i < b.len() && matches!(b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.as_bytes().get(self.i).copied()
    }
    fn coded_url(&mut self) -> Result<&'a str, HeaderError> {
        // at '<'
        let rest = &self.s[self.i + 1..];
        let end = rest
            .find('>')
            .ok_or(HeaderError::BadIf("unterminated <...>"))?;
        let url = &rest[..end];
        if url.is_empty() || url.bytes().any(|b| b <= b' ' || b == b'<') {
            return Err(HeaderError::BadIf("bad Coded-URL"));
        }
        self.i += end + 2;
        Ok(url)
    }
    fn etag(&mut self) -> Result<&'a str, HeaderError> {
        // at '['
        self.i += 1;
        self.skip_ws();
        let start = self.i;
        let rest = &self.s[start..];
        let q = if rest.starts_with("W/") { 2 } else { 0 };
        if rest.as_bytes().get(q) != Some(&b'"') {
            return Err(HeaderError::BadIf("entity tag must be quoted"));
        }
        let close = rest[q + 1..]
            .find('"')
            .ok_or(HeaderError::BadIf("unterminated entity tag"))?
            + q
            + 1;
        let tag = &rest[..close + 1];
        self.i = start + close + 1;
        if self.peek() != Some(b']') {
            return Err(HeaderError::BadIf("expected ]"));
        }
        self.i += 1;
        Ok(tag)
    }
    fn list(&mut self, resource: Option<&str>, budget: &mut usize) -> Result<IfList, HeaderError> {
        // at '('
        self.i += 1;
        let mut conditions = Vec::new();
        loop {
            let mut not = false;
            match self.peek() {
                Some(b')') => {
                    self.i += 1;
                    break;
                }
                Some(b'N' | b'n') => {
                    let kw = self.s.get(self.i..self.i + 3).unwrap_or("");
                    if !kw.eq_ignore_ascii_case("not") {
                        return Err(HeaderError::BadIf("unexpected word in list"));
                    }
                    self.i += 3;
                    not = true;
                }
                None => return Err(HeaderError::BadIf("unterminated list")),
                _ => {}
            }
            let test = match self.peek() {
                Some(b'<') => IfTest::Token(self.coded_url()?.to_owned()),
                Some(b'[') => IfTest::ETag(self.etag()?.to_owned()),
                _ => return Err(HeaderError::BadIf("expected <state-token> or [etag]")),
            };
            *budget = budget
                .checked_sub(1)
                .ok_or(HeaderError::BadIf("too many conditions"))?;
            conditions.push(IfCondition { not, test });
        }
        if conditions.is_empty() {
            return Err(HeaderError::BadIf("empty list"));
        }
        Ok(IfList {
            resource: resource.map(str::to_owned),
            conditions,
        })
    }
}

impl IfHeader {
    /// Parses the If header's full RFC 4918 §10.4 grammar: `1*No-tag-list | 1*Tagged-list`.
    pub fn parse(value: &str) -> Result<IfHeader, HeaderError> {
        if value.len() > DAV_HEADER_LEN_MAX {
            return Err(HeaderError::TooLong);
        }
        let mut lx = IfLexer { s: value, i: 0 };
        let mut budget = DAV_IF_CONDITIONS_MAX;
        let mut lists = Vec::new();
        let tagged = lx.peek() == Some(b'<');
        let mut resource: Option<&str> = None;
        loop {
            match lx.peek() {
                None => break,
                Some(b'<') if tagged => {
                    resource = Some(lx.coded_url()?);
                    if lx.peek() != Some(b'(') {
                        return Err(HeaderError::BadIf("resource tag without list"));
                    }
                }
                Some(b'(') => {
                    lists.push(lx.list(resource, &mut budget)?);
                    budget = budget
                        .checked_sub(1)
                        .ok_or(HeaderError::BadIf("too many lists"))?;
                }
                Some(_) => return Err(HeaderError::BadIf("expected ( or <")),
            }
        }
        if lists.is_empty() {
            return Err(HeaderError::BadIf("no list"));
        }
        Ok(IfHeader { lists })
    }

    /// Every state token named without `Not` (the lock tokens this request submits).
    pub fn submitted_tokens(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in self.lists.iter().flat_map(|l| &l.conditions) {
            if let (false, IfTest::Token(t)) = (c.not, &c.test) {
                if !out.contains(&t.as_str()) {
                    out.push(t);
                }
            }
        }
        out
    }

    /// RFC 4918 §10.4.3: true if any list holds all its conditions. `resolve(None)` gives the
    /// request-URI's state, `resolve(Some(tag))` a tagged resource's (unmapped: default state).
    /// Entity tags compare strongly; `DAV:no-lock` never matches a lock.
    pub fn evaluate<F>(&self, mut resolve: F) -> bool
    where
        F: FnMut(Option<&str>) -> ResourceState,
    {
        let mut cache: Option<(Option<&str>, ResourceState)> = None;
        for list in &self.lists {
            let key = list.resource.as_deref();
            if !matches!(&cache, Some((k, _)) if *k == key) {
                cache = Some((key, resolve(key)));
            }
            let Some((_, state)) = &cache else { continue };
            if list
                .conditions
                .iter()
                .all(|c| c.not != condition_holds(&c.test, state))
            {
                return true;
            }
        }
        false
    }
}

fn condition_holds(test: &IfTest, state: &ResourceState) -> bool {
    match test {
        IfTest::Token(t) => state.lock_tokens.iter().any(|l| l == t),
        IfTest::ETag(t) => match (
            EntityTag::parse(t),
            state.etag.as_deref().and_then(EntityTag::parse),
        ) {
            (Some(a), Some(b)) => a.strong_eq(&b),
            _ => false,
        },
    }
}

// ---------------------------------------------------------------- Range (RFC 9110 §14)

/// One satisfiable byte range, inclusive at both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Ranges are never empty (first <= last), so this is always false.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `bytes first-last/complete` for Content-Range.
    pub fn content_range(&self, complete: u64) -> String {
        format!("bytes {}-{}/{}", self.first, self.last, complete)
    }
}

/// What a Range header asks of a representation of a given length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable Range header (absent, other unit, malformed or too many): send 200 and all.
    Full,
    /// Sorted, coalesced ranges: one gives 206 with Content-Range, several multipart/byteranges.
    Partial(Vec<ByteRange>),
    /// None of the ranges overlaps the representation: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

enum Spec {
    FromTo(u64, u64),
    From(u64),
    Suffix(u64),
}

fn parse_spec(s: &str) -> Option<Spec> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let num = |x: &str| {
        (!x.is_empty() && x.bytes().all(|c| c.is_ascii_digit())).then(|| saturating_u64(x))
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => None,
        (true, false) => num(b).map(Spec::Suffix),
        (false, true) => num(a).map(Spec::From),
        (false, false) => {
            let (x, y) = (num(a)?, num(b)?);
            (x <= y).then_some(Spec::FromTo(x, y))
        }
    }
}

/// Parses a Range header against a representation of `len` bytes.
pub fn parse_range(value: &str, len: u64) -> RangeRequest {
    let v = value.trim();
    let Some((unit, set)) = v.split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || v.len() > DAV_HEADER_LEN_MAX {
        return RangeRequest::Full;
    }
    let mut ranges = Vec::new();
    let mut specs = 0usize;
    for item in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        specs += 1;
        if specs > DAV_RANGES_MAX {
            return RangeRequest::Full;
        }
        let Some(spec) = parse_spec(item) else {
            return RangeRequest::Full;
        };
        let r = match spec {
            Spec::FromTo(a, b) if a < len => Some(ByteRange {
                first: a,
                last: b.min(len - 1),
            }),
            Spec::From(a) if a < len => Some(ByteRange {
                first: a,
                last: len - 1,
            }),
            Spec::Suffix(n) if n > 0 && len > 0 => Some(ByteRange {
                first: len.saturating_sub(n),
                last: len - 1,
            }),
            _ => None,
        };
        ranges.extend(r);
    }
    if specs == 0 {
        return RangeRequest::Full;
    }
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.first);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(m) if r.first <= m.last.saturating_add(1) => m.last = m.last.max(r.last),
            _ => merged.push(r),
        }
    }
    RangeRequest::Partial(merged)
}

/// RFC 9110 §13.1.5: true if the Range may be honoured (the If-Range validator is current).
/// An entity tag must match strongly; a date must equal Last-Modified to the second.
pub fn if_range_allows(value: &str, etag: Option<&str>, last_modified: Option<SystemTime>) -> bool {
    let v = value.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        match (EntityTag::parse(v), etag.and_then(EntityTag::parse)) {
            (Some(a), Some(b)) => a.strong_eq(&b),
            _ => false,
        }
    } else {
        match (httpdate::parse_http_date(v), last_modified) {
            (Ok(d), Some(m)) => unix_secs(d) == unix_secs(m),
            _ => false,
        }
    }
}

// ---------------------------------------------------------------- preconditions (RFC 9110 §13.2.2)

/// Outcome of the conditional request headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    Proceed,
    /// 304 Not Modified (GET/HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

fn unix_secs(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => -i128::from(e.duration().as_secs()) - i128::from(e.duration().subsec_nanos() > 0),
    }
}

/// All values of a header joined with `, `; None if absent, Err if any is not visible ASCII.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<Result<String, ()>> {
    let mut it = headers.get_all(name).iter().peekable();
    it.peek()?;
    let mut out = String::new();
    for v in it {
        let Ok(s) = v.to_str() else {
            return Some(Err(()));
        };
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(s);
    }
    Some(Ok(out))
}

/// Evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since in the
/// RFC 9110 §13.2.2 order for a resource that `exists` with the given validators.
pub fn evaluate_preconditions(
    headers: &HeaderMap,
    method: &Method,
    exists: bool,
    etag: Option<&str>,
    last_modified: Option<SystemTime>,
) -> Precondition {
    let current = if exists {
        etag.and_then(EntityTag::parse)
    } else {
        None
    };
    let last_modified = if exists { last_modified } else { None };
    let get_or_head = method == Method::GET || method == Method::HEAD;

    // Step 1: If-Match (strong comparison).
    if let Some(v) = joined(headers, &http::header::IF_MATCH) {
        let ok = match v.as_deref().ok().and_then(parse_tag_list) {
            Some(TagList::Any) => exists,
            Some(TagList::Tags(tags)) => {
                current.is_some_and(|c| tags.iter().any(|t| t.strong_eq(&c)))
            }
            None => false,
        };
        if !ok {
            return Precondition::Failed;
        }
    } else if let Some(Ok(v)) = joined(headers, &http::header::IF_UNMODIFIED_SINCE) {
        // Step 2: If-Unmodified-Since, only without If-Match; an invalid date is ignored.
        if let (Ok(date), Some(m)) = (httpdate::parse_http_date(v.trim()), last_modified) {
            if unix_secs(m) > unix_secs(date) {
                return Precondition::Failed;
            }
        }
    }

    // Step 3: If-None-Match (weak comparison); an unparsable value is ignored.
    let fail = if get_or_head {
        Precondition::NotModified
    } else {
        Precondition::Failed
    };
    if let Some(v) = joined(headers, &http::header::IF_NONE_MATCH) {
        let matched = match v.as_deref().ok().and_then(parse_tag_list) {
            Some(TagList::Any) => exists,
            Some(TagList::Tags(tags)) => {
                current.is_some_and(|c| tags.iter().any(|t| t.weak_eq(&c)))
            }
            None => false,
        };
        if matched {
            return fail;
        }
    } else if get_or_head {
        // Step 4: If-Modified-Since, GET/HEAD only, only without If-None-Match.
        if let Some(Ok(v)) = joined(headers, &http::header::IF_MODIFIED_SINCE) {
            if let (Ok(date), Some(m)) = (httpdate::parse_http_date(v.trim()), last_modified) {
                if unix_secs(m) <= unix_secs(date) {
                    return Precondition::NotModified;
                }
            }
        }
    }
    Precondition::Proceed
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    #[test]
    fn depth_overwrite() {
        assert_eq!(parse_depth(None, Depth::Infinity), Ok(Depth::Infinity));
        assert_eq!(parse_depth(Some(" 0 "), Depth::Infinity), Ok(Depth::Zero));
        assert_eq!(parse_depth(Some("1"), Depth::Zero), Ok(Depth::One));
        assert_eq!(
            parse_depth(Some("Infinity"), Depth::Zero),
            Ok(Depth::Infinity)
        );
        assert_eq!(
            parse_depth(Some("2"), Depth::Zero),
            Err(HeaderError::BadDepth)
        );
        assert_eq!(
            parse_depth(Some(""), Depth::Zero),
            Err(HeaderError::BadDepth)
        );
        assert_eq!(parse_overwrite(None), Ok(true));
        assert_eq!(parse_overwrite(Some("F")), Ok(false));
        assert_eq!(parse_overwrite(Some("t")), Ok(true));
        assert_eq!(parse_overwrite(Some("yes")), Err(HeaderError::BadOverwrite));
    }

    #[test]
    fn timeout_values() {
        let d = Duration::from_secs(600);
        let max = Duration::from_secs(3600);
        assert_eq!(parse_timeout(None, d, max), d);
        assert_eq!(
            parse_timeout(Some("Second-100"), d, max),
            Duration::from_secs(100)
        );
        assert_eq!(parse_timeout(Some("Infinite"), d, max), max);
        assert_eq!(
            parse_timeout(Some("Infinite, Second-4100000000"), d, max),
            max
        );
        assert_eq!(parse_timeout(Some("Second-4100000000"), d, max), max);
        assert_eq!(
            parse_timeout(Some("Second-99999999999999999999999999999"), d, max),
            max
        );
        assert_eq!(
            parse_timeout(Some("Second-0"), d, max),
            Duration::from_secs(1)
        );
        assert_eq!(
            parse_timeout(Some("Second-x, Second-30"), d, max),
            Duration::from_secs(30)
        );
        assert_eq!(parse_timeout(Some("Second--5"), d, max), d);
        assert_eq!(parse_timeout(Some("bogus"), d, max), d);
        assert_eq!(
            parse_timeout(Some("sEcOnD-7"), d, max),
            Duration::from_secs(7)
        );
        assert_eq!(parse_timeout(Some("Sécond-7"), d, max), d);
    }

    #[test]
    fn lock_token_header() {
        assert_eq!(
            parse_lock_token(" <opaquelocktoken:a515cfa4-5da4-22e1-f5b5-00a0451e6bf7> ").as_deref(),
            Ok("opaquelocktoken:a515cfa4-5da4-22e1-f5b5-00a0451e6bf7")
        );
        for bad in ["opaquelocktoken:x", "<>", "<a b>", "<a", "<<a>>"] {
            assert_eq!(
                parse_lock_token(bad),
                Err(HeaderError::BadLockToken),
                "{bad}"
            );
        }
    }

    fn tok(s: &str) -> IfCondition {
        IfCondition {
            not: false,
            test: IfTest::Token(s.into()),
        }
    }

    #[test]
    fn if_rfc4918_examples_parse() {
        // §10.4.6 example: tagged lists with a state token and an entity tag.
        let h = IfHeader::parse(
            "<http://www.example.com/specs/> \
             (<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2>)",
        )
        .unwrap();
        assert_eq!(h.lists.len(), 1);
        assert_eq!(
            h.lists[0].resource.as_deref(),
            Some("http://www.example.com/specs/")
        );
        assert_eq!(
            h.lists[0].conditions,
            vec![tok("urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2")]
        );

        // §10.4.7 example: Not and DAV:no-lock.
        let h = IfHeader::parse("(<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> [\"I am an ETag\"]) ([\"I am another ETag\"])")
            .unwrap();
        assert_eq!(h.lists.len(), 2);
        assert_eq!(h.lists[0].conditions.len(), 2);
        assert_eq!(
            h.lists[0].conditions[1].test,
            IfTest::ETag("\"I am an ETag\"".into())
        );
        assert_eq!(h.lists[1].resource, None);

        let h = IfHeader::parse("(Not <urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> <urn:uuid:58f202ac-22cf-11d1-b12d-002035b29092>)").unwrap();
        assert!(h.lists[0].conditions[0].not && !h.lists[0].conditions[1].not);
        assert_eq!(
            h.submitted_tokens(),
            vec!["urn:uuid:58f202ac-22cf-11d1-b12d-002035b29092"]
        );

        // §10.4.8-style: two tagged resources, each with lists; W/ tags.
        let h = IfHeader::parse(
            "</resource1> (<urn:uuid:a> [W/\"A weak, ETag\"]) ([\"strong ETag\"]) \
             </resource2> (Not <DAV:no-lock>)",
        )
        .unwrap();
        assert_eq!(h.lists.len(), 3);
        assert_eq!(h.lists[1].resource.as_deref(), Some("/resource1"));
        assert_eq!(h.lists[2].resource.as_deref(), Some("/resource2"));
        assert_eq!(
            h.lists[0].conditions[1].test,
            IfTest::ETag("W/\"A weak, ETag\"".into())
        );
        assert_eq!(h.submitted_tokens(), vec!["urn:uuid:a"]);
    }

    #[test]
    fn if_grammar_errors() {
        for bad in [
            "",
            "()",
            "(<a>",
            "<a>",
            "(<a>) <b> (<c>)",
            "(Nope <a>)",
            "([unquoted])",
            "([\"x\"",
            "(<a b>)",
            "(<>)",
            "x",
            "(<a>) junk",
        ] {
            assert!(IfHeader::parse(bad).is_err(), "{bad:?} should fail");
        }
        let many = "(<a>)".repeat(DAV_IF_CONDITIONS_MAX);
        assert!(matches!(IfHeader::parse(&many), Err(HeaderError::BadIf(_))));
        assert!(IfHeader::parse(&"(<a>)".repeat(DAV_IF_CONDITIONS_MAX / 2 - 1)).is_ok());
        assert_eq!(
            IfHeader::parse(&"(".repeat(DAV_HEADER_LEN_MAX + 1)),
            Err(HeaderError::TooLong)
        );
    }

    fn state(etag: Option<&str>, tokens: &[&str]) -> ResourceState {
        ResourceState {
            etag: etag.map(str::to_owned),
            lock_tokens: tokens.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn if_evaluation() {
        let here = state(Some("\"e1\""), &["opaquelocktoken:L1"]);
        let eval = |h: &str| IfHeader::parse(h).unwrap().evaluate(|_| here.clone());
        assert!(eval("(<opaquelocktoken:L1>)"));
        assert!(!eval("(<opaquelocktoken:L2>)"));
        assert!(eval("(<opaquelocktoken:L1> [\"e1\"])"));
        assert!(
            !eval("(<opaquelocktoken:L1> [\"e2\"])"),
            "conditions are AND-ed"
        );
        assert!(eval("([\"e2\"]) ([\"e1\"])"), "lists are OR-ed");
        assert!(!eval("([W/\"e1\"])"), "weak tag never matches strongly");
        assert!(eval("(Not <DAV:no-lock>)"));
        assert!(!eval("(<DAV:no-lock>)"));
        // RFC 4918 §10.4.7 idiom: token or no lock at all.
        assert!(eval("(<opaquelocktoken:L9>) (Not <DAV:no-lock>)"));

        // Tagged lists go to the resolver with their tag; unmapped resources match nothing.
        let h =
            IfHeader::parse("</dav/t/u/a> ([\"e1\"]) </dav/t/u/b> (<opaquelocktoken:L1>)").unwrap();
        let mut asked = Vec::new();
        let r = h.evaluate(|tag| {
            asked.push(tag.map(str::to_owned));
            match tag {
                Some("/dav/t/u/b") => state(None, &["opaquelocktoken:L1"]),
                _ => ResourceState::default(),
            }
        });
        assert!(r);
        assert_eq!(
            asked,
            vec![Some("/dav/t/u/a".to_owned()), Some("/dav/t/u/b".to_owned())]
        );
    }

    #[test]
    fn ranges() {
        let r = |s: &str, len| parse_range(s, len);
        let one = |a, b| RangeRequest::Partial(vec![ByteRange { first: a, last: b }]);
        assert_eq!(r("bytes=0-499", 1000), one(0, 499));
        assert_eq!(r("bytes=500-", 1000), one(500, 999));
        assert_eq!(r("bytes=-200", 1000), one(800, 999));
        assert_eq!(r("bytes=-2000", 1000), one(0, 999));
        assert_eq!(r("bytes=900-5000", 1000), one(900, 999));
        assert_eq!(r("BYTES = 0-0", 1000), one(0, 0));
        assert_eq!(
            r("bytes=0-9, 100-109", 1000),
            RangeRequest::Partial(vec![
                ByteRange { first: 0, last: 9 },
                ByteRange {
                    first: 100,
                    last: 109
                }
            ])
        );
        assert_eq!(
            r("bytes=100-199,0-150, 200-210", 1000),
            one(0, 210),
            "coalesced"
        );
        assert_eq!(r("bytes=1000-", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=-0", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=-5", 0), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=2000-3000, 5-6", 1000), one(5, 6));
        assert_eq!(
            r("bytes=5-4", 1000),
            RangeRequest::Full,
            "invalid spec ignores the header"
        );
        assert_eq!(r("bytes=a-b", 1000), RangeRequest::Full);
        assert_eq!(r("bytes=", 1000), RangeRequest::Full);
        assert_eq!(r("items=0-1", 1000), RangeRequest::Full);
        assert_eq!(r("0-1", 1000), RangeRequest::Full);
        assert_eq!(r("bytes=0-99999999999999999999999999", 10), one(0, 9));
        assert_eq!(
            r("bytes=99999999999999999999999999-", 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(r("bytes=-99999999999999999999999999", 10), one(0, 9));
        let many = format!("bytes={}", vec!["1-1"; DAV_RANGES_MAX + 1].join(","));
        assert_eq!(r(&many, 10), RangeRequest::Full);
        assert_eq!(
            ByteRange { first: 5, last: 9 }.content_range(10),
            "bytes 5-9/10"
        );
    }

    #[test]
    fn if_range() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert!(if_range_allows("\"abc\"", Some("\"abc\""), Some(t)));
        assert!(!if_range_allows("\"abd\"", Some("\"abc\""), Some(t)));
        assert!(!if_range_allows("W/\"abc\"", Some("\"abc\""), Some(t)));
        assert!(if_range_allows(
            "Sun, 06 Nov 1994 08:49:37 GMT",
            None,
            Some(t)
        ));
        assert!(!if_range_allows(
            "Sun, 06 Nov 1994 08:49:38 GMT",
            None,
            Some(t)
        ));
        assert!(!if_range_allows("garbage", Some("\"abc\""), Some(t)));
    }

    fn hm(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn preconditions() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let e = Some("\"v1\"");
        let get = Method::GET;
        let put = Method::PUT;
        let ev = |h: &[(&'static str, &str)], m: &Method, exists: bool| {
            evaluate_preconditions(&hm(h), m, exists, e, Some(t))
        };
        use Precondition::*;
        assert_eq!(ev(&[], &get, true), Proceed);
        assert_eq!(ev(&[("if-match", "\"v1\"")], &put, true), Proceed);
        assert_eq!(ev(&[("if-match", "\"v0\", \"v1\"")], &put, true), Proceed);
        assert_eq!(
            ev(
                &[("if-match", "\"v0\""), ("if-match", "\"v1\"")],
                &put,
                true
            ),
            Proceed
        );
        assert_eq!(
            ev(&[("if-match", "W/\"v1\"")], &put, true),
            Failed,
            "If-Match is strong"
        );
        assert_eq!(ev(&[("if-match", "*")], &put, true), Proceed);
        assert_eq!(ev(&[("if-match", "*")], &put, false), Failed);
        assert_eq!(
            ev(&[("if-match", "v1")], &put, true),
            Failed,
            "unquoted is invalid"
        );
        assert_eq!(
            ev(&[("if-none-match", "*")], &put, false),
            Proceed,
            "create-only PUT"
        );
        assert_eq!(ev(&[("if-none-match", "*")], &put, true), Failed);
        assert_eq!(
            ev(&[("if-none-match", "W/\"v1\"")], &get, true),
            NotModified,
            "INM is weak"
        );
        assert_eq!(ev(&[("if-none-match", "\"v2\"")], &get, true), Proceed);
        assert_eq!(
            ev(
                &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
                &get,
                true
            ),
            NotModified
        );
        assert_eq!(
            ev(
                &[("if-modified-since", "Sun, 06 Nov 1994 08:49:36 GMT")],
                &get,
                true
            ),
            Proceed
        );
        assert_eq!(
            ev(
                &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
                &put,
                true
            ),
            Proceed
        );
        assert_eq!(
            ev(
                &[
                    ("if-none-match", "\"v2\""),
                    ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")
                ],
                &get,
                true
            ),
            Proceed,
            "IMS ignored when INM present"
        );
        assert_eq!(
            ev(
                &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:36 GMT")],
                &put,
                true
            ),
            Failed
        );
        assert_eq!(
            ev(
                &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
                &put,
                true
            ),
            Proceed
        );
        assert_eq!(
            ev(&[("if-unmodified-since", "not a date")], &put, true),
            Proceed
        );
        assert_eq!(
            ev(
                &[
                    ("if-match", "\"v1\""),
                    ("if-unmodified-since", "Sun, 06 Nov 1994 08:49:36 GMT")
                ],
                &put,
                true
            ),
            Proceed,
            "IUS ignored when If-Match present"
        );
        assert_eq!(
            ev(
                &[("if-match", "\"v1\""), ("if-none-match", "\"v1\"")],
                &get,
                true
            ),
            NotModified
        );
    }

    #[test]
    fn tag_lists_with_commas() {
        assert_eq!(
            parse_tag_list("\"a,b\", W/\"c\""),
            Some(TagList::Tags(vec![
                EntityTag {
                    weak: false,
                    opaque: "a,b"
                },
                EntityTag {
                    weak: true,
                    opaque: "c"
                }
            ]))
        );
        assert_eq!(parse_tag_list("\"a\" \"b\""), None);
        assert_eq!(parse_tag_list(""), None);
        assert_eq!(parse_tag_list("\"a"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn range_never_panics_and_stays_in_bounds(s in "(bytes|BYTES|x)?=?[-0-9, ]{0,40}", len in 0u64..5000) {
            match parse_range(&s, len) {
                RangeRequest::Partial(rs) => {
                    prop_assert!(!rs.is_empty());
                    for w in rs.windows(2) { prop_assert!(w[0].last + 1 < w[1].first); }
                    for r in rs { prop_assert!(r.first <= r.last && r.last < len); }
                }
                RangeRequest::Full | RangeRequest::Unsatisfiable => {}
            }
        }

        #[test]
        fn headers_never_panic(s in "\\PC{0,80}") {
            let _ = parse_range(&s, 100);
            let _ = IfHeader::parse(&s);
            let _ = parse_timeout(Some(&s), Duration::from_secs(1), Duration::from_secs(5));
            let _ = parse_lock_token(&s);
            let _ = parse_tag_list(&s);
            let _ = if_range_allows(&s, Some("\"x\""), None);
        }
    }
}
