//! Sealing with a tenant's data key: chunks (deterministic, so a tenant's identical chunks
//! still deduplicate) and metadata records (randomised), both AES-256-GCM (`ring`).
//!
//! Every sealing uses a key of its own, derived from the tenant's key and a 256-bit value
//! that is unique per plaintext: the chunk id for a chunk (the keyed BLAKE3 of its bytes, so
//! one id is one plaintext), a random salt for a metadata record. The GCM nonce can then be
//! constant: no key ever seals two different plaintexts, so no nonce is ever reused, with no
//! counter to keep and no 96-bit birthday bound (docs/security.md, "Chunk encryption").

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;

use crate::ChunkId;

/// Bytes a sealed chunk or record is longer than its plaintext (the GCM tag).
pub const SEAL_TAG_LEN: usize = 16;
/// Bytes of a metadata record's random salt.
pub const META_SALT_LEN: usize = 32;

/// HKDF salt of the subkey derivation (fixed forever: every sealed byte depends on it).
const SUBKEY_SALT: &[u8] = b"skab 2026-12 tenant data key v1";

/// The subkeys of one tenant's data key. Dropping it overwrites them.
pub struct TenantCipher {
    /// Key of the tenant's chunk ids (keyed BLAKE3): replaces the store-wide dedup domain
    /// key, so a copy of the data dir without the key store cannot even test for content.
    id_key: [u8; 32],
    /// Derives each chunk's sealing key from its id.
    chunk_key: [u8; 32],
    /// Derives each metadata record's sealing key from its salt.
    meta_key: [u8; 32],
    /// Keys [`TenantCipher::name_tag`]: file names that must not show what they name.
    name_key: [u8; 32],
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn expand(prk: &hkdf::Prk, label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let info = [label];
    // 32 bytes is far below HKDF-SHA256's 255 * 32 limit: neither call can fail.
    match prk.expand(&info, Len32).and_then(|okm| okm.fill(&mut out)) {
        Ok(()) => out,
        Err(_) => unreachable!("HKDF expand of 32 bytes failed"),
    }
}

/// AES-256-GCM under `key` with the constant nonce (each key seals one plaintext only).
fn aead(key: &[u8; 32]) -> LessSafeKey {
    match UnboundKey::new(&AES_256_GCM, key) {
        Ok(k) => LessSafeKey::new(k),
        Err(_) => unreachable!("a 32-byte AES-256 key was refused"),
    }
}

/// Why a sealed value did not open: a wrong key, or bytes changed on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError;

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("authenticated decryption failed (damaged bytes or another key)")
    }
}

impl TenantCipher {
    /// The subkeys of `data_key` (HKDF-SHA256).
    pub fn new(data_key: &[u8; 32]) -> TenantCipher {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SUBKEY_SALT).extract(data_key);
        TenantCipher {
            id_key: expand(&prk, b"chunk id"),
            chunk_key: expand(&prk, b"chunk seal"),
            meta_key: expand(&prk, b"metadata seal"),
            name_key: expand(&prk, b"name tag"),
        }
    }

    /// The key of this tenant's chunk ids.
    pub(crate) fn id_key(&self) -> [u8; 32] {
        self.id_key
    }

    /// A keyed hash of `name` (with `context`, what kind of name it is): the same for the
    /// same name, and without the tenant's key it tells nothing about the name (used where a
    /// file of the server must be found by a name it must not show, such as a hand-in's
    /// receipt log).
    pub fn name_tag(&self, context: &[u8], name: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.name_key);
        h.update(&(context.len() as u64).to_le_bytes());
        h.update(context);
        h.update(name);
        *h.finalize().as_bytes()
    }

    fn chunk_aead(&self, id: &ChunkId) -> LessSafeKey {
        aead(blake3::keyed_hash(&self.chunk_key, &id.0).as_bytes())
    }

    /// Chunk `id`'s bytes sealed: ciphertext then tag, [`SEAL_TAG_LEN`] bytes longer. Same id,
    /// same output: identical chunks of a tenant stay one chunk.
    pub fn seal_chunk(&self, id: &ChunkId, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + SEAL_TAG_LEN);
        out.extend_from_slice(plain);
        let nonce = Nonce::assume_unique_for_key([0u8; 12]);
        match self
            .chunk_aead(id)
            .seal_in_place_append_tag(nonce, Aad::from(&id.0), &mut out)
        {
            Ok(()) => out,
            Err(_) => unreachable!("AES-GCM sealing of a chunk under 4 MiB failed"),
        }
    }

    /// Opens what [`TenantCipher::seal_chunk`] sealed for `id`.
    pub fn open_chunk(&self, id: &ChunkId, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        self.open_chunk_owned(id, sealed.to_vec())
    }

    /// [`TenantCipher::open_chunk`] in place, in the buffer the chunk was read into.
    pub fn open_chunk_owned(&self, id: &ChunkId, mut buf: Vec<u8>) -> Result<Vec<u8>, OpenError> {
        let nonce = Nonce::assume_unique_for_key([0u8; 12]);
        let n = self
            .chunk_aead(id)
            .open_in_place(nonce, Aad::from(&id.0), &mut buf)
            .map_err(|_| OpenError)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    /// A metadata record sealed: random salt, ciphertext, tag. `context` (what the record is
    /// and whose) is authenticated, so a sealed record cannot be moved to another place.
    pub fn seal_meta(&self, context: &[u8], plain: &[u8]) -> Vec<u8> {
        let salt: [u8; META_SALT_LEN] = rand::random();
        let mut out = Vec::with_capacity(META_SALT_LEN + plain.len() + SEAL_TAG_LEN);
        out.extend_from_slice(&salt);
        out.extend_from_slice(plain);
        let key = aead(blake3::keyed_hash(&self.meta_key, &salt).as_bytes());
        let mut body = out.split_off(META_SALT_LEN);
        let nonce = Nonce::assume_unique_for_key([0u8; 12]);
        match key.seal_in_place_append_tag(nonce, Aad::from(context), &mut body) {
            Ok(()) => {
                out.append(&mut body);
                out
            }
            Err(_) => unreachable!("AES-GCM sealing of a record failed"),
        }
    }

    /// Opens what [`TenantCipher::seal_meta`] sealed with the same `context`.
    pub fn open_meta(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < META_SALT_LEN + SEAL_TAG_LEN {
            return Err(OpenError);
        }
        let (salt, body) = sealed.split_at(META_SALT_LEN);
        let key = aead(blake3::keyed_hash(&self.meta_key, salt).as_bytes());
        let mut buf = body.to_vec();
        let nonce = Nonce::assume_unique_for_key([0u8; 12]);
        let n = key
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| OpenError)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}

impl Drop for TenantCipher {
    fn drop(&mut self) {
        for k in [
            &mut self.id_key,
            &mut self.chunk_key,
            &mut self.meta_key,
            &mut self.name_key,
        ] {
            // Volatile so the overwrite of memory about to be freed is not optimised away.
            for b in k.iter_mut() {
                // SAFETY: `b` is a valid, aligned, exclusive reference to a byte.
                unsafe { std::ptr::write_volatile(b, 0) };
            }
        }
    }
}

impl fmt::Debug for TenantCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantCipher(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_seal_deterministically_and_open_only_with_their_id_and_key() {
        let a = TenantCipher::new(&[1; 32]);
        let b = TenantCipher::new(&[2; 32]);
        let id = ChunkId([9; 32]);
        let plain = b"marker bytes of one chunk".to_vec();
        let s1 = a.seal_chunk(&id, &plain);
        assert_eq!(
            s1,
            a.seal_chunk(&id, &plain),
            "same id, same ciphertext (dedup)"
        );
        assert_eq!(s1.len(), plain.len() + SEAL_TAG_LEN);
        assert!(!s1.windows(6).any(|w| w == b"marker"));
        assert_eq!(a.open_chunk(&id, &s1).unwrap(), plain);
        assert_eq!(b.open_chunk(&id, &s1), Err(OpenError));
        assert_eq!(a.open_chunk(&ChunkId([8; 32]), &s1), Err(OpenError));
        let mut flipped = s1.clone();
        flipped[3] ^= 1;
        assert_eq!(a.open_chunk(&id, &flipped), Err(OpenError));
        assert_ne!(a.id_key(), b.id_key());
    }

    #[test]
    fn records_seal_randomly_and_check_their_context() {
        let a = TenantCipher::new(&[1; 32]);
        let r1 = a.seal_meta(b"wal:t", b"name of a pupil");
        let r2 = a.seal_meta(b"wal:t", b"name of a pupil");
        assert_ne!(r1, r2);
        assert_eq!(a.open_meta(b"wal:t", &r1).unwrap(), b"name of a pupil");
        assert_eq!(a.open_meta(b"wal:u", &r1), Err(OpenError));
        assert_eq!(a.open_meta(b"wal:t", &r1[..10]), Err(OpenError));
        assert_eq!(
            TenantCipher::new(&[3; 32]).open_meta(b"wal:t", &r1),
            Err(OpenError)
        );
    }
}
