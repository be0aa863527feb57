//! Validated tenant, user and group names: ASCII `[a-z0-9._-]`, 1..=64 bytes, starting with `[a-z0-9]`.

use crate::limits::{NAME_LEN_MAX, NAME_LEN_MIN};
use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} name {shown:?}: {why}")]
pub struct NameError {
    pub what: &'static str,
    pub shown: String,
    pub why: &'static str,
}

fn check(what: &'static str, s: &str) -> Result<(), NameError> {
    let err = |why| NameError {
        what,
        shown: s.chars().take(80).collect(),
        why,
    };
    if s.len() < NAME_LEN_MIN || s.len() > NAME_LEN_MAX {
        return Err(err("must be 1 to 64 bytes"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(err("allowed are a-z, 0-9, '.', '_' and '-'"));
    }
    if !s
        .as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(err("must start with a-z or 0-9"));
    }
    Ok(())
}

macro_rules! name_type {
    ($ty:ident, $what:literal) => {
        #[doc = concat!("A validated ", $what, " name.")]
        #[derive(
            Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(Box<str>);

        impl $ty {
            /// Validates `s` as a name.
            pub fn new(s: &str) -> Result<Self, NameError> {
                check($what, s)?;
                Ok($ty(s.into()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                check($what, &s)?;
                Ok($ty(s.into_boxed_str()))
            }
        }

        impl From<$ty> for String {
            fn from(n: $ty) -> String {
                n.0.into()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), &*self.0)
            }
        }
    };
}

name_type!(TenantName, "tenant");
name_type!(UserName, "user");
name_type!(GroupName, "group");

/// Splits a login `user@tenant` (at the last `@`), lower-casing ASCII letters first.
pub fn parse_login(login: &str) -> Result<(TenantName, UserName), NameError> {
    let lower = login.to_ascii_lowercase();
    let Some((user, tenant)) = lower.rsplit_once('@') else {
        return Err(NameError {
            what: "login",
            shown: login.chars().take(80).collect(),
            why: "must be user@tenant",
        });
    };
    Ok((TenantName::new(tenant)?, UserName::new(user)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_names() {
        for ok in ["a", "anna.jensen", "0", "x_y-z.9", &"a".repeat(64)] {
            assert!(UserName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Anna",
            ".a",
            "-a",
            "a b",
            "æ",
            "a/b",
            "a@b",
            &"a".repeat(65),
        ] {
            assert!(UserName::new(bad).is_err(), "{bad}");
            assert!(TenantName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn login_splits_at_last_at_and_lowercases() {
        let (t, u) = parse_login("Anna.Jensen@Skole-1").unwrap();
        assert_eq!(t.as_str(), "skole-1");
        assert_eq!(u.as_str(), "anna.jensen");
        assert!(parse_login("anna").is_err());
        assert!(parse_login("a@b@c").is_err(), "user part a@b has an @");
        assert!(parse_login("@t").is_err());
    }

    #[test]
    fn serde_refuses_invalid_names() {
        let bytes = postcard::to_allocvec(&"Bad Name".to_string()).unwrap();
        assert!(postcard::from_bytes::<UserName>(&bytes).is_err());
        let bytes = postcard::to_allocvec(&"ok".to_string()).unwrap();
        assert_eq!(
            postcard::from_bytes::<UserName>(&bytes).unwrap().as_str(),
            "ok"
        );
    }
}
