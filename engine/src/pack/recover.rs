//! Pack recovery: rebuilds the chunk index from the checkpoint and the pack records after it,
//! cuts a torn tail of the last pack(s), skips damaged records that valid ones follow, and
//! says where appending goes on.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;

use super::checkpoint::{self, Located};
use super::format::{self, PACK_HEADER_LEN, RECORD_HEADER_LEN};
use super::index::{ChunkEntry, PackUsage};
use super::writer::{pack_name, parse_pack_name, Pos};
use crate::error::{Error, Result};
use crate::ids::{ChunkId, PackId};
use crate::io::{Storage, StorageFile};

/// Facts about open and recovery.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ChunkRecovery {
    pub from_checkpoint: u64,
    pub scanned_records: u64,
    /// Non-zero bytes of torn tails (zeros after the last record are pre-zeroed space, a clean
    /// end, and not counted).
    pub torn_bytes: u64,
    /// Bytes skipped inside packs because records there failed their checks while valid
    /// records followed (damage, not a torn tail: nothing after it is cut).
    pub damaged_bytes: u64,
}

/// What recovering the packs found: the chunk index and where appending goes on.
pub(super) struct Recovered {
    pub index: DashMap<ChunkId, ChunkEntry>,
    /// Record bytes per pack (`dead` not yet known).
    pub usage: HashMap<PackId, PackUsage>,
    pub files: DashMap<PackId, Arc<dyn StorageFile>>,
    /// The last pack with a valid header: (pack, end of its records, file length).
    pub last: Option<(PackId, u64, u64)>,
    /// Every pack found, sorted.
    pub packs: Vec<PackId>,
    pub rec: ChunkRecovery,
}

/// Recovers the packs in `storage`: loads the checkpoint, scans the records after it, cuts a
/// torn tail from the last pack.
pub(super) fn recover(storage: &dyn Storage) -> Result<Recovered> {
    let mut rec = ChunkRecovery::default();
    let index: DashMap<ChunkId, ChunkEntry> = DashMap::new();
    let mut usage: HashMap<PackId, PackUsage> = HashMap::new();
    let files: DashMap<PackId, Arc<dyn StorageFile>> = DashMap::new();
    let mut packs: Vec<PackId> = storage
        .list("packs/")?
        .iter()
        .filter_map(|n| parse_pack_name(n))
        .collect();
    packs.sort();
    // Packs after the last one with records hold a header only (the writer prepares the
    // next pack ahead): the pack before them is the one a crash may have left torn.
    let mut tail_from = packs.len().saturating_sub(1);
    while tail_from > 0
        && storage.open(&pack_name(packs[tail_from]), false)?.len()? <= PACK_HEADER_LEN
    {
        tail_from -= 1;
    }
    let covered = match checkpoint::read(storage)? {
        Some((covered, entries)) => {
            rec.from_checkpoint = entries.len() as u64;
            for e in entries {
                index.insert(
                    e.id,
                    ChunkEntry {
                        pack: e.pack,
                        offset: e.offset,
                        len: e.len,
                        refs: 0,
                    },
                );
            }
            covered
        }
        None => Pos::default(),
    };
    // (pack, end of its records, file length)
    let mut last: Option<(PackId, u64, u64)> = None;
    for (i, &pack) in packs.iter().enumerate() {
        let is_last = i + 1 == packs.len();
        let may_be_torn = i >= tail_from;
        let file = storage.open(&pack_name(pack), false)?;
        let file_len = file.len()?;
        let mut header = [0u8; PACK_HEADER_LEN as usize];
        if file_len < PACK_HEADER_LEN
            || file.read_exact_at(&mut header, 0).is_err()
            || format::parse_pack_header(&header) != Ok(pack)
        {
            if is_last {
                // Created but its header never became durable: start it afresh.
                rec.torn_bytes += file_len;
                drop(file);
                storage.remove(&pack_name(pack))?;
                continue;
            }
            return Err(Error::Corrupt(format!(
                "{}: bad pack header",
                pack_name(pack)
            )));
        }
        let start = if pack < covered.pack() {
            file_len
        } else if pack == covered.pack() {
            covered.offset().max(PACK_HEADER_LEN)
        } else {
            PACK_HEADER_LEN
        };
        let mut found = |loc: Located| {
            rec.scanned_records += 1;
            index.insert(
                loc.id,
                ChunkEntry {
                    pack: loc.pack,
                    offset: loc.offset,
                    len: loc.len,
                    refs: 0,
                },
            );
        };
        let mut file_len = file_len;
        let mut valid = scan_pack(file.as_ref(), pack, start, file_len, &mut found)?;
        // Zeros at the end are space pre-zeroed ahead of the writer: no record starts
        // there (a record begins with its non-zero magic), so they end the search.
        let zeros_from = if valid < file_len {
            zero_run_start(file.as_ref(), valid, file_len)?
        } else {
            file_len
        };
        // A record that fails its checks with valid records after it is damage (a bit
        // flip, a bad sector), not a torn tail: keep scanning after it, so the records
        // (acknowledged uploads) behind it are neither forgotten nor cut.
        while valid < zeros_from {
            let Some(next) = next_valid_record(file.as_ref(), valid + 1, zeros_from, file_len)?
            else {
                break;
            };
            tracing::error!(
                pack = pack.0,
                from = valid,
                to = next,
                "damaged pack records skipped; scrub will name the chunks they held"
            );
            rec.damaged_bytes += next - valid;
            valid = scan_pack(file.as_ref(), pack, next, file_len, &mut found)?;
        }
        let torn = valid < zeros_from;
        if torn {
            if !may_be_torn {
                tracing::error!(
                    pack = pack.0,
                    valid,
                    file_len,
                    "damaged records at the end of a sealed pack"
                );
            } else {
                tracing::warn!(
                    pack = pack.0,
                    cut = zeros_from - valid,
                    "cutting torn pack tail"
                );
                file.truncate(valid)?;
                file.sync_data()?;
                file_len = valid;
            }
            rec.torn_bytes += zeros_from - valid;
        } else if valid < file_len && !is_last {
            // The zero tail of a sealed pack whose cut a crash took: cut it now (best
            // effort). The last pack keeps its zeros: appends overwrite them.
            match file.truncate(valid).and_then(|()| file.sync_data()) {
                Ok(()) => file_len = valid,
                Err(e) => {
                    tracing::warn!(pack = pack.0, error = %e, "cannot cut a pack's zero tail")
                }
            }
        }
        let data_end = if may_be_torn || !torn {
            valid
        } else {
            file_len
        };
        usage.entry(pack).or_default().total = data_end - PACK_HEADER_LEN;
        files.insert(pack, file);
        last = Some((pack, valid, file_len));
    }
    Ok(Recovered {
        index,
        usage,
        files,
        last,
        packs,
        rec,
    })
}

/// Scans records of `pack` from `start` to `end`, calling `found` for each valid one.
/// Returns the end of the last valid record.
fn scan_pack(
    file: &dyn StorageFile,
    pack: PackId,
    start: u64,
    end: u64,
    found: &mut impl FnMut(Located),
) -> Result<u64> {
    let mut pos = start;
    let mut header = [0u8; RECORD_HEADER_LEN as usize];
    let mut data = Vec::new();
    while pos + RECORD_HEADER_LEN <= end {
        file.read_exact_at(&mut header, pos)?;
        let Ok(h) = format::parse_record_header(&header) else {
            break;
        };
        let data_start = pos + RECORD_HEADER_LEN;
        let data_end = data_start + h.len as u64;
        if data_end > end {
            break;
        }
        data.resize(h.len as usize, 0);
        file.read_exact_at(&mut data, data_start)?;
        if crc32c::crc32c(&data) != h.data_crc {
            break;
        }
        found(Located {
            id: h.id,
            pack,
            offset: data_start,
            len: h.len,
        });
        pos = data_end;
    }
    Ok(pos)
}

/// Bytes read at a time when searching a pack for records or for the start of its zero tail.
const SCAN_WINDOW: usize = 1 << 20;

/// The smallest `z` in `from..=end` such that bytes `z..end` of `file` are all zero (reads
/// backwards, so a long zero tail costs one pass over it and nothing before it).
fn zero_run_start(file: &dyn StorageFile, from: u64, end: u64) -> Result<u64> {
    let mut buf = vec![0u8; SCAN_WINDOW];
    let mut hi = end;
    while hi > from {
        let lo = hi.saturating_sub(SCAN_WINDOW as u64).max(from);
        let n = (hi - lo) as usize;
        file.read_exact_at(&mut buf[..n], lo)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            return Ok(lo + i as u64 + 1);
        }
        hi = lo;
    }
    Ok(from)
}

/// The offset of the first whole, checksum-valid record starting in `from..search_end` (its
/// data may reach up to `end`), if any.
fn next_valid_record(
    file: &dyn StorageFile,
    from: u64,
    search_end: u64,
    end: u64,
) -> Result<Option<u64>> {
    const WINDOW: usize = SCAN_WINDOW;
    let magic = format::RECORD_MAGIC;
    let mut buf = vec![0u8; WINDOW];
    let mut base = from;
    while base < search_end && base + RECORD_HEADER_LEN <= end {
        let n = ((search_end - base) as usize).min(WINDOW);
        file.read_exact_at(&mut buf[..n], base)?;
        let mut i = 0;
        while let Some(k) = buf[i..n].windows(magic.len()).position(|w| w == magic) {
            let pos = base + (i + k) as u64;
            if pos + RECORD_HEADER_LEN > end {
                return Ok(None);
            }
            if record_is_valid(file, pos, end)? {
                return Ok(Some(pos));
            }
            i += k + 1;
        }
        if n < WINDOW {
            break;
        }
        // Overlap so a magic split across windows is still seen.
        base += (WINDOW - magic.len()) as u64;
    }
    Ok(None)
}

fn record_is_valid(file: &dyn StorageFile, pos: u64, end: u64) -> Result<bool> {
    let mut header = [0u8; RECORD_HEADER_LEN as usize];
    file.read_exact_at(&mut header, pos)?;
    let Ok(h) = format::parse_record_header(&header) else {
        return Ok(false);
    };
    let data_end = pos + RECORD_HEADER_LEN + h.len as u64;
    if data_end > end {
        return Ok(false);
    }
    let mut data = vec![0u8; h.len as usize];
    file.read_exact_at(&mut data, pos + RECORD_HEADER_LEN)?;
    Ok(crc32c::crc32c(&data) == h.data_crc)
}
