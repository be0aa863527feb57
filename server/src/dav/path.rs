//! Request-target and Destination parsing into a user's space path, and href encoding.

use std::fmt;

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::limits::{DAV_PATH_DEPTH_MAX, DAV_SEGMENT_LEN_MAX, DAV_TARGET_LEN_MAX};

/// Every WebDAV URL starts with this, then `<tenant>/<user>/`.
pub const DAV_PREFIX: &str = "/dav/";
/// The ownCloud/Nextcloud WebDAV URLs: `<user>@<tenant>/` follows.
pub const OC_FILES_PREFIX: &str = "/remote.php/dav/files/";
/// The legacy ownCloud WebDAV URL of the logged-in user's own files.
pub const OC_WEBDAV_PREFIX: &str = "/remote.php/webdav/";
/// Chunked uploads of the ownCloud/Nextcloud clients: `<user>@<tenant>/<transfer>/<chunk>`.
pub const OC_UPLOADS_PREFIX: &str = "/remote.php/dav/uploads/";
/// The user name of each tenant's upload space, where chunks wait for their final MOVE. Users
/// cannot have it (theirs start with a letter or digit); its tree holds one folder per user.
pub const UPLOADS_SPACE_USER: &str = "_uploads";

/// Where a space's tree appears among URLs; hrefs in answers use the request's mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mount {
    /// `/dav/<tenant>/<user>/`.
    #[default]
    Dav,
    /// `/remote.php/dav/files/<user>@<tenant>/` (ownCloud and Nextcloud clients).
    OcFiles,
    /// `/remote.php/webdav/`: the requester's own space (older ownCloud clients).
    OcWebdav,
    /// `/remote.php/dav/uploads/<user>@<tenant>/`: the tenant's upload space
    /// ([`UPLOADS_SPACE_USER`]), inside it the folder named after the user.
    OcUploads,
    /// `/dav/<tenant>/handin/<handin>/`: a hand-in, as its teacher or one pupil sees it
    /// (`crate::handin`; the space key's user says which view).
    Handin,
    /// `/dav/<tenant>/spaces/<space>/`: a shared space (`crate::spaces`).
    Space,
}

/// Bytes escaped in hrefs: all but RFC 3986 unreserved (`/` never occurs inside a segment).
const HREF_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a request-target or URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path longer than limits.path_len_max (decoded) or {DAV_TARGET_LEN_MAX} bytes (raw)")]
    TooLong,
    #[error("path does not start with {DAV_PREFIX} or {OC_FILES_PREFIX}")]
    NotDav,
    #[error("path names no tenant and user space")]
    NoSpace,
    #[error("path has a '.' or '..' segment")]
    DotSegment,
    #[error("path segment holds an encoded slash")]
    EncodedSlash,
    #[error("path segment holds a backslash")]
    Backslash,
    #[error("path holds a NUL or control character")]
    ControlChar,
    #[error("path holds a malformed percent escape")]
    BadPercent,
    #[error("path segment is not valid UTF-8")]
    InvalidUtf8,
    #[error("path segment longer than {DAV_SEGMENT_LEN_MAX} bytes")]
    SegmentTooLong,
    #[error("path deeper than {DAV_PATH_DEPTH_MAX} segments")]
    TooDeep,
    #[error("not an absolute http(s) URI or absolute path")]
    BadUri,
}

/// One user's space: the owner of a tree of files.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpaceKey {
    pub tenant: String,
    pub user: String,
}

/// A path inside one space: decoded segments joined by `/`, no leading or trailing
/// slash; the empty string is the space's root. Every segment is valid (see `decode_segment`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpacePath(String);

impl SpacePath {
    /// The space's root collection.
    pub fn root() -> Self {
        SpacePath(String::new())
    }

    /// Builds a path from decoded segments, validating each as a request would.
    pub fn from_segments<I, S>(segments: I) -> Result<Self, PathError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut p = SpacePath::root();
        for s in segments {
            p = p.join(s.as_ref())?;
        }
        Ok(p)
    }

    /// The path as `a/b/c` (empty for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// `TooLong` when the decoded path (`a/b/c`) is longer than `max` bytes
    /// (`limits.path_len_max`).
    pub fn check_len(&self, max: usize) -> Result<(), PathError> {
        if self.0.len() > max {
            Err(PathError::TooLong)
        } else {
            Ok(())
        }
    }

    /// The decoded segments, root first.
    pub fn segments(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// Number of segments (0 for the root).
    pub fn depth(&self) -> usize {
        if self.0.is_empty() {
            0
        } else {
            self.0.bytes().filter(|&b| b == b'/').count() + 1
        }
    }

    /// The last segment (None for the root).
    pub fn name(&self) -> Option<&str> {
        if self.0.is_empty() {
            None
        } else {
            Some(self.0.rsplit('/').next().unwrap_or(&self.0))
        }
    }

    /// The parent collection (None for the root).
    pub fn parent(&self) -> Option<SpacePath> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => SpacePath(self.0[..i].to_owned()),
            None => SpacePath::root(),
        })
    }

    /// This path with one more (decoded) segment; the segment is validated.
    pub fn join(&self, name: &str) -> Result<SpacePath, PathError> {
        check_decoded(name)?;
        if self.depth() >= DAV_PATH_DEPTH_MAX {
            return Err(PathError::TooDeep);
        }
        let mut s = String::with_capacity(self.0.len() + 1 + name.len());
        s.push_str(&self.0);
        if !s.is_empty() {
            s.push('/');
        }
        s.push_str(name);
        Ok(SpacePath(s))
    }

    /// True if `other` is this path or lies below it.
    pub fn contains(&self, other: &SpacePath) -> bool {
        contains_str(&self.0, &other.0)
    }

    /// True if `other` lies strictly below this path.
    pub fn is_ancestor_of(&self, other: &SpacePath) -> bool {
        self.0 != other.0 && contains_str(&self.0, &other.0)
    }

    /// The strict ancestors of this path as strings, nearest first, ending at the root.
    pub fn ancestors(&self) -> impl Iterator<Item = &str> + '_ {
        let mut rest: Option<&str> = if self.0.is_empty() {
            None
        } else {
            Some(&self.0)
        };
        std::iter::from_fn(move || {
            let cur = rest?;
            let up = match cur.rfind('/') {
                Some(i) => &cur[..i],
                None => "",
            };
            rest = if up.is_empty() { None } else { Some(up) };
            if cur.is_empty() {
                None
            } else {
                Some(up)
            }
        })
    }

    /// `self` with its prefix `from` replaced by `to` (for MOVE); None if `from` does not contain it.
    pub fn rebase(&self, from: &SpacePath, to: &SpacePath) -> Option<SpacePath> {
        if !from.contains(self) {
            return None;
        }
        let rest = self.0[from.0.len()..].trim_start_matches('/');
        Some(match (to.0.is_empty(), rest.is_empty()) {
            (_, true) => to.clone(),
            (true, false) => SpacePath(rest.to_owned()),
            (false, false) => SpacePath(format!("{}/{}", to.0, rest)),
        })
    }
}

impl fmt::Display for SpacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

/// True if path string `b` equals `a` or lies below it.
pub(crate) fn contains_str(a: &str, b: &str) -> bool {
    a.is_empty()
        || (b.starts_with(a) && (b.len() == a.len() || b.as_bytes().get(a.len()) == Some(&b'/')))
}

/// A parsed WebDAV URL: whose space, which path, and whether it ended in `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DavPath {
    pub space: SpaceKey,
    pub path: SpacePath,
    /// The URL ended with `/` (a collection was meant).
    pub trailing_slash: bool,
    /// Which URL form named it (answers use the same).
    pub mount: Mount,
}

impl DavPath {
    /// The encoded href for responses; collections end in `/`.
    pub fn href(&self, collection: bool) -> String {
        href_at(self.mount, &self.space, &self.path, collection)
    }
}

/// Percent-encodes one decoded segment for an href.
pub fn encode_segment(seg: &str, out: &mut String) {
    // Most names need no escaping: copy them whole (the same bytes the encoder would give).
    if seg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        out.push_str(seg);
        return;
    }
    for part in utf8_percent_encode(seg, HREF_ESCAPE) {
        out.push_str(part);
    }
}

/// The href of `path` in `space`: `/dav/<tenant>/<user>/<segments>` with every byte but
/// unreserved ones escaped; a collection (and the root) ends in `/`.
pub fn href(space: &SpaceKey, path: &SpacePath, collection: bool) -> String {
    href_at(Mount::Dav, space, path, collection)
}

/// The href of `path` in `space` under `mount`.
pub fn href_at(mount: Mount, space: &SpaceKey, path: &SpacePath, collection: bool) -> String {
    let mut out = String::with_capacity(
        OC_FILES_PREFIX.len() + space.tenant.len() + space.user.len() + path.0.len() + 8,
    );
    if let Some((home, folder, prefix)) = crate::spaces::split_view(&space.user) {
        // A space or share seen inside `home`'s home as `folder`: the home's URL, the
        // folder, then the path below the prefix the view's paths start with.
        let home_key = SpaceKey {
            tenant: space.tenant.clone(),
            user: home.to_string(),
        };
        out.push_str(&href_at(mount, &home_key, &SpacePath::root(), true));
        encode_segment(folder, &mut out);
        out.push('/');
        let rest: Vec<&str> = path.segments().skip(prefix.count()).collect();
        for (i, seg) in rest.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            encode_segment(seg, &mut out);
        }
        if collection && !rest.is_empty() {
            out.push('/');
        }
        return out;
    }
    match mount {
        Mount::Space => {
            out.push_str(DAV_PREFIX);
            encode_segment(&space.tenant, &mut out);
            out.push('/');
            out.push_str(crate::spaces::URL_SEGMENT);
            out.push('/');
            let name = space
                .user
                .strip_prefix(crate::spaces::SPACE_PREFIX)
                .unwrap_or(&space.user);
            encode_segment(name, &mut out);
            out.push('/');
        }
        Mount::Dav => {
            out.push_str(DAV_PREFIX);
            encode_segment(&space.tenant, &mut out);
            out.push('/');
            encode_segment(&space.user, &mut out);
            out.push('/');
        }
        Mount::OcFiles => {
            // Account names are [a-z0-9._-]: `user@tenant` needs no escaping ('@' is a pchar).
            out.push_str(OC_FILES_PREFIX);
            encode_segment(&space.user, &mut out);
            out.push('@');
            encode_segment(&space.tenant, &mut out);
            out.push('/');
        }
        Mount::OcWebdav => out.push_str(OC_WEBDAV_PREFIX),
        Mount::Handin => {
            let skip = usize::from(crate::handin::access::href_prefix(space, &mut out));
            let rest: Vec<&str> = path.segments().skip(skip).collect();
            for (i, seg) in rest.iter().enumerate() {
                if i > 0 {
                    out.push('/');
                }
                encode_segment(seg, &mut out);
            }
            if collection && !rest.is_empty() {
                out.push('/');
            }
            return out;
        }
        Mount::OcUploads => {
            out.push_str(OC_UPLOADS_PREFIX);
            let mut segs = path.segments();
            if let Some(user) = segs.next() {
                encode_segment(user, &mut out);
                out.push('@');
                encode_segment(&space.tenant, &mut out);
                out.push('/');
            }
            let mut first = true;
            for seg in segs {
                if !first {
                    out.push('/');
                }
                first = false;
                encode_segment(seg, &mut out);
            }
            if collection && path.depth() > 1 {
                out.push('/');
            }
            return out;
        }
    }
    let mut first = true;
    for seg in path.segments() {
        if !first {
            out.push('/');
        }
        first = false;
        encode_segment(seg, &mut out);
    }
    if collection && !path.is_root() {
        out.push('/');
    }
    out
}

/// Checks a decoded segment: non-empty, no dot segment, no slash, backslash or control
/// character, not too long.
fn check_decoded(s: &str) -> Result<(), PathError> {
    if s.is_empty() {
        return Err(PathError::NoSpace);
    }
    if s == "." || s == ".." {
        return Err(PathError::DotSegment);
    }
    if s.len() > DAV_SEGMENT_LEN_MAX {
        return Err(PathError::SegmentTooLong);
    }
    if s.contains('/') {
        return Err(PathError::EncodedSlash);
    }
    if s.contains('\\') {
        return Err(PathError::Backslash);
    }
    if s.chars().any(char::is_control) {
        return Err(PathError::ControlChar);
    }
    Ok(())
}

/// Decodes one raw (percent-encoded) segment, refusing everything hostile.
pub fn decode_segment(raw: &str) -> Result<String, PathError> {
    if raw == "." || raw == ".." {
        return Err(PathError::DotSegment);
    }
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let ok = matches!((b.get(i + 1), b.get(i + 2)), (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit());
                if !ok {
                    return Err(PathError::BadPercent);
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            c if c < 0x20 || c == 0x7f => return Err(PathError::ControlChar),
            _ => i += 1,
        }
    }
    let bytes: Vec<u8> = percent_decode(b).collect();
    if bytes.len() > DAV_SEGMENT_LEN_MAX {
        return Err(PathError::SegmentTooLong);
    }
    if bytes.contains(&b'/') {
        return Err(PathError::EncodedSlash);
    }
    let s = String::from_utf8(bytes).map_err(|_| PathError::InvalidUtf8)?;
    check_decoded(&s)?;
    Ok(s)
}

/// Parses an origin-form request-target (`/dav/<tenant>/<user>/a/b?query`) into a space path.
/// The query is ignored; duplicate slashes collapse.
pub fn parse_target(target: &str) -> Result<DavPath, PathError> {
    parse_target_as(target, None)
}

/// Which mount a request path is under, and what follows its prefix.
pub fn mount_of(path: &str) -> Option<(Mount, &str)> {
    if path == "/dav" {
        return Some((Mount::Dav, ""));
    }
    if let Some(rest) = path.strip_prefix(DAV_PREFIX) {
        return Some((Mount::Dav, rest));
    }
    if let Some(rest) = path.strip_prefix(OC_FILES_PREFIX) {
        return Some((Mount::OcFiles, rest));
    }
    if let Some(rest) = path.strip_prefix(OC_UPLOADS_PREFIX) {
        return Some((Mount::OcUploads, rest));
    }
    if path == OC_WEBDAV_PREFIX.trim_end_matches('/') {
        return Some((Mount::OcWebdav, ""));
    }
    path.strip_prefix(OC_WEBDAV_PREFIX)
        .map(|rest| (Mount::OcWebdav, rest))
}

/// [`parse_target`] for any mount; `me` is the space `/remote.php/webdav/` names (the
/// requester's own; without it that form is `NoSpace`).
pub fn parse_target_as(target: &str, me: Option<&SpaceKey>) -> Result<DavPath, PathError> {
    if target.len() > DAV_TARGET_LEN_MAX {
        return Err(PathError::TooLong);
    }
    let path = match target.find(['?', '#']) {
        Some(i) => &target[..i],
        None => target,
    };
    let (mut mount, rest) = mount_of(path).ok_or(PathError::NotDav)?;
    let trailing_slash = path.ends_with('/');
    let mut segs = rest.split('/').filter(|s| !s.is_empty()).peekable();
    let mut sp = String::new();
    let mut depth = 0usize;
    let (tenant, user) = match mount {
        Mount::Dav => {
            let tenant = decode_segment(segs.next().ok_or(PathError::NoSpace)?)?;
            let user = decode_segment(segs.next().ok_or(PathError::NoSpace)?)?;
            if user == crate::handin::URL_SEGMENT {
                // A hand-in: the view of `me` when it is a view of this hand-in (a
                // pupil's starts at their folder), else the whole, for the access check.
                let h = decode_segment(segs.next().ok_or(PathError::NoSpace)?)?;
                mount = Mount::Handin;
                let view = me
                    .filter(|m| {
                        m.tenant == tenant
                            && crate::handin::split_view(&m.user).is_some_and(|(x, _)| x == h)
                    })
                    .map_or_else(|| crate::handin::space_user(&h), |m| m.user.clone());
                if let Some((_, Some(pupil))) = crate::handin::split_view(&view) {
                    sp.push_str(pupil);
                    depth = 1;
                }
                (tenant, view)
            } else if user == crate::spaces::URL_SEGMENT {
                // A shared space: its key is the engine space's (`_space_<name>`).
                let name = decode_segment(segs.next().ok_or(PathError::NoSpace)?)?;
                mount = Mount::Space;
                (tenant, crate::spaces::space_user(&name))
            } else {
                (tenant, user)
            }
        }
        Mount::OcFiles | Mount::OcUploads => {
            let uid = decode_segment(segs.next().ok_or(PathError::NoSpace)?)?;
            let (user, tenant) = uid.rsplit_once('@').ok_or(PathError::NoSpace)?;
            if user.is_empty() || tenant.is_empty() {
                return Err(PathError::NoSpace);
            }
            if mount == Mount::OcUploads {
                // The user's folder in the tenant's upload space.
                sp.push_str(user);
                depth = 1;
                (tenant.to_string(), UPLOADS_SPACE_USER.to_string())
            } else {
                (tenant.to_string(), user.to_string())
            }
        }
        Mount::OcWebdav => {
            let me = me.ok_or(PathError::NoSpace)?;
            // A view's URLs are those of the home it is seen in.
            let user = crate::spaces::split_view(&me.user)
                .map_or_else(|| me.user.clone(), |(home, _, _)| home.to_string());
            (me.tenant.clone(), user)
        }
        Mount::Handin | Mount::Space => return Err(PathError::NotDav),
    };
    // A space or share that `me` (a view, see `crate::spaces::split_view`) sees inside
    // this home: its folder's URLs are the view's, its paths start with the view's prefix.
    let (tenant, user) = match me.and_then(|m| {
        let (home, folder, prefix) = crate::spaces::split_view(&m.user)?;
        let here = matches!(mount, Mount::Dav | Mount::OcFiles | Mount::OcWebdav)
            && m.tenant == tenant
            && home == user;
        let next = segs.peek().map(|raw| decode_segment(raw));
        (here && matches!(next, Some(Ok(ref f)) if f == folder)).then_some((m, prefix))
    }) {
        Some((m, prefix)) => {
            segs.next();
            for p in prefix {
                if !sp.is_empty() {
                    sp.push('/');
                }
                sp.push_str(p);
                depth += 1;
            }
            (tenant, m.user.clone())
        }
        None => (tenant, user),
    };
    for raw in segs {
        let seg = decode_segment(raw)?;
        depth += 1;
        if depth > DAV_PATH_DEPTH_MAX {
            return Err(PathError::TooDeep);
        }
        if !sp.is_empty() {
            sp.push('/');
        }
        sp.push_str(&seg);
    }
    Ok(DavPath {
        space: SpaceKey { tenant, user },
        path: SpacePath(sp),
        trailing_slash,
        mount,
    })
}

/// How the authority of an absolute URI (Destination, tagged `If` lists) is checked.
#[derive(Clone, Copy, Debug)]
pub enum HostCheck<'a> {
    /// Must equal the request's Host header (case-insensitive, default ports ignored).
    Require(&'a str),
    /// Must equal either: the request's Host, or `http.public_url`'s authority (behind a
    /// proxy that rewrites Host).
    Either(&'a str, &'a str),
    /// Any authority is taken as this server (behind proxies that rewrite Host).
    Ignore,
}

/// What an absolute URI or absolute path refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriTarget {
    /// A URL on this server.
    Local(DavPath),
    /// Another server (RFC 4918 §9.9.4: answer 502 for a Destination).
    OtherHost,
}

fn strip_default_port(authority: &str, scheme_https: bool) -> &str {
    let port = if scheme_https { ":443" } else { ":80" };
    authority.strip_suffix(port).unwrap_or(authority)
}

/// Parses an RFC 4918 Simple-ref: an absolute http(s) URI or an absolute path.
/// `me` is the requester's space (what `/remote.php/webdav/` names).
pub fn parse_uri_ref(
    value: &str,
    host: HostCheck<'_>,
    me: Option<&SpaceKey>,
) -> Result<UriTarget, PathError> {
    let value = value.trim();
    if value.len() > DAV_TARGET_LEN_MAX {
        return Err(PathError::TooLong);
    }
    if value.starts_with('/') {
        return parse_target_as(value, me).map(UriTarget::Local);
    }
    let (scheme, rest) = value.split_once("://").ok_or(PathError::BadUri)?;
    let https = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        return Err(PathError::BadUri);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty()
        || authority.contains('@')
        || authority.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Err(PathError::BadUri);
    }
    let same = |h: &str| {
        strip_default_port(authority, https)
            .eq_ignore_ascii_case(strip_default_port(h.trim(), https))
    };
    let here = match host {
        HostCheck::Require(h) => same(h),
        HostCheck::Either(h, public) => same(h) || same(public),
        HostCheck::Ignore => true,
    };
    if !here {
        return Ok(UriTarget::OtherHost);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotDav);
    }
    parse_target_as(path, me).map(UriTarget::Local)
}

/// Where a Destination header points, relative to the request's space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Inside the same space as the request-URI.
    Local(DavPath),
    /// In another tenant's or user's space (the handler answers 403).
    OtherSpace(DavPath),
    /// On another server (RFC 4918 §9.8.5 / §9.9.4: 502 Bad Gateway).
    OtherHost,
}

/// Parses a Destination header (RFC 4918 §10.3) against the request's space.
pub fn parse_destination(
    value: &str,
    request_space: &SpaceKey,
    host: HostCheck<'_>,
) -> Result<Destination, PathError> {
    Ok(match parse_uri_ref(value, host, Some(request_space))? {
        UriTarget::OtherHost => Destination::OtherHost,
        UriTarget::Local(p) if &p.space == request_space => Destination::Local(p),
        UriTarget::Local(p) => Destination::OtherSpace(p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_mount_round_trips_its_hrefs() {
        let me = sp("school", "pupil");
        for (url, mount, space, path) in [
            ("/dav/school/pupil/a/b%20c", Mount::Dav, me.clone(), "a/b c"),
            (
                "/remote.php/dav/files/pupil@school/a/b%20c",
                Mount::OcFiles,
                me.clone(),
                "a/b c",
            ),
            (
                "/remote.php/dav/files/pupil%40school/a/b%20c",
                Mount::OcFiles,
                me.clone(),
                "a/b c",
            ),
            (
                "/remote.php/webdav/a/b%20c",
                Mount::OcWebdav,
                me.clone(),
                "a/b c",
            ),
            (
                "/remote.php/dav/uploads/pupil@school/t1/00001",
                Mount::OcUploads,
                sp("school", UPLOADS_SPACE_USER),
                "pupil/t1/00001",
            ),
        ] {
            let t = parse_target_as(url, Some(&me)).unwrap();
            assert_eq!(
                (t.mount, &t.space, t.path.as_str()),
                (mount, &space, path),
                "{url}"
            );
            let back = parse_target_as(&t.href(false), Some(&me)).unwrap();
            assert_eq!(back, t, "{url}");
        }
        // The legacy form needs to know whose it is; user@tenant needs both halves.
        assert_eq!(
            parse_target("/remote.php/webdav/x"),
            Err(PathError::NoSpace)
        );
        assert_eq!(
            parse_target("/remote.php/dav/files/pupil/x"),
            Err(PathError::NoSpace)
        );
        assert_eq!(
            parse_target("/remote.php/dav/files/@school/x"),
            Err(PathError::NoSpace)
        );
        assert_eq!(
            parse_target_as("/remote.php/dav/files/pupil@school/", None)
                .unwrap()
                .href(true),
            "/remote.php/dav/files/pupil@school/"
        );
    }

    #[test]
    fn spaces_and_views_round_trip_their_hrefs() {
        // A space's own URL.
        let t = parse_target("/dav/school/spaces/math-9a/a/b%20c").unwrap();
        assert_eq!(t.mount, Mount::Space);
        assert_eq!(t.space, sp("school", "_space_math-9a"));
        assert_eq!(t.path.as_str(), "a/b c");
        assert_eq!(t.href(false), "/dav/school/spaces/math-9a/a/b%20c");
        // A share seen in anna's home as "Docs", under each URL form of the home: the
        // view's paths start with the shared folder's path in the owner's home.
        let view = sp(
            "school",
            &crate::spaces::view_user("anna", "Docs", &["Teaching".into(), "Docs".into()]),
        );
        for (url, mount) in [
            ("/dav/school/anna/Docs/x/y.txt", Mount::Dav),
            (
                "/remote.php/dav/files/anna@school/Docs/x/y.txt",
                Mount::OcFiles,
            ),
            ("/remote.php/webdav/Docs/x/y.txt", Mount::OcWebdav),
        ] {
            let t = parse_target_as(url, Some(&view)).unwrap();
            assert_eq!(
                (t.mount, &t.space, t.path.as_str()),
                (mount, &view, "Teaching/Docs/x/y.txt"),
                "{url}"
            );
            assert_eq!(t.href(false), url);
            assert_eq!(parse_target_as(&t.href(false), Some(&view)).unwrap(), t);
            // The view's root is the folder in the home.
            let root = SpacePath::from_segments(["Teaching", "Docs"]).unwrap();
            assert!(href_at(mount, &view, &root, true).ends_with("Docs/"));
        }
        // Outside the folder, the home is the home's.
        let t = parse_target_as("/dav/school/anna/Other/x", Some(&view)).unwrap();
        assert_eq!(t.space, sp("school", "anna"));
        let t = parse_target_as("/remote.php/webdav/Other/x", Some(&view)).unwrap();
        assert_eq!(t.space, sp("school", "anna"));
    }

    fn sp(t: &str, u: &str) -> SpaceKey {
        SpaceKey {
            tenant: t.into(),
            user: u.into(),
        }
    }

    #[test]
    fn parses_plain_paths() {
        let p = parse_target("/dav/skole1/anna/Mapper/Brev%20til%20mor.docx").unwrap();
        assert_eq!(p.space, sp("skole1", "anna"));
        assert_eq!(p.path.as_str(), "Mapper/Brev til mor.docx");
        assert!(!p.trailing_slash);
        assert_eq!(p.path.depth(), 2);
        assert_eq!(p.path.name(), Some("Brev til mor.docx"));

        let root = parse_target("/dav/skole1/anna/").unwrap();
        assert!(root.path.is_root() && root.trailing_slash);
        let root2 = parse_target("/dav/skole1/anna").unwrap();
        assert!(root2.path.is_root() && !root2.trailing_slash);
    }

    #[test]
    fn collapses_slashes_and_keeps_trailing_slash() {
        let p = parse_target("/dav//t///u//a//b//?x=1").unwrap();
        assert_eq!(p.path.as_str(), "a/b");
        assert!(p.trailing_slash);
        assert_eq!(p.space, sp("t", "u"));
    }

    #[test]
    fn decodes_utf8_names() {
        let p = parse_target("/dav/t/u/%C3%A6bler/bl%C3%A5b%C3%A6r").unwrap();
        assert_eq!(p.path.as_str(), "æbler/blåbær");
        // Raw UTF-8 (some clients do not encode) is accepted too.
        let q = parse_target("/dav/t/u/æbler").unwrap();
        assert_eq!(q.path.as_str(), "æbler");
    }

    #[test]
    fn refuses_hostile_paths() {
        let cases: &[(&str, PathError)] = &[
            ("/dav/t/u/../v/x", PathError::DotSegment),
            ("/dav/t/u/./x", PathError::DotSegment),
            ("/dav/t/u/a/..", PathError::DotSegment),
            ("/dav/t/u/%2e%2e/x", PathError::DotSegment),
            ("/dav/t/u/%2E%2E", PathError::DotSegment),
            ("/dav/t/u/%2e", PathError::DotSegment),
            ("/dav/t/u/.%2e/x", PathError::DotSegment),
            ("/dav/t/u/a%2fb", PathError::EncodedSlash),
            ("/dav/t/u/a%2F..%2Fb", PathError::EncodedSlash),
            ("/dav/t/u/..\\x", PathError::Backslash),
            ("/dav/t/u/a%5cb", PathError::Backslash),
            ("/dav/t/u/a%00b", PathError::ControlChar),
            ("/dav/t/u/a\u{0}b", PathError::ControlChar),
            ("/dav/t/u/a%0ab", PathError::ControlChar),
            ("/dav/t/u/a%7fb", PathError::ControlChar),
            ("/dav/t/u/a%c2%85b", PathError::ControlChar),
            ("/dav/t/u/%c0%ae%c0%ae/x", PathError::InvalidUtf8),
            ("/dav/t/u/%c0%af", PathError::InvalidUtf8),
            ("/dav/t/u/%e0%80%ae", PathError::InvalidUtf8),
            ("/dav/t/u/%ff", PathError::InvalidUtf8),
            ("/dav/t/u/%zz", PathError::BadPercent),
            ("/dav/t/u/a%2", PathError::BadPercent),
            ("/dav/t/u/a%", PathError::BadPercent),
            ("/files/t/u/a", PathError::NotDav),
            ("/davx/t/u", PathError::NotDav),
            ("/dav/t", PathError::NoSpace),
            ("/dav/", PathError::NoSpace),
            ("/dav", PathError::NoSpace),
            ("/dav/../u/x", PathError::DotSegment),
            ("/dav/t/%2e%2e/x", PathError::DotSegment),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_target(input).as_ref().err(),
                Some(want),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn refuses_overlong_inputs() {
        let long_seg = "a".repeat(DAV_SEGMENT_LEN_MAX + 1);
        assert_eq!(
            parse_target(&format!("/dav/t/u/{long_seg}")),
            Err(PathError::SegmentTooLong)
        );
        let ok_seg = "a".repeat(DAV_SEGMENT_LEN_MAX);
        assert!(parse_target(&format!("/dav/t/u/{ok_seg}")).is_ok());
        // Encoded form longer than the limit but decoding within it is fine.
        let enc = "%41".repeat(DAV_SEGMENT_LEN_MAX);
        assert!(parse_target(&format!("/dav/t/u/{enc}")).is_ok());
        let deep = "/x".repeat(DAV_PATH_DEPTH_MAX + 1);
        assert_eq!(
            parse_target(&format!("/dav/t/u{deep}")),
            Err(PathError::TooDeep)
        );
        let ok_deep = "/x".repeat(DAV_PATH_DEPTH_MAX);
        assert!(parse_target(&format!("/dav/t/u{ok_deep}")).is_ok());
        let huge = format!("/dav/t/u/{}", "a/".repeat(DAV_TARGET_LEN_MAX));
        assert_eq!(parse_target(&huge), Err(PathError::TooLong));
    }

    #[test]
    fn href_escapes_all_but_unreserved() {
        let p = SpacePath::from_segments(["Mine filer", "æ?#%&+;=@[]", "a-b_c.d~e"]).unwrap();
        let h = href(&sp("t", "u"), &p, false);
        assert_eq!(
            h,
            "/dav/t/u/Mine%20filer/%C3%A6%3F%23%25%26%2B%3B%3D%40%5B%5D/a-b_c.d~e"
        );
        assert_eq!(href(&sp("t", "u"), &p, true), format!("{h}/"));
        assert_eq!(href(&sp("t", "u"), &SpacePath::root(), false), "/dav/t/u/");
        let back = parse_target(&h).unwrap();
        assert_eq!(back.path, p);
    }

    #[test]
    fn space_path_relations() {
        let a = SpacePath::from_segments(["a"]).unwrap();
        let ab = SpacePath::from_segments(["a", "b"]).unwrap();
        let abc = SpacePath::from_segments(["a", "b", "c"]).unwrap();
        let ax = SpacePath::from_segments(["ab"]).unwrap();
        assert!(a.contains(&ab) && a.is_ancestor_of(&abc) && !a.is_ancestor_of(&a));
        assert!(!a.contains(&ax), "prefix of a name is not an ancestor");
        assert!(SpacePath::root().is_ancestor_of(&a));
        assert_eq!(abc.ancestors().collect::<Vec<_>>(), vec!["a/b", "a", ""]);
        assert_eq!(SpacePath::root().ancestors().count(), 0);
        assert_eq!(abc.parent(), Some(ab.clone()));
        assert_eq!(a.parent(), Some(SpacePath::root()));
        let x = SpacePath::from_segments(["x"]).unwrap();
        assert_eq!(abc.rebase(&a, &x).unwrap().as_str(), "x/b/c");
        assert_eq!(ab.rebase(&ab, &x).unwrap(), x);
        assert_eq!(abc.rebase(&a, &SpacePath::root()).unwrap().as_str(), "b/c");
        assert_eq!(abc.rebase(&x, &a), None);
        assert!(a.join("..").is_err() && a.join("x/y").is_err() && a.join("").is_err());
    }

    #[test]
    fn destination_forms() {
        let me = sp("t", "u");
        let either = HostCheck::Either("skab-internal", "skab.example.dk");
        assert_eq!(
            parse_destination("https://SKAB.example.dk:443/dav/t/u/y", &me, either),
            parse_destination("/dav/t/u/y", &me, either),
            "the public authority is this server"
        );
        assert_eq!(
            parse_destination("http://skab-internal/dav/t/u/y", &me, either),
            parse_destination("/dav/t/u/y", &me, either),
        );
        assert_eq!(
            parse_destination("https://evil.example.dk/dav/t/u/y", &me, either),
            Ok(Destination::OtherHost)
        );
        let host = HostCheck::Require("skab.example.dk");
        let d = parse_destination("http://skab.example.dk/dav/t/u/b%20c", &me, host).unwrap();
        assert!(matches!(&d, Destination::Local(p) if p.path.as_str() == "b c"));
        let d = parse_destination("HTTPS://SKAB.example.dk:443/dav/t/u/x/", &me, host).unwrap();
        assert!(matches!(&d, Destination::Local(p) if p.path.as_str() == "x" && p.trailing_slash));
        let d = parse_destination("/dav/t/u/y", &me, host).unwrap();
        assert!(matches!(&d, Destination::Local(p) if p.path.as_str() == "y"));
        let d = parse_destination("http://skab.example.dk/dav/t/v/y", &me, host).unwrap();
        assert!(matches!(&d, Destination::OtherSpace(p) if p.space == sp("t", "v")));
        let d = parse_destination("http://other.example.dk/dav/t/u/y", &me, host).unwrap();
        assert_eq!(d, Destination::OtherHost);
        let d =
            parse_destination("http://other.example.dk/dav/t/u/y", &me, HostCheck::Ignore).unwrap();
        assert!(matches!(d, Destination::Local(_)));
        assert_eq!(
            parse_destination("ftp://skab.example.dk/dav/t/u/y", &me, host),
            Err(PathError::BadUri)
        );
        assert_eq!(
            parse_destination("dav/t/u/y", &me, host),
            Err(PathError::BadUri)
        );
        assert_eq!(
            parse_destination("http://a@skab.example.dk/dav/t/u/y", &me, host),
            Err(PathError::BadUri)
        );
        assert_eq!(
            parse_destination("http://skab.example.dk", &me, host),
            Err(PathError::NotDav)
        );
        assert_eq!(
            parse_destination("http://skab.example.dk/dav/t/u/%2e%2e/v", &me, host),
            Err(PathError::DotSegment)
        );
    }

    fn segment() -> impl Strategy<Value = String> {
        "[^/\\\\\\p{Cc}]{1,24}".prop_filter("dot segment", |s| {
            s != "." && s != ".." && s.len() <= DAV_SEGMENT_LEN_MAX
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn href_round_trip(tenant in segment(), user in segment(), segs in proptest::collection::vec(segment(), 0..8), coll in any::<bool>()) {
            let space = SpaceKey { tenant, user };
            let path = SpacePath::from_segments(&segs).unwrap();
            let h = href(&space, &path, coll);
            prop_assert!(h.bytes().all(|b| b.is_ascii_graphic()));
            let back = parse_target(&h).unwrap();
            prop_assert_eq!(back.space, space);
            prop_assert_eq!(back.path, path.clone());
            prop_assert_eq!(back.trailing_slash, coll || path.is_root());
        }

        #[test]
        fn encode_segment_equals_the_percent_encoder(s in "[a-zA-Z0-9._~-]{0,12}|\\PC{0,24}") {
            let mut fast = String::new();
            encode_segment(&s, &mut fast);
            prop_assert_eq!(fast, utf8_percent_encode(&s, HREF_ESCAPE).to_string());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,64}") {
            let _ = parse_target(&s);
            let _ = parse_uri_ref(&s, HostCheck::Require("h"), None);
        }
    }
}
