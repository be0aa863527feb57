//! PROPFIND (RFC 4918 §9.1) with Depth 0 and 1; Depth infinity is refused with
//! `propfind-finite-depth` (§9.1, §16). Live properties, RFC 4331 quota properties on
//! collections, `DAV:sync-token` (RFC 6578 §4) by name, and dead properties stored by the
//! engine.

use crate::http::body::ReqBody;
use hyper::{Request, StatusCode};
use skab_engine::ns::EntryInfo;

use super::common::{content_type, engine_error, etag, is_dir, read_xml_body, time_of};
use super::ctx::Ctx;
use super::reply::{condition, multistatus};
use crate::dav::headers::{parse_depth, Depth};
use crate::dav::path::SpacePath;
use crate::dav::propfind_cache::parse_propfind_cached_limited;
use crate::dav::status::xml_error;
use crate::dav::xml::XmlLimits;
use crate::dav::xml::{DavCondition, Multistatus, PropName, PropWriter, Propfind};
use crate::http::response::{text, Resp};
use crate::oc::{self, OC_NS};

/// Live properties every resource has, in `allprop` and `propname` answers.
const LIVE: &[&str] = &[
    "creationdate",
    "displayname",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "getlastmodified",
    "resourcetype",
    "supportedlock",
    "lockdiscovery",
];
/// Room reserved for the document head and the first response (a Depth 0 answer fits).
const MULTISTATUS_HEAD_BYTES: usize = 1024;
/// Room reserved per listed member: a response with the common properties takes ~400 bytes.
const MULTISTATUS_RESPONSE_BYTES: usize = 512;
/// RFC 4331 §3: quota properties are not returned by `allprop`.
const QUOTA: &[&str] = &["quota-available-bytes", "quota-used-bytes"];
/// ownCloud's live properties (`oc:`), answered when asked for by name.
const OC_LIVE: &[&str] = &["fileid", "id", "permissions", "size"];

pub(super) struct Quota {
    used: u64,
    available: u64,
}

/// The space's quota properties, looked up only when a collection is answered.
pub(super) fn quota_for(ctx: &Ctx, any_dir: bool) -> Option<Quota> {
    (any_dir && !ctx.access.hide_quota)
        .then(|| ctx.app.store.usage(&ctx.space).ok())
        .flatten()
        .map(|u| Quota {
            used: u.used_bytes,
            available: u.available_bytes().unwrap_or(i64::MAX as u64),
        })
}

pub async fn handle(ctx: &Ctx, req: Request<ReqBody>) -> Resp {
    // Windows' Mini-Redirector sends PROPFIND without Depth; RFC 4918 says that means
    // infinity, which we refuse, so a missing Depth is taken as 1 (docs/webdav.md).
    let depth = match parse_depth(
        req.headers().get("depth").and_then(|v| v.to_str().ok()),
        Depth::One,
    ) {
        Ok(d) => d,
        Err(_) => return text(StatusCode::BAD_REQUEST, "bad Depth header"),
    };
    if depth == Depth::Infinity {
        return condition(
            StatusCode::FORBIDDEN,
            Some(&DavCondition::PropfindFiniteDepth),
        );
    }
    let body = match read_xml_body(ctx, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let what = match parse_propfind_cached_limited(
        &body,
        XmlLimits::from_config(&ctx.app.config.limits),
    ) {
        Ok(p) => p,
        Err(e) => {
            let (code, cond) = xml_error(&e);
            return condition(code, cond.as_ref());
        }
    };
    let listed = if depth == Depth::Zero {
        ctx.app
            .store
            .stat(&ctx.space, &ctx.names)
            .map(|i| (i, Vec::new()))
    } else {
        ctx.app.store.list(&ctx.space, &ctx.names)
    };
    let (info, mut children) = match listed {
        Ok((info, children)) if depth == Depth::One && is_dir(&info) => (info, children),
        Ok((info, _)) => (info, Vec::new()),
        Err(skab_engine::Error::NotADirectory) | Err(skab_engine::Error::IsADirectory) => {
            match ctx.app.store.stat(&ctx.space, &ctx.names) {
                Ok(info) => (info, Vec::new()),
                Err(e) => return engine_error(&e),
            }
        }
        Err(e) => return engine_error(&e),
    };
    // The home's root shows the spaces and shares of its user (`crate::spaces`): their
    // folders hide entries of the same name, and their changes change the root's ETag.
    let mounts = &ctx.access.home_mounts;
    let info = crate::spaces::access::home_root_info(info, mounts);
    children.retain(|c| !mounts.iter().any(|m| m.info.name == c.name));
    // Quota properties exist on collections only (`has_live`): a file alone skips the lookup.
    let any_dir = is_dir(&info) || children.iter().any(is_dir);
    let quota = quota_for(ctx, any_dir);
    let mut ms = Multistatus::with_capacity(
        MULTISTATUS_HEAD_BYTES + (children.len() + 1) * MULTISTATUS_RESPONSE_BYTES,
    );
    describe(ctx, &mut ms, &ctx.target.path, &info, &what, quota.as_ref());
    for child in &children {
        let Ok(path) = ctx.target.path.join(&child.name) else {
            continue;
        };
        describe(ctx, &mut ms, &path, child, &what, quota.as_ref());
    }
    if depth == Depth::One {
        for m in mounts {
            let q = quota_for(&m.ctx, true);
            describe(
                &m.ctx,
                &mut ms,
                &m.ctx.target.path,
                &m.info,
                &what,
                q.as_ref(),
            );
        }
    }
    multistatus(ms.finish())
}

/// One `DAV:response` with the properties `what` asks for (also used by REPORT).
pub(super) fn describe(
    ctx: &Ctx,
    ms: &mut Multistatus,
    path: &SpacePath,
    info: &EntryInfo,
    what: &Propfind,
    quota: Option<&Quota>,
) {
    let dir = is_dir(info);
    let href = ctx.href(path, dir);
    // Dead properties only when the answer can include them (found by node, no path walk).
    let wants_dead = match what {
        Propfind::Prop(names) => names
            .iter()
            .any(|n| !(n.is_dav() && LIVE.contains(&n.name.as_str()))),
        _ => true,
    };
    let dead: Vec<(skab_engine::ns::PropName, Vec<u8>)> = if wants_dead {
        ctx.app.store.props_of(&ctx.space, info.id)
    } else {
        Vec::new()
    };
    let mut resp = ms.response(&href);
    match what {
        Propfind::PropName => {
            resp.propstat(StatusCode::OK, |p| {
                for name in LIVE {
                    if !dir || !matches!(*name, "getcontentlength" | "getcontenttype") {
                        p.empty(&PropName::dav(name));
                    }
                }
                if dir && quota.is_some() {
                    for name in QUOTA {
                        p.empty(&PropName::dav(name));
                    }
                }
                for (n, _) in &dead {
                    p.empty(&PropName::new(&n.ns, &n.local));
                }
            });
        }
        Propfind::AllProp { include } => {
            resp.propstat(StatusCode::OK, |p| {
                for name in LIVE {
                    live(ctx, p, path, info, name, quota);
                }
                for inc in include.iter().filter(|n| n.is_dav()) {
                    if QUOTA.contains(&inc.name.as_str()) {
                        live(ctx, p, path, info, &inc.name, quota);
                    }
                }
                for (_, v) in &dead {
                    p.raw(&String::from_utf8_lossy(v));
                }
            });
        }
        Propfind::Prop(names) => {
            let mut missing: Vec<&PropName> = Vec::new();
            let mut found: Vec<&PropName> = Vec::new();
            for n in names {
                let is_live = (n.is_dav() && has_live(info, &n.name, quota)) || is_oc_live(n);
                let is_dead = dead
                    .iter()
                    .any(|(d, _)| *d.ns == n.ns && *d.local == n.name);
                if is_live || is_dead {
                    found.push(n);
                } else {
                    missing.push(n);
                }
            }
            if !found.is_empty() {
                resp.propstat(StatusCode::OK, |p| {
                    for n in &found {
                        if n.is_dav() && has_live(info, &n.name, quota) {
                            live(ctx, p, path, info, &n.name, quota);
                        } else if is_oc_live(n) {
                            oc_live(ctx, p, path, info, n, quota);
                        } else if let Some((_, v)) = dead
                            .iter()
                            .find(|(d, _)| *d.ns == n.ns && *d.local == n.name)
                        {
                            p.raw(&String::from_utf8_lossy(v));
                        }
                    }
                });
            }
            if !missing.is_empty() {
                resp.propstat(StatusCode::NOT_FOUND, |p| {
                    for n in &missing {
                        p.empty(n);
                    }
                });
            }
        }
    }
}

fn is_oc_live(n: &PropName) -> bool {
    n.ns == OC_NS && OC_LIVE.contains(&n.name.as_str())
}

/// One of [`OC_LIVE`].
fn oc_live(
    ctx: &Ctx,
    p: &mut PropWriter<'_>,
    path: &SpacePath,
    info: &EntryInfo,
    n: &PropName,
    quota: Option<&Quota>,
) {
    let dir = is_dir(info);
    match n.name.as_str() {
        "fileid" => p.text(n, &ctx.access.file_id(info).to_string()),
        "id" => p.text(n, &oc::headers::oc_id_of(ctx.access.file_id(info))),
        "permissions" => p.text(n, &ctx.access.permissions(dir, path.depth())),
        "size" => {
            let size = match (dir, quota) {
                (false, _) => info.size,
                // The root holds all the space's bytes: no walk.
                (true, Some(q)) if info.id == skab_engine::NodeId::ROOT => q.used,
                (true, _) => ctx.app.store.tree_bytes(&ctx.space, info.id),
            };
            p.text(n, &size.to_string())
        }
        _ => p.empty(n),
    }
}

fn has_live(info: &EntryInfo, name: &str, quota: Option<&Quota>) -> bool {
    match name {
        "getcontentlength" | "getcontenttype" => !is_dir(info),
        "quota-available-bytes" | "quota-used-bytes" => is_dir(info) && quota.is_some(),
        // RFC 6578 §4: collections only, and only when asked for by name.
        "sync-token" => is_dir(info),
        // RFC 3744 §5.4, by name only: what the requester may do, before trying.
        "current-user-privilege-set" => true,
        n => LIVE.contains(&n),
    }
}

fn live(
    ctx: &Ctx,
    p: &mut PropWriter<'_>,
    path: &SpacePath,
    info: &EntryInfo,
    name: &str,
    quota: Option<&Quota>,
) {
    let dir = is_dir(info);
    match name {
        "creationdate" => p.creationdate(time_of(info.ctime)),
        "displayname" => p.displayname(&info.name),
        "getcontentlength" if !dir => p.getcontentlength(info.size),
        "getcontenttype" if !dir => p.getcontenttype(content_type(&info.name)),
        "getetag" => p.getetag(&etag(info)),
        "getlastmodified" => p.getlastmodified(time_of(info.mtime)),
        "resourcetype" => p.resourcetype(dir),
        "supportedlock" => p.supportedlock(),
        "lockdiscovery" => {
            let locks = ctx.app.locks.locks_covering(&ctx.lock_space(), path);
            p.lockdiscovery(&locks, |l| ctx.href(&l.root, false));
        }
        "quota-available-bytes" if dir => {
            if let Some(q) = quota {
                p.quota_available_bytes(q.available)
            }
        }
        "quota-used-bytes" if dir => {
            if let Some(q) = quota {
                p.quota_used_bytes(q.used)
            }
        }
        "current-user-privilege-set" => {
            p.raw("<D:current-user-privilege-set><D:privilege><D:read/></D:privilege><D:privilege><D:read-current-user-privilege-set/></D:privilege>");
            if !ctx.access.read_only {
                p.raw("<D:privilege><D:write/></D:privilege><D:privilege><D:write-content/></D:privilege><D:privilege><D:write-properties/></D:privilege><D:privilege><D:bind/></D:privilege><D:privilege><D:unbind/></D:privilege>");
            }
            p.raw("</D:current-user-privilege-set>");
        }
        "sync-token" if dir => {
            if let Ok(t) = ctx.app.store.sync_token(&ctx.space) {
                p.text(&PropName::dav("sync-token"), &super::report::token_uri(t));
            }
        }
        _ => {}
    }
}
