//! The hand-ins of every tenant: one small file in the data dir (`handins.bin`), replaced
//! atomically and durably by the `skab handin` commands and reread by the server when it
//! changes. Format and rules: `docs/handin.md`, "Registry".

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use skab_engine::io::durable;

use crate::framed_json::{self, file_id, FileId};
use crate::users::now_unix as now_s;

use super::HandinName;
use crate::limits::{HANDINS_MAX, HANDIN_FOLDERS_REFRESH_S, HANDIN_REGISTRY_LEN_MAX};

/// The registry's file in the data dir.
pub const REGISTRY_FILE: &str = "handins.bin";
/// The `flock` that orders writers of several processes.
const LOCK_FILE: &str = "handins.lock";
/// Framed as `framed_json` (magic, length, CRC32C, JSON).
const MAGIC: &[u8; 8] = b"SKABHIN1";
/// The same with each tenant's hand-ins sealed with its key (encryption at rest).
const SEALED_MAGIC: &[u8; 8] = b"SKABHIS1";
/// What the sealed parts are (authenticated with them).
const SEAL_WHAT: &str = "handins.bin";

/// What happens to an upload after the hand-in closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LatePolicy {
    /// 403, with the closing time in the body.
    Refuse,
    /// Accepted and marked late (a dead property and the receipt's `late` field).
    Mark,
}

/// One hand-in: who collects, from whom, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handin {
    pub tenant: String,
    pub name: String,
    /// The teacher: sees every pupil's folder, never writes.
    pub owner: String,
    /// The group whose members hand in.
    pub group: String,
    /// Unix seconds before which uploads are refused (`None`: open from creation).
    pub opens: Option<u64>,
    /// Unix seconds from which uploads are late.
    pub closes: u64,
    pub late: LatePolicy,
    pub created: u64,
}

/// What a hand-in allows at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    NotYetOpen,
    Open,
    Closed,
}

impl Handin {
    /// The phase at `now` (Unix seconds, the server's clock).
    pub fn phase(&self, now: u64) -> Phase {
        if self.opens.is_some_and(|o| now < o) {
            Phase::NotYetOpen
        } else if now < self.closes {
            Phase::Open
        } else {
            Phase::Closed
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Saved {
    handins: Vec<Handin>,
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
    #[error("hand-in {0} already exists in tenant {1}")]
    Exists(String, String),
    #[error("no hand-in {0} in tenant {1}")]
    Missing(String, String),
    #[error("more than {HANDINS_MAX} hand-ins")]
    TooMany,
    #[error("closes must be later than opens")]
    Window,
}

/// The hand-ins as this process last read them, reread when the file changes.
pub struct Registry {
    dir: PathBuf,
    /// Seals each tenant's part with its key (encryption at rest), if on.
    sealer: Option<Arc<crate::crypt::Sealer>>,
    cached: Mutex<(Option<FileId>, Arc<Vec<Handin>>)>,
    /// When each hand-in's member folders were last made (`folders_due`).
    folders_made: Mutex<std::collections::HashMap<(String, String), std::time::Instant>>,
}

fn decode(bytes: &[u8], sealer: Option<&crate::crypt::Sealer>) -> Result<Saved, RegistryError> {
    let bad_magic = "not a hand-in registry (bad magic)";
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
            let ((), parts) = framed_json::decode_sealed::<(), Vec<Handin>>(
                SEALED_MAGIC,
                bad_magic,
                s,
                SEAL_WHAT,
                bytes,
            )
            .map_err(RegistryError::Sealed)?;
            Ok(Saved {
                handins: parts
                    .into_iter()
                    .flat_map(|(t, v)| v.into_iter().filter(move |h| h.tenant == t))
                    .collect(),
            })
        }
    }
}

fn encode(saved: &Saved, sealer: Option<&crate::crypt::Sealer>) -> Result<Vec<u8>, RegistryError> {
    let Some(s) = sealer else {
        return Ok(framed_json::encode(MAGIC, saved));
    };
    let mut parts: std::collections::BTreeMap<String, Vec<Handin>> = Default::default();
    for h in &saved.handins {
        parts.entry(h.tenant.clone()).or_default().push(h.clone());
    }
    framed_json::encode_sealed(SEALED_MAGIC, s, SEAL_WHAT, &(), &parts)
        .map_err(RegistryError::Sealed)
}

impl Registry {
    pub fn new(data_dir: &Path) -> Registry {
        Registry {
            dir: data_dir.to_path_buf(),
            sealer: crate::crypt::sealer(data_dir),
            cached: Mutex::new((None, Arc::new(Vec::new()))),
            folders_made: Mutex::default(),
        }
    }

    /// True (and noted) when the member folders of a hand-in were not made within the last
    /// `HANDIN_FOLDERS_REFRESH_S`.
    pub fn folders_due(&self, tenant: &str, name: &str) -> bool {
        let now = std::time::Instant::now();
        let mut m = self.folders_made.lock();
        let key = (tenant.to_string(), name.to_string());
        match m.get(&key) {
            Some(t) if now.duration_since(*t).as_secs() < HANDIN_FOLDERS_REFRESH_S => false,
            _ => {
                m.insert(key, now);
                true
            }
        }
    }

    fn io_err(&self, e: io::Error) -> RegistryError {
        RegistryError::Io(self.dir.join(REGISTRY_FILE), e)
    }

    fn read(&self) -> Result<Saved, RegistryError> {
        let storage = crate::own_files::storage_at(&self.dir).map_err(|e| self.io_err(e))?;
        match durable::read_file(&storage, REGISTRY_FILE, HANDIN_REGISTRY_LEN_MAX)
            .map_err(|e| self.io_err(e))?
        {
            None => Ok(Saved::default()),
            Some(b) => decode(&b, self.sealer.as_deref()),
        }
    }

    /// Every hand-in, reread when the file changed since the last call. A damaged file
    /// keeps the last good list (and is reported).
    pub fn all(&self) -> Arc<Vec<Handin>> {
        let id = file_id(&self.dir.join(REGISTRY_FILE));
        let mut c = self.cached.lock();
        if c.0 != id || id.is_none() && !c.1.is_empty() {
            match self.read() {
                Ok(s) => *c = (id, Arc::new(s.handins)),
                Err(e) => tracing::warn!(error = %e, "hand-in registry not reread"),
            }
        }
        c.1.clone()
    }

    /// The hand-in `name` of `tenant`.
    pub fn get(&self, tenant: &str, name: &str) -> Option<Handin> {
        self.all()
            .iter()
            .find(|h| h.tenant == tenant && h.name == name)
            .cloned()
    }

    /// Changes the file under the writers' lock: read, `f`, replace durably.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut Vec<Handin>) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io_err(e))?;
        let _lock =
            crate::file_lock::exclusive(&self.dir.join(LOCK_FILE)).map_err(|e| self.io_err(e))?;
        let mut saved = self.read()?;
        let out = f(&mut saved.handins)?;
        let storage = crate::own_files::storage_at(&self.dir).map_err(|e| self.io_err(e))?;
        durable::replace_file(
            &storage,
            REGISTRY_FILE,
            &encode(&saved, self.sealer.as_deref())?,
        )
        .map_err(|e| self.io_err(e))?;
        Ok(out)
    }

    /// Adds a hand-in (`created` is set here unless given, as an import gives it).
    pub fn add(&self, mut h: Handin) -> Result<(), RegistryError> {
        HandinName::new(&h.name).map_err(|_| RegistryError::Damaged("bad hand-in name"))?;
        if h.opens.is_some_and(|o| o >= h.closes) {
            return Err(RegistryError::Window);
        }
        if h.created == 0 {
            h.created = now_s();
        }
        self.change(|list| {
            if list
                .iter()
                .any(|x| x.tenant == h.tenant && x.name == h.name)
            {
                return Err(RegistryError::Exists(h.name.clone(), h.tenant.clone()));
            }
            if list.len() >= HANDINS_MAX {
                return Err(RegistryError::TooMany);
            }
            list.push(h);
            Ok(())
        })
    }

    /// Takes the hand-ins of a deleted tenant, teacher (owner) or group out of the registry,
    /// so that a later account or group of the same name inherits no hand-in (a new teacher
    /// of that name would read every submission). Their files and receipts stay in the data
    /// dir, as with `skab handin del`. Returns how many went.
    pub fn forget(
        &self,
        tenant: &str,
        what: crate::spaces::registry::Forget<'_>,
    ) -> Result<usize, RegistryError> {
        use crate::spaces::registry::Forget;
        if !std::fs::exists(self.dir.join(REGISTRY_FILE)).unwrap_or(true) {
            return Ok(0);
        }
        self.change(|list| {
            let before = list.len();
            list.retain(|h| {
                h.tenant != tenant
                    || match what {
                        Forget::Tenant => false,
                        Forget::User(u) => h.owner != u,
                        Forget::Group(g) => h.group != g,
                    }
            });
            Ok(before - list.len())
        })
    }

    /// Removes a hand-in from the registry (its stored files stay in the engine space).
    pub fn delete(&self, tenant: &str, name: &str) -> Result<(), RegistryError> {
        self.change(|list| {
            let before = list.len();
            list.retain(|x| !(x.tenant == tenant && x.name == name));
            if list.len() == before {
                return Err(RegistryError::Missing(name.into(), tenant.into()));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, closes: u64) -> Handin {
        Handin {
            tenant: "t".into(),
            name: name.into(),
            owner: "teach".into(),
            group: "g".into(),
            opens: None,
            closes,
            late: LatePolicy::Refuse,
            created: 0,
        }
    }

    #[test]
    fn add_list_delete_and_reread_by_another_registry() {
        let dir = tempfile::tempdir().unwrap();
        let a = Registry::new(dir.path());
        let b = Registry::new(dir.path());
        assert!(b.all().is_empty());
        a.add(h("exam1", 100)).unwrap();
        assert!(matches!(
            a.add(h("exam1", 100)),
            Err(RegistryError::Exists(..))
        ));
        assert_eq!(b.get("t", "exam1").unwrap().closes, 100);
        a.delete("t", "exam1").unwrap();
        assert!(b.get("t", "exam1").is_none());
        assert!(matches!(
            a.delete("t", "exam1"),
            Err(RegistryError::Missing(..))
        ));
    }

    #[test]
    fn damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Registry::new(dir.path());
        a.add(h("exam1", 100)).unwrap();
        let p = dir.path().join(REGISTRY_FILE);
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(matches!(a.read(), Err(RegistryError::Damaged(_))));
    }

    #[test]
    fn phases() {
        let mut x = h("e", 100);
        x.opens = Some(50);
        assert_eq!(x.phase(49), Phase::NotYetOpen);
        assert_eq!(x.phase(50), Phase::Open);
        assert_eq!(x.phase(99), Phase::Open);
        assert_eq!(x.phase(100), Phase::Closed);
    }
}
