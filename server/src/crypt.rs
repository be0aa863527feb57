//! Encryption at rest, the server's side: where the master key comes from (file, environment
//! variable, command), where the key store is, and opening it for the engine. The sealing
//! itself is the engine's (`skab_engine::crypt`); design in docs/security.md. And the
//! [`Sealer`] that seals the server's own per-tenant files (user database, audit log,
//! registries, receipts) with the same tenant keys.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use skab_engine::crypt::{KeyStore, MasterKey, TenantKey};

use crate::config::{Config, CryptoConfig};
use crate::limits::{MASTER_KEY_COMMAND_TIMEOUT_S, MASTER_KEY_SOURCE_BYTES_MAX};

/// Where a master key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterSource {
    File(PathBuf),
    Env(String),
    Command(String),
}

impl MasterSource {
    /// The configured source (`crypto.master_key_*`), if any.
    pub fn of(c: &CryptoConfig) -> Option<MasterSource> {
        if let Some(f) = &c.master_key_file {
            return Some(MasterSource::File(f.clone()));
        }
        if let Some(v) = &c.master_key_env {
            return Some(MasterSource::Env(v.clone()));
        }
        c.master_key_command.clone().map(MasterSource::Command)
    }

    /// `file:PATH`, `env:VAR` or `cmd:COMMAND` (for `skab key rotate --new-master-from`).
    pub fn parse(s: &str) -> Result<MasterSource, String> {
        match s.split_once(':') {
            Some(("file", p)) if !p.is_empty() => Ok(MasterSource::File(PathBuf::from(p))),
            Some(("env", v)) if !v.is_empty() => Ok(MasterSource::Env(v.to_string())),
            Some(("cmd", c)) if !c.is_empty() => Ok(MasterSource::Command(c.to_string())),
            _ => Err(format!(
                "{s:?}: a master key source is file:PATH, env:VARIABLE or cmd:COMMAND"
            )),
        }
    }

    /// Reads the key.
    pub fn load(&self) -> Result<MasterKey, String> {
        let (what, text) = match self {
            MasterSource::File(p) => {
                let what = format!("master key file {}", p.display());
                let f = std::fs::File::open(p).map_err(|e| format!("{what}: {e}"))?;
                let mode = f.metadata().map_err(|e| format!("{what}: {e}"))?;
                if std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o077 != 0 {
                    return Err(format!(
                        "{what} may be read by others than its owner: chmod 600 it"
                    ));
                }
                let mut text = String::new();
                f.take(MASTER_KEY_SOURCE_BYTES_MAX as u64)
                    .read_to_string(&mut text)
                    .map_err(|e| format!("{what}: {e}"))?;
                (what, text)
            }
            MasterSource::Env(v) => {
                let what = format!("master key variable {v}");
                let text = std::env::var(v).map_err(|_| format!("{what} is not set"))?;
                (what, text)
            }
            MasterSource::Command(c) => {
                let what = format!("master key command `{c}`");
                (
                    what.clone(),
                    run_command(c).map_err(|e| format!("{what}: {e}"))?,
                )
            }
        };
        if text.len() >= MASTER_KEY_SOURCE_BYTES_MAX {
            return Err(format!("{what}: far longer than a master key"));
        }
        MasterKey::parse(&text).map_err(|e| format!("{what}: {e}"))
    }
}

/// Runs `sh -c command` and returns its standard output; a non-zero exit or a run longer than
/// `MASTER_KEY_COMMAND_TIMEOUT_S` is an error.
fn run_command(command: &str) -> Result<String, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdout = child.stdout.take().ok_or("no standard output")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stdout)
            .take(MASTER_KEY_SOURCE_BYTES_MAX as u64)
            .read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(MASTER_KEY_COMMAND_TIMEOUT_S);
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "did not finish within {MASTER_KEY_COMMAND_TIMEOUT_S} s"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().map_err(|_| "reading its output failed")?;
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    String::from_utf8(out).map_err(|_| "printed something other than text".into())
}

/// The key store's directory: `crypto.key_store`, or `<data_dir>-keys` beside the data dir.
pub fn key_store_dir(config: &Config) -> PathBuf {
    if let Some(k) = &config.crypto.key_store {
        return k.clone();
    }
    let d = &config.data_dir;
    let name = d
        .file_name()
        .map(|n| format!("{}-keys", n.to_string_lossy()))
        .unwrap_or_else(|| "skab-keys".into());
    match d.parent() {
        Some(p) => p.join(name),
        None => PathBuf::from(name),
    }
}

/// Whether the data dir already holds a store (then a missing key store is an error, not
/// something to create).
fn store_exists(config: &Config) -> bool {
    config.data_dir.join("store").join("store.meta").exists()
}

/// The key store for the engine when encryption is on: the master key loaded and checked
/// against the store (created with a new store). `None` when off.
pub fn open_keys(config: &Config) -> Result<Option<Arc<KeyStore>>, String> {
    if !config.crypto.enabled {
        return Ok(None);
    }
    let source = MasterSource::of(&config.crypto)
        .ok_or("crypto.enabled needs a master key source (crypto.master_key_*)")?;
    let master = source.load()?;
    let dir = key_store_dir(config);
    let keys = KeyStore::open(&dir, master, !store_exists(config)).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(keys)))
}

/// Seals the server's own files that hold a tenant's names (the user database, the audit
/// log, the hand-in and space registries, receipt logs and receipt keys) with the tenant's
/// key (`TenantCipher::seal_meta`, the context naming the kind of file and the tenant). One
/// per data dir with `crypto.enabled`, found with [`sealer`]; the key store is opened on
/// first use, so commands that never touch a sealed file need no master key.
pub struct Sealer {
    config: Option<Config>,
    keys: OnceLock<Arc<KeyStore>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

/// The sealers of this process, by data dir (as canonical as it can be made).
static SEALERS: Mutex<Vec<(PathBuf, Arc<Sealer>)>> = Mutex::new(Vec::new());

fn canonical(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Notes that `config`'s data dir seals the server's files (when `crypto.enabled`); the
/// master key is loaded when a sealed file is first read or written.
pub fn register(config: &Config) {
    if !config.crypto.enabled {
        return;
    }
    let dir = canonical(&config.data_dir);
    let mut v = SEALERS.lock();
    if !v.iter().any(|(d, _)| *d == dir) {
        v.push((
            dir,
            Arc::new(Sealer {
                config: Some(config.clone()),
                keys: OnceLock::new(),
            }),
        ));
    }
}

/// As [`register`], with the key store the store was opened with (one cache of keys per
/// process: an erasure through the store is seen by the sealer at once).
pub fn register_keys(data_dir: &Path, keys: Arc<KeyStore>) {
    let dir = canonical(data_dir);
    let mut v = SEALERS.lock();
    match v.iter().find(|(d, _)| *d == dir) {
        Some((_, s)) => {
            let _ = s.keys.set(keys);
        }
        None => {
            let cell = OnceLock::new();
            let _ = cell.set(keys);
            v.push((
                dir,
                Arc::new(Sealer {
                    config: None,
                    keys: cell,
                }),
            ));
        }
    }
}

/// The sealer of `data_dir`, if its files are sealed.
pub fn sealer(data_dir: &Path) -> Option<Arc<Sealer>> {
    let dir = canonical(data_dir);
    SEALERS
        .lock()
        .iter()
        .find(|(d, _)| *d == dir)
        .map(|(_, s)| s.clone())
}

impl Sealer {
    /// A sealer on an open key store (tests).
    pub fn on(keys: Arc<KeyStore>) -> Sealer {
        let cell = OnceLock::new();
        let _ = cell.set(keys);
        Sealer {
            config: None,
            keys: cell,
        }
    }

    fn keys(&self) -> Result<&Arc<KeyStore>, String> {
        if let Some(k) = self.keys.get() {
            return Ok(k);
        }
        let config = self.config.as_ref().ok_or("no key store")?;
        let k = open_keys(config)
            .map_err(|e| format!("encryption at rest: {e}"))?
            .ok_or("encryption at rest is off")?;
        Ok(self.keys.get_or_init(|| k))
    }

    fn context(what: &str, tenant: &str) -> Vec<u8> {
        format!("skab server {what}:{tenant}").into_bytes()
    }

    /// `plain` sealed with `tenant`'s key (made if the tenant has none yet); `what` names
    /// the kind of record and is authenticated. An erased tenant is refused.
    pub fn seal(&self, tenant: &str, what: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
        let c = self
            .keys()?
            .tenant_or_create(tenant)
            .map_err(|e| format!("the key of tenant {tenant}: {e}"))?;
        Ok(c.seal_meta(&Self::context(what, tenant), plain))
    }

    /// Opens what [`Sealer::seal`] sealed: `None` when the tenant's key was erased (its
    /// records are unreadable for good); an error for damaged bytes, another key or kind of
    /// record, or a tenant without a key.
    pub fn open(&self, tenant: &str, what: &str, sealed: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self
            .keys()?
            .tenant(tenant)
            .map_err(|e| format!("the key of tenant {tenant}: {e}"))?
        {
            TenantKey::Live(c) => c
                .open_meta(&Self::context(what, tenant), sealed)
                .map(Some)
                .map_err(|e| format!("{what} of tenant {tenant}: {e}")),
            TenantKey::Erased => Ok(None),
            TenantKey::Missing => Err(format!(
                "{what} of tenant {tenant} is sealed, but the key store has no key of the tenant"
            )),
        }
    }

    /// Destroys `tenant`'s key (`KeyStore::erase`, which this process's cache of keys sees
    /// at once); whether there was a live key.
    pub fn erase(&self, tenant: &str) -> Result<bool, String> {
        self.keys()?.erase(tenant).map_err(|e| e.to_string())
    }

    /// Whether `tenant`'s key was erased.
    pub fn is_erased(&self, tenant: &str) -> Result<bool, String> {
        Ok(matches!(
            self.keys()?
                .tenant(tenant)
                .map_err(|e| format!("the key of tenant {tenant}: {e}"))?,
            TenantKey::Erased
        ))
    }

    /// A file name for `name` of kind `what` that shows nothing of it without the tenant's
    /// key (32 hex digits of a keyed hash), the same every time.
    pub fn name_tag(&self, tenant: &str, what: &str, name: &str) -> Result<String, String> {
        let c = self
            .keys()?
            .tenant_or_create(tenant)
            .map_err(|e| format!("the key of tenant {tenant}: {e}"))?;
        Ok(hex::encode(
            &c.name_tag(&Self::context(what, tenant), name.as_bytes())[..16],
        ))
    }
}

/// Writes a new random master key to `path` (mode 0600; an existing file is refused).
pub fn generate(path: &Path) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let hex = MasterKey::generate_hex().map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(format!("{hex}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_load() {
        assert_eq!(
            MasterSource::parse("file:/k").unwrap(),
            MasterSource::File("/k".into())
        );
        assert!(MasterSource::parse("http://x").is_err());
        assert!(MasterSource::parse("env:").is_err());
        let key = "ab".repeat(32);
        assert!(MasterSource::Command(format!("echo {key}")).load().is_ok());
        let e = MasterSource::Command("exit 3".into()).load().unwrap_err();
        assert!(e.contains("exited"), "{e}");
        let e = MasterSource::Command("echo short".into())
            .load()
            .unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.key");
        generate(&p).unwrap();
        assert!(generate(&p).is_err(), "never overwrites a key");
        assert!(MasterSource::File(p.clone()).load().is_ok());
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let e = MasterSource::File(p).load().unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn the_key_store_sits_beside_the_data_dir() {
        let c = Config {
            data_dir: PathBuf::from("/srv/skab-data"),
            ..Config::default()
        };
        assert_eq!(key_store_dir(&c), PathBuf::from("/srv/skab-data-keys"));
    }
}
