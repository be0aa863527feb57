//! Ranged reads as a stream of verified chunk slices.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use super::Store;
use crate::chunk::DomainKey;
use crate::error::Result;
use crate::ns::Content;

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
