//! Small JSON files the server keeps beside the store (the hand-in and space registries),
//! framed so that damage is found: 8-byte magic, payload length (u64 LE), CRC32C of the payload
//! (u32 LE), then the JSON payload. Format: docs/formats.md. With encryption at rest the
//! payload holds each tenant's part sealed with its key ([`encode_sealed`]).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Magic, payload length, CRC32C.
pub const HEADER_LEN: usize = 8 + 8 + 4;

/// Identity of a file as last read (inode, length, mtime): a replaced file gives another.
pub type FileId = (u64, u64, i64, i64);

/// The identity of the file at `path`, or `None` when there is none.
pub fn file_id(path: &Path) -> Option<FileId> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Decodes a framed file; `bad_magic` names what the file should have been.
pub fn decode<T: DeserializeOwned>(
    magic: &[u8; 8],
    bad_magic: &'static str,
    bytes: &[u8],
) -> Result<T, &'static str> {
    let header = bytes.get(..HEADER_LEN).ok_or("too short")?;
    if &header[..8] != magic {
        return Err(bad_magic);
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
        return Err("checksum does not match");
    }
    serde_json::from_slice(payload).map_err(|_| "payload is not JSON")
}

/// Frames `value` (plain structs of strings and numbers, whose serializing cannot fail).
pub fn encode<T: Serialize>(magic: &[u8; 8], value: &T) -> Vec<u8> {
    let payload = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

/// The payload of a sealed registry: what is not secret in the clear, each tenant's part
/// sealed with its key (standard base64). Tenant names stay visible.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedPayload<C> {
    clear: C,
    tenants: Vec<SealedPart>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedPart {
    tenant: String,
    sealed: String,
}

/// Frames `clear` and each tenant's part (`parts`, by tenant) sealed with its key; `what`
/// names the file and is authenticated with each part.
pub fn encode_sealed<C: Serialize, T: Serialize>(
    magic: &[u8; 8],
    sealer: &crate::crypt::Sealer,
    what: &str,
    clear: &C,
    parts: &std::collections::BTreeMap<String, T>,
) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let mut tenants = Vec::with_capacity(parts.len());
    for (tenant, part) in parts {
        let plain = serde_json::to_vec(part).map_err(|e| e.to_string())?;
        let sealed = sealer.seal(tenant, what, &plain)?;
        tenants.push(SealedPart {
            tenant: tenant.clone(),
            sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
        });
    }
    Ok(encode(magic, &SealedPayload { clear, tenants }))
}

/// Decodes what [`encode_sealed`] wrote: the clear part and each tenant's part, opened with
/// its key; the part of a tenant whose key was erased is left out (unreadable for good).
#[allow(clippy::type_complexity)]
pub fn decode_sealed<C: DeserializeOwned, T: DeserializeOwned>(
    magic: &[u8; 8],
    bad_magic: &'static str,
    sealer: &crate::crypt::Sealer,
    what: &str,
    bytes: &[u8],
) -> Result<(C, Vec<(String, T)>), String> {
    use base64::Engine;
    let p: SealedPayload<C> = decode(magic, bad_magic, bytes).map_err(str::to_string)?;
    let mut out = Vec::with_capacity(p.tenants.len());
    for part in p.tenants {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&part.sealed)
            .map_err(|_| format!("the part of tenant {} is not base64", part.tenant))?;
        if let Some(plain) = sealer.open(&part.tenant, what, &sealed)? {
            let v = serde_json::from_slice(&plain)
                .map_err(|e| format!("the part of tenant {}: {e}", part.tenant))?;
            out.push((part.tenant, v));
        }
    }
    Ok((p.clear, out))
}

/// The first 8 bytes of `bytes`, if there are 8.
pub fn magic_of(bytes: &[u8]) -> Option<&[u8]> {
    bytes.get(..8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_kind_of_damage_is_found() {
        let v = vec!["a".to_string(), "ø".to_string()];
        let bytes = encode(b"SKABTEST", &v);
        assert_eq!(decode::<Vec<String>>(b"SKABTEST", "bad", &bytes), Ok(v));
        assert_eq!(
            decode::<Vec<String>>(b"SKABOTHR", "not ours", &bytes),
            Err("not ours")
        );
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            decode::<Vec<String>>(b"SKABTEST", "bad", &flipped),
            Err("checksum does not match")
        );
        assert_eq!(
            decode::<Vec<String>>(b"SKABTEST", "bad", &bytes[..bytes.len() - 1]),
            Err("length does not match")
        );
        assert_eq!(
            decode::<Vec<String>>(b"SKABTEST", "bad", &bytes[..5]),
            Err("too short")
        );
    }
}
