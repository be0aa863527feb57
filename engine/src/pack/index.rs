//! The chunk index: chunk id -> pack location and reference count, over the pack files
//! ([`ChunkStore`]: puts, reads, gc, compaction, scrub, checkpoints). Recovering it on open is
//! [`super::recover`].
//!
//! Reference counts live only in memory: they are rebuilt from the namespace on open.
//! An upload takes a reference on every chunk it writes or deduplicates against, so garbage
//! collection, which only removes entries with no reference under the entry's lock, can never
//! collect a chunk an in-flight upload relies on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use parking_lot::Mutex;

use super::checkpoint::{self, Located};
use super::format::{self, PACK_HEADER_LEN, RECORD_HEADER_LEN};
use super::recover::{self, ChunkRecovery, Recovered};
use super::writer::{pack_name, PackWriter, Pos};
use crate::error::{Error, Result};
use crate::ids::{ChunkId, PackId};
use crate::io::{PreZeroer, Storage, StorageFile};
use crate::limits::CHUNK_SIZE_MAX_LIMIT;

#[derive(Clone, Copy, Debug)]
pub(super) struct ChunkEntry {
    pub pack: PackId,
    pub offset: u64,
    pub len: u32,
    pub refs: u32,
}

impl ChunkEntry {
    fn end(&self) -> Pos {
        Pos::new(self.pack, self.offset + self.len as u64)
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub(super) struct PackUsage {
    /// Bytes of records appended to the pack (headers included).
    pub total: u64,
    /// Bytes of records whose chunk was collected.
    pub dead: u64,
}

/// What a garbage collection did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcReport {
    pub chunks_removed: u64,
    pub bytes_removed: u64,
}

/// What a compaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactReport {
    pub packs_removed: u64,
    pub chunks_moved: u64,
    pub bytes_reclaimed: u64,
}

/// What a scrub of the pack records found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChunkScrubReport {
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    pub corrupt: Vec<(ChunkId, String)>,
}

pub(crate) struct ChunkStore {
    storage: Arc<dyn Storage>,
    index: DashMap<ChunkId, ChunkEntry>,
    usage: Mutex<HashMap<PackId, PackUsage>>,
    files: DashMap<PackId, Arc<dyn StorageFile>>,
    writer: PackWriter,
    unique_bytes: AtomicU64,
    /// Serialises checkpoints and compactions (both rewrite where chunks are said to be).
    maintenance: Mutex<()>,
}

impl ChunkStore {
    /// Opens the packs in `storage`: loads the checkpoint, scans records after it, cuts a
    /// torn tail from the last pack (pre-zeroing on).
    #[cfg(test)]
    pub(crate) fn open(storage: Arc<dyn Storage>) -> Result<(ChunkStore, ChunkRecovery)> {
        let prezero = Some(PreZeroer::start()?);
        Self::open_with(storage, crate::limits::PACK_SIZE_TARGET, prezero, true)
    }

    /// [`ChunkStore::open`] with new packs sealed past `pack_target` bytes, kept zeroed ahead
    /// of the appends when `prezero` is given, else appended with direct I/O when `direct` is
    /// set and the storage allows it.
    pub(crate) fn open_with(
        storage: Arc<dyn Storage>,
        pack_target: u64,
        prezero: Option<Arc<PreZeroer>>,
        direct: bool,
    ) -> Result<(ChunkStore, ChunkRecovery)> {
        let Recovered {
            index,
            mut usage,
            files,
            last,
            packs,
            rec,
        } = recover::recover(storage.as_ref())?;
        let mut unique = 0u64;
        let mut live_per_pack: HashMap<PackId, u64> = HashMap::new();
        for e in index.iter() {
            unique += e.len as u64;
            *live_per_pack.entry(e.pack).or_default() += RECORD_HEADER_LEN + e.len as u64;
        }
        for (pack, u) in usage.iter_mut() {
            let live = live_per_pack.get(pack).copied().unwrap_or(0);
            u.dead = u.total.saturating_sub(live);
        }
        let writer = match last {
            Some((pack, len, file_len)) => PackWriter::start_with(
                storage.clone(),
                pack,
                len,
                file_len,
                pack_target,
                prezero,
                direct,
            )?,
            None => {
                let next = packs.last().map(|p| PackId(p.0 + 1)).unwrap_or(PackId(1));
                PackWriter::start_with(storage.clone(), next, 0, 0, pack_target, prezero, direct)?
            }
        };
        usage.entry(writer.current_pack()).or_default();
        let store = ChunkStore {
            storage,
            index,
            usage: Mutex::new(usage),
            files,
            writer,
            unique_bytes: AtomicU64::new(unique),
            maintenance: Mutex::new(()),
        };
        Ok((store, rec))
    }

    /// Takes a reference on chunk `id`, storing `data` if the store lacks it.
    /// Returns the position that must be durable before the chunk may be relied on.
    #[cfg(test)]
    pub(crate) fn put(&self, id: ChunkId, data: &[u8]) -> Result<Pos> {
        self.put_stored(id, data, &crate::chunk::DomainKey::derive(&[0; 32], "test"))
    }

    /// [`ChunkStore::put`] of a chunk of `key`'s domain: a new chunk is stored as the domain
    /// stores it (sealed when the tenant is encrypted; only new chunks pay for sealing).
    pub(crate) fn put_stored(
        &self,
        id: ChunkId,
        data: &[u8],
        key: &crate::chunk::DomainKey,
    ) -> Result<Pos> {
        if data.len() > CHUNK_SIZE_MAX_LIMIT {
            return Err(Error::LimitExceeded("chunk size"));
        }
        self.reap_lost();
        match self.index.entry(id) {
            Entry::Occupied(mut e) => {
                let entry = e.get_mut();
                entry.refs = entry
                    .refs
                    .checked_add(1)
                    .ok_or(Error::LimitExceeded("chunk references"))?;
                Ok(entry.end())
            }
            Entry::Vacant(v) => {
                let data = key.stored(&id, data);
                if data.len() > CHUNK_SIZE_MAX_LIMIT {
                    return Err(Error::LimitExceeded("chunk size"));
                }
                let data = &data[..];
                let placed = self.writer.append(&id, data)?;
                v.insert(ChunkEntry {
                    pack: placed.pack,
                    offset: placed.data_offset,
                    len: data.len() as u32,
                    refs: 1,
                });
                self.unique_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                self.usage.lock().entry(placed.pack).or_default().total +=
                    RECORD_HEADER_LEN + data.len() as u64;
                Ok(placed.end)
            }
        }
    }

    /// Unindexes the chunks of batches a full disk refused, so that later uploads write
    /// fresh copies instead of deduplicating against records that do not exist.
    fn reap_lost(&self) {
        for range in self.writer.take_unreaped() {
            let mut gone = 0u64;
            for id in &range.ids {
                if let Some((_, e)) = self.index.remove_if(id, |_, e| range.holds(e.end())) {
                    self.unique_bytes.fetch_sub(e.len as u64, Ordering::Relaxed);
                    let mut usage = self.usage.lock();
                    let u = usage.entry(e.pack).or_default();
                    u.total = u.total.saturating_sub(RECORD_HEADER_LEN + e.len as u64);
                    gone += 1;
                }
            }
            tracing::info!(
                chunks = gone,
                "unindexed chunks a full disk kept from the packs"
            );
        }
    }

    /// Takes a reference on a chunk that must already be indexed (used when rebuilding counts).
    pub(crate) fn add_ref(&self, id: &ChunkId) -> bool {
        match self.index.get_mut(id) {
            Some(mut e) => {
                e.refs = e.refs.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// Drops one reference on `id`. The chunk stays until garbage collection.
    pub(crate) fn release(&self, id: &ChunkId) {
        if let Some(mut e) = self.index.get_mut(id) {
            debug_assert!(e.refs > 0, "chunk reference count underflow");
            e.refs = e.refs.saturating_sub(1);
        }
    }

    pub(crate) async fn wait_durable(&self, pos: Pos) -> Result<()> {
        self.writer.wait_durable(pos).await
    }

    #[cfg(test)]
    pub(crate) fn wait_durable_blocking(&self, pos: Pos) -> Result<()> {
        self.writer.wait_durable_blocking(pos)
    }

    /// Whether a full disk refused any of the records ending at `ends`.
    pub(crate) fn any_lost(&self, ends: &[Pos]) -> bool {
        self.writer.any_lost(ends)
    }

    pub(crate) fn contains(&self, id: &ChunkId) -> bool {
        self.index.contains_key(id)
    }

    #[cfg(test)]
    pub(crate) fn refs(&self, id: &ChunkId) -> Option<u32> {
        self.index.get(id).map(|e| e.refs)
    }

    fn file(&self, pack: PackId) -> Result<Arc<dyn StorageFile>> {
        if let Some(f) = self.files.get(&pack) {
            return Ok(f.clone());
        }
        let f = match self.writer.current_file(pack) {
            Some(f) => f,
            None => self.storage.open(&pack_name(pack), false)?,
        };
        self.files.insert(pack, f.clone());
        Ok(f)
    }

    /// Reads chunk `id`'s bytes (unverified: the caller checks the keyed hash).
    pub(crate) fn read_raw(&self, id: &ChunkId) -> Result<Bytes> {
        // A compaction may move the chunk between our lookup and our read; look again once.
        for attempt in 0..2 {
            let Some(e) = self.index.get(id).map(|e| *e) else {
                return Err(Error::Integrity(format!(
                    "chunk {id} is missing from the store"
                )));
            };
            let file = match self.file(e.pack) {
                Ok(f) => f,
                Err(Error::Io(err))
                    if err.kind() == std::io::ErrorKind::NotFound && attempt == 0 =>
                {
                    continue;
                }
                Err(err) => return Err(err),
            };
            // A chunk of a file committed a moment ago may still be on its way to the pack
            // (acks wait for the fsync, visibility does not): wait for it, rarely and briefly.
            if e.end() > self.writer.durable_pos() {
                self.writer.wait_durable_blocking(e.end())?;
            }
            let mut buf = vec![0u8; e.len as usize];
            file.read_exact_at(&mut buf, e.offset)?;
            return Ok(Bytes::from(buf));
        }
        Err(Error::Integrity(format!("chunk {id} could not be read")))
    }

    /// Chunk `id`'s bytes (unverified) if they can be had without waiting for the device: the
    /// chunk is durable, at most `len_max` bytes, and all in the page cache. `Ok(None)` means
    /// "read it with [`ChunkStore::read_raw`] on a thread that may wait".
    pub(crate) fn read_raw_cached(&self, id: &ChunkId, len_max: usize) -> Result<Option<Bytes>> {
        let Some(e) = self.index.get(id).map(|e| *e) else {
            return Err(Error::Integrity(format!(
                "chunk {id} is missing from the store"
            )));
        };
        if e.len as usize > len_max || e.end() > self.writer.durable_pos() {
            return Ok(None);
        }
        let file = match self.files.get(&e.pack) {
            Some(f) => f.clone(),
            // Opening a pack is a path lookup that may wait: left to the reader.
            None => return Ok(None),
        };
        let mut buf = vec![0u8; e.len as usize];
        Ok(file
            .read_cached_at(&mut buf, e.offset)?
            .then(|| Bytes::from(buf)))
    }

    /// Removes every chunk without references, telling `removed` each one.
    pub(crate) fn gc(&self, mut removed: impl FnMut(&ChunkId)) -> GcReport {
        self.reap_lost();
        let mut report = GcReport::default();
        let candidates: Vec<ChunkId> = self
            .index
            .iter()
            .filter(|e| e.refs == 0)
            .map(|e| *e.key())
            .collect();
        for id in candidates {
            if let Some((_, e)) = self.index.remove_if(&id, |_, e| e.refs == 0) {
                removed(&id);
                report.chunks_removed += 1;
                report.bytes_removed += e.len as u64;
                self.unique_bytes.fetch_sub(e.len as u64, Ordering::Relaxed);
                self.usage.lock().entry(e.pack).or_default().dead +=
                    RECORD_HEADER_LEN + e.len as u64;
            }
        }
        report
    }

    /// The pack appended to now; every pack of a lower id is sealed (immutable but for the
    /// zero tail a checkpoint cuts).
    pub(crate) fn current_pack(&self) -> PackId {
        self.writer.current_pack()
    }

    /// Writes a checkpoint of the chunk index covering everything durable now.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let _m = self.maintenance.lock();
        self.checkpoint_locked()
    }

    fn checkpoint_locked(&self) -> Result<()> {
        let covered = self.writer.durable_pos();
        // Every pack before `covered`'s was sealed before it was read: cut their zero tails
        // before a checkpoint tells recovery not to scan them.
        self.writer.settle_sealed();
        // After reading `covered`: every range lost below it is unindexed now.
        self.reap_lost();
        let entries: Vec<Located> = self
            .index
            .iter()
            .filter(|e| e.end() <= covered)
            .map(|e| Located {
                id: *e.key(),
                pack: e.pack,
                offset: e.offset,
                len: e.len,
            })
            .collect();
        checkpoint::write(self.storage.as_ref(), covered, &entries)
    }

    /// Moves the live chunks out of sealed packs whose dead share is at least `dead_ratio_min`
    /// and removes those packs.
    pub(crate) fn compact(&self, dead_ratio_min: f64) -> Result<CompactReport> {
        let _m = self.maintenance.lock();
        let current = self.writer.current_pack();
        let victims: Vec<PackId> = {
            let usage = self.usage.lock();
            usage
                .iter()
                .filter(|(p, u)| {
                    **p != current
                        && (u.total == 0 || u.dead as f64 >= dead_ratio_min * u.total as f64)
                })
                .map(|(p, _)| *p)
                .collect()
        };
        let mut report = CompactReport::default();
        if victims.is_empty() {
            return Ok(report);
        }
        for pack in victims {
            let ids: Vec<ChunkId> = self
                .index
                .iter()
                .filter(|e| e.pack == pack)
                .map(|e| *e.key())
                .collect();
            let mut moved: Vec<(ChunkId, super::writer::Placed, u32)> = Vec::new();
            let mut last = Pos::default();
            for id in &ids {
                let data = match self.read_raw(id) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(chunk = %id, error = %e, "compaction cannot read chunk; pack kept");
                        return Err(e);
                    }
                };
                let placed = self.writer.append(id, &data)?;
                last = last.max(placed.end);
                moved.push((*id, placed, data.len() as u32));
            }
            if !moved.is_empty() {
                self.writer.wait_durable_blocking(last)?;
            }
            for (id, placed, len) in moved {
                let mut relocated = false;
                if let Some(mut e) = self.index.get_mut(&id) {
                    if e.pack == pack {
                        e.pack = placed.pack;
                        e.offset = placed.data_offset;
                        relocated = true;
                    }
                }
                let mut usage = self.usage.lock();
                let u = usage.entry(placed.pack).or_default();
                u.total += RECORD_HEADER_LEN + len as u64;
                if relocated {
                    report.chunks_moved += 1;
                } else {
                    u.dead += RECORD_HEADER_LEN + len as u64;
                }
            }
            // The checkpoint must stop naming the pack before the pack goes.
            self.checkpoint_locked()?;
            let freed = self
                .usage
                .lock()
                .remove(&pack)
                .map(|u| u.total)
                .unwrap_or(0);
            self.files.remove(&pack);
            self.storage.remove(&pack_name(pack))?;
            self.storage.sync_dir("packs")?;
            report.packs_removed += 1;
            report.bytes_reclaimed += freed + PACK_HEADER_LEN;
        }
        // A pack the compaction's appends had prepared is on disk before this returns.
        self.writer.settle_prepared();
        Ok(report)
    }

    /// Reads every indexed chunk's record and checks header, length, id and CRC.
    pub(crate) fn scrub(&self) -> ChunkScrubReport {
        self.reap_lost();
        let mut report = ChunkScrubReport::default();
        let entries: Vec<(ChunkId, ChunkEntry)> =
            self.index.iter().map(|e| (*e.key(), *e)).collect();
        for (id, e) in entries {
            report.chunks_checked += 1;
            report.bytes_checked += e.len as u64;
            if let Err(why) = self.check_record(&id, &e) {
                report.corrupt.push((id, why));
            }
        }
        report
    }

    fn check_record(&self, id: &ChunkId, e: &ChunkEntry) -> std::result::Result<(), String> {
        let file = self.file(e.pack).map_err(|err| err.to_string())?;
        let mut buf = vec![0u8; RECORD_HEADER_LEN as usize + e.len as usize];
        let start = e
            .offset
            .checked_sub(RECORD_HEADER_LEN)
            .ok_or("bad offset")?;
        file.read_exact_at(&mut buf, start)
            .map_err(|err| err.to_string())?;
        let h = format::parse_record_header(&buf).map_err(str::to_string)?;
        if h.id != *id || h.len != e.len {
            return Err("record header names another chunk".into());
        }
        if crc32c::crc32c(&buf[RECORD_HEADER_LEN as usize..]) != h.data_crc {
            return Err("chunk data checksum mismatch".into());
        }
        Ok(())
    }

    /// (unique chunks, unique bytes, bytes in pack files).
    /// How long the pack flushes took so far.
    pub(crate) fn flush_times(&self) -> crate::commit::FlushTimes {
        self.writer.flush_times()
    }

    pub(crate) fn stats(&self) -> (u64, u64, u64) {
        let pack_bytes = self
            .usage
            .lock()
            .values()
            .map(|u| u.total + PACK_HEADER_LEN)
            .sum::<u64>()
            + self.writer.prepared_bytes();
        (
            self.index.len() as u64,
            self.unique_bytes.load(Ordering::Relaxed),
            pack_bytes,
        )
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.writer.is_failed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage};
    use crate::limits::{
        DIRECT_IO_ALIGN, PACK_PREZERO_LOW_WATER, PACK_PREZERO_STEP, PACK_SIZE_TARGET,
    };

    fn chunk(i: u32, len: usize) -> (ChunkId, Vec<u8>) {
        let data: Vec<u8> = (0..len)
            .map(|j| (j as u32 ^ i.wrapping_mul(2654435761)) as u8)
            .collect();
        (ChunkId(*blake3::hash(&data).as_bytes()), data)
    }

    fn put_all(store: &ChunkStore, n: u32) -> Vec<(ChunkId, Vec<u8>)> {
        let mut last = Pos::default();
        let v: Vec<_> = (0..n).map(|i| chunk(i, 1000 + i as usize * 37)).collect();
        for (id, d) in &v {
            last = last.max(store.put(*id, d).unwrap());
        }
        store.wait_durable_blocking(last).unwrap();
        v
    }

    #[test]
    fn chunks_survive_reopen_with_and_without_checkpoint() {
        let mem = Arc::new(MemStorage::new());
        let (store, _) = ChunkStore::open(mem.clone()).unwrap();
        let first = put_all(&store, 50);
        store.checkpoint().unwrap();
        let (id, d) = chunk(999, 5000);
        let p = store.put(id, &d).unwrap();
        store.wait_durable_blocking(p).unwrap();
        // Dedup: the same chunk again writes nothing new.
        let (_, _, pack_bytes) = store.stats();
        store.put(id, &d).unwrap();
        assert_eq!(store.stats().2, pack_bytes);
        assert_eq!(store.refs(&id), Some(2));
        let crashed = Arc::new(mem.crash(CrashMode::DurableOnly));
        drop(store);
        let (store, rec) = ChunkStore::open(crashed).unwrap();
        assert_eq!(rec.from_checkpoint, 50);
        assert_eq!(rec.scanned_records, 1);
        for (id, d) in first.iter().chain([(id, d)].iter()) {
            assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
            assert_eq!(
                store.refs(id),
                Some(0),
                "references are rebuilt by the caller"
            );
        }
    }

    #[test]
    fn torn_pack_tail_is_cut() {
        for seed in 0..10 {
            let mem = Arc::new(MemStorage::new());
            let (store, _) = ChunkStore::open(mem.clone()).unwrap();
            let durable = put_all(&store, 5);
            for i in 100..110 {
                let (id, d) = chunk(i, 3000);
                store.put(id, &d).unwrap();
            }
            let crashed = Arc::new(mem.crash(CrashMode::TornTail { seed }));
            drop(store);
            let (store, _) = ChunkStore::open(crashed.clone()).unwrap();
            for (id, d) in &durable {
                assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
            }
            assert_eq!(store.scrub().corrupt, vec![]);
            // Appending continues cleanly after the cut.
            let more = put_all(&store, 3);
            drop(store);
            let (store, rec) = ChunkStore::open(crashed).unwrap();
            assert_eq!(rec.torn_bytes, 0);
            for (id, d) in durable.iter().chain(more.iter()) {
                assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
            }
        }
    }

    /// Puts chunks `ids` of 3000 bytes each and waits until they are all durable.
    fn put_durably(store: &ChunkStore, ids: std::ops::Range<u32>) -> Vec<(ChunkId, Vec<u8>)> {
        let chunks: Vec<_> = ids.map(|i| chunk(i, 3000)).collect();
        let ends: Vec<Pos> = chunks
            .iter()
            .map(|(id, d)| store.put(*id, d).unwrap())
            .collect();
        if let Some(last) = ends.iter().max() {
            store.wait_durable_blocking(*last).unwrap();
        }
        chunks
    }

    #[test]
    fn the_next_pack_is_prepared_ahead_and_a_crash_before_it_is_used_cuts_the_torn_tail() {
        for seed in 0..10 {
            let mem = Arc::new(MemStorage::new());
            let target = 64 * 1024;
            let (store, _) = ChunkStore::open_with(mem.clone(), target, None, true).unwrap();
            // Past half the target: the preparer makes pack 2 while pack 1 is appended to.
            let durable = put_durably(&store, 0..12);
            store.writer.settle_prepared();
            assert_eq!(store.writer.current_pack(), PackId(1));
            assert_eq!(
                pack_len(mem.as_ref(), 2),
                PACK_HEADER_LEN,
                "pack 2 not prepared"
            );
            // Records still in flight in pack 1 when the machine goes down.
            for i in 100..104 {
                let (id, d) = chunk(i, 3000);
                store.put(id, &d).unwrap();
            }
            let crashed = Arc::new(mem.crash(CrashMode::TornTail { seed }));
            drop(store);
            let (store, rec) = ChunkStore::open_with(crashed.clone(), target, None, true).unwrap();
            assert_eq!(rec.damaged_bytes, 0, "a torn tail read as damage");
            for (id, d) in &durable {
                assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
            }
            assert_eq!(store.scrub().corrupt, vec![]);
            // Rotation uses the prepared pack; everything reads back after another reopen.
            let more = put_durably(&store, 200..230);
            assert!(store.writer.current_pack() > PackId(1));
            drop(store);
            let (store, rec) = ChunkStore::open_with(crashed, target, None, true).unwrap();
            assert_eq!(rec.torn_bytes, 0);
            for (id, d) in durable.iter().chain(more.iter()) {
                assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
            }
        }
    }

    /// The end of the last record in `pack`, from the index.
    fn records_end(store: &ChunkStore, pack: u32) -> u64 {
        store
            .index
            .iter()
            .filter(|e| e.pack == PackId(pack))
            .map(|e| e.offset + e.len as u64)
            .max()
            .unwrap_or(PACK_HEADER_LEN)
    }

    /// Direct appends write whole aligned blocks (the in-memory storage refuses anything
    /// else on a direct handle), so every batch writes the block holding the end of the last
    /// one again: nothing acknowledged may be lost to that, nor to a crash in the middle of
    /// it, and a sealed pack loses its padding once its records are durable.
    #[test]
    fn direct_appends_rewrite_the_last_block_and_lose_nothing_to_a_crash() {
        for seed in 0..8 {
            for mode in [CrashMode::TornTail { seed }, CrashMode::ZeroTail { seed }] {
                let mem = Arc::new(MemStorage::new());
                let target = 64 * 1024;
                let (store, _) = ChunkStore::open_with(mem.clone(), target, None, true).unwrap();
                assert!(store.writer.current_direct(), "direct appends not in use");
                // One durable batch at a time, none ending on a block boundary.
                let mut durable = Vec::new();
                for i in 0..40 {
                    let (id, d) = chunk(i, 1500 + 97 * i as usize + seed as usize);
                    let end = store.put(id, &d).unwrap();
                    store.wait_durable_blocking(end).unwrap();
                    durable.push((id, d));
                }
                assert!(store.writer.current_pack() > PackId(1), "no pack sealed");
                let current = store.writer.current_pack().0;
                let len = pack_len(mem.as_ref(), current);
                assert_eq!(len % DIRECT_IO_ALIGN as u64, 0, "unaligned direct write");
                assert!(len > records_end(&store, current));
                // A checkpoint cuts the sealed packs' padding after their last record.
                store.checkpoint().unwrap();
                for pack in 1..current {
                    assert_eq!(pack_len(mem.as_ref(), pack), records_end(&store, pack));
                }
                for i in 100..106 {
                    let (id, d) = chunk(i, 2500);
                    store.put(id, &d).unwrap();
                }
                let crashed = Arc::new(mem.crash(mode));
                drop(store);
                let (store, rec) =
                    ChunkStore::open_with(crashed.clone(), target, None, true).unwrap();
                assert_eq!(rec.damaged_bytes, 0, "{mode:?}");
                for (id, d) in &durable {
                    assert_eq!(&store.read_raw(id).unwrap()[..], &d[..], "{mode:?}");
                }
                assert_eq!(store.scrub().corrupt, vec![]);
                let more = put_durably(&store, 200..230);
                drop(store);
                let (store, rec) = ChunkStore::open_with(crashed, target, None, true).unwrap();
                assert_eq!(rec.torn_bytes, 0);
                assert_eq!(rec.damaged_bytes, 0);
                for (id, d) in durable.iter().chain(more.iter()) {
                    assert_eq!(&store.read_raw(id).unwrap()[..], &d[..], "{mode:?}");
                }
            }
        }
    }

    /// A file system that opens files with O_DIRECT but refuses the writes: the batch goes
    /// through the page cache instead, and so does everything after it, without an error.
    #[test]
    fn a_refused_direct_write_falls_back_to_buffered_appends() {
        let mem = Arc::new(MemStorage::new());
        let plan = FaultPlan::new();
        let storage: Arc<dyn Storage> = Arc::new(FaultyStorage::new(mem.clone(), plan.clone()));
        let target = 64 * 1024;
        let (store, _) = ChunkStore::open_with(storage.clone(), target, None, true).unwrap();
        assert!(store.writer.current_direct());
        let mut durable = put_durably(&store, 0..5);
        plan.set_refuse_direct_writes(true);
        durable.extend(put_durably(&store, 5..60));
        assert!(!store.writer.current_direct());
        assert!(
            store.writer.current_pack() > PackId(1),
            "no new pack after the fallback"
        );
        assert!(plan.counters().injected > 0, "no direct write was refused");
        for (id, d) in &durable {
            assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
        }
        let crashed = Arc::new(mem.crash(CrashMode::DurableOnly));
        drop(store);
        let (store, rec) = ChunkStore::open_with(crashed, target, None, true).unwrap();
        assert_eq!((rec.torn_bytes, rec.damaged_bytes), (0, 0));
        for (id, d) in &durable {
            assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
        }
        assert_eq!(store.scrub().corrupt, vec![]);
    }

    #[test]
    fn gc_keeps_referenced_chunks_and_compaction_reclaims_space() {
        let mem = Arc::new(MemStorage::new());
        let (store, _) = ChunkStore::open(mem.clone()).unwrap();
        let all = put_all(&store, 40);
        // Seal the pack by starting a new one artificially: reopen continues the same pack,
        // so instead drop references on half and compact at ratio 0 (all sealed packs).
        for (id, _) in all.iter().step_by(2) {
            store.release(id);
        }
        let gc = store.gc(|_| {});
        assert_eq!(gc.chunks_removed, 20);
        for (i, (id, d)) in all.iter().enumerate() {
            if i % 2 == 1 {
                assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
            } else {
                assert!(!store.contains(id));
            }
        }
        // The only pack is current, so nothing is compacted yet.
        assert_eq!(store.compact(0.1).unwrap().packs_removed, 0);
        drop(store);
        // Force a new current pack: reopen after marking the old one sealed by writing into pack 2.
        let next = PackWriter::start(mem.clone(), PackId(2), 0).unwrap();
        drop(next);
        // Without pre-zeroing from here on: the live bytes compared below would otherwise
        // include the zeros kept ahead of pack 2.
        let (store, _) = ChunkStore::open_with(mem.clone(), PACK_SIZE_TARGET, None, true).unwrap();
        for (id, _) in all.iter().skip(1).step_by(2) {
            assert!(store.add_ref(id));
        }
        // After a restart the collected chunks are found again in the pack: collect again.
        assert_eq!(store.gc(|_| {}).chunks_removed, 20);
        let before = mem.live_bytes();
        let rep = store.compact(0.3).unwrap();
        assert_eq!(rep.packs_removed, 1);
        assert_eq!(rep.chunks_moved, 20);
        assert!(mem.live_bytes() < before, "compaction reclaimed nothing");
        for (id, d) in all.iter().skip(1).step_by(2) {
            assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
        }
        drop(store);
        let crashed = Arc::new(mem.crash(CrashMode::DurableOnly));
        let (store, _) = ChunkStore::open(crashed).unwrap();
        for (id, d) in all.iter().skip(1).step_by(2) {
            assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
        }
    }

    #[test]
    fn scrub_reports_a_flipped_bit() {
        let plan = FaultPlan::new();
        let storage = Arc::new(FaultyStorage::new(MemStorage::new(), plan.clone()));
        let (store, _) = ChunkStore::open(storage).unwrap();
        let all = put_all(&store, 3);
        assert!(store.scrub().corrupt.is_empty());
        let target = PACK_HEADER_LEN + RECORD_HEADER_LEN + 10;
        plan.flip_bit_on_read(&pack_name(PackId(1)), target, 3);
        let rep = store.scrub();
        assert_eq!(rep.corrupt.len(), 1);
        assert_eq!(rep.corrupt[0].0, all[0].0);
        assert_eq!(rep.chunks_checked, 3);
    }

    #[test]
    fn damage_inside_the_last_pack_keeps_the_records_after_it() {
        let plan = FaultPlan::new();
        let storage = Arc::new(FaultyStorage::new(MemStorage::new(), plan.clone()));
        let (store, _) = ChunkStore::open(storage.clone()).unwrap();
        let all = put_all(&store, 5);
        drop(store);
        // A bit flipped in the data of the second record (chunk 0 is 1000 bytes).
        let second = PACK_HEADER_LEN + RECORD_HEADER_LEN + 1000;
        plan.flip_bit_on_read(&pack_name(PackId(1)), second + RECORD_HEADER_LEN + 10, 5);
        let (store, rec) = ChunkStore::open(storage.clone()).unwrap();
        assert_eq!(rec.torn_bytes, 0, "damage was taken for a torn tail");
        assert_eq!(rec.damaged_bytes, RECORD_HEADER_LEN + all[1].1.len() as u64);
        assert!(!store.contains(&all[1].0));
        for (i, (id, d)) in all.iter().enumerate().filter(|(i, _)| *i != 1) {
            assert_eq!(&store.read_raw(id).unwrap()[..], &d[..], "record {i} lost");
        }
        // Appending continues after the last valid record and survives a restart.
        let more: Vec<_> = (50..53).map(|i| chunk(i, 700)).collect();
        let mut last = Pos::default();
        for (id, d) in &more {
            last = store.put(*id, d).unwrap();
        }
        store.wait_durable_blocking(last).unwrap();
        drop(store);
        let (store, rec) = ChunkStore::open(storage).unwrap();
        assert_eq!(rec.torn_bytes, 0);
        for (id, d) in all.iter().skip(2).chain(more.iter()) {
            assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
        }
    }

    #[test]
    fn failed_pack_sync_is_never_reported_durable() {
        let plan = FaultPlan::new();
        let storage = Arc::new(FaultyStorage::new(MemStorage::new(), plan.clone()));
        let (store, _) = ChunkStore::open(storage).unwrap();
        plan.set_fail_all_syncs(true);
        let (id, d) = chunk(1, 100);
        let pos = store.put(id, &d).unwrap();
        assert!(store.wait_durable_blocking(pos).is_err());
        assert!(store.is_failed());
    }

    fn open_pz(storage: Arc<dyn Storage>, target: u64, z: &Arc<PreZeroer>) -> ChunkStore {
        ChunkStore::open_with(storage, target, Some(z.clone()), false)
            .unwrap()
            .0
    }

    fn pack_len(s: &dyn Storage, pack: u32) -> u64 {
        s.open(&pack_name(PackId(pack)), false)
            .unwrap()
            .len()
            .unwrap()
    }

    fn records_len(chunks: &[(ChunkId, Vec<u8>)]) -> u64 {
        chunks
            .iter()
            .map(|(_, d)| RECORD_HEADER_LEN + d.len() as u64)
            .sum()
    }

    fn assert_all(store: &ChunkStore, chunks: &[(ChunkId, Vec<u8>)]) {
        for (id, d) in chunks {
            assert_eq!(&store.read_raw(id).unwrap()[..], &d[..]);
        }
    }

    #[test]
    fn a_zero_tail_is_a_clean_end_and_appends_overwrite_it() {
        let mem = Arc::new(MemStorage::new());
        let z = PreZeroer::start().unwrap();
        let store = open_pz(mem.clone(), PACK_SIZE_TARGET, &z);
        let first = put_all(&store, 20);
        z.wait_idle();
        let data_end = PACK_HEADER_LEN + records_len(&first);
        let zeroed = pack_len(mem.as_ref(), 1);
        assert!(
            zeroed >= data_end + PACK_PREZERO_LOW_WATER,
            "not zeroed ahead: {zeroed}"
        );
        assert!(zeroed <= data_end + PACK_PREZERO_STEP + PACK_PREZERO_LOW_WATER);
        let crashed = Arc::new(mem.crash(CrashMode::DurableOnly));
        drop(store);
        assert_eq!(pack_len(crashed.as_ref(), 1), zeroed, "zeros not durable");
        let (store, rec) =
            ChunkStore::open_with(crashed.clone(), PACK_SIZE_TARGET, Some(z.clone()), false)
                .unwrap();
        assert_eq!((rec.torn_bytes, rec.damaged_bytes), (0, 0));
        assert_eq!(rec.scanned_records, 20);
        assert_all(&store, &first);
        assert_eq!(store.stats().2, data_end, "zeros counted as pack bytes");
        // Appending resumes at the end of the records, over the zeros.
        let more: Vec<_> = (500..510).map(|i| chunk(i, 2000)).collect();
        let mut last = Pos::default();
        for (id, d) in &more {
            last = store.put(*id, d).unwrap();
        }
        store.wait_durable_blocking(last).unwrap();
        assert_eq!(last, Pos::new(PackId(1), data_end + records_len(&more)));
        let again = Arc::new(crashed.crash(CrashMode::DurableOnly));
        drop(store);
        let (store, rec) = ChunkStore::open(again).unwrap();
        assert_eq!((rec.torn_bytes, rec.damaged_bytes), (0, 0));
        assert_all(&store, &first);
        assert_all(&store, &more);
        assert!(store.scrub().corrupt.is_empty());
    }

    #[test]
    fn a_torn_record_followed_by_zeros_is_cut() {
        let mem = Arc::new(MemStorage::new());
        let (store, _) = ChunkStore::open(mem.clone()).unwrap();
        let kept = put_all(&store, 4);
        drop(store);
        let data_end = PACK_HEADER_LEN + records_len(&kept);
        // Half a record (header and some data) after the last one, then zeros.
        let (id, d) = chunk(77, 5000);
        let mut torn = Vec::new();
        torn.extend_from_slice(&format::record_header(&id, &d));
        torn.extend_from_slice(&d[..1000]);
        let nonzero = torn.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
        torn.resize(64 << 10, 0);
        let f = mem.open(&pack_name(PackId(1)), false).unwrap();
        f.write_batch(&[(data_end, &torn)], true).unwrap();
        let (store, rec) = ChunkStore::open(mem.clone()).unwrap();
        assert_eq!(rec.torn_bytes, nonzero);
        assert_eq!(rec.damaged_bytes, 0);
        assert!(!store.contains(&id));
        assert_all(&store, &kept);
        let more = vec![chunk(78, 300)];
        let p = store.put(more[0].0, &more[0].1).unwrap();
        store.wait_durable_blocking(p).unwrap();
        assert_eq!(p, Pos::new(PackId(1), data_end + records_len(&more)));
        drop(store);
        let (store, rec) = ChunkStore::open(mem).unwrap();
        assert_eq!(rec.torn_bytes, 0);
        assert_all(&store, &kept);
        assert_all(&store, &more);
    }

    /// Cuts anywhere in the last records, padded with zeros: recovery keeps every record
    /// before the cut, counts only the non-zero rest as torn, and damage before a zero tail
    /// is still resynced.
    #[test]
    fn every_cut_padded_with_zeros_keeps_the_records_before_it() {
        let mem = Arc::new(MemStorage::new());
        let (store, _) = ChunkStore::open_with(mem.clone(), PACK_SIZE_TARGET, None, true).unwrap();
        let all = put_all(&store, 3);
        drop(store);
        let f = mem.open(&pack_name(PackId(1)), false).unwrap();
        let mut whole = vec![0u8; f.len().unwrap() as usize];
        f.read_exact_at(&mut whole, 0).unwrap();
        let mut ends = vec![PACK_HEADER_LEN as usize];
        for (_, d) in &all {
            ends.push(ends.last().unwrap() + RECORD_HEADER_LEN as usize + d.len());
        }
        let first_end = ends[1];
        for cut in (first_end..whole.len()).step_by(37).chain([whole.len()]) {
            let m = Arc::new(MemStorage::new());
            let mut bytes = whole[..cut].to_vec();
            bytes.resize(whole.len() + 10_000, 0);
            let g = m.open(&pack_name(PackId(1)), true).unwrap();
            g.write_batch(&[(0, &bytes)], true).unwrap();
            m.sync_dir("packs").unwrap();
            let (store, rec) = ChunkStore::open(m.clone()).unwrap();
            let whole_records = ends.iter().filter(|&&e| e <= cut).count() - 1;
            for (i, (id, d)) in all.iter().enumerate() {
                if i < whole_records {
                    assert_eq!(&store.read_raw(id).unwrap()[..], &d[..], "cut {cut}");
                } else {
                    assert!(!store.contains(id), "cut {cut}: half a record indexed");
                }
            }
            let valid = ends[whole_records];
            let torn = whole[valid..cut].iter().rposition(|&b| b != 0);
            assert_eq!(
                rec.torn_bytes,
                torn.map_or(0, |i| i as u64 + 1),
                "cut {cut}"
            );
            assert_eq!(rec.damaged_bytes, 0);
            drop(store);
        }
        // Damage inside the first record, with records and then zeros after it.
        let plan = FaultPlan::new();
        let m = MemStorage::new();
        let mut bytes = whole.clone();
        bytes.resize(whole.len() + (3 << 20), 0);
        let g = m.open(&pack_name(PackId(1)), true).unwrap();
        g.write_batch(&[(0, &bytes)], true).unwrap();
        m.sync_dir("packs").unwrap();
        plan.flip_bit_on_read(
            &pack_name(PackId(1)),
            PACK_HEADER_LEN + RECORD_HEADER_LEN + 3,
            1,
        );
        let storage = Arc::new(FaultyStorage::new(m, plan));
        let (store, rec) = ChunkStore::open(storage).unwrap();
        assert_eq!(
            rec.damaged_bytes,
            (first_end - PACK_HEADER_LEN as usize) as u64
        );
        assert_eq!(rec.torn_bytes, 0);
        assert!(!store.contains(&all[0].0));
        assert_all(&store, &all[1..]);
    }

    /// A batch refused by a full disk, then one written in the next pack: waiting for the
    /// later position succeeds, so an upload must ask about every record it relies on.
    #[test]
    fn a_refused_earlier_record_is_reported_after_a_later_one_is_durable() {
        let mem = Arc::new(MemStorage::new());
        let plan = FaultPlan::new();
        let storage = Arc::new(FaultyStorage::new(mem, plan.clone()));
        let store = ChunkStore::open_with(storage, PACK_SIZE_TARGET, None, true)
            .unwrap()
            .0;
        plan.only_prefix(Some("packs/"));
        plan.set_space_left(Some(0));
        let (a_id, a) = chunk(1, 4000);
        let a_end = store.put(a_id, &a).unwrap();
        assert!(matches!(
            store.wait_durable_blocking(a_end),
            Err(Error::NoSpace)
        ));
        plan.set_space_left(None);
        let (b_id, b) = chunk(2, 4000);
        let b_end = store.put(b_id, &b).unwrap();
        assert!(b_end > a_end);
        store.wait_durable_blocking(b_end).unwrap();
        assert!(store.any_lost(&[a_end, b_end]), "the refused record");
        assert!(!store.any_lost(&[b_end]));
        assert!(!store.is_failed());
    }

    /// The zeroer meets a full disk: it stops zeroing the pack, the writer goes on, and
    /// every acknowledged record survives a crash.
    #[test]
    fn a_zeroer_out_of_space_leaves_the_writer_working() {
        let mem = Arc::new(MemStorage::new());
        let plan = FaultPlan::new();
        let storage = Arc::new(FaultyStorage::new(mem.clone(), plan.clone()));
        let z = PreZeroer::start().unwrap();
        let store = open_pz(storage, PACK_SIZE_TARGET, &z);
        plan.set_space_left(Some(100_000));
        // One record, one batch: the zeroer starts only after it was written.
        let first = put_all(&store, 1);
        z.wait_idle();
        assert!(plan.counters().injected > 0, "the zeroer met no full disk");
        assert!(!store.is_failed());
        plan.set_space_left(None);
        let before = plan.counters().written_bytes;
        let more: Vec<_> = (600..640).map(|i| chunk(i, 4000)).collect();
        let mut last = Pos::default();
        for (id, d) in &more {
            last = store.put(*id, d).unwrap();
        }
        store.wait_durable_blocking(last).unwrap();
        z.wait_idle();
        assert_eq!(
            plan.counters().written_bytes - before,
            records_len(&more),
            "zeroing of that pack went on"
        );
        let crashed = Arc::new(mem.crash(CrashMode::DurableOnly));
        drop(store);
        let (store, rec) = ChunkStore::open(crashed).unwrap();
        assert_eq!((rec.torn_bytes, rec.damaged_bytes), (0, 0));
        assert_all(&store, &first);
        assert_all(&store, &more);
    }

    /// Sealed packs lose their zero tails: in the background, surely before a checkpoint
    /// covers a later pack, and on open when a crash came first.
    #[test]
    fn sealed_packs_keep_no_zero_tail() {
        let mem = Arc::new(MemStorage::new());
        let z = PreZeroer::start().unwrap();
        let target = 64 << 10;
        let store = open_pz(mem.clone(), target, &z);
        let all = put_all(&store, 100);
        store.checkpoint().unwrap();
        let packs = store.writer.current_pack().0;
        assert!(packs >= 3, "only {packs} packs");
        let crashed = Arc::new(mem.crash(CrashMode::DurableOnly));
        drop(store);
        let mut sealed_bytes = 0;
        for p in 1..packs {
            let f = crashed.open(&pack_name(PackId(p)), false).unwrap();
            let len = f.len().unwrap();
            let mut last = [0u8; 1];
            f.read_exact_at(&mut last, len - 1).unwrap();
            assert!(len <= target, "pack {p}: {len} bytes");
            assert_ne!(last[0], 0, "pack {p} ends in zeros");
            sealed_bytes += len;
        }
        // A crash between a seal and its cut: zeros after pack 1's records.
        let p1 = pack_len(crashed.as_ref(), 1);
        let f = crashed.open(&pack_name(PackId(1)), false).unwrap();
        f.write_batch(&[(p1, &vec![0u8; 20_000])], true).unwrap();
        // Drop the checkpoint so that open scans pack 1.
        crashed.remove(checkpoint::CHECKPOINT_NAME).unwrap();
        crashed.sync_dir("index").unwrap();
        let (store, rec) = ChunkStore::open(crashed.clone()).unwrap();
        assert_eq!((rec.torn_bytes, rec.damaged_bytes), (0, 0));
        assert_eq!(
            pack_len(crashed.as_ref(), 1),
            p1,
            "zero tail not cut on open"
        );
        assert_all(&store, &all);
        let current = store.writer.current_pack();
        let (_, _, pack_bytes) = store.stats();
        let current_bytes = store.usage.lock()[&current].total + PACK_HEADER_LEN;
        assert_eq!(pack_bytes, sealed_bytes + current_bytes);
        // Compaction of sealed packs works as ever.
        for (id, _) in &all {
            store.add_ref(id);
        }
        store.release(&all[0].0);
        store.gc(|_| {});
        let rep = store.compact(0.0).unwrap();
        assert!(rep.packs_removed >= 2, "{rep:?}");
        assert_all(&store, &all[1..]);
    }
}
