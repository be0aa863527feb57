//! On-disk format of pack files: a header, then self-describing chunk records.
//!
//! Layout (little-endian), see `docs/formats.md`:
//! pack header (16 bytes): `b"SKABPAK1"`, pack id u32, reserved u32 (0);
//! record header (48 bytes): magic `b"SKCH"`, data length u32, chunk id [32],
//! CRC32C of the data u32, CRC32C of the preceding 40 header bytes u32; then the data.
//! A pack is only ever appended to; its records can be rediscovered by a scan from the start.

use crate::ids::{ChunkId, PackId};
use crate::limits::CHUNK_SIZE_MAX_LIMIT;

pub(crate) const PACK_MAGIC: &[u8; 8] = b"SKABPAK1";
pub(crate) const PACK_HEADER_LEN: u64 = 16;
pub(crate) const RECORD_MAGIC: &[u8; 4] = b"SKCH";
pub(crate) const RECORD_HEADER_LEN: u64 = 48;

pub(crate) fn pack_header(pack: PackId) -> [u8; PACK_HEADER_LEN as usize] {
    let mut h = [0u8; PACK_HEADER_LEN as usize];
    h[..8].copy_from_slice(PACK_MAGIC);
    h[8..12].copy_from_slice(&pack.0.to_le_bytes());
    h
}

/// Checks a pack header; returns the pack id it names.
pub(crate) fn parse_pack_header(h: &[u8]) -> Result<PackId, &'static str> {
    if h.len() < PACK_HEADER_LEN as usize || &h[..8] != PACK_MAGIC {
        return Err("bad pack header");
    }
    let id: [u8; 4] = h[8..12].try_into().map_err(|_| "bad pack header")?;
    Ok(PackId(u32::from_le_bytes(id)))
}

/// The record header for chunk `id` holding `data`.
pub(crate) fn record_header(id: &ChunkId, data: &[u8]) -> [u8; RECORD_HEADER_LEN as usize] {
    assert!(data.len() <= CHUNK_SIZE_MAX_LIMIT);
    let mut h = [0u8; RECORD_HEADER_LEN as usize];
    h[0..4].copy_from_slice(RECORD_MAGIC);
    h[4..8].copy_from_slice(&(data.len() as u32).to_le_bytes());
    h[8..40].copy_from_slice(&id.0);
    h[40..44].copy_from_slice(&crc32c::crc32c(data).to_le_bytes());
    let hcrc = crc32c::crc32c(&h[..44]);
    h[44..48].copy_from_slice(&hcrc.to_le_bytes());
    h
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub id: ChunkId,
    pub len: u32,
    pub data_crc: u32,
}

pub(crate) fn parse_record_header(h: &[u8]) -> Result<RecordHeader, &'static str> {
    let h = h
        .get(..RECORD_HEADER_LEN as usize)
        .ok_or("short record header")?;
    if &h[..4] != RECORD_MAGIC {
        return Err("bad record magic");
    }
    let stored = u32::from_le_bytes(h[44..48].try_into().map_err(|_| "header")?);
    if crc32c::crc32c(&h[..44]) != stored {
        return Err("record header checksum mismatch");
    }
    let len = u32::from_le_bytes(h[4..8].try_into().map_err(|_| "header")?);
    if len as usize > CHUNK_SIZE_MAX_LIMIT {
        return Err("record length over the limit");
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&h[8..40]);
    let data_crc = u32::from_le_bytes(h[40..44].try_into().map_err(|_| "header")?);
    Ok(RecordHeader {
        id: ChunkId(id),
        len,
        data_crc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_header_round_trip_and_damage() {
        let id = ChunkId([7; 32]);
        let mut buf = Vec::new();
        buf.extend_from_slice(&record_header(&id, b"hello"));
        let h = parse_record_header(&buf).unwrap();
        assert_eq!(h.id, id);
        assert_eq!(h.len, 5);
        assert_eq!(h.data_crc, crc32c::crc32c(b"hello"));
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 1;
            assert!(parse_record_header(&b).is_err(), "flip at {i} undetected");
        }
        assert!(parse_record_header(&buf[..47]).is_err());
    }

    #[test]
    fn pack_header_round_trip() {
        assert_eq!(parse_pack_header(&pack_header(PackId(42))), Ok(PackId(42)));
        assert!(parse_pack_header(b"SKABPAK2\0\0\0\0\0\0\0\0").is_err());
    }
}
