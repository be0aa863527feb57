//! Small JSON files the server keeps beside the store (the hand-in and space registries),
//! framed so that damage is found: 8-byte magic, payload length (u64 LE), CRC32C of the payload
//! (u32 LE), then the JSON payload. Format: docs/formats.md.

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
