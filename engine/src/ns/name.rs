//! Validated, NFC-normalized entry names (one path component).

use std::borrow::Cow;
use std::fmt;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use crate::limits::NAME_LEN_MAX;
use crate::{Error, Result};

/// One path component: non-empty, not `.`/`..`, no `/` or NUL, at most
/// [`NAME_LEN_MAX`] bytes, always in Unicode NFC (see `docs/namespace.md`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(Box<str>);

impl Name {
    /// Validates `s` and normalizes it to NFC.
    pub fn new(s: &str) -> Result<Name> {
        let nfc: Cow<'_, str> = match is_nfc_quick(s.chars()) {
            IsNormalized::Yes => Cow::Borrowed(s),
            _ => Cow::Owned(s.nfc().collect()),
        };
        check(&nfc)?;
        Ok(Name(nfc.into_owned().into_boxed_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Builds a name from a string already known to be valid and NFC (snapshot restore
    /// checks it with [`Name::is_canonical`] first).
    pub(crate) fn from_canonical(s: Box<str>) -> Name {
        debug_assert!(Name::is_canonical(&s));
        Name(s)
    }

    /// True when `s` is a valid name exactly as given (already NFC).
    pub fn is_canonical(s: &str) -> bool {
        check(s).is_ok()
            && match is_nfc_quick(s.chars()) {
                IsNormalized::Yes => true,
                IsNormalized::No => false,
                IsNormalized::Maybe => s.nfc().eq(s.chars()),
            }
    }
}

fn check(s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(Error::InvalidName("empty"));
    }
    if s == "." || s == ".." {
        return Err(Error::InvalidName("dot name"));
    }
    if s.len() > NAME_LEN_MAX {
        return Err(Error::InvalidName("too long"));
    }
    if s.bytes().any(|b| b == b'/' || b == 0) {
        return Err(Error::InvalidName("contains '/' or NUL"));
    }
    Ok(())
}

impl TryFrom<String> for Name {
    type Error = Error;
    fn try_from(s: String) -> Result<Name> {
        Name::new(&s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0.into()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a `/`-separated path into names (empty segments are skipped; root = empty).
pub fn parse_path(s: &str) -> Result<Vec<Name>> {
    s.split('/')
        .filter(|c| !c.is_empty())
        .map(Name::new)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfd_and_nfc_compare_equal() {
        let nfc = Name::new("bl\u{e5}b\u{e6}r.txt").unwrap();
        let nfd = Name::new("bla\u{30a}b\u{e6}r.txt").unwrap();
        assert_eq!(nfc, nfd);
        assert_eq!(nfd.as_str(), "bl\u{e5}b\u{e6}r.txt");
        assert!(Name::is_canonical(nfc.as_str()));
        assert!(!Name::is_canonical("bla\u{30a}"));
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(
                matches!(Name::new(bad), Err(Error::InvalidName(_))),
                "{bad:?}"
            );
        }
        assert!(Name::new(&"x".repeat(NAME_LEN_MAX)).is_ok());
        assert!(Name::new(&"x".repeat(NAME_LEN_MAX + 1)).is_err());
        assert!(Name::new("...").is_ok());
    }

    #[test]
    fn length_limit_applies_after_normalization() {
        // "a" + combining ring is 3 bytes in NFD, 2 in NFC ("å").
        let nfd = "a\u{30a}".repeat(NAME_LEN_MAX / 2);
        assert!(nfd.len() > NAME_LEN_MAX);
        assert_eq!(
            Name::new(&nfd).unwrap().as_str().len(),
            NAME_LEN_MAX / 2 * 2
        );
    }

    #[test]
    fn serde_validates() {
        let bytes = postcard::to_allocvec(&"a/b".to_string()).unwrap();
        assert!(postcard::from_bytes::<Name>(&bytes).is_err());
        let bytes = postcard::to_allocvec(&"a\u{30a}".to_string()).unwrap();
        assert_eq!(
            postcard::from_bytes::<Name>(&bytes).unwrap().as_str(),
            "\u{e5}"
        );
    }

    #[test]
    fn parse_path_splits() {
        let p = parse_path("/a//b/").unwrap();
        assert_eq!(p.len(), 2);
        assert!(parse_path("/a/../b").is_err());
        assert!(parse_path("/").unwrap().is_empty());
    }
}
