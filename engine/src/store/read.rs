//! Reads: entry lookups, listings, properties, versions, trash, and ranged file reads as a
//! stream of verified chunk slices.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Future, Stream, StreamExt};
use tokio::sync::oneshot;

use super::{reader, Store};
use crate::chunk::DomainKey;
use crate::error::{Error, Result};
use crate::limits::READ_ON_LOOP_BYTES_MAX;
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

    /// Chunk `id` of domain `key` after a cache miss: read from its pack, verified, cached.
    fn read_chunk_uncached(&self, key: &DomainKey, id: &crate::ChunkId) -> Result<Bytes> {
        let data = self.read_chunk_from_disk(key, id)?;
        self.inner.cache.insert(key, *id, &data);
        Ok(data)
    }

    /// Chunk `id` of domain `key` if it can be had without waiting for the disk (from the
    /// chunk cache, or a small chunk from the page cache, verified here); `None` when it must
    /// be read (and cached) by a reader thread, which may wait.
    pub(crate) fn read_chunk_now(
        &self,
        key: &DomainKey,
        id: &crate::ChunkId,
    ) -> Option<Result<Bytes>> {
        if let Some(data) = self.inner.cache.get(key, id) {
            return Some(Ok(data));
        }
        let data = match self
            .inner
            .chunks
            .read_raw_cached(id, READ_ON_LOOP_BYTES_MAX)
        {
            Ok(Some(d)) => d,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        let data = match key.verified(id, data) {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        self.inner.cache.insert(key, *id, &data);
        Some(Ok(data))
    }

    /// Chunk `id` of domain `key`, read from its pack and verified, never from the cache.
    pub(super) fn read_chunk_from_disk(
        &self,
        key: &DomainKey,
        id: &crate::ChunkId,
    ) -> Result<Bytes> {
        let data = self.inner.chunks.read_raw(id)?;
        key.verified(id, data)
    }
}

/// The bytes of one range of a file, chunk by chunk. Each chunk is read from its pack and
/// checked against its keyed hash before any of it is yielded; a mismatch is an error item,
/// and the stream ends after an error.
///
/// Polling never waits for the disk: a chunk in the chunk cache, or a small one in the page
/// cache, is yielded at once; any other is read and verified by a reader thread
/// (`reader.rs`) while the poller's task waits (docs/io.md, "Reads").
pub struct ContentStream {
    store: Store,
    key: DomainKey,
    content: Arc<Content>,
    /// Next chunk index to yield.
    next: usize,
    /// Chunk index one past the last to read.
    end: usize,
    first_offset: usize,
    last_end: usize,
    first: usize,
    remaining: u64,
    /// The reader thread's answer for chunk `next`, while one is on its way.
    pending: Option<oneshot::Receiver<Result<Bytes>>>,
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
            pending: None,
        }
    }

    /// Bytes not yet yielded.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Chunks not yet yielded (a whole small file is one).
    pub fn chunks_left(&self) -> usize {
        self.end - self.next
    }

    /// The slice of chunk `next` that the range covers, or the error that ends the stream.
    fn finish(&mut self, read: Result<Bytes>) -> Result<Bytes> {
        let i = self.next;
        self.next += 1;
        let data = match read {
            Ok(d) => d,
            Err(e) => {
                self.next = self.end;
                return Err(e);
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
            return Err(Error::Integrity("chunk shorter than recorded".into()));
        }
        let slice = data.slice(lo..hi);
        self.remaining -= slice.len() as u64;
        Ok(slice)
    }
}

impl Stream for ContentStream {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(rx) = this.pending.as_mut() {
                let answer = match Pin::new(rx).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(a) => a,
                };
                this.pending = None;
                let read = answer.unwrap_or_else(|_| {
                    Err(Error::Io(std::io::Error::other(
                        "the chunk reader thread failed",
                    )))
                });
                return Poll::Ready(Some(this.finish(read)));
            }
            if this.next >= this.end {
                return Poll::Ready(None);
            }
            let Some(id) = this.content.chunks.get(this.next).map(|r| r.id) else {
                this.next = this.end;
                return Poll::Ready(Some(Err(Error::Integrity(
                    "chunk list shorter than recorded".into(),
                ))));
            };
            if let Some(read) = this.store.read_chunk_now(&this.key, &id) {
                return Poll::Ready(Some(this.finish(read)));
            }
            let (tx, rx) = oneshot::channel();
            let (store, key) = (this.store.clone(), this.key.clone());
            reader::submit(Box::new(move || {
                // A reader that gave up (its client left) costs no disk read.
                if !tx.is_closed() {
                    // `read_chunk_now` looked in the cache already (one miss counted).
                    let read = store.read_chunk_uncached(&key, &id);
                    // Let go of the store before the reader wakes: a caller that drops its
                    // last handle and opens the store again must not find it still held.
                    drop(store);
                    let _ = tx.send(read);
                }
            }));
            this.pending = Some(rx);
        }
    }
}
