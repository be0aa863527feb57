//! Shard snapshot files: every space and tenant of one shard as of a WAL sequence number,
//! archived with rkyv (validated on load) and framed with a magic and a CRC32C.
//!
//! Layout (see `docs/formats.md`): `b"SKABSNP1"`, archive length u64, CRC32C u32 of the archive,
//! 4 zero bytes, then the rkyv archive (16-byte aligned in the file).

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::error::{Error, Result};
use crate::io::Storage;
use crate::ns::SpaceSnapshot;

pub(crate) const MAGIC: &[u8; 8] = b"SKABSNP1";
pub(crate) const HEADER_LEN: usize = 24;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct ShardSnapshot {
    /// First WAL sequence number the snapshot does not cover.
    pub next_seq: u64,
    /// First WAL segment to replay after loading it.
    pub next_segment: u64,
    pub tenants: Vec<TenantSnapshot>,
    pub spaces: Vec<SpaceEntrySnapshot>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct TenantSnapshot {
    pub name: String,
    pub quota: Option<u64>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct SpaceEntrySnapshot {
    pub tenant: String,
    pub user: String,
    pub tree: SpaceSnapshot,
}

pub(crate) fn snapshot_name(shard: usize) -> String {
    format!("snap/{shard:03}.snap")
}

/// Writes shard `shard`'s snapshot atomically and durably.
pub(crate) fn write(storage: &dyn Storage, shard: usize, snap: &ShardSnapshot) -> Result<()> {
    let archive = rkyv::to_bytes::<rancor::Error>(snap)
        .map_err(|e| Error::Corrupt(format!("snapshot encoding failed: {e}")))?;
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..16].copy_from_slice(&(archive.len() as u64).to_le_bytes());
    header[16..20].copy_from_slice(&crc32c::crc32c(&archive).to_le_bytes());
    let name = snapshot_name(shard);
    let tmp = format!("{name}.tmp");
    let file = storage.open(&tmp, true)?;
    file.truncate(0)?;
    file.write_batch(&[(0, &header), (HEADER_LEN as u64, &archive)], true)?;
    drop(file);
    storage.rename(&tmp, &name)?;
    storage.sync_dir("snap")?;
    Ok(())
}

/// Reads shard `shard`'s snapshot bytes (checked: magic, length, CRC), if it exists.
/// Access the archive with [`access`].
pub(crate) fn read(storage: &dyn Storage, shard: usize) -> Result<Option<AlignedVec>> {
    let name = snapshot_name(shard);
    let file = match storage.open(&name, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bad = |why: &str| Error::Corrupt(format!("{name}: {why}"));
    let len = file.len()?;
    let mut header = [0u8; HEADER_LEN];
    if len < HEADER_LEN as u64 {
        return Err(bad("shorter than its header"));
    }
    file.read_exact_at(&mut header, 0)?;
    if &header[..8] != MAGIC {
        return Err(bad("bad magic"));
    }
    let archive_len = u64::from_le_bytes(header[8..16].try_into().map_err(|_| bad("header"))?);
    let crc = u32::from_le_bytes(header[16..20].try_into().map_err(|_| bad("header"))?);
    if archive_len != len - HEADER_LEN as u64 {
        return Err(bad("length does not match the file"));
    }
    let archive_len = usize::try_from(archive_len).map_err(|_| bad("too large"))?;
    let mut buf = AlignedVec::<16>::with_capacity(archive_len);
    buf.resize(archive_len, 0);
    file.read_exact_at(&mut buf, HEADER_LEN as u64)?;
    if crc32c::crc32c(&buf) != crc {
        return Err(bad("checksum mismatch"));
    }
    Ok(Some(buf))
}

/// Validates the archive and gives access to it without copying.
pub(crate) fn access(buf: &[u8]) -> Result<&ArchivedShardSnapshot> {
    rkyv::access::<ArchivedShardSnapshot, rancor::Error>(buf)
        .map_err(|e| Error::Corrupt(format!("snapshot archive invalid: {e}")))
}
