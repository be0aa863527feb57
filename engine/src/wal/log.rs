//! One shard's write-ahead log: append records, group-commit them with one fdatasync per batch.
//!
//! Appenders never touch the disk: they frame their record into a shared buffer and get a
//! sequence number. One flusher thread per log writes whatever accumulated while the previous
//! fsync ran and syncs it, so concurrent writers share fsyncs. A caller acknowledges an
//! operation only once [`ShardLog::wait_durable`] says its sequence number is durable.
//! After a failed write or fsync the log is poisoned: nothing is ever reported durable again.
//! With a [`PreZeroer`] the segment is kept zeroed ahead of the writes (cheaper fdatasyncs);
//! the zeros after the last record are a clean end on open, and a rotated segment's are cut.

use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use super::frame::{self, SEGMENT_HEADER_LEN};
pub(crate) use super::recover::Replay;
use super::recover::{self, Recovered};
use crate::commit::{Flags, Flush, GroupCommit, Settled};
use crate::error::{Error, Result};
use crate::io::{PreZeroer, Storage, StorageFile, Zone, ZoneConfig};
use crate::limits::{STORAGE_OFFSET_MAX, WAL_PREZERO_LOW_WATER, WAL_PREZERO_STEP};

struct LogState {
    segment: u64,
    file: Arc<dyn StorageFile>,
    /// End of the records written or being written (the append position).
    file_len: u64,
    /// Keeps the segment zeroed ahead of `file_len`, when pre-zeroing is on.
    zone: Option<Arc<Zone>>,
    pending: Vec<u8>,
    pending_last_seq: u64,
    next_seq: u64,
    /// The buffer of the last batch written, emptied, to take the next batch's bytes.
    spare: Vec<u8>,
    flags: Flags,
}

struct Shared {
    storage: Arc<dyn Storage>,
    prezero: Option<Arc<PreZeroer>>,
    dir: String,
}

/// What the flusher writes: the records appended since the last batch.
struct WalBatch {
    file: Arc<dyn StorageFile>,
    zone: Option<Arc<Zone>>,
    offset: u64,
    buf: Vec<u8>,
    last_seq: u64,
}

/// The log's group commit; its durable mark is the first sequence number not yet durable
/// (every record with a smaller one is durable).
type Log = GroupCommit<Shared>;

/// A shard's log. Dropping it stops the flusher after writing what is pending.
pub(crate) struct ShardLog {
    shared: Arc<Log>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl ShardLog {
    /// How long this log's flushes (write and fdatasync) took so far.
    pub(crate) fn flush_times(&self) -> crate::commit::FlushTimes {
        self.shared.flush_times()
    }
}

/// The name of segment `segment` inside `dir`.
pub(crate) fn segment_name(dir: &str, segment: u64) -> String {
    format!("{dir}/{segment:016}.wal")
}

pub(super) fn parse_segment_name(dir: &str, name: &str) -> Option<u64> {
    let rest = name.strip_prefix(dir)?.strip_prefix('/')?;
    let num = rest.strip_suffix(".wal")?;
    if num.len() != 16 {
        return None;
    }
    num.parse().ok()
}

fn zone_config() -> ZoneConfig {
    ZoneConfig::new(WAL_PREZERO_STEP, WAL_PREZERO_LOW_WATER, STORAGE_OFFSET_MAX)
}

impl ShardLog {
    /// Opens the log in `dir`, replaying segments numbered `first_segment` and later
    /// (earlier ones are covered by a snapshot and are removed). A torn tail of the last
    /// segment is cut off; damage anywhere else is `Error::Corrupt`. Zeros after the last
    /// record of a segment are a clean end; appends go on over them.
    pub(crate) fn open(
        storage: Arc<dyn Storage>,
        dir: &str,
        first_segment: u64,
        min_next_seq: u64,
        prezero: Option<Arc<PreZeroer>>,
    ) -> Result<(ShardLog, Replay)> {
        let Recovered {
            replay,
            open_tail,
            last_segment,
            last_seq,
        } = recover::replay(storage.as_ref(), dir, first_segment)?;
        let (segment, file, data_end, file_len) = match open_tail {
            Some(t) => t,
            None => {
                let number = last_segment
                    .map(|n| n + 1)
                    .unwrap_or(first_segment)
                    .max(first_segment);
                let file = create_segment(storage.as_ref(), dir, number)?;
                let len = SEGMENT_HEADER_LEN as u64;
                (number, file, len, len)
            }
        };
        let zone = prezero.as_ref().and_then(|z| {
            z.zone(
                storage.as_ref(),
                &segment_name(dir, segment),
                data_end,
                file_len,
                zone_config(),
            )
        });
        // A log whose sequence numbers ran out cannot take another record: damage, not data.
        let next_seq = match last_seq {
            Some(s) => s.checked_add(1),
            None => Some(0),
        }
        .map(|n| n.max(min_next_seq))
        .filter(|&n| n < u64::MAX)
        .ok_or_else(|| Error::Corrupt(format!("{dir}: WAL sequence numbers exhausted")))?;
        let shared = Arc::new(Log::new(
            Shared {
                storage,
                prezero,
                dir: dir.to_string(),
            },
            LogState {
                segment,
                file,
                file_len: data_end,
                zone,
                pending: Vec::new(),
                pending_last_seq: 0,
                next_seq,
                spare: Vec::new(),
                flags: Flags::default(),
            },
            next_seq,
        ));
        let handle = shared.spawn_flusher(format!("skab-wal-{dir}"))?;
        let log = ShardLog {
            shared,
            flusher: Mutex::new(Some(handle)),
        };
        Ok((log, replay))
    }

    /// Whether a failed write or sync poisoned the log.
    pub(crate) fn is_failed(&self) -> bool {
        self.shared.state.lock().flags.failed
    }

    /// Frames `payload` into the pending batch; returns its sequence number. No I/O.
    pub(crate) fn append(&self, payload: &[u8]) -> Result<u64> {
        let mut st = self.shared.state.lock();
        if st.flags.failed {
            return Err(Error::Poisoned);
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        frame::encode_record(seq, payload, &mut st.pending);
        st.pending_last_seq = seq;
        drop(st);
        self.shared.wake.notify_one();
        Ok(seq)
    }

    /// The sequence number the next appended record will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.shared.state.lock().next_seq
    }

    /// Waits until record `seq` is durable.
    pub(crate) async fn wait_durable(&self, seq: u64) -> Result<()> {
        if self.shared.durable.wait(seq + 1).await {
            Ok(())
        } else {
            Err(Error::Poisoned)
        }
    }

    /// Blocking form of [`ShardLog::wait_durable`], for threads outside an async runtime.
    #[cfg(test)]
    pub(crate) fn wait_durable_blocking(&self, seq: u64) -> Result<()> {
        futures::executor::block_on(self.wait_durable(seq))
    }

    /// Makes everything appended so far durable, then starts a new segment.
    /// Returns (number of the new segment, first sequence number of the new segment).
    pub(crate) fn rotate(&self) -> Result<(u64, u64)> {
        let sh = &self.shared;
        let mut st = sh.state.lock();
        sh.wait_idle(&mut st);
        if st.flags.failed {
            return Err(Error::Poisoned);
        }
        if !st.pending.is_empty() {
            let buf = std::mem::take(&mut st.pending);
            let offset = st.file_len;
            if let Some(z) = &st.zone {
                z.before_write(offset, offset + buf.len() as u64);
            }
            if let Err(e) = st.file.write_batch(&[(offset, &buf)], true) {
                st.flags.failed = true;
                sh.durable.fail();
                return Err(e.into());
            }
            st.file_len += buf.len() as u64;
            sh.durable.advance(st.pending_last_seq + 1);
        }
        let next = st.segment + 1;
        let file = match create_segment(sh.storage.as_ref(), &sh.dir, next) {
            Ok(f) => f,
            Err(e) => {
                st.flags.failed = true;
                sh.durable.fail();
                return Err(e);
            }
        };
        let len = SEGMENT_HEADER_LEN as u64;
        let zone = sh.prezero.as_ref().and_then(|z| {
            z.zone(
                sh.storage.as_ref(),
                &segment_name(&sh.dir, next),
                len,
                len,
                zone_config(),
            )
        });
        if let Some(old) = std::mem::replace(&mut st.zone, zone) {
            old.seal(st.file_len);
        }
        st.segment = next;
        st.file = file;
        st.file_len = len;
        Ok((next, st.next_seq))
    }

    /// Removes segments older than `segment` (they are covered by a durable snapshot).
    pub(crate) fn remove_before(&self, segment: u64) -> Result<()> {
        let sh = &self.shared;
        for name in sh.storage.list(&format!("{}/", sh.dir))? {
            if parse_segment_name(&sh.dir, &name).is_some_and(|n| n < segment) {
                sh.storage.remove(&name)?;
            }
        }
        sh.storage.sync_dir(&sh.dir)?;
        Ok(())
    }
}

fn create_segment(storage: &dyn Storage, dir: &str, number: u64) -> Result<Arc<dyn StorageFile>> {
    let name = segment_name(dir, number);
    let file = storage.open(&name, true)?;
    file.truncate(0)?;
    file.write_batch(&[(0, &frame::segment_header(number))], true)?;
    storage.sync_dir(dir)?;
    Ok(file)
}

impl Flush for Shared {
    type State = LogState;
    type Batch = WalBatch;
    type Cleanup = ();

    fn flags(st: &mut LogState) -> &mut Flags {
        &mut st.flags
    }

    fn has_pending(st: &LogState) -> bool {
        !st.pending.is_empty()
    }

    fn take(_: &Log, st: &mut LogState) -> WalBatch {
        let spare = std::mem::take(&mut st.spare);
        let buf = std::mem::replace(&mut st.pending, spare);
        let offset = st.file_len;
        st.file_len += buf.len() as u64;
        WalBatch {
            file: st.file.clone(),
            zone: st.zone.clone(),
            offset,
            buf,
            last_seq: st.pending_last_seq,
        }
    }

    fn write(_: &Log, b: &mut WalBatch) -> std::io::Result<()> {
        if let Some(z) = &b.zone {
            z.before_write(b.offset, b.offset + b.buf.len() as u64);
        }
        let result = b.file.write_batch(&[(b.offset, &b.buf)], true);
        if let (Ok(()), Some(z)) = (&result, &b.zone) {
            z.after_write();
        }
        result
    }

    fn settle(
        log: &Log,
        st: &mut LogState,
        mut b: WalBatch,
        result: std::io::Result<()>,
    ) -> Settled<()> {
        b.buf.clear();
        st.spare = b.buf;
        match result {
            Ok(()) => Settled::Durable {
                to: b.last_seq + 1,
                cleanup: (),
            },
            Err(e) => {
                tracing::error!(error = %e, dir = %log.dir, "WAL write failed; log poisoned");
                st.flags.failed = true;
                Settled::Failed
            }
        }
    }

    fn cleanup(_: &Log, _: ()) {}
}

impl Drop for ShardLog {
    fn drop(&mut self) {
        self.shared.shut_down();
        if let Some(h) = self.flusher.lock().take() {
            let _ = h.join();
        }
        if let Some(z) = self.shared.state.lock().zone.take() {
            z.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{CrashMode, MemStorage};

    fn pz() -> Option<Arc<PreZeroer>> {
        Some(PreZeroer::start().unwrap())
    }

    fn open(mem: &Arc<MemStorage>, first: u64) -> (ShardLog, Replay) {
        ShardLog::open(mem.clone(), "wal/000", first, 0, pz()).unwrap()
    }

    #[test]
    fn concurrent_appends_share_fsyncs_and_survive_a_crash() {
        let mem = Arc::new(MemStorage::new());
        let (log, replay) = open(&mem, 0);
        assert!(replay.records.is_empty());
        let log = Arc::new(log);
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..50u8 {
                        let seq = log.append(&[t, i]).unwrap();
                        log.wait_durable_blocking(seq).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let crashed = Arc::new(mem.crash(CrashMode::DurableOnly));
        drop(log);
        let (_log, replay) = open(&crashed, 0);
        assert_eq!(replay.records.len(), 400);
        let seqs: Vec<u64> = replay.records.iter().map(|r| r.0).collect();
        assert_eq!(seqs, (0..400).collect::<Vec<_>>());
        let mut seen: Vec<Vec<u8>> = replay.records.into_iter().map(|r| r.1).collect();
        seen.sort();
        let mut expect: Vec<Vec<u8>> = (0..8u8)
            .flat_map(|t| (0..50u8).map(move |i| vec![t, i]))
            .collect();
        expect.sort();
        assert_eq!(seen, expect);
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        for seed in 0..20 {
            let mem = Arc::new(MemStorage::new());
            let (log, _) = open(&mem, 0);
            let durable = log.append(b"durable").unwrap();
            log.wait_durable_blocking(durable).unwrap();
            // Crash while later records may be half written.
            let _ = log.append(&vec![7u8; 5000]).unwrap();
            let _ = log.append(b"late").unwrap();
            let crashed = Arc::new(mem.crash(CrashMode::TornTail { seed }));
            drop(log);
            let (log2, replay) = open(&crashed, 0);
            assert!(!replay.records.is_empty());
            assert_eq!(replay.records[0].1, b"durable");
            let after = replay.records.len() as u64;
            let seq = log2.append(b"after restart").unwrap();
            assert_eq!(seq, after);
            log2.wait_durable_blocking(seq).unwrap();
            drop(log2);
            let (_l, replay) = open(&crashed, 0);
            assert_eq!(replay.torn_bytes, 0);
            assert_eq!(replay.records.last().unwrap().1, b"after restart");
        }
    }

    #[test]
    fn rotation_keeps_order_and_old_segments_can_go() {
        let mem = Arc::new(MemStorage::new());
        let (log, _) = open(&mem, 0);
        for i in 0..10u8 {
            log.append(&[i]).unwrap();
        }
        let (next, last) = log.rotate().unwrap();
        assert_eq!((next, last), (1, 10));
        let s = log.append(&[10]).unwrap();
        log.wait_durable_blocking(s).unwrap();
        drop(log);
        let (log, replay) = open(&mem, 0);
        assert_eq!(replay.records.len(), 11);
        assert_eq!(replay.segments, 2);
        log.remove_before(1).unwrap();
        drop(log);
        let (_log, replay) = ShardLog::open(mem.clone(), "wal/000", 1, 10, pz()).unwrap();
        assert_eq!(replay.records, vec![(10, vec![10])]);
    }

    #[test]
    fn damage_before_the_last_segment_is_corruption() {
        let mem = Arc::new(MemStorage::new());
        let (log, _) = open(&mem, 0);
        log.append(b"one").unwrap();
        log.append(b"two").unwrap();
        log.rotate().unwrap();
        drop(log);
        let f = mem.open(&segment_name("wal/000", 0), false).unwrap();
        let len = f.len().unwrap();
        f.write_batch(&[(len - 1, b"X")], true).unwrap();
        assert!(matches!(
            ShardLog::open(mem.clone(), "wal/000", 0, 0, pz()),
            Err(Error::Corrupt(_))
        ));
    }

    /// Fuzz find: a record numbered `u64::MAX` overflowed `last + 1` while opening.
    #[test]
    fn exhausted_sequence_numbers_are_corruption() {
        let mem = Arc::new(MemStorage::new());
        let mut seg = frame::segment_header(0).to_vec();
        frame::encode_record(u64::MAX, b"x", &mut seg);
        let f = mem.open(&segment_name("wal/000", 0), true).unwrap();
        f.write_batch(&[(0, &seg)], true).unwrap();
        drop(f);
        assert!(matches!(
            ShardLog::open(mem.clone(), "wal/000", 0, 0, pz()),
            Err(Error::Corrupt(_))
        ));
        let mem = Arc::new(MemStorage::new());
        assert!(matches!(
            ShardLog::open(mem.clone(), "wal/000", 0, u64::MAX, pz()),
            Err(Error::Corrupt(_))
        ));
        let (_log, replay) = ShardLog::open(mem.clone(), "wal/000", 0, u64::MAX - 1, pz()).unwrap();
        assert!(replay.records.is_empty());
    }

    #[test]
    fn failed_fsync_poisons_the_log() {
        use crate::io::{FaultPlan, FaultyStorage};
        let plan = FaultPlan::new();
        let storage = Arc::new(FaultyStorage::new(MemStorage::new(), plan.clone()));
        let (log, _) = ShardLog::open(storage, "wal/000", 0, 0, pz()).unwrap();
        plan.set_fail_all_syncs(true);
        let seq = log.append(b"x").unwrap();
        assert!(matches!(
            log.wait_durable_blocking(seq),
            Err(Error::Poisoned)
        ));
        assert!(matches!(log.append(b"y"), Err(Error::Poisoned)));
    }

    fn seg_len(s: &dyn Storage, segment: u64) -> u64 {
        s.open(&segment_name("wal/000", segment), false)
            .unwrap()
            .len()
            .unwrap()
    }

    fn append_durable(log: &ShardLog, payloads: &[&[u8]]) {
        let mut last = 0;
        for p in payloads {
            last = log.append(p).unwrap();
        }
        log.wait_durable_blocking(last).unwrap();
    }

    fn payloads(replay: &Replay) -> Vec<Vec<u8>> {
        replay.records.iter().map(|r| r.1.clone()).collect()
    }

    #[test]
    fn a_zero_tail_is_a_clean_end_and_appends_overwrite_it() {
        let mem = Arc::new(MemStorage::new());
        let zeroer = PreZeroer::start().unwrap();
        let (log, _) = ShardLog::open(mem.clone(), "wal/000", 0, 0, Some(zeroer.clone())).unwrap();
        append_durable(&log, &[b"one", b"two"]);
        zeroer.wait_idle();
        let zeroed = seg_len(mem.as_ref(), 0);
        assert!(
            zeroed >= WAL_PREZERO_LOW_WATER,
            "nothing zeroed ahead: {zeroed}"
        );
        let crashed = Arc::new(mem.crash(CrashMode::DurableOnly));
        drop(log);
        assert_eq!(
            seg_len(crashed.as_ref(), 0),
            zeroed,
            "zeros were not durable"
        );
        let (log, replay) =
            ShardLog::open(crashed.clone(), "wal/000", 0, 0, Some(zeroer.clone())).unwrap();
        assert_eq!(replay.torn_bytes, 0);
        assert_eq!(payloads(&replay), vec![b"one".to_vec(), b"two".to_vec()]);
        // Appends go on at the end of the records, over the zeros, and survive a crash.
        append_durable(&log, &[b"three"]);
        let again = Arc::new(crashed.crash(CrashMode::DurableOnly));
        drop(log);
        let (_log, replay) = ShardLog::open(again.clone(), "wal/000", 0, 0, pz()).unwrap();
        assert_eq!(replay.torn_bytes, 0);
        assert_eq!(
            payloads(&replay),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!(replay.records.last().unwrap().0, 2);
    }

    #[test]
    fn a_torn_record_followed_by_zeros_is_cut() {
        for garbage in [&b"\x05"[..], b"\x40\0\0\0\x12\x34", b"\0\0\0\x01"] {
            let mem = Arc::new(MemStorage::new());
            let (log, _) = open(&mem, 0);
            append_durable(&log, &[b"kept"]);
            drop(log);
            let f = mem.open(&segment_name("wal/000", 0), false).unwrap();
            // After the record (the zeroer may have zeroed on past it).
            let end = (SEGMENT_HEADER_LEN + frame::RECORD_HEADER_LEN + 4) as u64;
            let mut tail = garbage.to_vec();
            tail.resize(4096, 0);
            f.write_batch(&[(end, &tail)], true).unwrap();
            let (log, replay) = open(&mem, 0);
            let nonzero = garbage.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
            assert_eq!(replay.torn_bytes, nonzero, "garbage {garbage:?}");
            assert_eq!(payloads(&replay), vec![b"kept".to_vec()]);
            append_durable(&log, &[b"after"]);
            drop(log);
            let (_log, replay) = open(&mem, 0);
            assert_eq!(replay.torn_bytes, 0);
            assert_eq!(payloads(&replay), vec![b"kept".to_vec(), b"after".to_vec()]);
        }
    }

    #[test]
    fn rotation_cuts_the_zero_tail_and_a_left_one_is_harmless() {
        let mem = Arc::new(MemStorage::new());
        let zeroer = PreZeroer::start().unwrap();
        let (log, _) = ShardLog::open(mem.clone(), "wal/000", 0, 0, Some(zeroer.clone())).unwrap();
        append_durable(&log, &[b"a", b"b"]);
        zeroer.wait_idle();
        let data_end = (SEGMENT_HEADER_LEN + 2 * (frame::RECORD_HEADER_LEN + 1)) as u64;
        assert!(seg_len(mem.as_ref(), 0) > data_end);
        log.rotate().unwrap();
        zeroer.wait_idle();
        assert_eq!(
            seg_len(mem.as_ref(), 0),
            data_end,
            "sealed segment keeps zeros"
        );
        append_durable(&log, &[b"c"]);
        drop(log);
        // A crash between the rotation and the cut leaves zeros after the old segment's
        // records: not corruption.
        let f = mem.open(&segment_name("wal/000", 0), false).unwrap();
        f.write_batch(&[(data_end, &[0u8; 5000])], true).unwrap();
        let (_log, replay) = open(&mem, 0);
        assert_eq!(replay.torn_bytes, 0);
        assert_eq!(
            payloads(&replay),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
    }

    /// The zeroer meets a full disk: it stops zeroing this log, the log goes on appending,
    /// and every acknowledged record survives a crash.
    #[test]
    fn a_zeroer_out_of_space_leaves_the_log_working() {
        use crate::io::{FaultPlan, FaultyStorage};
        let mem = Arc::new(MemStorage::new());
        let plan = FaultPlan::new();
        let storage = Arc::new(FaultyStorage::new(mem.clone(), plan.clone()));
        let zeroer = PreZeroer::start().unwrap();
        let (log, _) = ShardLog::open(storage, "wal/000", 0, 0, Some(zeroer.clone())).unwrap();
        plan.set_space_left(Some(10_000));
        append_durable(&log, &[b"first"]);
        zeroer.wait_idle();
        assert!(plan.counters().injected > 0, "the zeroer met no full disk");
        assert!(!log.shared.state.lock().flags.failed);
        // Space freed: appends work, past the end of the short zeros too, and zeroing of
        // this log stays off (its bytes written are the records' only).
        plan.set_space_left(None);
        let before = plan.counters().written_bytes;
        let big = vec![9u8; 20_000];
        append_durable(&log, &[b"second", &big]);
        zeroer.wait_idle();
        let records = 2 * frame::RECORD_HEADER_LEN as u64 + 6 + 20_000;
        assert_eq!(plan.counters().written_bytes - before, records);
        let crashed = Arc::new(mem.crash(CrashMode::DurableOnly));
        drop(log);
        let (_log, replay) = open(&crashed, 0);
        assert_eq!(replay.torn_bytes, 0);
        assert_eq!(
            payloads(&replay),
            vec![b"first".to_vec(), b"second".to_vec(), big]
        );
    }

    /// Every cut of a log's last batch, padded with zeros (an overwrite of pre-zeroed space
    /// that a crash left partly on disk), replays a prefix of the records and reports only
    /// non-zero bytes as torn.
    #[test]
    fn every_cut_padded_with_zeros_replays_a_prefix() {
        let mem = Arc::new(MemStorage::new());
        let (log, _) = open(&mem, 0);
        let all: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i + 1; 10 + i as usize * 7]).collect();
        let refs: Vec<&[u8]> = all.iter().map(|v| &v[..]).collect();
        append_durable(&log, &refs);
        drop(log);
        let f = mem.open(&segment_name("wal/000", 0), false).unwrap();
        let mut whole = vec![0u8; f.len().unwrap() as usize];
        f.read_exact_at(&mut whole, 0).unwrap();
        let end = whole.iter().rposition(|&b| b != 0).unwrap() + 1;
        for cut in SEGMENT_HEADER_LEN..=end {
            let m = Arc::new(MemStorage::new());
            let mut seg = whole[..cut].to_vec();
            seg.resize(end + 3000, 0);
            let g = m.open(&segment_name("wal/000", 0), true).unwrap();
            g.write_batch(&[(0, &seg)], true).unwrap();
            m.sync_dir("wal/000").unwrap();
            let (_log, replay) = open(&m, 0);
            let got = payloads(&replay);
            assert!(all.starts_with(&got), "cut {cut}: not a prefix");
            let mut boundary = SEGMENT_HEADER_LEN;
            for p in &got {
                boundary += frame::RECORD_HEADER_LEN + p.len();
            }
            assert!(boundary <= cut || got.len() == all.len());
            let nonzero = whole[boundary..cut].iter().rposition(|&b| b != 0);
            let torn = nonzero.map_or(0, |i| i as u64 + 1);
            assert_eq!(replay.torn_bytes, torn, "cut {cut}");
        }
    }
}
