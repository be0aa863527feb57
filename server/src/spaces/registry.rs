//! The spaces and user shares of every tenant: one small file in the data dir
//! (`spaces.bin`), replaced atomically and durably by `skab space`/`skab share` and by the
//! OCS share API, and reread by the server when it changes (checked on every request that
//! could reach one, so a revocation takes effect on the next request). Format:
//! `docs/spaces.md`, "Registry".

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use skab_engine::io::durable;

use crate::framed_json::{self, file_id, FileId};
use crate::users::now_unix as now_s;

use super::SpaceName;
use crate::limits::{SHARES_MAX, SPACES_MAX, SPACE_GRANTS_MAX, SPACE_REGISTRY_LEN_MAX};

/// The registry's file in the data dir.
pub const REGISTRY_FILE: &str = "spaces.bin";
/// The `flock` that orders writers of several processes.
const LOCK_FILE: &str = "spaces.lock";
/// Framed as `framed_json` (magic, length, CRC32C, JSON).
const MAGIC: &[u8; 8] = b"SKABSPC1";
/// The same with each tenant's spaces and shares sealed with its key (encryption at rest);
/// `next_share_id` stays in the clear.
const SEALED_MAGIC: &[u8; 8] = b"SKABSPS1";
/// What the sealed parts are (authenticated with them).
const SEAL_WHAT: &str = "spaces.bin";

/// What a member may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Perm {
    Read,
    Write,
}

impl Perm {
    pub fn as_str(self) -> &'static str {
        match self {
            Perm::Read => "read",
            Perm::Write => "write",
        }
    }
}

/// Who a grant is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Grantee {
    User(String),
    Group(String),
}

impl std::fmt::Display for Grantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grantee::User(u) => write!(f, "user:{u}"),
            Grantee::Group(g) => write!(f, "group:{g}"),
        }
    }
}

/// One grant of a space: `group:9a=read`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub to: Grantee,
    pub perm: Perm,
}

impl Grant {
    /// Parses `user:NAME=read|write` or `group:NAME=read|write`.
    pub fn parse(s: &str) -> Result<Grant, String> {
        let bad = || format!("{s:?}: a share is user:NAME=read|write or group:NAME=read|write");
        let (who, perm) = s.rsplit_once('=').ok_or_else(bad)?;
        let perm = match perm {
            "read" => Perm::Read,
            "write" => Perm::Write,
            _ => return Err(bad()),
        };
        let to = match who.split_once(':') {
            Some(("user", n)) if !n.is_empty() => Grantee::User(n.to_string()),
            Some(("group", n)) if !n.is_empty() => Grantee::Group(n.to_string()),
            _ => return Err(bad()),
        };
        Ok(Grant { to, perm })
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.to, self.perm.as_str())
    }
}

/// One shared space: its owner may write, each grant adds members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space {
    pub tenant: String,
    pub name: String,
    pub owner: String,
    pub grants: Vec<Grant>,
    pub created: u64,
}

/// One folder of a user's home shared with a user or a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Unique in the registry (the OCS share id).
    pub id: u64,
    pub tenant: String,
    pub owner: String,
    /// The folder's path in the owner's home: decoded segments joined by `/`.
    pub path: String,
    pub to: Grantee,
    pub perm: Perm,
    pub created: u64,
}

#[derive(Serialize, Deserialize, Default, Clone)]
pub struct Saved {
    #[serde(default)]
    pub next_share_id: u64,
    #[serde(default)]
    pub spaces: Vec<Space>,
    #[serde(default)]
    pub shares: Vec<Share>,
}

/// Why a registry change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    #[error("{REGISTRY_FILE}: {0}")]
    Damaged(&'static str),
    #[error("{REGISTRY_FILE}: {0}")]
    Sealed(String),
    #[error("space {0} already exists in tenant {1}")]
    Exists(String, String),
    #[error("no space {0} in tenant {1}")]
    Missing(String, String),
    #[error("no share {0}")]
    NoShare(u64),
    #[error("more than {SPACES_MAX} spaces or {SHARES_MAX} shares")]
    TooMany,
    #[error("more than {SPACE_GRANTS_MAX} shares on one space")]
    TooManyGrants,
    #[error("{0}")]
    Invalid(String),
}

/// The registry as read, and each tenant's part of it (a request looks only at its
/// tenant's spaces and shares, not at every school's).
#[derive(Default)]
struct Cached {
    all: Arc<Saved>,
    by_tenant: std::collections::HashMap<String, Arc<Saved>>,
}

impl Cached {
    fn new(all: Saved) -> Cached {
        let mut by_tenant: std::collections::HashMap<String, Saved> = Default::default();
        for s in &all.spaces {
            by_tenant
                .entry(s.tenant.clone())
                .or_default()
                .spaces
                .push(s.clone());
        }
        for s in &all.shares {
            by_tenant
                .entry(s.tenant.clone())
                .or_default()
                .shares
                .push(s.clone());
        }
        Cached {
            all: Arc::new(all),
            by_tenant: by_tenant
                .into_iter()
                .map(|(k, v)| (k, Arc::new(v)))
                .collect(),
        }
    }
}

/// The spaces and shares as this process last read them, reread when the file changes.
pub struct Registry {
    dir: PathBuf,
    /// Seals each tenant's part with its key (encryption at rest), if on.
    sealer: Option<Arc<crate::crypt::Sealer>>,
    /// Read by every request to a home (shared lock), written when the file changed.
    cached: RwLock<(Option<FileId>, Cached)>,
}

/// One tenant's part of a sealed registry.
#[derive(Serialize, Deserialize, Default)]
struct TenantPart {
    spaces: Vec<Space>,
    shares: Vec<Share>,
}

fn decode(bytes: &[u8], sealer: Option<&crate::crypt::Sealer>) -> Result<Saved, RegistryError> {
    let bad_magic = "not a space registry (bad magic)";
    let magic = framed_json::magic_of(bytes);
    match sealer {
        None if magic == Some(SEALED_MAGIC) => Err(RegistryError::Sealed(
            "sealed with encryption at rest, but crypto.enabled is off".into(),
        )),
        // In the clear with a sealer: written before; sealed by the next change.
        None => framed_json::decode(MAGIC, bad_magic, bytes).map_err(RegistryError::Damaged),
        Some(_) if magic == Some(MAGIC) => {
            framed_json::decode(MAGIC, bad_magic, bytes).map_err(RegistryError::Damaged)
        }
        Some(s) => {
            let (next_share_id, parts) = framed_json::decode_sealed::<u64, TenantPart>(
                SEALED_MAGIC,
                bad_magic,
                s,
                SEAL_WHAT,
                bytes,
            )
            .map_err(RegistryError::Sealed)?;
            let mut saved = Saved {
                next_share_id,
                ..Saved::default()
            };
            for (t, p) in parts {
                saved
                    .spaces
                    .extend(p.spaces.into_iter().filter(|x| x.tenant == t));
                saved
                    .shares
                    .extend(p.shares.into_iter().filter(|x| x.tenant == t));
            }
            Ok(saved)
        }
    }
}

fn encode(saved: &Saved, sealer: Option<&crate::crypt::Sealer>) -> Result<Vec<u8>, RegistryError> {
    let Some(s) = sealer else {
        return Ok(framed_json::encode(MAGIC, saved));
    };
    let mut parts: std::collections::BTreeMap<String, TenantPart> = Default::default();
    for x in &saved.spaces {
        parts
            .entry(x.tenant.clone())
            .or_default()
            .spaces
            .push(x.clone());
    }
    for x in &saved.shares {
        parts
            .entry(x.tenant.clone())
            .or_default()
            .shares
            .push(x.clone());
    }
    framed_json::encode_sealed(SEALED_MAGIC, s, SEAL_WHAT, &saved.next_share_id, &parts)
        .map_err(RegistryError::Sealed)
}

impl Registry {
    pub fn new(data_dir: &Path) -> Registry {
        Registry {
            dir: data_dir.to_path_buf(),
            sealer: crate::crypt::sealer(data_dir),
            cached: RwLock::new((None, Cached::default())),
        }
    }

    fn io_err(&self, e: io::Error) -> RegistryError {
        RegistryError::Io(self.dir.join(REGISTRY_FILE), e)
    }

    fn read(&self) -> Result<Saved, RegistryError> {
        let storage = crate::own_files::storage_at(&self.dir).map_err(|e| self.io_err(e))?;
        match durable::read_file(&storage, REGISTRY_FILE, SPACE_REGISTRY_LEN_MAX)
            .map_err(|e| self.io_err(e))?
        {
            None => Ok(Saved::default()),
            Some(b) => decode(&b, self.sealer.as_deref()),
        }
    }

    /// Every space and share, reread when the file changed since the last call (one
    /// `stat` per call, so a change by another process counts from the next request). A
    /// damaged file keeps the last good list (and is reported).
    pub fn all(&self) -> Arc<Saved> {
        self.fresh(|c| c.all.clone())
    }

    /// The spaces and shares of one tenant, as [`Registry::all`] reads them.
    pub fn of_tenant(&self, tenant: &str) -> Arc<Saved> {
        self.fresh(|c| c.by_tenant.get(tenant).cloned().unwrap_or_default())
    }

    fn fresh<T>(&self, f: impl FnOnce(&Cached) -> T) -> T {
        let id = file_id(&self.dir.join(REGISTRY_FILE));
        let stale = |c: &(Option<FileId>, Cached)| {
            let empty = c.1.all.spaces.is_empty() && c.1.all.shares.is_empty();
            c.0 != id || id.is_none() && !empty
        };
        {
            let c = self.cached.read();
            if !stale(&c) {
                return f(&c.1);
            }
        }
        let mut c = self.cached.write();
        if stale(&c) {
            match self.read() {
                Ok(s) => *c = (id, Cached::new(s)),
                // Kept until the file changes again (not reread, nor logged, per request).
                Err(e) => {
                    tracing::warn!(error = %e, "space registry not reread; the last good one serves");
                    c.0 = id;
                }
            }
        }
        f(&c.1)
    }

    /// The space `name` of `tenant`.
    pub fn space(&self, tenant: &str, name: &str) -> Option<Space> {
        self.of_tenant(tenant)
            .spaces
            .iter()
            .find(|s| s.tenant == tenant && s.name == name)
            .cloned()
    }

    /// Changes the file under the writers' lock: read, `f`, replace durably. The cache is
    /// updated at once, so this process sees its own change on its next request.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut Saved) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io_err(e))?;
        let _lock =
            crate::file_lock::exclusive(&self.dir.join(LOCK_FILE)).map_err(|e| self.io_err(e))?;
        let mut saved = self.read()?;
        let out = f(&mut saved)?;
        let storage = crate::own_files::storage_at(&self.dir).map_err(|e| self.io_err(e))?;
        durable::replace_file(
            &storage,
            REGISTRY_FILE,
            &encode(&saved, self.sealer.as_deref())?,
        )
        .map_err(|e| self.io_err(e))?;
        let id = file_id(&self.dir.join(REGISTRY_FILE));
        *self.cached.write() = (id, Cached::new(saved));
        Ok(out)
    }

    /// Adds a space (`created` is set here).
    pub fn add_space(&self, mut s: Space) -> Result<(), RegistryError> {
        SpaceName::new(&s.name).map_err(RegistryError::Invalid)?;
        if s.grants.len() > SPACE_GRANTS_MAX {
            return Err(RegistryError::TooManyGrants);
        }
        s.created = now_s();
        self.change(|saved| {
            if saved
                .spaces
                .iter()
                .any(|x| x.tenant == s.tenant && x.name == s.name)
            {
                return Err(RegistryError::Exists(s.name.clone(), s.tenant.clone()));
            }
            if saved.spaces.len() >= SPACES_MAX {
                return Err(RegistryError::TooMany);
            }
            saved.spaces.push(s);
            Ok(())
        })
    }

    /// Removes a space from the registry (its stored files stay in the engine space).
    pub fn delete_space(&self, tenant: &str, name: &str) -> Result<(), RegistryError> {
        self.change(|saved| {
            let before = saved.spaces.len();
            saved
                .spaces
                .retain(|x| !(x.tenant == tenant && x.name == name));
            if saved.spaces.len() == before {
                return Err(RegistryError::Missing(name.into(), tenant.into()));
            }
            Ok(())
        })
    }

    /// Adds grants to a space (a grant for the same user or group replaces the earlier
    /// one) and removes the grants of `remove`.
    pub fn regrant(
        &self,
        tenant: &str,
        name: &str,
        add: &[Grant],
        remove: &[Grantee],
    ) -> Result<Space, RegistryError> {
        self.change(|saved| {
            let s = saved
                .spaces
                .iter_mut()
                .find(|x| x.tenant == tenant && x.name == name)
                .ok_or_else(|| RegistryError::Missing(name.into(), tenant.into()))?;
            for g in add {
                s.grants.retain(|x| x.to != g.to);
                s.grants.push(g.clone());
            }
            s.grants.retain(|x| !remove.contains(&x.to));
            if s.grants.len() > SPACE_GRANTS_MAX {
                return Err(RegistryError::TooManyGrants);
            }
            Ok(s.clone())
        })
    }

    /// Adds a share (an existing share of the same folder to the same user or group gets
    /// the new permission); returns it with its id.
    pub fn add_share(&self, mut s: Share) -> Result<Share, RegistryError> {
        s.created = now_s();
        self.change(|saved| {
            if let Some(x) = saved.shares.iter_mut().find(|x| {
                x.tenant == s.tenant && x.owner == s.owner && x.path == s.path && x.to == s.to
            }) {
                x.perm = s.perm;
                return Ok(x.clone());
            }
            if saved.shares.len() >= SHARES_MAX {
                return Err(RegistryError::TooMany);
            }
            saved.next_share_id = saved.next_share_id.max(1);
            s.id = saved.next_share_id;
            saved.next_share_id += 1;
            saved.shares.push(s.clone());
            Ok(s)
        })
    }

    /// Changes what share `id` of `tenant` allows, when `may` allows (its owner).
    pub fn set_share_perm(
        &self,
        tenant: &str,
        id: u64,
        perm: Perm,
        may: impl FnOnce(&Share) -> bool,
    ) -> Result<Share, RegistryError> {
        self.change(|saved| {
            let s = saved
                .shares
                .iter_mut()
                .find(|x| x.tenant == tenant && x.id == id)
                .ok_or(RegistryError::NoShare(id))?;
            if !may(s) {
                return Err(RegistryError::NoShare(id));
            }
            s.perm = perm;
            Ok(s.clone())
        })
    }

    /// Removes share `id` of `tenant`, when `may` allows (the OCS API lets only its owner).
    pub fn delete_share(
        &self,
        tenant: &str,
        id: u64,
        may: impl FnOnce(&Share) -> bool,
    ) -> Result<Share, RegistryError> {
        self.change(|saved| {
            let i = saved
                .shares
                .iter()
                .position(|x| x.tenant == tenant && x.id == id)
                .ok_or(RegistryError::NoShare(id))?;
            if !may(&saved.shares[i]) {
                return Err(RegistryError::NoShare(id));
            }
            Ok(saved.shares.remove(i))
        })
    }
}

impl Registry {
    /// Puts the spaces and shares of an imported tenant in, as they were (`created` kept; a
    /// share keeps its id when no other share has it, else gets a new one). Refused as a
    /// whole when a space of the same name exists.
    pub fn import(&self, spaces: Vec<Space>, shares: Vec<Share>) -> Result<(), RegistryError> {
        for s in &spaces {
            SpaceName::new(&s.name).map_err(RegistryError::Invalid)?;
            if s.grants.len() > SPACE_GRANTS_MAX {
                return Err(RegistryError::TooManyGrants);
            }
        }
        self.change(|saved| {
            for s in &spaces {
                if saved
                    .spaces
                    .iter()
                    .any(|x| x.tenant == s.tenant && x.name == s.name)
                {
                    return Err(RegistryError::Exists(s.name.clone(), s.tenant.clone()));
                }
            }
            if saved.spaces.len() + spaces.len() > SPACES_MAX
                || saved.shares.len() + shares.len() > SHARES_MAX
            {
                return Err(RegistryError::TooMany);
            }
            saved.spaces.extend(spaces);
            for mut s in shares {
                saved.next_share_id = saved.next_share_id.max(1);
                if s.id == 0 || saved.shares.iter().any(|x| x.id == s.id) {
                    s.id = saved.next_share_id;
                }
                saved.next_share_id = saved.next_share_id.max(s.id + 1);
                saved.shares.push(s);
            }
            Ok(())
        })
    }
}

impl Registry {
    /// `skab import --merge`: adds the spaces the tenant does not have (one it has keeps
    /// its owner and grants) and the shares it does not have (the same owner, folder and
    /// grantee; a share id taken is renumbered). Returns (spaces added, shares added).
    pub fn merge(
        &self,
        spaces: Vec<Space>,
        shares: Vec<Share>,
    ) -> Result<(usize, usize), RegistryError> {
        for s in &spaces {
            SpaceName::new(&s.name).map_err(RegistryError::Invalid)?;
            if s.grants.len() > SPACE_GRANTS_MAX {
                return Err(RegistryError::TooManyGrants);
            }
        }
        self.change(|saved| {
            let mut added = (0, 0);
            for s in spaces {
                if saved
                    .spaces
                    .iter()
                    .any(|x| x.tenant == s.tenant && x.name == s.name)
                {
                    continue;
                }
                if saved.spaces.len() >= SPACES_MAX {
                    return Err(RegistryError::TooMany);
                }
                saved.spaces.push(s);
                added.0 += 1;
            }
            for mut s in shares {
                if saved.shares.iter().any(|x| {
                    x.tenant == s.tenant && x.owner == s.owner && x.path == s.path && x.to == s.to
                }) {
                    continue;
                }
                if saved.shares.len() >= SHARES_MAX {
                    return Err(RegistryError::TooMany);
                }
                saved.next_share_id = saved.next_share_id.max(1);
                if s.id == 0 || saved.shares.iter().any(|x| x.id == s.id) {
                    s.id = saved.next_share_id;
                }
                saved.next_share_id = saved.next_share_id.max(s.id + 1);
                saved.shares.push(s);
                added.1 += 1;
            }
            Ok(added)
        })
    }
}

/// What an account or group deletion takes out of the registry.
pub enum Forget<'a> {
    /// The whole tenant: its spaces and shares.
    Tenant,
    /// A user: the spaces they own, the shares they made, every grant and share to them.
    User(&'a str),
    /// A group: every grant and share to it.
    Group(&'a str),
}

impl Registry {
    /// Takes a deleted tenant, user or group out of every space and share, so that a later
    /// account or group of the same name inherits nothing. Returns how many spaces, grants
    /// and shares went. The spaces' files stay in their engine spaces.
    pub fn forget(&self, tenant: &str, what: Forget<'_>) -> Result<usize, RegistryError> {
        if !std::fs::exists(self.dir.join(REGISTRY_FILE)).unwrap_or(true) {
            return Ok(0);
        }
        self.change(|saved| {
            let before = saved.spaces.len()
                + saved.shares.len()
                + saved.spaces.iter().map(|s| s.grants.len()).sum::<usize>();
            let mine = |t: &str| t == tenant;
            match what {
                Forget::Tenant => {
                    saved.spaces.retain(|s| !mine(&s.tenant));
                    saved.shares.retain(|s| !mine(&s.tenant));
                }
                Forget::User(u) => {
                    let to = Grantee::User(u.to_string());
                    saved.spaces.retain(|s| !(mine(&s.tenant) && s.owner == u));
                    for s in saved.spaces.iter_mut().filter(|s| mine(&s.tenant)) {
                        s.grants.retain(|g| g.to != to);
                    }
                    saved
                        .shares
                        .retain(|s| !(mine(&s.tenant) && (s.owner == u || s.to == to)));
                }
                Forget::Group(g) => {
                    let to = Grantee::Group(g.to_string());
                    for s in saved.spaces.iter_mut().filter(|s| mine(&s.tenant)) {
                        s.grants.retain(|x| x.to != to);
                    }
                    saved.shares.retain(|s| !(mine(&s.tenant) && s.to == to));
                }
            }
            let after = saved.spaces.len()
                + saved.shares.len()
                + saved.spaces.iter().map(|s| s.grants.len()).sum::<usize>();
            Ok(before - after)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(name: &str) -> Space {
        Space {
            tenant: "t".into(),
            name: name.into(),
            owner: "teach".into(),
            grants: vec![Grant::parse("group:9a=read").unwrap()],
            created: 0,
        }
    }

    #[test]
    fn spaces_and_shares_reread_by_another_registry() {
        let dir = tempfile::tempdir().unwrap();
        let a = Registry::new(dir.path());
        let b = Registry::new(dir.path());
        assert!(b.all().spaces.is_empty());
        a.add_space(sp("math")).unwrap();
        assert!(matches!(
            a.add_space(sp("math")),
            Err(RegistryError::Exists(..))
        ));
        assert_eq!(b.space("t", "math").unwrap().owner, "teach");
        let s = a
            .regrant(
                "t",
                "math",
                &[Grant::parse("user:bo=write").unwrap()],
                &[Grantee::Group("9a".into())],
            )
            .unwrap();
        assert_eq!(s.grants, vec![Grant::parse("user:bo=write").unwrap()]);
        let share = |to: &str| Share {
            id: 0,
            tenant: "t".into(),
            owner: "teach".into(),
            path: "Docs".into(),
            to: Grantee::User(to.into()),
            perm: Perm::Read,
            created: 0,
        };
        let s1 = a.add_share(share("bo")).unwrap();
        let s2 = a.add_share(share("carl")).unwrap();
        assert_ne!(s1.id, s2.id);
        assert_eq!(b.all().shares.len(), 2);
        assert_eq!(b.of_tenant("t").shares.len(), 2);
        assert!(b.of_tenant("u").shares.is_empty());
        assert!(a.delete_share("t", s1.id, |_| false).is_err());
        a.delete_share("t", s1.id, |_| true).unwrap();
        assert_eq!(b.all().shares.len(), 1);
        a.delete_space("t", "math").unwrap();
        assert!(b.space("t", "math").is_none());
        // Ids are never reused.
        let s3 = a.add_share(share("dan")).unwrap();
        assert!(s3.id > s2.id);
    }

    #[test]
    fn deleted_accounts_and_groups_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let a = Registry::new(dir.path());
        assert_eq!(a.forget("t", Forget::Tenant).unwrap(), 0);
        assert!(!dir.path().join(REGISTRY_FILE).exists());
        let mut s = sp("math");
        s.grants.push(Grant::parse("user:bo=write").unwrap());
        a.add_space(s).unwrap();
        let mut other = sp("art");
        other.owner = "bo".into();
        a.add_space(other).unwrap();
        let share = |owner: &str, to: Grantee| Share {
            id: 0,
            tenant: "t".into(),
            owner: owner.into(),
            path: "Docs".into(),
            to,
            perm: Perm::Read,
            created: 0,
        };
        a.add_share(share("teach", Grantee::User("bo".into())))
            .unwrap();
        a.add_share(share("bo", Grantee::Group("9a".into())))
            .unwrap();
        a.add_share(share("teach", Grantee::Group("9a".into())))
            .unwrap();
        // bo: the space bo owns (with its one grant), the grant to bo, bo's share and the
        // share to bo.
        assert_eq!(a.forget("t", Forget::User("bo")).unwrap(), 5);
        assert!(a.space("t", "art").is_none());
        assert_eq!(a.space("t", "math").unwrap().grants.len(), 1);
        assert_eq!(a.forget("t", Forget::Group("9a")).unwrap(), 2);
        assert!(a.all().shares.is_empty());
        assert_eq!(a.forget("t", Forget::Tenant).unwrap(), 1);
        assert!(a.all().spaces.is_empty());
    }

    #[test]
    fn damaged_file_is_refused_and_grants_parse() {
        let dir = tempfile::tempdir().unwrap();
        let a = Registry::new(dir.path());
        a.add_space(sp("x")).unwrap();
        let p = dir.path().join(REGISTRY_FILE);
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(matches!(a.read(), Err(RegistryError::Damaged(_))));
        assert!(Grant::parse("group:9a=admin").is_err());
        assert!(Grant::parse("9a=read").is_err());
        assert_eq!(
            Grant::parse("user:bo=write").unwrap().to_string(),
            "user:bo=write"
        );
    }
}
