//! Live WebDAV locks kept across a graceful restart: saved at shutdown, taken back (and the
//! file removed) at the next start. A crash loses them, as it always did. Written through the
//! engine's `Storage` (`io::durable`), which the crash and fault-injection tests reach.

use std::io;

use skab_engine::io::{durable, Storage};

use serde::{Deserialize, Serialize};

use super::locks::{LockManager, SavedLock};
use crate::limits::LOCK_FILE_LEN_MAX;

/// The file in the data dir.
pub const LOCK_FILE: &str = "locks.saved";
const MAGIC: &[u8; 8] = b"SKABLCK1";
/// With encryption at rest: the same frame, each lock sealed with its tenant's key.
const MAGIC_SEALED: &[u8; 8] = b"SKABLCK2";
/// What a sealed lock's context names (docs/security.md).
const SEAL_CONTEXT: &str = "saved lock";
/// Magic, payload length (u64 LE), CRC32C of the payload (u32 LE).
const HEADER_LEN: usize = 8 + 8 + 4;

#[derive(Serialize, Deserialize)]
struct Saved {
    saved_at_unix_ms: u64,
    locks: Vec<SavedLock>,
}

/// [`Saved`] with encryption at rest: the tenant in the clear, the lock (its paths, owner and
/// principal) sealed with the tenant's key.
#[derive(Serialize, Deserialize)]
struct SavedSealed {
    saved_at_unix_ms: u64,
    locks: Vec<(String, Vec<u8>)>,
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes every live lock to the data dir's storage (atomically and durably: temp file,
/// fdatasync, rename, directory sync). Returns how many; with none, writes nothing. With an
/// encrypted `store`, each lock is sealed with its tenant's key.
pub fn save(
    storage: &dyn Storage,
    locks: &LockManager,
    store: Option<&skab_engine::Store>,
) -> io::Result<usize> {
    let list = locks.export();
    if list.is_empty() {
        return Ok(0);
    }
    let n = list.len();
    let (magic, payload) = match store.filter(|s| s.is_encrypted()) {
        None => (
            MAGIC,
            postcard::to_allocvec(&Saved {
                saved_at_unix_ms: now_unix_ms(),
                locks: list,
            })
            .map_err(io::Error::other)?,
        ),
        Some(store) => {
            let mut sealed = Vec::with_capacity(list.len());
            for l in list {
                let plain = postcard::to_allocvec(&l).map_err(io::Error::other)?;
                // A tenant erased meanwhile has no key: its lock goes.
                if let Ok(Some(s)) = store.seal_for_tenant(&l.tenant, SEAL_CONTEXT, &plain) {
                    sealed.push((l.tenant.clone(), s));
                }
            }
            let saved = SavedSealed {
                saved_at_unix_ms: now_unix_ms(),
                locks: sealed,
            };
            (
                MAGIC_SEALED,
                postcard::to_allocvec(&saved).map_err(io::Error::other)?,
            )
        }
    };
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    durable::replace_file(storage, LOCK_FILE, &bytes)?;
    Ok(n)
}

/// Takes back the locks a graceful shutdown saved, less the time since, and removes the file
/// (a later crash must not bring back locks released meanwhile). Returns how many were restored;
/// a damaged file is removed and reported as an error. Sealed locks need the encrypted
/// `store`; those of a tenant erased since are dropped.
pub fn load(
    storage: &dyn Storage,
    locks: &LockManager,
    store: Option<&skab_engine::Store>,
) -> Result<usize, String> {
    let read = durable::read_file(storage, LOCK_FILE, LOCK_FILE_LEN_MAX);
    if matches!(read, Ok(None)) {
        return Ok(0);
    }
    durable::remove_file(storage, LOCK_FILE).map_err(|e| format!("{LOCK_FILE}: {e}"))?;
    let bytes = match read {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(0),
        Err(e) => return Err(format!("{LOCK_FILE}: {e}: not read")),
    };
    let saved = decode(&bytes, store).map_err(|why| format!("{LOCK_FILE}: {why}"))?;
    let elapsed = now_unix_ms().saturating_sub(saved.saved_at_unix_ms);
    Ok(locks.restore(saved.locks, std::time::Duration::from_millis(elapsed)))
}

fn decode(bytes: &[u8], store: Option<&skab_engine::Store>) -> Result<Saved, &'static str> {
    let header = bytes.get(..HEADER_LEN).ok_or("too short")?;
    let sealed = &header[..8] == MAGIC_SEALED;
    if &header[..8] != MAGIC && !sealed {
        return Err("not a skab lock file (bad magic)");
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&header[8..16]);
    let mut crc4 = [0u8; 4];
    crc4.copy_from_slice(&header[16..20]);
    let payload = &bytes[HEADER_LEN..];
    if u64::from_le_bytes(len8) != payload.len() as u64 {
        return Err("length does not match");
    }
    if crc32c::crc32c(payload) != u32::from_le_bytes(crc4) {
        return Err("checksum mismatch");
    }
    if !sealed {
        return postcard::from_bytes(payload).map_err(|_| "does not decode");
    }
    let store = store
        .filter(|s| s.is_encrypted())
        .ok_or("sealed locks, but encryption at rest is off")?;
    let s: SavedSealed = postcard::from_bytes(payload).map_err(|_| "does not decode")?;
    let mut locks = Vec::with_capacity(s.locks.len());
    for (tenant, sealed) in s.locks {
        // An erased tenant's lock (or a damaged one) is dropped, not the others.
        let Ok(plain) = store.open_for_tenant(&tenant, SEAL_CONTEXT, &sealed) else {
            continue;
        };
        match postcard::from_bytes::<SavedLock>(&plain) {
            Ok(l) if l.tenant == tenant => locks.push(l),
            _ => return Err("a sealed lock does not decode"),
        }
    }
    Ok(Saved {
        saved_at_unix_ms: s.saved_at_unix_ms,
        locks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::locks::{LockConfig, LockDepth, LockRequest, LockScope};
    use crate::dav::path::{SpaceKey, SpacePath};
    use std::time::Duration;

    fn space() -> SpaceKey {
        SpaceKey {
            tenant: "skole".into(),
            user: "anna".into(),
        }
    }

    #[test]
    fn saved_locks_come_back_once_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = skab_engine::io::StdStorage::new(dir.path()).unwrap();
        let before = LockManager::new(LockConfig::default());
        let path = SpacePath::from_segments(["docs", "essay.docx"]).unwrap();
        let info = before
            .lock(
                &space(),
                LockRequest {
                    path: &path,
                    scope: LockScope::Exclusive,
                    depth: LockDepth::Zero,
                    timeout: Duration::from_secs(600),
                    owner: Some("<D:href>anna</D:href>".into()),
                    principal: "anna@skole",
                    resource_exists: true,
                },
            )
            .unwrap();
        assert_eq!(save(&storage, &before, None).unwrap(), 1);
        let after = LockManager::new(LockConfig::default());
        assert_eq!(load(&storage, &after, None).unwrap(), 1);
        let got = after.get(&space(), &info.token).unwrap();
        assert_eq!(
            (got.root, got.scope, got.depth),
            (path.clone(), info.scope, info.depth)
        );
        assert_eq!(got.owner, info.owner);
        assert_eq!(got.principal, "anna@skole");
        assert!(
            got.remaining <= Duration::from_secs(600) && got.remaining > Duration::from_secs(590)
        );
        // Taken once: the file is gone, a second start restores nothing.
        assert!(!dir.path().join(LOCK_FILE).exists());
        assert_eq!(
            load(&storage, &LockManager::new(LockConfig::default()), None).unwrap(),
            0
        );
        // A flipped byte is refused (and the file removed), never half-applied.
        save(&storage, &after, None).unwrap();
        let f = dir.path().join(LOCK_FILE);
        let mut bytes = std::fs::read(&f).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&f, &bytes).unwrap();
        let fresh = LockManager::new(LockConfig::default());
        assert!(load(&storage, &fresh, None)
            .unwrap_err()
            .contains("checksum"));
        assert_eq!(fresh.total(), 0);
        assert!(!f.exists());
    }

    #[test]
    fn a_crash_or_a_failed_sync_during_save_never_leaves_a_torn_file() {
        use skab_engine::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage};
        use std::sync::Arc;
        let locks = LockManager::new(LockConfig::default());
        let path = SpacePath::from_segments(["a.odt"]).unwrap();
        locks
            .lock(
                &space(),
                LockRequest {
                    path: &path,
                    scope: LockScope::Exclusive,
                    depth: LockDepth::Zero,
                    timeout: Duration::from_secs(600),
                    owner: None,
                    principal: "anna@skole",
                    resource_exists: true,
                },
            )
            .unwrap();
        for nth in 1..=3 {
            let mem = Arc::new(MemStorage::new());
            let plan = FaultPlan::new();
            plan.fail_nth_sync(nth);
            let faulty = FaultyStorage::new(mem.clone(), plan);
            let saved = save(&faulty, &locks, None);
            for mode in [CrashMode::DurableOnly, CrashMode::TornTail { seed: nth }] {
                let after = mem.crash(mode);
                let fresh = LockManager::new(LockConfig::default());
                // Either the whole save is there or none of it: never an error from a torn file.
                let n = load(&after, &fresh, None).unwrap();
                assert!(
                    n == 0 || (n == 1 && saved.is_ok()),
                    "sync {nth}: {n} restored"
                );
            }
        }
    }

    #[test]
    fn time_since_the_save_counts_and_expired_locks_stay_gone() {
        let m = LockManager::new(LockConfig::default());
        let path = SpacePath::from_segments(["a"]).unwrap();
        let mut saved = SavedLock {
            tenant: "skole".into(),
            user: "anna".into(),
            token: "opaquelocktoken:00000000-0000-4000-8000-000000000001".into(),
            root: vec!["a".into()],
            exclusive: true,
            infinity: false,
            owner: None,
            principal: "anna@skole".into(),
            timeout_s: 600,
            remaining_ms: 100_000,
            created_resource: false,
        };
        assert_eq!(m.restore(vec![saved.clone()], Duration::from_secs(100)), 0);
        let left = m.restore(vec![saved.clone()], Duration::from_secs(40));
        assert_eq!(left, 1);
        let got = m.get(&space(), &saved.token).unwrap();
        assert!(got.remaining <= Duration::from_secs(60));
        assert_eq!(m.locks_covering(&space(), &path).len(), 1);
        // A second exclusive lock on the same root conflicts; a malformed one is skipped.
        saved.token = "opaquelocktoken:00000000-0000-4000-8000-000000000002".into();
        assert_eq!(m.restore(vec![saved.clone()], Duration::ZERO), 0);
        saved.root = vec!["..".into()];
        saved.exclusive = false;
        assert_eq!(m.restore(vec![saved], Duration::ZERO), 0);
        assert_eq!(m.total(), 1);
    }
}
