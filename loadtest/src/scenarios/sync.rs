//! `sync`: several sync clients ("devices") per user poll the user's home like the desktop
//! clients (`poll.rs`); some of them change files in subfolders (PUT new, PUT over, DELETE,
//! MOVE). Every change must reach every other client of its user: for each change and each
//! other client, the delay from the change's acknowledgement to the moment that client's poll
//! found the home's ETag changed and its follow-up listing showed the change (the new file
//! ETag, or the absence). Changes not seen by all within `bound_s` are late changes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderName, HeaderValue, Method};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::poll::{enc, norm_etag, PollOut, Polled, Poller, Tree};
use super::{auth_header, wait_until, Ctx};
use crate::limits::{HIST_MAX_US, HIST_SIGFIGS};
use crate::record::Latency;

/// A file as the bookkeeping names it: subfolder index, file name.
pub type FileRef = (u32, Box<str>);

/// A folder's files as one client last listed them: (name, normalised ETag).
pub type Files = Vec<(Box<str>, Box<str>)>;

/// What a client's listing must show once it has seen a change.
#[derive(Clone, Debug)]
pub enum Expect {
    /// The file is listed; with that ETag when the server acknowledged one.
    Present {
        folder: u32,
        name: Box<str>,
        etag: Option<Box<str>>,
    },
    Absent {
        folder: u32,
        name: Box<str>,
    },
}

impl Expect {
    fn holds(&self, know: &[Option<Files>]) -> bool {
        let files = |f: u32| know.get(f as usize).and_then(Option::as_ref);
        match self {
            Expect::Present { folder, name, etag } => files(*folder).is_some_and(|fs| {
                fs.iter()
                    .any(|(n, t)| n == name && etag.as_ref().is_none_or(|e| e == t))
            }),
            Expect::Absent { folder, name } => {
                files(*folder).is_some_and(|fs| !fs.iter().any(|(n, _)| n == name))
            }
        }
    }
}

struct Change {
    ack: Instant,
    expect: Vec<Expect>,
    /// Per client: when it saw the change (the changing client counts as having seen it).
    seen: Vec<Option<Instant>>,
    late: bool,
    /// The file the change leaves behind, free for later changes once all have seen it.
    release: Option<FileRef>,
}

struct UserBook {
    /// Per client, per subfolder: the files of its latest listing (None: never listed).
    know: Vec<Vec<Option<Files>>>,
    pending: Vec<Change>,
    /// Files no pending change touches: later changes pick from these.
    free: Vec<FileRef>,
}

#[derive(Default)]
struct Tally {
    changes: u64,
    expected: u64,
    seen: u64,
    late: u64,
    unseen: u64,
    late_changes: u64,
}

/// The propagation bookkeeping: what each client knows, which changes it has not seen yet.
pub struct Book {
    bound: Duration,
    users: Vec<Mutex<UserBook>>,
    tally: Mutex<(Tally, Histogram<u64>)>,
}

/// The bookkeeping's totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BookOut {
    /// Changes acknowledged by the server (and so owed to the user's other clients).
    pub changes: u64,
    /// changes x (devices_per_user - 1).
    pub deliveries_expected: u64,
    /// Deliveries seen (within the bound or not).
    pub deliveries_seen: u64,
    /// Deliveries seen later than the bound.
    pub deliveries_late: u64,
    /// Deliveries never seen before the run ended.
    pub deliveries_unseen: u64,
    /// Changes not seen by every other client within the bound.
    pub late_changes: u64,
    pub bound_ms: f64,
    /// Delay from acknowledgement to each other client having seen the change (wall µs).
    pub propagation_us: Latency,
}

impl Book {
    pub fn new(users: usize, devices: usize, folders: usize, bound: Duration) -> Book {
        Book {
            bound,
            users: (0..users)
                .map(|_| {
                    Mutex::new(UserBook {
                        know: vec![vec![None; folders]; devices],
                        pending: Vec::new(),
                        free: Vec::new(),
                    })
                })
                .collect(),
            tally: Mutex::new((
                Tally::default(),
                // Internal invariant: constant bounds hdrhistogram accepts.
                Histogram::new_with_bounds(1, HIST_MAX_US, HIST_SIGFIGS)
                    .expect("constant histogram bounds"),
            )),
        }
    }

    fn deliver(&self, ch: &mut Change, d: usize, at: Instant) {
        let delay = at.saturating_duration_since(ch.ack);
        ch.seen[d] = Some(at);
        let mut t = self.tally.lock();
        t.0.seen += 1;
        let _ = t.1.record((delay.as_micros() as u64).clamp(1, HIST_MAX_US));
        if delay > self.bound {
            t.0.late += 1;
            ch.late = true;
        }
    }

    /// Removes the changes every client has seen; their files become free again.
    fn settle(&self, ub: &mut UserBook) {
        let mut i = 0;
        while i < ub.pending.len() {
            if ub.pending[i].seen.iter().all(Option::is_some) {
                let ch = ub.pending.swap_remove(i);
                if ch.late {
                    self.tally.lock().0.late_changes += 1;
                }
                if let Some(f) = ch.release {
                    ub.free.push(f);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Client `d` of user `u` listed subfolder `folder` at `at` and found `files`.
    pub fn observe(&self, u: usize, d: usize, folder: u32, files: Files, at: Instant) {
        let Some(ub) = self.users.get(u) else { return };
        let mut g = ub.lock();
        let ub = &mut *g;
        let Some(slot) = ub.know.get_mut(d).and_then(|k| k.get_mut(folder as usize)) else {
            return;
        };
        *slot = Some(files);
        let know = &ub.know[d];
        let mut any = false;
        for ch in ub.pending.iter_mut() {
            if ch.seen[d].is_none() && ch.expect.iter().all(|e| e.holds(know)) {
                self.deliver(ch, d, at);
                any = true;
            }
        }
        if any {
            self.settle(ub);
        }
    }

    /// Client `by` of user `u` made a change the server acknowledged at `ack`. Clients whose
    /// latest listing already shows it (a listing that raced the acknowledgement) have seen it
    /// at `ack`.
    pub fn register(
        &self,
        u: usize,
        by: usize,
        ack: Instant,
        expect: Vec<Expect>,
        release: Option<FileRef>,
    ) {
        let Some(ub) = self.users.get(u) else { return };
        let mut g = ub.lock();
        let ub = &mut *g;
        let devices = ub.know.len();
        let mut ch = Change {
            ack,
            expect,
            seen: vec![None; devices],
            late: false,
            release,
        };
        if let Some(s) = ch.seen.get_mut(by) {
            *s = Some(ack);
        }
        {
            let mut t = self.tally.lock();
            t.0.changes += 1;
            t.0.expected += devices.saturating_sub(1) as u64;
        }
        for d in 0..devices {
            if d != by && ch.expect.iter().all(|e| e.holds(&ub.know[d])) {
                self.deliver(&mut ch, d, ack);
            }
        }
        ub.pending.push(ch);
        self.settle(ub);
    }

    /// A free file of user `u` (no pending change touches it), taken out of the free set.
    pub fn take_free(&self, u: usize, pick: usize) -> Option<FileRef> {
        let mut g = self.users.get(u)?.lock();
        if g.free.is_empty() {
            return None;
        }
        let i = pick % g.free.len();
        Some(g.free.swap_remove(i))
    }

    /// Gives back a file taken for a change that failed.
    pub fn put_free(&self, u: usize, f: FileRef) {
        if let Some(ub) = self.users.get(u) {
            ub.lock().free.push(f);
        }
    }

    /// Whether client `d` of user `u` owes a change acknowledged before `t` (then a poll at
    /// `t` must find the home changed).
    pub fn owes(&self, u: usize, d: usize, t: Instant) -> bool {
        self.users.get(u).is_some_and(|ub| {
            ub.lock()
                .pending
                .iter()
                .any(|c| c.ack <= t && c.seen.get(d).is_some_and(Option::is_none))
        })
    }

    /// No change waits for a client.
    pub fn idle(&self) -> bool {
        self.users.iter().all(|ub| ub.lock().pending.is_empty())
    }

    /// The totals; changes still pending count as unseen by the clients that missed them.
    pub fn finish(&self) -> BookOut {
        let mut unseen = 0u64;
        let mut late_changes = 0u64;
        for ub in &self.users {
            let g = ub.lock();
            for ch in &g.pending {
                unseen += ch.seen.iter().filter(|s| s.is_none()).count() as u64;
                late_changes += 1;
            }
        }
        let t = self.tally.lock();
        BookOut {
            changes: t.0.changes,
            deliveries_expected: t.0.expected,
            deliveries_seen: t.0.seen,
            deliveries_late: t.0.late,
            deliveries_unseen: unseen + t.0.unseen,
            late_changes: t.0.late_changes + late_changes,
            bound_ms: self.bound.as_secs_f64() * 1e3,
            propagation_us: Latency::of(&t.1),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncOut {
    pub users: u64,
    pub devices_per_user: u32,
    pub clients: u64,
    /// Clients whose first listing (and that of every subfolder) succeeded.
    pub clients_ready: u64,
    pub changes_planned: u64,
    pub changes_failed: u64,
    pub changes_by_kind: BTreeMap<&'static str, u64>,
    #[serde(flatten)]
    pub book: BookOut,
    /// Polls that found the home unchanged (or gave no ETag) although a change acknowledged
    /// before the poll was still owed to that client: the server did not change the home's
    /// ETag.
    pub polls_missed_change: u64,
    pub polling: PollOut,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    PutNew,
    PutExisting,
    Delete,
    Move,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PutNew => "put_new",
            Kind::PutExisting => "put_existing",
            Kind::Delete => "delete",
            Kind::Move => "move",
        }
    }
}

/// One client: its user, its index among the user's clients, its credentials.
struct Dev {
    u: usize,
    d: usize,
    pick: usize,
    home: String,
    auth: HeaderValue,
}

struct Shared {
    ctx: Arc<Ctx>,
    book: Book,
    folders: Vec<String>,
    devs: Vec<Dev>,
    missed: AtomicU64,
    failed: AtomicU64,
    by_kind: Mutex<BTreeMap<&'static str, u64>>,
    changes_done: AtomicBool,
}

pub async fn run(ctx: Arc<Ctx>) -> SyncOut {
    let c = ctx.cfg.sync.clone();
    let nusers = (c.users as usize).min(ctx.users.len());
    let devices = c.devices_per_user as usize;
    let folders: Vec<String> = (0..c.folders)
        .map(|k| format!("sync-{}-{k}", ctx.run_tag))
        .collect();
    let mut devs = Vec::with_capacity(nusers * devices);
    for u in 0..nusers {
        let user = &ctx.users[u];
        for d in 0..devices {
            let pick = u * devices + d;
            let mut rng =
                rand::rngs::StdRng::seed_from_u64(ctx.seed ^ (pick as u64).wrapping_mul(0x9e37));
            let kind = ctx.authn.pick(rng.gen(), user);
            ctx.count_auth(kind);
            let Some(auth) = ctx.authn.header(kind, user) else {
                ctx.rec.record("login", Instant::now(), Some("auth-header"));
                continue;
            };
            devs.push(Dev {
                u,
                d,
                pick,
                home: ctx.home(user),
                auth,
            });
        }
    }
    let sh = Arc::new(Shared {
        ctx: ctx.clone(),
        book: Book::new(nusers, devices, folders.len(), ctx.wall(c.bound_s)),
        folders,
        devs,
        missed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        by_kind: Mutex::new(BTreeMap::new()),
        changes_done: AtomicBool::new(false),
    });
    // Setup: each user's subfolders, then every client's first listing.
    let mut set = tokio::task::JoinSet::new();
    for u in 0..nusers {
        let sh = sh.clone();
        set.spawn(async move { setup_user(&sh, u).await });
    }
    let mut trees: Vec<Option<Tree>> = (0..sh.devs.len()).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        if let Ok(list) = r {
            for (i, t) in list {
                if let Some(slot) = trees.get_mut(i) {
                    *slot = Some(t);
                }
            }
        }
    }
    let ready = trees.iter().filter(|t| t.is_some()).count() as u64;
    let start = Instant::now();
    let end = start + ctx.wall(c.duration_s + c.bound_s + 2.0 * c.poll_every_s);
    let every = ctx.wall(c.poll_every_s);
    let clients = sh.devs.len().max(1);
    let mut devices_set = tokio::task::JoinSet::new();
    for (i, t) in trees.into_iter().enumerate() {
        let Some(tree) = t else { continue };
        let sh = sh.clone();
        // Spread the clients' polls evenly over the interval.
        let offset = every.mul_f64(i as f64 / clients as f64);
        let rec = &ctx.rec;
        rec.sessions_started.fetch_add(1, Ordering::Relaxed);
        rec.sessions_live.fetch_add(1, Ordering::Relaxed);
        devices_set.spawn(async move {
            client(&sh, i, tree, start + offset, every, end).await;
            let rec = &sh.ctx.rec;
            rec.sessions_live.fetch_sub(1, Ordering::Relaxed);
            rec.sessions_done.fetch_add(1, Ordering::Relaxed);
        });
    }
    // The changes: open loop, evenly spaced over duration_s.
    let n = (c.duration_s * c.changes_per_s).round().max(1.0) as u64;
    let step = c.duration_s / n as f64;
    let w = &c.weights;
    let table = [
        (Kind::PutNew, w.put_new),
        (Kind::PutExisting, w.put_existing),
        (Kind::Delete, w.delete),
        (Kind::Move, w.mv),
    ];
    let total: u32 = table.iter().map(|t| t.1).sum();
    let mut changes = tokio::task::JoinSet::new();
    if ready > 0 {
        for j in 0..n {
            let sched = start + ctx.wall(j as f64 * step);
            if !wait_until(&ctx, sched).await {
                break;
            }
            ctx.rec.record_lag(sched);
            let mut rng = rand::rngs::StdRng::seed_from_u64(ctx.seed ^ j.wrapping_mul(0x5851_f42d));
            let mut x = rng.gen_range(0..total.max(1));
            let mut kind = Kind::PutNew;
            for (k, wt) in table {
                if x < wt {
                    kind = k;
                    break;
                }
                x -= wt;
            }
            let i = rng.gen_range(0..sh.devs.len());
            let sh2 = sh.clone();
            changes.spawn(async move { change(&sh2, i, j, kind, sched, &mut rng).await });
            while changes.try_join_next().is_some() {}
        }
    }
    while changes.join_next().await.is_some() {}
    sh.changes_done.store(true, Ordering::Relaxed);
    while devices_set.join_next().await.is_some() {}
    let by_kind = sh.by_kind.lock().clone();
    SyncOut {
        users: nusers as u64,
        devices_per_user: c.devices_per_user,
        clients: sh.devs.len() as u64,
        clients_ready: ready,
        changes_planned: n,
        changes_failed: sh.failed.load(Ordering::Relaxed),
        changes_by_kind: by_kind,
        book: sh.book.finish(),
        polls_missed_change: sh.missed.load(Ordering::Relaxed),
        polling: ctx.polling.out(),
    }
}

fn poller<'a>(sh: &'a Shared, dev: &'a Dev) -> Poller<'a> {
    Poller {
        ctx: &sh.ctx,
        pick: dev.pick,
        home: &dev.home,
        auth: &dev.auth,
    }
}

/// MKCOL the user's home (201, or 405 when there) and subfolders; then each client's first
/// listing of the home and of every subfolder. Returns (client index, what it remembers).
async fn setup_user(sh: &Shared, u: usize) -> Vec<(usize, Tree)> {
    let ctx = &sh.ctx;
    let mine: Vec<usize> = (0..sh.devs.len()).filter(|&i| sh.devs[i].u == u).collect();
    let Some(&first) = mine.first() else {
        return Vec::new();
    };
    let dev = &sh.devs[first];
    let h = [auth_header(dev.auth.clone())];
    let mkcol = || Method::from_bytes(b"MKCOL").expect("MKCOL is a valid method");
    ctx.op(
        "setup.mkcol",
        Instant::now(),
        dev.pick,
        mkcol(),
        &dev.home,
        &h,
        Bytes::new(),
        &[201, 405],
        false,
    )
    .await;
    for f in &sh.folders {
        let path = format!("{}{}/", dev.home, enc(f));
        ctx.op(
            "setup.mkcol",
            Instant::now(),
            dev.pick,
            mkcol(),
            &path,
            &h,
            Bytes::new(),
            &[201],
            false,
        )
        .await;
    }
    let mut out = Vec::new();
    'dev: for i in mine {
        let dev = &sh.devs[i];
        let p = poller(sh, dev);
        let mut tree = Tree::default();
        if !p.login("login", Instant::now(), &mut tree).await {
            continue;
        }
        for (k, f) in sh.folders.iter().enumerate() {
            let Some((_, files)) = p.list_folder(f).await else {
                continue 'dev;
            };
            sh.book
                .observe(u, dev.d, k as u32, files, std::time::Instant::now());
        }
        out.push((i, tree));
    }
    out
}

/// One client polling from `first` every `every` until `end` (or until every change was made
/// and seen).
async fn client(
    sh: &Shared,
    i: usize,
    mut tree: Tree,
    first: Instant,
    every: Duration,
    end: Instant,
) {
    let dev = &sh.devs[i];
    let p = poller(sh, dev);
    let mut n = 0u32;
    loop {
        let at = first + every * n;
        n += 1;
        if at > end || (sh.changes_done.load(Ordering::Relaxed) && sh.book.idle()) {
            break;
        }
        if !wait_until(&sh.ctx, at).await {
            break;
        }
        let owed = sh.book.owes(dev.u, dev.d, Instant::now());
        match Box::pin(p.poll(at, &mut tree)).await {
            Polled::Unchanged | Polled::NoEtag if owed => {
                sh.missed.fetch_add(1, Ordering::Relaxed);
            }
            Polled::Changed(relisted) => {
                for (name, files, when) in relisted {
                    if let Some(k) = sh.folders.iter().position(|f| **f == *name) {
                        sh.book.observe(dev.u, dev.d, k as u32, files, when);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The bytes a change writes: a marker naming the change, padded to `size`.
fn content(size: usize, j: u64, tag: u64) -> Bytes {
    let mut v = format!("change {j} of sync run {tag}\n").into_bytes();
    while v.len() < size {
        v.push(b'a' + (v.len() % 26) as u8);
    }
    v.truncate(size.max(1));
    Bytes::from(v)
}

/// Change `j` by client `i`: PUT, DELETE or MOVE in one of the user's subfolders.
async fn change(
    sh: &Shared,
    i: usize,
    j: u64,
    kind: Kind,
    sched: Instant,
    rng: &mut rand::rngs::StdRng,
) {
    let ctx = &sh.ctx;
    let dev = &sh.devs[i];
    let c = &ctx.cfg.sync;
    let nf = sh.folders.len() as u32;
    let path =
        |f: u32, name: &str| format!("{}{}/{}", dev.home, enc(&sh.folders[f as usize]), enc(name));
    // Changes to existing files take a free one; without one the change is a new file.
    let (kind, file) = match kind {
        Kind::PutNew => (Kind::PutNew, None),
        k => match sh.book.take_free(dev.u, rng.gen()) {
            Some(f) => (k, Some(f)),
            None => (Kind::PutNew, None),
        },
    };
    *sh.by_kind.lock().entry(kind.name()).or_default() += 1;
    let h = [auth_header(dev.auth.clone())];
    let body = || content(c.file_size_bytes as usize, j, ctx.run_tag);
    let give_back = |f: Option<FileRef>| {
        sh.failed.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = f {
            sh.book.put_free(dev.u, f);
        }
    };
    match kind {
        Kind::PutNew | Kind::PutExisting => {
            let (folder, name) = file
                .clone()
                .unwrap_or_else(|| (rng.gen_range(0..nf), format!("f-{j}.txt").into()));
            let r = ctx
                .op_keep(
                    "change.put",
                    sched,
                    dev.pick,
                    Method::PUT,
                    &path(folder, &name),
                    &h,
                    body(),
                    &[200, 201, 204],
                )
                .await;
            let Some(r) = r else {
                return give_back(file);
            };
            let ack = Instant::now();
            let etag = r
                .etag
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(|s| Box::<str>::from(norm_etag(s)));
            sh.book.register(
                dev.u,
                dev.d,
                ack,
                vec![Expect::Present {
                    folder,
                    name: name.clone(),
                    etag,
                }],
                Some((folder, name)),
            );
        }
        Kind::Delete => {
            let Some((folder, name)) = file.clone() else {
                return;
            };
            let ok = ctx
                .op(
                    "change.delete",
                    sched,
                    dev.pick,
                    Method::DELETE,
                    &path(folder, &name),
                    &h,
                    Bytes::new(),
                    &[200, 204],
                    false,
                )
                .await;
            if ok.is_none() {
                return give_back(file);
            }
            sh.book.register(
                dev.u,
                dev.d,
                Instant::now(),
                vec![Expect::Absent { folder, name }],
                None,
            );
        }
        Kind::Move => {
            let Some((folder, name)) = file.clone() else {
                return;
            };
            let to_folder = rng.gen_range(0..nf);
            let to_name: Box<str> = format!("m-{j}.txt").into();
            let dest = format!(
                "http://{}{}",
                ctx.http.authority(dev.pick),
                path(to_folder, &to_name)
            );
            let Ok(dv) = HeaderValue::from_str(&dest) else {
                return give_back(file);
            };
            let hm = [
                auth_header(dev.auth.clone()),
                (HeaderName::from_static("destination"), dv),
                (
                    HeaderName::from_static("overwrite"),
                    HeaderValue::from_static("F"),
                ),
            ];
            let m = Method::from_bytes(b"MOVE").expect("MOVE is a valid method");
            let ok = ctx
                .op(
                    "change.move",
                    sched,
                    dev.pick,
                    m,
                    &path(folder, &name),
                    &hm,
                    Bytes::new(),
                    &[201, 204],
                    false,
                )
                .await;
            if ok.is_none() {
                return give_back(file);
            }
            sh.book.register(
                dev.u,
                dev.d,
                Instant::now(),
                vec![
                    Expect::Absent { folder, name },
                    Expect::Present {
                        folder: to_folder,
                        name: to_name.clone(),
                        etag: None,
                    },
                ],
                Some((to_folder, to_name)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Files {
        list.iter()
            .map(|(n, e)| ((*n).into(), (*e).into()))
            .collect()
    }

    fn present(folder: u32, name: &str, etag: &str) -> Expect {
        Expect::Present {
            folder,
            name: name.into(),
            etag: Some(etag.into()),
        }
    }

    #[test]
    fn counts_seen_late_and_unseen_changes() {
        let bound = Duration::from_millis(500);
        let b = Book::new(2, 3, 2, bound);
        let t0 = Instant::now();
        for d in 0..3 {
            b.observe(0, d, 0, files(&[("a", "1")]), t0);
            b.observe(0, d, 1, files(&[]), t0);
        }
        // Change 1 (client 0): a gets ETag 2. Client 1 sees it in time, client 2 late.
        b.register(0, 0, t0, vec![present(0, "a", "2")], Some((0, "a".into())));
        assert!(b.owes(0, 1, t0) && b.owes(0, 2, t0) && !b.owes(0, 0, t0));
        assert!(
            b.take_free(0, 0).is_none(),
            "a file with a pending change is busy"
        );
        b.observe(
            0,
            1,
            0,
            files(&[("a", "1")]),
            t0 + Duration::from_millis(50),
        );
        assert!(
            b.owes(0, 1, t0),
            "a listing with the old ETag is not the change"
        );
        b.observe(
            0,
            1,
            0,
            files(&[("a", "2")]),
            t0 + Duration::from_millis(100),
        );
        assert!(!b.owes(0, 1, t0));
        b.observe(
            0,
            2,
            0,
            files(&[("a", "2")]),
            t0 + Duration::from_millis(900),
        );
        assert!(b.idle());
        assert_eq!(
            b.take_free(0, 0),
            Some((0, "a".into())),
            "settled: free again"
        );
        // Change 2 (user 1, client 2): b deleted; client 0 had already listed it gone (a
        // listing racing the acknowledgement), client 1 never sees it.
        b.observe(1, 0, 1, files(&[]), t0);
        b.observe(1, 1, 1, files(&[("b", "7")]), t0);
        let t1 = t0 + Duration::from_millis(10);
        b.register(
            1,
            2,
            t1,
            vec![Expect::Absent {
                folder: 1,
                name: "b".into(),
            }],
            None,
        );
        assert!(!b.owes(1, 0, t1) && b.owes(1, 1, t1));
        assert!(!b.idle());
        // Change 3 (user 1, client 0): a move, seen in time by both others.
        b.register(
            1,
            0,
            t1,
            vec![
                Expect::Absent {
                    folder: 0,
                    name: "x".into(),
                },
                Expect::Present {
                    folder: 1,
                    name: "y".into(),
                    etag: None,
                },
            ],
            Some((1, "y".into())),
        );
        let t2 = t1 + Duration::from_millis(200);
        for d in [1, 2] {
            b.observe(1, d, 0, files(&[("z", "1")]), t2);
            b.observe(1, d, 1, files(&[("b", "7"), ("y", "9")]), t2);
        }
        let o = b.finish();
        assert_eq!(o.changes, 3);
        assert_eq!(o.deliveries_expected, 6);
        assert_eq!(o.deliveries_seen, 5);
        assert_eq!(o.deliveries_late, 1, "client 2 saw change 1 after 900 ms");
        assert_eq!(o.deliveries_unseen, 1, "client 1 never saw change 2");
        assert_eq!(o.late_changes, 2);
        assert_eq!(o.propagation_us.count, 5);
        assert!(o.propagation_us.max >= 899_000, "{:?}", o.propagation_us);
        assert_eq!(
            o.propagation_us.min, 1,
            "the raced listing counts as seen at once"
        );
    }

    #[test]
    fn a_change_seen_by_all_in_time_is_not_late() {
        let b = Book::new(1, 2, 1, Duration::from_secs(1));
        let t0 = Instant::now();
        b.observe(0, 0, 0, files(&[]), t0);
        b.observe(0, 1, 0, files(&[]), t0);
        b.register(0, 1, t0, vec![present(0, "n", "e")], Some((0, "n".into())));
        b.observe(
            0,
            0,
            0,
            files(&[("n", "e")]),
            t0 + Duration::from_millis(300),
        );
        let o = b.finish();
        assert_eq!((o.changes, o.deliveries_seen, o.late_changes), (1, 1, 0));
        assert_eq!(o.deliveries_unseen, 0);
        assert!(o.propagation_us.p50 >= 299_000 && o.propagation_us.p50 <= 301_000);
    }
}
