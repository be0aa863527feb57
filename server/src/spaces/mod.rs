//! Shared spaces (a class folder the teacher fills, `skab space`) and shares by users (a
//! folder of one's home given to a user or a group, OCS or `skab share`): who may reach
//! them, how they appear inside each member's home, and the OCS share API. Model, URLs and
//! formats: `docs/spaces.md`.

/// Who may do what, per request; the space seen inside a home.
pub mod access;
/// `skab space` and `skab share`.
pub mod cli;
/// COPY and MOVE between two spaces (a home and a space).
pub mod cross;
/// The OCS share API.
pub mod ocs;
/// The stored list of spaces and shares.
pub mod registry;

pub use registry::{Grant, Grantee, Perm, Registry, Share, Space};

/// The URL segment after the tenant: `/dav/<tenant>/spaces/<space>/`.
pub const URL_SEGMENT: &str = "spaces";
/// The engine space of space `S` is the tenant's space `_space_S`: users cannot have that
/// name (theirs start with a letter or digit), so it never clashes with a home.
pub const SPACE_PREFIX: &str = "_space_";
/// First character of the protocol layer's key of a space seen inside a home (a view):
/// `~<user>/<folder>[/<prefix segments>]`. No account name starts with it.
pub const VIEW_MARK: char = '~';

/// Whether `s` can name a space or hand-in whose engine space is `<prefix><s>`: 1 to
/// `NAME_LEN_MAX - prefix` characters of a-z, 0-9, '.', '_', '-', starting with a letter or
/// digit; the error names `what`.
pub fn check_engine_space_name(s: &str, prefix: &str, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() + prefix.len() <= crate::limits::NAME_LEN_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && s.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} names are 1-{} characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
            crate::limits::NAME_LEN_MAX - prefix.len()
        ))
    }
}

/// A space's name: what an engine space name allows, short enough for the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaceName(String);

impl SpaceName {
    pub fn new(s: &str) -> Result<SpaceName, String> {
        check_engine_space_name(s, SPACE_PREFIX, "space")?;
        Ok(SpaceName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The user part of the engine space of space `name`.
pub fn space_user(name: &str) -> String {
    format!("{SPACE_PREFIX}{name}")
}

/// The protocol layer's key user of a space or share seen in `home`'s home as `folder`,
/// whose paths start with `prefix` (the shared folder's path in its owner's home; empty
/// for a space).
pub fn view_user(home: &str, folder: &str, prefix: &[String]) -> String {
    let mut s = String::with_capacity(home.len() + folder.len() + 2);
    s.push(VIEW_MARK);
    s.push_str(home);
    s.push('/');
    s.push_str(folder);
    for p in prefix {
        s.push('/');
        s.push_str(p);
    }
    s
}

/// A view key's parts: the home's user, the folder it appears as, and the prefix
/// segments its paths start with. `None` for any other key.
pub fn split_view(user: &str) -> Option<(&str, &str, std::str::Split<'_, char>)> {
    let rest = user.strip_prefix(VIEW_MARK)?;
    let (home, rest) = rest.split_once('/')?;
    let (folder, prefix) = match rest.split_once('/') {
        Some((f, p)) => (f, p),
        None => (rest, ""),
    };
    let mut it = prefix.split('/');
    if prefix.is_empty() {
        // An empty prefix has no segments: consume the one empty item.
        it.next();
    }
    Some((home, folder, it))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_views() {
        assert!(SpaceName::new("class-9a").is_ok());
        assert!(SpaceName::new("_x").is_err());
        assert!(SpaceName::new("Big").is_err());
        let v = view_user("anna", "Math 9a", &[]);
        let (h, f, p) = split_view(&v).unwrap();
        assert_eq!((h, f, p.count()), ("anna", "Math 9a", 0));
        let v = view_user("anna", "Docs", &["Teaching".into(), "Docs".into()]);
        let (h, f, p) = split_view(&v).unwrap();
        assert_eq!(
            (h, f, p.collect::<Vec<_>>()),
            ("anna", "Docs", vec!["Teaching", "Docs"])
        );
        assert!(split_view("anna").is_none());
        assert!(skab_engine::SpaceKey::new("t", &space_user(&"a".repeat(57))).is_ok());
    }
}
