//! Parsed PROPFIND bodies remembered per serving thread: sync clients send the same body on
//! every poll, and parsing it was the largest user-space cost of a PROPFIND Depth 0.

use std::cell::RefCell;
use std::sync::Arc;

use super::xml::{parse_propfind_limited, Propfind, XmlError, XmlLimits};
use crate::limits::{PROPFIND_CACHE_BODY_MAX, PROPFIND_CACHE_ENTRIES};

/// A body's bytes, the limits it was parsed within, and what it parses to.
type Entry = (Box<[u8]>, XmlLimits, Arc<Propfind>);

thread_local! {
    /// Most recently used first. Bodies are compared byte for byte, so a hit returns
    /// exactly what parsing the same bytes returns.
    static RECENT: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// `parse_propfind(body)`, from this thread's cache when the same bytes were parsed lately.
#[cfg(test)]
pub fn parse_propfind_cached(body: &[u8]) -> Result<Arc<Propfind>, XmlError> {
    parse_propfind_cached_limited(body, XmlLimits::default())
}

/// `parse_propfind_limited(body, limits)`, from this thread's cache when the same bytes were
/// parsed within the same limits lately.
pub fn parse_propfind_cached_limited(
    body: &[u8],
    limits: XmlLimits,
) -> Result<Arc<Propfind>, XmlError> {
    if body.len() > PROPFIND_CACHE_BODY_MAX {
        return parse_propfind_limited(body, limits).map(Arc::new);
    }
    let hit = RECENT.with_borrow_mut(|recent| {
        let i = recent
            .iter()
            .position(|(b, l, _)| **b == *body && *l == limits)?;
        let entry = recent.remove(i);
        let parsed = entry.2.clone();
        recent.insert(0, entry);
        Some(parsed)
    });
    if let Some(p) = hit {
        return Ok(p);
    }
    // Errors are not remembered: a bad body stays a (cheap to reject) miss.
    let parsed = Arc::new(parse_propfind_limited(body, limits)?);
    RECENT.with_borrow_mut(|recent| {
        recent.truncate(PROPFIND_CACHE_ENTRIES - 1);
        recent.insert(0, (body.into(), limits, parsed.clone()));
        debug_assert!(recent.len() <= PROPFIND_CACHE_ENTRIES);
    });
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::xml::parse_propfind;

    const BODY: &[u8] = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>"#;

    #[test]
    fn hits_equal_a_fresh_parse_and_the_cache_stays_bounded() {
        let first = parse_propfind_cached(BODY).unwrap();
        let again = parse_propfind_cached(BODY).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "second parse was not a hit");
        assert_eq!(*again, parse_propfind(BODY).unwrap());
        for i in 0..3 * PROPFIND_CACHE_ENTRIES {
            let body =
                format!(r#"<d:propfind xmlns:d="DAV:"><d:prop><d:p{i}/></d:prop></d:propfind>"#);
            let p = parse_propfind_cached(body.as_bytes()).unwrap();
            assert_eq!(*p, parse_propfind(body.as_bytes()).unwrap());
        }
        assert_eq!(RECENT.with_borrow(Vec::len), PROPFIND_CACHE_ENTRIES);
        // Evicted: parsed again, a new allocation with the same meaning.
        let later = parse_propfind_cached(BODY).unwrap();
        assert!(!Arc::ptr_eq(&first, &later));
        assert_eq!(*later, *first);
    }

    #[test]
    fn bad_and_oversized_bodies_are_parsed_every_time() {
        assert!(parse_propfind_cached(b"<d:propfind xmlns:d=\"DAV:\">").is_err());
        assert!(parse_propfind_cached(b"<d:propfind xmlns:d=\"DAV:\">").is_err());
        let mut big = br#"<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/>"#.to_vec();
        big.resize(PROPFIND_CACHE_BODY_MAX + 1, b' ');
        big.extend_from_slice(b"</d:prop></d:propfind>");
        let a = parse_propfind_cached(&big).unwrap();
        let b = parse_propfind_cached(&big).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn a_hit_is_only_taken_within_the_same_limits() {
        let body =
            br#"<d:propfind xmlns:d="DAV:"><d:prop><d:a/><d:b/><d:c/></d:prop></d:propfind>"#;
        assert!(parse_propfind_cached(body).is_ok());
        let strict = XmlLimits {
            props_max: 2,
            ..XmlLimits::default()
        };
        assert_eq!(
            parse_propfind_cached_limited(body, strict).map(|_| ()),
            Err(XmlError::TooManyProps)
        );
        assert!(parse_propfind_cached(body).is_ok());
    }
}
