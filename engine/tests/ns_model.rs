//! Model test of the namespace tree: random op sequences against a plain BTreeMap model.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::discriminant;

use proptest::prelude::*;
use skab_engine::ns::{
    decode_snapshot, encode_snapshot, Change, Changes, ChunkRef, Content, Etag, Kind, Name, NsOp,
    PropName, SpaceTree,
};
use skab_engine::{ChunkId, ContentHash, Error, NodeId, Result};

type P = Vec<Name>;
type Props = BTreeMap<PropName, Vec<u8>>;

#[derive(Clone, Debug, PartialEq)]
struct MVer {
    id: u64,
    content: usize,
    mtime: i64,
    superseded: i64,
}

#[derive(Clone, Debug, PartialEq)]
struct MEntry {
    file: Option<usize>,
    mtime: i64,
    ctime: i64,
    props: Props,
    versions: Vec<MVer>,
}

#[derive(Clone, Debug)]
struct MTrash {
    id: u64,
    orig: P,
    deleted_at: i64,
    /// Relative paths (the trashed entry itself is the empty path).
    entries: BTreeMap<P, MEntry>,
}

struct Model {
    live: BTreeMap<P, MEntry>,
    trash: Vec<MTrash>,
    next_trash: u64,
    next_version: u64,
    quota: Option<u64>,
}

const NAMES: [&str; 6] = [
    "a",
    "b",
    "c",
    "\u{e5}",
    "a\u{30a}",
    "Sk\u{e6}rmbillede 2024-03-12 kl. 10.23.45.png",
];
const SIZES: [u64; 4] = [0, 10, 100, 1000];

fn content(i: usize) -> Content {
    let size = SIZES[i];
    let chunks: Vec<ChunkRef> = if size == 0 {
        vec![]
    } else {
        vec![ChunkRef {
            id: ChunkId([i as u8 + 1; 32]),
            len: size as u32,
        }]
    };
    Content {
        hash: ContentHash([i as u8 + 1; 32]),
        size,
        chunks: chunks.into(),
    }
}

fn dir_entry(now: i64) -> MEntry {
    MEntry {
        file: None,
        mtime: now,
        ctime: now,
        props: Props::new(),
        versions: vec![],
    }
}

fn size_of(e: &MEntry) -> u64 {
    e.file.map_or(0, |c| SIZES[c])
}

impl Model {
    fn new() -> Model {
        let mut live = BTreeMap::new();
        live.insert(vec![], dir_entry(0));
        Model {
            live,
            trash: vec![],
            next_trash: 1,
            next_version: 1,
            quota: None,
        }
    }

    fn is_file(&self, p: &[Name]) -> bool {
        self.live.get(p).is_some_and(|e| e.file.is_some())
    }

    fn find(&self, path: &[Name]) -> Result<()> {
        for i in 0..path.len() {
            if self.is_file(&path[..i]) {
                return Err(Error::NotADirectory);
            }
            if !self.live.contains_key(&path[..=i]) {
                return Err(Error::NotFound);
            }
        }
        Ok(())
    }

    fn find_parent(&self, path: &[Name]) -> Result<()> {
        if path.is_empty() {
            return Err(Error::Invalid(""));
        }
        for i in 0..path.len() - 1 {
            if !self.live.contains_key(&path[..=i]) {
                return Err(Error::ParentMissing);
            }
            if self.is_file(&path[..=i]) {
                return Err(Error::NotADirectory);
            }
        }
        Ok(())
    }

    fn live_bytes(&self) -> u64 {
        self.live.values().map(size_of).sum()
    }

    fn subtree_bytes(&self, p: &[Name]) -> u64 {
        self.live
            .iter()
            .filter(|(k, _)| k.starts_with(p))
            .map(|(_, e)| size_of(e))
            .sum()
    }

    fn check_quota(&self, add: u64, remove: u64) -> Result<()> {
        if let Some(q) = self.quota {
            if add > remove && self.live_bytes() - remove + add > q {
                return Err(Error::QuotaExceeded);
            }
        }
        Ok(())
    }

    fn take_subtree(&mut self, p: &[Name]) -> BTreeMap<P, MEntry> {
        let keys: Vec<P> = self
            .live
            .keys()
            .filter(|k| k.starts_with(p))
            .cloned()
            .collect();
        keys.into_iter()
            .map(|k| {
                let e = self.live.remove(&k).unwrap();
                (k[p.len()..].to_vec(), e)
            })
            .collect()
    }

    fn trash_path(&mut self, p: &[Name], now: i64) {
        let entries = self.take_subtree(p);
        self.trash.push(MTrash {
            id: self.next_trash,
            orig: p.to_vec(),
            deleted_at: now,
            entries,
        });
        self.next_trash += 1;
    }

    /// Each directory in `dirs` and every one above it, once: a change below a directory
    /// moves its mtime.
    fn touch(&mut self, dirs: &[P], now: i64) {
        let set: BTreeSet<P> = dirs
            .iter()
            .flat_map(|d| (0..=d.len()).map(move |i| d[..i].to_vec()))
            .collect();
        for d in &set {
            let e = self.live.get_mut(d).unwrap();
            e.mtime = now.max(e.mtime + 1);
        }
    }

    fn apply(&mut self, op: &NsOp) -> Result<()> {
        match op {
            NsOp::Mkdir { path, now } => {
                self.find_parent(path)?;
                if self.live.contains_key(path) {
                    return Err(Error::AlreadyExists);
                }
                self.live.insert(path.clone(), dir_entry(*now));
                self.touch(&[path[..path.len() - 1].to_vec()], *now);
            }
            NsOp::PutFile { .. } | NsOp::PutFileAt { .. } => {
                let (path, content, now, mtime, keep_versions) = match op {
                    NsOp::PutFile {
                        path,
                        content,
                        now,
                        keep_versions,
                    } => (path, content, now, now, keep_versions),
                    NsOp::PutFileAt {
                        path,
                        content,
                        now,
                        mtime,
                        keep_versions,
                    } => (path, content, now, mtime, keep_versions),
                    _ => unreachable!(),
                };
                self.find_parent(path)?;
                let ci = (content.hash.0[0] - 1) as usize;
                let old = self.live.get(path).cloned();
                if old.as_ref().is_some_and(|e| e.file.is_none()) {
                    return Err(Error::IsADirectory);
                }
                self.check_quota(content.size, old.as_ref().map_or(0, size_of))?;
                let keep = *keep_versions as usize;
                match old {
                    None => {
                        let mut e = dir_entry(*now);
                        e.mtime = *mtime;
                        e.file = Some(ci);
                        self.live.insert(path.clone(), e);
                        self.touch(&[path[..path.len() - 1].to_vec()], *now);
                    }
                    Some(_) => {
                        let nv = self.next_version;
                        let e = self.live.get_mut(path).unwrap();
                        let oc = e.file.unwrap();
                        if oc != ci {
                            if keep > 0 {
                                e.versions.push(MVer {
                                    id: nv,
                                    content: oc,
                                    mtime: e.mtime,
                                    superseded: *now,
                                });
                                self.next_version += 1;
                            }
                            e.file = Some(ci);
                        }
                        e.mtime = *mtime;
                        if e.versions.len() > keep {
                            let n = e.versions.len() - keep;
                            e.versions.drain(..n);
                        }
                        self.touch(&[path[..path.len() - 1].to_vec()], *now);
                    }
                }
            }
            NsOp::Move {
                from,
                to,
                overwrite,
                now,
            }
            | NsOp::Copy {
                from,
                to,
                overwrite,
                now,
            } => {
                let copy = matches!(op, NsOp::Copy { .. });
                if from.is_empty() || to.is_empty() {
                    return Err(Error::Invalid(""));
                }
                self.find(from)?;
                if to.starts_with(from) || from.starts_with(to) {
                    return Err(Error::Invalid(""));
                }
                self.find_parent(to)?;
                let dst = self.live.contains_key(to);
                if dst && !overwrite {
                    return Err(Error::AlreadyExists);
                }
                let dp = to[..to.len() - 1].to_vec();
                if copy {
                    let remove = if dst { self.subtree_bytes(to) } else { 0 };
                    self.check_quota(self.subtree_bytes(from), remove)?;
                    if dst {
                        self.trash_path(to, *now);
                    }
                    let src: Vec<(P, MEntry)> = self
                        .live
                        .iter()
                        .filter(|(k, _)| k.starts_with(from))
                        .map(|(k, e)| (k.clone(), e.clone()))
                        .collect();
                    for (k, e) in src {
                        let mut nk = to.clone();
                        nk.extend_from_slice(&k[from.len()..]);
                        let ne = MEntry {
                            file: e.file,
                            mtime: *now,
                            ctime: *now,
                            props: e.props,
                            versions: vec![],
                        };
                        self.live.insert(nk, ne);
                    }
                    self.touch(&[dp], *now);
                } else {
                    if dst {
                        self.trash_path(to, *now);
                    }
                    let moved = self.take_subtree(from);
                    for (k, e) in moved {
                        let mut nk = to.clone();
                        nk.extend_from_slice(&k);
                        self.live.insert(nk, e);
                    }
                    self.touch(&[from[..from.len() - 1].to_vec(), dp], *now);
                }
            }
            NsOp::Delete { path, now } => {
                if path.is_empty() {
                    return Err(Error::Invalid(""));
                }
                self.find(path)?;
                self.trash_path(path, *now);
                self.touch(&[path[..path.len() - 1].to_vec()], *now);
            }
            NsOp::Restore { trash_id, to, now } => {
                let i = self
                    .trash
                    .iter()
                    .position(|t| t.id == *trash_id)
                    .ok_or(Error::NotFound)?;
                let target = to.clone().unwrap_or_else(|| self.trash[i].orig.clone());
                self.find_parent(&target)?;
                if self.live.contains_key(&target) {
                    return Err(Error::AlreadyExists);
                }
                let bytes: u64 = self.trash[i].entries.values().map(size_of).sum();
                self.check_quota(bytes, 0)?;
                let t = self.trash.remove(i);
                for (k, e) in t.entries {
                    let mut nk = target.clone();
                    nk.extend(k);
                    self.live.insert(nk, e);
                }
                self.touch(&[target[..target.len() - 1].to_vec()], *now);
            }
            NsOp::PurgeTrash { trash_id } => {
                let i = self
                    .trash
                    .iter()
                    .position(|t| t.id == *trash_id)
                    .ok_or(Error::NotFound)?;
                self.trash.remove(i);
            }
            NsOp::RestoreVersion {
                path,
                version_id,
                now,
            } => {
                self.find(path)?;
                let nv = self.next_version;
                let live_bytes = self.live_bytes();
                let quota = self.quota;
                let e = self.live.get_mut(path).unwrap();
                let Some(cur) = e.file else {
                    return Err(Error::IsADirectory);
                };
                let pos = e
                    .versions
                    .iter()
                    .position(|v| v.id == *version_id)
                    .ok_or(Error::NotFound)?;
                let (add, remove) = (SIZES[e.versions[pos].content], SIZES[cur]);
                if let Some(q) = quota {
                    if add > remove && live_bytes - remove + add > q {
                        return Err(Error::QuotaExceeded);
                    }
                }
                let v = e.versions.remove(pos);
                e.versions.push(MVer {
                    id: nv,
                    content: cur,
                    mtime: e.mtime,
                    superseded: *now,
                });
                e.file = Some(v.content);
                e.mtime = *now;
                self.next_version += 1;
                self.touch(&[path[..path.len() - 1].to_vec()], *now);
            }
            NsOp::Expire {
                now,
                version_age_max_ns,
                trash_age_max_ns,
            } => {
                if let Some(max) = version_age_max_ns {
                    let all = self
                        .live
                        .values_mut()
                        .chain(self.trash.iter_mut().flat_map(|t| t.entries.values_mut()));
                    for e in all {
                        e.versions.retain(|v| now - v.superseded <= *max);
                    }
                }
                if let Some(max) = trash_age_max_ns {
                    self.trash.retain(|t| now - t.deleted_at <= *max);
                }
            }
            NsOp::SetProps {
                path,
                set,
                remove,
                now,
            } => self.set_props(path, set, remove, *now)?,
            NsOp::SetPropsUntimed { path, set, remove } => {
                self.set_props(path, set, remove, i64::MIN)?
            }
            NsOp::SetQuota { bytes } => self.quota = *bytes,
        }
        Ok(())
    }

    fn set_props(
        &mut self,
        path: &P,
        set: &[(PropName, Vec<u8>)],
        remove: &[PropName],
        now: i64,
    ) -> Result<()> {
        {
            self.find(path)?;
            for (i, (n, _)) in set.iter().enumerate() {
                if set[..i].iter().any(|(m, _)| m == n) || remove.contains(n) {
                    return Err(Error::Invalid(""));
                }
            }
            let e = self.live.get_mut(path).unwrap();
            for (n, v) in set {
                e.props.insert(n.clone(), v.clone());
            }
            for n in remove {
                e.props.remove(n);
            }
            let dir = if e.file.is_some() {
                path[..path.len() - 1].to_vec()
            } else {
                path.clone()
            };
            self.touch(&[dir], now);
        }
        Ok(())
    }

    fn refcounts(&self) -> BTreeMap<[u8; 32], u32> {
        let mut m = BTreeMap::new();
        let all = self
            .live
            .values()
            .chain(self.trash.iter().flat_map(|t| t.entries.values()));
        for e in all {
            for c in e.file.iter().chain(e.versions.iter().map(|v| &v.content)) {
                *m.entry(content(*c).hash.0).or_insert(0) += 1;
            }
        }
        m
    }
}

/// Everything observable about the subtree at `root`, keyed by path relative to it.
fn observe(t: &SpaceTree, root: NodeId) -> BTreeMap<P, MEntry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(root, vec![])];
    while let Some((id, path)) = stack.pop() {
        let info = t.stat(id).unwrap();
        let file = info.content.as_ref().map(|c| (c.hash.0[0] - 1) as usize);
        match info.kind {
            Kind::File => {
                let c = info.content.as_ref().unwrap();
                assert_eq!(info.etag, Etag::Content(c.hash));
                assert_eq!(info.size, c.size);
            }
            Kind::Dir => {
                assert_eq!(
                    info.etag,
                    Etag::Dir {
                        node: id.0,
                        ctime: info.ctime,
                        mtime: info.mtime
                    }
                );
                for c in t.children(id) {
                    let mut p: P = path.clone();
                    p.push(Name::new(&t.stat(c).unwrap().name).unwrap());
                    stack.push((c, p));
                }
                let listed: Vec<NodeId> = t.list(id).iter().map(|e| e.id).collect();
                assert_eq!(listed, t.children(id).collect::<Vec<_>>());
            }
        }
        let props = t
            .props(id)
            .iter()
            .map(|p| (p.name.clone(), p.value.to_vec()))
            .collect();
        out.insert(
            path,
            MEntry {
                file,
                mtime: info.mtime,
                ctime: info.ctime,
                props,
                versions: vec![],
            },
        );
    }
    out
}

fn check(t: &SpaceTree, m: &Model, present: &BTreeSet<[u8; 32]>) {
    let mut live = observe(t, NodeId::ROOT);
    for (p, e) in live.iter_mut() {
        assert_eq!(t.resolve(p).and_then(|id| t.path_of(id)).as_ref(), Some(p));
        if e.file.is_some() {
            e.versions = t
                .versions(p)
                .unwrap()
                .into_iter()
                .map(|v| MVer {
                    id: v.id,
                    content: (v.content.hash.0[0] - 1) as usize,
                    mtime: v.mtime,
                    superseded: v.superseded_at,
                })
                .collect();
        }
    }
    assert_eq!(live, m.live);
    assert_eq!(t.entry_count(), m.live.len() as u64 - 1);
    assert_eq!(t.used_bytes(), m.live_bytes());
    assert_eq!(t.quota(), m.quota);
    let trash = t.trash();
    assert_eq!(trash.len(), m.trash.len());
    for (ti, mt) in trash.iter().zip(&m.trash) {
        assert_eq!(
            (ti.id, &ti.orig_path, ti.deleted_at),
            (mt.id, &mt.orig, mt.deleted_at)
        );
        assert_eq!(ti.bytes, mt.entries.values().map(size_of).sum::<u64>());
        assert_eq!(ti.entries, mt.entries.len() as u64);
        assert_eq!(t.path_of(ti.node), None);
        let seen = observe(t, ti.node);
        let strip = |m: &BTreeMap<P, MEntry>| -> Vec<(P, Option<usize>, i64, i64)> {
            m.iter()
                .map(|(k, e)| (k.clone(), e.file, e.mtime, e.ctime))
                .collect()
        };
        assert_eq!(strip(&seen), strip(&mt.entries));
    }
    let mut refs = BTreeMap::new();
    t.for_each_content(|c, r| {
        refs.insert(c.hash.0, r);
    });
    assert_eq!(refs, m.refcounts());
    assert_eq!(refs.keys().copied().collect::<BTreeSet<_>>(), *present);
}

fn path_s() -> impl Strategy<Value = P> {
    prop::collection::vec(0..NAMES.len(), 0..4).prop_map(|v| {
        v.into_iter()
            .map(|i| Name::new(NAMES[i]).unwrap())
            .collect()
    })
}

fn prop_name_s() -> impl Strategy<Value = PropName> {
    (0..3usize).prop_map(|i| PropName::new("urn:x", ["p", "q", "r"][i]))
}

#[derive(Clone, Debug)]
enum Gen {
    Mkdir(P),
    /// The last field: the client's mtime, if it gave one.
    Put(P, usize, u32, Option<i64>),
    Move(P, P, bool),
    Copy(P, P, bool),
    Delete(P),
    Restore(u64, Option<P>),
    Purge(u64),
    RestoreVersion(P, u64),
    Expire(Option<i64>, Option<i64>),
    /// The last field: logged with a time (or as a log from before propagation).
    Props(P, Vec<(PropName, Vec<u8>)>, Vec<PropName>, bool),
    Quota(Option<u64>),
    Snapshot,
}

fn gen_s() -> impl Strategy<Value = (Gen, i64)> {
    let g = prop_oneof![
        3 => path_s().prop_map(Gen::Mkdir),
        5 => (path_s(), 0..SIZES.len(), 0..3u32, prop::option::weighted(0.3, -5..20i64))
            .prop_map(|(p, c, k, m)| Gen::Put(p, c, k, m)),
        2 => (path_s(), path_s(), any::<bool>()).prop_map(|(a, b, o)| Gen::Move(a, b, o)),
        2 => (path_s(), path_s(), any::<bool>()).prop_map(|(a, b, o)| Gen::Copy(a, b, o)),
        2 => path_s().prop_map(Gen::Delete),
        2 => (1..8u64, prop::option::of(path_s())).prop_map(|(i, p)| Gen::Restore(i, p)),
        1 => (1..8u64).prop_map(Gen::Purge),
        2 => (path_s(), 1..12u64).prop_map(|(p, v)| Gen::RestoreVersion(p, v)),
        1 => (prop::option::of(0..200i64), prop::option::of(0..200i64))
            .prop_map(|(a, b)| Gen::Expire(a, b)),
        2 => (
            path_s(),
            prop::collection::vec((prop_name_s(), prop::collection::vec(any::<u8>(), 0..3)), 0..3),
            prop::collection::vec(prop_name_s(), 0..2),
            prop::bool::weighted(0.8)
        )
            .prop_map(|(p, s, r, timed)| Gen::Props(p, s, r, timed)),
        1 => prop::option::of(0..3000u64).prop_map(Gen::Quota),
        1 => Just(Gen::Snapshot),
    ];
    (g, 0..15i64)
}

fn to_op(g: Gen, now: i64) -> Option<NsOp> {
    Some(match g {
        Gen::Mkdir(path) => NsOp::Mkdir { path, now },
        Gen::Put(path, c, keep_versions, None) => NsOp::PutFile {
            path,
            content: content(c),
            now,
            keep_versions,
        },
        Gen::Put(path, c, keep_versions, Some(mtime)) => NsOp::PutFileAt {
            path,
            content: content(c),
            now,
            mtime,
            keep_versions,
        },
        Gen::Move(from, to, overwrite) => NsOp::Move {
            from,
            to,
            overwrite,
            now,
        },
        Gen::Copy(from, to, overwrite) => NsOp::Copy {
            from,
            to,
            overwrite,
            now,
        },
        Gen::Delete(path) => NsOp::Delete { path, now },
        Gen::Restore(trash_id, to) => NsOp::Restore { trash_id, to, now },
        Gen::Purge(trash_id) => NsOp::PurgeTrash { trash_id },
        Gen::RestoreVersion(path, version_id) => NsOp::RestoreVersion {
            path,
            version_id,
            now,
        },
        Gen::Expire(v, t) => NsOp::Expire {
            now,
            version_age_max_ns: v,
            trash_age_max_ns: t,
        },
        Gen::Props(path, set, remove, true) => NsOp::SetProps {
            path,
            set,
            remove,
            now,
        },
        Gen::Props(path, set, remove, false) => NsOp::SetPropsUntimed { path, set, remove },
        Gen::Quota(bytes) => NsOp::SetQuota { bytes },
        Gen::Snapshot => return None,
    })
}

fn run(ops: Vec<(Gen, i64)>) {
    let mut t = SpaceTree::new();
    let mut m = Model::new();
    let mut present = BTreeSet::new();
    for (step, (g, jitter)) in ops.into_iter().enumerate() {
        // Times mostly increase but sometimes go back (clock steps): mtimes must still move.
        let now = step as i64 * 10 - jitter;
        let Some(op) = to_op(g, now) else {
            let snap = t.to_snapshot();
            let bytes = encode_snapshot(&[("space".to_string(), snap.clone())]).unwrap();
            let mut back = decode_snapshot(&bytes).unwrap();
            assert_eq!(back.len(), 1);
            let (key, restored) = back.pop().unwrap();
            assert_eq!(key, "space");
            assert_eq!(restored.to_snapshot(), snap);
            t = restored;
            check(&t, &m, &present);
            continue;
        };
        let wire = postcard::to_allocvec(&op).unwrap();
        let op2: NsOp = postcard::from_bytes(&wire).unwrap();
        assert_eq!(op2, op);
        let before = t.to_snapshot();
        let got = t.apply(&op2);
        let want = m.apply(&op);
        match (&got, &want) {
            (Ok(fx), Ok(())) => {
                for c in &fx.added {
                    assert!(present.insert(c.hash.0), "added twice");
                }
                for c in &fx.dropped {
                    assert!(present.remove(&c.hash.0), "dropped absent");
                }
            }
            (Err(a), Err(b)) => {
                assert_eq!(discriminant(a), discriminant(b), "{op:?}: {a:?} vs {b:?}");
                assert_eq!(t.to_snapshot(), before, "failed op changed state: {op:?}");
            }
            _ => panic!("{op:?}: tree {got:?} model {want:?}"),
        }
        check(&t, &m, &present);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]
    #[test]
    fn tree_matches_model(ops in prop::collection::vec(gen_s(), 1..80)) {
        run(ops);
    }
}

// ---- change log (sync-collection) ----

/// What a sync client holds: path -> file content hash (`None` for a collection).
type View = BTreeMap<P, Option<[u8; 32]>>;

fn view(t: &SpaceTree, infinite: bool) -> View {
    let mut out = View::new();
    let mut stack = vec![(NodeId::ROOT, Vec::new())];
    while let Some((dir, path)) = stack.pop() {
        for e in t.list(dir) {
            let mut p = path.clone();
            p.push(Name::new(&e.name).unwrap());
            out.insert(p.clone(), e.content.as_ref().map(|c| c.hash.0));
            if e.kind == Kind::Dir && infinite {
                stack.push((e.id, p));
            }
        }
    }
    out
}

/// Applies one answer the way a client does: a removed collection takes its members along.
fn follow(client: &mut View, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Removed { path, .. } => client.retain(|p, _| !p.starts_with(path)),
            Change::Changed { path, info } => {
                client.insert(path.clone(), info.content.as_ref().map(|c| c.hash.0));
            }
        }
    }
}

/// A client that synced at step `at` and follows the changes since (in answers of at most
/// `limit` members) ends with the tree's present view; the log replayed from the same ops is
/// the live one (the same log, whatever snapshots came between), and it survives snapshots
/// (`Gen::Snapshot` steps).
fn run_sync(ops: Vec<(Gen, i64)>, at: usize, limit: usize, infinite: bool) {
    let mut t = SpaceTree::new();
    let mut replay = SpaceTree::new();
    let mut synced = None;
    for (step, (g, jitter)) in ops.into_iter().enumerate() {
        if step == at {
            synced = Some((t.sync_token(), view(&t, infinite)));
        }
        let now = step as i64 * 10 - jitter;
        match to_op(g, now) {
            None => {
                let bytes = encode_snapshot(&[("s".to_string(), t.to_snapshot())]).unwrap();
                t = decode_snapshot(&bytes).unwrap().pop().unwrap().1;
            }
            Some(op) => {
                let _ = t.apply(&op);
                let _ = replay.apply(&op);
            }
        }
    }
    assert_eq!(replay.to_snapshot().changes, t.to_snapshot().changes);
    let (mut cur, mut client) = synced.unwrap_or_else(|| (t.sync_token(), view(&t, infinite)));
    for _ in 0..1000 {
        match t.changes_since(cur, &[], infinite, limit) {
            Some(Changes::Since {
                changes,
                token,
                complete,
            }) => {
                assert!(changes.len() <= limit || token.seq == cur.seq + 1);
                follow(&mut client, &changes);
                cur = token;
                if complete {
                    assert_eq!(cur, t.sync_token());
                    assert_eq!(client, view(&t, infinite));
                    return;
                }
            }
            // Only a token of the empty space before its first change (new epoch).
            Some(Changes::Invalid) => {
                assert_eq!(cur.seq, 0);
                return;
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("answers never completed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]
    #[test]
    fn sync_changes_converge(
        ops in prop::collection::vec(gen_s(), 1..60),
        at in 0..60usize,
        limit in 1..6usize,
        infinite in any::<bool>(),
    ) {
        run_sync(ops, at, limit, infinite);
    }
}
