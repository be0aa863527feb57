//! The key store: one small file per tenant holding its data key wrapped by the master key,
//! apart from the data dir, written durably; erasure (a tombstone in place of the key) and
//! master-key rotation (rewrapping, crash-safe). Format: `docs/formats.md`, "Key store".

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use ring::hkdf;
use ring::rand::SecureRandom;

use super::seal::{TenantCipher, META_SALT_LEN, SEAL_TAG_LEN};
use crate::error::{Error, Result};

/// Magic of `master.check`.
pub const CHECK_MAGIC: &[u8; 8] = b"SKABMCK1";
/// Magic of a tenant's key file.
pub const KEY_MAGIC: &[u8; 8] = b"SKABTKY1";
/// Bytes of a master key's fingerprint in the files.
pub const FINGERPRINT_LEN: usize = 8;
/// Bytes of one wrap: fingerprint, salt, sealed 32-byte value, tag.
pub const WRAP_LEN: usize = FINGERPRINT_LEN + META_SALT_LEN + 32 + SEAL_TAG_LEN;
/// Most wraps in one file: the current master key and, during a rotation, the next one.
pub const WRAPS_MAX: usize = 2;
/// Key file state: a live key.
const STATE_LIVE: u8 = 1;
/// Key file state: erased (no key bytes remain).
const STATE_ERASED: u8 = 2;
/// What `master.check` wraps (a known value: opening it proves the master key).
const CHECK_VALUE: [u8; 32] = *b"skab master key check value v1\0\0";

/// A master key: the key that wraps the tenants' keys (256 bits, given as 64 hex digits).
pub struct MasterKey {
    wrapper: TenantCipher,
    fingerprint: [u8; FINGERPRINT_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(fingerprint {})", self.fingerprint_hex())
    }
}

struct Len8;
impl hkdf::KeyType for Len8 {
    fn len(&self) -> usize {
        FINGERPRINT_LEN
    }
}

impl MasterKey {
    /// Parses a master key: 64 hex digits, surrounding white space ignored.
    pub fn parse(text: &str) -> std::result::Result<MasterKey, String> {
        let t = text.trim();
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "a master key is 64 hex digits (256 bits); this one has {} characters{}",
                t.len(),
                if t.bytes().all(|b| b.is_ascii_hexdigit()) {
                    ""
                } else {
                    " and not only hex digits"
                }
            ));
        }
        let mut raw = [0u8; 32];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        let key = MasterKey::from_bytes(&raw);
        raw.fill(0);
        Ok(key)
    }

    /// The master key with these 32 bytes.
    pub fn from_bytes(raw: &[u8; 32]) -> MasterKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"skab 2026-12 master key v1").extract(raw);
        let mut fingerprint = [0u8; FINGERPRINT_LEN];
        let info = [&b"fingerprint"[..]];
        if prk
            .expand(&info, Len8)
            .and_then(|o| o.fill(&mut fingerprint))
            .is_err()
        {
            unreachable!("HKDF expand of 8 bytes failed");
        }
        MasterKey {
            wrapper: TenantCipher::new(raw),
            fingerprint,
        }
    }

    /// A new random master key as 64 hex digits (for `skab key generate` and first starts).
    pub fn generate_hex() -> Result<String> {
        let mut raw = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| Error::Key("the system random generator failed".into()))?;
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        raw.fill(0);
        Ok(hex)
    }

    /// The fingerprint (not secret: names which master key wrapped a file).
    pub fn fingerprint_hex(&self) -> String {
        self.fingerprint
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn wrap(&self, context: &[u8], value: &[u8; 32]) -> [u8; WRAP_LEN] {
        let sealed = self.wrapper.seal_meta(context, value);
        let mut out = [0u8; WRAP_LEN];
        out[..FINGERPRINT_LEN].copy_from_slice(&self.fingerprint);
        out[FINGERPRINT_LEN..].copy_from_slice(&sealed);
        out
    }

    /// The value of the wrap made by this key among `wraps`; `None` if none is by this key,
    /// `Err` if one claims to be and does not open (damage).
    fn unwrap(&self, context: &[u8], wraps: &[[u8; WRAP_LEN]]) -> Result<Option<[u8; 32]>> {
        let Some(w) = wraps
            .iter()
            .find(|w| w[..FINGERPRINT_LEN] == self.fingerprint)
        else {
            return Ok(None);
        };
        let plain = self
            .wrapper
            .open_meta(context, &w[FINGERPRINT_LEN..])
            .map_err(|_| Error::Key("a key wrap does not open: damaged key store file".into()))?;
        let v: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::Key("a key wrap holds a value of the wrong size".into()))?;
        Ok(Some(v))
    }
}

/// A tenant's key as the key store has it.
#[derive(Clone, Debug)]
pub enum TenantKey {
    Live(Arc<TenantCipher>),
    /// Destroyed by `skab tenant erase`: the tenant's data is unreadable for good.
    Erased,
    /// The key store has no file for the tenant.
    Missing,
}

/// A key file or `master.check`, parsed.
struct KeyFile {
    state: u8,
    wraps: Vec<[u8; WRAP_LEN]>,
}

fn encode(magic: &[u8; 8], f: &KeyFile) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 2 + f.wraps.len() * WRAP_LEN + 4);
    out.extend_from_slice(magic);
    out.push(f.state);
    out.push(f.wraps.len() as u8);
    for w in &f.wraps {
        out.extend_from_slice(w);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode(magic: &[u8; 8], b: &[u8], name: &Path) -> Result<KeyFile> {
    let bad = |why: &str| Error::Key(format!("{}: {why}", name.display()));
    if b.len() < 14 || &b[..8] != magic {
        return Err(bad("not a key store file (bad magic or too short)"));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().map_err(|_| bad("crc"))?) {
        return Err(bad("checksum mismatch"));
    }
    let state = body[8];
    let n = body[9] as usize;
    if n > WRAPS_MAX || body.len() != 10 + n * WRAP_LEN {
        return Err(bad("wrong length"));
    }
    if !matches!(state, STATE_LIVE | STATE_ERASED) || (state == STATE_ERASED && n != 0) {
        return Err(bad("unknown state"));
    }
    let wraps = body[10..]
        .chunks_exact(WRAP_LEN)
        .map(|c| c.try_into().map_err(|_| bad("wrap")))
        .collect::<Result<Vec<_>>>()?;
    Ok(KeyFile { state, wraps })
}

/// Writes `name` in `dir` atomically and durably: temporary file, fsync, rename, directory
/// fsync. Mode 0600.
fn write_durable(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn tenant_context(tenant: &str) -> Vec<u8> {
    format!("skab tenant key:{tenant}").into_bytes()
}
const CHECK_CONTEXT: &[u8] = b"skab master check";

/// An exclusive lock on the key store (creating, erasing and rotating keys take it, so a
/// rotation never misses a key created meanwhile).
struct DirLock(File);

impl DirLock {
    fn take(dir: &Path) -> Result<DirLock> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dir.join("lock"))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(DirLock(f))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // SAFETY: unlocking a descriptor we own (closing would release it too).
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The tenants' keys under one master key. Keys are read from their files once and kept.
pub struct KeyStore {
    dir: PathBuf,
    master: MasterKey,
    cache: Mutex<HashMap<String, TenantKey>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyStore({}, {:?})", self.dir.display(), self.master)
    }
}

/// What a rotation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotateReport {
    pub tenants_rewrapped: usize,
    pub tenants_erased: usize,
}

impl KeyStore {
    /// Opens the key store at `dir` with `master`. A missing store is created (directory
    /// 0700, `master.check` for this key) when `create` is set; a master key that is not the
    /// store's is refused.
    pub fn open(dir: &Path, master: MasterKey, create: bool) -> Result<KeyStore> {
        let check = dir.join("master.check");
        match fs::read(&check) {
            Ok(b) => {
                let f = decode(CHECK_MAGIC, &b, &check)?;
                match master.unwrap(CHECK_CONTEXT, &f.wraps) {
                    Ok(Some(v)) if v == CHECK_VALUE => {}
                    _ => {
                        return Err(Error::Key(format!(
                            "the master key (fingerprint {}) is not the key of the key store {}: \
                             refusing to start (wrong key, or a rotation to another key completed)",
                            master.fingerprint_hex(),
                            dir.display()
                        )))
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                fs::create_dir_all(dir.join("tenants"))?;
                fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
                let _l = DirLock::take(dir)?;
                let f = KeyFile {
                    state: STATE_LIVE,
                    wraps: vec![master.wrap(CHECK_CONTEXT, &CHECK_VALUE)],
                };
                write_durable(dir, "master.check", &encode(CHECK_MAGIC, &f))?;
                if let Some(parent) = dir.parent() {
                    let _ = File::open(parent).and_then(|d| d.sync_all());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Key(format!(
                    "no key store at {} (its master.check is missing)",
                    dir.display()
                )))
            }
            Err(e) => return Err(e.into()),
        }
        fs::create_dir_all(dir.join("tenants"))?;
        Ok(KeyStore {
            dir: dir.to_path_buf(),
            master,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn key_path(dir: &Path, tenant: &str) -> PathBuf {
        dir.join("tenants").join(format!("{tenant}.key"))
    }

    fn read_file(dir: &Path, tenant: &str) -> Result<Option<KeyFile>> {
        crate::validate_account_name(tenant)?;
        let path = Self::key_path(dir, tenant);
        match fs::read(&path) {
            Ok(b) => decode(KEY_MAGIC, &b, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Tenant `tenant`'s key.
    pub fn tenant(&self, tenant: &str) -> Result<TenantKey> {
        if let Some(k) = self.cache.lock().get(tenant) {
            return Ok(k.clone());
        }
        let key = match Self::read_file(&self.dir, tenant)? {
            None => return Ok(TenantKey::Missing),
            Some(f) if f.state == STATE_ERASED => TenantKey::Erased,
            Some(f) => match self.master.unwrap(&tenant_context(tenant), &f.wraps)? {
                Some(mut raw) => {
                    let c = TenantCipher::new(&raw);
                    raw.fill(0);
                    TenantKey::Live(Arc::new(c))
                }
                None => {
                    return Err(Error::Key(format!(
                        "the key of tenant {tenant} is not wrapped by this master key: a \
                         `skab key rotate` was interrupted; run it again with the same keys"
                    )))
                }
            },
        };
        self.cache.lock().insert(tenant.to_string(), key.clone());
        Ok(key)
    }

    /// Tenant `tenant`'s key, created (random, written durably) if it has none. An erased
    /// tenant's name is refused: its old records must stay unreadable, not be read with a
    /// new key.
    pub fn tenant_or_create(&self, tenant: &str) -> Result<Arc<TenantCipher>> {
        match self.tenant(tenant)? {
            TenantKey::Live(c) => return Ok(c),
            TenantKey::Erased => return Err(erased(tenant)),
            TenantKey::Missing => {}
        }
        let _l = DirLock::take(&self.dir)?;
        // Another process may have created it since.
        self.cache.lock().remove(tenant);
        match self.tenant(tenant)? {
            TenantKey::Live(c) => return Ok(c),
            TenantKey::Erased => return Err(erased(tenant)),
            TenantKey::Missing => {}
        }
        // A rotation takes the same lock, so none runs now; but one may have finished since
        // this store opened, and a key wrapped by the old master key only would be lost to
        // the new one.
        let check_path = self.dir.join("master.check");
        let check = decode(CHECK_MAGIC, &fs::read(&check_path)?, &check_path)?;
        if !matches!(self.master.unwrap(CHECK_CONTEXT, &check.wraps), Ok(Some(v)) if v == CHECK_VALUE)
        {
            return Err(Error::Key(
                "the master key was rotated since this process started: restart it with the new key"
                    .into(),
            ));
        }
        let mut raw = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| Error::Key("the system random generator failed".into()))?;
        let f = KeyFile {
            state: STATE_LIVE,
            wraps: vec![self.master.wrap(&tenant_context(tenant), &raw)],
        };
        write_durable(
            &self.dir.join("tenants"),
            &format!("{tenant}.key"),
            &encode(KEY_MAGIC, &f),
        )?;
        let c = Arc::new(TenantCipher::new(&raw));
        raw.fill(0);
        self.cache
            .lock()
            .insert(tenant.to_string(), TenantKey::Live(c.clone()));
        Ok(c)
    }

    /// Destroys tenant `tenant`'s key: its file is replaced by a tombstone (atomically,
    /// durably). Needs no master key. Returns whether there was a live key.
    pub fn erase_at(dir: &Path, tenant: &str) -> Result<bool> {
        let _l = DirLock::take(dir)?;
        let was_live = matches!(Self::read_file(dir, tenant)?, Some(f) if f.state == STATE_LIVE);
        let f = KeyFile {
            state: STATE_ERASED,
            wraps: Vec::new(),
        };
        write_durable(
            &dir.join("tenants"),
            &format!("{tenant}.key"),
            &encode(KEY_MAGIC, &f),
        )?;
        Ok(was_live)
    }

    /// [`KeyStore::erase_at`] on this store, and the key dropped from memory.
    pub fn erase(&self, tenant: &str) -> Result<bool> {
        let was = Self::erase_at(&self.dir, tenant)?;
        self.cache
            .lock()
            .insert(tenant.to_string(), TenantKey::Erased);
        Ok(was)
    }

    /// Rewraps every tenant key from `old` to `new` without touching data. Crash-safe: at
    /// every point each key file holds a wrap by `old` or by `new` (or both), and one of the
    /// two keys opens the whole store; running it again with the same keys finishes it.
    /// Steps: check file accepts both; each key file gets both wraps; check file accepts
    /// `new` only; each key file keeps the `new` wrap only. `steps_max` stops after that
    /// many file writes (tests simulate a crash with it).
    pub fn rotate(
        dir: &Path,
        old: &MasterKey,
        new: &MasterKey,
        steps_max: Option<usize>,
    ) -> Result<RotateReport> {
        let _l = DirLock::take(dir)?;
        let mut steps = 0usize;
        let mut step = |dir: &Path, name: &str, bytes: &[u8]| -> Result<()> {
            if steps_max.is_some_and(|m| steps >= m) {
                return Err(Error::Key("rotation stopped (simulated crash)".into()));
            }
            write_durable(dir, name, bytes)?;
            steps += 1;
            Ok(())
        };
        let check_path = dir.join("master.check");
        let check = decode(CHECK_MAGIC, &fs::read(&check_path)?, &check_path)?;
        let opens = |k: &MasterKey| matches!(k.unwrap(CHECK_CONTEXT, &check.wraps), Ok(Some(v)) if v == CHECK_VALUE);
        if !opens(old) && !opens(new) {
            return Err(Error::Key(format!(
                "neither key opens the key store {} (current key fingerprint {})",
                dir.display(),
                old.fingerprint_hex()
            )));
        }
        let both = KeyFile {
            state: STATE_LIVE,
            wraps: vec![
                old.wrap(CHECK_CONTEXT, &CHECK_VALUE),
                new.wrap(CHECK_CONTEXT, &CHECK_VALUE),
            ],
        };
        step(dir, "master.check", &encode(CHECK_MAGIC, &both))?;
        let tenants_dir = dir.join("tenants");
        let mut names = Vec::new();
        for e in fs::read_dir(&tenants_dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(t) = name.strip_suffix(".key") {
                names.push(t.to_string());
            }
        }
        names.sort();
        let mut report = RotateReport::default();
        let mut raws = Vec::new();
        for t in &names {
            let Some(f) = Self::read_file(dir, t)? else {
                continue;
            };
            if f.state == STATE_ERASED {
                report.tenants_erased += 1;
                continue;
            }
            let ctx = tenant_context(t);
            let raw = match new.unwrap(&ctx, &f.wraps)? {
                Some(r) => r,
                None => old.unwrap(&ctx, &f.wraps)?.ok_or_else(|| {
                    Error::Key(format!("tenant {t}'s key is wrapped by neither key"))
                })?,
            };
            let both = KeyFile {
                state: STATE_LIVE,
                wraps: vec![old.wrap(&ctx, &raw), new.wrap(&ctx, &raw)],
            };
            step(&tenants_dir, &format!("{t}.key"), &encode(KEY_MAGIC, &both))?;
            raws.push((t.clone(), raw));
        }
        let only_new = KeyFile {
            state: STATE_LIVE,
            wraps: vec![new.wrap(CHECK_CONTEXT, &CHECK_VALUE)],
        };
        step(dir, "master.check", &encode(CHECK_MAGIC, &only_new))?;
        for (t, raw) in &mut raws {
            let f = KeyFile {
                state: STATE_LIVE,
                wraps: vec![new.wrap(&tenant_context(t), raw)],
            };
            raw.fill(0);
            step(&tenants_dir, &format!("{t}.key"), &encode(KEY_MAGIC, &f))?;
            report.tenants_rewrapped += 1;
        }
        Ok(report)
    }
}

fn erased(tenant: &str) -> Error {
    Error::Key(format!(
        "tenant {tenant} was erased (its key destroyed); the name cannot be used again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> MasterKey {
        MasterKey::from_bytes(&[n; 32])
    }

    #[test]
    fn wrong_master_key_is_refused_and_keys_survive_a_reopen() {
        let d = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(d.path(), key(1), true).unwrap();
        let a = ks.tenant_or_create("school-a").unwrap();
        let id = crate::ChunkId([5; 32]);
        let sealed = a.seal_chunk(&id, b"hello");
        drop(ks);
        let e = KeyStore::open(d.path(), key(2), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not the key of the key store"), "{e}");
        let ks = KeyStore::open(d.path(), key(1), false).unwrap();
        let TenantKey::Live(a2) = ks.tenant("school-a").unwrap() else {
            panic!("not live")
        };
        assert_eq!(a2.open_chunk(&id, &sealed).unwrap(), b"hello");
        assert!(matches!(ks.tenant("school-b").unwrap(), TenantKey::Missing));
        assert!(KeyStore::open(&d.path().join("nope"), key(1), false).is_err());
        let mode = fs::metadata(KeyStore::key_path(d.path(), "school-a")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
    }

    #[test]
    fn parse_takes_64_hex_digits_only() {
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse(&format!(" {}\n", "0F".repeat(32))).is_ok());
        assert!(MasterKey::parse("abc")
            .unwrap_err()
            .contains("64 hex digits"));
        assert!(MasterKey::parse(&"zz".repeat(32)).is_err());
        assert_eq!(MasterKey::generate_hex().unwrap().len(), 64);
    }

    #[test]
    fn erase_leaves_a_tombstone_and_refuses_the_name() {
        let d = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(d.path(), key(1), true).unwrap();
        ks.tenant_or_create("a").unwrap();
        ks.tenant_or_create("b").unwrap();
        assert!(KeyStore::erase_at(d.path(), "a").unwrap());
        let ks = KeyStore::open(d.path(), key(1), false).unwrap();
        assert!(matches!(ks.tenant("a").unwrap(), TenantKey::Erased));
        assert!(matches!(ks.tenant("b").unwrap(), TenantKey::Live(_)));
        assert!(ks.tenant_or_create("a").is_err());
        let bytes = fs::read(KeyStore::key_path(d.path(), "a")).unwrap();
        assert_eq!(bytes.len(), 14, "a tombstone holds no key bytes");
    }

    /// A crash after any number of file writes of a rotation leaves every key wrapped by the
    /// old or the new master key (never neither), one of the two opens the whole store, and
    /// running the rotation again finishes it.
    #[test]
    fn rotation_interrupted_at_every_step_recovers() {
        let tenants = ["t1", "t2", "t3"];
        let mut steps_total = None;
        for stop in 0.. {
            let d = tempfile::tempdir().unwrap();
            let ks = KeyStore::open(d.path(), key(1), true).unwrap();
            let id = crate::ChunkId([7; 32]);
            let sealed: Vec<Vec<u8>> = tenants
                .iter()
                .map(|t| {
                    ks.tenant_or_create(t)
                        .unwrap()
                        .seal_chunk(&id, t.as_bytes())
                })
                .collect();
            KeyStore::erase_at(d.path(), "t2").unwrap();
            drop(ks);
            let r = KeyStore::rotate(d.path(), &key(1), &key(2), Some(stop));
            if r.is_ok() {
                steps_total = Some(stop);
                break;
            }
            // Some key opens everything.
            let whole = |k: u8| {
                KeyStore::open(d.path(), key(k), false)
                    .is_ok_and(|ks| tenants.iter().all(|t| ks.tenant(t).is_ok()))
            };
            assert!(
                whole(1) || whole(2),
                "stop {stop}: neither key opens the store"
            );
            // Every key file has a wrap by one of them.
            for t in ["t1", "t3"] {
                let f = KeyStore::read_file(d.path(), t).unwrap().unwrap();
                let ctx = tenant_context(t);
                assert!(
                    key(1).unwrap(&ctx, &f.wraps).unwrap().is_some()
                        || key(2).unwrap(&ctx, &f.wraps).unwrap().is_some(),
                    "stop {stop}: {t} lost its key"
                );
            }
            // Finishing it.
            let rep = KeyStore::rotate(d.path(), &key(1), &key(2), None).unwrap();
            assert_eq!(rep.tenants_rewrapped, 2);
            assert!(KeyStore::open(d.path(), key(1), false).is_err());
            let ks = KeyStore::open(d.path(), key(2), false).unwrap();
            for (i, t) in tenants.iter().enumerate() {
                match ks.tenant(t).unwrap() {
                    TenantKey::Live(c) => {
                        assert_eq!(c.open_chunk(&id, &sealed[i]).unwrap(), t.as_bytes())
                    }
                    TenantKey::Erased => assert_eq!(*t, "t2"),
                    TenantKey::Missing => panic!("{t} missing"),
                }
            }
        }
        assert_eq!(steps_total, Some(6), "check, 2 keys, check, 2 keys");
    }
}
