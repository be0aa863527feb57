//! rkyv snapshot of a space, and its validating restore.

use std::sync::Arc;

use hashbrown::HashSet;
use rkyv::rancor::{Fallible, Source};
use rkyv::ser::{Allocator, Writer};
use rkyv::tuple::ArchivedTuple2;
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::{Archive, Place, Serialize};

use super::changes::{epoch_of, ChangeLog, Entry, Removal};
use super::tree::{
    ContentTable, Interner, Node, Prop, SpaceTree, TrashEntry, Version, FILE_BIT, FREE, NIL, ROOT,
};
use super::{ChunkRef, Content, Name, PropName};
use crate::limits::{
    CHANGE_LOG_ENTRIES_MAX, PATH_DEPTH_MAX, PROPS_PER_ENTRY_MAX, PROP_NAME_LEN_MAX,
    PROP_VALUE_LEN_MAX, SPACE_NODES_MAX,
};
use crate::{ChunkId, ContentHash, Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapChunk {
    pub id: [u8; 32],
    pub len: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapContent {
    pub hash: [u8; 32],
    pub size: u64,
    pub chunks: Vec<SnapChunk>,
    /// References held by this space (files, versions, trash); must match a recount.
    pub refs: u32,
}

/// One node slot. Free slots have `parent == u32::MAX - 1` and an empty name; the root and
/// trash roots have `parent == u32::MAX`. `link` is 0 for directories and
/// `0x8000_0000 | content index` for files.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapNode {
    pub name: String,
    pub parent: u32,
    pub link: u32,
    pub mtime: i64,
    pub ctime: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapVersion {
    pub node: u32,
    pub id: u64,
    pub content: u32,
    pub mtime: i64,
    pub superseded: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapProp {
    pub node: u32,
    pub ns: String,
    pub local: String,
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapTrash {
    pub id: u64,
    pub root: u32,
    pub orig_path: Vec<String>,
    pub deleted_at: i64,
}

/// One change-log entry: `path` empty and `node` set for a change; `path` set for a removal.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapChange {
    pub node: u32,
    /// [`CHANGE_SUBTREE`], [`CHANGE_REMOVED`], [`CHANGE_DIR`].
    pub flags: u8,
    pub path: Vec<String>,
}

/// [`SnapChange::flags`]: a change of the node and everything below it.
pub const CHANGE_SUBTREE: u8 = 1;
/// [`SnapChange::flags`]: a removal of `path`.
pub const CHANGE_REMOVED: u8 = 2;
/// [`SnapChange::flags`]: the removed entry was a collection.
pub const CHANGE_DIR: u8 = 4;

/// The space's change log: the last entry has sequence number `seq`, the first
/// `seq - entries.len() + 1`.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapChanges {
    pub epoch: u64,
    pub seq: u64,
    pub entries: Vec<SnapChange>,
}

/// A whole space, slot for slot (format and validation: `docs/namespace.md`).
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SpaceSnapshot {
    pub nodes: Vec<SnapNode>,
    /// The free list, head first.
    pub free: Vec<u32>,
    pub contents: Vec<SnapContent>,
    /// Grouped by node, each node's versions oldest first.
    pub versions: Vec<SnapVersion>,
    /// Grouped by node, each node's properties sorted by (ns, local).
    pub props: Vec<SnapProp>,
    /// Sorted by id.
    pub trash: Vec<SnapTrash>,
    pub next_trash_id: u64,
    pub next_version_id: u64,
    pub quota: Option<u64>,
    pub changes: SnapChanges,
}

/// [`SpaceSnapshot`] as written before the change log (shard snapshots `SKABSNP1`).
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SpaceSnapshotV1 {
    pub nodes: Vec<SnapNode>,
    pub free: Vec<u32>,
    pub contents: Vec<SnapContent>,
    pub versions: Vec<SnapVersion>,
    pub props: Vec<SnapProp>,
    pub trash: Vec<SnapTrash>,
    pub next_trash_id: u64,
    pub next_version_id: u64,
    pub quota: Option<u64>,
}

impl From<SpaceSnapshotV1> for SpaceSnapshot {
    /// An empty change log whose epoch is derived from the old state (so that loading the
    /// same old snapshot again, after a crash, gives the same epoch).
    fn from(v: SpaceSnapshotV1) -> SpaceSnapshot {
        let root = v.nodes.first().map_or(0, |n| n.mtime as u64);
        let mix = root
            ^ (v.nodes.len() as u64).rotate_left(40)
            ^ v.next_trash_id.rotate_left(20)
            ^ v.next_version_id;
        SpaceSnapshot {
            nodes: v.nodes,
            free: v.free,
            contents: v.contents,
            versions: v.versions,
            props: v.props,
            trash: v.trash,
            next_trash_id: v.next_trash_id,
            next_version_id: v.next_version_id,
            quota: v.quota,
            changes: SnapChanges {
                epoch: epoch_of(mix),
                seq: 0,
                entries: Vec::new(),
            },
        }
    }
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("space snapshot: {what}"))
}

impl SpaceTree {
    /// Captures the whole space (live tree, trash, versions, props, counters).
    pub fn to_snapshot(&self) -> SpaceSnapshot {
        let mut cmap = vec![u32::MAX; self.contents.slots.len()];
        let mut contents = Vec::new();
        for (i, s) in self.contents.slots.iter().enumerate() {
            if let Some(c) = &s.content {
                cmap[i] = contents.len() as u32;
                contents.push(SnapContent {
                    hash: c.hash.0,
                    size: c.size,
                    chunks: c
                        .chunks
                        .iter()
                        .map(|r| SnapChunk {
                            id: r.id.0,
                            len: r.len,
                        })
                        .collect(),
                    refs: s.refs,
                });
            }
        }
        let nodes = self
            .nodes
            .iter()
            .map(|n| SnapNode {
                name: n.name.to_string(),
                parent: n.parent,
                link: match n.content_slot() {
                    Some(c) => FILE_BIT | cmap[c as usize],
                    None => 0,
                },
                mtime: n.mtime,
                ctime: n.ctime,
            })
            .collect();
        let mut free = Vec::new();
        let mut f = self.free_head;
        while f != 0 {
            free.push(f);
            f = self.nodes[f as usize].next;
        }
        let cmap = &cmap;
        let mut vkeys: Vec<u32> = self.versions.keys().copied().collect();
        vkeys.sort_unstable();
        let versions = vkeys
            .iter()
            .flat_map(|&k| {
                self.versions[&k].iter().map(move |v| SnapVersion {
                    node: k,
                    id: v.id,
                    content: cmap[v.content as usize],
                    mtime: v.mtime,
                    superseded: v.superseded,
                })
            })
            .collect();
        let mut pkeys: Vec<u32> = self.props.keys().copied().collect();
        pkeys.sort_unstable();
        let props = pkeys
            .iter()
            .flat_map(|&k| {
                self.props[&k].iter().map(move |p| SnapProp {
                    node: k,
                    ns: p.name.ns.to_string(),
                    local: p.name.local.to_string(),
                    value: p.value.to_vec(),
                })
            })
            .collect();
        let trash = self
            .trash
            .iter()
            .map(|e| SnapTrash {
                id: e.id,
                root: e.root,
                orig_path: e.orig_path.iter().map(|n| n.as_str().to_string()).collect(),
                deleted_at: e.deleted_at,
            })
            .collect();
        SpaceSnapshot {
            nodes,
            free,
            contents,
            versions,
            props,
            trash,
            next_trash_id: self.next_trash_id,
            next_version_id: self.next_version_id,
            quota: self.quota,
            changes: SnapChanges {
                epoch: self.changes.epoch,
                seq: self.changes.seq,
                entries: self
                    .changes
                    .entries
                    .iter()
                    .map(|e| match e {
                        Entry::Changed { node, subtree } => SnapChange {
                            node: *node,
                            flags: if *subtree { CHANGE_SUBTREE } else { 0 },
                            path: Vec::new(),
                        },
                        Entry::Removed(r) => SnapChange {
                            node: 0,
                            flags: CHANGE_REMOVED | if r.dir { CHANGE_DIR } else { 0 },
                            path: r.path.iter().map(|n| n.as_str().to_string()).collect(),
                        },
                    })
                    .collect(),
            },
        }
    }

    /// Rebuilds a space from a validated-by-rkyv archive, checking every semantic invariant;
    /// any violation is `Error::Corrupt`.
    pub fn from_archived(a: &ArchivedSpaceSnapshot) -> Result<SpaceTree> {
        Self::from_archived_with(a, &mut |c: &Content| Arc::new(c.clone()))
    }

    /// [`SpaceTree::from_archived`], with `intern` making the shared `Arc` of each content.
    pub fn from_archived_with(
        a: &ArchivedSpaceSnapshot,
        intern: Interner<'_>,
    ) -> Result<SpaceTree> {
        let n = a.nodes.len();
        if n == 0 || n > SPACE_NODES_MAX {
            return Err(corrupt("node count"));
        }
        let next_trash_id = a.next_trash_id.to_native();
        let next_version_id = a.next_version_id.to_native();
        if next_trash_id == 0 || next_version_id == 0 {
            return Err(corrupt("id counters"));
        }

        // Contents, interned with zero references; recounted below.
        let mut t = SpaceTree::new();
        let mut contents = ContentTable::default();
        let mut fx = super::Effects::default();
        for c in a.contents.iter() {
            let content = Content {
                hash: ContentHash(c.hash),
                size: c.size.to_native(),
                chunks: c
                    .chunks
                    .iter()
                    .map(|r| ChunkRef {
                        id: ChunkId(r.id),
                        len: r.len.to_native(),
                    })
                    .collect(),
            };
            content
                .validate()
                .map_err(|_| corrupt("content description"))?;
            let before = contents.slots.len();
            let s = contents.add_arc(intern(&content), &mut fx);
            if s as usize != before {
                return Err(corrupt("duplicate content"));
            }
            contents.slots[s as usize].refs = 0;
        }
        let nc = contents.slots.len() as u32;

        // Nodes: per-slot checks.
        let root = &a.nodes[0];
        if root.parent.to_native() != NIL || root.link.to_native() != 0 || !root.name.is_empty() {
            return Err(corrupt("root node"));
        }
        let mut nodes = Vec::with_capacity(n);
        let mut free_slots = 0usize;
        for (i, sn) in a.nodes.iter().enumerate() {
            let parent = sn.parent.to_native();
            let link = sn.link.to_native();
            if parent == FREE {
                free_slots += 1;
                if i == 0 || link != 0 || !sn.name.is_empty() {
                    return Err(corrupt("free slot"));
                }
            } else if i != 0 {
                if !Name::is_canonical(sn.name.as_str()) {
                    return Err(corrupt("invalid name"));
                }
                if parent != NIL {
                    let p = a
                        .nodes
                        .get(parent as usize)
                        .ok_or_else(|| corrupt("parent"))?;
                    if parent as usize == i
                        || p.parent.to_native() == FREE
                        || p.link.to_native() != 0
                    {
                        return Err(corrupt("parent is not a directory"));
                    }
                }
            }
            if link != 0 {
                if link & FILE_BIT == 0 || link & !FILE_BIT >= nc {
                    return Err(corrupt("file content reference"));
                }
                let c = link & !FILE_BIT;
                contents.slots[c as usize].refs += 1;
            }
            nodes.push(Node {
                name: sn.name.as_str().into(),
                mtime: sn.mtime.to_native(),
                ctime: sn.ctime.to_native(),
                parent,
                next: 0,
                prev: 0,
                link: if link & FILE_BIT != 0 { link } else { 0 },
            });
        }

        // Free list.
        if a.free.len() != free_slots {
            return Err(corrupt("free list length"));
        }
        let mut seen = HashSet::new();
        for f in a.free.iter() {
            let f = f.to_native();
            if nodes.get(f as usize).map(|x| x.parent) != Some(FREE) || !seen.insert(f) {
                return Err(corrupt("free list entry"));
            }
        }
        for w in a.free.windows(2) {
            nodes[w[0].to_native() as usize].next = w[1].to_native();
        }
        if let Some(last) = a.free.last() {
            nodes[last.to_native() as usize].next = 0;
        }
        t.free_head = a.free.first().map_or(0, |f| f.to_native());
        t.free_count = free_slots as u32;

        // Trash: every detached node but the root is exactly one trash root.
        let mut trash = Vec::with_capacity(a.trash.len());
        let mut trash_of = vec![u32::MAX; n];
        let mut prev_id = 0u64;
        for (ti, e) in a.trash.iter().enumerate() {
            let id = e.id.to_native();
            let r = e.root.to_native();
            if id <= prev_id || id >= next_trash_id {
                return Err(corrupt("trash ids"));
            }
            prev_id = id;
            if r == ROOT || nodes.get(r as usize).map(|x| x.parent) != Some(NIL) {
                return Err(corrupt("trash root"));
            }
            if trash_of[r as usize] != u32::MAX {
                return Err(corrupt("trash root listed twice"));
            }
            trash_of[r as usize] = ti as u32;
            if e.orig_path.is_empty() || e.orig_path.len() > PATH_DEPTH_MAX {
                return Err(corrupt("trash original path"));
            }
            let mut orig = Vec::with_capacity(e.orig_path.len());
            for c in e.orig_path.iter() {
                if !Name::is_canonical(c.as_str()) {
                    return Err(corrupt("trash original path name"));
                }
                orig.push(Name::from_canonical(c.as_str().into()));
            }
            trash.push(TrashEntry {
                id,
                root: r,
                orig_path: orig.into(),
                deleted_at: e.deleted_at.to_native(),
                bytes: 0,
                count: 0,
            });
        }
        for (i, x) in nodes.iter().enumerate() {
            if i != 0 && x.parent == NIL && trash_of[i] == u32::MAX {
                return Err(corrupt("detached node outside the trash"));
            }
        }

        // Acyclic: every node reaches the root or a trash root. `top` holds the trash index
        // (or TOP_LIVE) once known.
        const UNKNOWN: u32 = u32::MAX;
        const VISITING: u32 = u32::MAX - 1;
        const TOP_LIVE: u32 = u32::MAX - 2;
        let mut top = vec![UNKNOWN; n];
        let mut stack = Vec::new();
        for i in 0..n {
            if nodes[i].parent == FREE || top[i] != UNKNOWN {
                continue;
            }
            let mut c = i;
            let found = loop {
                match top[c] {
                    UNKNOWN => {}
                    VISITING => return Err(corrupt("cycle in parent links")),
                    t => break t,
                }
                if nodes[c].parent == NIL {
                    break if c == 0 { TOP_LIVE } else { trash_of[c] };
                }
                top[c] = VISITING;
                stack.push(c);
                c = nodes[c].parent as usize;
            };
            top[c] = found;
            for s in stack.drain(..) {
                top[s] = found;
            }
        }

        // Versions (and their references).
        let mut vids = HashSet::new();
        for v in a.versions.iter() {
            let node = v.node.to_native();
            let id = v.id.to_native();
            let c = v.content.to_native();
            if nodes
                .get(node as usize)
                .is_none_or(|x| x.parent == FREE || x.link == 0)
            {
                return Err(corrupt("version of a non-file"));
            }
            if id >= next_version_id || !vids.insert(id) || c >= nc {
                return Err(corrupt("version entry"));
            }
            contents.slots[c as usize].refs += 1;
            let list = t.versions.entry(node).or_default();
            if list.last().is_some_and(|l: &Version| l.id >= id) {
                return Err(corrupt("version order"));
            }
            list.push(Version {
                id,
                content: c,
                mtime: v.mtime.to_native(),
                superseded: v.superseded.to_native(),
            });
        }
        for (i, c) in a.contents.iter().enumerate() {
            if contents.slots[i].refs != c.refs.to_native() || c.refs.to_native() == 0 {
                return Err(corrupt("content reference count"));
            }
        }

        // Properties.
        for p in a.props.iter() {
            let node = p.node.to_native();
            if !matches!(nodes.get(node as usize), Some(x) if x.parent != FREE) {
                return Err(corrupt("property of a free slot"));
            }
            if p.local.is_empty()
                || p.ns.len() + p.local.len() > PROP_NAME_LEN_MAX
                || p.value.len() > PROP_VALUE_LEN_MAX
            {
                return Err(corrupt("property size"));
            }
            let name = PropName::new(p.ns.as_str(), p.local.as_str());
            let list = t.props.entry(node).or_default();
            if list.last().is_some_and(|l: &Prop| l.name >= name)
                || list.len() >= PROPS_PER_ENTRY_MAX
            {
                return Err(corrupt("property order or count"));
            }
            list.push(Prop {
                name,
                value: p.value.as_slice().into(),
            });
        }

        // Counters, per-trash-item totals.
        let (mut live_count, mut live_bytes) = (0u64, 0u64);
        for (i, x) in nodes.iter().enumerate() {
            if x.parent == FREE {
                continue;
            }
            let size = if x.link & FILE_BIT != 0 {
                contents.get(x.link & !FILE_BIT).size
            } else {
                0
            };
            if top[i] == TOP_LIVE {
                if i != 0 {
                    live_count += 1;
                    live_bytes += size;
                }
            } else {
                let e = trash
                    .get_mut(top[i] as usize)
                    .ok_or_else(|| corrupt("trash membership"))?;
                e.count += 1;
                e.bytes += size;
            }
        }

        // Link children and build the name index, refusing duplicate names.
        t.nodes = nodes;
        t.reserve_names(n);
        for i in 1..n as u32 {
            let p = t.nodes[i as usize].parent;
            if p == FREE || p == NIL {
                continue;
            }
            t.nodes[i as usize].parent = NIL;
            if t.child_slot(p, i) {
                return Err(corrupt("duplicate name in a directory"));
            }
            t.link(i, p);
        }
        t.contents = contents;
        t.trash = trash;
        t.next_trash_id = next_trash_id;
        t.next_version_id = next_version_id;
        t.quota = a.quota.as_ref().map(|q| q.to_native());
        t.live_count = live_count;
        t.live_bytes = live_bytes;
        t.changes = changes_from(&a.changes, n)?;
        Ok(t)
    }

    /// True when `parent` already has a child named like slot `s`.
    fn child_slot(&self, parent: u32, s: u32) -> bool {
        self.child(
            crate::NodeId(parent),
            &Name::from_canonical((*self.nodes[s as usize].name).into()),
        )
        .is_some()
    }
}

/// The change log of a snapshot, checked: at most [`CHANGE_LOG_ENTRIES_MAX`] entries, no
/// more than the sequence number, nodes in range (a node may since be free or in the trash:
/// queries skip those), removal paths valid.
fn changes_from(a: &ArchivedSnapChanges, nodes: usize) -> Result<ChangeLog> {
    let seq = a.seq.to_native();
    let epoch = a.epoch.to_native();
    if a.entries.len() > CHANGE_LOG_ENTRIES_MAX || (a.entries.len() as u64) > seq {
        return Err(corrupt("change log length"));
    }
    if epoch == 0 && seq != 0 {
        return Err(corrupt("change log epoch"));
    }
    let mut entries = std::collections::VecDeque::with_capacity(a.entries.len());
    for e in a.entries.iter() {
        let node = e.node.to_native();
        let flags = e.flags;
        if flags & !(CHANGE_SUBTREE | CHANGE_REMOVED | CHANGE_DIR) != 0 {
            return Err(corrupt("change flags"));
        }
        if flags & CHANGE_REMOVED == 0 {
            if node as usize >= nodes || flags & CHANGE_DIR != 0 || !e.path.is_empty() {
                return Err(corrupt("change entry"));
            }
            entries.push_back(Entry::Changed {
                node,
                subtree: flags & CHANGE_SUBTREE != 0,
            });
        } else {
            if node != 0
                || flags & CHANGE_SUBTREE != 0
                || e.path.is_empty()
                || e.path.len() > PATH_DEPTH_MAX
            {
                return Err(corrupt("removal entry"));
            }
            let mut path = Vec::with_capacity(e.path.len());
            for c in e.path.iter() {
                if !Name::is_canonical(c.as_str()) {
                    return Err(corrupt("removal path name"));
                }
                path.push(Name::from_canonical(c.as_str().into()));
            }
            entries.push_back(Entry::Removed(Box::new(Removal {
                path: path.into(),
                dir: flags & CHANGE_DIR != 0,
            })));
        }
    }
    Ok(ChangeLog {
        epoch,
        seq,
        entries,
    })
}

/// Borrowed slice serialized as an rkyv `Vec` (avoids cloning every space to encode).
struct SliceRef<'a, T>(&'a [T]);

impl<T: Archive> Archive for SliceRef<'_, T> {
    type Archived = ArchivedVec<T::Archived>;
    type Resolver = VecResolver;
    fn resolve(&self, resolver: VecResolver, out: Place<Self::Archived>) {
        ArchivedVec::resolve_from_slice(self.0, resolver, out);
    }
}

impl<T: Serialize<S>, S: Fallible + Allocator + Writer + ?Sized> Serialize<S> for SliceRef<'_, T> {
    fn serialize(&self, s: &mut S) -> Result<VecResolver, S::Error> {
        ArchivedVec::<T::Archived>::serialize_from_slice(self.0, s)
    }
}

/// The archived form of [`encode_snapshot`]'s output.
pub type ArchivedSpaces =
    ArchivedVec<ArchivedTuple2<rkyv::string::ArchivedString, ArchivedSpaceSnapshot>>;

/// Serializes spaces (keyed by the store's space key) into one rkyv buffer.
pub fn encode_snapshot(spaces: &[(String, SpaceSnapshot)]) -> Result<Vec<u8>> {
    rkyv::to_bytes::<rkyv::rancor::Error>(&SliceRef(spaces))
        .map(|v| v.into_vec())
        .map_err(|e| Error::Invalid(leak_free(e)))
}

fn leak_free<E: Source>(_e: E) -> &'static str {
    "snapshot serialization failed"
}

/// Checks (rkyv validation, then semantic validation) and rebuilds every space.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Vec<(String, SpaceTree)>> {
    decode_snapshot_with(bytes, &mut |c: &Content| Arc::new(c.clone()))
}

/// [`decode_snapshot`] with a content interner shared by all spaces.
pub fn decode_snapshot_with(
    bytes: &[u8],
    intern: Interner<'_>,
) -> Result<Vec<(String, SpaceTree)>> {
    let mut aligned = rkyv::util::AlignedVec::<16>::new();
    let bytes = if bytes.as_ptr().align_offset(16) == 0 {
        bytes
    } else {
        aligned.extend_from_slice(bytes);
        &aligned[..]
    };
    let spaces = rkyv::access::<ArchivedSpaces, rkyv::rancor::Error>(bytes)
        .map_err(|e| Error::Corrupt(format!("space snapshot: {e}")))?;
    spaces
        .iter()
        .map(|e| {
            Ok((
                e.0.as_str().to_string(),
                SpaceTree::from_archived_with(&e.1, intern)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns::{parse_path, NsOp};

    fn p(s: &str) -> Vec<Name> {
        parse_path(s).unwrap()
    }

    fn content(b: u8, size: u32) -> Content {
        Content {
            hash: ContentHash([b; 32]),
            size: u64::from(size),
            chunks: vec![ChunkRef {
                id: ChunkId([b; 32]),
                len: size,
            }]
            .into(),
        }
    }

    fn sample() -> SpaceTree {
        let mut t = SpaceTree::new();
        let ops = [
            NsOp::Mkdir {
                path: p("d"),
                now: 1,
            },
            NsOp::PutFile {
                path: p("d/f"),
                content: content(1, 5),
                now: 2,
                keep_versions: 3,
            },
            NsOp::PutFile {
                path: p("d/f"),
                content: content(2, 7),
                now: 3,
                keep_versions: 3,
            },
            NsOp::PutFile {
                path: p("g"),
                content: content(1, 5),
                now: 4,
                keep_versions: 3,
            },
            NsOp::Delete {
                path: p("g"),
                now: 5,
            },
            NsOp::PutFile {
                path: p("h"),
                content: content(3, 9),
                now: 6,
                keep_versions: 3,
            },
            NsOp::Delete {
                path: p("h"),
                now: 7,
            },
            NsOp::PurgeTrash { trash_id: 2 },
            NsOp::SetProps {
                path: p("d"),
                set: vec![(PropName::new("u", "x"), b"<v/>".to_vec())],
                remove: vec![],
                now: 9,
            },
        ];
        for op in &ops {
            t.apply(op).unwrap();
        }
        t
    }

    type Mutation = Box<dyn Fn(&mut SpaceSnapshot)>;

    fn roundtrip(s: &SpaceSnapshot) -> Result<SpaceTree> {
        let bytes = encode_snapshot(&[("k".into(), s.clone())])?;
        decode_snapshot(&bytes).map(|mut v| v.pop().unwrap().1)
    }

    #[test]
    fn roundtrip_keeps_state_and_counters() {
        let t = sample();
        let snap = t.to_snapshot();
        let mut r = roundtrip(&snap).unwrap();
        assert_eq!(r.to_snapshot(), snap);
        assert_eq!(r.used_bytes(), 7);
        assert_eq!(r.trash().len(), 1);
        // Trash ids continue after restore.
        r.apply(&NsOp::Delete {
            path: p("d"),
            now: 9,
        })
        .unwrap();
        assert_eq!(r.trash().last().unwrap().id, 3);
    }

    #[test]
    fn misaligned_input_is_accepted() {
        let bytes = encode_snapshot(&[("k".into(), sample().to_snapshot())]).unwrap();
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(decode_snapshot(&shifted[1..]).unwrap().len(), 1);
    }

    #[test]
    fn garbage_bytes_are_corrupt() {
        let bytes = encode_snapshot(&[("k".into(), sample().to_snapshot())]).unwrap();
        for cut in [0, 1, bytes.len() / 2] {
            let r = decode_snapshot(&bytes[..cut]);
            assert!(matches!(r, Err(Error::Corrupt(_))), "{cut}");
        }
    }

    #[test]
    fn semantic_violations_are_corrupt() {
        let good = sample().to_snapshot();
        let file = good.nodes.iter().position(|n| n.name == "f").unwrap() as u32;
        let dir = good.nodes.iter().position(|n| n.name == "d").unwrap() as u32;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "cycle",
                Box::new(move |s| s.nodes[dir as usize].parent = dir),
            ),
            (
                "parent is file",
                Box::new(move |s| s.nodes[dir as usize].parent = file),
            ),
            (
                "bad name",
                Box::new(move |s| s.nodes[dir as usize].name = "a/b".into()),
            ),
            (
                "nfd name",
                Box::new(move |s| s.nodes[dir as usize].name = "a\u{30a}".into()),
            ),
            (
                "dup name",
                Box::new(move |s| {
                    s.nodes[file as usize].parent = 0;
                    s.nodes[file as usize].name = "d".into();
                }),
            ),
            (
                "dangling content",
                Box::new(move |s| s.nodes[file as usize].link = FILE_BIT | 99),
            ),
            ("refcount", Box::new(|s| s.contents[0].refs += 1)),
            (
                "parent out of range",
                Box::new(move |s| s.nodes[file as usize].parent = 1000),
            ),
            (
                "detached",
                Box::new(move |s| s.nodes[dir as usize].parent = NIL),
            ),
            ("trash id", Box::new(|s| s.next_trash_id = 1)),
            ("version id", Box::new(|s| s.next_version_id = 1)),
            ("no root", Box::new(|s| s.nodes.clear())),
            ("free list", Box::new(|s| s.free.clear())),
            (
                "dup content",
                Box::new(|s| {
                    let c = s.contents[0].clone();
                    s.contents.push(c)
                }),
            ),
            ("size mismatch", Box::new(|s| s.contents[0].size += 1)),
        ];
        assert!(roundtrip(&good).is_ok());
        for (what, f) in cases {
            let mut s = good.clone();
            f(&mut s);
            assert!(matches!(roundtrip(&s), Err(Error::Corrupt(_))), "{what}");
        }
    }
}
