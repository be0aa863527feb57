//! Exam hand-ins: a collection where each pupil of a group sees and fills only their own
//! folder until the server's deadline, the teacher sees every folder (read-only) and takes
//! the whole as one zip, and each accepted upload earns a signed receipt. Model, URLs and
//! formats: `docs/handin.md`.

pub mod access;
pub mod cli;
pub mod receipt;
pub mod registry;
pub mod retire;
pub mod zip;

pub use registry::{Handin, LatePolicy, Phase, Registry};

/// The URL segment after the tenant: `/dav/<tenant>/handin/<handin>/`.
pub const URL_SEGMENT: &str = "handin";
/// The engine space of hand-in `H` is the tenant's space `_handin_H`: users cannot have
/// that name (theirs start with a letter or digit), so it never clashes with a home.
pub const SPACE_PREFIX: &str = "_handin_";
/// The XML namespace of the dead properties hand-ins set.
pub const PROP_NS: &str = "http://skab.dk/ns/handin";

/// A hand-in's name: what an engine space name allows, short enough for the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandinName(String);

impl HandinName {
    pub fn new(s: &str) -> Result<HandinName, String> {
        crate::spaces::check_engine_space_name(s, SPACE_PREFIX, "hand-in")?;
        Ok(HandinName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The user part of the engine space of hand-in `name`.
pub fn space_user(name: &str) -> String {
    format!("{SPACE_PREFIX}{name}")
}

/// The protocol layer's space key of a hand-in view: `_handin_H` for the teacher's view of
/// the whole, `_handin_H/<pupil>` for a pupil's view of their own folder. Splits it into
/// the hand-in's name and the pupil.
pub fn split_view(user: &str) -> Option<(&str, Option<&str>)> {
    let rest = user.strip_prefix(SPACE_PREFIX)?;
    Some(match rest.split_once('/') {
        Some((h, pupil)) => (h, Some(pupil)),
        None => (rest, None),
    })
}

/// What PUT needs to know of an upload into a hand-in (a request extension set by
/// [`access`]).
#[derive(Clone, Debug)]
pub struct Upload {
    pub handin: String,
    pub pupil: String,
    /// Arrived after the deadline of a `--late mark` hand-in.
    pub late: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_views() {
        assert!(HandinName::new("exam-2026.math").is_ok());
        assert!(HandinName::new("_x").is_err());
        assert!(HandinName::new("Big").is_err());
        assert!(HandinName::new(&"a".repeat(57)).is_err());
        assert_eq!(split_view("_handin_e1"), Some(("e1", None)));
        assert_eq!(split_view("_handin_e1/p1"), Some(("e1", Some("p1"))));
        assert_eq!(split_view("p1"), None);
        assert!(skab_engine::SpaceKey::new("t", &space_user(&"a".repeat(56))).is_ok());
    }
}
