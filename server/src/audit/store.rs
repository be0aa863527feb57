//! The audit log's files: per tenant a directory of monthly segments (`YYYY-MM.log`), a `HEAD`
//! file naming the last record (so a cut-off tail is noticed), and a lock file that orders the
//! writers of several processes (the server and the admin commands). Appending, checking the
//! whole chain, exporting a time range and dropping segments past the retention.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::chain::{self, Event, Link};
use crate::limits::AUDIT_TAIL_READ_BYTES;

/// Sub-directory of the data dir holding the audit logs.
pub const AUDIT_DIR: &str = "audit";
/// The log of events that concern no one tenant (backups, restores, store maintenance).
pub const SYSTEM_LOG: &str = "_system";
const HEAD_FILE: &str = "HEAD";
const LOCK_FILE: &str = "LOCK";

/// The audit logs of one data dir.
#[derive(Clone, Debug)]
pub struct AuditStore {
    root: PathBuf,
    /// Seals the records of a tenant's log with its key (encryption at rest), if on.
    sealer: Option<std::sync::Arc<crate::crypt::Sealer>>,
}

/// What the sealed fields of an audit record are (authenticated with them).
const SEAL_WHAT: &str = "audit";

/// Where an append ended: the segment, its length then, and the last record's link.
#[derive(Debug, Clone)]
pub struct LastWrite {
    segment: PathBuf,
    len: u64,
    link: Link,
}

/// What a check of one tenant's chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: u64,
    pub segments: usize,
    /// Every problem found, each naming the segment and line.
    pub problems: Vec<String>,
    /// Sealed records whose fields could not be opened (no key given, or the tenant's key
    /// erased): their chain was checked, their contents not.
    pub sealed_unread: u64,
}

fn lock(dir: &Path) -> std::io::Result<File> {
    crate::file_lock::exclusive(&dir.join(LOCK_FILE))
}

/// `YYYY-MM` of a time.
fn month_of(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()[..7].to_string()
}

/// The first instant after the month `YYYY-MM`.
fn month_end(month: &str) -> Option<SystemTime> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    let (ny, nm) = if m >= 12 { (y + 1, 1) } else { (y, m + 1) };
    humantime::parse_rfc3339(&format!("{ny:04}-{nm:02}-01T00:00:00Z")).ok()
}

impl AuditStore {
    pub fn new(data_dir: &Path) -> AuditStore {
        AuditStore {
            root: data_dir.join(AUDIT_DIR),
            sealer: crate::crypt::sealer(data_dir),
        }
    }

    /// The sealer of `log`'s records: a tenant's log under encryption at rest (the
    /// `_system` log names no tenant's users and stays in the clear).
    fn sealer_of(&self, log: &str) -> Option<&crate::crypt::Sealer> {
        self.sealer.as_deref().filter(|_| log != SYSTEM_LOG)
    }

    /// `c`'s sealed fields opened with `log`'s key when there is one: false when they stay
    /// unread (no key, or the tenant's key erased).
    fn open(&self, log: &str, c: &mut chain::Checked) -> Result<bool, String> {
        if c.sealed.is_none() {
            return Ok(true);
        }
        match self.sealer_of(log) {
            Some(s) => c.open(&|b| s.open(log, SEAL_WHAT, b)),
            None => Ok(false),
        }
    }

    fn dir(&self, log: &str) -> PathBuf {
        self.root.join(log)
    }

    /// The logs there are (tenant names and [`SYSTEM_LOG`]), sorted.
    pub fn logs(&self) -> std::io::Result<Vec<String>> {
        let mut v = Vec::new();
        match std::fs::read_dir(&self.root) {
            Ok(entries) => {
                for e in entries {
                    let e = e?;
                    if e.file_type()?.is_dir() {
                        v.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        v.sort();
        Ok(v)
    }

    /// Segment files of a log, oldest first.
    fn segments(&self, log: &str) -> std::io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(self.dir(log)) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        v.sort();
        Ok(v)
    }

    /// The last whole record of the newest segment (cutting an unfinished last line a
    /// crashed writer left), or the start of the chain. Caller holds the lock.
    fn last_link(&self, log: &str) -> std::io::Result<Link> {
        let Some(newest) = self.segments(log)?.pop() else {
            return Ok(Link::START);
        };
        let mut f = File::open(&newest)?;
        let len = f.metadata()?.len();
        let from = len.saturating_sub(AUDIT_TAIL_READ_BYTES);
        f.seek(SeekFrom::Start(from))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail)?;
        let whole = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < tail.len() {
            // An unfinished line: a writer died before its newline (never reported). Cut
            // through the own files' storage, so that a mirror cuts it too.
            let name = newest
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let cut = crate::own_files::storage_at(&self.dir(log))?.open(name, false)?;
            cut.truncate(from + whole as u64)?;
            cut.sync_data()?;
        }
        let text = String::from_utf8_lossy(&tail[..whole]);
        match text.lines().last() {
            Some(l) => chain::check(l).map(|c| c.link).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: last record: {e}", newest.display()),
                )
            }),
            None => Ok(Link::START),
        }
    }

    /// Appends `events` to `log` (a tenant, or [`SYSTEM_LOG`]) under the log's lock, chained
    /// after its last record; durable on return.
    pub fn append(&self, log: &str, events: &[Event]) -> std::io::Result<()> {
        self.append_after(log, events, &mut None)
    }

    /// [`AuditStore::append`] for a writer that appends again and again: `known` remembers
    /// where its last append ended, so that while no other process appended in between, the
    /// last record need not be read back from the file.
    pub fn append_after(
        &self,
        log: &str,
        events: &[Event],
        known: &mut Option<LastWrite>,
    ) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if let Some(s) = self.sealer_of(log) {
            // A tenant whose key was erased cannot have records sealed any more: what the
            // operators still do to it (the erasure itself) goes to the `_system` log, naming
            // it; requests naming it (a login tried with a name of the erased school) are not
            // recorded, so that no pupil's name comes back in the clear.
            if s.is_erased(log).map_err(std::io::Error::other)? {
                let moved: Vec<Event> = events
                    .iter()
                    .filter(|e| e.kind.starts_with("admin."))
                    .map(|e| Event {
                        target: Some(match &e.target {
                            Some(t) => format!("tenant {log}: {t}"),
                            None => format!("tenant {log}"),
                        }),
                        ..e.clone()
                    })
                    .collect();
                if moved.is_empty() {
                    return Ok(());
                }
                return self.append_after(SYSTEM_LOG, &moved, &mut None);
            }
        }
        let dir = self.dir(log);
        std::fs::create_dir_all(&dir)?;
        let _lock = lock(&dir)?;
        // Written through the own files' storage (`crate::own_files`); read with std::fs.
        let storage = crate::own_files::storage_at(&dir)?;
        let newest = self.segments(log)?.pop();
        let cached = known.as_ref().and_then(|k| {
            let len = std::fs::metadata(&k.segment).ok()?.len();
            (Some(&k.segment) == newest.as_ref() && len == k.len).then_some(k.link)
        });
        let mut link = match cached {
            Some(l) => l,
            None => self.last_link(log)?,
        };
        let mut last_segment = None;
        let mut i = 0;
        while i < events.len() {
            // One segment per month of the event's time.
            let month = month_of(events[i].time);
            let mut text = String::new();
            while i < events.len() && month_of(events[i].time) == month {
                let (line, next) = match self.sealer_of(log) {
                    Some(s) => {
                        chain::encode_sealed(&events[i], link, &|b| s.seal(log, SEAL_WHAT, b))
                            .map_err(std::io::Error::other)?
                    }
                    None => chain::encode(&events[i], link),
                };
                text.push_str(&line);
                link = next;
                i += 1;
            }
            let name = format!("{month}.log");
            let path = dir.join(&name);
            let new = !path.exists();
            // Appended at the end under the log's lock: no other writer moves it meanwhile.
            let f = storage.open(&name, true)?;
            let at = f.len()?;
            f.write_batch(&[(at, text.as_bytes())], true)?;
            if new {
                storage.sync_dir("")?;
            }
            last_segment = Some((path, at + text.len() as u64));
        }
        if let Some((segment, len)) = last_segment {
            *known = Some(LastWrite { segment, len, link });
        }
        skab_engine::io::durable::replace_file(
            &*storage,
            HEAD_FILE,
            format!("{} {}\n", link.seq, hex::encode(link.hash)).as_bytes(),
        )
    }

    /// Checks `log`'s whole chain: every hash, every link, no gap in the numbering, and the
    /// end not before the `HEAD` file's record.
    pub fn verify(&self, log: &str) -> std::io::Result<VerifyReport> {
        let segments = self.segments(log)?;
        let mut report = VerifyReport {
            segments: segments.len(),
            ..Default::default()
        };
        let mut prev: Option<Link> = None;
        let mut dropped_ends: Vec<String> = Vec::new();
        let mut first_prev: Option<[u8; 32]> = None;
        for seg in &segments {
            let name = seg
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(seg)?;
            for (n, line) in text.lines().enumerate() {
                let at = format!("{name} line {}", n + 1);
                let mut c = match chain::check(line) {
                    Ok(c) => c,
                    Err(e) => {
                        report.problems.push(format!("{at}: {e}"));
                        prev = None;
                        continue;
                    }
                };
                report.records += 1;
                match self.open(log, &mut c) {
                    Ok(true) => {}
                    Ok(false) => report.sealed_unread += 1,
                    Err(e) => report.problems.push(format!("{at}: {e}")),
                }
                match prev {
                    Some(p) if c.link.seq != p.seq + 1 => report.problems.push(format!(
                        "{at}: record {} follows record {} (records removed)",
                        c.link.seq, p.seq
                    )),
                    Some(p) if c.prev != p.hash => report
                        .problems
                        .push(format!("{at}: does not chain to the record before it")),
                    None if report.records == 1 => first_prev = Some(c.prev),
                    _ => {}
                }
                if c.kind == "audit.segment_dropped" {
                    if let Some(d) = &c.detail {
                        dropped_ends.push(d.clone());
                    }
                }
                prev = Some(c.link);
            }
        }
        // The log starts at the first record, or where a recorded retention drop ended.
        if let Some(fp) = first_prev {
            let h = hex::encode(fp);
            // (A retention drop is known only from records that could be opened.)
            if fp != chain::GENESIS
                && report.sealed_unread == 0
                && !dropped_ends.iter().any(|d| d.contains(&h))
            {
                report
                    .problems
                    .push("the first records are missing (and no retention drop says why)".into());
            }
        }
        if let Ok(head) = std::fs::read_to_string(self.dir(log).join(HEAD_FILE)) {
            let mut parts = head.split_whitespace();
            let seq: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let last = prev.map_or(0, |p| p.seq);
            if last < seq {
                report.problems.push(format!(
                    "the log ends at record {last} but HEAD names record {seq} (tail cut off)"
                ));
            }
        }
        Ok(report)
    }

    /// Writes the records of `log` whose time lies in `[since, until)` to `out` as JSON lines.
    pub fn export(
        &self,
        log: &str,
        since: Option<SystemTime>,
        until: Option<SystemTime>,
        out: &mut dyn Write,
    ) -> std::io::Result<u64> {
        let mut n = 0;
        for seg in self.segments(log)? {
            for line in std::fs::read_to_string(&seg)?.lines() {
                let Ok(mut c) = chain::check(line) else {
                    continue;
                };
                let Ok(t) = humantime::parse_rfc3339(&c.time) else {
                    continue;
                };
                if since.is_some_and(|s| t < s) || until.is_some_and(|u| t >= u) {
                    continue;
                }
                if c.sealed.is_some() {
                    // Opened, in the clear format (a SIEM reads it as any other record).
                    if self.sealer_of(log).is_none() {
                        return Err(std::io::Error::other(format!(
                            "the audit log of {log} is sealed (encryption at rest): exporting it \
                             needs crypto.enabled and the master key"
                        )));
                    }
                    if !self.open(log, &mut c).map_err(std::io::Error::other)? {
                        continue;
                    }
                    out.write_all(c.exported().as_bytes())?;
                } else {
                    out.write_all(line.as_bytes())?;
                }
                out.write_all(b"\n")?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes the segments of `log` whose month ended more than `keep` ago, recording each
    /// drop (with the last hash of the dropped part) in the log first. Returns how many.
    pub fn prune(&self, log: &str, keep: Duration, now: SystemTime) -> std::io::Result<usize> {
        let segments = self.segments(log)?;
        if segments.len() < 2 {
            return Ok(0);
        }
        let storage = crate::own_files::storage_at(&self.dir(log))?;
        let mut dropped = 0;
        // The newest segment always stays: the chain continues from it.
        for seg in segments.iter().take(segments.len().saturating_sub(1)) {
            let name = seg
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let Some(end) = month_end(&name) else {
                continue;
            };
            if end + keep > now {
                continue;
            }
            let last = std::fs::read_to_string(seg)?
                .lines()
                .last()
                .and_then(|l| chain::check(l).ok())
                .map(|c| c.link);
            if let Some(last) = last {
                self.append(
                    log,
                    &[Event {
                        time: now,
                        kind: "audit.segment_dropped".into(),
                        actor: None,
                        source: None,
                        target: Some(format!("{name}.log")),
                        detail: Some(format!(
                            "retention: records up to {} dropped, last hash {}",
                            last.seq,
                            hex::encode(last.hash)
                        )),
                    }],
                )?;
            }
            let name = seg.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            storage.remove(name)?;
            dropped += 1;
        }
        if dropped > 0 {
            storage.sync_dir("")?;
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn at(days: u64, kind: &str) -> Event {
        Event {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000 + days * 86_400),
            kind: kind.into(),
            actor: Some("anna@skole".into()),
            source: None,
            target: Some(format!("day {days}")),
            detail: None,
        }
    }

    /// Records spread over months go to monthly segments and chain across them; concurrent
    /// appenders (threads here, processes in use) interleave without breaking the chain; a
    /// retention drop removes old months, records that it did, and the rest still verifies.
    #[test]
    fn months_chain_concurrent_writers_and_retention() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AuditStore::new(tmp.path());
        for d in 0..100 {
            store.append("skole", &[at(d, "login.ok")]).unwrap();
        }
        std::thread::scope(|s| {
            for t in 0..4 {
                let store = store.clone();
                s.spawn(move || {
                    for i in 0..25 {
                        store
                            .append("skole", &[at(100, &format!("w{t}.{i}")), at(100, "x")])
                            .unwrap();
                    }
                });
            }
        });
        let r = store.verify("skole").unwrap();
        assert_eq!((r.records, r.problems.len()), (300, 0), "{r:?}");
        assert!(r.segments >= 4, "{r:?}");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000 + 100 * 86_400);
        let dropped = store
            .prune("skole", Duration::from_secs(30 * 86_400), now)
            .unwrap();
        assert!(dropped >= 1, "nothing dropped");
        let after = store.verify("skole").unwrap();
        assert!(after.problems.is_empty(), "{after:?}");
        assert!(after.records < 300 && after.segments == r.segments - dropped);
        // Dropping the oldest remaining segment by hand (without a record) is noticed.
        let oldest = store.segments("skole").unwrap().remove(0);
        if store.segments("skole").unwrap().len() > 1 {
            std::fs::remove_file(oldest).unwrap();
            let bad = store.verify("skole").unwrap();
            assert!(!bad.problems.is_empty(), "{bad:?}");
        }
    }

    /// A writer that remembers where it ended skips the read-back, and still chains right
    /// when another writer appended in between.
    #[test]
    fn a_remembered_end_is_used_only_while_nobody_else_appended() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AuditStore::new(tmp.path());
        let mut known = None;
        for i in 0..5 {
            store
                .append_after("t", &[at(0, &format!("s{i}"))], &mut known)
                .unwrap();
            if i == 2 {
                store.append("t", &[at(0, "other process")]).unwrap();
            }
        }
        let r = store.verify("t").unwrap();
        assert_eq!((r.records, r.problems.len()), (6, 0), "{r:?}");
    }

    /// An unfinished last line (a writer died mid-write) is cut by the next append, which
    /// chains after the last whole record.
    #[test]
    fn a_torn_last_line_is_cut_by_the_next_writer() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AuditStore::new(tmp.path());
        store.append("t", &[at(0, "a"), at(0, "b")]).unwrap();
        let seg = store.segments("t").unwrap().remove(0);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"seq\":3,\"time\":\"20").unwrap();
        store.append("t", &[at(0, "c")]).unwrap();
        let r = store.verify("t").unwrap();
        assert_eq!((r.records, r.problems.len()), (3, 0), "{r:?}");
    }

    /// A sealed log: its fields are nowhere in the clear, `verify` with the key opens every
    /// record, without it checks the chain alone; a flipped byte, a removed record and a cut
    /// tail are found either way; `export` writes the records opened; an erased tenant's
    /// admin record goes to the `_system` log.
    #[test]
    fn a_sealed_log_verifies_with_and_without_the_key_and_damage_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = skab_engine::crypt::KeyStore::open(
            &tmp.path().join("keys"),
            skab_engine::crypt::MasterKey::from_bytes(&[9; 32]),
            true,
        )
        .unwrap();
        let keys = std::sync::Arc::new(keys);
        crate::crypt::register_keys(tmp.path(), keys.clone());
        let store = AuditStore::new(tmp.path());
        assert!(store.sealer.is_some());
        let keyless = AuditStore {
            root: store.root.clone(),
            sealer: None,
        };
        // Days 10-14 of the base time: one month, one segment.
        for d in 10..15 {
            store.append("skole", &[at(d, "login.ok")]).unwrap();
        }
        let seg = store.segments("skole").unwrap().pop().unwrap();
        let text = std::fs::read_to_string(&seg).unwrap();
        assert!(!text.contains("anna") && !text.contains("login.ok") && !text.contains("day "));
        let r = store.verify("skole").unwrap();
        assert_eq!(
            (r.records, r.sealed_unread, r.problems.len()),
            (5, 0, 0),
            "{r:?}"
        );
        let r = keyless.verify("skole").unwrap();
        assert_eq!(
            (r.records, r.sealed_unread, r.problems.len()),
            (5, 5, 0),
            "{r:?}"
        );
        let mut out = Vec::new();
        assert_eq!(store.export("skole", None, None, &mut out).unwrap(), 5);
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("\"kind\":\"login.ok\"") && out.contains("day 13"),
            "{out}"
        );
        assert!(keyless
            .export("skole", None, None, &mut Vec::new())
            .is_err());

        let lines: Vec<&str> = text.lines().collect();
        let damaged = |lines: Vec<String>| {
            std::fs::write(&seg, lines.join("\n") + "\n").unwrap();
            let a = store.verify("skole").unwrap().problems;
            let b = keyless.verify("skole").unwrap().problems;
            std::fs::write(&seg, &text).unwrap();
            (a, b)
        };
        let mut flipped: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        flipped[2] = flipped[2].replacen("\"sealed\":\"", "\"sealed\":\"A", 1);
        let removed: Vec<String> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, l)| l.to_string())
            .collect();
        let cut: Vec<String> = lines[..4].iter().map(|l| l.to_string()).collect();
        for (what, v) in [("flipped", flipped), ("removed", removed), ("cut", cut)] {
            let (a, b) = damaged(v);
            assert!(!a.is_empty() && !b.is_empty(), "{what}: {a:?} {b:?}");
        }
        assert!(store.verify("skole").unwrap().problems.is_empty());

        // After the tenant's key is erased: its log is checked in the chain only, and an
        // operator's record about it goes to `_system`; a login record is dropped.
        keys.erase("skole").unwrap();
        let r = store.verify("skole").unwrap();
        assert_eq!((r.sealed_unread, r.problems.len()), (5, 0), "{r:?}");
        store
            .append(
                "skole",
                &[at(16, "admin.tenant.erase"), at(16, "login.failed")],
            )
            .unwrap();
        let mut sys = Vec::new();
        store.export(SYSTEM_LOG, None, None, &mut sys).unwrap();
        let sys = String::from_utf8(sys).unwrap();
        assert!(
            sys.contains("admin.tenant.erase") && sys.contains("tenant skole"),
            "{sys}"
        );
        assert!(!sys.contains("login.failed"), "{sys}");
        assert_eq!(store.verify("skole").unwrap().records, 5);
    }
}
