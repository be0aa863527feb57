//! Who may do what in a space or share, decided once per request before any method runs,
//! from the registry as it is at that moment (nothing is cached beyond the request, so a
//! revocation counts from the next request, also on a kept-alive connection): members see
//! the space, anyone else gets 404 (names do not leak); read-only members get 403 on every
//! write. A space or share also appears as a folder inside each member's home; the home's
//! URLs below that folder are mapped onto it here.
// A refusal is the response itself, as in `methods::common`.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use hyper::{Method, Request, StatusCode};
use skab_engine::ns::{EntryInfo, Etag, Name};

use super::registry::{Grantee, Perm, Space};
use super::{space_user, view_user, URL_SEGMENT};
use crate::app::App;
use crate::auth::Principal;
use crate::dav::path::{
    decode_segment, parse_destination, parse_target_as, DavPath, Destination, HostCheck, Mount,
    SpaceKey, SpacePath, DAV_PREFIX,
};
use crate::dav::status::path_error;
use crate::http::body::ReqBody;
use crate::http::response::{text, Resp};
use crate::methods::{self, engine_names, status_of, Ctx};
use crate::users::{TenantName, UserName};

/// What a request may do where it landed, and how its entries are described
/// (`oc:permissions`, `DAV:current-user-privilege-set`, file ids). The default is one's
/// own home.
#[derive(Default)]
pub struct Access {
    /// `user@tenant` of the requester, when the space is not their home (lock owner).
    pub requester: Option<String>,
    /// The key locks are kept under, when the request's key is a view of it.
    pub lock_space: Option<SpaceKey>,
    /// Writes are refused (read-only member); descriptions say so in advance.
    pub read_only: bool,
    /// In a space or share (`oc:permissions` gets `S`).
    pub shared: bool,
    /// Depth of the space's or share's root among the target's paths: it cannot be
    /// deleted, moved or renamed (`oc:permissions` gets `M`, no `D`, `N`, `V`).
    pub mount_root_depth: Option<usize>,
    /// Added to node ids in file ids, so ids of different spaces never meet in one sync
    /// (a client takes a known id at a new place for a move).
    pub file_id_tag: u64,
    /// The spaces and shares shown in the home's root (PROPFIND of the root only).
    pub home_mounts: Vec<Listed>,
    /// No quota properties: in a share they would tell the owner's usage and quota.
    pub hide_quota: bool,
}

impl Access {
    /// `oc:permissions` of an entry at `depth` (path segments).
    pub fn permissions(&self, dir: bool, depth: usize) -> String {
        let root = self.mount_root_depth == Some(depth);
        let mut p = String::new();
        if self.shared {
            p.push('S');
        }
        if root {
            p.push('M');
        }
        if !self.read_only {
            if !root {
                p.push_str("DNV");
            }
            p.push_str(if dir { "CK" } else { "W" });
        }
        p
    }

    /// File id of a node (the tag is 0 in homes: their ids stay as they were).
    pub fn file_id(&self, info: &EntryInfo) -> u64 {
        self.file_id_tag | u64::from(info.id.0)
    }
}

/// A space or share in the home's root listing: its context and its root entry, named as
/// its folder.
pub struct Listed {
    pub ctx: Box<Ctx>,
    pub info: EntryInfo,
}

/// Where a space or share is mounted in one user's home.
#[derive(Clone, Debug)]
pub struct MountPoint {
    /// The folder's name in the home.
    pub folder: String,
    /// The engine space's user (`_space_S`, or the share owner's home).
    pub engine_user: String,
    /// The shared folder's path in the engine space (empty for a space).
    pub prefix: Vec<String>,
    pub write: bool,
}

/// True when `path` is under `/dav/<tenant>/spaces/`.
pub fn is_space_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix(DAV_PREFIX) else {
        return false;
    };
    let mut segs = rest.split('/').filter(|s| !s.is_empty());
    segs.next().is_some() && segs.next() == Some(URL_SEGMENT)
}

fn not_found() -> Resp {
    text(StatusCode::NOT_FOUND, "not found")
}

/// Methods that change nothing.
fn is_read(m: &Method) -> bool {
    matches!(
        m.as_str(),
        "GET" | "HEAD" | "PROPFIND" | "OPTIONS" | "REPORT"
    )
}

fn grantee_matches(to: &Grantee, user: &str, groups: &[crate::users::GroupName]) -> bool {
    match to {
        Grantee::User(u) => u == user,
        Grantee::Group(g) => groups.iter().any(|x| x.as_str() == g),
    }
}

/// The user's groups (a few): the user database's, and those the groups claim of their
/// latest valid JWT names (`auth.jwt[].groups_claim`). Used for spaces, shares and hand-ins.
pub fn groups(app: &App, tenant: &str, user: &str) -> Vec<crate::users::GroupName> {
    match (TenantName::new(tenant), UserName::new(user)) {
        (Ok(t), Ok(u)) => {
            let mut g = app.users.groups_of(&t, &u);
            for c in app.auth.claim_groups(&t, &u) {
                if !g.contains(&c) {
                    g.push(c);
                }
            }
            g
        }
        _ => Vec::new(),
    }
}

/// What `user` may do in `space`: the owner writes, grants add members (the strongest
/// grant counts); `None` for anyone else.
pub fn space_perm(space: &Space, user: &str, groups: &[crate::users::GroupName]) -> Option<Perm> {
    if space.owner == user {
        return Some(Perm::Write);
    }
    space
        .grants
        .iter()
        .filter(|g| grantee_matches(&g.to, user, groups))
        .map(|g| g.perm)
        .max()
}

/// The spaces and shares shown in `user`'s home, by folder name (the first of two with
/// the same name keeps it; the next gets ` (2)`, …).
pub fn mounts_of(app: &App, tenant: &str, user: &str) -> Vec<MountPoint> {
    let all = app.spaces.of_tenant(tenant);
    if all.spaces.is_empty() && all.shares.is_empty() {
        return Vec::new();
    }
    let groups = groups(app, tenant, user);
    let prefix = &app.config.spaces.home_folder_prefix;
    let mut out: Vec<MountPoint> = Vec::new();
    let mut push = |mut m: MountPoint| {
        let base = m.folder.clone();
        let mut n = 2;
        while out.iter().any(|x| x.folder == m.folder) {
            m.folder = format!("{base} ({n})");
            n += 1;
        }
        // A folder name must be a valid path segment (the configured prefix could break it).
        if SpacePath::root().join(&m.folder).is_ok() {
            out.push(m);
        }
    };
    for s in all.spaces.iter().filter(|s| s.tenant == tenant) {
        if let Some(p) = space_perm(s, user, &groups) {
            push(MountPoint {
                folder: format!("{prefix}{}", s.name),
                engine_user: space_user(&s.name),
                prefix: Vec::new(),
                write: p == Perm::Write,
            });
        }
    }
    let mut shares: Vec<(&super::Share, Perm)> = Vec::new();
    for s in all
        .shares
        .iter()
        .filter(|s| s.tenant == tenant && s.owner != user)
    {
        if grantee_matches(&s.to, user, &groups) {
            // One folder shared with the user and with their group: the stronger counts.
            match shares
                .iter_mut()
                .find(|(x, _)| x.owner == s.owner && x.path == s.path)
            {
                Some((_, p)) => *p = (*p).max(s.perm),
                None => shares.push((s, s.perm)),
            }
        }
    }
    for (s, perm) in shares {
        let prefix: Vec<String> = s.path.split('/').map(str::to_string).collect();
        let Some(name) = prefix.last().cloned() else {
            continue;
        };
        push(MountPoint {
            folder: name,
            engine_user: s.owner.clone(),
            prefix,
            write: perm == Perm::Write,
        });
    }
    out
}

/// The mount of `user`'s home whose folder is `folder`.
pub fn find_mount(app: &App, tenant: &str, user: &str, folder: &str) -> Option<MountPoint> {
    mounts_of(app, tenant, user)
        .into_iter()
        .find(|m| m.folder == folder)
}

/// A file id tag for an engine space other than a home: 20 bits of its name's hash above
/// the node id's 32 (ids stay below 2^53, exact in JSON).
pub fn file_id_tag(space: &skab_engine::SpaceKey) -> u64 {
    let h = blake3::hash(format!("{}/{}", space.tenant(), space.user()).as_bytes());
    let b = h.as_bytes();
    let t = (u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16) & 0xF_FFFF;
    (t | 1) << 32
}

async fn ensure_space(app: &App, space: &skab_engine::SpaceKey) -> Result<(), Resp> {
    if !app.store.space_exists(space) {
        if let Err(e) = app.store.create_space(space).await {
            return Err(text(status_of(&e), &e.to_string()));
        }
    }
    Ok(())
}

/// The context of `mount` seen in `user`'s home under `base` (the URL form of the
/// request), at `target` (parsed in the view; its root when `None`).
async fn mount_ctx(
    app: &Arc<App>,
    tenant: &str,
    user: &str,
    mount: &MountPoint,
    target: Option<DavPath>,
    base: Mount,
) -> Result<Ctx, Resp> {
    let view = SpaceKey {
        tenant: tenant.to_string(),
        user: view_user(user, &mount.folder, &mount.prefix),
    };
    let space = skab_engine::SpaceKey::new(tenant, &mount.engine_user)
        .map_err(|e| text(status_of(&e), &e.to_string()))?;
    ensure_space(app, &space).await?;
    if !mount.prefix.is_empty() {
        // A share: its folder must still be a folder of the owner's home.
        let names: Result<Vec<Name>, _> = mount.prefix.iter().map(|s| Name::new(s)).collect();
        let ok = names
            .ok()
            .and_then(|n| app.store.stat(&space, &n).ok())
            .is_some_and(|i| methods::common::is_dir(&i));
        if !ok {
            return Err(not_found());
        }
    }
    let target = match target {
        Some(t) => t,
        None => DavPath {
            space: view.clone(),
            path: SpacePath::from_segments(&mount.prefix)
                .map_err(|e| text(path_error(&e), &e.to_string()))?,
            trailing_slash: true,
            mount: base,
        },
    };
    let names =
        engine_names(&target.path).map_err(|e| text(StatusCode::BAD_REQUEST, &e.to_string()))?;
    let access = Access {
        requester: Some(format!("{user}@{tenant}")),
        lock_space: Some(SpaceKey {
            tenant: tenant.to_string(),
            user: mount.engine_user.clone(),
        }),
        read_only: !mount.write,
        shared: true,
        mount_root_depth: Some(mount.prefix.len()),
        file_id_tag: file_id_tag(&space),
        home_mounts: Vec::new(),
        hide_quota: !mount.prefix.is_empty(),
    };
    Ok(Ctx {
        app: app.clone(),
        space,
        target,
        names,
        access,
    })
}

/// The spaces and shares to list in `user`'s home root (as `base` URLs), with the root
/// entry of each named as its folder.
pub async fn home_listing(app: &Arc<App>, tenant: &str, user: &str, base: Mount) -> Vec<Listed> {
    let mut out = Vec::new();
    for m in mounts_of(app, tenant, user) {
        let Ok(ctx) = mount_ctx(app, tenant, user, &m, None, base).await else {
            continue;
        };
        let Ok(mut info) = app.store.stat(&ctx.space, &ctx.names) else {
            continue;
        };
        info.name = m.folder.clone();
        out.push(Listed {
            ctx: Box::new(ctx),
            info,
        });
    }
    out
}

/// The home root's entry with an ETag that also changes when a space or share shown in it
/// changes (or one is added or removed), so that a client polling the root sees it.
pub fn home_root_info(mut info: EntryInfo, listed: &[Listed]) -> EntryInfo {
    if listed.is_empty() {
        return info;
    }
    let mut h = blake3::Hasher::new();
    let mut mtime = info.mtime;
    for l in listed {
        h.update(l.info.name.as_bytes());
        h.update(&[0]);
        h.update(methods::common::etag(&l.info).as_bytes());
        h.update(&[0]);
        mtime = mtime.max(l.info.mtime);
    }
    let d = h.finalize();
    let mut mix = [0u8; 8];
    mix.copy_from_slice(&d.as_bytes()[..8]);
    let mix = i64::from_le_bytes(mix) & i64::MAX;
    if let Etag::Dir { node, ctime, .. } = info.etag {
        info.etag = Etag::Dir {
            node,
            ctime: ctime ^ mix,
            mtime,
        };
    }
    info.mtime = mtime;
    info
}

/// The refusals every space and share shares: writes of read-only members, and changes
/// to the space's or share's folder itself (at `root_depth`).
fn check_method(
    req: &Request<ReqBody>,
    target: &DavPath,
    view: &SpaceKey,
    write: bool,
    root_depth: usize,
    what: &str,
) -> Result<(), Resp> {
    let method = req.method();
    if is_read(method) {
        return Ok(());
    }
    // A COPY out of the space (into the reader's home) only reads here.
    let dest_here = || {
        req.headers()
            .get("destination")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|raw| {
                matches!(
                    parse_destination(raw, view, HostCheck::Ignore),
                    Ok(Destination::Local(_))
                )
            })
    };
    if !write && method.as_str() == "COPY" && !dest_here() {
        return Ok(());
    }
    if !write {
        return Err(text(
            StatusCode::FORBIDDEN,
            &format!("{what} is read-only for you: you may read, not change, its files"),
        ));
    }
    let at_root = target.path.depth() <= root_depth;
    if at_root && matches!(method.as_str(), "DELETE" | "MOVE") {
        return Err(text(
            StatusCode::FORBIDDEN,
            &format!("the folder of {what} itself cannot be deleted, moved or renamed"),
        ));
    }
    if matches!(method.as_str(), "COPY" | "MOVE") {
        if let Some(raw) = req
            .headers()
            .get("destination")
            .and_then(|v| v.to_str().ok())
        {
            if let Ok(Destination::Local(d)) = parse_destination(raw, view, HostCheck::Ignore) {
                if d.path.depth() <= root_depth {
                    return Err(text(
                        StatusCode::FORBIDDEN,
                        &format!("the folder of {what} itself cannot be replaced"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Serves a request under `/dav/<tenant>/spaces/`.
pub async fn serve_direct(app: Arc<App>, req: Request<ReqBody>, principal: Principal) -> Resp {
    let tenant = principal.tenant.as_str().to_string();
    let user = principal.user.as_str().to_string();
    let path = req.uri().path().to_string();
    let mut segs = path[DAV_PREFIX.len()..]
        .split('/')
        .filter(|s| !s.is_empty());
    let (Some(t_raw), Some(_)) = (segs.next(), segs.next()) else {
        return not_found();
    };
    // Another tenant's space is as missing as none.
    if decode_segment(t_raw).ok().as_deref() != Some(tenant.as_str()) {
        return not_found();
    }
    let Some(s_raw) = segs.next() else {
        return list_spaces(&app, &req, &tenant, &user);
    };
    let Ok(name) = decode_segment(s_raw) else {
        return not_found();
    };
    let Some(space_def) = app.spaces.space(&tenant, &name) else {
        return not_found();
    };
    let Some(perm) = space_perm(&space_def, &user, &groups(&app, &tenant, &user)) else {
        return not_found();
    };
    let view = SpaceKey {
        tenant: tenant.clone(),
        user: space_user(&name),
    };
    let target = match parse_target_as(&path, Some(&view))
        .and_then(|t| t.path.check_len(app.config.limits.path_len_max).map(|()| t))
    {
        Ok(t) if t.space == view => t,
        Ok(_) => return not_found(),
        Err(e) => return text(path_error(&e), &e.to_string()),
    };
    let what = format!("space {name}");
    if let Err(r) = check_method(&req, &target, &view, perm == Perm::Write, 0, &what) {
        return r;
    }
    let space = match skab_engine::SpaceKey::new(&tenant, &space_user(&name)) {
        Ok(s) => s,
        Err(e) => return text(status_of(&e), &e.to_string()),
    };
    if let Err(r) = ensure_space(&app, &space).await {
        return r;
    }
    let names = match engine_names(&target.path) {
        Ok(n) => n,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let access = Access {
        requester: Some(format!("{user}@{tenant}")),
        lock_space: None,
        read_only: perm != Perm::Write,
        shared: true,
        mount_root_depth: Some(0),
        file_id_tag: file_id_tag(&space),
        home_mounts: Vec::new(),
        hide_quota: false,
    };
    let ctx = Ctx {
        app,
        space,
        target,
        names,
        access,
    };
    dispatch(ctx, req, &principal).await
}

/// `/dav/<tenant>/spaces/`: a read-only collection of the spaces the requester is a member
/// of (PROPFIND Depth 0 or 1 answers each with its type, name, ETag and modification time).
fn list_spaces(app: &App, req: &Request<ReqBody>, tenant: &str, user: &str) -> Resp {
    match req.method().as_str() {
        "OPTIONS" => return methods::options::handle_root(),
        "PROPFIND" => {}
        _ => {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "the list of spaces is read-only: spaces are made with skab space add",
            )
        }
    }
    let depth = req
        .headers()
        .get("depth")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("1");
    let mut base = String::from(DAV_PREFIX);
    crate::dav::path::encode_segment(tenant, &mut base);
    base.push('/');
    base.push_str(URL_SEGMENT);
    base.push('/');
    let mut ms = crate::dav::xml::Multistatus::new();
    ms.response(&base).propstat(StatusCode::OK, |p| {
        p.resourcetype(true);
        p.displayname(URL_SEGMENT);
    });
    if depth.trim() == "1" {
        let groups = groups(app, tenant, user);
        for s in app.spaces.of_tenant(tenant).spaces.iter() {
            if space_perm(s, user, &groups).is_none() {
                continue;
            }
            let root = skab_engine::SpaceKey::new(tenant, &space_user(&s.name))
                .ok()
                .and_then(|k| app.store.stat(&k, &[]).ok());
            let mut href = base.clone();
            crate::dav::path::encode_segment(&s.name, &mut href);
            href.push('/');
            ms.response(&href).propstat(StatusCode::OK, |p| {
                p.resourcetype(true);
                p.displayname(&s.name);
                if let Some(info) = &root {
                    p.getetag(&methods::common::etag(info));
                    p.getlastmodified(methods::common::time_of(info.mtime));
                }
            });
        }
    }
    crate::http::response::xml(StatusCode::MULTI_STATUS, ms.finish())
}

/// Serves a request to `user`'s home whose path starts with the folder of `mount`.
pub async fn serve_mounted(
    app: Arc<App>,
    req: Request<ReqBody>,
    principal: &Principal,
    mount: &MountPoint,
) -> Resp {
    let tenant = principal.tenant.as_str();
    let user = principal.user.as_str();
    let view = SpaceKey {
        tenant: tenant.to_string(),
        user: view_user(user, &mount.folder, &mount.prefix),
    };
    let target = match parse_target_as(req.uri().path(), Some(&view))
        .and_then(|t| t.path.check_len(app.config.limits.path_len_max).map(|()| t))
    {
        Ok(t) if t.space == view => t,
        Ok(_) => return not_found(),
        Err(e) => return text(path_error(&e), &e.to_string()),
    };
    let what = format!("the shared folder {}", mount.folder);
    if let Err(r) = check_method(&req, &target, &view, mount.write, mount.prefix.len(), &what) {
        return r;
    }
    let base = target.mount;
    match mount_ctx(&app, tenant, user, mount, Some(target), base).await {
        Ok(ctx) => dispatch(ctx, req, principal).await,
        Err(r) => r,
    }
}

/// For a request to one's home: the space or share its path falls into.
pub fn mount_of_home_path(
    app: &App,
    principal: &Principal,
    path: &SpacePath,
) -> Option<MountPoint> {
    let first = path.segments().next()?;
    find_mount(
        app,
        principal.tenant.as_str(),
        principal.user.as_str(),
        first,
    )
}

/// For a COPY or MOVE whose Destination lies in another engine space than its source but
/// one the requester reaches (their home, a space or share shown in it, a space's own URL):
/// the destination's context, for `spaces::cross`. `None` when the Destination is in the
/// source's own space or nowhere the requester may go (the method answers those).
pub async fn cross_destination(
    app: &Arc<App>,
    req: &Request<ReqBody>,
    principal: &Principal,
    src_key: &SpaceKey,
) -> Option<Result<Ctx, Resp>> {
    if !matches!(req.method().as_str(), "COPY" | "MOVE") {
        return None;
    }
    let raw = req.headers().get("destination")?.to_str().ok()?;
    let tenant = principal.tenant.as_str();
    let user = principal.user.as_str();
    let home = SpaceKey {
        tenant: tenant.to_string(),
        user: user.to_string(),
    };
    let hostc = methods::common::host(req.headers(), app.public_authority.as_deref());
    let d = match parse_destination(raw, &home, hostc) {
        Ok(Destination::Local(d) | Destination::OtherSpace(d)) => d,
        _ => return None,
    };
    if d.path.check_len(app.config.limits.path_len_max).is_err() {
        return None;
    }
    // A path of the home below a space's or share's folder is that space's (checked before
    // comparing keys: such a Destination has the home's key).
    if d.space == home {
        if let Some(m) = mount_of_home_path(app, principal, &d.path) {
            if !m.write {
                return Some(Err(text(
                    StatusCode::FORBIDDEN,
                    &format!("the shared folder {} is read-only for you", m.folder),
                )));
            }
            let rest: Vec<&str> = d.path.segments().skip(1).collect();
            let path =
                SpacePath::from_segments(m.prefix.iter().map(String::as_str).chain(rest)).ok()?;
            let target = DavPath {
                space: SpaceKey {
                    tenant: tenant.to_string(),
                    user: view_user(user, &m.folder, &m.prefix),
                },
                path,
                trailing_slash: d.trailing_slash,
                mount: d.mount,
            };
            if target.space == *src_key {
                return None;
            }
            if target.path.depth() <= m.prefix.len() {
                return Some(Err(text(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "the folder of the shared folder {} itself cannot be replaced",
                        m.folder
                    ),
                )));
            }
            let base = d.mount;
            return Some(mount_ctx(app, tenant, user, &m, Some(target), base).await);
        }
        if d.space == *src_key {
            return None;
        }
        let space = skab_engine::SpaceKey::new(tenant, user).ok()?;
        if let Err(r) = ensure_space(app, &space).await {
            return Some(Err(r));
        }
        let names = engine_names(&d.path).ok()?;
        return Some(Ok(Ctx {
            app: app.clone(),
            space,
            target: d,
            names,
            access: Access::default(),
        }));
    }
    if d.space == *src_key {
        return None;
    }
    if d.mount == Mount::Space && d.space.tenant == tenant {
        let name = d.space.user.strip_prefix(super::SPACE_PREFIX)?;
        let def = app.spaces.space(tenant, name)?;
        match space_perm(&def, user, &groups(app, tenant, user)) {
            Some(Perm::Write) => {}
            Some(Perm::Read) => {
                return Some(Err(text(
                    StatusCode::FORBIDDEN,
                    &format!("space {name} is read-only for you"),
                )))
            }
            None => return None,
        }
        if d.path.is_root() {
            return Some(Err(text(
                StatusCode::FORBIDDEN,
                &format!("the folder of space {name} itself cannot be replaced"),
            )));
        }
        let space = skab_engine::SpaceKey::new(tenant, &d.space.user).ok()?;
        if let Err(r) = ensure_space(app, &space).await {
            return Some(Err(r));
        }
        let names = engine_names(&d.path).ok()?;
        let tag = file_id_tag(&space);
        return Some(Ok(Ctx {
            app: app.clone(),
            space,
            target: d,
            names,
            access: Access {
                requester: Some(format!("{user}@{tenant}")),
                shared: true,
                mount_root_depth: Some(0),
                file_id_tag: tag,
                ..Access::default()
            },
        }));
    }
    None
}

/// Dispatches a request in its context, or, for a COPY or MOVE into another space the
/// requester reaches, copies across (`spaces::cross`).
pub async fn dispatch(ctx: Ctx, req: Request<ReqBody>, principal: &Principal) -> Resp {
    let src_key = ctx.target.space.clone();
    match cross_destination(&ctx.app, &req, principal, &src_key).await {
        Some(Ok(dest)) => {
            let is_move = req.method().as_str() == "MOVE";
            if is_move && ctx.target.path.depth() <= ctx.access.mount_root_depth.unwrap_or(0) {
                return text(StatusCode::FORBIDDEN, "a root cannot be moved");
            }
            super::cross::copy_across(&ctx, &dest, &req, is_move).await
        }
        Some(Err(r)) => r,
        None => methods::dispatch(ctx, req).await,
    }
}

/// The context an ownCloud chunked upload finishes into when its Destination lies in a
/// space or share shown in the uploader's home: `Ok(None)` when it does not.
pub async fn upload_ctx(
    app: &Arc<App>,
    tenant: &str,
    user: &str,
    dest: &DavPath,
) -> Result<Option<Ctx>, Resp> {
    let Some(first) = dest.path.segments().next() else {
        return Ok(None);
    };
    let Some(mount) = find_mount(app, tenant, user, first) else {
        return Ok(None);
    };
    if !mount.write {
        return Err(text(
            StatusCode::FORBIDDEN,
            &format!("the shared folder {} is read-only for you", mount.folder),
        ));
    }
    let rest: Vec<&str> = dest.path.segments().skip(1).collect();
    if rest.is_empty() {
        return Err(text(
            StatusCode::FORBIDDEN,
            "the folder of a space itself cannot be replaced",
        ));
    }
    let path = SpacePath::from_segments(mount.prefix.iter().map(String::as_str).chain(rest))
        .map_err(|e| text(path_error(&e), &e.to_string()))?;
    let view = SpaceKey {
        tenant: tenant.to_string(),
        user: view_user(user, &mount.folder, &mount.prefix),
    };
    let target = DavPath {
        space: view,
        path,
        trailing_slash: false,
        mount: dest.mount,
    };
    let base = dest.mount;
    mount_ctx(app, tenant, user, &mount, Some(target), base)
        .await
        .map(Some)
}
