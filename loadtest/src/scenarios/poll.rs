//! Polling the way the desktop sync clients (Nextcloud, ownCloud) do: PROPFIND Depth 0 of the
//! sync root asking for the properties those clients ask for; when the root's ETag differs from
//! the one remembered, PROPFIND Depth 1 of the root, then Depth 1 of each child collection
//! whose ETag changed (at most `FOLDERS_PER_POLL` of them), and remember the new ETags.
//!
//! The multistatus is parsed with quick-xml over the borrowed body: a poll allocates nothing
//! for its parse unless the ETag holds an XML escape.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;
use serde::Serialize;

use super::{propfind, propfind_headers, Ctx};

/// The PROPFIND body of the Nextcloud/ownCloud desktop clients (their discovery and polls).
pub const CLIENT_PROPFIND_BODY: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
<d:propfind xmlns:d=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\" xmlns:nc=\"http://nextcloud.org/ns\">\
<d:prop><d:getetag/><d:getlastmodified/><d:getcontentlength/><d:resourcetype/>\
<oc:id/><oc:fileid/><oc:permissions/><oc:size/><oc:checksums/>\
<nc:has-preview/><nc:is-encrypted/><nc:mount-type/></d:prop></d:propfind>";

/// Most child collections listed after one poll that found a change; the rest wait for the
/// next poll (the root's ETag is then not remembered, so that poll finds the change again).
pub const FOLDERS_PER_POLL: usize = 8;

/// Polling counters shared by a run's sessions.
#[derive(Default)]
pub struct PollStats {
    /// Polls answered 207.
    pub polls: AtomicU64,
    /// Polls whose root ETag differed from the remembered one.
    pub changed: AtomicU64,
    /// Polls answered 207 without a getetag of the root.
    pub no_etag: AtomicU64,
    /// Follow-up PROPFIND Depth 1 of the root.
    pub listings: AtomicU64,
    /// Follow-up PROPFIND Depth 1 of a changed child collection.
    pub folder_listings: AtomicU64,
    /// Follow-ups that hit `FOLDERS_PER_POLL` (more folders changed than one poll lists).
    pub capped: AtomicU64,
}

/// The polling counters in result.json.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PollOut {
    pub polls: u64,
    pub polls_changed: u64,
    /// polls_changed / polls (0 without polls).
    pub changed_share: f64,
    pub polls_without_etag: u64,
    pub listings: u64,
    pub folder_listings: u64,
    pub capped_follow_ups: u64,
    pub folders_per_poll_max: usize,
}

impl PollStats {
    pub fn out(&self) -> PollOut {
        let polls = self.polls.load(Ordering::Relaxed);
        let changed = self.changed.load(Ordering::Relaxed);
        PollOut {
            polls,
            polls_changed: changed,
            changed_share: if polls > 0 {
                changed as f64 / polls as f64
            } else {
                0.0
            },
            polls_without_etag: self.no_etag.load(Ordering::Relaxed),
            listings: self.listings.load(Ordering::Relaxed),
            folder_listings: self.folder_listings.load(Ordering::Relaxed),
            capped_follow_ups: self.capped.load(Ordering::Relaxed),
            folders_per_poll_max: FOLDERS_PER_POLL,
        }
    }
}

/// An ETag as compared here: without `W/` and without its quotes.
pub fn norm_etag(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

fn is_dav(ns: &ResolveResult) -> bool {
    matches!(ns, ResolveResult::Bound(Namespace(b"DAV:")))
}

#[derive(Clone, Copy, PartialEq)]
enum Field {
    None,
    Href,
    Etag,
}

/// Calls `f(href, etag, is_collection)` for each `DAV:response` of a multistatus, the ETag
/// normalised (`norm_etag`); the strings borrow from `body` unless they hold XML escapes.
/// Returns the number of responses, or None when the body is not well-formed XML.
pub fn each_response(body: &[u8], mut f: impl FnMut(&str, Option<&str>, bool)) -> Option<usize> {
    let mut r = NsReader::from_reader(body);
    let mut n = 0usize;
    let mut in_resp = false;
    let mut field = Field::None;
    let mut href: Cow<str> = Cow::Borrowed("");
    let mut etag: Option<Cow<str>> = None;
    let mut coll = false;
    loop {
        let (ns, ev) = r.read_resolved_event().ok()?;
        match ev {
            Event::Start(e) => {
                if !is_dav(&ns) {
                    continue;
                }
                match e.local_name().as_ref() {
                    b"response" => {
                        in_resp = true;
                        href = Cow::Borrowed("");
                        etag = None;
                        coll = false;
                    }
                    // The response's own href (not one inside a property value).
                    b"href" if in_resp && href.is_empty() => field = Field::Href,
                    b"getetag" if in_resp => field = Field::Etag,
                    b"collection" if in_resp => coll = true,
                    _ => {}
                }
            }
            Event::Empty(e)
                if is_dav(&ns) && in_resp && e.local_name().as_ref() == b"collection" =>
            {
                coll = true;
            }
            Event::Text(t) => {
                let text = t.unescape().ok()?;
                match field {
                    Field::Href => href = join(std::mem::take(&mut href), text),
                    Field::Etag => {
                        etag = Some(match etag.take() {
                            Some(e) => join(e, text),
                            None => text,
                        })
                    }
                    Field::None => {}
                }
            }
            Event::End(e) => {
                field = Field::None;
                if is_dav(&ns) && e.local_name().as_ref() == b"response" && in_resp {
                    in_resp = false;
                    n += 1;
                    let et = etag.as_deref().map(norm_etag).filter(|e| !e.is_empty());
                    f(href.trim(), et, coll);
                }
            }
            // A body cut off inside a response is not a multistatus.
            Event::Eof if in_resp => return None,
            Event::Eof => break,
            _ => {}
        }
    }
    Some(n)
}

fn join<'a>(a: Cow<'a, str>, b: Cow<'a, str>) -> Cow<'a, str> {
    if a.is_empty() {
        b
    } else {
        Cow::Owned(format!("{a}{b}"))
    }
}

/// The path of an href (absolute URL or path).
fn href_path(href: &str) -> &str {
    match href.find("://") {
        Some(i) => {
            let rest = &href[i + 3..];
            rest.find('/').map_or("/", |j| &rest[j..])
        }
        None => href,
    }
}

/// Whether two paths name the same collection (percent-decoded, trailing `/` ignored).
fn same_path(a: &str, b: &str) -> bool {
    use percent_encoding::percent_decode_str;
    let a = href_path(a).trim_end_matches('/');
    let b = href_path(b).trim_end_matches('/');
    a == b || percent_decode_str(a).eq(percent_decode_str(b))
}

/// The last segment of an href, percent-decoded.
fn last_name(href: &str) -> Box<str> {
    let p = href_path(href).trim_end_matches('/');
    let seg = p.rsplit('/').next().unwrap_or(p);
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into()
}

/// One member of a listed collection.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub name: Box<str>,
    /// Normalised; empty when the server gave none.
    pub etag: Box<str>,
    pub collection: bool,
}

/// A Depth 1 listing: the collection's own ETag and its members.
#[derive(Debug, Default)]
pub struct Listing {
    pub etag: Option<Box<str>>,
    pub children: Vec<Child>,
}

/// Parses a Depth 1 multistatus of `path`: the response whose href is `path` is the collection
/// itself (or the first response when none matches); the others are its members.
pub fn listing(body: &[u8], path: &str) -> Option<Listing> {
    let mut l = Listing::default();
    let mut own: Option<usize> = None;
    let mut first_etag: Option<Box<str>> = None;
    let mut all = Vec::new();
    each_response(body, |href, etag, coll| {
        if own.is_none() && same_path(href, path) {
            own = Some(all.len());
        }
        if all.is_empty() {
            first_etag = etag.map(Into::into);
        }
        all.push(Child {
            name: last_name(href),
            etag: etag.unwrap_or("").into(),
            collection: coll,
        });
    })?;
    let own = own.unwrap_or(0);
    if own < all.len() {
        let me = all.remove(own);
        l.etag = (!me.etag.is_empty()).then_some(me.etag);
    } else {
        l.etag = first_etag;
    }
    l.children = all;
    Some(l)
}

/// What a sync client remembers of its root: the root's ETag and its child collections' ETags.
#[derive(Default, Debug)]
pub struct Tree {
    pub root: Option<Box<str>>,
    pub folders: Vec<(Box<str>, Box<str>)>,
}

impl Tree {
    /// Learns the root from its Depth 1 listing (the login listing).
    pub fn learn(&mut self, l: &Listing) {
        self.root = l.etag.clone();
        self.folders = l
            .children
            .iter()
            .filter(|c| c.collection)
            .map(|c| (c.name.clone(), c.etag.clone()))
            .collect();
    }

    /// The child collections of `l` whose ETag differs from the remembered one (or that are
    /// new), in listing order.
    pub fn changed<'a>(&self, l: &'a Listing) -> Vec<&'a Child> {
        l.children
            .iter()
            .filter(|c| c.collection)
            .filter(|c| {
                !self
                    .folders
                    .iter()
                    .any(|(n, e)| **n == *c.name && **e == *c.etag && !e.is_empty())
            })
            .collect()
    }
}

/// A child collection listed after a poll: its name, files (name, ETag), when it arrived.
pub type Relisted = (Box<str>, Vec<(Box<str>, Box<str>)>, Instant);

/// The result of one poll.
pub enum Polled {
    /// The request failed (recorded as an error).
    Failed,
    /// The answer had no getetag for the root (counted as `no_etag`): the client cannot tell.
    NoEtag,
    Unchanged,
    /// The root changed; these child collections were listed: name, their files (name,
    /// ETag), and when the listing arrived.
    Changed(Vec<Relisted>),
}

/// One session's polling identity.
pub struct Poller<'a> {
    pub ctx: &'a Arc<Ctx>,
    pub pick: usize,
    pub home: &'a str,
    pub auth: &'a HeaderValue,
}

impl Poller<'_> {
    /// PROPFIND of `path` at `depth` with the client body (op `op`), body kept.
    async fn propfind(
        &self,
        op: &'static str,
        sched: Instant,
        path: &str,
        depth: &'static str,
    ) -> Option<Bytes> {
        let hdr = propfind_headers(self.auth, depth);
        let r = Box::pin(self.ctx.op_keep(
            op,
            sched,
            self.pick,
            propfind(),
            path,
            &hdr,
            Bytes::from_static(CLIENT_PROPFIND_BODY.as_bytes()),
            &[207],
        ))
        .await?;
        Some(r.body)
    }

    /// The login listing (Depth 1 of the root, op `op`), learnt into `tree`; false on failure.
    /// A 503 or 429 with `Retry-After` is answered as clients do: wait that long (plus up to
    /// half of it again, so refused logins do not come back as one herd) and try again, at most
    /// `LOGIN_RETRIES_MAX` times. Each such refusal is recorded as op `login.refused` (its own
    /// latency: how fast the refusal came); `op` is recorded once, from the scheduled start to
    /// the listing, so its latency is the whole wait of the session's first login.
    pub async fn login(&self, op: &'static str, sched: Instant, tree: &mut Tree) -> bool {
        use crate::limits::{LOGIN_RETRIES_MAX, LOGIN_RETRY_AFTER_MAX_S};
        let hdr = propfind_headers(self.auth, "1");
        let mut tries = 0u32;
        let body = loop {
            let sent = Instant::now();
            let r = Box::pin(self.ctx.http.send_keep(
                self.pick,
                propfind(),
                self.home,
                &hdr,
                Bytes::from_static(CLIENT_PROPFIND_BODY.as_bytes()),
            ))
            .await;
            match r {
                Ok(r) if r.status == 207 => {
                    self.ctx.rec.record(op, sched, None);
                    break r.body;
                }
                Ok(r) if matches!(r.status, 429 | 503) && tries < LOGIN_RETRIES_MAX => {
                    let Some(after) = r.retry_after_s else {
                        self.ctx
                            .rec
                            .record(op, sched, Some(&format!("status:{}", r.status)));
                        return false;
                    };
                    self.ctx.rec.record("login.refused", sent, None);
                    tries += 1;
                    let after = Duration::from_secs(after.clamp(1, LOGIN_RETRY_AFTER_MAX_S));
                    let spread = after.mul_f64(rand::random::<f64>() * 0.5);
                    tokio::time::sleep(after + spread).await;
                }
                Ok(r) => {
                    self.ctx
                        .rec
                        .record(op, sched, Some(&format!("status:{}", r.status)));
                    return false;
                }
                Err(f) => {
                    self.ctx.rec.record(op, sched, Some(f.kind()));
                    return false;
                }
            }
        };
        match listing(&body, self.home) {
            Some(l) => {
                tree.learn(&l);
                true
            }
            None => {
                self.ctx
                    .rec
                    .record("listing.parse", Instant::now(), Some("bad-xml"));
                false
            }
        }
    }

    /// Depth 1 of one child collection: its own ETag and its files (name, ETag).
    pub async fn list_folder(
        &self,
        name: &str,
    ) -> Option<(Option<Box<str>>, Vec<(Box<str>, Box<str>)>)> {
        let path = format!("{}{}/", self.home, enc(name));
        let body = self
            .propfind("list.folder", Instant::now(), &path, "1")
            .await?;
        let l = listing(&body, &path)?;
        let files = l
            .children
            .into_iter()
            .filter(|c| !c.collection)
            .map(|c| (c.name, c.etag))
            .collect();
        Some((l.etag, files))
    }

    /// One poll scheduled at `at`: Depth 0; on a changed root ETag the follow-up listings.
    pub async fn poll(&self, at: Instant, tree: &mut Tree) -> Polled {
        let st = &self.ctx.polling;
        let Some(body) = self.propfind("poll", at, self.home, "0").await else {
            return Polled::Failed;
        };
        st.polls.fetch_add(1, Ordering::Relaxed);
        let mut seen: Option<bool> = None;
        let remembered = tree.root.as_deref();
        let parsed = each_response(&body, |_, etag, _| {
            if seen.is_none() {
                if let Some(e) = etag {
                    seen = Some(remembered == Some(e));
                }
            }
        });
        match (parsed, seen) {
            (Some(_), Some(true)) => return Polled::Unchanged,
            (Some(_), Some(false)) => {}
            _ => {
                st.no_etag.fetch_add(1, Ordering::Relaxed);
                return Polled::NoEtag;
            }
        }
        st.changed.fetch_add(1, Ordering::Relaxed);
        // The follow-up: the root's members, then each changed child collection.
        let Some(body) = self.propfind("list", Instant::now(), self.home, "1").await else {
            return Polled::Changed(Vec::new());
        };
        st.listings.fetch_add(1, Ordering::Relaxed);
        let Some(l) = listing(&body, self.home) else {
            self.ctx
                .rec
                .record("listing.parse", Instant::now(), Some("bad-xml"));
            return Polled::Changed(Vec::new());
        };
        let changed = tree.changed(&l);
        let capped = changed.len() > FOLDERS_PER_POLL;
        if capped {
            st.capped.fetch_add(1, Ordering::Relaxed);
        }
        let mut complete = !capped;
        let mut relisted = Vec::new();
        let mut folders: Vec<(Box<str>, Box<str>)> = Vec::new();
        for c in changed.iter().take(FOLDERS_PER_POLL) {
            st.folder_listings.fetch_add(1, Ordering::Relaxed);
            match self.list_folder(&c.name).await {
                Some((_, files)) => {
                    relisted.push((c.name.clone(), files, Instant::now()));
                    // Remember the ETag the root listing showed: a change after it shows again.
                    folders.push((c.name.clone(), c.etag.clone()));
                }
                None => complete = false,
            }
        }
        // Folders not listed now keep their old ETag (or none), so they count as changed later.
        for c in l.children.iter().filter(|c| c.collection) {
            if folders.iter().any(|(n, _)| *n == c.name) {
                continue;
            }
            if let Some(old) = tree.folders.iter().find(|(n, _)| *n == c.name) {
                folders.push(old.clone());
            }
        }
        tree.folders = folders;
        if complete {
            tree.root = l.etag.clone();
        }
        Polled::Changed(relisted)
    }
}

/// A path segment percent-encoded like `client::home_path` does.
pub fn enc(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    utf8_percent_encode(s, NON_ALPHANUMERIC)
        .to_string()
        .replace("%2E", ".")
        .replace("%2D", "-")
        .replace("%5F", "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:"><D:response><D:href>/dav/t/u%40x/</D:href><D:propstat><D:prop>
<D:getetag>"root-1"</D:getetag><D:resourcetype><D:collection/></D:resourcetype></D:prop>
<D:status>HTTP/1.1 200 OK</D:status></D:propstat><D:propstat><D:prop><X:has-preview xmlns:X="http://nextcloud.org/ns"/></D:prop>
<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>
<D:response><D:href>http://h:1/dav/t/u%40x/a%20b/</D:href><D:propstat><D:prop><D:getetag>W/"d&amp;1"</D:getetag>
<D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<d:response xmlns:d="DAV:"><d:href>/dav/t/u%40x/f.txt</d:href><d:propstat><d:prop><d:getetag>"f1"</d:getetag>
<d:resourcetype/></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></D:multistatus>"#;

    #[test]
    fn parses_a_listing() {
        let l = listing(MS.as_bytes(), "/dav/t/u@x").unwrap();
        assert_eq!(l.etag.as_deref(), Some("root-1"));
        assert_eq!(
            l.children,
            vec![
                Child {
                    name: "a b".into(),
                    etag: "d&1".into(),
                    collection: true
                },
                Child {
                    name: "f.txt".into(),
                    etag: "f1".into(),
                    collection: false
                },
            ]
        );
        // The root is found by its href wherever it stands.
        let l = listing(MS.as_bytes(), "/dav/t/u%40x/f.txt").unwrap();
        assert_eq!(l.etag.as_deref(), Some("f1"));
        assert_eq!(l.children.len(), 2);
        assert!(listing(b"<D:multistatus xmlns:D=\"DAV:\"><D:response>", "/").is_none());
    }

    #[test]
    fn tree_sees_changed_folders() {
        let mut t = Tree::default();
        let l = listing(MS.as_bytes(), "/dav/t/u@x/").unwrap();
        assert_eq!(t.changed(&l).len(), 1, "an unknown folder is changed");
        t.learn(&l);
        assert!(t.changed(&l).is_empty());
        let l2 = listing(MS.replace("d&amp;1", "d2").as_bytes(), "/dav/t/u@x/").unwrap();
        assert_eq!(&*t.changed(&l2)[0].name, "a b");
        assert_eq!(norm_etag(" W/\"x\" "), "x");
        assert_eq!(norm_etag("y"), "y");
    }
}
