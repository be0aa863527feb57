//! `skab export`: the archive written from one consistent view of the tenant
//! (`Store::tenant_view`), streamed member by member: file bytes go from the packs to the
//! archive chunk by chunk, so memory does not grow with the size of the files (the manifest,
//! about 300 bytes per entry, is held whole).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use skab_engine::ns::{Content, Kind as NsKind, Name, Prop as NsProp};
use skab_engine::{Store, TenantView, ViewEntry};

use super::manifest::*;
use super::tarball::TarWriter;
use super::ExportRequest;
use crate::handin::receipt;
use crate::handin::{Registry, SPACE_PREFIX};
use crate::limits::EXPORT_WRITE_BUFFER_BYTES;
use crate::users::{TenantName, UserDb, UserName};

/// The archive folder of a stored tree, and its kind.
pub fn tree_dir(space_user: &str) -> (TreeKind, String) {
    if let Some(h) = space_user.strip_prefix(SPACE_PREFIX) {
        (TreeKind::Handin, format!("handins/{h}"))
    } else if space_user.starts_with('_') {
        (TreeKind::Space, format!("spaces/{space_user}"))
    } else {
        (TreeKind::Home, format!("files/{space_user}"))
    }
}

pub fn join(path: &[Name]) -> String {
    path.iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join("/")
}

fn quota_of_space(q: Option<u64>) -> Quota {
    match q {
        None => Quota::Default,
        Some(u64::MAX) => Quota::Unlimited,
        Some(b) => Quota::Bytes(b),
    }
}

fn props(p: &[NsProp]) -> Vec<Prop> {
    p.iter()
        .map(|p| {
            let (value, value_base64) = match std::str::from_utf8(&p.value) {
                Ok(s) => (Some(s.to_string()), None),
                Err(_) => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(&p.value)),
                ),
            };
            Prop {
                ns: p.name.ns.to_string(),
                name: p.name.local.to_string(),
                value,
                value_base64,
            }
        })
        .collect()
}

/// The manifest entry of `e`, whose member is `member`.
fn entry(e: &ViewEntry, path: String, member: String) -> Entry {
    let file = e.info.content.as_ref();
    Entry {
        path,
        kind: match e.info.kind {
            NsKind::File => Kind::File,
            NsKind::Dir => Kind::Dir,
        },
        mtime_ns: e.info.mtime,
        size: file.map(|c| c.size),
        blake3: file.map(|c| hex::encode(c.hash.0)),
        props: props(&e.props),
        versions: e
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| Version {
                member: format!("versions/{member}/{}", i + 1),
                size: v.content.size,
                blake3: hex::encode(v.content.hash.0),
                mtime_ns: v.mtime,
                superseded_ns: v.superseded_at,
            })
            .collect(),
        member,
    }
}

/// One member to write: a folder, or a file and the content it holds.
enum Member<'v> {
    Dir(String, i64),
    File(String, i64, &'v Content),
}

fn tree_of<'v>(sv: &'v skab_engine::SpaceView, members: &mut Vec<Member<'v>>) -> Tree {
    let (kind, dir) = tree_dir(sv.key.user());
    // A tree's root has no time of its own: the export's.
    members.push(Member::Dir(dir.clone(), now_s()));
    let add = |e: &'v ViewEntry, out: &Entry, members: &mut Vec<Member<'v>>| {
        let secs = e.info.mtime.div_euclid(1_000_000_000);
        match &e.info.content {
            None => members.push(Member::Dir(out.member.clone(), secs)),
            Some(c) => members.push(Member::File(out.member.clone(), secs, c)),
        }
        for (v, m) in e.versions.iter().zip(&out.versions) {
            let s = v.mtime.div_euclid(1_000_000_000);
            members.push(Member::File(m.member.clone(), s, &v.content));
        }
    };
    let mut entries = Vec::with_capacity(sv.entries.len());
    for e in &sv.entries {
        let path = join(&e.path);
        let out = entry(e, path.clone(), format!("{dir}/{path}"));
        add(e, &out, members);
        entries.push(out);
    }
    let mut trash = Vec::with_capacity(sv.trash.len());
    for (i, item) in sv.trash.iter().enumerate() {
        let index = i as u64 + 1;
        let base = format!("trash/{dir}/{index}/{}", item.info.name);
        let mut inside = Vec::with_capacity(item.entries.len());
        for e in &item.entries {
            let path = join(&e.path);
            let member = if path.is_empty() {
                base.clone()
            } else {
                format!("{base}/{path}")
            };
            let out = entry(e, path, member);
            add(e, &out, members);
            inside.push(out);
        }
        trash.push(TrashItem {
            index,
            original_path: join(&item.info.orig_path),
            deleted_ns: item.info.deleted_at,
            entries: inside,
        });
    }
    Tree {
        name: sv.key.user().to_string(),
        kind,
        dir,
        quota: quota_of_space(sv.quota),
        root_props: props(&sv.root_props),
        entries,
        trash,
    }
}

/// The bytes of one content as a `Read`, chunk by chunk, checked against its BLAKE3 at the end.
struct ContentReader<'v, I> {
    chunks: I,
    current: bytes::Bytes,
    hasher: blake3::Hasher,
    expect: &'v Content,
    done: bool,
}

impl<I: Iterator<Item = skab_engine::Result<bytes::Bytes>>> Read for ContentReader<'_, I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.next() {
                Some(Ok(b)) => {
                    self.hasher.update(&b);
                    self.current = b;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                None => {
                    if !self.done {
                        self.done = true;
                        if *self.hasher.finalize().as_bytes() != self.expect.hash.0 {
                            return Err(std::io::Error::other(
                                "stored bytes do not match the file's BLAKE3",
                            ));
                        }
                    }
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

fn now_rfc3339() -> String {
    crate::dav::xml::rfc3339(std::time::SystemTime::now())
}

/// Accounts and groups of the tenant (only `user`'s with `--user`).
fn accounts(
    db: &UserDb,
    tenant: &TenantName,
    user: Option<&UserName>,
    with_hashes: bool,
) -> Result<(Vec<Account>, Vec<Group>), String> {
    if !db.tenants().iter().any(|t| &t.name == tenant) {
        return Ok((Vec::new(), Vec::new()));
    }
    let e = |e: crate::users::UserDbError| e.to_string();
    let mut accounts = Vec::new();
    for u in db.users(tenant).map_err(e)? {
        if user.is_some_and(|x| *x != u.user) {
            continue;
        }
        let tokens = db
            .tokens(tenant, &u.user)
            .map_err(e)?
            .into_iter()
            .map(|k| Token {
                id: k.id.to_string(),
                label: k.label,
                created_unix: k.created,
                last_used_unix: k.last_used,
            })
            .collect();
        accounts.push(Account {
            user: u.user.to_string(),
            disabled: u.disabled,
            created_unix: u.created,
            password_hash: if with_hashes {
                db.credentials(tenant, &u.user).map(|c| c.phc.to_string())
            } else {
                None
            },
            groups: db
                .groups_of(tenant, &u.user)
                .iter()
                .map(|g| g.to_string())
                .collect(),
            tokens,
        });
    }
    let mut groups = Vec::new();
    for g in db.groups(tenant).map_err(e)? {
        let members: Vec<String> = g
            .members
            .iter()
            .filter(|m| user.is_none_or(|u| u == *m))
            .map(|m| m.to_string())
            .collect();
        if user.is_some() && members.is_empty() {
            continue;
        }
        groups.push(Group {
            name: g.name.to_string(),
            created_unix: g.created,
            members,
        });
    }
    Ok((accounts, groups))
}

/// Writes the export `req` asks for; a summary for people.
pub fn export(store: &Store, req: &ExportRequest) -> Result<String, String> {
    let tenant = TenantName::new(&req.tenant).map_err(|e| e.to_string())?;
    let user = req
        .user
        .as_deref()
        .map(UserName::new)
        .transpose()
        .map_err(|e| e.to_string())?;
    let in_store = store.tenants().contains(&req.tenant);
    let db = UserDb::open(&req.data_dir).map_err(|e| e.to_string())?;
    let tenant_info = db.tenants().into_iter().find(|t| t.name == tenant);
    if !in_store && tenant_info.is_none() {
        return Err(format!("no tenant {tenant} in {}", req.data_dir.display()));
    }
    // The store first, at one instant; the user database, registry and receipts right after.
    let view: Option<TenantView<'_>> = if in_store {
        Some(store.tenant_view(&req.tenant).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let exported_at = now_rfc3339();
    let (spaces, shares) = spaces_and_shares(&req.data_dir, &req.tenant, user.as_ref());
    let (accounts, groups) = accounts(&db, &tenant, user.as_ref(), req.with_password_hashes)?;
    if let Some(u) = &user {
        if accounts.is_empty()
            && !view
                .as_ref()
                .is_some_and(|v| v.spaces.iter().any(|s| s.key.user() == u.as_str()))
        {
            return Err(format!("no user {u}@{tenant}"));
        }
    }
    let mut members = Vec::new();
    let mut trees = Vec::new();
    if let Some(v) = &view {
        for sv in &v.spaces {
            if user.as_ref().is_some_and(|u| sv.key.user() != u.as_str()) {
                continue;
            }
            trees.push(tree_of(sv, &mut members));
        }
    }
    let mut handins = Vec::new();
    if user.is_none() {
        for h in Registry::new(&req.data_dir)
            .all()
            .iter()
            .filter(|h| h.tenant == req.tenant)
        {
            handins.push(Handin {
                name: h.name.clone(),
                tree: crate::handin::space_user(&h.name),
                owner: h.owner.clone(),
                group: h.group.clone(),
                opens_unix: h.opens,
                closes_unix: h.closes,
                late: match h.late {
                    crate::handin::LatePolicy::Refuse => "refuse".into(),
                    crate::handin::LatePolicy::Mark => "mark".into(),
                },
                created_unix: h.created,
                receipts: receipt::logged(&req.data_dir, &req.tenant, &h.name)
                    .map_err(|e| format!("receipts of {}: {e}", h.name))?,
            });
        }
    }
    let key = receipt::read_tenant_key(&req.data_dir, &req.tenant).map_err(|e| e.to_string())?;
    let receipt_keys = ReceiptKeys {
        public: key
            .as_ref()
            .map(|k| receipt::public_key_text(&k.verifying_key())),
        secret_seed_base64: key
            .as_ref()
            .filter(|_| req.with_receipt_key && user.is_none())
            .map(|k| base64::engine::general_purpose::STANDARD.encode(k.to_bytes())),
    };
    let mut manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        exported_at,
        skab_version: env!("CARGO_PKG_VERSION").into(),
        tenant: TenantRec {
            name: req.tenant.clone(),
            created_unix: tenant_info.map(|t| t.created),
            quota: match view.as_ref().and_then(|v| v.quota) {
                None => Quota::Unlimited,
                Some(b) => Quota::Bytes(b),
            },
        },
        user: user.as_ref().map(|u| u.to_string()),
        with_password_hashes: req.with_password_hashes,
        accounts,
        groups,
        trees,
        handins,
        receipt_keys,
        spaces,
        shares,
        totals: Totals { files: 0, bytes: 0 },
    };
    let files = manifest.files();
    manifest.totals = Totals {
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.1).sum(),
    };
    manifest.check()?;
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let view = view.as_ref();
    write_archive(&req.out, |w| {
        w.file(MANIFEST_NAME, json.len() as u64, now_s(), json.as_slice())?;
        for m in &members {
            match m {
                Member::Dir(name, mtime) => w.dir(name, *mtime)?,
                Member::File(name, mtime, content) => {
                    let Some(v) = view else { continue };
                    let r = ContentReader {
                        chunks: v.read(content),
                        current: bytes::Bytes::new(),
                        hasher: blake3::Hasher::new(),
                        expect: content,
                        done: false,
                    };
                    w.file(name, content.size, *mtime, r)
                        .map_err(|e| std::io::Error::new(e.kind(), format!("{name}: {e}")))?;
                }
            }
        }
        Ok(())
    })?;
    Ok(format!(
        "exported tenant {tenant}{}: {} accounts, {} groups, {} trees, {} files ({} bytes) to {}\n",
        user.map(|u| format!(" (user {u})")).unwrap_or_default(),
        manifest.accounts.len(),
        manifest.groups.len(),
        manifest.trees.len(),
        manifest.totals.files,
        manifest.totals.bytes,
        req.out.display()
    ))
}

fn now_s() -> i64 {
    i64::try_from(crate::users::now_unix()).unwrap_or(0)
}

/// Writes the archive to a temporary name beside `out`, syncs it and renames it over `out`:
/// a failed export never leaves a file that looks whole.
fn io(p: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", p.display())
}

fn write_archive(
    out: &Path,
    body: impl FnOnce(&mut TarWriter<BufWriter<std::fs::File>>) -> std::io::Result<()>,
) -> Result<(), String> {
    let tmp: PathBuf = {
        let mut s = out.as_os_str().to_owned();
        s.push(".partial");
        s.into()
    };
    // Only its owner reads it: it holds every pupil's files (and perhaps password hashes).
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?
    };
    let mut w = TarWriter::new(BufWriter::with_capacity(EXPORT_WRITE_BUFFER_BYTES, file));
    let result = body(&mut w).and_then(|()| w.finish()).and_then(|mut b| {
        b.flush()?;
        b.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "export failed, nothing written to {}: {e}",
            out.display()
        ));
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// The tenant's shared spaces and shares from the registry (a one-user export: only the
/// shares that user made).
fn spaces_and_shares(
    data_dir: &std::path::Path,
    tenant: &str,
    user: Option<&UserName>,
) -> (
    Vec<super::manifest::SpaceRec>,
    Vec<super::manifest::ShareRec>,
) {
    let saved = crate::spaces::registry::Registry::new(data_dir).of_tenant(tenant);
    let spaces = if user.is_some() {
        Vec::new()
    } else {
        saved
            .spaces
            .iter()
            .map(|s| super::manifest::SpaceRec {
                name: s.name.clone(),
                owner: s.owner.clone(),
                grants: s.grants.iter().map(|g| g.to_string()).collect(),
                created_unix: s.created,
            })
            .collect()
    };
    let shares = saved
        .shares
        .iter()
        .filter(|s| user.is_none_or(|u| s.owner == u.as_str()))
        .map(|s| super::manifest::ShareRec {
            id: s.id,
            owner: s.owner.clone(),
            path: s.path.clone(),
            with: s.to.to_string(),
            perm: s.perm.as_str().to_string(),
            created_unix: s.created,
        })
        .collect();
    (spaces, shares)
}
