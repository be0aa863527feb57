//! The input format of the `engine_open_store` fuzz target: a list of tagged sections that
//! become the files of a one-shard store (checksums and framing filled in where a section
//! asks for it, so the fuzzer reaches the decoders behind them).
//!
//! A section is a tag byte, a u32 little-endian length and that many bytes (cut short at
//! the end of the input). Tags (taken modulo [`TAGS`]) are the `TAG_*` constants.

use skab_engine::fuzzing as f;

/// `store.meta`, as is.
pub const TAG_META_RAW: u8 = 0;
/// A shard snapshot archive, framed into `snap/000.snap` with a correct header.
pub const TAG_SNAPSHOT_ARCHIVE: u8 = 1;
/// `snap/000.snap`, as is.
pub const TAG_SNAPSHOT_RAW: u8 = 2;
/// One WAL record payload, framed (next sequence number, checksum) into the current segment.
pub const TAG_WAL_RECORD: u8 = 3;
/// Bytes appended as they are to the current WAL segment.
pub const TAG_WAL_RAW: u8 = 4;
/// Starts the next WAL segment; optional body: segment number u64, next sequence number u64.
pub const TAG_WAL_SEGMENT: u8 = 5;
/// Bytes appended as they are to the current pack.
pub const TAG_PACK_RAW: u8 = 6;
/// One chunk, framed as a pack record (header with checksums) into the current pack.
pub const TAG_PACK_CHUNK: u8 = 7;
/// Starts the next pack (with a correct header).
pub const TAG_PACK_NEW: u8 = 8;
/// `index/chunks.ckpt`, as is.
pub const TAG_CHECKPOINT_RAW: u8 = 9;
/// `index/chunks.ckpt` with its trailing checksum computed.
pub const TAG_CHECKPOINT_BODY: u8 = 10;
/// Number of tags.
pub const TAGS: u8 = 11;

/// Appends one section to `out`.
pub fn section(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
}

/// Splits an input into (tag, body) sections.
pub fn sections(mut data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = data.split_first() {
        let (len, rest) = match rest.split_first_chunk::<4>() {
            Some((l, r)) => (u32::from_le_bytes(*l) as usize, r),
            None => (rest.len(), &[][..]),
        };
        let (body, rest) = rest.split_at(len.min(rest.len()));
        out.push((tag % TAGS, body));
        data = rest;
    }
    out
}

/// The store files an input describes.
pub fn files(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut put = |name: String, bytes: Vec<u8>| match files.iter_mut().find(|(n, _)| *n == name) {
        Some(f) => f.1 = bytes,
        None => files.push((name, bytes)),
    };
    let mut wal: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut seq = 1u64;
    let mut packs: Vec<(u32, Vec<u8>)> = Vec::new();
    for (tag, body) in sections(data) {
        match tag {
            TAG_META_RAW => put("store.meta".into(), body.to_vec()),
            TAG_SNAPSHOT_ARCHIVE => put(f::snapshot_name(0), f::frame_snapshot(body)),
            TAG_SNAPSHOT_RAW => put(f::snapshot_name(0), body.to_vec()),
            TAG_WAL_RECORD | TAG_WAL_RAW => {
                if wal.is_empty() {
                    wal.push((0, f::wal_segment_header(0)));
                }
                if let Some((_, seg)) = wal.last_mut() {
                    if tag == TAG_WAL_RECORD {
                        f::wal_frame_record(seq, body, seg);
                        seq = seq.wrapping_add(1);
                    } else {
                        seg.extend_from_slice(body);
                    }
                }
            }
            TAG_WAL_SEGMENT => {
                let u64_at = |at: usize| {
                    body.get(at..at + 8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_le_bytes)
                };
                let number = u64_at(0)
                    .unwrap_or_else(|| wal.last().map_or(0, |(n, _)| n.wrapping_add(1)))
                    % 1_000_000;
                if let Some(s) = u64_at(8) {
                    seq = s;
                }
                wal.push((number, f::wal_segment_header(number)));
            }
            TAG_PACK_RAW | TAG_PACK_CHUNK => {
                if packs.is_empty() {
                    packs.push((1, f::pack_header(1)));
                }
                if let Some((_, p)) = packs.last_mut() {
                    if tag == TAG_PACK_CHUNK {
                        f::pack_frame_record(body, p);
                    } else {
                        p.extend_from_slice(body);
                    }
                }
            }
            TAG_PACK_NEW => {
                let id = packs.last().map_or(1, |(n, _)| n.wrapping_add(1));
                packs.push((id, f::pack_header(id)));
            }
            TAG_CHECKPOINT_RAW => put(f::CHECKPOINT_NAME.into(), body.to_vec()),
            TAG_CHECKPOINT_BODY => {
                let mut b = body.to_vec();
                let crc = crc32c(&b);
                b.extend_from_slice(&crc.to_le_bytes());
                put(f::CHECKPOINT_NAME.into(), b);
            }
            _ => {}
        }
    }
    for (n, seg) in wal {
        put(f::wal_segment_name(0, n), seg);
    }
    for (id, p) in packs {
        put(f::pack_name(id), p);
    }
    files
}

/// CRC32C (Castagnoli), as the engine's formats use.
pub fn crc32c(data: &[u8]) -> u32 {
    f::crc32c(data)
}

/// Magic of the user log (`users/users.log`).
pub const USER_LOG_MAGIC: &[u8; 8] = b"SKABUSR1";

/// The user log an input of the `users_log` target describes: the magic, each complete
/// section's payload framed as (length u32, CRC32C u32, payload), a cut-short one as is.
pub fn user_log(mut data: &[u8]) -> Vec<u8> {
    let mut out = USER_LOG_MAGIC.to_vec();
    while let Some((len, rest)) = data.split_first_chunk::<2>() {
        let len = u16::from_le_bytes(*len) as usize;
        if len > rest.len() {
            out.extend_from_slice(rest);
            return out;
        }
        let (payload, rest) = rest.split_at(len);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&crc32c(payload).to_le_bytes());
        out.extend_from_slice(payload);
        data = rest;
    }
    out.extend_from_slice(data);
    out
}

/// The inverse of [`user_log`] for a well-formed log: its payloads as sections.
pub fn user_log_sections(log: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = log.get(USER_LOG_MAGIC.len()..).unwrap_or_default();
    while let Some((header, body)) = rest.split_first_chunk::<8>() {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let Some(payload) = body.get(..len) else {
            break;
        };
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(payload);
        rest = &body[len..];
    }
    out
}
