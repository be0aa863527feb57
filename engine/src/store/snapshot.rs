//! Shard snapshot files: every space and tenant of one shard as of a WAL sequence number,
//! archived with rkyv (validated on load) and framed with a magic and a CRC32C.
//!
//! Layout (see `docs/formats.md`): `b"SKABSNP2"`, archive length u64, CRC32C u32 of the archive,
//! 4 zero bytes, then the rkyv archive (16-byte aligned in the file). A `SKABSNP1` file (before
//! spaces kept a change log) is read and converted on load.

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::error::{Error, Result};
use crate::io::Storage;
use crate::ns::{SpaceSnapshot, SpaceSnapshotV1};

pub(crate) const MAGIC: &[u8; 8] = b"SKABSNP2";
/// Snapshots written before the change log; same frame, older space layout.
pub(crate) const MAGIC_V1: &[u8; 8] = b"SKABSNP1";
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

/// [`ShardSnapshot`] of a `SKABSNP1` file.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct ShardSnapshotV1 {
    pub next_seq: u64,
    pub next_segment: u64,
    pub tenants: Vec<TenantSnapshot>,
    pub spaces: Vec<SpaceEntrySnapshotV1>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct SpaceEntrySnapshotV1 {
    pub tenant: String,
    pub user: String,
    pub tree: SpaceSnapshotV1,
}

/// Rewrites a validated `SKABSNP1` archive as the current layout (each space with an empty
/// change log), once, at load.
fn upgrade_v1(buf: &[u8]) -> Result<AlignedVec> {
    let old = rkyv::access::<ArchivedShardSnapshotV1, rancor::Error>(buf)
        .map_err(|e| Error::Corrupt(format!("snapshot archive invalid: {e}")))?;
    let old: ShardSnapshotV1 = rkyv::deserialize::<_, rancor::Error>(old)
        .map_err(|e| Error::Corrupt(format!("snapshot archive invalid: {e}")))?;
    let new = ShardSnapshot {
        next_seq: old.next_seq,
        next_segment: old.next_segment,
        tenants: old.tenants,
        spaces: old
            .spaces
            .into_iter()
            .map(|s| SpaceEntrySnapshot {
                tenant: s.tenant,
                user: s.user,
                tree: s.tree.into(),
            })
            .collect(),
    };
    rkyv::to_bytes::<rancor::Error>(&new)
        .map_err(|e| Error::Corrupt(format!("snapshot upgrade failed: {e}")))
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
    let v1 = &header[..8] == MAGIC_V1;
    if &header[..8] != MAGIC && !v1 {
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
    if v1 {
        return upgrade_v1(&buf).map(Some);
    }
    Ok(Some(buf))
}

/// Magic of a sealed snapshot (encryption at rest): the shard's state split by tenant, each
/// part an rkyv archive of a [`ShardSnapshot`] holding that tenant alone, sealed with its key.
pub(crate) const MAGIC_SEALED: &[u8; 8] = b"SKABSNP3";

/// One tenant's sealed part of a sealed snapshot.
pub(crate) struct SealedPart {
    pub tenant: String,
    pub sealed: Vec<u8>,
}

/// A sealed snapshot as read: positions in the clear, the parts still sealed.
pub(crate) struct SealedSnapshot {
    pub next_seq: u64,
    pub next_segment: u64,
    pub parts: Vec<SealedPart>,
}

/// A shard snapshot file, either kind.
pub(crate) enum Loaded {
    Plain(AlignedVec),
    Sealed(SealedSnapshot),
}

/// Authenticated context of a sealed part: a part opens only as this tenant's.
pub(crate) fn part_context(tenant: &str) -> Vec<u8> {
    format!("skab snapshot:{tenant}").into_bytes()
}

/// Encodes one tenant's part: the archive of its own [`ShardSnapshot`].
pub(crate) fn part_archive(snap: &ShardSnapshot) -> Result<AlignedVec> {
    rkyv::to_bytes::<rancor::Error>(snap)
        .map_err(|e| Error::Corrupt(format!("snapshot encoding failed: {e}")))
}

/// Writes a sealed snapshot: `SKABSNP3`, next_seq u64, next_segment u64, part count u32, then
/// per part: tenant name length u8, name, sealed length u64, sealed bytes; then CRC32C u32 of
/// everything before. Atomically and durably, like [`write`].
pub(crate) fn write_sealed(
    storage: &dyn Storage,
    shard: usize,
    snap: &SealedSnapshot,
) -> Result<()> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC_SEALED);
    out.extend_from_slice(&snap.next_seq.to_le_bytes());
    out.extend_from_slice(&snap.next_segment.to_le_bytes());
    out.extend_from_slice(&(snap.parts.len() as u32).to_le_bytes());
    for p in &snap.parts {
        out.push(p.tenant.len() as u8);
        out.extend_from_slice(p.tenant.as_bytes());
        out.extend_from_slice(&(p.sealed.len() as u64).to_le_bytes());
        out.extend_from_slice(&p.sealed);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    let name = snapshot_name(shard);
    let tmp = format!("{name}.tmp");
    let file = storage.open(&tmp, true)?;
    file.truncate(0)?;
    file.write_batch(&[(0, &out)], true)?;
    drop(file);
    storage.rename(&tmp, &name)?;
    storage.sync_dir("snap")?;
    Ok(())
}

fn parse_sealed(name: &str, b: &[u8]) -> Result<SealedSnapshot> {
    let bad = |why: &str| Error::Corrupt(format!("{name}: {why}"));
    if b.len() < 8 + 8 + 8 + 4 + 4 {
        return Err(bad("shorter than its header"));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().map_err(|_| bad("crc"))?) {
        return Err(bad("checksum mismatch"));
    }
    let u64_at = |at: usize| -> Result<u64> {
        body.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| bad("truncated"))
    };
    let next_seq = u64_at(8)?;
    let next_segment = u64_at(16)?;
    let count = u32::from_le_bytes(body[24..28].try_into().map_err(|_| bad("count"))?);
    let mut at = 28usize;
    let mut parts = Vec::new();
    for _ in 0..count {
        let n = *body.get(at).ok_or_else(|| bad("truncated"))? as usize;
        let tenant = body
            .get(at + 1..at + 1 + n)
            .and_then(|s| std::str::from_utf8(s).ok())
            .ok_or_else(|| bad("bad tenant name"))?
            .to_string();
        at += 1 + n;
        let len = usize::try_from(u64_at(at)?).map_err(|_| bad("too large"))?;
        at += 8;
        let sealed = body
            .get(at..at.checked_add(len).ok_or_else(|| bad("too large"))?)
            .ok_or_else(|| bad("truncated part"))?
            .to_vec();
        at += len;
        parts.push(SealedPart { tenant, sealed });
    }
    if at != body.len() {
        return Err(bad("bytes after the last part"));
    }
    Ok(SealedSnapshot {
        next_seq,
        next_segment,
        parts,
    })
}

/// Reads shard `shard`'s snapshot of either kind, if it exists.
pub(crate) fn read_any(storage: &dyn Storage, shard: usize) -> Result<Option<Loaded>> {
    let name = snapshot_name(shard);
    let file = match storage.open(&name, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let len = file.len()?;
    let mut magic = [0u8; 8];
    if len >= 8 {
        file.read_exact_at(&mut magic, 0)?;
    }
    if &magic == MAGIC_SEALED {
        let len = usize::try_from(len).map_err(|_| Error::Corrupt(format!("{name}: too large")))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, 0)?;
        return parse_sealed(&name, &buf).map(|s| Some(Loaded::Sealed(s)));
    }
    drop(file);
    Ok(read(storage, shard)?.map(Loaded::Plain))
}

/// An opened part's bytes as an aligned buffer for [`access`].
pub(crate) fn aligned(bytes: &[u8]) -> AlignedVec {
    let mut buf = AlignedVec::<16>::with_capacity(bytes.len());
    buf.extend_from_slice(bytes);
    buf
}

/// Validates the archive and gives access to it without copying.
pub(crate) fn access(buf: &[u8]) -> Result<&ArchivedShardSnapshot> {
    rkyv::access::<ArchivedShardSnapshot, rancor::Error>(buf)
        .map_err(|e| Error::Corrupt(format!("snapshot archive invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::MemStorage;
    use crate::ns::{parse_path, NsOp, SpaceTree};

    /// A shard snapshot written by the previous format still loads, each space with an empty
    /// change log and the same epoch at every load.
    #[test]
    fn v1_snapshot_loads_with_an_empty_change_log() {
        let mut t = SpaceTree::new();
        t.apply(&NsOp::Mkdir {
            path: parse_path("d").unwrap(),
            now: 7,
        })
        .unwrap();
        let s = t.to_snapshot();
        let v1 = ShardSnapshotV1 {
            next_seq: 3,
            next_segment: 1,
            tenants: vec![TenantSnapshot {
                name: "t".into(),
                quota: None,
            }],
            spaces: vec![SpaceEntrySnapshotV1 {
                tenant: "t".into(),
                user: "u".into(),
                tree: SpaceSnapshotV1 {
                    nodes: s.nodes,
                    free: s.free,
                    contents: s.contents,
                    versions: s.versions,
                    props: s.props,
                    trash: s.trash,
                    next_trash_id: s.next_trash_id,
                    next_version_id: s.next_version_id,
                    quota: s.quota,
                },
            }],
        };
        let archive = rkyv::to_bytes::<rancor::Error>(&v1).unwrap();
        let mut file = vec![0u8; HEADER_LEN];
        file[..8].copy_from_slice(MAGIC_V1);
        file[8..16].copy_from_slice(&(archive.len() as u64).to_le_bytes());
        file[16..20].copy_from_slice(&crc32c::crc32c(&archive).to_le_bytes());
        file.extend_from_slice(&archive);
        let storage = MemStorage::new();
        let f = storage.open(&snapshot_name(0), true).unwrap();
        f.write_batch(&[(0, &file)], true).unwrap();
        let mut epochs = Vec::new();
        for _ in 0..2 {
            let buf = read(&storage, 0).unwrap().unwrap();
            let snap = access(&buf).unwrap();
            assert_eq!(snap.next_seq.to_native(), 3);
            let tree = SpaceTree::from_archived(&snap.spaces[0].tree).unwrap();
            assert!(tree.resolve(&parse_path("d").unwrap()).is_some());
            assert_eq!(tree.change_log_span(), (0, 0));
            assert_ne!(tree.sync_token().epoch, 0);
            epochs.push(tree.sync_token().epoch);
        }
        assert_eq!(epochs[0], epochs[1]);
    }
}
