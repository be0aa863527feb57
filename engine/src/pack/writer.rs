//! The pack appender: frames chunk records into the current pack and group-commits them.
//!
//! Same shape as the WAL: appenders reserve a position and copy bytes into a pending batch;
//! one flusher thread writes and fdatasyncs whatever accumulated. Positions only grow, so
//! "durable up to position p" covers every record that ends at or before p.
//!
//! A batch that fails for lack of space (ENOSPC, EDQUOT) does not poison the writer: its
//! range is recorded as lost (waiters inside it get `Error::NoSpace`), its chunk ids are
//! handed to the chunk store to unindex, and appending continues in a new pack. Every other
//! write or sync error poisons it (`docs/reliability.md`, "Faults").
//!
//! With a [`PreZeroer`] the current pack is kept zeroed ahead of the appends (cheaper
//! fdatasyncs); a sealed pack's zero tail is cut in the background, and at the latest before
//! a checkpoint covers a later pack ([`PackWriter::settle_sealed`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::format::{self, PACK_HEADER_LEN, RECORD_HEADER_LEN};
use crate::commit::{Flags, Flush, GroupCommit, Settled};
use crate::error::{Error, Result};
use crate::ids::{ChunkId, PackId};
use crate::io::{is_out_of_space, AlignedBuf, PreZeroer, Storage, StorageFile, Zone, ZoneConfig};
use crate::limits::{
    DIRECT_IO_ALIGN, PACK_BATCH_SPARES, PACK_BATCH_SPARE_BYTES_MAX, PACK_PREZERO_LOW_WATER,
    PACK_PREZERO_STEP, PACK_SIZE_TARGET,
};

/// Bits of a [`Pos`] that hold the offset inside a pack.
const POS_OFFSET_BITS: u32 = 40;
const _: () = assert!(PACK_SIZE_TARGET * 2 < (1u64 << POS_OFFSET_BITS));

/// A position in the sequence of all packs: (pack, end offset) packed into one ordered u64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos(pub u64);

impl Pos {
    pub(crate) fn new(pack: PackId, offset: u64) -> Pos {
        debug_assert!(offset < (1u64 << POS_OFFSET_BITS));
        Pos(((pack.0 as u64) << POS_OFFSET_BITS) | offset)
    }
    pub(crate) fn pack(self) -> PackId {
        PackId((self.0 >> POS_OFFSET_BITS) as u32)
    }
    pub(crate) fn offset(self) -> u64 {
        self.0 & ((1u64 << POS_OFFSET_BITS) - 1)
    }
}

/// The name of pack `pack`.
pub(crate) fn pack_name(pack: PackId) -> String {
    format!("packs/{:010}.pack", pack.0)
}

pub(crate) fn parse_pack_name(name: &str) -> Option<PackId> {
    let n = name.strip_prefix("packs/")?.strip_suffix(".pack")?;
    if n.len() != 10 {
        return None;
    }
    n.parse().ok().map(PackId)
}

struct Batch {
    file: Arc<dyn StorageFile>,
    /// The pack's direct-I/O handle: `buf` is then written through it, padded to the alignment.
    direct: Option<Arc<dyn StorageFile>>,
    zone: Option<Arc<Zone>>,
    /// Where this batch's first record starts.
    offset: u64,
    /// Where `buf` starts: `offset`, or with `direct` the aligned offset at or below it (`buf`
    /// then begins with the pack's bytes from there to `offset`, written again unchanged).
    write_from: u64,
    buf: AlignedBuf,
    end: Pos,
    /// The chunks whose records are in `buf`, in order.
    ids: Vec<ChunkId>,
}

/// Records that a full disk kept from the packs: positions in `(from, to]` never become durable.
#[derive(Clone, Debug)]
pub(crate) struct LostRange {
    pub from: Pos,
    pub to: Pos,
    pub ids: Vec<ChunkId>,
}

impl LostRange {
    /// Whether the record ending at `end` lies in this range.
    pub(crate) fn holds(&self, end: Pos) -> bool {
        end > self.from && end <= self.to
    }
}

struct WriterState {
    pack: PackId,
    file: Arc<dyn StorageFile>,
    /// The current pack opened for direct I/O, when direct appends are on and possible.
    direct: Option<Arc<dyn StorageFile>>,
    /// With `direct`: the current pack's bytes from the aligned offset at or below the end of
    /// what the flusher has taken, to that end (a new batch starts with them).
    tail: Vec<u8>,
    /// Keeps the current pack zeroed ahead of `len`, when pre-zeroing is on.
    zone: Option<Arc<Zone>>,
    /// Reserved end of the current pack (bytes appended, durable or pending).
    len: u64,
    pending: Vec<Batch>,
    /// Emptied buffers of written batches, reused so that a batch does not grow from scratch.
    spare: Vec<AlignedBuf>,
    /// A batch of the current pack was lost to a full disk: the next append starts a new pack.
    rotate: bool,
    flags: Flags,
    /// The next pack, created ahead by the preparer thread (header durable, directory synced),
    /// so that sealing a pack costs an append no file creation and no fsync.
    next: Option<(PackId, PackFiles)>,
    /// The preparer was asked for the next pack and has not answered yet.
    preparing: bool,
}

/// A pack's handles: the ordinary one (reads, syncs, cuts) and, for appends, a direct one.
struct PackFiles {
    file: Arc<dyn StorageFile>,
    direct: Option<Arc<dyn StorageFile>>,
}

struct Shared {
    storage: Arc<dyn Storage>,
    prezero: Option<Arc<PreZeroer>>,
    /// Append through direct I/O (no copy into the page cache) where the storage allows;
    /// cleared for good when a direct write is refused (EINVAL).
    direct: AtomicBool,
    /// Zones of packs sealed since the last [`PackWriter::settle_sealed`].
    sealed: Mutex<Vec<Arc<Zone>>>,
    /// Packs sealed after direct appends, with the end of their records: their last write was
    /// padded to the alignment, and the padding is cut once that end is durable.
    sealed_padded: Mutex<Vec<(Arc<dyn StorageFile>, Pos)>>,
    /// A pack is sealed once the next record would take it past this many bytes.
    pack_target: u64,
    /// Wakes the preparer thread.
    prepare: Condvar,
    /// The preparer finished (`preparing` turned false).
    prepared: Condvar,
    /// Every range lost to a full disk since open (rare: one per ENOSPC episode).
    lost: Mutex<Vec<LostRange>>,
    /// Lost ranges whose chunks the chunk store has not yet unindexed.
    unreaped: Mutex<Vec<LostRange>>,
    any_lost: AtomicBool,
    any_unreaped: AtomicBool,
}

/// The writer's group commit; its durable mark is a [`Pos`]: every record ending at or
/// before it is durable.
type Writer = GroupCommit<Shared>;

/// What the flusher writes: the batches taken, and how far writing them got.
struct Flushing {
    batches: Vec<Batch>,
    /// End of the last batch written.
    end: Pos,
    /// Batches written.
    done: usize,
}

/// Batches a full disk refused, to cut from their packs once the lock is released.
struct Refused {
    batches: Vec<Batch>,
    chunks: usize,
    error: std::io::Error,
}

/// Where a record was placed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placed {
    pub pack: PackId,
    /// Offset of the chunk data (after its record header).
    pub data_offset: u64,
    /// Position the caller waits for before relying on the record.
    pub end: Pos,
}

pub(crate) struct PackWriter {
    shared: Arc<Writer>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    preparer: Mutex<Option<JoinHandle<()>>>,
}

impl PackWriter {
    /// How long the pack flushes (write and fdatasync) took so far.
    pub(crate) fn flush_times(&self) -> crate::commit::FlushTimes {
        self.shared.flush_times()
    }
}

/// Creates pack `pack` durably (header written and synced, directory synced).
pub(crate) fn create_pack(storage: &dyn Storage, pack: PackId) -> Result<Arc<dyn StorageFile>> {
    let file = storage.open(&pack_name(pack), true)?;
    file.truncate(0)?;
    file.write_batch(&[(0, &format::pack_header(pack))], true)?;
    storage.sync_dir("packs")?;
    Ok(file)
}

impl Shared {
    /// Opens `pack` for direct appends when they are on and the storage allows.
    fn open_direct(&self, pack: PackId) -> Result<Option<Arc<dyn StorageFile>>> {
        if !self.direct.load(Ordering::Relaxed) {
            return Ok(None);
        }
        Ok(self.storage.open_direct(&pack_name(pack))?)
    }

    /// Creates `pack` durably with its handles.
    fn create_pack_files(&self, pack: PackId) -> Result<PackFiles> {
        let file = create_pack(self.storage.as_ref(), pack)?;
        let direct = self.open_direct(pack)?;
        Ok(PackFiles { file, direct })
    }
}

/// `offset` rounded down to the direct-I/O alignment.
fn align_down(offset: u64) -> u64 {
    offset - offset % DIRECT_IO_ALIGN as u64
}

/// The bytes of `file` from the aligned offset at or below `end` up to `end`.
fn read_tail(file: &dyn StorageFile, end: u64) -> Result<Vec<u8>> {
    let mut tail = vec![0u8; (end - align_down(end)) as usize];
    file.read_exact_at(&mut tail, align_down(end))?;
    Ok(tail)
}

fn new_zone(
    prezero: Option<&Arc<PreZeroer>>,
    storage: &dyn Storage,
    pack: PackId,
    data_end: u64,
    file_len: u64,
    pack_target: u64,
) -> Option<Arc<Zone>> {
    let cfg = ZoneConfig::new(PACK_PREZERO_STEP, PACK_PREZERO_LOW_WATER, pack_target);
    prezero.and_then(|z| z.zone(storage, &pack_name(pack), data_end, file_len, cfg))
}

impl PackWriter {
    /// Continues appending to `pack` whose valid length is `len` (or creates it when `len == 0`).
    #[cfg(test)]
    pub(crate) fn start(storage: Arc<dyn Storage>, pack: PackId, len: u64) -> Result<PackWriter> {
        Self::start_with(storage, pack, len, len, PACK_SIZE_TARGET, None, true)
    }

    /// [`PackWriter::start`] sealing packs past `pack_target` bytes (checked by the caller);
    /// the pack's bytes from `len` to `file_len` read as zeros. Keeps packs zeroed ahead when
    /// `prezero` is given, else appends with direct I/O when `direct` is set and the storage
    /// allows it.
    pub(crate) fn start_with(
        storage: Arc<dyn Storage>,
        pack: PackId,
        len: u64,
        file_len: u64,
        pack_target: u64,
        prezero: Option<Arc<PreZeroer>>,
        direct: bool,
    ) -> Result<PackWriter> {
        debug_assert!(pack_target <= PACK_SIZE_TARGET);
        let (file, len, file_len) = if len == 0 {
            let h = PACK_HEADER_LEN;
            (create_pack(storage.as_ref(), pack)?, h, h)
        } else {
            (
                storage.open(&pack_name(pack), false)?,
                len,
                file_len.max(len),
            )
        };
        let zone = new_zone(
            prezero.as_ref(),
            storage.as_ref(),
            pack,
            len,
            file_len,
            pack_target,
        );
        let direct = direct && prezero.is_none();
        let direct_file = if direct {
            storage.open_direct(&pack_name(pack))?
        } else {
            None
        };
        let tail = match &direct_file {
            Some(_) => read_tail(file.as_ref(), len)?,
            None => Vec::new(),
        };
        let shared = Arc::new(Writer::new(
            Shared {
                storage,
                prezero,
                direct: AtomicBool::new(direct),
                sealed: Mutex::new(Vec::new()),
                sealed_padded: Mutex::new(Vec::new()),
                pack_target,
                prepare: Condvar::new(),
                prepared: Condvar::new(),
                lost: Mutex::new(Vec::new()),
                unreaped: Mutex::new(Vec::new()),
                any_lost: AtomicBool::new(false),
                any_unreaped: AtomicBool::new(false),
            },
            WriterState {
                pack,
                file,
                direct: direct_file,
                tail,
                zone,
                len,
                pending: Vec::new(),
                spare: Vec::new(),
                rotate: false,
                flags: Flags::default(),
                next: None,
                preparing: false,
            },
            Pos::new(pack, len).0,
        ));
        let handle = shared.spawn_flusher("skab-pack-flusher".into())?;
        let s = shared.clone();
        let prep = std::thread::Builder::new()
            .name("skab-pack-prep".into())
            .spawn(move || preparer(s));
        let prep = match prep {
            Ok(h) => h,
            Err(e) => {
                shared.shut_down();
                let _ = handle.join();
                return Err(e.into());
            }
        };
        Ok(PackWriter {
            shared,
            flusher: Mutex::new(Some(handle)),
            preparer: Mutex::new(Some(prep)),
        })
    }

    /// Appends a record for chunk `id`; no I/O unless a new pack must be started.
    pub(crate) fn append(&self, id: &ChunkId, data: &[u8]) -> Result<Placed> {
        let sh = &self.shared;
        let mut st = sh.state.lock();
        if st.flags.failed {
            return Err(Error::Poisoned);
        }
        let record_len = RECORD_HEADER_LEN + data.len() as u64;
        if st.rotate || (st.len + record_len > sh.pack_target && st.len > PACK_HEADER_LEN) {
            let next = PackId(st.pack.0 + 1);
            // Never create the pack the preparer is creating (it truncates what it opens).
            while st.preparing && !st.flags.shutdown {
                sh.prepared.wait(&mut st);
            }
            let files = match st.next.take() {
                Some((id, files)) if id == next => files,
                _ => sh.create_pack_files(next).map_err(|e| match e {
                    Error::Io(io) if is_out_of_space(&io) => Error::NoSpace,
                    other => other,
                })?,
            };
            let zone = new_zone(
                sh.prezero.as_ref(),
                sh.storage.as_ref(),
                next,
                PACK_HEADER_LEN,
                PACK_HEADER_LEN,
                sh.pack_target,
            );
            if let Some(old) = std::mem::replace(&mut st.zone, zone) {
                old.seal(st.len);
                sh.sealed.lock().push(old);
            }
            if st.direct.is_some() {
                let end = Pos::new(st.pack, st.len);
                sh.sealed_padded.lock().push((st.file.clone(), end));
            }
            st.tail.clear();
            if files.direct.is_some() {
                st.tail.extend_from_slice(&format::pack_header(next));
            }
            st.pack = next;
            st.file = files.file;
            st.direct = files.direct;
            st.len = PACK_HEADER_LEN;
            st.rotate = false;
        }
        // Halfway through a pack, the preparer creates the next one.
        if st.next.is_none() && !st.preparing && st.len > sh.pack_target / 2 {
            st.preparing = true;
            sh.prepare.notify_one();
        }
        let offset = st.len;
        let end = Pos::new(st.pack, offset + record_len);
        let same_file = st
            .pending
            .last()
            .is_some_and(|b| Arc::ptr_eq(&b.file, &st.file));
        if let Some(z) = &st.zone {
            z.reserve(offset + record_len);
        }
        if !same_file {
            let file = st.file.clone();
            let direct = st.direct.clone();
            let zone = st.zone.clone();
            let mut buf = st.spare.pop().unwrap_or_else(|| {
                AlignedBuf::with_capacity(DIRECT_IO_ALIGN, record_len as usize + DIRECT_IO_ALIGN)
            });
            let write_from = if direct.is_some() {
                assert_eq!(offset - align_down(offset), st.tail.len() as u64);
                buf.extend_from_slice(&st.tail);
                align_down(offset)
            } else {
                offset
            };
            st.pending.push(Batch {
                file,
                direct,
                zone,
                offset,
                write_from,
                buf,
                end,
                ids: Vec::new(),
            });
        }
        let Some(batch) = st.pending.last_mut() else {
            unreachable!("a batch was just ensured");
        };
        batch
            .buf
            .extend_from_slice(&format::record_header(id, data));
        batch.buf.extend_from_slice(data);
        batch.end = end;
        batch.ids.push(*id);
        st.len = offset + record_len;
        let placed = Placed {
            pack: st.pack,
            data_offset: offset + RECORD_HEADER_LEN,
            end,
        };
        drop(st);
        sh.wake.notify_one();
        Ok(placed)
    }

    /// Waits until the record ending at `pos` is durable; `Error::NoSpace` when a full disk
    /// kept it from the packs.
    pub(crate) async fn wait_durable(&self, pos: Pos) -> Result<()> {
        if !self.shared.durable.wait(pos.0).await {
            return Err(Error::Poisoned);
        }
        // The flusher records a lost range before it moves `pos` past it.
        if self.shared.any_lost.load(Ordering::Acquire)
            && self.shared.lost.lock().iter().any(|r| r.holds(pos))
        {
            return Err(Error::NoSpace);
        }
        Ok(())
    }

    /// Whether any of the records ending at `ends` was refused by a full disk (so far: a
    /// refusal is recorded before `wait_durable` passes its position).
    pub(crate) fn any_lost(&self, ends: &[Pos]) -> bool {
        if !self.shared.any_lost.load(Ordering::Acquire) {
            return false;
        }
        let lost = self.shared.lost.lock();
        ends.iter().any(|e| lost.iter().any(|r| r.holds(*e)))
    }

    /// Ranges lost to a full disk whose chunks are still to be unindexed (taken once).
    pub(crate) fn take_unreaped(&self) -> Vec<LostRange> {
        if !self.shared.any_unreaped.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut u = self.shared.unreaped.lock();
        self.shared.any_unreaped.store(false, Ordering::Release);
        std::mem::take(&mut *u)
    }

    pub(crate) fn wait_durable_blocking(&self, pos: Pos) -> Result<()> {
        futures::executor::block_on(self.wait_durable(pos))
    }

    /// The position up to which everything is durable.
    pub(crate) fn durable_pos(&self) -> Pos {
        Pos(self.shared.durable.get())
    }

    /// Waits until a pack being prepared ahead is on disk (or given up).
    pub(crate) fn settle_prepared(&self) {
        let mut st = self.shared.state.lock();
        while st.preparing && !st.flags.shutdown {
            self.shared.prepared.wait(&mut st);
        }
    }

    /// Bytes of the pack prepared ahead (its header), once any preparation under way is done.
    pub(crate) fn prepared_bytes(&self) -> u64 {
        self.settle_prepared();
        if self.shared.state.lock().next.is_some() {
            PACK_HEADER_LEN
        } else {
            0
        }
    }

    /// The pack being appended to.
    pub(crate) fn current_pack(&self) -> PackId {
        self.shared.state.lock().pack
    }

    /// Whether the current pack is appended to with direct I/O.
    #[cfg(test)]
    pub(crate) fn current_direct(&self) -> bool {
        self.shared.state.lock().direct.is_some()
    }

    /// The open file of the current pack, if it is `pack`.
    pub(crate) fn current_file(&self, pack: PackId) -> Option<Arc<dyn StorageFile>> {
        let st = self.shared.state.lock();
        (st.pack == pack).then(|| st.file.clone())
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.shared.state.lock().flags.failed
    }

    /// Cuts the zero tails of the packs sealed so far, now and synced (most were cut in the
    /// background already): a checkpoint that covers a later pack makes recovery skip them.
    pub(crate) fn settle_sealed(&self) {
        let sealed = std::mem::take(&mut *self.shared.sealed.lock());
        for z in sealed {
            z.finish_seal();
        }
        self.cut_padding();
    }

    /// Cuts the alignment padding after the records of sealed packs whose records are all
    /// durable (the others wait for a later call).
    fn cut_padding(&self) {
        let durable = self.durable_pos();
        let due: Vec<(Arc<dyn StorageFile>, Pos)> = {
            let mut padded = self.shared.sealed_padded.lock();
            let (due, later) = std::mem::take(&mut *padded)
                .into_iter()
                .partition(|(_, end)| *end <= durable);
            *padded = later;
            due
        };
        for (file, end) in due {
            let cut = file.len().and_then(|len| {
                if len > end.offset() {
                    file.truncate(end.offset())?;
                    file.sync_data()?;
                }
                Ok(())
            });
            if let Err(e) = cut {
                tracing::warn!(pack = end.pack().0, error = %e, "cannot cut a sealed pack's padding");
            }
        }
    }
}

impl Flush for Shared {
    type State = WriterState;
    type Batch = Flushing;
    type Cleanup = Option<Refused>;

    fn flags(st: &mut WriterState) -> &mut Flags {
        &mut st.flags
    }

    fn has_pending(st: &WriterState) -> bool {
        !st.pending.is_empty()
    }

    fn take(_: &Writer, st: &mut WriterState) -> Flushing {
        let batches = std::mem::take(&mut st.pending);
        keep_tail(st, &batches);
        Flushing {
            batches,
            end: Pos::default(),
            done: 0,
        }
    }

    fn write(sh: &Writer, f: &mut Flushing) -> std::io::Result<()> {
        for b in &mut f.batches {
            if let Some(z) = &b.zone {
                z.before_write(b.offset, b.offset + b.buf.len() as u64);
            }
            let target = match &b.direct {
                Some(direct) => {
                    let padded = b.buf.len().next_multiple_of(DIRECT_IO_ALIGN);
                    b.buf.resize(padded, 0);
                    direct
                }
                None => &b.file,
            };
            let mut result = target.write_batch(&[(b.write_from, &b.buf)], true);
            if b.direct.is_some() && is_refused_direct(&result) {
                result = fall_back_to_buffered(sh, b);
            }
            result?;
            if let Some(z) = &b.zone {
                z.after_write();
            }
            f.end = b.end;
            f.done += 1;
        }
        Ok(())
    }

    fn settle(
        sh: &Writer,
        st: &mut WriterState,
        f: Flushing,
        result: std::io::Result<()>,
    ) -> Settled<Option<Refused>> {
        match result {
            Ok(()) => {
                for mut b in f.batches {
                    if st.spare.len() < PACK_BATCH_SPARES
                        && b.buf.capacity() <= PACK_BATCH_SPARE_BYTES_MAX
                    {
                        b.buf.clear();
                        st.spare.push(b.buf);
                    }
                }
                Settled::Durable {
                    to: f.end.0,
                    cleanup: None,
                }
            }
            Err(e) if is_out_of_space(&e) => lose(sh, st, f, e),
            Err(e) => {
                tracing::error!(error = %e, "pack write failed; chunk store poisoned");
                st.flags.failed = true;
                Settled::Failed
            }
        }
    }

    fn cleanup(_: &Writer, refused: Option<Refused>) {
        if let Some(r) = refused {
            cut_refused(r);
        }
    }
}

/// Whether a direct write failed because the file system refuses direct I/O after all (it
/// opened the file with `O_DIRECT` but rejects the writes).
fn is_refused_direct(result: &std::io::Result<()>) -> bool {
    matches!(result, Err(e) if e.raw_os_error() == Some(libc::EINVAL))
}

/// Writes batch `b` through the pack's ordinary handle instead, and turns direct appends off
/// for good: this and every later batch and pack go through the page cache.
fn fall_back_to_buffered(sh: &Writer, b: &Batch) -> std::io::Result<()> {
    if sh.direct.swap(false, Ordering::Relaxed) {
        tracing::warn!("direct writes refused (EINVAL): packs are appended through the page cache");
    }
    {
        let mut st = sh.state.lock();
        st.direct = None;
        st.tail.clear();
        for p in st.pending.iter_mut() {
            p.direct = None;
            // Its leading bytes were written already; the rest start at its first record.
            let skip = (p.offset - p.write_from) as usize;
            let rest = p.buf[skip..].to_vec();
            p.buf.clear();
            p.buf.extend_from_slice(&rest);
            p.write_from = p.offset;
        }
    }
    b.file.write_batch(&[(b.write_from, &b.buf)], true)
}

/// Keeps the bytes that the next batch of the current pack must write again: those of the
/// last taken batch from its last aligned offset on (direct appends only).
fn keep_tail(st: &mut WriterState, taken: &[Batch]) {
    let Some(last) = taken.last() else {
        return;
    };
    if last.direct.is_none() || !Arc::ptr_eq(&last.file, &st.file) {
        return;
    }
    let end = last.end.offset();
    debug_assert_eq!(end - last.write_from, last.buf.len() as u64);
    let from = (align_down(end) - last.write_from) as usize;
    let to = (end - last.write_from) as usize;
    st.tail.clear();
    st.tail.extend_from_slice(&last.buf[from..to]);
}

/// A full disk refused `batches[done]`: it, the batches after it and everything still pending
/// are lost. Records the range and makes the next append start a new pack (lost offsets are
/// never reused); the written tail is cut once the lock is released ([`cut_refused`]).
fn lose(
    sh: &Writer,
    st: &mut WriterState,
    mut f: Flushing,
    error: std::io::Error,
) -> Settled<Option<Refused>> {
    let mut lost: Vec<Batch> = f.batches.split_off(f.done);
    lost.append(&mut st.pending);
    let Some(first) = lost.first() else {
        return Settled::Unchanged;
    };
    let range = LostRange {
        from: Pos::new(first.end.pack(), first.offset),
        to: Pos::new(st.pack, st.len),
        ids: lost.iter().flat_map(|b| b.ids.iter().copied()).collect(),
    };
    st.rotate = true;
    // Registered before the writer lock goes: an append that now fails to start the next
    // pack returns `NoSpace` at once, and its upload must find these chunks unindexed.
    sh.lost.lock().push(range.clone());
    sh.any_lost.store(true, Ordering::Release);
    let chunks = range.ids.len();
    let to = range.to.0;
    sh.unreaped.lock().push(range);
    sh.any_unreaped.store(true, Ordering::Release);
    Settled::Durable {
        to,
        cleanup: Some(Refused {
            batches: lost,
            chunks,
            error,
        }),
    }
}

/// Cuts what a short write of refused batches left (best effort: the range is never trusted
/// either way).
fn cut_refused(r: Refused) {
    tracing::warn!(
        error = %r.error,
        chunks = r.chunks,
        "pack write refused for lack of space; those uploads fail, writing goes on in a new pack"
    );
    let mut cut: Vec<(*const (), u64)> = Vec::new();
    for b in &r.batches {
        let key = Arc::as_ptr(&b.file) as *const ();
        if !cut.iter().any(|(k, _)| *k == key) {
            cut.push((key, b.offset));
            // No zeros after the cut: this pack is never appended to again.
            if let Some(z) = &b.zone {
                z.stop();
            }
            if let Err(err) = b.file.truncate(b.offset) {
                tracing::warn!(error = %err, "cannot cut the refused pack tail");
            }
        }
    }
}

/// Creates the pack after the current one when the writer asks (off the appenders' path:
/// a creation is a file, a synced header and a synced directory).
fn preparer(sh: Arc<Writer>) {
    loop {
        let pack = {
            let mut st = sh.state.lock();
            while !st.preparing && !st.flags.shutdown {
                sh.prepare.wait(&mut st);
            }
            if st.flags.shutdown {
                return;
            }
            PackId(st.pack.0 + 1)
        };
        let made = sh.create_pack_files(pack);
        let mut st = sh.state.lock();
        st.preparing = false;
        sh.prepared.notify_all();
        match made {
            // Still the next one (the writer may have moved on and made it itself).
            Ok(files) if st.pack.0 + 1 == pack.0 => st.next = Some((pack, files)),
            Ok(_) => {}
            // The writer creates it itself when it must, and reports the error then.
            Err(e) => tracing::warn!(error = %e, pack = pack.0, "could not prepare the next pack"),
        }
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        self.shared.shut_down();
        self.shared.prepare.notify_all();
        if let Some(h) = self.preparer.lock().take() {
            let _ = h.join();
        }
        if let Some(h) = self.flusher.lock().take() {
            let _ = h.join();
        }
        if let Some(z) = self.shared.state.lock().zone.take() {
            z.stop();
        }
        self.settle_sealed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pos_orders_by_pack_then_offset() {
        let a = Pos::new(PackId(1), 1 << 30);
        let b = Pos::new(PackId(2), 16);
        assert!(a < b);
        assert_eq!(b.pack(), PackId(2));
        assert_eq!(b.offset(), 16);
    }

    #[test]
    fn pack_names_round_trip() {
        assert_eq!(parse_pack_name(&pack_name(PackId(12))), Some(PackId(12)));
        assert_eq!(parse_pack_name("packs/12.pack"), None);
    }
}
