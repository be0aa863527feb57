//! Entry points for the fuzz targets in `fuzz/`: thin wrappers over the crate-private
//! decoders of on-disk bytes. Not a stable API; every function must return, never panic.

use std::sync::Arc;

use rkyv::util::AlignedVec;

use crate::error::{Error, Result};
use crate::io::{MemStorage, Storage};
use crate::ns::{self, SpaceTree};
use crate::pack::{checkpoint, format, writer};
use crate::store::{meta, record, snapshot, SpaceKey, Store, StoreConfig};
use crate::wal::frame;

/// Decodes a WAL segment, then each record payload in it. Returns the records decoded.
pub fn wal_segment(data: &[u8]) -> Result<usize> {
    let seg = frame::decode_segment(data).map_err(|e| Error::Corrupt(e.into()))?;
    let mut ok = 0;
    for (_, payload) in seg.records {
        if record::decode_view(payload).is_ok() {
            ok += 1;
        }
    }
    Ok(ok)
}

/// Decodes one WAL record payload (the postcard-encoded change) and, for a space change,
/// applies it to an empty space tree.
pub fn wal_record(data: &[u8]) -> Result<()> {
    let rec = record::decode_view(data).map_err(Error::Corrupt)?;
    if let record::WalRecordView::Space { op, .. } = rec {
        SpaceTree::new().apply(&op)?;
    }
    Ok(())
}

/// Parses a pack header, and a chunk record header from the same bytes.
pub fn pack_headers(data: &[u8]) -> (bool, bool) {
    (
        format::parse_pack_header(data).is_ok(),
        format::parse_record_header(data).is_ok(),
    )
}

/// Decodes a chunk index checkpoint file. Returns its entry count.
pub fn chunk_checkpoint(data: &[u8]) -> Result<usize> {
    checkpoint::decode(data).map(|(_, e)| e.len())
}

/// Decodes a `store.meta` identity file. Returns its shard count.
pub fn store_meta(data: &[u8]) -> Result<usize> {
    meta::decode(data).map(|m| m.shards)
}

/// Validates a shard snapshot archive (the bytes after the file header) and rebuilds every
/// space in it, as recovery does. Returns the spaces rebuilt.
pub fn shard_snapshot(data: &[u8]) -> Result<usize> {
    let mut buf = AlignedVec::<16>::with_capacity(data.len());
    buf.extend_from_slice(data);
    let snap = snapshot::access(&buf)?;
    let mut n = 0;
    for s in snap.spaces.iter() {
        SpaceKey::new(s.tenant.as_str(), s.user.as_str())?;
        SpaceTree::from_archived(&s.tree)?;
        n += 1;
    }
    Ok(n)
}

/// Decodes a namespace snapshot ([`ns::decode_snapshot`]). Returns the spaces rebuilt.
pub fn space_snapshot(data: &[u8]) -> Result<usize> {
    ns::decode_snapshot(data).map(|v| v.len())
}

/// Validates a name and a path ([`ns::Name::new`], [`ns::parse_path`]).
pub fn names(s: &str) -> (bool, bool) {
    (ns::Name::new(s).is_ok(), ns::parse_path(s).is_ok())
}

/// A snapshot file around `archive`: header, length and a correct checksum.
pub fn frame_snapshot(archive: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + archive.len());
    out.extend_from_slice(b"SKABSNP1");
    out.extend_from_slice(&(archive.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(archive).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(archive);
    out
}

/// A WAL segment header for segment `segment`.
pub fn wal_segment_header(segment: u64) -> Vec<u8> {
    frame::segment_header(segment).to_vec()
}

/// Appends one framed WAL record (sequence number, payload, checksum) to `out`.
pub fn wal_frame_record(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    frame::encode_record(seq, payload, out);
}

/// A pack header for pack `pack`.
pub fn pack_header(pack: u32) -> Vec<u8> {
    format::pack_header(crate::PackId(pack)).to_vec()
}

/// Appends a chunk record (header with correct checksums, then `data`) to `out`; `data`
/// is cut to the largest chunk a record may hold.
pub fn pack_frame_record(data: &[u8], out: &mut Vec<u8>) {
    let data = &data[..data.len().min(crate::limits::CHUNK_SIZE_MAX_LIMIT)];
    let id = crate::ChunkId(*blake3::hash(data).as_bytes());
    out.extend_from_slice(&format::record_header(&id, data));
    out.extend_from_slice(data);
}

/// The storage name of pack `pack`.
pub fn pack_name(pack: u32) -> String {
    writer::pack_name(crate::PackId(pack))
}

/// The storage name of WAL segment `segment` of shard `shard`.
pub fn wal_segment_name(shard: usize, segment: u64) -> String {
    crate::wal::log::segment_name(&format!("wal/{shard:03}"), segment)
}

/// The storage name of shard `shard`'s snapshot.
pub fn snapshot_name(shard: usize) -> String {
    snapshot::snapshot_name(shard)
}

/// The storage name of the chunk index checkpoint.
pub const CHECKPOINT_NAME: &str = checkpoint::CHECKPOINT_NAME;

/// Opens a one-shard store over an in-memory storage holding exactly `files`
/// (name, contents), runs recovery, and closes it again.
pub fn open_store(files: &[(String, Vec<u8>)]) -> Result<()> {
    let mem = MemStorage::new();
    for (name, bytes) in files {
        let f = mem.open(name, true)?;
        f.write_batch(&[(0, bytes)], true)?;
        if let Some((dir, _)) = name.rsplit_once('/') {
            mem.sync_dir(dir)?;
        }
    }
    mem.sync_dir("")?;
    let config = StoreConfig {
        shards: 1,
        pack_size_target: crate::limits::PACK_SIZE_TARGET_MIN,
        ..StoreConfig::default()
    };
    let storage: Arc<dyn Storage> = Arc::new(mem);
    let store = Store::open_with_storage(storage, config)?;
    drop(store);
    Ok(())
}

/// CRC32C of `data`, as every checksum in the engine's formats.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// The (sequence number, payload) records of a WAL segment, or nothing if it does not decode.
pub fn wal_payloads(data: &[u8]) -> Vec<(u64, Vec<u8>)> {
    frame::decode_segment(data)
        .map(|d| {
            d.records
                .into_iter()
                .map(|(s, p)| (s, p.to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_helpers_build_what_the_decoders_accept() {
        let mut seg = wal_segment_header(0);
        wal_frame_record(1, &[9, 9], &mut seg);
        assert_eq!(wal_payloads(&seg), vec![(1, vec![9, 9])]);
        assert_eq!(wal_segment(&seg).unwrap(), 0, "[9, 9] is no valid record");
        assert!(wal_segment(b"garbage").is_err());

        let mut pack = pack_header(3);
        pack_frame_record(b"chunk", &mut pack);
        assert_eq!(pack_headers(&pack), (true, false));
        assert_eq!(pack_headers(&pack[16..]), (false, true));

        assert!(shard_snapshot(&frame_snapshot(b"x")[24..]).is_err());
        assert!(store_meta(&[0; 52]).is_err());
        assert!(chunk_checkpoint(&[0; 28]).is_err());
        assert_eq!(names("a/b"), (false, true));
    }

    #[test]
    fn open_store_over_given_files() {
        open_store(&[]).unwrap();
        let mut seg = wal_segment_header(0);
        wal_frame_record(1, b"\x01\xff\xff", &mut seg);
        let err = open_store(&[(wal_segment_name(0, 0), seg)]).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
        let err = open_store(&[("store.meta".into(), vec![0; 52])]).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    }
}
