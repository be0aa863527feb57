//! Reads: entry lookups, listings, properties, versions, trash, and ranged file reads as a
//! stream of verified chunk slices.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::Store;
use crate::chunk::DomainKey;
use crate::error::{Error, Result};
use crate::ns::{Content, EntryInfo, Name, PropName, TrashInfo, VersionInfo};
use crate::SpaceKey;

impl Store {
    pub fn stat(&self, key: &SpaceKey, path: &[Name]) -> Result<EntryInfo> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        tree.resolve(path)
            .and_then(|n| tree.stat(n))
            .ok_or(Error::NotFound)
    }

    /// Logical bytes of the files at and below the entry `id` (costs O(entries below it)).
    pub fn tree_bytes(&self, key: &SpaceKey, id: crate::NodeId) -> u64 {
        let Ok(sp) = self.space(key) else { return 0 };
        let tree = sp.tree.read();
        super::write::subtree_bytes(&tree, id)
    }

    /// The entry and its children (costs O(children)).
    pub fn list(&self, key: &SpaceKey, path: &[Name]) -> Result<(EntryInfo, Vec<EntryInfo>)> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        let node = tree.resolve(path).ok_or(Error::NotFound)?;
        let info = tree.stat(node).ok_or(Error::NotFound)?;
        Ok((info, tree.list(node)))
    }

    pub fn props(&self, key: &SpaceKey, path: &[Name]) -> Result<Vec<(PropName, Vec<u8>)>> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        let node = tree.resolve(path).ok_or(Error::NotFound)?;
        Ok(tree
            .props(node)
            .iter()
            .map(|p| (p.name.clone(), p.value.to_vec()))
            .collect())
    }

    /// Dead properties of the entry `id` (from a `stat` or `list`), without a path lookup.
    pub fn props_of(&self, key: &SpaceKey, id: crate::NodeId) -> Vec<(PropName, Vec<u8>)> {
        let Ok(sp) = self.space(key) else {
            return Vec::new();
        };
        let tree = sp.tree.read();
        tree.props(id)
            .iter()
            .map(|p| (p.name.clone(), p.value.to_vec()))
            .collect()
    }

    pub fn versions(&self, key: &SpaceKey, path: &[Name]) -> Result<Vec<VersionInfo>> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        tree.versions(path)
    }

    pub fn trash(&self, key: &SpaceKey) -> Result<Vec<TrashInfo>> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        Ok(tree.trash())
    }

    /// Opens a file for reading: `range` is (start, length) in bytes, `None` for all of it.
    /// Only the chunks overlapping the range are read; each is verified against its id.
    pub fn read(
        &self,
        key: &SpaceKey,
        path: &[Name],
        range: Option<(u64, u64)>,
    ) -> Result<(EntryInfo, ContentStream)> {
        let info = self.stat(key, path)?;
        let stream = self.read_entry(key, &info, range)?;
        Ok((info, stream))
    }

    /// Like [`Store::read`] for an entry already looked up with [`Store::stat`] in `key`'s
    /// space (one lookup less when the caller needed the entry first).
    pub fn read_entry(
        &self,
        key: &SpaceKey,
        info: &EntryInfo,
        range: Option<(u64, u64)>,
    ) -> Result<ContentStream> {
        let content = info.content.clone().ok_or(Error::IsADirectory)?;
        let tenant = self.tenant(key.tenant())?;
        let (start, len) = range.unwrap_or((0, content.size));
        if start.checked_add(len).is_none_or(|end| end > content.size) {
            return Err(Error::Invalid("range outside the file"));
        }
        Ok(ContentStream::new(
            self.clone(),
            tenant.key.clone(),
            content,
            start,
            len,
        ))
    }

    /// Reads a whole range into memory (convenience for tests and tools).
    pub async fn read_to_vec(
        &self,
        key: &SpaceKey,
        path: &[Name],
        range: Option<(u64, u64)>,
    ) -> Result<Vec<u8>> {
        let (_, mut stream) = self.read(key, path, range)?;
        let mut out = Vec::new();
        while let Some(b) = stream.next().await {
            out.extend_from_slice(&b?);
        }
        Ok(out)
    }

    /// Chunk `id` of domain `key`: from the cache, or read from its pack, verified and cached.
    pub(crate) fn read_chunk_verified(
        &self,
        key: &DomainKey,
        id: &crate::ChunkId,
    ) -> Result<Bytes> {
        if let Some(data) = self.inner.cache.get(key, id) {
            return Ok(data);
        }
        let data = self.read_chunk_from_disk(key, id)?;
        self.inner.cache.insert(key, *id, &data);
        Ok(data)
    }

    /// Chunk `id` of domain `key`, read from its pack and verified, never from the cache.
    pub(super) fn read_chunk_from_disk(
        &self,
        key: &DomainKey,
        id: &crate::ChunkId,
    ) -> Result<Bytes> {
        let data = self.inner.chunks.read_raw(id)?;
        if key.chunk_id(&data) != *id {
            return Err(Error::Integrity(format!(
                "chunk {id} does not match its hash"
            )));
        }
        Ok(data)
    }
}

/// The bytes of one range of a file, chunk by chunk. Each chunk is read from its pack and
/// checked against its keyed hash before any of it is yielded; a mismatch is an error item.
pub struct ContentStream {
    store: Store,
    key: DomainKey,
    content: Arc<Content>,
    /// Next chunk index to read.
    next: usize,
    /// Chunk index one past the last to read.
    end: usize,
    first_offset: usize,
    last_end: usize,
    first: usize,
    remaining: u64,
}

impl ContentStream {
    pub(crate) fn new(
        store: Store,
        key: DomainKey,
        content: Arc<Content>,
        start: u64,
        len: u64,
    ) -> Self {
        let (first, end, first_offset, last_end) = match content.span(start, len) {
            Some(span) => (
                span.chunks.start,
                span.chunks.end,
                span.first_offset as usize,
                span.last_end as usize,
            ),
            None => (0, 0, 0, 0),
        };
        ContentStream {
            store,
            key,
            content,
            next: first,
            end,
            first_offset,
            last_end,
            first,
            remaining: len,
        }
    }

    /// Bytes not yet yielded.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Chunks not yet read (a whole small file is one).
    pub fn chunks_left(&self) -> usize {
        self.end - self.next
    }

    /// Reads and verifies the next chunk now, on the calling thread (what polling does).
    pub fn next_slice(&mut self) -> Option<Result<Bytes>> {
        if self.next >= self.end {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let r = self.content.chunks.get(i)?;
        let data = match self.store.read_chunk_verified(&self.key, &r.id) {
            Ok(d) => d,
            Err(e) => {
                self.next = self.end;
                return Some(Err(e));
            }
        };
        let lo = if i == self.first {
            self.first_offset
        } else {
            0
        };
        let hi = if i + 1 == self.end {
            self.last_end
        } else {
            data.len()
        };
        if lo > hi || hi > data.len() {
            self.next = self.end;
            return Some(Err(crate::Error::Integrity(
                "chunk shorter than recorded".into(),
            )));
        }
        let slice = data.slice(lo..hi);
        self.remaining -= slice.len() as u64;
        Some(Ok(slice))
    }
}

impl Stream for ContentStream {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.get_mut().next_slice())
    }
}
