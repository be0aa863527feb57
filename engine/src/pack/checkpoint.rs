//! The chunk index checkpoint: every indexed chunk's location as of a covered pack position.
//!
//! Layout (little-endian), see `docs/formats.md`: `b"SKABCKP1"`, covered position u64,
//! entry count u64, entries (chunk id [32], pack u32, data offset u64, length u32: 48 bytes each),
//! CRC32C u32 of everything before it. Written to a temporary name, synced, renamed, and the
//! directory synced, so a crash leaves the old or the new checkpoint, never a mix.

use super::writer::Pos;
use crate::error::{Error, Result};
use crate::ids::{ChunkId, PackId};
use crate::io::Storage;

pub(crate) const CHECKPOINT_NAME: &str = "index/chunks.ckpt";
const CHECKPOINT_TMP: &str = "index/chunks.ckpt.tmp";
pub(crate) const MAGIC: &[u8; 8] = b"SKABCKP1";
pub(crate) const HEADER_LEN: usize = 24;
pub(crate) const ENTRY_LEN: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub id: ChunkId,
    pub pack: PackId,
    pub offset: u64,
    pub len: u32,
}

pub(crate) fn encode(covered: Pos, entries: &[Located]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + entries.len() * ENTRY_LEN + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&covered.0.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.id.0);
        out.extend_from_slice(&e.pack.0.to_le_bytes());
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode(buf: &[u8]) -> Result<(Pos, Vec<Located>)> {
    let bad = |why: &str| Error::Corrupt(format!("chunk index checkpoint: {why}"));
    if buf.len() < HEADER_LEN + 4 || &buf[..8] != MAGIC {
        return Err(bad("bad header"));
    }
    let (body, tail) = buf.split_at(buf.len() - 4);
    let stored = u32::from_le_bytes(tail.try_into().map_err(|_| bad("tail"))?);
    if crc32c::crc32c(body) != stored {
        return Err(bad("checksum mismatch"));
    }
    let u64_at = |at: usize| -> Result<u64> {
        let b: [u8; 8] = body
            .get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| bad("short"))?;
        Ok(u64::from_le_bytes(b))
    };
    let covered = Pos(u64_at(8)?);
    let count = u64_at(16)?;
    let expect = count
        .checked_mul(ENTRY_LEN as u64)
        .and_then(|n| n.checked_add(HEADER_LEN as u64));
    if expect != Some(body.len() as u64) {
        return Err(bad("entry count does not match the length"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for e in body[HEADER_LEN..].chunks_exact(ENTRY_LEN) {
        let mut id = [0u8; 32];
        id.copy_from_slice(&e[..32]);
        let pack = u32::from_le_bytes(e[32..36].try_into().map_err(|_| bad("entry"))?);
        let offset = u64::from_le_bytes(e[36..44].try_into().map_err(|_| bad("entry"))?);
        let len = u32::from_le_bytes(e[44..48].try_into().map_err(|_| bad("entry"))?);
        entries.push(Located {
            id: ChunkId(id),
            pack: PackId(pack),
            offset,
            len,
        });
    }
    Ok((covered, entries))
}

/// Writes a checkpoint atomically and durably.
pub(crate) fn write(storage: &dyn Storage, covered: Pos, entries: &[Located]) -> Result<()> {
    let buf = encode(covered, entries);
    let file = storage.open(CHECKPOINT_TMP, true)?;
    file.truncate(0)?;
    file.write_batch(&[(0, &buf)], true)?;
    drop(file);
    storage.rename(CHECKPOINT_TMP, CHECKPOINT_NAME)?;
    storage.sync_dir("index")?;
    Ok(())
}

/// Reads the checkpoint, if one exists.
pub(crate) fn read(storage: &dyn Storage) -> Result<Option<(Pos, Vec<Located>)>> {
    let file = match storage.open(CHECKPOINT_NAME, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let len = usize::try_from(file.len()?).map_err(|_| Error::Corrupt("checkpoint size".into()))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)?;
    decode(&buf).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let entries: Vec<Located> = (0..5u8)
            .map(|i| Located {
                id: ChunkId([i; 32]),
                pack: PackId(i as u32),
                offset: 1000 + i as u64,
                len: 77 * i as u32,
            })
            .collect();
        let pos = Pos::new(PackId(3), 4096);
        let buf = encode(pos, &entries);
        assert_eq!(decode(&buf).unwrap(), (pos, entries));
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x40;
            assert!(decode(&b).is_err(), "flip at {i}");
        }
        assert!(decode(&buf[..buf.len() - 1]).is_err());
    }
}
