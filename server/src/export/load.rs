//! `skab import`: an export loaded into a data dir (the server running or stopped). The archive
//! is verified whole first; then, for a tenant the data dir does not have (or, for one user's
//! export, a user it does not have), every tree is rebuilt through the store's ordinary writes
//! (trash items first, at their original places, then the live entries with their versions),
//! then hand-ins, receipts and the receipt key, and the accounts and groups last, so that
//! nobody can log in to a half-loaded tenant. What is and is not carried over:
//! `docs/export.md`, "Import".

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use base64::Engine;
use bytes::Bytes;
use futures::executor::block_on;
use skab_engine::ns::{parse_path, Name, PropName};
use skab_engine::{SpaceKey, Store};

use super::manifest::*;
use super::verify::{verify, Verified};
use super::ImportRequest;
use crate::handin::{receipt, LatePolicy, Registry};
use crate::limits::IMPORT_READ_BYTES;
use crate::users::{password, GroupName, ImportedAccount, TenantName, UserDb, UserName};

/// What an import did, for the command's output and the audit log.
pub struct Imported {
    pub tenant: String,
    pub text: String,
}

pub(super) fn se(e: skab_engine::Error) -> String {
    e.to_string()
}

pub(super) fn path_of(s: &str) -> Result<Vec<Name>, String> {
    parse_path(s).map_err(|e| format!("{s:?}: {e}"))
}

pub(super) fn ns_props(p: &[Prop]) -> Result<Vec<(PropName, Vec<u8>)>, String> {
    p.iter()
        .map(|p| {
            let value = match (&p.value, &p.value_base64) {
                (Some(v), None) => v.as_bytes().to_vec(),
                (None, Some(b)) => base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| format!("property {}: {e}", p.name))?,
                _ => return Err(format!("property {}: one of value, value_base64", p.name)),
            };
            Ok((PropName::new(&p.ns, &p.name), value))
        })
        .collect()
}

/// Reads archive members by their position (found by the verification).
pub(super) struct Members<'a> {
    file: std::fs::File,
    v: &'a Verified,
}

impl<'a> Members<'a> {
    /// The archive `input`, its members where `v` found them.
    pub(super) fn open(input: &Path, v: &'a Verified) -> Result<Members<'a>, String> {
        let file = std::fs::File::open(input).map_err(|e| format!("{}: {e}", input.display()))?;
        Ok(Members { file, v })
    }

    /// The bytes of `member` as a stream of buffers for `Store::put`.
    fn stream(
        &mut self,
        member: &str,
    ) -> Result<impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + '_, String>
    {
        let (at, size) = *self
            .v
            .positions
            .get(member)
            .ok_or_else(|| format!("{member}: not in the archive"))?;
        self.file
            .seek(SeekFrom::Start(at))
            .map_err(|e| format!("{member}: {e}"))?;
        let mut left = size;
        let file = &mut self.file;
        Ok(futures::stream::iter(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let n = left.min(IMPORT_READ_BYTES as u64) as usize;
            let mut buf = vec![0u8; n];
            left -= n as u64;
            Some(file.read_exact(&mut buf).map(|()| Bytes::from(buf)))
        })))
    }
}

/// Stores one file member at `path` with `mtime`, dated `now`, checking its BLAKE3.
#[allow(clippy::too_many_arguments)]
fn put(
    store: &Store,
    key: &SpaceKey,
    members: &mut Members<'_>,
    path: &[Name],
    member: &str,
    blake3: &str,
    mtime_ns: i64,
    now_ns: i64,
) -> Result<(), String> {
    let body = members.stream(member)?;
    let info = block_on(store.put_dated(key, path, body, mtime_ns, now_ns))
        .map_err(|e| format!("{member}: {e}"))?;
    let got = info
        .content
        .map(|c| hex::encode(c.hash.0))
        .unwrap_or_default();
    if got != blake3 {
        return Err(format!(
            "{member}: stored bytes do not match the manifest's BLAKE3"
        ));
    }
    Ok(())
}

/// Builds `entries` (paths relative to `base`) in `key`'s space; returns how many earlier
/// versions the store's `versions_kept` did not keep.
pub(super) fn build(
    store: &Store,
    key: &SpaceKey,
    members: &mut Members<'_>,
    base: &[Name],
    entries: &[Entry],
) -> Result<u64, String> {
    let mut dropped = 0u64;
    let kept = store.config().versions_kept as usize;
    for e in entries {
        let mut path = base.to_vec();
        path.extend(path_of(&e.path)?);
        match e.kind {
            Kind::Dir => {
                block_on(store.mkdir(key, &path)).map_err(|err| format!("{}: {err}", e.member))?;
            }
            Kind::File => {
                // Each put dated when the content before it was replaced, so that the
                // versions keep their times (the first: when it was written, its mtime).
                let mut now = e.versions.first().map_or(e.mtime_ns, |v| v.mtime_ns);
                for v in &e.versions {
                    put(
                        store, key, members, &path, &v.member, &v.blake3, v.mtime_ns, now,
                    )?;
                    now = v.superseded_ns;
                }
                dropped += e.versions.len().saturating_sub(kept) as u64;
                let hash = e.blake3.as_deref().unwrap_or_default();
                put(store, key, members, &path, &e.member, hash, e.mtime_ns, now)?;
            }
        }
        if !e.props.is_empty() {
            block_on(store.set_props(key, &path, ns_props(&e.props)?, Vec::new()))
                .map_err(|err| format!("{}: properties: {err}", e.member))?;
        }
    }
    Ok(dropped)
}

/// Makes the folders of `dir` that are missing; the top-most one made, if any.
pub(super) fn ensure_dirs(
    store: &Store,
    key: &SpaceKey,
    dir: &[Name],
) -> Result<Option<Vec<Name>>, String> {
    let mut top = None;
    for i in 1..=dir.len() {
        if store.stat(key, &dir[..i]).is_err() {
            block_on(store.mkdir(key, &dir[..i])).map_err(se)?;
            top.get_or_insert_with(|| dir[..i].to_vec());
        }
    }
    Ok(top)
}

fn quota_bytes(q: Quota) -> Option<u64> {
    match q {
        Quota::Default => None,
        Quota::Unlimited => Some(u64::MAX),
        Quota::Bytes(b) => Some(b),
    }
}

pub(super) fn load_tree(
    store: &Store,
    tenant: &str,
    t: &Tree,
    members: &mut Members<'_>,
) -> Result<u64, String> {
    let key = SpaceKey::new(tenant, &t.name).map_err(se)?;
    block_on(store.create_space(&key)).map_err(se)?;
    // No quota while loading (trash items count as live until deleted); the tree's own last.
    block_on(store.set_space_quota(&key, Some(u64::MAX))).map_err(se)?;
    let mut dropped = 0;
    for item in &t.trash {
        dropped += load_trash_item(store, &key, &t.name, item, members)?;
    }
    dropped += build(store, &key, members, &[], &t.entries)?;
    if !t.root_props.is_empty() {
        block_on(store.set_props(&key, &[], ns_props(&t.root_props)?, Vec::new())).map_err(se)?;
    }
    block_on(store.set_space_quota(&key, quota_bytes(t.quota))).map_err(se)?;
    Ok(dropped)
}

/// Puts trash item `item` back in the trash of `key`: built at its original place (with the
/// folders it needs), then deleted with its deletion time; the folders made only to hold it
/// go for good. Returns how many earlier versions were not kept.
pub(super) fn load_trash_item(
    store: &Store,
    key: &SpaceKey,
    tree: &str,
    item: &TrashItem,
    members: &mut Members<'_>,
) -> Result<u64, String> {
    let orig = path_of(&item.original_path)?;
    let Some((_, parent)) = orig.split_last() else {
        return Err(format!(
            "trash item {} of {tree}: no original path",
            item.index
        ));
    };
    let made = ensure_dirs(store, key, parent)?;
    let dropped = build(store, key, members, &orig, &item.entries)?;
    block_on(store.delete_dated(key, &orig, item.deleted_ns)).map_err(se)?;
    if let Some(top) = made {
        block_on(store.delete(key, &top)).map_err(se)?;
        let last = store.trash(key).map_err(se)?.last().map(|i| i.id);
        if let Some(id) = last {
            block_on(store.purge(key, id)).map_err(se)?;
        }
    }
    Ok(dropped)
}

/// Refuses to load into a data dir that has the tenant (or, for one user's export, the user).
fn check_target(store: &Store, db: &UserDb, m: &Manifest, data_dir: &Path) -> Result<(), String> {
    let t = TenantName::new(&m.tenant.name).map_err(|e| e.to_string())?;
    let refuse = |what: String| {
        Err(format!(
            "{what} already in {}: import refused, nothing was changed (import into another \
             data dir, or delete it first: skab tenant del / skab user del)",
            data_dir.display()
        ))
    };
    let db_has = db.tenants().iter().any(|x| x.name == t);
    // A deleted tenant or user leaves an empty space behind in the store: that is no conflict.
    let holds_data = |key: &SpaceKey| {
        store.space_exists(key)
            && (store.list(key, &[]).map_or(true, |(_, c)| !c.is_empty())
                || store.trash(key).map_or(true, |t| !t.is_empty()))
    };
    match &m.user {
        None => {
            if db_has || store.spaces_of(&m.tenant.name).iter().any(holds_data) {
                return refuse(format!("tenant {t} is"));
            }
            for h in &m.handins {
                if Registry::new(data_dir)
                    .get(&m.tenant.name, &h.name)
                    .is_some()
                {
                    return refuse(format!("hand-in {} of tenant {t} is", h.name));
                }
                let log = receipt::log_path(data_dir, &m.tenant.name, &h.name)
                    .map_err(|e| e.to_string())?;
                if log.exists() {
                    return refuse(format!("a receipt log {} is", log.display()));
                }
            }
            if m.receipt_keys.secret_seed_base64.is_some()
                && receipt::read_tenant_key(data_dir, &m.tenant.name)
                    .map_err(|e| e.to_string())?
                    .is_some()
            {
                return refuse(format!("a receipt key of tenant {t} is"));
            }
        }
        Some(u) => {
            let user = UserName::new(u).map_err(|e| e.to_string())?;
            let key = SpaceKey::new(&m.tenant.name, u).map_err(se)?;
            if db.user(&t, &user).is_some() || holds_data(&key) {
                return refuse(format!("user {u}@{t} is"));
            }
        }
    }
    for tree in &m.trees {
        let key = SpaceKey::new(&m.tenant.name, &tree.name).map_err(se)?;
        if holds_data(&key) {
            return refuse(format!("the space {} of tenant {t} is", tree.name));
        }
    }
    Ok(())
}

/// A PHC hash nobody knows the password of (an account imported without its hash).
fn unusable_hash() -> Result<String, String> {
    let mut pw = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut pw);
    let pw = base64::engine::general_purpose::STANDARD.encode(pw);
    // The password is random and thrown away: the hash's cost protects nothing.
    password::hash_with(&pw, 8, 1, 1).map_err(|e| e.to_string())
}

/// What the user database and the receipt key will take, checked before anything changes.
pub(super) struct Prepared {
    pub accounts: Vec<ImportedAccount>,
    pub groups: Vec<(GroupName, u64, Vec<UserName>)>,
    pub seed: Option<[u8; 32]>,
}

/// The manifest's accounts, groups and receipt key, checked.
pub(super) fn prepare(m: &Manifest) -> Result<Prepared, String> {
    let mut accounts = Vec::new();
    for a in &m.accounts {
        let phc = match &a.password_hash {
            Some(h) => {
                password::check_phc(h).map_err(|e| format!("account {}: {e}", a.user))?;
                h.clone()
            }
            None => unusable_hash()?,
        };
        accounts.push(ImportedAccount {
            user: UserName::new(&a.user).map_err(|e| e.to_string())?,
            phc,
            disabled: a.disabled,
            created: a.created_unix,
        });
    }
    let mut groups = Vec::new();
    for g in &m.groups {
        let members = g
            .members
            .iter()
            .map(|u| UserName::new(u).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        groups.push((
            GroupName::new(&g.name).map_err(|e| e.to_string())?,
            g.created_unix,
            members,
        ));
    }
    let seed = match &m.receipt_keys.secret_seed_base64 {
        Some(s) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or("receipt_keys.secret_seed_base64 is not 32 bytes of base64")?,
        ),
        None => None,
    };
    Ok(Prepared {
        accounts,
        groups,
        seed,
    })
}

/// Loads the export `req.input` into the store and the data dir.
pub fn import(store: &Store, req: &ImportRequest) -> Result<Imported, String> {
    let v = verify(&req.input)?;
    if !v.problems.is_empty() {
        return Err(format!(
            "{} does not verify ({} problems, first: {}); nothing was imported",
            req.input.display(),
            v.problems.len(),
            v.problems[0]
        ));
    }
    let m = &v.manifest;
    let tenant = TenantName::new(&m.tenant.name).map_err(|e| e.to_string())?;
    let db = UserDb::open(&req.data_dir).map_err(|e| e.to_string())?;
    if req.merge {
        return super::merge::merge(store, req, &v, &db);
    }
    check_target(store, &db, m, &req.data_dir)?;
    // Everything the user database will take is checked before the store is touched.
    let Prepared {
        accounts,
        groups,
        seed,
    } = prepare(m)?;

    let fail = |e: String| {
        format!(
            "import failed half way: {e}\nthe data dir holds part of tenant {tenant}; delete it \
             (skab tenant del, or skab user del for one user) and import again"
        )
    };
    let file =
        std::fs::File::open(&req.input).map_err(|e| format!("{}: {e}", req.input.display()))?;
    let mut members = Members { file, v: &v };
    let mut dropped = 0;
    for t in &m.trees {
        dropped += load_tree(store, &m.tenant.name, t, &mut members).map_err(fail)?;
    }
    if m.user.is_none() {
        let quota = match m.tenant.quota {
            Quota::Bytes(b) => Some(b),
            _ => None,
        };
        block_on(store.set_tenant_quota(&m.tenant.name, quota)).map_err(|e| fail(e.to_string()))?;
        for h in &m.handins {
            load_handin(&req.data_dir, &m.tenant.name, h).map_err(fail)?;
        }
        if let Some(seed) = seed {
            receipt::install_tenant_key(&req.data_dir, &m.tenant.name, &seed)
                .map_err(|e| fail(format!("receipt key: {e}")))?;
        }
    }
    let created = m.tenant.created_unix.unwrap_or_else(crate::users::now_unix);
    db.import_accounts(&tenant, created, &accounts, &groups)
        .map_err(|e| fail(e.to_string()))?;
    let (spaces, shares) = registry_entries(m)?;
    if !spaces.is_empty() || !shares.is_empty() {
        crate::spaces::registry::Registry::new(&req.data_dir)
            .import(spaces, shares)
            .map_err(|e| fail(format!("spaces and shares: {e}")))?;
    }
    let mut text = format!(
        "imported tenant {tenant}{}: {} accounts, {} groups, {} spaces, {} shares, {} trees, {} files ({} bytes)\n",
        m.user
            .as_ref()
            .map(|u| format!(" (user {u})"))
            .unwrap_or_default(),
        m.accounts.len(),
        m.groups.len(),
        m.spaces.len(),
        m.shares.len(),
        m.trees.len(),
        m.totals.files,
        m.totals.bytes
    );
    if !m.with_password_hashes && !m.accounts.is_empty() {
        text.push_str("the export held no password hashes: set passwords with skab user passwd\n");
    }
    if dropped > 0 {
        text.push_str(&format!(
            "{dropped} earlier versions were not kept (storage.versions_kept = {})\n",
            store.config().versions_kept
        ));
    }
    Ok(Imported {
        tenant: m.tenant.name.clone(),
        text,
    })
}

pub(super) fn load_handin(data_dir: &Path, tenant: &str, h: &Handin) -> Result<(), String> {
    let late = match h.late.as_str() {
        "refuse" => LatePolicy::Refuse,
        "mark" => LatePolicy::Mark,
        other => return Err(format!("hand-in {}: late policy {other:?}", h.name)),
    };
    Registry::new(data_dir)
        .add(crate::handin::Handin {
            tenant: tenant.to_string(),
            name: h.name.clone(),
            owner: h.owner.clone(),
            group: h.group.clone(),
            opens: h.opens_unix,
            closes: h.closes_unix,
            late,
            created: h.created_unix.max(1),
        })
        .map_err(|e| e.to_string())?;
    if !h.receipts.is_empty() {
        let path = receipt::log_path(data_dir, tenant, &h.name).map_err(|e| e.to_string())?;
        let mut text = String::new();
        for r in &h.receipts {
            text.push_str(&receipt::log_line(data_dir, tenant, r).map_err(|e| e.to_string())?);
        }
        receipt::write_new_log(data_dir, tenant, &h.name, &text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The manifest's spaces and shares as registry entries; a bad one fails the import before
/// the registry changes.
pub(super) fn registry_entries(
    m: &Manifest,
) -> Result<
    (
        Vec<crate::spaces::registry::Space>,
        Vec<crate::spaces::registry::Share>,
    ),
    String,
> {
    use crate::spaces::registry::{Grant, Perm, Share, Space};
    let t = &m.tenant.name;
    let perm = |p: &str| match p {
        "read" => Ok(Perm::Read),
        "write" => Ok(Perm::Write),
        _ => Err(format!("share permission {p:?} is not read or write")),
    };
    let mut spaces = Vec::new();
    for s in &m.spaces {
        spaces.push(Space {
            tenant: t.clone(),
            name: s.name.clone(),
            owner: s.owner.clone(),
            grants: s
                .grants
                .iter()
                .map(|g| Grant::parse(g))
                .collect::<Result<_, _>>()?,
            created: s.created_unix,
        });
    }
    let mut shares = Vec::new();
    for s in &m.shares {
        let to = Grant::parse(&format!("{}=read", s.with))?.to;
        shares.push(Share {
            id: s.id,
            tenant: t.clone(),
            owner: s.owner.clone(),
            path: s.path.clone(),
            to,
            perm: perm(&s.perm)?,
            created: s.created_unix,
        });
    }
    Ok((spaces, shares))
}
