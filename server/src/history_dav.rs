//! The versions and trash of one's own space over WebDAV: the Nextcloud/ownCloud layout
//! (`/remote.php/dav/versions/<user>@<tenant>/…`, `/remote.php/dav/trashbin/<user>@<tenant>/…`)
//! and the same under `/dav-versions/<tenant>/<user>/…` and `/dav-trash/<tenant>/<user>/…`
//! (docs/webdav.md, "Versions and trash"). A file id tagged with another engine space leads
//! to that space's versions when the caller reaches the file (a space, a share, their own
//! hand-in folder); `<root>/spaces/<S>/` and `<root>/handin/<H>/` are the trash of a space
//! and of one's hand-in folder. Restoring and purging need write permission there.

use futures::StreamExt;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LAST_MODIFIED};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use skab_engine::ns::{Kind, Name};
use skab_engine::{NodeId, SpaceKey};

use crate::app::App;
use crate::auth::Principal;
use crate::dav::xml::{Multistatus, PropName};
use crate::history::may_reach;
use crate::http::body::{empty, streamed, ReqBody};
use crate::http::response::{status, text, xml, Resp};
use crate::limits::TRASH_RESTORE_NAME_TRIES;
use crate::methods::common::{content_type, engine_error, time_of};

const OC_VERSIONS: &str = "/remote.php/dav/versions/";
const OC_TRASH: &str = "/remote.php/dav/trashbin/";
const DAV_VERSIONS: &str = "/dav-versions/";
const DAV_TRASH: &str = "/dav-trash/";
/// Namespace of the `nc:trashbin-*` properties.
const NC_NS: &str = "http://nextcloud.org/ns";
const HREF_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    Versions,
    Trash,
}

/// A parsed target: which area, whose root the URL names, the URL root up to it, the
/// segments after it.
struct Target {
    area: Area,
    /// The space the URL names (`<user>@<tenant>` or `/<tenant>/<user>`).
    url_owner: SpaceKey,
    root: String,
    rest: Vec<String>,
    /// The sub-root after the user's own root (`spaces/<S>`, `handin/<H>`), when any.
    sub: Vec<String>,
}

/// The part of an engine space one request may reach, and whether it may change it.
#[derive(Clone)]
struct Scope {
    key: SpaceKey,
    /// The caller's whole view inside the space: a shared folder, a pupil's hand-in folder
    /// (empty: all of it). Anything outside is answered as missing.
    base: Vec<Name>,
    /// Why restoring and purging are refused (read-only member, hand-in not open); `None`
    /// when they are allowed.
    no_write: Option<String>,
    /// The tag of the file ids the space's entries are shown with (0 in one's home).
    tag: u64,
}

impl Scope {
    /// One's own home, all of it.
    fn whole(key: SpaceKey) -> Scope {
        Scope {
            key,
            base: Vec::new(),
            no_write: None,
            tag: 0,
        }
    }

    /// Another engine space (a space, a share owner's home, a hand-in).
    fn of(key: SpaceKey, base: Vec<Name>, no_write: Option<String>) -> Scope {
        Scope {
            tag: crate::spaces::access::file_id_tag(&key),
            key,
            base,
            no_write,
        }
    }

    fn covers(&self, path: &[Name]) -> bool {
        path.starts_with(&self.base)
    }

    fn refuse_write(&self) -> Option<Resp> {
        self.no_write
            .as_deref()
            .map(|why| text(StatusCode::FORBIDDEN, why))
    }
}

/// True for paths this module answers.
pub fn is_history(path: &str) -> bool {
    [OC_VERSIONS, OC_TRASH, DAV_VERSIONS, DAV_TRASH]
        .iter()
        .any(|p| path.starts_with(p))
}

fn parse(path: &str) -> Option<Target> {
    let (area, oc, tail) = if let Some(t) = path.strip_prefix(OC_VERSIONS) {
        (Area::Versions, true, t)
    } else if let Some(t) = path.strip_prefix(OC_TRASH) {
        (Area::Trash, true, t)
    } else if let Some(t) = path.strip_prefix(DAV_VERSIONS) {
        (Area::Versions, false, t)
    } else {
        (Area::Trash, false, path.strip_prefix(DAV_TRASH)?)
    };
    let mut segs = Vec::new();
    for s in tail.split('/').filter(|s| !s.is_empty()) {
        let d = percent_decode_str(s).decode_utf8().ok()?;
        if d.contains('/') || d == "." || d == ".." {
            return None;
        }
        segs.push(d.into_owned());
    }
    let (owner, root, rest) = if oc {
        let first = segs.first()?;
        let (user, tenant) = first.rsplit_once('@')?;
        let owner = SpaceKey::new(tenant, user).ok()?;
        let prefix = if area == Area::Versions {
            OC_VERSIONS
        } else {
            OC_TRASH
        };
        let root = format!("{prefix}{}", enc(first));
        (owner, root, segs[1..].to_vec())
    } else {
        if segs.len() < 2 {
            return None;
        }
        let owner = SpaceKey::new(&segs[0], &segs[1]).ok()?;
        let prefix = if area == Area::Versions {
            DAV_VERSIONS
        } else {
            DAV_TRASH
        };
        let root = format!("{prefix}{}/{}", enc(&segs[0]), enc(&segs[1]));
        (owner, root, segs[2..].to_vec())
    };
    Some(Target {
        area,
        url_owner: owner,
        root,
        rest,
        sub: Vec::new(),
    })
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, HREF_ESCAPE).to_string()
}

fn not_found() -> Resp {
    text(StatusCode::NOT_FOUND, "not found")
}

/// The `Destination` header as a parsed target of the same area and owner.
fn destination(req: &Request<ReqBody>, t: &Target) -> Option<Vec<String>> {
    let d = req.headers().get("destination")?.to_str().ok()?;
    let path = match d.find("://") {
        Some(i) => {
            let after = &d[i + 3..];
            &after[after.find('/')?..]
        }
        None => d,
    };
    let dest = parse(path)?;
    if dest.area != t.area || dest.url_owner != t.url_owner {
        return None;
    }
    // Under a sub-root the destination may name it too (`R/spaces/S/restore/x`).
    Some(match dest.rest.strip_prefix(t.sub.as_slice()) {
        Some(r) if !t.sub.is_empty() => r.to_vec(),
        _ => dest.rest,
    })
}

/// Answers a request for one of the areas (already authenticated as `who`).
pub async fn handle(app: &App, req: Request<ReqBody>, who: &Principal) -> Resp {
    let Some(mut t) = parse(req.uri().path()) else {
        return not_found();
    };
    let Ok(me) = SpaceKey::new(who.tenant.as_str(), who.user.as_str()) else {
        return not_found();
    };
    let scopes = if t.url_owner == me {
        match own_root_scopes(app, &me, &mut t) {
            Some(s) => s,
            None => return not_found(),
        }
    } else if let Some(name) = t.url_owner.user().strip_prefix(crate::spaces::SPACE_PREFIX) {
        // A shared space's own root: its members'.
        match space_scope(app, &me, name).filter(|_| t.url_owner.tenant() == me.tenant()) {
            Some(s) => vec![s],
            None => return not_found(),
        }
    } else if may_reach(Some(&me), &t.url_owner) {
        vec![Scope::whole(t.url_owner.clone())]
    } else {
        // Another user's or tenant's versions and trash: as if they did not exist.
        return not_found();
    };
    // One's own home and a space are made on first use (an empty history); a hand-in's
    // space exists once anybody looked at the hand-in. A pupil's hand-in folder left by a
    // deleted account of the same name is retired first, as the hand-in's own URLs do.
    for s in &scopes {
        let handin = s.key.user().strip_prefix(crate::handin::SPACE_PREFIX);
        if let (Some(h), false) = (handin, s.base.is_empty()) {
            let settled = crate::handin::access::settle_pupil(app, me.tenant(), h, me.user()).await;
            if let Err(r) = settled {
                return r;
            }
        }
        if handin.is_none() && !app.store.space_exists(&s.key) {
            if let Err(e) = app.store.create_space(&s.key).await {
                return engine_error(&e);
            }
        }
    }
    match t.area {
        Area::Versions => versions(app, &req, &t, &scopes).await,
        Area::Trash => trash(app, &req, &t, &scopes).await,
    }
}

/// What `me` reaches under their own root: their home; under a file id tagged with another
/// engine space (`spaces::access::file_id_tag`), the spaces, shares and hand-ins they are
/// in whose space has that tag; under the trash sub-roots `spaces/<S>` and `handin/<H>`,
/// that space's or hand-in's trash. `None` when the tag or sub-root names nothing `me`
/// reaches (answered 404, as for a name that does not exist).
fn own_root_scopes(app: &App, me: &SpaceKey, t: &mut Target) -> Option<Vec<Scope>> {
    match (t.area, t.rest.first().map(String::as_str), t.rest.get(1)) {
        (Area::Trash, Some(kind @ ("spaces" | "handin")), Some(name)) => {
            let scope = if kind == "spaces" {
                space_scope(app, me, name)?
            } else {
                handin_scope(app, me, name)?
            };
            t.root = format!("{}/{kind}/{}", t.root, enc(name));
            t.sub = t.rest.drain(..2).collect();
            Some(vec![scope])
        }
        (Area::Versions, Some("versions"), Some(fid)) => {
            let tag = fid.parse::<u64>().ok()? & !u64::from(u32::MAX);
            if tag == 0 {
                return Some(vec![Scope::whole(me.clone())]);
            }
            let tag_of = crate::spaces::access::file_id_tag;
            let mut out = Vec::new();
            for m in crate::spaces::access::mounts_of(app, me.tenant(), me.user()) {
                let Ok(key) = SpaceKey::new(me.tenant(), &m.engine_user) else {
                    continue;
                };
                if tag_of(&key) != tag {
                    continue;
                }
                let Ok(base) = m
                    .prefix
                    .iter()
                    .map(|p| Name::new(p))
                    .collect::<Result<Vec<_>, _>>()
                else {
                    continue;
                };
                let what = if m.prefix.is_empty() {
                    format!("space {}", m.folder)
                } else {
                    format!("the shared folder {}", m.folder)
                };
                out.push(Scope::of(
                    key,
                    base,
                    (!m.write).then(|| format!("{what} is read-only for you")),
                ));
            }
            for h in app.handins.all().iter().filter(|h| h.tenant == me.tenant()) {
                let Ok(key) = SpaceKey::new(me.tenant(), &crate::handin::space_user(&h.name))
                else {
                    continue;
                };
                if tag_of(&key) == tag {
                    out.extend(handin_scope(app, me, &h.name));
                }
            }
            // Writable scopes first: of two shares holding a file, the stronger counts.
            out.sort_by_key(|s| s.no_write.is_some());
            (!out.is_empty()).then_some(out)
        }
        _ => Some(vec![Scope::whole(me.clone())]),
    }
}

/// Space `name` of `me`'s tenant, for a member (readers may not restore or purge).
fn space_scope(app: &App, me: &SpaceKey, name: &str) -> Option<Scope> {
    let space = app.spaces.space(me.tenant(), name)?;
    let groups = crate::spaces::access::groups(app, me.tenant(), me.user());
    let perm = crate::spaces::access::space_perm(&space, me.user(), &groups)?;
    Some(Scope::of(
        SpaceKey::new(me.tenant(), &crate::spaces::space_user(name)).ok()?,
        Vec::new(),
        (perm == crate::spaces::Perm::Read).then(|| format!("space {name} is read-only for you")),
    ))
}

/// Hand-in `name` of `me`'s tenant: a pupil of its group reaches their own folder (and
/// restores or purges only while the hand-in takes uploads: a restore earns no receipt,
/// so none after closes, whatever `--late`); its teacher reaches all of it, read-only.
fn handin_scope(app: &App, me: &SpaceKey, name: &str) -> Option<Scope> {
    let h = app.handins.get(me.tenant(), name)?;
    let key = SpaceKey::new(me.tenant(), &crate::handin::space_user(name)).ok()?;
    if h.owner == me.user() {
        return Some(Scope::of(
            key,
            Vec::new(),
            Some("the teacher's view of a hand-in is read-only".into()),
        ));
    }
    let member = crate::spaces::access::groups(app, me.tenant(), me.user())
        .iter()
        .any(|g| g.as_str() == h.group);
    if !member {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let no_write = match h.phase(now) {
        crate::handin::Phase::Open => None,
        crate::handin::Phase::NotYetOpen => Some(format!(
            "hand-in {name} opens at {}",
            crate::cli::fmt_time(h.opens.unwrap_or(0))
        )),
        crate::handin::Phase::Closed => Some(format!(
            "hand-in {name} closed at {}",
            crate::cli::fmt_time(h.closes)
        )),
    };
    Some(Scope::of(key, vec![Name::new(me.user()).ok()?], no_write))
}

async fn versions(app: &App, req: &Request<ReqBody>, t: &Target, scopes: &[Scope]) -> Resp {
    let store = &app.store;
    let rest: Vec<&str> = t.rest.iter().map(String::as_str).collect();
    let (fid, vid) = match rest.as_slice() {
        [] | ["versions"] if req.method().as_str() == "PROPFIND" => {
            let mut ms = Multistatus::new();
            let href = format!("{}/{}/", t.root, rest.join("/"));
            ms.response(href.trim_end_matches("//"))
                .propstat(StatusCode::OK, |p| p.resourcetype(true));
            return xml(StatusCode::MULTI_STATUS, ms.finish());
        }
        ["versions", f] => (*f, None),
        ["versions", f, v] => (*f, Some(*v)),
        _ => return not_found(),
    };
    // A file id as a space shows it carries its tag above the node id (`spaces::access`);
    // an id with another space's tag names no file here.
    let Ok(raw) = fid.parse::<u64>() else {
        return not_found();
    };
    let tag = raw & !u64::from(u32::MAX);
    let fid = raw as u32;
    // The first scope (writable ones come first) that holds the file inside its view.
    let found = scopes.iter().find_map(|sc| {
        if tag != 0 && tag != sc.tag {
            return None;
        }
        match store.stat_id(&sc.key, NodeId(fid)) {
            Ok((path, info)) if info.kind == Kind::File && sc.covers(&path) => {
                Some((sc, path, info))
            }
            _ => None,
        }
    });
    let Some((scope, path, info)) = found else {
        return not_found();
    };
    let list = match store.versions(&scope.key, &path) {
        Ok(l) => l,
        Err(e) => return engine_error(&e),
    };
    let vid = match vid.map(str::parse::<u64>) {
        None => None,
        Some(Ok(v)) if list.iter().any(|x| x.id == v) => Some(v),
        Some(_) => return not_found(),
    };
    // The id as asked (a space's carries its tag), so that the members' hrefs lead back here.
    let base = format!("{}/versions/{raw}", t.root);
    let m = req.method().as_str();
    match (m, vid) {
        ("PROPFIND", _) => {
            let depth0 = req.headers().get("depth").is_some_and(|d| d == "0");
            let mut ms = Multistatus::new();
            if vid.is_none() {
                ms.response(&format!("{base}/"))
                    .propstat(StatusCode::OK, |p| p.resourcetype(true));
            }
            if vid.is_some() || !depth0 {
                for v in list.iter().filter(|v| vid.is_none_or(|id| id == v.id)) {
                    ms.response(&format!("{base}/{}", v.id))
                        .propstat(StatusCode::OK, |p| {
                            p.resourcetype(false);
                            p.getlastmodified(time_of(v.mtime));
                            p.getcontentlength(v.content.size);
                            p.getetag(&version_etag(fid, v.id));
                            p.getcontenttype(content_type(&info.name));
                        });
                }
            }
            xml(StatusCode::MULTI_STATUS, ms.finish())
        }
        ("GET" | "HEAD", Some(v)) => {
            let (vi, stream) = match store.read_version(&scope.key, &path, v, None) {
                Ok(x) => x,
                Err(e) => return engine_error(&e),
            };
            // Streamed chunk by chunk, as GET of a current file: a big version is never
            // held in memory whole.
            let body = if req.method() == Method::HEAD || vi.content.size == 0 {
                empty()
            } else {
                streamed(stream.map(|r| {
                    r.map_err(|e| {
                        tracing::error!(error = %e, "version read failed mid-body");
                        std::io::Error::other(e.to_string())
                    })
                }))
            };
            let mut r = Response::new(body);
            let h = r.headers_mut();
            h.insert(CONTENT_LENGTH, HeaderValue::from(vi.content.size));
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(content_type(&info.name)),
            );
            if let Ok(e) = HeaderValue::from_str(&version_etag(fid, v)) {
                h.insert(ETAG, e);
            }
            if let Ok(d) =
                HeaderValue::from_bytes(&crate::http::date::imf_fixdate(time_of(vi.mtime)))
            {
                h.insert(LAST_MODIFIED, d);
            }
            r
        }
        ("COPY" | "MOVE", Some(v)) => {
            match destination(req, t).as_deref() {
                Some([a, b]) if a == "restore" && b == "target" => {}
                _ => {
                    return text(
                        StatusCode::FORBIDDEN,
                        "a version is restored by COPY or MOVE to <root>/restore/target",
                    )
                }
            }
            if let Some(r) = scope.refuse_write() {
                return r;
            }
            match store.restore_version(&scope.key, &path, v).await {
                Ok(()) => status(StatusCode::NO_CONTENT),
                Err(e) => engine_error(&e),
            }
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "not allowed here"),
    }
}

fn version_etag(fid: u32, vid: u64) -> String {
    format!("\"v{fid}-{vid}\"")
}

/// A trash item's name in URLs: its name, `.d`, its trash id.
fn item_name(name: &str, id: u64) -> String {
    format!("{name}.d{id}")
}

async fn trash(app: &App, req: &Request<ReqBody>, t: &Target, scopes: &[Scope]) -> Resp {
    let store = &app.store;
    let Some(scope) = scopes.first() else {
        return not_found();
    };
    // Only what was deleted inside the caller's view (a pupil: from their own folder).
    let items: Vec<_> = match store.trash(&scope.key) {
        Ok(i) => i
            .into_iter()
            .filter(|x| x.orig_path.len() > scope.base.len() && scope.covers(&x.orig_path))
            .collect(),
        Err(e) => return engine_error(&e),
    };
    let rest: Vec<&str> = t.rest.iter().map(String::as_str).collect();
    let item = match rest.as_slice() {
        [] | ["trash"] => None,
        ["trash", it] => {
            let found = it
                .rsplit_once(".d")
                .and_then(|(_, id)| id.parse::<u64>().ok())
                .and_then(|id| {
                    items
                        .iter()
                        .find(|x| x.id == id && item_name(&x.name, id) == *it)
                });
            match found {
                Some(f) => Some(f.clone()),
                None => return not_found(),
            }
        }
        _ => return not_found(),
    };
    let m = req.method().as_str();
    match (m, &item) {
        ("PROPFIND", _) => {
            let depth0 = req.headers().get("depth").is_some_and(|d| d == "0");
            let mut ms = Multistatus::new();
            let base = format!("{}/trash", t.root);
            if item.is_none() {
                ms.response(&format!("{base}/"))
                    .propstat(StatusCode::OK, |p| p.resourcetype(true));
            }
            if item.is_some() || !depth0 {
                for x in items
                    .iter()
                    .filter(|x| item.as_ref().is_none_or(|i| i.id == x.id))
                {
                    let dir = x.kind == Kind::Dir;
                    let mut href = format!("{base}/{}", enc(&item_name(&x.name, x.id)));
                    if dir {
                        href.push('/');
                    }
                    let orig: Vec<&str> = x.orig_path[scope.base.len()..]
                        .iter()
                        .map(Name::as_str)
                        .collect();
                    ms.response(&href).propstat(StatusCode::OK, |p| {
                        p.resourcetype(dir);
                        p.getlastmodified(time_of(x.deleted_at));
                        p.getcontentlength(x.bytes);
                        p.getetag(&format!("t{}", x.id));
                        p.text(&PropName::new(NC_NS, "trashbin-filename"), &x.name);
                        p.text(
                            &PropName::new(NC_NS, "trashbin-original-location"),
                            &orig.join("/"),
                        );
                        p.text(
                            &PropName::new(NC_NS, "trashbin-deletion-time"),
                            &(x.deleted_at / 1_000_000_000).to_string(),
                        );
                    });
                }
            }
            xml(StatusCode::MULTI_STATUS, ms.finish())
        }
        ("DELETE" | "MOVE", _) if scope.no_write.is_some() => {
            scope.refuse_write().unwrap_or_else(not_found)
        }
        ("DELETE", None) => {
            for x in &items {
                if let Err(e) = store.purge(&scope.key, x.id).await {
                    return engine_error(&e);
                }
            }
            status(StatusCode::NO_CONTENT)
        }
        ("DELETE", Some(x)) => match store.purge(&scope.key, x.id).await {
            Ok(()) => status(StatusCode::NO_CONTENT),
            Err(e) => engine_error(&e),
        },
        ("MOVE", Some(x)) => {
            match destination(req, t).as_deref() {
                Some([a, _]) if a == "restore" => {}
                _ => {
                    return text(
                        StatusCode::FORBIDDEN,
                        "a trash item is restored by MOVE to <root>/restore/<name>",
                    )
                }
            }
            restore_item(app, scope, x).await
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "not allowed here"),
    }
}

/// Restores to the original place; when that name is taken now, to the first free
/// `<name> (restored N)` beside it; when its folder is gone, into the root of the caller's
/// view (their home, the space, their hand-in folder). Never overwrites.
async fn restore_item(app: &App, scope: &Scope, x: &skab_engine::ns::TrashInfo) -> Resp {
    let store = &app.store;
    let mut parent: Vec<Name> = x
        .orig_path
        .split_last()
        .map(|(_, p)| p.to_vec())
        .unwrap_or_default();
    let parent_ok = parent.len() <= scope.base.len()
        || store
            .stat(&scope.key, &parent)
            .is_ok_and(|i| i.kind == Kind::Dir);
    if !parent_ok || !scope.covers(&parent) {
        parent.clone_from(&scope.base);
    }
    let (stem, ext) = match x.name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && x.kind == Kind::File => (s, format!(".{e}")),
        _ => (x.name.as_str(), String::new()),
    };
    for n in 0..TRASH_RESTORE_NAME_TRIES {
        let name = match n {
            0 => x.name.clone(),
            1 => format!("{stem} (restored){ext}"),
            n => format!("{stem} (restored {n}){ext}"),
        };
        let Ok(name) = Name::new(&name) else {
            continue;
        };
        let mut to = parent.clone();
        to.push(name);
        match store.restore(&scope.key, x.id, Some(&to)).await {
            Ok(()) => {
                let mut r = status(StatusCode::CREATED);
                let p: Vec<String> = to[scope.base.len()..]
                    .iter()
                    .map(|s| enc(s.as_str()))
                    .collect();
                if let Ok(v) = HeaderValue::from_str(&format!("/{}", p.join("/"))) {
                    r.headers_mut().insert("skab-restored-to", v);
                }
                return r;
            }
            Err(skab_engine::Error::AlreadyExists) => continue,
            Err(e) => return engine_error(&e),
        }
    }
    text(
        StatusCode::PRECONDITION_FAILED,
        "every restore name is taken; nothing was overwritten",
    )
}
