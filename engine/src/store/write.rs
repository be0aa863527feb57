//! Writes: every namespace mutation (put, mkdir, delete, rename, copy, properties, trash and
//! version restores) and the commit path they share (apply, log, wait until durable).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::{now_ns, record, Store};
use crate::chunk::Ingest;
use crate::error::{Error, Result};
use crate::limits::{FILE_SIZE_MAX, FREE_SPACE_CAREFUL_MARGIN};
use crate::ns::{ChunkRef, Content, EntryInfo, Kind, Name, NsOp, PropName, SpaceTree};
use crate::pack::{ChunkStore, Pos};
use crate::SpaceKey;

/// Chunk references an upload holds until its content is committed or abandoned.
struct UploadRefs<'a> {
    chunks: &'a ChunkStore,
    held: Vec<ChunkRef>,
}

impl Drop for UploadRefs<'_> {
    fn drop(&mut self) {
        for c in &self.held {
            self.chunks.release(&c.id);
        }
    }
}
impl Store {
    /// Applies `op` to space `key`, logs it and waits until it is durable.
    /// `growth` is how many logical bytes the op may add (checked against the tenant quota).
    pub(super) async fn mutate(
        &self,
        key: &SpaceKey,
        op: NsOp,
        growth: u64,
    ) -> Result<EntryChange> {
        let (commit, change) = self.mutate_nowait(key, op, growth, None)?;
        self.wait_committed(commit).await?;
        self.release_dropped(&change.dropped);
        Ok(change)
    }

    /// Waits until an op's record and every pack byte its log relies on are durable: the
    /// WAL fsync and the pack fsync run at the same time, so a PUT pays one round trip.
    /// The log is awaited first: its record was appended after the chunks, so the packs are
    /// mostly durable by then and the task is woken once, not once per flusher.
    async fn wait_committed(&self, c: Commit) -> Result<()> {
        let shard = &self.inner.shards[c.shard];
        let wal = shard.log.wait_durable(c.seq).await;
        let packs = self.inner.chunks.wait_durable(Pos(c.pack_mark)).await;
        if let Err(Error::NoSpace) = packs {
            // Rare: the disk filled faster than the free-space checks saw. The op is applied
            // and logged but its chunks are gone; only a restart's replay makes it consistent.
            tracing::error!("a full disk took chunks of an applied op; restart to recover");
            self.inner.tight.store(true, Ordering::Relaxed);
            self.inner.failed.store(true, Ordering::Release);
        }
        wal.and(packs)
    }

    /// Refuses an upload while free space is below the reserve; `Ok(true)` when space is tight
    /// enough that the upload must wait for its chunks before it touches the namespace.
    fn space_check(&self) -> Result<bool> {
        let inner = &self.inner;
        if inner.failed.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let reserve = inner.config.free_space_reserve_bytes;
        let free = match inner.storage.free_bytes() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read free space");
                None
            }
        };
        match free {
            Some(f) if reserve > 0 && f < reserve => {
                tracing::warn!(
                    free = f,
                    reserve,
                    "upload refused: free space below reserve"
                );
                Err(Error::NoSpace)
            }
            Some(f) if f >= reserve.saturating_add(FREE_SPACE_CAREFUL_MARGIN) => {
                inner.tight.store(false, Ordering::Relaxed);
                Ok(false)
            }
            Some(_) => Ok(true),
            None => Ok(inner.tight.load(Ordering::Relaxed)),
        }
    }

    /// Drops the chunk references of contents an op let go of. Only once the op is durable:
    /// before, a crash would bring the contents back, so their chunks must survive GC.
    fn release_dropped(&self, dropped: &[Arc<Content>]) {
        for c in dropped {
            for r in c.chunks.iter() {
                self.inner.chunks.release(&r.id);
            }
        }
    }

    fn mutate_nowait(
        &self,
        key: &SpaceKey,
        op: NsOp,
        growth: u64,
        upload: Option<(&Content, Pos)>,
    ) -> Result<(Commit, EntryChange)> {
        let inner = &self.inner;
        if inner.failed.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let sp = self.space(key)?;
        let tenant = self.tenant(key.tenant())?;
        let shard = &inner.shards[sp.shard];
        let payload = record::seal(
            tenant.key.cipher(),
            key.tenant(),
            record::encode_space_op(key.tenant(), key.user(), &op),
        );
        let _a = shard.apply.read();
        let mut tree = sp.tree.write();
        tree.set_default_quota(inner.config.space_quota_default);
        let before = tree.used_bytes();
        if growth > 0 {
            if let Some(q) = *tenant.quota.lock() {
                if tenant.used.load(Ordering::Relaxed).saturating_add(growth) > q {
                    return Err(Error::QuotaExceeded);
                }
            }
        }
        let effects = tree.apply(&op)?;
        let needs = upload.map(|(_, pos)| pos.0).unwrap_or(0);
        let pack_mark = shard
            .pack_mark
            .fetch_max(needs, Ordering::SeqCst)
            .max(needs);
        let seq = shard.log.append(&payload)?;
        let after = tree.used_bytes();
        if after >= before {
            tenant.used.fetch_add(after - before, Ordering::Relaxed);
        } else {
            tenant.used.fetch_sub(before - after, Ordering::Relaxed);
        }
        let info = match &op {
            NsOp::PutFile { path, .. }
            | NsOp::PutFileAt { path, .. }
            | NsOp::Mkdir { path, .. } => tree.resolve(path).and_then(|n| tree.stat(n)),
            _ => None,
        };
        drop(tree);
        for c in &effects.added {
            for r in c.chunks.iter() {
                if !inner.chunks.add_ref(&r.id) && upload.is_some() {
                    // Only a pack write refused for lack of space unindexes a new upload's
                    // chunk: `wait_committed` then fails the upload and says to restart.
                    tracing::error!(
                        "an upload's chunk was refused by a full disk after the checks"
                    );
                }
            }
        }
        Ok((
            Commit {
                seq,
                shard: sp.shard,
                pack_mark,
            },
            EntryChange {
                info,
                dropped: effects.dropped,
            },
        ))
    }

    /// Stores a file from a stream of byte buffers: chunks and hashes it as it arrives, writes
    /// new chunks to packs, and once all is durable makes it visible at `path` atomically
    /// (overwriting keeps the old content as a version). A stream that fails or ends early
    /// leaves no trace in the namespace.
    pub async fn put<S, E>(&self, key: &SpaceKey, path: &[Name], body: S) -> Result<EntryInfo>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.put_at(key, path, body, None).await
    }

    /// [`Store::put`] with the file's modification time given (ns since the epoch; `None`:
    /// the time of the write).
    pub async fn put_at<S, E>(
        &self,
        key: &SpaceKey,
        path: &[Name],
        body: S,
        mtime: Option<i64>,
    ) -> Result<EntryInfo>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.put_timed(key, path, body, mtime, now_ns()).await
    }

    /// [`Store::put_at`] dated `now` (ns) instead of the clock: when the content it replaces
    /// stopped being current. For loading an export (`docs/export.md`), which puts a file's
    /// versions back one after the other with the times they had.
    pub async fn put_dated<S, E>(
        &self,
        key: &SpaceKey,
        path: &[Name],
        body: S,
        mtime: i64,
        now: i64,
    ) -> Result<EntryInfo>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.put_timed(key, path, body, Some(mtime), now).await
    }

    async fn put_timed<S, E>(
        &self,
        key: &SpaceKey,
        path: &[Name],
        mut body: S,
        mtime: Option<i64>,
        now: i64,
    ) -> Result<EntryInfo>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let inner = &self.inner;
        let careful = self.space_check()?;
        let sp = self.space(key)?;
        let tenant = self.tenant(key.tenant())?;
        let (budget, old_size) = {
            let tree = sp.tree.read();
            check_put(&tree, path)?;
            let old = tree
                .resolve(path)
                .and_then(|n| tree.stat(n))
                .map(|i| i.size)
                .unwrap_or(0);
            let own = tree
                .quota()
                .or(inner.config.space_quota_default)
                .map(|q| q.saturating_sub(tree.used_bytes()));
            (own, old)
        };
        let mut ingest = Ingest::new(inner.config.chunk_sizes, tenant.key.clone());
        let mut refs = UploadRefs {
            chunks: &inner.chunks,
            held: Vec::new(),
        };
        let mut out = Vec::new();
        let mut last = Pos::default();
        // Where each chunk's record ends (new or deduplicated): all must be durable.
        let mut ends = Vec::new();
        let mut size = 0u64;
        while let Some(item) = body.next().await {
            let buf = item.map_err(|e| Error::Aborted(e.to_string()))?;
            size += buf.len() as u64;
            if size > FILE_SIZE_MAX {
                return Err(Error::LimitExceeded("file size"));
            }
            if let Some(b) = budget {
                if size > b.saturating_add(old_size) {
                    return Err(Error::QuotaExceeded);
                }
            }
            ingest.push(buf, &mut out);
            for (id, data) in out.drain(..) {
                let end = inner.chunks.put_stored(id, &data, &tenant.key)?;
                last = last.max(end);
                ends.push(end);
                refs.held.push(ChunkRef {
                    id,
                    len: data.len() as u32,
                });
            }
        }
        let (hash, total) = ingest.finish(&mut out);
        for (id, data) in out.drain(..) {
            let end = inner.chunks.put_stored(id, &data, &tenant.key)?;
            last = last.max(end);
            ends.push(end);
            refs.held.push(ChunkRef {
                id,
                len: data.len() as u32,
            });
        }
        debug_assert_eq!(total, size);
        let content = Content {
            hash,
            size,
            chunks: refs.held.clone().into_boxed_slice(),
        };
        let op = put_op(
            path,
            content.clone(),
            mtime,
            now,
            inner.config.versions_kept,
        );
        let growth = size.saturating_sub(old_size);
        // The space seen before the body may be gone now (this upload or others took it):
        // look again, so that a disk that filled meanwhile fails the upload here, before it
        // is applied, and not after (a pack write refused for lack of space unindexes its
        // chunks; an applied op naming them could only be undone by a restart).
        let careful = careful || self.space_check()?;
        if careful {
            if let Err(e) = inner.chunks.wait_durable(last).await {
                if matches!(e, Error::NoSpace) {
                    inner.tight.store(true, Ordering::Relaxed);
                }
                return Err(e);
            }
        }
        // A chunk may have been refused already, in a batch before the last one.
        if inner.chunks.any_lost(&ends) {
            inner.tight.store(true, Ordering::Relaxed);
            return Err(Error::NoSpace);
        }
        let (commit, change) = self.mutate_nowait(key, op, growth, Some((&content, last)))?;
        drop(refs);
        self.wait_committed(commit).await?;
        // Durable through `last`: every refusal up to it is recorded. One that hit an earlier
        // chunk after the check above leaves an applied op without its data (rare: the disk
        // filled within microseconds); like `wait_committed`'s, only a restart repairs it.
        if inner.chunks.any_lost(&ends) {
            tracing::error!("a full disk took chunks of an applied upload; restart to recover");
            return Err(Error::NoSpace);
        }
        self.release_dropped(&change.dropped);
        change.info.ok_or(Error::NotFound)
    }

    /// Stores `data` as a file (convenience over [`Store::put`]).
    pub async fn put_bytes(&self, key: &SpaceKey, path: &[Name], data: Bytes) -> Result<EntryInfo> {
        let stream = futures::stream::iter([Ok::<Bytes, std::convert::Infallible>(data)]);
        self.put(key, path, stream).await
    }

    /// Creates a collection.
    pub async fn mkdir(&self, key: &SpaceKey, path: &[Name]) -> Result<EntryInfo> {
        let op = NsOp::Mkdir {
            path: path.to_vec(),
            now: now_ns(),
        };
        self.mutate(key, op, 0).await?.info.ok_or(Error::NotFound)
    }

    /// Moves an entry (or subtree) to the trash; returns nothing the client needs.
    pub async fn delete(&self, key: &SpaceKey, path: &[Name]) -> Result<()> {
        self.delete_dated(key, path, now_ns()).await
    }

    /// [`Store::delete`] dated `now` (ns): the trash item's deletion time, which its expiry
    /// counts from. For loading an export (`docs/export.md`).
    pub async fn delete_dated(&self, key: &SpaceKey, path: &[Name], now: i64) -> Result<()> {
        let op = NsOp::Delete {
            path: path.to_vec(),
            now,
        };
        self.mutate(key, op, 0).await.map(|_| ())
    }

    /// Moves or renames an entry or subtree; with `overwrite` an existing target goes to the trash.
    pub async fn rename(
        &self,
        key: &SpaceKey,
        from: &[Name],
        to: &[Name],
        overwrite: bool,
    ) -> Result<()> {
        let op = NsOp::Move {
            from: from.to_vec(),
            to: to.to_vec(),
            overwrite,
            now: now_ns(),
        };
        self.mutate(key, op, 0).await.map(|_| ())
    }

    /// Copies an entry or subtree (metadata only: chunks are shared).
    pub async fn copy(
        &self,
        key: &SpaceKey,
        from: &[Name],
        to: &[Name],
        overwrite: bool,
    ) -> Result<()> {
        let growth = self
            .stat(key, from)
            .map(|_| self.subtree_bytes(key, from))
            .unwrap_or(0);
        let op = NsOp::Copy {
            from: from.to_vec(),
            to: to.to_vec(),
            overwrite,
            now: now_ns(),
        };
        self.mutate(key, op, growth).await.map(|_| ())
    }

    fn subtree_bytes(&self, key: &SpaceKey, path: &[Name]) -> u64 {
        let Ok(sp) = self.space(key) else { return 0 };
        let tree = sp.tree.read();
        tree.resolve(path)
            .map(|n| subtree_bytes(&tree, n))
            .unwrap_or(0)
    }

    /// Sets and removes dead properties, all or nothing.
    pub async fn set_props(
        &self,
        key: &SpaceKey,
        path: &[Name],
        set: Vec<(PropName, Vec<u8>)>,
        remove: Vec<PropName>,
    ) -> Result<()> {
        let op = NsOp::SetProps {
            path: path.to_vec(),
            set,
            remove,
            now: now_ns(),
        };
        self.mutate(key, op, 0).await.map(|_| ())
    }

    /// Brings back a trash item to where it was, or to `to`.
    pub async fn restore(&self, key: &SpaceKey, trash_id: u64, to: Option<&[Name]>) -> Result<()> {
        let op = NsOp::Restore {
            trash_id,
            to: to.map(|p| p.to_vec()),
            now: now_ns(),
        };
        self.mutate(key, op, 0).await.map(|_| ())
    }

    /// Drops a trash item for good.
    pub async fn purge(&self, key: &SpaceKey, trash_id: u64) -> Result<()> {
        self.mutate(key, NsOp::PurgeTrash { trash_id }, 0)
            .await
            .map(|_| ())
    }

    /// Makes an earlier version of a file current again.
    pub async fn restore_version(
        &self,
        key: &SpaceKey,
        path: &[Name],
        version_id: u64,
    ) -> Result<()> {
        let op = NsOp::RestoreVersion {
            path: path.to_vec(),
            version_id,
            now: now_ns(),
        };
        self.mutate(key, op, 0).await.map(|_| ())
    }
}

/// Where an op's record went and what must be durable before it is acknowledged.
#[derive(Clone, Copy)]
struct Commit {
    seq: u64,
    shard: usize,
    pack_mark: u64,
}

/// What a mutation produced.
pub(super) struct EntryChange {
    pub(super) info: Option<EntryInfo>,
    /// Contents no longer referenced; their chunks are released once the op is durable.
    dropped: Vec<Arc<Content>>,
}

/// Checks that a file can be put at `path`: its parent is a collection and it is no collection.
fn check_put(tree: &SpaceTree, path: &[Name]) -> Result<()> {
    let Some((_, parent)) = path.split_last() else {
        return Err(Error::IsADirectory);
    };
    let dir = tree.resolve(parent).ok_or(Error::ParentMissing)?;
    match tree.stat(dir) {
        Some(info) if info.kind == Kind::Dir => {}
        Some(_) => return Err(Error::NotADirectory),
        None => return Err(Error::ParentMissing),
    }
    if let Some(info) = tree.resolve(path).and_then(|n| tree.stat(n)) {
        if info.kind == Kind::Dir {
            return Err(Error::IsADirectory);
        }
    }
    Ok(())
}

/// Logical bytes of the files under `node` (O(subtree); only copies need it).
/// The op that makes `content` current at `path` (with the client's mtime if given).
pub(super) fn put_op(
    path: &[Name],
    content: Content,
    mtime: Option<i64>,
    now: i64,
    keep_versions: u32,
) -> NsOp {
    match mtime {
        None => NsOp::PutFile {
            path: path.to_vec(),
            content,
            now,
            keep_versions,
        },
        Some(mtime) => NsOp::PutFileAt {
            path: path.to_vec(),
            content,
            now,
            mtime,
            keep_versions,
        },
    }
}

pub(super) fn subtree_bytes(tree: &SpaceTree, node: crate::NodeId) -> u64 {
    let mut total = 0;
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if let Some(info) = tree.stat(n) {
            total += info.size;
            if info.kind == Kind::Dir {
                stack.extend(tree.children(n));
            }
        }
    }
    total
}
