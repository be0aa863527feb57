//! The versions and trash of one's own space over WebDAV: the Nextcloud/ownCloud layout
//! (`/remote.php/dav/versions/<user>@<tenant>/…`, `/remote.php/dav/trashbin/<user>@<tenant>/…`)
//! and the same under `/dav-versions/<tenant>/<user>/…` and `/dav-trash/<tenant>/<user>/…`
//! (docs/webdav.md, "Versions and trash").

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

/// A parsed target: which area, whose space, the URL root up to it, the segments after it.
struct Target {
    area: Area,
    owner: SpaceKey,
    /// The space the URL names (`owner` differs for a space's file seen in one's home).
    url_owner: SpaceKey,
    root: String,
    rest: Vec<String>,
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
        url_owner: owner.clone(),
        owner,
        root,
        rest,
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
    (dest.area == t.area && dest.owner == t.url_owner).then_some(dest.rest)
}

/// Answers a request for one of the areas (already authenticated as `who`).
pub async fn handle(app: &App, req: Request<ReqBody>, who: &Principal) -> Resp {
    let Some(mut t) = parse(req.uri().path()) else {
        return not_found();
    };
    let Ok(me) = SpaceKey::new(who.tenant.as_str(), who.user.as_str()) else {
        return not_found();
    };
    // A file of a space shown in one's home has a file id tagged with the space
    // (`spaces::access`): its versions are the space's, under one's own root (the only one
    // the Nextcloud/ownCloud layout knows). Shares are not looked up this way.
    let tag = t
        .rest
        .get(1)
        .and_then(|f| f.parse::<u64>().ok())
        .map(|f| f & !u64::from(u32::MAX))
        .filter(|x| *x != 0);
    if let (Area::Versions, true, Some(tag)) = (t.area, t.owner == me, tag) {
        let space = crate::spaces::access::mounts_of(app, me.tenant(), me.user())
            .into_iter()
            .filter(|m| m.prefix.is_empty())
            .filter_map(|m| SpaceKey::new(me.tenant(), &m.engine_user).ok())
            .find(|k| crate::spaces::access::file_id_tag(k) == tag);
        if let Some(k) = space {
            t.owner = k;
        }
    }
    // Another user's or tenant's versions and trash: as if they did not exist. A shared
    // space's are its members' (restoring and purging are writes).
    if let Some(name) = t.owner.user().strip_prefix(crate::spaces::SPACE_PREFIX) {
        let space = app
            .spaces
            .space(t.owner.tenant(), name)
            .filter(|_| t.owner.tenant() == me.tenant());
        let perm = space.and_then(|s| {
            let groups = crate::spaces::access::groups(app, me.tenant(), me.user());
            crate::spaces::access::space_perm(&s, me.user(), &groups)
        });
        match perm {
            None => return not_found(),
            Some(crate::spaces::Perm::Read)
                if !matches!(req.method().as_str(), "GET" | "HEAD" | "PROPFIND") =>
            {
                return text(
                    StatusCode::FORBIDDEN,
                    &format!("space {name} is read-only for you"),
                )
            }
            Some(_) => {}
        }
    } else if !may_reach(Some(&me), &t.owner) {
        return not_found();
    }
    if !app.store.space_exists(&t.owner) {
        if let Err(e) = app.store.create_space(&t.owner).await {
            return engine_error(&e);
        }
    }
    match t.area {
        Area::Versions => versions(app, &req, &t).await,
        Area::Trash => trash(app, &req, &t).await,
    }
}

async fn versions(app: &App, req: &Request<ReqBody>, t: &Target) -> Resp {
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
    if tag != 0 && tag != crate::spaces::access::file_id_tag(&t.owner) {
        return not_found();
    }
    let fid = raw as u32;
    let (path, info) = match store.stat_id(&t.owner, NodeId(fid)) {
        Ok(x) => x,
        Err(e) => return engine_error(&e),
    };
    if info.kind != Kind::File {
        return not_found();
    }
    let list = match store.versions(&t.owner, &path) {
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
            let (vi, stream) = match store.read_version(&t.owner, &path, v, None) {
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
            match store.restore_version(&t.owner, &path, v).await {
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

async fn trash(app: &App, req: &Request<ReqBody>, t: &Target) -> Resp {
    let store = &app.store;
    let items = match store.trash(&t.owner) {
        Ok(i) => i,
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
                    let orig: Vec<&str> = x.orig_path.iter().map(Name::as_str).collect();
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
        ("DELETE", None) => {
            for x in &items {
                if let Err(e) = store.purge(&t.owner, x.id).await {
                    return engine_error(&e);
                }
            }
            status(StatusCode::NO_CONTENT)
        }
        ("DELETE", Some(x)) => match store.purge(&t.owner, x.id).await {
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
            restore_item(app, t, x).await
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "not allowed here"),
    }
}

/// Restores to the original place; when that name is taken now, to the first free
/// `<name> (restored N)` beside it; when its folder is gone, into the root. Never overwrites.
async fn restore_item(app: &App, t: &Target, x: &skab_engine::ns::TrashInfo) -> Resp {
    let store = &app.store;
    let mut parent: Vec<Name> = x
        .orig_path
        .split_last()
        .map(|(_, p)| p.to_vec())
        .unwrap_or_default();
    let parent_ok = parent.is_empty()
        || store
            .stat(&t.owner, &parent)
            .is_ok_and(|i| i.kind == Kind::Dir);
    if !parent_ok {
        parent.clear();
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
        match store.restore(&t.owner, x.id, Some(&to)).await {
            Ok(()) => {
                let mut r = status(StatusCode::CREATED);
                let p: Vec<String> = to.iter().map(|s| enc(s.as_str())).collect();
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
