//! WAL recovery: reads a shard's segments back in order, checks their headers and sequence
//! numbers, cuts a torn tail of the last segment, and says where appending goes on.

use std::sync::Arc;

use super::frame::{self, DecodedSegment, SegmentEnd, SEGMENT_HEADER_LEN};
use super::log::parse_segment_name;
use crate::error::{Error, Result};
use crate::io::{Storage, StorageFile};

/// Records read back when a log is opened, oldest first.
pub(crate) struct Replay {
    pub records: Vec<(u64, Vec<u8>)>,
    /// Bytes cut from a torn tail of the last segment (0 when it ended cleanly; zeros
    /// after the last record are a clean end and not counted).
    pub torn_bytes: u64,
    #[cfg_attr(not(test), allow(dead_code))]
    pub segments: usize,
}

/// What [`replay`] found besides the records.
pub(super) struct Recovered {
    pub replay: Replay,
    /// The last segment, to append to: (segment, file, end of its records, file length).
    pub open_tail: Option<(u64, Arc<dyn StorageFile>, u64, u64)>,
    /// The highest segment number found (also when its header was torn and it was removed).
    pub last_segment: Option<u64>,
    /// The sequence number of the last record.
    pub last_seq: Option<u64>,
}

/// Replays the log in `dir` from segment `first_segment` on (earlier ones are covered by a
/// snapshot and are removed). A torn tail of the last segment is cut off; damage anywhere
/// else is `Error::Corrupt`. Zeros after the last record of a segment are a clean end.
pub(super) fn replay(storage: &dyn Storage, dir: &str, first_segment: u64) -> Result<Recovered> {
    let mut segments: Vec<(u64, String)> = Vec::new();
    for name in storage.list(&format!("{dir}/"))? {
        match parse_segment_name(dir, &name) {
            Some(n) if n < first_segment => storage.remove(&name)?,
            Some(n) => segments.push((n, name)),
            None => {}
        }
    }
    segments.sort();
    let mut records = Vec::new();
    let mut torn_bytes = 0;
    let mut last_seq: Option<u64> = None;
    // (segment, file, end of its records, file length)
    let mut open_tail: Option<(u64, Arc<dyn StorageFile>, u64, u64)> = None;
    let count = segments.len();
    for (i, (number, name)) in segments.iter().enumerate() {
        let is_last = i + 1 == count;
        if i > 0 && *number != segments[i - 1].0 + 1 {
            return Err(Error::Corrupt(format!("WAL segment missing before {name}")));
        }
        let file = storage.open(name, false)?;
        let buf = read_whole(file.as_ref())?;
        let decoded = match frame::decode_segment(&buf) {
            Ok(d) => d,
            Err(_) if is_last && buf.len() < SEGMENT_HEADER_LEN * 2 => {
                // A segment whose header never became durable (crash while rotating).
                storage.remove(name)?;
                torn_bytes += buf.len() as u64;
                continue;
            }
            Err(why) => return Err(Error::Corrupt(format!("{name}: {why}"))),
        };
        let DecodedSegment {
            segment,
            records: recs,
            end,
        } = decoded;
        if segment != *number {
            return Err(Error::Corrupt(format!(
                "{name}: header names segment {segment}"
            )));
        }
        for (seq, payload) in recs {
            if let Some(prev) = last_seq {
                if seq <= prev {
                    return Err(Error::Corrupt(format!("{name}: sequence goes back")));
                }
            }
            last_seq = Some(seq);
            records.push((seq, payload.to_vec()));
        }
        let mut file_len = buf.len() as u64;
        let data_end = end.valid_len().unwrap_or(file_len);
        if let SegmentEnd::Torn {
            valid_len,
            garbage,
            reason,
        } = end
        {
            if !is_last {
                return Err(Error::Corrupt(format!(
                    "{name}: {reason} before the last segment"
                )));
            }
            tracing::warn!(segment = %name, reason, cut = garbage, "cutting torn WAL tail");
            torn_bytes += garbage;
            file.truncate(valid_len)?;
            file.sync_data()?;
            file_len = valid_len;
        }
        // A zero tail (pre-zeroed space, or a rotated segment whose cut a crash took)
        // stays: appends overwrite it, and old segments go once a snapshot covers them.
        if is_last {
            open_tail = Some((*number, file, data_end, file_len));
        }
    }
    Ok(Recovered {
        replay: Replay {
            records,
            torn_bytes,
            segments: count,
        },
        open_tail,
        last_segment: segments.last().map(|(n, _)| *n),
        last_seq,
    })
}

fn read_whole(file: &dyn StorageFile) -> Result<Vec<u8>> {
    let len = file.len()?;
    let len = usize::try_from(len).map_err(|_| Error::Corrupt("WAL segment too large".into()))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}
