//! A file's content: its hash, size and ordered chunk list, plus ranged-read span lookup.

use std::ops::Range;

use crate::limits::{CHUNK_SIZE_MAX_LIMIT, CONTENT_CHUNKS_MAX, FILE_SIZE_MAX};
use crate::{ChunkId, ContentHash, Error, Result};

/// One chunk of a file: its identity and length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub len: u32,
}

/// A file's bytes, described: whole-file hash, size, and the chunks in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Content {
    pub hash: ContentHash,
    pub size: u64,
    pub chunks: Box<[ChunkRef]>,
}

/// The chunks covering a byte range: `chunks` indexes [`Content::chunks`]; the range
/// starts `first_offset` bytes into the first chunk and ends `last_end` bytes into the
/// last one (exclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkSpan {
    pub chunks: Range<usize>,
    pub first_offset: u32,
    pub last_end: u32,
}

impl Content {
    /// The empty file's content (no chunks).
    pub fn empty(hash: ContentHash) -> Content {
        Content {
            hash,
            size: 0,
            chunks: Box::new([]),
        }
    }

    /// Checks the description is self-consistent: chunk lengths in 1..=CHUNK_SIZE_MAX_LIMIT,
    /// summing to `size`, within FILE_SIZE_MAX and CONTENT_CHUNKS_MAX.
    pub fn validate(&self) -> Result<()> {
        if self.size > FILE_SIZE_MAX {
            return Err(Error::LimitExceeded("file size"));
        }
        if self.chunks.len() > CONTENT_CHUNKS_MAX {
            return Err(Error::LimitExceeded("chunks per file"));
        }
        let mut sum = 0u64;
        for c in self.chunks.iter() {
            if c.len == 0 || c.len as usize > CHUNK_SIZE_MAX_LIMIT {
                return Err(Error::Invalid("chunk length out of range"));
            }
            sum += u64::from(c.len);
        }
        if sum != self.size {
            return Err(Error::Invalid("chunk lengths do not sum to the size"));
        }
        Ok(())
    }

    /// Which chunks hold bytes `start..start+len`. `None` for an empty range or one that
    /// reaches past the end. Costs O(chunks before the range's end).
    pub fn span(&self, start: u64, len: u64) -> Option<ChunkSpan> {
        let end = start.checked_add(len)?;
        if len == 0 || end > self.size {
            return None;
        }
        let mut off = 0u64;
        let mut first = None;
        for (i, c) in self.chunks.iter().enumerate() {
            let c_end = off + u64::from(c.len);
            if first.is_none() && start < c_end {
                // start - off < c.len, which is a u32.
                first = Some((i, (start - off) as u32));
            }
            if end <= c_end {
                let (fi, fo) = first?;
                return Some(ChunkSpan {
                    chunks: fi..i + 1,
                    first_offset: fo,
                    last_end: (end - off) as u32,
                });
            }
            off = c_end;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(lens: &[u32]) -> Content {
        let chunks: Vec<ChunkRef> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| ChunkRef {
                id: ChunkId([i as u8; 32]),
                len,
            })
            .collect();
        Content {
            hash: ContentHash([9; 32]),
            size: lens.iter().map(|&l| u64::from(l)).sum(),
            chunks: chunks.into(),
        }
    }

    #[test]
    fn validate_checks_sum_and_lengths() {
        assert!(content(&[10, 20]).validate().is_ok());
        let mut c = content(&[10, 20]);
        c.size = 31;
        assert!(c.validate().is_err());
        assert!(content(&[10, 0]).validate().is_err());
        assert!(Content::empty(ContentHash([0; 32])).validate().is_ok());
    }

    #[test]
    fn span_matches_brute_force() {
        let c = content(&[10, 5, 1, 20]);
        let lens = [10u64, 5, 1, 20];
        for start in 0..c.size {
            for len in 1..=(c.size - start) {
                let s = c.span(start, len).unwrap();
                // Brute force: the chunk holding byte b.
                let chunk_of = |b: u64| {
                    let mut off = 0;
                    for (i, l) in lens.iter().enumerate() {
                        if b < off + l {
                            return (i, b - off);
                        }
                        off += l;
                    }
                    unreachable!()
                };
                let (fi, fo) = chunk_of(start);
                let (li, lo) = chunk_of(start + len - 1);
                assert_eq!(s.chunks, fi..li + 1);
                assert_eq!(u64::from(s.first_offset), fo);
                assert_eq!(u64::from(s.last_end), lo + 1);
            }
        }
        assert!(c.span(0, 0).is_none());
        assert!(c.span(30, 7).is_none());
        assert!(c.span(u64::MAX, 2).is_none());
    }
}
