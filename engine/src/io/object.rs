//! Object-storage mirror: a [`Storage`] that keeps the local one as the working copy and read
//! path and makes every durable state of every file durable in an S3 bucket (Garage, MinIO,
//! any S3) before it reports it durable. A node whose disk is lost is rebuilt from the bucket
//! when it opens over an empty directory. Design, failure cases and what is left:
//! `docs/scaleout.md`, "Object storage mirror"; the bucket layout: `docs/formats.md`.
//!
//! Every file incarnation has a random generation `gen`; `n/<name>#<stamp>#<gen>` names it and
//! `d/<gen>/...` holds its bytes as segments (one per sync, in parts of at most
//! `OBJECT_PART_BYTES` uploaded in parallel) and, after compaction, whole-file objects. The
//! local file carries its generation in the extended attribute `user.skab.gen`, so that a
//! restart over a kept directory can tell whether a local file is the one the bucket names.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::{parent_dir, validate_name, Storage, StorageFile};
use crate::limits::{
    OBJECT_BODY_MAX, OBJECT_COMPACT_IDLE_S, OBJECT_COMPACT_SEGMENTS_MAX, OBJECT_CONNECT_TIMEOUT_MS,
    OBJECT_LIST_PAGE, OBJECT_PART_BYTES, OBJECT_REBUILD_PARALLEL, OBJECT_REBUILD_WINDOW,
    OBJECT_REQUEST_TIMEOUT_S, OBJECT_REQUEST_TRIES, OBJECT_RETRY_WAIT_MAX_MS, OBJECT_RETRY_WAIT_MS,
    OBJECT_TAKEOVER_SEQ_JUMP, OBJECT_UPLOAD_PARALLEL,
};

/// Files of the local directory that are never mirrored (the store's directory lock).
const LOCAL_ONLY: &[&str] = &["LOCK"];
/// The extended attribute holding a local file's generation.
const GEN_XATTR: &str = "user.skab.gen";
/// Magic of a segment object.
const SEGMENT_MAGIC: &[u8; 8] = b"SKABOSG1";
/// How long a signed request URL stays valid.
const SIGN_TTL: Duration = Duration::from_secs(600);
/// How often the background thread deletes garbage and looks for files to compact.
const BACKGROUND_TICK: Duration = Duration::from_secs(1);

/// Where the bucket is and how to reach it.
#[derive(Clone)]
pub struct ObjectConfig {
    /// S3 endpoints (`http://127.0.0.1:3900`); a failed request is retried on the next.
    pub endpoints: Vec<String>,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// Key prefix inside the bucket ("" or ending in `/`): one store per prefix.
    pub prefix: String,
    /// Cluster mode: until when this process may still change the bucket.
    pub fence: Option<Fence>,
}

/// Says until when this process may still change the bucket (in cluster mode the node's
/// lease on the cell, by its own monotonic clock), or `None` once it may not. Checked before
/// every request that changes the bucket, whose time limit it also cuts to the deadline, and
/// before a sync reports its data durable: a node that lost its lease acknowledges nothing.
pub type Fence = Arc<dyn Fn() -> Option<Instant> + Send + Sync>;

/// The error of a request refused by the [`Fence`].
fn fenced() -> io::Error {
    io::Error::other("object storage: this node no longer holds the lease (fenced)")
}

impl std::fmt::Debug for ObjectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectConfig")
            .field("endpoints", &self.endpoints)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// A small blocking S3 client: signed URLs (rusty-s3) over ureq, with retries across endpoints.
struct S3 {
    buckets: Vec<Bucket>,
    creds: Credentials,
    agent: ureq::Agent,
    next: AtomicUsize,
    prefix: String,
    fence: Option<Fence>,
}

enum Op<'a> {
    Put(&'a [u8]),
    Get,
    Delete,
    List(Option<&'a str>),
}

impl S3 {
    fn new(cfg: &ObjectConfig) -> io::Result<S3> {
        if cfg.endpoints.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "object storage: no endpoint",
            ));
        }
        let mut buckets = Vec::new();
        for e in &cfg.endpoints {
            let url: url::Url = e.parse().map_err(|err| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("object storage endpoint {e:?}: {err}"),
                )
            })?;
            let b = Bucket::new(url, UrlStyle::Path, cfg.bucket.clone(), cfg.region.clone())
                .map_err(|err| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("object storage endpoint {e:?}: {err}"),
                    )
                })?;
            buckets.push(b);
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(OBJECT_REQUEST_TIMEOUT_S)))
            .timeout_connect(Some(Duration::from_millis(OBJECT_CONNECT_TIMEOUT_MS)))
            .build();
        Ok(S3 {
            buckets,
            creds: Credentials::new(cfg.access_key.clone(), cfg.secret_key.clone()),
            agent: ureq::Agent::new_with_config(config),
            next: AtomicUsize::new(0),
            prefix: cfg.prefix.clone(),
            fence: cfg.fence.clone(),
        })
    }

    /// One request with retries: transport errors, 5xx and 429 are tried again (on the next
    /// endpoint, after a growing wait) up to `OBJECT_REQUEST_TRIES` times. Returns the status
    /// and body of the first other answer. Errors never carry the signed URL.
    fn call(&self, key: &str, op: &Op<'_>) -> io::Result<(u16, Vec<u8>)> {
        let mut wait = OBJECT_RETRY_WAIT_MS;
        let mut last = String::new();
        for attempt in 0..OBJECT_REQUEST_TRIES {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(wait));
                wait = (wait * 2).min(OBJECT_RETRY_WAIT_MAX_MS);
            }
            let i = self.next.load(Ordering::Relaxed) % self.buckets.len();
            let b = &self.buckets[i];
            let c = Some(&self.creds);
            let limit = match op {
                Op::Put(_) | Op::Delete => self.write_time_left()?,
                Op::Get | Op::List(_) => Duration::from_secs(OBJECT_REQUEST_TIMEOUT_S),
            };
            let result = match op {
                Op::Put(body) => {
                    let url = b.put_object(c, key).sign(SIGN_TTL);
                    self.agent
                        .put(url.as_str())
                        .config()
                        .timeout_global(Some(limit))
                        .build()
                        .send(*body)
                }
                Op::Get => {
                    let url = b.get_object(c, key).sign(SIGN_TTL);
                    self.agent.get(url.as_str()).call()
                }
                Op::Delete => {
                    let url = b.delete_object(c, key).sign(SIGN_TTL);
                    self.agent
                        .delete(url.as_str())
                        .config()
                        .timeout_global(Some(limit))
                        .build()
                        .call()
                }
                Op::List(token) => {
                    let mut l = b.list_objects_v2(c);
                    l.with_prefix(key);
                    l.with_max_keys(OBJECT_LIST_PAGE);
                    if let Some(t) = token {
                        l.with_continuation_token(*t);
                    }
                    let url = l.sign(SIGN_TTL);
                    self.agent.get(url.as_str()).call()
                }
            };
            match result {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(OBJECT_BODY_MAX)
                        .read_to_vec();
                    match body {
                        Ok(body) if status < 500 && status != 429 => return Ok((status, body)),
                        Ok(_) => last = format!("status {status}"),
                        Err(e) => last = format!("reading the answer: {}", strip_url(&e)),
                    }
                }
                Err(e) => last = strip_url(&e),
            }
            self.next.fetch_add(1, Ordering::Relaxed);
        }
        Err(other(format!(
            "object storage unavailable ({OBJECT_REQUEST_TRIES} tries, last: {last})"
        )))
    }

    /// How long a request that changes the bucket may take: the usual limit, cut to the
    /// fence's deadline; an error once the fence is closed.
    fn write_time_left(&self) -> io::Result<Duration> {
        let usual = Duration::from_secs(OBJECT_REQUEST_TIMEOUT_S);
        let Some(fence) = &self.fence else {
            return Ok(usual);
        };
        let left = fence()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        if left.is_zero() {
            return Err(fenced());
        }
        Ok(left.min(usual))
    }

    fn put(&self, key: &str, body: &[u8]) -> io::Result<()> {
        match self.call(key, &Op::Put(body))? {
            (200..=299, _) => Ok(()),
            (s, b) => Err(refused("PUT", key, s, &b)),
        }
    }

    fn get(&self, key: &str) -> io::Result<Vec<u8>> {
        match self.call(key, &Op::Get)? {
            (200..=299, b) => Ok(b),
            (s, b) => Err(refused("GET", key, s, &b)),
        }
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        match self.call(key, &Op::Delete)? {
            (200..=299, _) | (404, _) => Ok(()),
            (s, b) => Err(refused("DELETE", key, s, &b)),
        }
    }

    /// Every key starting with `prefix` (paged), sorted.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (status, body) = self.call(prefix, &Op::List(token.as_deref()))?;
            if !(200..=299).contains(&status) {
                return Err(refused("LIST", prefix, status, &body));
            }
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&body)
                .map_err(|e| other(format!("object storage: a bad list answer: {e}")))?;
            // rusty-s3 asks for `encoding-type=url`: keys come back percent-encoded.
            for c in page.contents {
                let key = percent_encoding::percent_decode_str(&c.key)
                    .decode_utf8()
                    .map_err(|_| other("object storage: a listed key is not UTF-8"))?;
                keys.push(key.into_owned());
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }
}

fn strip_url(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    match s.find('?') {
        Some(i) => format!("{}?…", &s[..i]),
        None => s,
    }
}

fn refused(method: &str, key: &str, status: u16, body: &[u8]) -> io::Error {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    other(format!(
        "object storage refused {method} {key}: status {status}: {text}"
    ))
}

// ---- segment objects ----

/// One segment part: the truncation first, then the ranges, then the file length.
#[derive(Debug)]
struct Segment {
    trunc: Option<u64>,
    final_len: u64,
    ranges: Vec<(u64, Vec<u8>)>,
}

fn encode(seg: &Segment) -> Vec<u8> {
    let data: usize = seg.ranges.iter().map(|(_, d)| d.len() + 16).sum();
    let mut out = Vec::with_capacity(32 + data);
    out.extend_from_slice(SEGMENT_MAGIC);
    out.extend_from_slice(&seg.trunc.unwrap_or(u64::MAX).to_le_bytes());
    out.extend_from_slice(&seg.final_len.to_le_bytes());
    out.extend_from_slice(&(seg.ranges.len() as u32).to_le_bytes());
    for (off, d) in &seg.ranges {
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&(d.len() as u64).to_le_bytes());
        out.extend_from_slice(d);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode(b: &[u8]) -> io::Result<Segment> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "object storage: a bad segment");
    if b.len() < 32 || &b[..8] != SEGMENT_MAGIC {
        return Err(bad());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().map_err(|_| bad())?) {
        return Err(bad());
    }
    let u64_at = |i: usize| -> io::Result<u64> {
        Ok(u64::from_le_bytes(
            body.get(i..i + 8)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ))
    };
    let trunc = u64_at(8)?;
    let final_len = u64_at(16)?;
    let n = u32::from_le_bytes(body[24..28].try_into().map_err(|_| bad())?) as usize;
    let mut at = 28;
    let mut ranges = Vec::new();
    for _ in 0..n {
        let off = u64_at(at)?;
        let len = usize::try_from(u64_at(at + 8)?).map_err(|_| bad())?;
        at += 16;
        let d = body
            .get(at..at.checked_add(len).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        ranges.push((off, d.to_vec()));
        at += len;
    }
    Ok(Segment {
        trunc: (trunc != u64::MAX).then_some(trunc),
        final_len,
        ranges,
    })
}

/// A data object's key fields: `d/<gen>/<seq>.<part>.<parts>.<kind>.<len>`.
#[derive(Clone, Debug)]
struct DataKey {
    gen: u64,
    seq: u64,
    part: u32,
    parts: u32,
    full: bool,
    len: u64,
    key: String,
}

fn data_key(
    prefix: &str,
    gen: u64,
    seq: u64,
    part: u32,
    parts: u32,
    full: bool,
    len: u64,
) -> String {
    let kind = if full { 'f' } else { 's' };
    format!("{prefix}d/{gen:016x}/{seq:016x}.{part:04x}.{parts:04x}.{kind}.{len:x}")
}

fn parse_data_key(prefix: &str, key: &str) -> Option<DataKey> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("d/")?;
    let (gen, rest) = rest.split_once('/')?;
    let f: Vec<&str> = rest.split('.').collect();
    if f.len() != 5 {
        return None;
    }
    Some(DataKey {
        gen: u64::from_str_radix(gen, 16).ok()?,
        seq: u64::from_str_radix(f[0], 16).ok()?,
        part: u32::from_str_radix(f[1], 16).ok()?,
        parts: u32::from_str_radix(f[2], 16).ok()?,
        full: match f[3] {
            "f" => true,
            "s" => false,
            _ => return None,
        },
        len: u64::from_str_radix(f[4], 16).ok()?,
        key: key.to_owned(),
    })
}

fn name_key(prefix: &str, name: &str, stamp: u64, gen: u64) -> String {
    format!("{prefix}n/{name}#{stamp:016x}#{gen:016x}")
}

/// (name, stamp, gen) of a name key.
fn parse_name_key(prefix: &str, key: &str) -> Option<(String, u64, u64)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("n/")?;
    let (rest, gen) = rest.rsplit_once('#')?;
    let (name, stamp) = rest.rsplit_once('#')?;
    Some((
        name.to_owned(),
        u64::from_str_radix(stamp, 16).ok()?,
        u64::from_str_radix(gen, 16).ok()?,
    ))
}

/// The objects that make up a generation now: the newest complete whole-file set and the
/// segments after it, sorted by (seq, part).
fn live_objects(mut objs: Vec<DataKey>) -> Vec<DataKey> {
    objs.sort_by_key(|o| (o.seq, o.part));
    let mut by_seq: BTreeMap<u64, Vec<&DataKey>> = BTreeMap::new();
    for o in &objs {
        by_seq.entry(o.seq).or_default().push(o);
    }
    let base = by_seq
        .iter()
        .rev()
        .find(|(_, v)| v[0].full && v.len() as u32 == v[0].parts && v.iter().all(|o| o.full))
        .map(|(s, _)| *s);
    objs.into_iter()
        .filter(|o| match base {
            Some(b) => (o.seq > b && !o.full) || (o.seq == b && o.full),
            None => !o.full,
        })
        .collect()
}

/// The file length a generation's live objects give.
fn objects_len(live: &[DataKey]) -> u64 {
    live.last().map_or(0, |o| o.len)
}

// ---- per-file state ----

struct Inner {
    /// The name key naming this generation now (None once removed).
    name_key: Option<String>,
    /// Ranges written since the last upload: `[start, end)`.
    dirty: Vec<(u64, u64)>,
    /// Lowest truncation since the last upload.
    trunc: Option<u64>,
    next_seq: u64,
    /// Live objects of this generation in the bucket.
    objects: Vec<String>,
    /// Segments uploaded since the last whole-file object.
    segments: usize,
    last_write: Instant,
}

struct FileState {
    gen: u64,
    /// One upload or compaction of this file at a time, in sequence order.
    sync: Mutex<()>,
    inner: Mutex<Inner>,
    /// A local handle for compaction.
    local: Mutex<Option<Arc<dyn StorageFile>>>,
}

impl FileState {
    fn new(gen: u64, name_key: String, next_seq: u64, objects: Vec<String>) -> Arc<FileState> {
        Arc::new(FileState {
            gen,
            sync: Mutex::new(()),
            inner: Mutex::new(Inner {
                name_key: Some(name_key),
                dirty: Vec::new(),
                trunc: None,
                next_seq,
                segments: objects.len(),
                objects,
                last_write: Instant::now(),
            }),
            local: Mutex::new(None),
        })
    }
}

fn merge(ranges: &mut Vec<(u64, u64)>) {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(s, e) in ranges.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *ranges = out;
}

struct Shared {
    s3: S3,
    local: Arc<dyn Storage>,
    root: PathBuf,
    files: Mutex<HashMap<String, Arc<FileState>>>,
    last_stamp: Mutex<u64>,
    garbage: Mutex<Vec<String>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    fn stamp(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut last = self.last_stamp.lock();
        *last = (*last + 1).max(now);
        *last
    }

    /// Uploads what `st`'s file wrote since its last upload as one segment (in parts), while
    /// the local file is synced; on an upload error the ranges stay to be uploaded next time.
    fn sync(&self, st: &FileState, local: &dyn StorageFile) -> io::Result<()> {
        let _one = st.sync.lock();
        let taken = {
            let mut i = st.inner.lock();
            if i.dirty.is_empty() && i.trunc.is_none() {
                None
            } else {
                let seq = i.next_seq;
                i.next_seq += 1;
                let mut dirty = std::mem::take(&mut i.dirty);
                merge(&mut dirty);
                Some((dirty, i.trunc.take(), seq))
            }
        };
        let Some((dirty, trunc, seq)) = taken else {
            return local.sync_data();
        };
        let upload = || -> io::Result<Vec<String>> {
            let final_len = local.len()?;
            let parts = read_parts(local, &dirty, trunc, final_len)?;
            self.upload_parts(st.gen, seq, false, final_len, parts)
        };
        let (local_res, up) = std::thread::scope(|s| {
            let h = s.spawn(|| local.sync_data());
            let up = upload();
            (h.join(), up)
        });
        // Reported durable only while this process may still write: a node that lost its
        // lease while the upload ran acknowledges nothing (a new owner may not have it).
        let up = up.and_then(|keys| self.s3.write_time_left().map(|_| keys));
        match up {
            Ok(keys) => {
                let mut i = st.inner.lock();
                i.objects.extend(keys);
                i.segments += 1;
            }
            Err(e) => {
                let mut i = st.inner.lock();
                i.dirty.extend(dirty);
                i.trunc = match (i.trunc, trunc) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                return Err(e);
            }
        }
        local_res.map_err(|_| other("local sync thread panicked"))?
    }

    /// Uploads the parts of one sequence number, `OBJECT_UPLOAD_PARALLEL` at a time.
    fn upload_parts(
        &self,
        gen: u64,
        seq: u64,
        full: bool,
        len: u64,
        parts: Vec<Segment>,
    ) -> io::Result<Vec<String>> {
        let n = parts.len() as u32;
        let jobs: Vec<(String, Vec<u8>)> = parts
            .iter()
            .enumerate()
            .map(|(p, seg)| {
                let key = data_key(&self.s3.prefix, gen, seq, p as u32, n, full, len);
                (key, encode(seg))
            })
            .collect();
        drop(parts);
        for group in jobs.chunks(OBJECT_UPLOAD_PARALLEL) {
            if group.len() == 1 {
                self.s3.put(&group[0].0, &group[0].1)?;
                continue;
            }
            std::thread::scope(|s| {
                let hs: Vec<_> = group
                    .iter()
                    .map(|(k, b)| s.spawn(move || self.s3.put(k, b)))
                    .collect();
                hs.into_iter().try_for_each(|h| {
                    h.join()
                        .map_err(|_| other("object upload thread panicked"))?
                })
            })?;
        }
        Ok(jobs.into_iter().map(|(k, _)| k).collect())
    }

    /// Replaces a file's segments with one whole-file object set when it is due (idle with
    /// two or more segments, or too many segments).
    fn compact(&self, st: &FileState) -> io::Result<()> {
        let Some(local) = st.local.lock().clone() else {
            return Ok(());
        };
        let _one = st.sync.lock();
        let seq = {
            let mut i = st.inner.lock();
            let idle = i.last_write.elapsed() >= Duration::from_secs(OBJECT_COMPACT_IDLE_S);
            let due = (idle && i.segments >= 2) || i.segments >= OBJECT_COMPACT_SEGMENTS_MAX;
            if !due || !i.dirty.is_empty() || i.trunc.is_some() || i.name_key.is_none() {
                return Ok(());
            }
            i.next_seq += 1;
            i.next_seq - 1
        };
        let len = local.len()?;
        let parts = read_parts(local.as_ref(), &[(0, len)], Some(0), len)?;
        let keys = self.upload_parts(st.gen, seq, true, len, parts)?;
        let old = {
            let mut i = st.inner.lock();
            i.segments = 0;
            std::mem::replace(&mut i.objects, keys)
        };
        self.garbage.lock().extend(old);
        Ok(())
    }

    /// Registers a new generation for the local file `name` (names it in the bucket and tags
    /// the local file); the caller uploads its bytes.
    fn register(&self, name: &str) -> io::Result<Arc<FileState>> {
        let gen = rand::random::<u64>();
        set_gen(&self.root.join(name), gen);
        let key = name_key(&self.s3.prefix, name, self.stamp(), gen);
        self.s3.put(&key, b"")?;
        Ok(FileState::new(gen, key, 0, Vec::new()))
    }

    fn background(&self) {
        loop {
            {
                let mut stop = self.stop.lock();
                if *stop {
                    return;
                }
                self.wake.wait_for(&mut stop, BACKGROUND_TICK);
                if *stop {
                    return;
                }
            }
            let garbage = std::mem::take(&mut *self.garbage.lock());
            for (n, key) in garbage.iter().enumerate() {
                if let Err(e) = self.s3.delete(key) {
                    tracing::warn!(error = %e, "object storage: garbage left for later");
                    self.garbage.lock().extend(garbage[n..].iter().cloned());
                    break;
                }
            }
            let files: Vec<Arc<FileState>> = self.files.lock().values().cloned().collect();
            for st in files {
                if let Err(e) = self.compact(&st) {
                    tracing::warn!(error = %e, "object storage: compaction failed");
                }
            }
        }
    }
}

/// Replays decoded segments onto `f` in order (truncations, writes, final lengths).
fn apply_segments(f: &dyn StorageFile, segs: &[Segment]) -> io::Result<()> {
    for seg in segs {
        if let Some(t) = seg.trunc {
            f.truncate(t)?;
        }
        let writes: Vec<(u64, &[u8])> =
            seg.ranges.iter().map(|(o, d)| (*o, d.as_slice())).collect();
        f.write_batch(&writes, false)?;
        f.truncate(seg.final_len)?;
    }
    Ok(())
}

/// Splits ranges (clipped to `final_len`) into segment parts of at most `OBJECT_PART_BYTES`
/// of data, read from `local`; the first part carries the truncation, every part the length.
fn read_parts(
    local: &dyn StorageFile,
    dirty: &[(u64, u64)],
    trunc: Option<u64>,
    final_len: u64,
) -> io::Result<Vec<Segment>> {
    let mut parts = vec![Segment {
        trunc,
        final_len,
        ranges: Vec::new(),
    }];
    let mut fill = 0usize;
    for &(s, e) in dirty {
        let mut at = s;
        let end = e.min(final_len);
        while at < end {
            if fill >= OBJECT_PART_BYTES {
                // Only the first part truncates: a later one would cut what the first wrote.
                parts.push(Segment {
                    trunc: None,
                    final_len,
                    ranges: Vec::new(),
                });
                fill = 0;
            }
            let n = ((end - at) as usize).min(OBJECT_PART_BYTES - fill);
            let mut buf = vec![0u8; n];
            local.read_exact_at(&mut buf, at)?;
            parts.last_mut().expect("one part").ranges.push((at, buf));
            fill += n;
            at += n as u64;
        }
    }
    Ok(parts)
}

fn set_gen(path: &Path, gen: u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(p) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let name = std::ffi::CString::new(GEN_XATTR).expect("no NUL");
    let v = gen.to_le_bytes();
    // SAFETY: NUL-terminated path and name, a value buffer of its stated length.
    let rc = unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    if rc != 0 {
        tracing::warn!(file = %path.display(), error = %io::Error::last_os_error(),
            "cannot tag a file with its generation; a restart re-uploads it");
        return;
    }
    // The attribute must survive a crash like the file's data (fdatasync may skip it).
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.sync_all();
    }
}

fn get_gen(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = std::ffi::CString::new(GEN_XATTR).expect("no NUL");
    let mut v = [0u8; 8];
    // SAFETY: NUL-terminated path and name, an 8-byte buffer.
    let rc = unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    (rc == 8).then(|| u64::from_le_bytes(v))
}

/// The local storage mirrored into a bucket. See the module header.
pub struct ObjectStorage {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What [`ObjectStorage::open`] did to bring the local copy and the bucket together.
#[derive(Debug, Default, Clone, Copy)]
pub struct ObjectOpenReport {
    /// Files rebuilt from the bucket (the local directory was empty).
    pub rebuilt_files: usize,
    pub rebuilt_bytes: u64,
    /// Local files uploaded whole (unknown to the bucket) or in part (a tail).
    pub uploaded_files: usize,
}

impl ObjectStorage {
    /// Mirrors `local` (rooted at `root`) into the bucket of `cfg`. Over an empty local
    /// directory every file is first rebuilt from the bucket; over a kept one the bucket is
    /// brought up to the local files (the local copy holds every acknowledged write too).
    pub fn open(
        root: &Path,
        local: Arc<dyn Storage>,
        cfg: &ObjectConfig,
    ) -> io::Result<(ObjectStorage, ObjectOpenReport)> {
        let s3 = S3::new(cfg)?;
        let prefix = cfg.prefix.clone();
        let mut names: HashMap<String, (u64, u64, String)> = HashMap::new();
        let mut garbage = Vec::new();
        let mut last_stamp = 0;
        for key in s3.list(&format!("{prefix}n/"))? {
            let Some((name, stamp, gen)) = parse_name_key(&prefix, &key) else {
                continue;
            };
            last_stamp = last_stamp.max(stamp);
            match names.get(&name) {
                Some((s, _, _)) if *s > stamp => garbage.push(key),
                Some((_, _, old)) => {
                    garbage.push(old.clone());
                    names.insert(name, (stamp, gen, key));
                }
                None => {
                    names.insert(name, (stamp, gen, key));
                }
            }
        }
        let mut data: HashMap<u64, Vec<DataKey>> = HashMap::new();
        for key in s3.list(&format!("{prefix}d/"))? {
            if let Some(d) = parse_data_key(&prefix, &key) {
                data.entry(d.gen).or_default().push(d);
            }
        }
        let shared = Arc::new(Shared {
            s3,
            local: local.clone(),
            root: root.to_owned(),
            files: Mutex::new(HashMap::new()),
            last_stamp: Mutex::new(last_stamp),
            garbage: Mutex::new(Vec::new()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let local_files: Vec<String> = local
            .list("")?
            .into_iter()
            .filter(|n| !LOCAL_ONLY.contains(&n.as_str()))
            .collect();
        let mut report = ObjectOpenReport::default();
        let mut files = HashMap::new();
        let mut used_gens = HashSet::new();
        if local_files.is_empty() {
            // Under a fence (cluster mode) this process takes the files over from an owner
            // that may still have a request in flight: its own segments start far above, so a
            // late one of the old owner's sorts before them and is overwritten by them at
            // every later rebuild (the files are append-only).
            let jump = if cfg.fence.is_some() {
                OBJECT_TAKEOVER_SEQ_JUMP
            } else {
                0
            };
            // Files are rebuilt `OBJECT_REBUILD_PARALLEL` at a time (a takeover waits for it).
            let rebuild_one =
                |name: &String, gen: u64, key: &String| -> io::Result<(Arc<FileState>, u64)> {
                    let objs = live_objects(data.get(&gen).cloned().unwrap_or_default());
                    let f = local.open(name, true)?;
                    f.truncate(0)?;
                    // A file written under load has many small segments: they are fetched
                    // `OBJECT_REBUILD_WINDOW` at a time in parallel and applied in order.
                    let mut segs = Vec::new();
                    for window in objs.chunks(OBJECT_REBUILD_WINDOW) {
                        segs.clear();
                        std::thread::scope(|sc| -> io::Result<()> {
                            let got: Vec<_> = window
                                .iter()
                                .map(|o| sc.spawn(|| decode(&shared.s3.get(&o.key)?)))
                                .collect();
                            for g in got {
                                segs.push(g.join().map_err(|_| other("rebuild thread panicked"))??);
                            }
                            Ok(())
                        })?;
                        apply_segments(f.as_ref(), &segs)?;
                    }
                    f.sync_data()?;
                    let len = f.len()?;
                    set_gen(&root.join(name), gen);
                    let next = objs.last().map_or(0, |o| o.seq + 1) + jump;
                    let st = FileState::new(
                        gen,
                        key.clone(),
                        next,
                        objs.iter().map(|o| o.key.clone()).collect(),
                    );
                    *st.local.lock() = Some(f);
                    Ok((st, len))
                };
            type Named<'a> = (&'a String, &'a (u64, u64, String));
            type Rebuilt = (String, u64, Arc<FileState>, u64);
            let queue: Mutex<Vec<Named<'_>>> = Mutex::new(names.iter().collect());
            let done: Mutex<Vec<Rebuilt>> = Mutex::new(Vec::new());
            std::thread::scope(|sc| -> io::Result<()> {
                let workers: Vec<_> = (0..OBJECT_REBUILD_PARALLEL)
                    .map(|_| {
                        sc.spawn(|| -> io::Result<()> {
                            loop {
                                let Some((name, (_, gen, key))) = queue.lock().pop() else {
                                    return Ok(());
                                };
                                let (st, len) = rebuild_one(name, *gen, key)?;
                                done.lock().push((name.clone(), *gen, st, len));
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    w.join().map_err(|_| other("rebuild thread panicked"))??;
                }
                Ok(())
            })?;
            let mut dirs = HashSet::new();
            for (name, gen, st, len) in done.into_inner() {
                report.rebuilt_bytes += len;
                report.rebuilt_files += 1;
                dirs.insert(parent_dir(&name).to_owned());
                used_gens.insert(gen);
                files.insert(name, st);
            }
            let mut dirs: Vec<String> = dirs.into_iter().collect();
            dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
            for d in dirs {
                local.sync_dir(&d)?;
            }
            local.sync_dir("")?;
        } else {
            // A kept directory must be the store the bucket holds (or the bucket empty): a
            // fresh local store over a full bucket would overwrite it.
            let known = local_files.iter().any(|n| {
                names.get(n).map(|(_, g, _)| *g) == get_gen(&root.join(n)) && names.contains_key(n)
            });
            if !names.is_empty() && !known {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the local store directory is not the store in the bucket (no file of it \
                     is known there): move the directory away to rebuild it from the bucket, \
                     or use another bucket prefix",
                ));
            }
            for name in &local_files {
                let f = local.open(name, false)?;
                let local_len = f.len()?;
                let tagged = get_gen(&root.join(name));
                let known = names.get(name).filter(|(_, g, _)| Some(*g) == tagged);
                let st = match known {
                    Some((_, gen, key)) => {
                        let objs = live_objects(data.get(gen).cloned().unwrap_or_default());
                        let bucket_len = objects_len(&objs);
                        let next = objs.last().map_or(0, |o| o.seq + 1);
                        let st = FileState::new(
                            *gen,
                            key.clone(),
                            next,
                            objs.iter().map(|o| o.key.clone()).collect(),
                        );
                        {
                            let mut i = st.inner.lock();
                            if local_len > bucket_len {
                                i.dirty.push((bucket_len, local_len));
                            } else if local_len < bucket_len {
                                i.trunc = Some(local_len);
                            }
                        }
                        st
                    }
                    None => {
                        if let Some((_, _, old)) = names.get(name) {
                            garbage.push(old.clone());
                        }
                        let st = shared.register(name)?;
                        st.inner.lock().dirty.push((0, local_len));
                        st
                    }
                };
                let pending = {
                    let i = st.inner.lock();
                    !i.dirty.is_empty() || i.trunc.is_some()
                };
                if pending {
                    shared.sync(&st, f.as_ref())?;
                    report.uploaded_files += 1;
                }
                *st.local.lock() = Some(f);
                used_gens.insert(st.gen);
                files.insert(name.clone(), st);
            }
            for (name, (_, _, key)) in &names {
                if !files.contains_key(name) {
                    garbage.push(key.clone());
                }
            }
        }
        for (gen, objs) in &data {
            if !used_gens.contains(gen) {
                garbage.extend(objs.iter().map(|o| o.key.clone()));
            }
        }
        // Objects of used generations that are no longer live (covered by a whole-file set).
        for st in files.values() {
            let i = st.inner.lock();
            let live: HashSet<&String> = i.objects.iter().collect();
            if let Some(objs) = data.get(&st.gen) {
                garbage.extend(
                    objs.iter()
                        .filter(|o| !live.contains(&o.key))
                        .map(|o| o.key.clone()),
                );
            }
        }
        *shared.files.lock() = files;
        *shared.garbage.lock() = garbage;
        let bg = shared.clone();
        let thread = std::thread::Builder::new()
            .name("skab-object".into())
            .spawn(move || bg.background())?;
        Ok((
            ObjectStorage {
                shared,
                thread: Mutex::new(Some(thread)),
            },
            report,
        ))
    }
}

impl Drop for ObjectStorage {
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// An open file of an [`ObjectStorage`].
struct ObjectFile {
    local: Arc<dyn StorageFile>,
    state: Arc<FileState>,
    shared: Arc<Shared>,
}

impl Storage for ObjectStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        validate_name(name)?;
        let sh = &self.shared;
        let mut files = sh.files.lock();
        let state = match files.get(name) {
            Some(st) => st.clone(),
            None => {
                let existed = sh.local.list(name)?.iter().any(|n| n == name);
                let f = sh.local.open(name, create)?;
                let st = sh.register(name)?;
                if existed {
                    st.inner.lock().dirty.push((0, f.len()?));
                    sh.sync(&st, f.as_ref())?;
                }
                files.insert(name.to_owned(), st.clone());
                st
            }
        };
        drop(files);
        let local = sh.local.open(name, create)?;
        state.local.lock().get_or_insert_with(|| local.clone());
        Ok(Arc::new(ObjectFile {
            local,
            state,
            shared: sh.clone(),
        }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        validate_name(name)?;
        let sh = &self.shared;
        let mut files = sh.files.lock();
        sh.local.remove(name)?;
        let Some(st) = files.remove(name) else {
            return Ok(());
        };
        drop(files);
        let (key, objects) = {
            let mut i = st.inner.lock();
            (i.name_key.take(), std::mem::take(&mut i.objects))
        };
        sh.garbage.lock().extend(objects);
        match key {
            Some(k) => sh.s3.delete(&k),
            None => Ok(()),
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        validate_name(from)?;
        validate_name(to)?;
        let sh = &self.shared;
        let mut files = sh.files.lock();
        sh.local.rename(from, to)?;
        let st = match files.remove(from) {
            Some(st) => st,
            None => {
                let st = sh.register(to)?;
                let f = sh.local.open(to, false)?;
                st.inner.lock().dirty.push((0, f.len()?));
                sh.sync(&st, f.as_ref())?;
                st
            }
        };
        let replaced = files.insert(to.to_owned(), st.clone());
        drop(files);
        // The new name first: a crash in between leaves both names, never none.
        let new_key = name_key(&sh.s3.prefix, to, sh.stamp(), st.gen);
        sh.s3.put(&new_key, b"")?;
        let old_key = st.inner.lock().name_key.replace(new_key);
        if let Some(old) = replaced.filter(|r| !Arc::ptr_eq(r, &st)) {
            let (key, objects) = {
                let mut i = old.inner.lock();
                (i.name_key.take(), std::mem::take(&mut i.objects))
            };
            sh.garbage.lock().extend(objects);
            if let Some(k) = key {
                sh.s3.delete(&k)?;
            }
        }
        if let Some(k) = old_key {
            sh.s3.delete(&k)?;
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.shared.local.list(prefix)
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        // Names in the bucket are durable when their request returns.
        self.shared.local.sync_dir(dir)
    }

    fn kind(&self) -> &'static str {
        "object"
    }

    fn free_bytes(&self) -> io::Result<Option<u64>> {
        self.shared.local.free_bytes()
    }
}

impl StorageFile for ObjectFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.local.read_exact_at(buf, offset)
    }

    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        self.local.read_cached_at(buf, offset)
    }

    fn write_batch(&self, writes: &[(u64, &[u8])], sync: bool) -> io::Result<()> {
        self.local.write_batch(writes, false)?;
        {
            let mut i = self.state.inner.lock();
            for (off, d) in writes {
                if !d.is_empty() {
                    i.dirty.push((*off, off + d.len() as u64));
                }
            }
            if i.dirty.len() > 1024 {
                merge(&mut i.dirty);
            }
            i.last_write = Instant::now();
        }
        if sync {
            self.shared.sync(&self.state, self.local.as_ref())?;
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.shared.sync(&self.state, self.local.as_ref())
    }

    fn len(&self) -> io::Result<u64> {
        self.local.len()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.local.truncate(len)?;
        let mut i = self.state.inner.lock();
        i.dirty.retain_mut(|r| {
            r.1 = r.1.min(len);
            r.0 < r.1
        });
        i.trunc = Some(i.trunc.map_or(len, |t| t.min(len)));
        i.last_write = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_damage_is_caught() {
        let seg = Segment {
            trunc: Some(7),
            final_len: 100,
            ranges: vec![(0, b"abc".to_vec()), (50, vec![9; 20])],
        };
        let b = encode(&seg);
        let back = decode(&b).unwrap();
        assert_eq!(back.trunc, Some(7));
        assert_eq!(back.final_len, 100);
        assert_eq!(back.ranges, seg.ranges);
        let mut bad = b.clone();
        bad[40] ^= 1;
        assert_eq!(decode(&bad).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(decode(&b[..20]).is_err());
    }

    #[test]
    fn keys_parse_back() {
        let k = data_key("p/", 0xabc, 5, 1, 3, true, 4096);
        let d = parse_data_key("p/", &k).unwrap();
        assert_eq!(
            (d.gen, d.seq, d.part, d.parts, d.full, d.len),
            (0xabc, 5, 1, 3, true, 4096)
        );
        let n = name_key("", "wal/007/a#b.wal", 9, 0xff);
        assert_eq!(
            parse_name_key("", &n).unwrap(),
            ("wal/007/a#b.wal".to_owned(), 9, 0xff)
        );
        assert!(parse_data_key("", "d/zz/1").is_none());
    }

    #[test]
    fn a_complete_whole_file_set_hides_older_segments() {
        let mk = |seq, part, parts, full, len| DataKey {
            gen: 1,
            seq,
            part,
            parts,
            full,
            len,
            key: format!("{seq}.{part}.{full}"),
        };
        // Segments 0..3, a complete full set at 3, a segment after it, and an incomplete
        // full set at 5 (a compaction cut short): the live set is full@3 + seg@4.
        let objs = vec![
            mk(0, 0, 1, false, 10),
            mk(1, 0, 2, false, 20),
            mk(1, 1, 2, false, 20),
            mk(3, 0, 2, true, 20),
            mk(3, 1, 2, true, 20),
            mk(4, 0, 1, false, 30),
            mk(5, 0, 2, true, 30),
        ];
        let live = live_objects(objs);
        let keys: Vec<&str> = live.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["3.0.true", "3.1.true", "4.0.false"]);
        assert_eq!(objects_len(&live), 30);
    }

    #[test]
    fn dirty_ranges_merge_and_split_into_parts() {
        let mut r = vec![(10, 20), (0, 5), (15, 30), (5, 6)];
        merge(&mut r);
        assert_eq!(r, [(0, 6), (10, 30)]);
        let mem = crate::io::MemStorage::new();
        let f = mem.open("f", true).unwrap();
        let data = vec![3u8; OBJECT_PART_BYTES + 10];
        f.write_batch(&[(0, &data)], true).unwrap();
        let parts = read_parts(
            f.as_ref(),
            &[(0, data.len() as u64 + 99)],
            Some(0),
            data.len() as u64,
        )
        .unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].trunc, parts[1].trunc), (Some(0), None));
        assert_eq!(parts[1].ranges, [(OBJECT_PART_BYTES as u64, vec![3u8; 10])]);
    }
}
