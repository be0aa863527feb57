//! Hand-in receipts: what the server signs for each accepted upload (Ed25519, one key per
//! tenant kept in the data dir), their text form, offline verification, the BLAKE3 of an
//! upload taken as it streams in, and the per-hand-in log that keeps every receipt.
//! Format: `docs/handin.md`, "Receipts".

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use futures::Stream;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::limits::RECEIPT_LEN_MAX;

/// Every receipt starts with this (the format's version is in it).
pub const RECEIPT_PREFIX: &str = "skab-receipt-1.";
/// A public key's text form starts with this.
pub const PUBLIC_KEY_PREFIX: &str = "skab-ed25519:";
/// The response header that carries the receipt.
pub const RECEIPT_HEADER: &str = "skab-receipt";
/// Folder of the tenants' signing keys in the data dir.
pub const KEY_DIR: &str = "receipt-keys";
/// Folder of the receipt logs in the data dir (`<tenant>/<handin>.log`).
pub const LOG_DIR: &str = "handin-receipts";
/// The lock file in [`KEY_DIR`] held while a key is made, so that two processes agree on it.
const KEY_LOCK_FILE: &str = "keys.lock";
const KEY_MAGIC: &[u8; 8] = b"SKABRK01";
/// A key file whose seed is sealed with the tenant's key (encryption at rest).
const SEALED_KEY_MAGIC: &[u8; 8] = b"SKABRK02";
/// What sealed receipt keys and receipt log lines are (authenticated with them).
const SEAL_WHAT_KEY: &str = "receipt key";
const SEAL_WHAT_LOG: &str = "receipt log";
/// Start of a sealed receipt log line (then the sealed receipt in standard base64).
const SEALED_LINE_PREFIX: &str = "sealed:";
/// Magic, the 32-byte Ed25519 seed, CRC32C of the seed (u32 LE).
const KEY_FILE_LEN: usize = 8 + 32 + 4;

/// What a receipt states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub tenant: String,
    pub handin: String,
    pub user: String,
    /// The file's path inside the pupil's hand-in folder.
    pub file: String,
    pub size: u64,
    /// BLAKE3 of the content, hex.
    pub blake3: String,
    /// When the server accepted it (RFC 3339, UTC, milliseconds).
    pub time: String,
    pub late: bool,
}

/// Why a receipt does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    #[error("not a skab receipt (it starts with {RECEIPT_PREFIX})")]
    Format,
    #[error("receipt longer than {RECEIPT_LEN_MAX} bytes")]
    TooLong,
    #[error("the signature does not match: the receipt was altered or signed by another key")]
    BadSignature,
    #[error("not a skab public key (it starts with {PUBLIC_KEY_PREFIX})")]
    KeyFormat,
}

/// The receipt as text: prefix, base64url JSON, `.`, base64url signature of all before it.
pub fn sign(key: &SigningKey, r: &Receipt) -> String {
    // Serializing a struct of strings, numbers and a bool cannot fail.
    let json = serde_json::to_vec(r).unwrap_or_default();
    let mut text = String::with_capacity(RECEIPT_PREFIX.len() + json.len() * 2 + 90);
    text.push_str(RECEIPT_PREFIX);
    B64.encode_string(&json, &mut text);
    let sig = key.sign(text.as_bytes());
    text.push('.');
    B64.encode_string(sig.to_bytes(), &mut text);
    text
}

/// Checks `text` against `key`; what it states when the signature holds.
pub fn verify(text: &str, key: &VerifyingKey) -> Result<Receipt, ReceiptError> {
    let text = text.trim();
    if text.len() > RECEIPT_LEN_MAX {
        return Err(ReceiptError::TooLong);
    }
    let body = text
        .strip_prefix(RECEIPT_PREFIX)
        .ok_or(ReceiptError::Format)?;
    let (payload, sig) = body.rsplit_once('.').ok_or(ReceiptError::Format)?;
    let sig: [u8; 64] = B64
        .decode(sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(ReceiptError::Format)?;
    let signed = &text[..RECEIPT_PREFIX.len() + payload.len()];
    key.verify(signed.as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| ReceiptError::BadSignature)?;
    let json = B64.decode(payload).map_err(|_| ReceiptError::Format)?;
    serde_json::from_slice(&json).map_err(|_| ReceiptError::Format)
}

/// What a receipt states, without checking its signature (to find its tenant's key).
pub fn peek(text: &str) -> Result<Receipt, ReceiptError> {
    let text = text.trim();
    if text.len() > RECEIPT_LEN_MAX {
        return Err(ReceiptError::TooLong);
    }
    let body = text
        .strip_prefix(RECEIPT_PREFIX)
        .ok_or(ReceiptError::Format)?;
    let (payload, _) = body.rsplit_once('.').ok_or(ReceiptError::Format)?;
    let json = B64.decode(payload).map_err(|_| ReceiptError::Format)?;
    serde_json::from_slice(&json).map_err(|_| ReceiptError::Format)
}

/// A public key's text form.
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", B64.encode(key.as_bytes()))
}

/// Parses [`public_key_text`]'s output (surrounding whitespace ignored).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, ReceiptError> {
    let b64 = text
        .trim()
        .strip_prefix(PUBLIC_KEY_PREFIX)
        .ok_or(ReceiptError::KeyFormat)?;
    let bytes: [u8; 32] = B64
        .decode(b64)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(ReceiptError::KeyFormat)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| ReceiptError::KeyFormat)
}

fn key_path(data_dir: &Path, tenant: &str) -> PathBuf {
    data_dir.join(KEY_DIR).join(format!("{tenant}.key"))
}

fn decode_key(data_dir: &Path, tenant: &str, bytes: &[u8]) -> io::Result<SigningKey> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let sealer = crate::crypt::sealer(data_dir);
    if bytes.get(..8) == Some(SEALED_KEY_MAGIC) {
        let s = sealer.ok_or_else(|| {
            bad("receipt key sealed with encryption at rest, but crypto.enabled is off")
        })?;
        let seed = s
            .open(tenant, SEAL_WHAT_KEY, &bytes[8..])
            .map_err(|e| bad(&e))?
            .ok_or_else(|| bad("the receipt key's tenant was erased"))?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| bad("sealed receipt key of the wrong length"))?;
        return Ok(SigningKey::from_bytes(&seed));
    }
    if bytes.len() != KEY_FILE_LEN || &bytes[..8] != KEY_MAGIC {
        return Err(bad("not a skab receipt key file"));
    }
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&bytes[8..40]);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[40..44]);
    if crc32c::crc32c(&seed) != u32::from_le_bytes(crc) {
        return Err(bad("receipt key file damaged (checksum)"));
    }
    Ok(SigningKey::from_bytes(&seed))
}

/// The bytes of a key file holding `seed`: sealed with the tenant's key under encryption at
/// rest.
fn encode_key(data_dir: &Path, tenant: &str, seed: &[u8; 32]) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(KEY_FILE_LEN);
    match crate::crypt::sealer(data_dir) {
        Some(s) => {
            bytes.extend_from_slice(SEALED_KEY_MAGIC);
            bytes.extend_from_slice(
                &s.seal(tenant, SEAL_WHAT_KEY, seed)
                    .map_err(io::Error::other)?,
            );
        }
        None => {
            bytes.extend_from_slice(KEY_MAGIC);
            bytes.extend_from_slice(seed);
            bytes.extend_from_slice(&crc32c::crc32c(seed).to_le_bytes());
        }
    }
    Ok(bytes)
}

/// The receipt log of hand-in `handin` of `tenant`: `<handin>.log`, or under encryption at
/// rest a keyed hash of the name (the file name must not show the hand-in's name).
pub fn log_path(data_dir: &Path, tenant: &str, handin: &str) -> io::Result<PathBuf> {
    let name = match crate::crypt::sealer(data_dir) {
        Some(s) => s
            .name_tag(tenant, SEAL_WHAT_LOG, handin)
            .map_err(io::Error::other)?,
        None => handin.to_string(),
    };
    Ok(data_dir
        .join(LOG_DIR)
        .join(tenant)
        .join(format!("{name}.log")))
}

/// The line (with its newline) a receipt log holds for the receipt `text`: sealed with the
/// tenant's key under encryption at rest.
pub fn log_line(data_dir: &Path, tenant: &str, text: &str) -> io::Result<String> {
    use base64::Engine;
    match crate::crypt::sealer(data_dir) {
        Some(s) => {
            let sealed = s
                .seal(tenant, SEAL_WHAT_LOG, text.as_bytes())
                .map_err(io::Error::other)?;
            Ok(format!(
                "{SEALED_LINE_PREFIX}{}\n",
                base64::engine::general_purpose::STANDARD.encode(sealed)
            ))
        }
        None => Ok(format!("{text}\n")),
    }
}

/// The signing key of `tenant` in `data_dir`, if it was ever made (nothing is created).
pub fn read_tenant_key(data_dir: &Path, tenant: &str) -> io::Result<Option<SigningKey>> {
    crate::users::TenantName::new(tenant)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    match std::fs::read(key_path(data_dir, tenant)) {
        Ok(b) => decode_key(data_dir, tenant, &b).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The signing key of `tenant` in `data_dir`: read, or made once and kept. Two processes
/// making it at once agree: it is made under the key directory's lock, which the second one
/// waits for and then finds the key.
pub fn tenant_key(data_dir: &Path, tenant: &str) -> io::Result<SigningKey> {
    crate::users::TenantName::new(tenant)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    if let Some(k) = read_tenant_key(data_dir, tenant)? {
        return Ok(k);
    }
    let dir = data_dir.join(KEY_DIR);
    std::fs::create_dir_all(&dir)?;
    let _lock = crate::file_lock::exclusive(&dir.join(KEY_LOCK_FILE))?;
    if let Some(k) = read_tenant_key(data_dir, tenant)? {
        return Ok(k);
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    write_key(data_dir, tenant, &seed)?;
    decode_key(
        data_dir,
        tenant,
        &std::fs::read(key_path(data_dir, tenant))?,
    )
}

/// Writes the key file of `tenant` (0600, atomically and durably) through the own files'
/// storage (`crate::own_files`). Caller holds the key directory's lock.
fn write_key(data_dir: &Path, tenant: &str, seed: &[u8; 32]) -> io::Result<()> {
    let dir = data_dir.join(KEY_DIR);
    let bytes = encode_key(data_dir, tenant, seed)?;
    let storage = crate::own_files::storage_at(&dir)?;
    crate::own_files::replace_private(&*storage, &dir, &format!("{tenant}.key"), &bytes)
}

/// Installs `seed` as the signing key of `tenant` (an import, `docs/export.md`); refused when
/// the tenant has a key already. Written as [`tenant_key`] writes it.
pub fn install_tenant_key(data_dir: &Path, tenant: &str, seed: &[u8; 32]) -> io::Result<()> {
    crate::users::TenantName::new(tenant)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let dir = data_dir.join(KEY_DIR);
    std::fs::create_dir_all(&dir)?;
    let _lock = crate::file_lock::exclusive(&dir.join(KEY_LOCK_FILE))?;
    if key_path(data_dir, tenant).exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("tenant {tenant} has a receipt key already"),
        ));
    }
    write_key(data_dir, tenant, seed)
}

/// Removes the key file of `tenant` (durably); false when there was none.
pub fn remove_tenant_key(data_dir: &Path, tenant: &str) -> io::Result<bool> {
    let dir = data_dir.join(KEY_DIR);
    if !key_path(data_dir, tenant).exists() {
        return Ok(false);
    }
    let storage = crate::own_files::storage_at(&dir)?;
    skab_engine::io::durable::remove_file(&*storage, &format!("{tenant}.key"))
}

/// Removes every receipt log of `tenant` (durably); false when there was none.
pub fn remove_tenant_logs(data_dir: &Path, tenant: &str) -> io::Result<bool> {
    let dir = data_dir.join(LOG_DIR).join(tenant);
    if !dir.exists() {
        return Ok(false);
    }
    let storage = crate::own_files::storage_at(&dir)?;
    for name in storage.list("")? {
        storage.remove(&name)?;
    }
    storage.sync_dir("")?;
    std::fs::remove_dir_all(&dir)?;
    Ok(true)
}

/// Writes a whole receipt log for a hand-in that has none yet (an import): refused when the
/// log exists.
pub fn write_new_log(data_dir: &Path, tenant: &str, handin: &str, text: &str) -> io::Result<()> {
    let path = log_path(data_dir, tenant, handin)?;
    if path.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists", path.display()),
        ));
    }
    let dir = data_dir.join(LOG_DIR).join(tenant);
    let storage = crate::own_files::storage_at(&dir)?;
    let name = file_name(&path)?;
    let f = storage.open(&name, true)?;
    f.write_batch(&[(0, text.as_bytes())], true)?;
    storage.sync_dir("")
}

fn file_name(path: &Path) -> io::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| io::Error::other(format!("{}: no file name", path.display())))
}

/// The tenants' signing keys this server has used, and the receipt logs it appends to.
pub struct Keys {
    data_dir: PathBuf,
    keys: Mutex<HashMap<String, Arc<SigningKey>>>,
    /// Held while a line is written at a log's end (not while it is synced).
    append: Arc<Mutex<()>>,
    /// The storage of each tenant's log directory (`crate::own_files::storage_at`), kept:
    /// making one costs a few system calls per receipt.
    log_dirs: Arc<Mutex<HashMap<String, Arc<dyn skab_engine::io::Storage>>>>,
}

impl Keys {
    pub fn new(data_dir: &Path) -> Keys {
        Keys {
            data_dir: data_dir.to_path_buf(),
            keys: Mutex::new(HashMap::new()),
            append: Arc::default(),
            log_dirs: Arc::default(),
        }
    }

    /// The key of `tenant` (made on first use).
    pub fn key(&self, tenant: &str) -> io::Result<Arc<SigningKey>> {
        if let Some(k) = self.keys.lock().get(tenant) {
            return Ok(k.clone());
        }
        let k = Arc::new(tenant_key(&self.data_dir, tenant)?);
        self.keys.lock().insert(tenant.to_string(), k.clone());
        Ok(k)
    }

    /// Signs `r` and appends it to its hand-in's receipt log, durably; the receipt's text.
    /// (`sign` then `log`.) Each receipt is one write at the log's end under a lock (so
    /// concurrent appends never interleave), then a data sync outside it, which the file
    /// system (or the object storage mirror) batches across uploads.
    pub async fn issue(&self, r: &Receipt) -> io::Result<String> {
        let text = self.sign(r)?;
        self.log(r, &text).await?;
        Ok(text)
    }

    /// `r` signed with its tenant's key.
    pub fn sign(&self, r: &Receipt) -> io::Result<String> {
        let key = self.key(&r.tenant)?;
        Ok(sign(&key, r))
    }

    /// Appends the signed `text` of `r` to its hand-in's receipt log, durably.
    pub async fn log(&self, r: &Receipt, text: &str) -> io::Result<()> {
        let dir = self.data_dir.join(LOG_DIR).join(&r.tenant);
        let path = log_path(&self.data_dir, &r.tenant, &r.handin)?;
        let name = file_name(&path)?;
        let line = log_line(&self.data_dir, &r.tenant, text)?;
        let append = self.append.clone();
        let log_dirs = self.log_dirs.clone();
        let tenant = r.tenant.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let created = !path.exists();
            let kept = log_dirs.lock().get(&tenant).cloned();
            let (storage, f) = match kept.map(|s| s.open(&name, true).map(|f| (s, f))) {
                Some(Ok(sf)) => sf,
                // None kept, or its directory removed since (a tenant erased and made again).
                _ => {
                    let s = crate::own_files::storage_at(&dir)?;
                    let f = s.open(&name, true)?;
                    log_dirs.lock().insert(tenant, s.clone());
                    (s, f)
                }
            };
            {
                let _one = append.lock();
                let at = f.len()?;
                f.write_batch(&[(at, line.as_bytes())], false)?;
            }
            f.sync_data()?;
            if created {
                storage.sync_dir("")?;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// Every receipt a hand-in's log holds, oldest first.
pub fn logged(data_dir: &Path, tenant: &str, handin: &str) -> io::Result<Vec<String>> {
    use base64::Engine;
    let path = log_path(data_dir, tenant, handin)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let sealer = crate::crypt::sealer(data_dir);
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", path.display()),
        )
    };
    text.lines()
        .map(|l| match (&sealer, l.strip_prefix(SEALED_LINE_PREFIX)) {
            (Some(s), Some(b64)) => {
                let sealed = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| bad("a sealed line is not base64".into()))?;
                let plain = s
                    .open(tenant, SEAL_WHAT_LOG, &sealed)
                    .map_err(bad)?
                    .ok_or_else(|| bad("the tenant was erased".into()))?;
                String::from_utf8(plain).map_err(|_| bad("a receipt is not UTF-8".into()))
            }
            // In the clear: written before the log was sealed.
            (_, None) => Ok(l.to_string()),
            (None, Some(_)) => Err(bad(
                "sealed with encryption at rest, but crypto.enabled is off".into(),
            )),
        })
        .collect()
}

/// A body stream that takes the BLAKE3 of what passes through it (when on).
pub struct Hashing<S> {
    inner: S,
    hasher: Option<blake3::Hasher>,
    /// The hash, set when the stream ended.
    pub done: Arc<Mutex<Option<blake3::Hash>>>,
}

impl<S> Hashing<S> {
    pub fn new(inner: S, on: bool) -> Self {
        Hashing {
            inner,
            hasher: on.then(blake3::Hasher::new),
            done: Arc::default(),
        }
    }
}

impl<S, E> Stream for Hashing<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_next(cx);
        if let Some(h) = this.hasher.as_mut() {
            match &r {
                Poll::Ready(Some(Ok(b))) => {
                    h.update(b);
                }
                Poll::Ready(None) => *this.done.lock() = Some(h.finalize()),
                _ => {}
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Receipt {
        Receipt {
            tenant: "school".into(),
            handin: "exam1".into(),
            user: "pupil1".into(),
            file: "answer.txt".into(),
            size: 5,
            blake3: blake3::hash(b"hello").to_hex().to_string(),
            time: "2026-01-01T10:00:00.000Z".into(),
            late: false,
        }
    }

    #[test]
    fn signed_receipt_verifies_and_any_change_fails() {
        let dir = tempfile::tempdir().unwrap();
        let key = tenant_key(dir.path(), "school").unwrap();
        // The same key again from the file.
        assert_eq!(
            tenant_key(dir.path(), "school").unwrap().to_bytes(),
            key.to_bytes()
        );
        let text = sign(&key, &r());
        let pk = parse_public_key(&public_key_text(&key.verifying_key())).unwrap();
        assert_eq!(verify(&text, &pk).unwrap(), r());
        let mut late = r();
        late.late = true;
        let forged_payload = sign(&key, &late);
        // Payload of one receipt with the signature of another.
        let (p, _) = forged_payload.rsplit_once('.').unwrap();
        let (_, s) = text.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&format!("{p}.{s}"), &pk),
            Err(ReceiptError::BadSignature)
        );
        let other = tenant_key(dir.path(), "other").unwrap();
        assert_eq!(
            verify(&text, &other.verifying_key()),
            Err(ReceiptError::BadSignature)
        );
        assert_eq!(verify("junk", &pk), Err(ReceiptError::Format));
    }
}
