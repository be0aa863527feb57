//! Chunk identities (keyed BLAKE3 per dedup domain) and the plain BLAKE3 whole-file content hash.

use std::fmt;
use std::sync::Arc;

use crate::crypt::TenantCipher;
use crate::{ChunkId, ContentHash};

/// Context string of the key derivation (BLAKE3 `derive_key`): fixed forever, or every chunk id
/// of every store changes.
const DOMAIN_KEY_CONTEXT: &str = "skab 2026-11 chunk dedup domain v1";

/// Secret key of one dedup domain: chunk ids are BLAKE3 keyed by it, so a domain's ids reveal
/// nothing about content in another domain, and nobody without the key can probe for content.
/// With encryption at rest the domain is a tenant, the key comes from the tenant's data key,
/// and the tenant's cipher travels with it: chunks are sealed on their way into the packs
/// and opened on their way out.
#[derive(Clone)]
pub struct DomainKey(pub(crate) [u8; 32], pub(crate) Option<Arc<TenantCipher>>);

impl PartialEq for DomainKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for DomainKey {}

impl DomainKey {
    /// Derives the key of `domain` from the store's master secret.
    pub fn derive(master_secret: &[u8; 32], domain: &str) -> DomainKey {
        let mut material = Vec::with_capacity(32 + 8 + domain.len());
        material.extend_from_slice(master_secret);
        material.extend_from_slice(&(domain.len() as u64).to_le_bytes());
        material.extend_from_slice(domain.as_bytes());
        DomainKey(blake3::derive_key(DOMAIN_KEY_CONTEXT, &material), None)
    }

    /// The domain of an encrypted tenant: ids keyed by a subkey of its data key, chunks
    /// sealed with it.
    pub fn sealed(cipher: Arc<TenantCipher>) -> DomainKey {
        DomainKey(cipher.id_key(), Some(cipher))
    }

    /// The tenant's cipher, when its data is encrypted.
    pub fn cipher(&self) -> Option<&TenantCipher> {
        self.1.as_deref()
    }

    /// Chunk `id`'s bytes as stored: sealed when encrypted, else as they are.
    pub(crate) fn stored<'a>(&self, id: &ChunkId, plain: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        match &self.1 {
            Some(c) => std::borrow::Cow::Owned(c.seal_chunk(id, plain)),
            None => std::borrow::Cow::Borrowed(plain),
        }
    }

    /// Chunk `id`'s bytes from what was stored, verified against the id: opened (an
    /// authentication failure is corruption) and hashed.
    pub(crate) fn verified(
        &self,
        id: &ChunkId,
        stored: bytes::Bytes,
    ) -> crate::Result<bytes::Bytes> {
        let data = match &self.1 {
            // The read buffer is ours alone: opened in place, without a copy.
            Some(c) => bytes::Bytes::from(
                c.open_chunk_owned(id, Vec::from(stored))
                    .map_err(|e| crate::Error::Integrity(format!("chunk {id}: {e}")))?,
            ),
            None => stored,
        };
        if self.chunk_id(&data) != *id {
            return Err(crate::Error::Integrity(format!(
                "chunk {id} does not match its hash"
            )));
        }
        Ok(data)
    }

    /// Identity of a chunk with these bytes in this domain.
    pub fn chunk_id(&self, data: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.0, data).as_bytes())
    }

    /// A 64-bit tag of this domain (the key's first bytes; kept in memory only): the chunk cache
    /// stores it with each chunk, so that a cached chunk is served only within its domain.
    pub(crate) fn tag(&self) -> u64 {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, g, h])
    }

    /// An incremental hasher for a chunk id (for a chunk that arrives in pieces).
    pub fn chunk_hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.0)
    }
}

impl fmt::Debug for DomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DomainKey(<secret>)")
    }
}

/// Incremental plain (unkeyed) BLAKE3 of a whole file: clients can check it as a checksum.
#[derive(Clone, Default)]
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    pub fn new() -> ContentHasher {
        ContentHasher(blake3::Hasher::new())
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finalize(&self) -> ContentHash {
        ContentHash(*self.0.finalize().as_bytes())
    }
}

impl fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentHasher")
            .field("len", &self.0.count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: [u8; 32] = [7; 32];

    #[test]
    fn domains_separate_ids() {
        let a = DomainKey::derive(&MASTER, "school-a");
        let b = DomainKey::derive(&MASTER, "school-b");
        let data = b"the same bytes in two schools";
        assert_ne!(a.chunk_id(data), b.chunk_id(data));
        assert_ne!(a, b);
        let other_master = DomainKey::derive(&[8; 32], "school-a");
        assert_ne!(a.chunk_id(data), other_master.chunk_id(data));
    }

    #[test]
    fn same_domain_is_stable() {
        let a1 = DomainKey::derive(&MASTER, "school-a");
        let a2 = DomainKey::derive(&MASTER, "school-a");
        assert_eq!(a1, a2);
        assert_eq!(a1.chunk_id(b"x"), a2.chunk_id(b"x"));
        assert_ne!(a1.chunk_id(b"x"), a1.chunk_id(b"y"));
    }

    #[test]
    fn known_answers_against_blake3() {
        let mut material = MASTER.to_vec();
        material.extend_from_slice(&8u64.to_le_bytes());
        material.extend_from_slice(b"school-a");
        let key = blake3::derive_key("skab 2026-11 chunk dedup domain v1", &material);
        let dk = DomainKey::derive(&MASTER, "school-a");
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(
            dk.chunk_id(&data).0,
            *blake3::keyed_hash(&key, &data).as_bytes()
        );
        let mut h = dk.chunk_hasher();
        h.update(&data[..100]);
        h.update(&data[100..]);
        assert_eq!(dk.chunk_id(&data).0, *h.finalize().as_bytes());

        let mut ch = ContentHasher::new();
        ch.update(&data[..1234]);
        ch.update(&data[1234..]);
        assert_eq!(ch.finalize().0, *blake3::hash(&data).as_bytes());
        // BLAKE3 of the empty input (published test vector).
        assert_eq!(
            ContentHasher::new().finalize().to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let dk = DomainKey::derive(&MASTER, "school-a");
        let shown = format!("{dk:?}");
        let hex: String = dk.0.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex[..8]));
        assert_eq!(shown, "DomainKey(<secret>)");
    }
}
