//! Files assembled from contents already stored (chunked uploads): the new file's chunk list
//! is the parts' chunk lists end to end, so committing it writes and copies no data.

use std::sync::Arc;

use super::write::put_op;
use super::Store;
use crate::error::{Error, Result};
use crate::limits::FILE_SIZE_MAX;
use crate::ns::{Content, EntryInfo, Name};
use crate::{ContentHash, SpaceKey};

/// Domain of the hash that names an assembled content (BLAKE3 `derive_key` context).
const ASSEMBLED_HASH_CONTEXT: &str = "skab 2026-12 assembled content v1";

impl Store {
    /// Makes the concatenation of `parts`, in order, the content of `path` in space `key`
    /// (overwriting keeps the old content as a version, as a put does). The parts' chunks must
    /// stay referenced (by the files they were uploaded as) until this returns; it costs
    /// O(chunks) and one log record, whatever the size. `mtime` as in [`Store::put_at`].
    pub async fn put_assembled(
        &self,
        key: &SpaceKey,
        path: &[Name],
        parts: &[Arc<Content>],
        mtime: Option<i64>,
    ) -> Result<EntryInfo> {
        let content = assemble(parts)?;
        let old_size = self.stat(key, path).map(|i| i.size).unwrap_or(0);
        let growth = content.size.saturating_sub(old_size);
        let op = put_op(
            path,
            content,
            mtime,
            super::now_ns(),
            self.inner.config.versions_kept,
        );
        self.mutate(key, op, growth)
            .await?
            .info
            .ok_or(Error::NotFound)
    }
}

/// The content made of `parts` end to end. One part is itself (same hash as a single upload
/// of those bytes); several are named by a hash of their hashes and sizes, which the parts'
/// hashes (keyed per dedup domain) determine, and which no single upload's hash can equal.
fn assemble(parts: &[Arc<Content>]) -> Result<Content> {
    let [first, rest @ ..] = parts else {
        return Err(Error::Invalid("an assembled file needs at least one part"));
    };
    if rest.is_empty() {
        return Ok(Content::clone(first));
    }
    let mut size = 0u64;
    let mut hasher = blake3::Hasher::new_derive_key(ASSEMBLED_HASH_CONTEXT);
    for p in parts {
        size = size
            .checked_add(p.size)
            .filter(|s| *s <= FILE_SIZE_MAX)
            .ok_or(Error::LimitExceeded("file size"))?;
        hasher.update(&p.hash.0);
        hasher.update(&p.size.to_le_bytes());
    }
    let chunks: Box<[_]> = parts
        .iter()
        .flat_map(|p| p.chunks.iter().copied())
        .collect();
    let content = Content {
        hash: ContentHash(*hasher.finalize().as_bytes()),
        size,
        chunks,
    };
    content.validate()?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns::ChunkRef;
    use crate::ChunkId;

    fn part(b: u8, lens: &[u32]) -> Arc<Content> {
        Arc::new(Content {
            hash: ContentHash([b; 32]),
            size: lens.iter().map(|l| u64::from(*l)).sum(),
            chunks: lens
                .iter()
                .enumerate()
                .map(|(i, len)| ChunkRef {
                    id: ChunkId([b.wrapping_add(i as u8); 32]),
                    len: *len,
                })
                .collect(),
        })
    }

    #[test]
    fn parts_end_to_end() {
        let (a, b) = (part(1, &[10, 20]), part(2, &[5]));
        let c = assemble(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(c.size, 35);
        let lens: Vec<u32> = c.chunks.iter().map(|r| r.len).collect();
        assert_eq!(lens, [10, 20, 5]);
        assert_ne!(c.hash, a.hash);
        // Order matters for the name as for the bytes.
        assert_ne!(assemble(&[b, a.clone()]).unwrap().hash, c.hash);
        // One part is that part.
        assert_eq!(assemble(std::slice::from_ref(&a)).unwrap(), *a);
        assert!(assemble(&[]).is_err());
    }
}
