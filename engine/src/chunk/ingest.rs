//! One upload's pass over its bytes: cut chunks, name each by its keyed id while it is hot in
//! cache, and hash the whole file.

use bytes::Bytes;

use super::{ChunkSizes, ContentHasher, DomainKey, StreamChunker};
use crate::{ChunkId, ContentHash};

/// Chunks a stream and names each chunk by its id in one dedup domain (no whole-file hash).
#[derive(Debug)]
pub struct ChunkIds {
    chunker: StreamChunker,
    key: DomainKey,
    size: u64,
}

impl ChunkIds {
    pub fn new(sizes: ChunkSizes, key: DomainKey) -> ChunkIds {
        ChunkIds {
            chunker: StreamChunker::new(sizes),
            key,
            size: 0,
        }
    }

    /// Feeds `data`; appends every chunk it completes with its id.
    pub fn push(&mut self, data: Bytes, out: &mut Vec<(ChunkId, Bytes)>) {
        self.push_with(data, |_, _| {}, out);
    }

    /// Ends the stream (appends the last chunk) and returns the total size, bytes.
    pub fn finish(mut self, out: &mut Vec<(ChunkId, Bytes)>) -> u64 {
        self.finish_with(|_, _| {}, out);
        self.size
    }

    fn push_with(
        &mut self,
        data: Bytes,
        mut also: impl FnMut(&ChunkId, &Bytes),
        out: &mut Vec<(ChunkId, Bytes)>,
    ) {
        self.size += data.len() as u64;
        let key = &self.key;
        self.chunker.push_each(data, |chunk| {
            let id = key.chunk_id(&chunk);
            also(&id, &chunk);
            out.push((id, chunk));
        });
    }

    fn finish_with(
        &mut self,
        mut also: impl FnMut(&ChunkId, &Bytes),
        out: &mut Vec<(ChunkId, Bytes)>,
    ) {
        if let Some(chunk) = self.chunker.finish() {
            let id = self.key.chunk_id(&chunk);
            also(&id, &chunk);
            out.push((id, chunk));
        }
    }
}

/// What the store runs per upload: chunks, their ids, and the plain BLAKE3 of the whole file.
#[derive(Debug)]
pub struct Ingest {
    ids: ChunkIds,
    content: ContentHasher,
}

impl Ingest {
    pub fn new(sizes: ChunkSizes, key: DomainKey) -> Ingest {
        Ingest {
            ids: ChunkIds::new(sizes, key),
            content: ContentHasher::new(),
        }
    }

    /// Feeds `data`; appends every chunk it completes with its id.
    pub fn push(&mut self, data: Bytes, out: &mut Vec<(ChunkId, Bytes)>) {
        let content = &mut self.content;
        // Each chunk is hashed twice right after it is cut, while it is still in cache.
        self.ids
            .push_with(data, |_, chunk| content.update(chunk), out);
    }

    /// Ends the stream (appends the last chunk); returns the content hash and the size, bytes.
    pub fn finish(mut self, out: &mut Vec<(ChunkId, Bytes)>) -> (ContentHash, u64) {
        let content = &mut self.content;
        self.ids.finish_with(|_, chunk| content.update(chunk), out);
        (self.content.finalize(), self.ids.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::cut_points;

    fn data(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn ingest_matches_parts() {
        let sizes = ChunkSizes::new(1024, 4096, 16384).unwrap();
        let key = DomainKey::derive(&[1; 32], "d");
        let input = data(300_000, 9);
        let mut ing = Ingest::new(sizes, key.clone());
        let mut ids_only = ChunkIds::new(sizes, key.clone());
        let mut out = Vec::new();
        let mut out2 = Vec::new();
        for piece in input.chunks(7777) {
            ing.push(Bytes::copy_from_slice(piece), &mut out);
            ids_only.push(Bytes::copy_from_slice(piece), &mut out2);
        }
        let (hash, size) = ing.finish(&mut out);
        assert_eq!(ids_only.finish(&mut out2), size);
        assert_eq!(size, input.len() as u64);
        assert_eq!(hash.0, *blake3::hash(&input).as_bytes());
        let cuts = cut_points(&sizes, &input);
        assert_eq!(out.len(), cuts.len());
        assert_eq!(out, out2);
        let mut start = 0;
        for ((id, chunk), end) in out.iter().zip(cuts) {
            assert_eq!(&chunk[..], &input[start..end]);
            assert_eq!(*id, key.chunk_id(&input[start..end]));
            start = end;
        }
    }

    #[test]
    fn empty_upload() {
        let mut out = Vec::new();
        let ing = Ingest::new(ChunkSizes::default(), DomainKey::derive(&[1; 32], "d"));
        let (hash, size) = ing.finish(&mut out);
        assert!(out.is_empty());
        assert_eq!(size, 0);
        assert_eq!(hash.0, *blake3::hash(b"").as_bytes());
    }
}
