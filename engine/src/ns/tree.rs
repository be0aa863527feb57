//! `SpaceTree`: one space's namespace in memory (node slab, child index, interned contents).

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use super::changes::ChangeLog;
use super::{Content, Name, NsOp, PropName};
use crate::limits::{
    PATH_DEPTH_MAX, PROPS_PER_ENTRY_MAX, PROP_NAME_LEN_MAX, PROP_VALUE_LEN_MAX, SPACE_NODES_MAX,
};
use crate::{ContentHash, Error, NodeId, Result};

/// `parent` of the root and of trash roots.
pub(super) const NIL: u32 = u32::MAX;
/// `parent` of a slot on the free list.
pub(super) const FREE: u32 = u32::MAX - 1;
/// Set in `link` for files; the rest is the content slot.
pub(super) const FILE_BIT: u32 = 1 << 31;
pub(super) const ROOT: u32 = 0;

/// Bytes of a name kept inside the node; longer names go to the heap.
const NAME_INLINE: usize = 30;

/// A node's name: inline when short (most file names), boxed otherwise. Saves a heap
/// allocation and a cache miss per lookup for short names.
#[derive(Clone)]
pub(super) enum NameBuf {
    Inline(u8, [u8; NAME_INLINE]),
    Heap(Box<str>),
}

const _: () = assert!(std::mem::size_of::<NameBuf>() == 32);

impl NameBuf {
    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            NameBuf::Inline(len, buf) => &buf[..*len as usize],
            NameBuf::Heap(b) => b.as_bytes(),
        }
    }
}

impl From<&str> for NameBuf {
    fn from(s: &str) -> NameBuf {
        if s.len() <= NAME_INLINE {
            let mut buf = [0u8; NAME_INLINE];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            NameBuf::Inline(s.len() as u8, buf)
        } else {
            NameBuf::Heap(s.into())
        }
    }
}

impl std::ops::Deref for NameBuf {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            // Inline bytes are a whole `&str` copied in, so always UTF-8.
            NameBuf::Inline(..) => std::str::from_utf8(self.as_bytes()).unwrap_or(""),
            NameBuf::Heap(b) => b,
        }
    }
}

/// One slot of the slab. Sibling links use 0 for "none" (the root is never a sibling).
pub(super) struct Node {
    pub(super) name: NameBuf,
    pub(super) mtime: i64,
    pub(super) ctime: i64,
    /// Parent slot; [`NIL`] for the root and trash roots, [`FREE`] on the free list.
    pub(super) parent: u32,
    /// Next sibling (0 = none); on the free list, the next free slot (0 = end).
    pub(super) next: u32,
    pub(super) prev: u32,
    /// Directory: first child (0 = none). File: `FILE_BIT | content slot`.
    pub(super) link: u32,
}

const _: () = assert!(std::mem::size_of::<Node>() == 64);

impl Node {
    pub(super) fn is_file(&self) -> bool {
        self.link & FILE_BIT != 0
    }
    pub(super) fn content_slot(&self) -> Option<u32> {
        self.is_file().then_some(self.link & !FILE_BIT)
    }
}

/// One interned content and how many references (files, versions, trash) this space holds.
pub(super) struct CSlot {
    pub(super) content: Option<Arc<Content>>,
    pub(super) refs: u32,
}

/// The space's contents, interned by hash, with reference counts.
#[derive(Default)]
pub(super) struct ContentTable {
    pub(super) slots: Vec<CSlot>,
    pub(super) free: Vec<u32>,
    pub(super) index: HashTable<Keyed>,
}

/// An entry of the name and content indexes: a slot and 32 bits of its key's hash, so that
/// growing a table never looks at the keys again (rehashing 460,000 names from the nodes took
/// ~77 ms, on a serving thread, holding the space's write lock), and most probes that miss are
/// told apart without touching the node.
#[derive(Clone, Copy)]
pub(super) struct Keyed {
    slot: u32,
    hash: u32,
}

/// 32 bits of a 64-bit hash, as kept in [`Keyed`].
fn narrow(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

/// The table hash of a [`Keyed`] entry: an odd multiple, so distinct narrowed hashes stay
/// distinct and the high bits (hashbrown's tag) depend on all 32.
fn widen(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn hash_key(h: &ContentHash) -> u64 {
    // The content hash is a keyed cryptographic hash already: its first bytes are uniform.
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.0[..8]);
    u64::from_le_bytes(b)
}

impl ContentTable {
    pub(super) fn get(&self, slot: u32) -> &Arc<Content> {
        match &self.slots[slot as usize].content {
            Some(c) => c,
            None => panic!("content slot {slot} is free but referenced"),
        }
    }

    fn find(&self, hash: &ContentHash) -> Option<u32> {
        let slots = &self.slots;
        let k = narrow(hash_key(hash));
        self.index
            .find(widen(k), |e| {
                e.hash == k
                    && slots[e.slot as usize]
                        .content
                        .as_ref()
                        .is_some_and(|c| c.hash == *hash)
            })
            .map(|e| e.slot)
    }

    /// Adds one reference to `arc`'s content (interning it if new).
    pub(super) fn add_arc(&mut self, arc: Arc<Content>, fx: &mut Effects) -> u32 {
        if let Some(s) = self.find(&arc.hash) {
            self.slots[s as usize].refs += 1;
            return s;
        }
        fx.added.push(arc.clone());
        let key = narrow(hash_key(&arc.hash));
        let slot = CSlot {
            content: Some(arc),
            refs: 1,
        };
        let s = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = slot;
                s
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.index
            .insert_unique(widen(key), Keyed { slot: s, hash: key }, |e| widen(e.hash));
        s
    }

    fn add(&mut self, c: &Content, intern: Interner<'_>, fx: &mut Effects) -> u32 {
        if let Some(s) = self.find(&c.hash) {
            self.slots[s as usize].refs += 1;
            return s;
        }
        let arc = intern(c);
        debug_assert_eq!(arc.hash, c.hash);
        self.add_arc(arc, fx)
    }

    fn incref(&mut self, s: u32) {
        self.slots[s as usize].refs += 1;
    }

    fn decref(&mut self, s: u32, fx: &mut Effects) {
        let slot = &mut self.slots[s as usize];
        assert!(slot.refs > 0, "content refcount underflow");
        slot.refs -= 1;
        if slot.refs == 0 {
            if let Some(c) = slot.content.take() {
                let k = narrow(hash_key(&c.hash));
                if let Ok(e) = self.index.find_entry(widen(k), |e| e.slot == s) {
                    e.remove();
                }
                fx.dropped.push(c);
            }
            self.free.push(s);
        }
    }

    pub(super) fn live(&self) -> impl Iterator<Item = (&Arc<Content>, u32)> {
        self.slots
            .iter()
            .filter_map(|s| s.content.as_ref().map(|c| (c, s.refs)))
    }
}

/// An old content of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Version {
    pub(super) id: u64,
    pub(super) content: u32,
    /// The file's mtime while this content was current.
    pub(super) mtime: i64,
    /// When it stopped being current.
    pub(super) superseded: i64,
}

/// A dead property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prop {
    pub name: PropName,
    pub value: Box<[u8]>,
}

/// A deleted entry or subtree, detached from the tree but kept whole.
pub(super) struct TrashEntry {
    pub(super) id: u64,
    pub(super) root: u32,
    pub(super) orig_path: Box<[Name]>,
    pub(super) deleted_at: i64,
    /// Logical bytes of the files inside, and entries inside (computed at delete time).
    pub(super) bytes: u64,
    pub(super) count: u64,
}

/// What an op did to the space's content reference counts (for the store's chunk refcounts).
#[derive(Default, Debug)]
pub struct Effects {
    /// Contents whose count in this space went 0 -> 1.
    pub added: Vec<Arc<Content>>,
    /// Contents whose count in this space went 1 -> 0.
    pub dropped: Vec<Arc<Content>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Dir,
    File,
}

/// Entity tag: a file's content hash, or for a directory its identity and its mtime, which
/// strictly increases whenever its set of children changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Etag {
    Content(ContentHash),
    Dir { node: u32, ctime: i64, mtime: i64 },
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Etag::Content(h) => write!(f, "{h}"),
            Etag::Dir { node, ctime, mtime } => write!(f, "d{node:x}-{ctime:x}-{mtime:x}"),
        }
    }
}

/// What `stat`/`list` report about one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    pub id: NodeId,
    /// Empty for the root.
    pub name: String,
    pub kind: Kind,
    /// Logical bytes (0 for directories).
    pub size: u64,
    pub mtime: i64,
    pub ctime: i64,
    pub etag: Etag,
    pub content: Option<Arc<Content>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub id: u64,
    pub content: Arc<Content>,
    pub mtime: i64,
    pub superseded_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrashInfo {
    pub id: u64,
    pub node: NodeId,
    pub name: String,
    pub kind: Kind,
    pub orig_path: Vec<Name>,
    pub deleted_at: i64,
    /// Logical bytes of the files inside.
    pub bytes: u64,
    /// Entries inside, the trashed entry included.
    pub entries: u64,
}

/// Turns a content description into the shared `Arc` the space keeps (lets a store share
/// one allocation per content across spaces).
pub type Interner<'a> = &'a mut dyn FnMut(&Content) -> Arc<Content>;

/// One space's namespace. Pure and deterministic: see `docs/namespace.md`.
pub struct SpaceTree {
    pub(super) nodes: Vec<Node>,
    pub(super) free_head: u32,
    pub(super) free_count: u32,
    pub(super) names: HashTable<Keyed>,
    pub(super) hasher: DefaultHashBuilder,
    pub(super) contents: ContentTable,
    pub(super) versions: HashMap<u32, Vec<Version>>,
    pub(super) props: HashMap<u32, Vec<Prop>>,
    pub(super) trash: Vec<TrashEntry>,
    pub(super) next_trash_id: u64,
    pub(super) next_version_id: u64,
    pub(super) quota: Option<u64>,
    /// Quota applied while the space has none of its own (the store's configured default);
    /// not part of the space's state: never logged or snapshotted, set before each op.
    pub(super) default_quota: Option<u64>,
    pub(super) live_count: u64,
    pub(super) live_bytes: u64,
    /// What changed lately, for `sync-collection` (`ns/changes.rs`).
    pub(super) changes: ChangeLog,
}

impl Default for SpaceTree {
    fn default() -> Self {
        Self::new()
    }
}

fn name_hash(h: &DefaultHashBuilder, parent: u32, name: &str) -> u64 {
    h.hash_one((parent, name))
}

fn check_depth(path: &[Name]) -> Result<()> {
    if path.len() > PATH_DEPTH_MAX {
        return Err(Error::LimitExceeded("path depth"));
    }
    Ok(())
}

impl SpaceTree {
    /// An empty space: just the root collection (times 0).
    pub fn new() -> SpaceTree {
        SpaceTree {
            nodes: vec![Node {
                name: "".into(),
                mtime: 0,
                ctime: 0,
                parent: NIL,
                next: 0,
                prev: 0,
                link: 0,
            }],
            free_head: 0,
            free_count: 0,
            names: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            contents: ContentTable::default(),
            versions: HashMap::new(),
            props: HashMap::new(),
            trash: Vec::new(),
            next_trash_id: 1,
            next_version_id: 1,
            quota: None,
            default_quota: None,
            live_count: 0,
            live_bytes: 0,
            changes: ChangeLog::default(),
        }
    }

    // ---- internal structure ----

    pub(super) fn node(&self, s: u32) -> &Node {
        &self.nodes[s as usize]
    }

    fn node_mut(&mut self, s: u32) -> &mut Node {
        &mut self.nodes[s as usize]
    }

    fn lookup(&self, parent: u32, name: &str) -> Option<u32> {
        let nodes = &self.nodes;
        let h = narrow(name_hash(&self.hasher, parent, name));
        self.names
            .find(widen(h), |e| {
                let n = &nodes[e.slot as usize];
                e.hash == h && n.parent == parent && n.name.as_bytes() == name.as_bytes()
            })
            .map(|e| e.slot)
    }

    /// Sizes the name index for `additional` more entries at once (snapshot load).
    pub(super) fn reserve_names(&mut self, additional: usize) {
        self.names.reserve(additional, |e| widen(e.hash));
    }

    fn index_insert(&mut self, s: u32) {
        let n = &self.nodes[s as usize];
        let h = narrow(name_hash(&self.hasher, n.parent, &n.name));
        self.names
            .insert_unique(widen(h), Keyed { slot: s, hash: h }, |e| widen(e.hash));
    }

    fn index_remove(&mut self, s: u32) {
        let n = &self.nodes[s as usize];
        let h = narrow(name_hash(&self.hasher, n.parent, &n.name));
        if let Ok(e) = self.names.find_entry(widen(h), |e| e.slot == s) {
            e.remove();
        }
    }

    /// Links detached node `s` (name already set) as the first child of dir `parent`.
    pub(super) fn link(&mut self, s: u32, parent: u32) {
        let first = self.node(parent).link;
        debug_assert!(!self.node(parent).is_file());
        {
            let n = self.node_mut(s);
            n.parent = parent;
            n.prev = 0;
            n.next = first;
        }
        if first != 0 {
            self.node_mut(first).prev = s;
        }
        self.node_mut(parent).link = s;
        self.index_insert(s);
    }

    /// Detaches `s` from its parent (O(1)).
    fn unlink(&mut self, s: u32) {
        self.index_remove(s);
        let (p, prev, next) = {
            let n = self.node(s);
            (n.parent, n.prev, n.next)
        };
        if prev != 0 {
            self.node_mut(prev).next = next;
        } else {
            self.node_mut(p).link = next;
        }
        if next != 0 {
            self.node_mut(next).prev = prev;
        }
        let n = self.node_mut(s);
        n.parent = NIL;
        n.prev = 0;
        n.next = 0;
    }

    fn alloc(&mut self, node: Node) -> u32 {
        if self.free_head != 0 {
            let s = self.free_head;
            self.free_head = self.node(s).next;
            self.free_count -= 1;
            self.nodes[s as usize] = node;
            s
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    fn release(&mut self, s: u32) {
        let head = self.free_head;
        let n = self.node_mut(s);
        n.name = "".into();
        n.parent = FREE;
        n.prev = 0;
        n.link = 0;
        n.next = head;
        self.free_head = s;
        self.free_count += 1;
    }

    fn nodes_in_use(&self) -> usize {
        self.nodes.len() - self.free_count as usize
    }

    fn check_nodes(&self, more: u64) -> Result<()> {
        if self.nodes_in_use() as u64 + more > SPACE_NODES_MAX as u64 {
            return Err(Error::LimitExceeded("entries per space"));
        }
        Ok(())
    }

    fn check_quota(&self, add: u64, remove: u64) -> Result<()> {
        if let Some(q) = self.quota.or(self.default_quota) {
            if add > remove && self.live_bytes - remove + add > q {
                return Err(Error::QuotaExceeded);
            }
        }
        Ok(())
    }

    fn file_size(&self, s: u32) -> u64 {
        self.node(s)
            .content_slot()
            .map_or(0, |c| self.contents.get(c).size)
    }

    /// Bumps the mtime of each directory in `dirs` and of every directory above it, once
    /// each: to `now`, or one past its old value if that is not older. So a directory's mtime,
    /// and with it its ETag, strictly increases whenever anything below it changes (O(depth);
    /// `docs/namespace.md`, "Change propagation").
    fn touch(&mut self, dirs: &[u32], now: i64) {
        let mut bumped: Vec<u32> = Vec::new();
        for &start in dirs {
            let mut d = start;
            while d != NIL && !bumped.contains(&d) {
                let n = self.node_mut(d);
                n.mtime = now.max(n.mtime.saturating_add(1));
                let parent = n.parent;
                if dirs.len() > 1 {
                    bumped.push(d);
                }
                d = parent;
            }
        }
    }

    /// The next slot after `cur` in a pre-order walk of the subtree at `root`.
    pub(super) fn walk_next(&self, root: u32, cur: u32) -> Option<u32> {
        let n = self.node(cur);
        if !n.is_file() && n.link != 0 {
            return Some(n.link);
        }
        let mut c = cur;
        loop {
            if c == root {
                return None;
            }
            let n = self.node(c);
            if n.next != 0 {
                return Some(n.next);
            }
            c = n.parent;
        }
    }

    fn subtree_slots(&self, root: u32) -> Vec<u32> {
        let mut out = vec![root];
        let mut cur = root;
        while let Some(n) = self.walk_next(root, cur) {
            out.push(n);
            cur = n;
        }
        out
    }

    /// (logical bytes of files, entries) in the subtree at `root`, root included.
    fn subtree_stats(&self, root: u32) -> (u64, u64) {
        let (mut bytes, mut count) = (self.file_size(root), 1u64);
        let mut cur = root;
        while let Some(n) = self.walk_next(root, cur) {
            bytes += self.file_size(n);
            count += 1;
            cur = n;
        }
        (bytes, count)
    }

    /// Existing entry at `path`.
    pub(super) fn find(&self, path: &[Name]) -> Result<u32> {
        let mut cur = ROOT;
        for n in path {
            if self.node(cur).is_file() {
                return Err(Error::NotADirectory);
            }
            cur = self.lookup(cur, n.as_str()).ok_or(Error::NotFound)?;
        }
        Ok(cur)
    }

    /// The directory that holds (or would hold) `path`, and the last name.
    fn find_parent<'p>(&self, path: &'p [Name]) -> Result<(u32, &'p Name)> {
        let (last, dirs) = path
            .split_last()
            .ok_or(Error::Invalid("the root has no parent"))?;
        let mut cur = ROOT;
        for n in dirs {
            cur = self.lookup(cur, n.as_str()).ok_or(Error::ParentMissing)?;
            if self.node(cur).is_file() {
                return Err(Error::NotADirectory);
            }
        }
        Ok((cur, last))
    }

    /// Detaches `s` into the trash; returns its old parent.
    fn trash_node(&mut self, s: u32, orig_path: &[Name], now: i64) -> u32 {
        let (bytes, count) = self.subtree_stats(s);
        let parent = self.node(s).parent;
        self.unlink(s);
        self.trash.push(TrashEntry {
            id: self.next_trash_id,
            root: s,
            orig_path: orig_path.into(),
            deleted_at: now,
            bytes,
            count,
        });
        self.next_trash_id += 1;
        self.live_count -= count;
        self.live_bytes -= bytes;
        parent
    }

    /// Frees a detached subtree for good, dropping its content references.
    fn free_subtree(&mut self, root: u32, fx: &mut Effects) {
        for s in self.subtree_slots(root) {
            if let Some(c) = self.node(s).content_slot() {
                self.contents.decref(c, fx);
            }
            if let Some(vs) = self.versions.remove(&s) {
                for v in vs {
                    self.contents.decref(v.content, fx);
                }
            }
            self.props.remove(&s);
            if s != root {
                self.index_remove(s);
            }
        }
        // Release after the walk: releasing rewrites the links the walk follows.
        for s in self.subtree_slots(root) {
            self.release(s);
        }
    }

    fn trim_versions(&mut self, s: u32, keep: usize, fx: &mut Effects) {
        if let Some(vs) = self.versions.get_mut(&s) {
            if vs.len() > keep {
                for v in vs.drain(..vs.len() - keep) {
                    self.contents.decref(v.content, fx);
                }
            }
            if vs.is_empty() {
                self.versions.remove(&s);
            }
        }
    }

    // ---- ops ----

    /// Applies one op. Validates fully first: on `Err` nothing changed.
    pub fn apply(&mut self, op: &NsOp) -> Result<Effects> {
        self.apply_with(op, &mut |c: &Content| Arc::new(c.clone()))
    }

    /// [`SpaceTree::apply`], with `intern` making the `Arc` for contents new to this space.
    pub fn apply_with(&mut self, op: &NsOp, intern: Interner<'_>) -> Result<Effects> {
        let pre = self.change_pre(op);
        let fx = self.apply_op(op, intern)?;
        self.log_change(op, pre);
        Ok(fx)
    }

    fn apply_op(&mut self, op: &NsOp, intern: Interner<'_>) -> Result<Effects> {
        let mut fx = Effects::default();
        match op {
            NsOp::Mkdir { path, now } => self.mkdir(path, *now)?,
            NsOp::PutFile {
                path,
                content,
                now,
                keep_versions,
            } => self.put_file(path, content, (*now, *now), *keep_versions, intern, &mut fx)?,
            NsOp::PutFileAt {
                path,
                content,
                now,
                mtime,
                keep_versions,
            } => self.put_file(
                path,
                content,
                (*now, *mtime),
                *keep_versions,
                intern,
                &mut fx,
            )?,
            NsOp::Move {
                from,
                to,
                overwrite,
                now,
            } => self.move_or_copy(from, to, *overwrite, *now, false)?,
            NsOp::Copy {
                from,
                to,
                overwrite,
                now,
            } => self.move_or_copy(from, to, *overwrite, *now, true)?,
            NsOp::Delete { path, now } => {
                check_depth(path)?;
                if path.is_empty() {
                    return Err(Error::Invalid("cannot delete the root"));
                }
                let s = self.find(path)?;
                let p = self.trash_node(s, path, *now);
                self.touch(&[p], *now);
            }
            NsOp::Restore { trash_id, to, now } => self.restore(*trash_id, to.as_deref(), *now)?,
            NsOp::PurgeTrash { trash_id } => {
                let i = self.trash_index(*trash_id)?;
                let e = self.trash.remove(i);
                self.free_subtree(e.root, &mut fx);
            }
            NsOp::RestoreVersion {
                path,
                version_id,
                now,
            } => self.restore_version(path, *version_id, *now)?,
            NsOp::Expire {
                now,
                version_age_max_ns,
                trash_age_max_ns,
            } => self.expire(*now, *version_age_max_ns, *trash_age_max_ns, &mut fx),
            NsOp::SetProps {
                path,
                set,
                remove,
                now,
            } => self.set_props(path, set, remove, Some(*now))?,
            NsOp::SetPropsUntimed { path, set, remove } => {
                self.set_props(path, set, remove, None)?
            }
            NsOp::SetQuota { bytes } => self.quota = *bytes,
        }
        Ok(fx)
    }

    fn mkdir(&mut self, path: &[Name], now: i64) -> Result<()> {
        check_depth(path)?;
        let (p, name) = self.find_parent(path)?;
        if self.lookup(p, name.as_str()).is_some() {
            return Err(Error::AlreadyExists);
        }
        self.check_nodes(1)?;
        let s = self.alloc(Node {
            name: name.as_str().into(),
            mtime: now,
            ctime: now,
            parent: NIL,
            next: 0,
            prev: 0,
            link: 0,
        });
        self.link(s, p);
        self.live_count += 1;
        self.touch(&[p], now);
        Ok(())
    }

    /// `times`: when the change happens, and the file's modification time.
    fn put_file(
        &mut self,
        path: &[Name],
        content: &Content,
        (now, mtime): (i64, i64),
        keep_versions: u32,
        intern: Interner<'_>,
        fx: &mut Effects,
    ) -> Result<()> {
        check_depth(path)?;
        content.validate()?;
        let (p, name) = self.find_parent(path)?;
        let existing = self.lookup(p, name.as_str());
        let old_size = match existing {
            Some(s) if !self.node(s).is_file() => return Err(Error::IsADirectory),
            Some(s) => self.file_size(s),
            None => {
                self.check_nodes(1)?;
                0
            }
        };
        self.check_quota(content.size, old_size)?;
        let keep = keep_versions as usize;
        match existing {
            None => {
                let c = self.contents.add(content, intern, fx);
                let s = self.alloc(Node {
                    name: name.as_str().into(),
                    mtime,
                    ctime: now,
                    parent: NIL,
                    next: 0,
                    prev: 0,
                    link: FILE_BIT | c,
                });
                self.link(s, p);
                self.live_count += 1;
                self.live_bytes += content.size;
                self.touch(&[p], now);
            }
            Some(s) => {
                let (old, old_mtime) = {
                    let n = self.node(s);
                    (n.link & !FILE_BIT, n.mtime)
                };
                if self.contents.get(old).hash != content.hash {
                    let new = self.contents.add(content, intern, fx);
                    self.node_mut(s).link = FILE_BIT | new;
                    if keep > 0 {
                        let v = Version {
                            id: self.next_version_id,
                            content: old,
                            mtime: old_mtime,
                            superseded: now,
                        };
                        self.next_version_id += 1;
                        self.versions.entry(s).or_default().push(v);
                    } else {
                        self.contents.decref(old, fx);
                    }
                    self.live_bytes = self.live_bytes - old_size + content.size;
                }
                self.node_mut(s).mtime = mtime;
                self.trim_versions(s, keep, fx);
                self.touch(&[p], now);
            }
        }
        Ok(())
    }

    fn move_or_copy(
        &mut self,
        from: &[Name],
        to: &[Name],
        overwrite: bool,
        now: i64,
        copy: bool,
    ) -> Result<()> {
        check_depth(from)?;
        check_depth(to)?;
        if from.is_empty() || to.is_empty() {
            return Err(Error::Invalid("cannot move or copy the root"));
        }
        let src = self.find(from)?;
        if to.starts_with(from) || from.starts_with(to) {
            return Err(Error::Invalid(
                "destination is the source, inside it, or above it",
            ));
        }
        let (dp, name) = self.find_parent(to)?;
        let dst = self.lookup(dp, name.as_str());
        if dst.is_some() && !overwrite {
            return Err(Error::AlreadyExists);
        }
        if copy {
            let (bytes, count) = self.subtree_stats(src);
            let dst_bytes = dst.map_or(0, |d| self.subtree_stats(d).0);
            self.check_nodes(count)?;
            self.check_quota(bytes, dst_bytes)?;
            if let Some(d) = dst {
                self.trash_node(d, to, now);
            }
            self.copy_subtree(src, dp, name.as_str().into(), now);
            self.live_count += count;
            self.live_bytes += bytes;
            self.touch(&[dp], now);
        } else {
            if let Some(d) = dst {
                self.trash_node(d, to, now);
            }
            let old_parent = self.node(src).parent;
            self.unlink(src);
            self.node_mut(src).name = name.as_str().into();
            self.link(src, dp);
            self.touch(&[old_parent, dp], now);
        }
        Ok(())
    }

    fn clone_node(&mut self, src: u32, parent: u32, name: NameBuf, now: i64) -> u32 {
        let link = self.node(src).link;
        let is_file = link & FILE_BIT != 0;
        if is_file {
            self.contents.incref(link & !FILE_BIT);
        }
        let s = self.alloc(Node {
            name,
            mtime: now,
            ctime: now,
            parent: NIL,
            next: 0,
            prev: 0,
            link: if is_file { link } else { 0 },
        });
        if let Some(p) = self.props.get(&src).cloned() {
            self.props.insert(s, p);
        }
        self.link(s, parent);
        s
    }

    fn copy_subtree(&mut self, src: u32, dp: u32, name: NameBuf, now: i64) {
        let root = self.clone_node(src, dp, name, now);
        let mut stack = vec![(src, root)];
        while let Some((s, d)) = stack.pop() {
            if self.node(s).is_file() {
                continue;
            }
            let mut c = self.node(s).link;
            while c != 0 {
                let name = self.node(c).name.clone();
                let nc = self.clone_node(c, d, name, now);
                stack.push((c, nc));
                c = self.node(c).next;
            }
        }
    }

    fn trash_index(&self, id: u64) -> Result<usize> {
        self.trash
            .binary_search_by_key(&id, |e| e.id)
            .map_err(|_| Error::NotFound)
    }

    fn restore(&mut self, id: u64, to: Option<&[Name]>, now: i64) -> Result<()> {
        let i = self.trash_index(id)?;
        let e = &self.trash[i];
        let target: &[Name] = to.unwrap_or(&e.orig_path);
        check_depth(target)?;
        let (dp, name) = self.find_parent(target)?;
        if self.lookup(dp, name.as_str()).is_some() {
            return Err(Error::AlreadyExists);
        }
        self.check_quota(e.bytes, 0)?;
        let name: NameBuf = name.as_str().into();
        let e = self.trash.remove(i);
        self.node_mut(e.root).name = name;
        self.link(e.root, dp);
        self.live_count += e.count;
        self.live_bytes += e.bytes;
        self.touch(&[dp], now);
        Ok(())
    }

    fn restore_version(&mut self, path: &[Name], id: u64, now: i64) -> Result<()> {
        check_depth(path)?;
        let s = self.find(path)?;
        let Some(cur) = self.node(s).content_slot() else {
            return Err(Error::IsADirectory);
        };
        let pos = self
            .versions
            .get(&s)
            .and_then(|vs| vs.iter().position(|v| v.id == id))
            .ok_or(Error::NotFound)?;
        let old_size = self.contents.get(cur).size;
        let new_content = self
            .versions
            .get(&s)
            .map(|vs| vs[pos].content)
            .unwrap_or(cur);
        let new_size = self.contents.get(new_content).size;
        self.check_quota(new_size, old_size)?;
        let mtime = self.node(s).mtime;
        let vid = self.next_version_id;
        self.next_version_id += 1;
        if let Some(vs) = self.versions.get_mut(&s) {
            vs.remove(pos);
            vs.push(Version {
                id: vid,
                content: cur,
                mtime,
                superseded: now,
            });
        }
        let n = self.node_mut(s);
        n.link = FILE_BIT | new_content;
        n.mtime = now;
        let parent = n.parent;
        self.touch(&[parent], now);
        self.live_bytes = self.live_bytes - old_size + new_size;
        Ok(())
    }

    fn expire(
        &mut self,
        now: i64,
        version_age: Option<i64>,
        trash_age: Option<i64>,
        fx: &mut Effects,
    ) {
        if let Some(max) = version_age {
            let contents = &mut self.contents;
            self.versions.retain(|_, vs| {
                vs.retain(|v| {
                    let keep = now.saturating_sub(v.superseded) <= max;
                    if !keep {
                        contents.decref(v.content, fx);
                    }
                    keep
                });
                !vs.is_empty()
            });
        }
        if let Some(max) = trash_age {
            let (old, young): (Vec<TrashEntry>, Vec<TrashEntry>) = std::mem::take(&mut self.trash)
                .into_iter()
                .partition(|e| now.saturating_sub(e.deleted_at) > max);
            self.trash = young;
            for e in old {
                self.free_subtree(e.root, fx);
            }
        }
    }

    /// Sets and removes dead properties; the directories above the entry (and the entry, if
    /// a directory) are touched at `now`, or one tick on where the op carries no time.
    fn set_props(
        &mut self,
        path: &[Name],
        set: &[(PropName, Vec<u8>)],
        remove: &[PropName],
        now: Option<i64>,
    ) -> Result<()> {
        check_depth(path)?;
        let s = self.find(path)?;
        for name in set.iter().map(|(n, _)| n).chain(remove) {
            if name.local.is_empty() {
                return Err(Error::Invalid("empty property name"));
            }
            if name.ns.len() + name.local.len() > PROP_NAME_LEN_MAX {
                return Err(Error::LimitExceeded("property name length"));
            }
        }
        if set.iter().any(|(_, v)| v.len() > PROP_VALUE_LEN_MAX) {
            return Err(Error::LimitExceeded("property value length"));
        }
        for (i, (n, _)) in set.iter().enumerate() {
            if set[..i].iter().any(|(m, _)| m == n) {
                return Err(Error::Invalid("property set twice"));
            }
            if remove.contains(n) {
                return Err(Error::Invalid("property both set and removed"));
            }
        }
        let mut props = self.props.get(&s).cloned().unwrap_or_default();
        for (n, v) in set {
            let p = Prop {
                name: n.clone(),
                value: v.as_slice().into(),
            };
            match props.binary_search_by(|q| q.name.cmp(n)) {
                Ok(i) => props[i] = p,
                Err(i) => props.insert(i, p),
            }
        }
        props.retain(|p| !remove.contains(&p.name));
        if props.len() > PROPS_PER_ENTRY_MAX {
            return Err(Error::LimitExceeded("properties per entry"));
        }
        if props.is_empty() {
            self.props.remove(&s);
        } else {
            self.props.insert(s, props);
        }
        let from = if self.node(s).is_file() {
            self.node(s).parent
        } else {
            s
        };
        self.touch(&[from], now.unwrap_or(i64::MIN));
        Ok(())
    }

    // ---- reads ----

    /// The live entry at `path` (the root for the empty path).
    pub fn resolve(&self, path: &[Name]) -> Option<NodeId> {
        self.find(path).ok().map(NodeId)
    }

    /// The child `name` of directory `dir`.
    pub fn child(&self, dir: NodeId, name: &Name) -> Option<NodeId> {
        self.lookup(dir.0, name.as_str()).map(NodeId)
    }

    fn in_use(&self, id: NodeId) -> bool {
        self.nodes
            .get(id.0 as usize)
            .is_some_and(|n| n.parent != FREE)
    }

    /// Describes a node. A `NodeId` stays valid until the next op that deletes or purges it.
    pub fn stat(&self, id: NodeId) -> Option<EntryInfo> {
        if !self.in_use(id) {
            return None;
        }
        let n = self.node(id.0);
        let (kind, size, etag, content) = match n.content_slot() {
            Some(c) => {
                let c = self.contents.get(c);
                (Kind::File, c.size, Etag::Content(c.hash), Some(c.clone()))
            }
            None => (
                Kind::Dir,
                0,
                Etag::Dir {
                    node: id.0,
                    ctime: n.ctime,
                    mtime: n.mtime,
                },
                None,
            ),
        };
        Some(EntryInfo {
            id,
            name: n.name.to_string(),
            kind,
            size,
            mtime: n.mtime,
            ctime: n.ctime,
            etag,
            content,
        })
    }

    /// Children of a directory, most recently linked first; O(children).
    pub fn children(&self, dir: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let first = match self.nodes.get(dir.0 as usize) {
            Some(n) if n.parent != FREE && !n.is_file() => n.link,
            _ => 0,
        };
        std::iter::successors((first != 0).then_some(first), move |&c| {
            let n = self.node(c).next;
            (n != 0).then_some(n)
        })
        .map(NodeId)
    }

    /// `stat` of every child of a directory (empty for files); O(children).
    pub fn list(&self, dir: NodeId) -> Vec<EntryInfo> {
        self.children(dir).filter_map(|c| self.stat(c)).collect()
    }

    /// Path of a live node; `None` for free slots and entries in the trash.
    pub fn path_of(&self, id: NodeId) -> Option<Vec<Name>> {
        if !self.in_use(id) {
            return None;
        }
        let mut out = Vec::new();
        let mut c = id.0;
        while c != ROOT {
            let n = self.node(c);
            if n.parent == NIL {
                return None;
            }
            out.push(Name::from_canonical((*n.name).into()));
            c = n.parent;
        }
        out.reverse();
        Some(out)
    }

    /// Dead properties of a node, sorted by name.
    pub fn props(&self, id: NodeId) -> &[Prop] {
        self.props.get(&id.0).map_or(&[], |v| v.as_slice())
    }

    /// Old versions of the file at `path`, oldest first.
    pub fn versions(&self, path: &[Name]) -> Result<Vec<VersionInfo>> {
        let s = self.find(path)?;
        if !self.node(s).is_file() {
            return Err(Error::IsADirectory);
        }
        Ok(self.versions_of(NodeId(s)))
    }

    /// Old versions of the file `id`, live or in the trash, oldest first (none for a
    /// directory or a free slot).
    pub fn versions_of(&self, id: NodeId) -> Vec<VersionInfo> {
        self.versions
            .get(&id.0)
            .map(|vs| {
                vs.iter()
                    .map(|v| VersionInfo {
                        id: v.id,
                        content: self.contents.get(v.content).clone(),
                        mtime: v.mtime,
                        superseded_at: v.superseded,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The trash, oldest first.
    pub fn trash(&self) -> Vec<TrashInfo> {
        self.trash
            .iter()
            .map(|e| {
                let n = self.node(e.root);
                TrashInfo {
                    id: e.id,
                    node: NodeId(e.root),
                    name: n.name.to_string(),
                    kind: if n.is_file() { Kind::File } else { Kind::Dir },
                    orig_path: e.orig_path.to_vec(),
                    deleted_at: e.deleted_at,
                    bytes: e.bytes,
                    entries: e.count,
                }
            })
            .collect()
    }

    /// Logical bytes of live files (what the quota limits; versions and trash excluded).
    pub fn used_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Logical bytes held only for recovery: old versions (of live and trashed files) and
    /// the trash. O(versions + trash items).
    pub fn retained_bytes(&self) -> u64 {
        let v: u64 = self
            .versions
            .values()
            .flatten()
            .map(|v| self.contents.get(v.content).size)
            .sum();
        v + self.trash.iter().map(|e| e.bytes).sum::<u64>()
    }

    /// The space's own quota; `None`: none of its own (the default, if any, applies).
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    /// Sets the quota that applies while the space has none of its own.
    pub fn set_default_quota(&mut self, quota: Option<u64>) {
        self.default_quota = quota;
    }

    /// Live entries, the root not counted.
    pub fn entry_count(&self) -> u64 {
        self.live_count
    }

    /// Node slots in use: the root, live entries and everything in the trash.
    pub fn node_count(&self) -> usize {
        self.nodes_in_use()
    }

    /// Every content this space references, with its reference count (files, versions
    /// and trash together).
    pub fn for_each_content(&self, mut f: impl FnMut(&Arc<Content>, u32)) {
        for (c, refs) in self.contents.live() {
            f(c, refs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns::{parse_path, ChunkRef};
    use crate::ChunkId;

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

    fn put(t: &mut SpaceTree, path: &str, b: u8, now: i64) -> Result<Effects> {
        t.apply(&NsOp::PutFile {
            path: p(path),
            content: content(b, 10),
            now,
            keep_versions: 2,
        })
    }

    fn refs(t: &SpaceTree, b: u8) -> u32 {
        let mut r = 0;
        t.for_each_content(|c, n| {
            if c.hash.0[0] == b {
                r = n;
            }
        });
        r
    }

    #[test]
    fn mkdir_and_errors() {
        let mut t = SpaceTree::new();
        t.apply(&NsOp::Mkdir {
            path: p("a"),
            now: 5,
        })
        .unwrap();
        let a = t.resolve(&p("a")).unwrap();
        assert_eq!(t.stat(a).unwrap().kind, Kind::Dir);
        assert_eq!(t.stat(NodeId::ROOT).unwrap().mtime, 5);
        assert!(matches!(
            t.apply(&NsOp::Mkdir {
                path: p("a"),
                now: 6
            }),
            Err(Error::AlreadyExists)
        ));
        assert!(matches!(
            t.apply(&NsOp::Mkdir {
                path: p("x/y"),
                now: 6
            }),
            Err(Error::ParentMissing)
        ));
        put(&mut t, "f", 1, 7).unwrap();
        assert!(matches!(
            t.apply(&NsOp::Mkdir {
                path: p("f/y"),
                now: 8
            }),
            Err(Error::NotADirectory)
        ));
        assert!(matches!(
            t.apply(&NsOp::Mkdir {
                path: vec![],
                now: 8
            }),
            Err(Error::Invalid(_))
        ));
        let deep: Vec<Name> = (0..=PATH_DEPTH_MAX)
            .map(|_| Name::new("d").unwrap())
            .collect();
        assert!(matches!(
            t.apply(&NsOp::Mkdir { path: deep, now: 8 }),
            Err(Error::LimitExceeded(_))
        ));
        assert_eq!(t.entry_count(), 2);
    }

    #[test]
    fn nfd_path_finds_nfc_entry() {
        let mut t = SpaceTree::new();
        t.apply(&NsOp::Mkdir {
            path: p("bl\u{e5}"),
            now: 1,
        })
        .unwrap();
        assert!(t.resolve(&p("bla\u{30a}")).is_some());
    }

    #[test]
    fn overwrite_keeps_versions_and_reports_effects() {
        let mut t = SpaceTree::new();
        let fx = put(&mut t, "f", 1, 1).unwrap();
        assert_eq!(fx.added.len(), 1);
        put(&mut t, "f", 2, 2).unwrap();
        put(&mut t, "f", 3, 3).unwrap();
        let fx = put(&mut t, "f", 4, 4).unwrap();
        // keep_versions = 2: content 1 fell off the end.
        assert_eq!(
            fx.dropped.iter().map(|c| c.hash.0[0]).collect::<Vec<_>>(),
            vec![1]
        );
        let vs = t.versions(&p("f")).unwrap();
        assert_eq!(
            vs.iter().map(|v| v.content.hash.0[0]).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(t.used_bytes(), 10);
        // Restore version 2's content: the current one (4) becomes a version.
        let fx = t
            .apply(&NsOp::RestoreVersion {
                path: p("f"),
                version_id: vs[0].id,
                now: 5,
            })
            .unwrap();
        assert!(fx.added.is_empty() && fx.dropped.is_empty());
        let f = t.resolve(&p("f")).unwrap();
        assert_eq!(t.stat(f).unwrap().etag, Etag::Content(ContentHash([2; 32])));
        let vs = t.versions(&p("f")).unwrap();
        assert_eq!(
            vs.iter().map(|v| v.content.hash.0[0]).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(matches!(
            t.apply(&NsOp::RestoreVersion {
                path: p("f"),
                version_id: 999,
                now: 6
            }),
            Err(Error::NotFound)
        ));
        t.apply(&NsOp::Mkdir {
            path: p("d"),
            now: 6,
        })
        .unwrap();
        assert!(matches!(put(&mut t, "d", 9, 7), Err(Error::IsADirectory)));
    }

    #[test]
    fn move_relinks_subtree_and_refuses_cycles() {
        let mut t = SpaceTree::new();
        t.apply(&NsOp::Mkdir {
            path: p("a"),
            now: 1,
        })
        .unwrap();
        t.apply(&NsOp::Mkdir {
            path: p("a/b"),
            now: 1,
        })
        .unwrap();
        put(&mut t, "a/b/f", 1, 1).unwrap();
        let f = t.resolve(&p("a/b/f")).unwrap();
        let root_etag = t.stat(NodeId::ROOT).unwrap().etag;
        t.apply(&NsOp::Move {
            from: p("a/b"),
            to: p("c"),
            overwrite: false,
            now: 1,
        })
        .unwrap();
        assert_eq!(t.resolve(&p("c/f")), Some(f));
        assert!(t.resolve(&p("a/b")).is_none());
        assert_ne!(t.stat(NodeId::ROOT).unwrap().etag, root_etag);
        assert!(matches!(
            t.apply(&NsOp::Move {
                from: p("c"),
                to: p("c/x"),
                overwrite: false,
                now: 2
            }),
            Err(Error::Invalid(_))
        ));
        put(&mut t, "g", 2, 3).unwrap();
        assert!(matches!(
            t.apply(&NsOp::Move {
                from: p("g"),
                to: p("c/f"),
                overwrite: false,
                now: 3
            }),
            Err(Error::AlreadyExists)
        ));
        t.apply(&NsOp::Move {
            from: p("g"),
            to: p("c/f"),
            overwrite: true,
            now: 3,
        })
        .unwrap();
        // The overwritten file went to the trash, still referenced.
        assert_eq!(t.trash().len(), 1);
        assert_eq!(refs(&t, 1), 1);
        assert_eq!(t.used_bytes(), 10);
    }

    #[test]
    fn copy_shares_contents() {
        let mut t = SpaceTree::new();
        t.apply(&NsOp::Mkdir {
            path: p("a"),
            now: 1,
        })
        .unwrap();
        put(&mut t, "a/f", 1, 1).unwrap();
        let set = vec![(PropName::new("urn:x", "color"), b"red".to_vec())];
        t.apply(&NsOp::SetProps {
            path: p("a/f"),
            set,
            remove: vec![],
            now: 9,
        })
        .unwrap();
        let fx = t
            .apply(&NsOp::Copy {
                from: p("a"),
                to: p("b"),
                overwrite: false,
                now: 2,
            })
            .unwrap();
        assert!(fx.added.is_empty());
        assert_eq!(refs(&t, 1), 2);
        assert_eq!(t.used_bytes(), 20);
        assert_eq!(t.entry_count(), 4);
        let bf = t.resolve(&p("b/f")).unwrap();
        assert_eq!(t.props(bf).len(), 1);
        assert!(t.versions(&p("b/f")).unwrap().is_empty());
    }

    #[test]
    fn delete_restore_purge() {
        let mut t = SpaceTree::new();
        t.apply(&NsOp::Mkdir {
            path: p("a"),
            now: 1,
        })
        .unwrap();
        put(&mut t, "a/f", 1, 1).unwrap();
        t.apply(&NsOp::Delete {
            path: p("a"),
            now: 2,
        })
        .unwrap();
        assert_eq!((t.used_bytes(), t.entry_count()), (0, 0));
        let tr = t.trash();
        assert_eq!((tr[0].id, tr[0].bytes, tr[0].entries), (1, 10, 2));
        t.apply(&NsOp::Mkdir {
            path: p("a"),
            now: 3,
        })
        .unwrap();
        let restore = |to| NsOp::Restore {
            trash_id: 1,
            to,
            now: 4,
        };
        assert!(matches!(t.apply(&restore(None)), Err(Error::AlreadyExists)));
        t.apply(&restore(Some(p("a/old")))).unwrap();
        assert!(t.resolve(&p("a/old/f")).is_some());
        assert_eq!((t.used_bytes(), t.entry_count()), (10, 3));
        t.apply(&NsOp::Delete {
            path: p("a/old/f"),
            now: 5,
        })
        .unwrap();
        let fx = t.apply(&NsOp::PurgeTrash { trash_id: 2 }).unwrap();
        assert_eq!(fx.dropped.len(), 1);
        assert!(matches!(
            t.apply(&NsOp::PurgeTrash { trash_id: 2 }),
            Err(Error::NotFound)
        ));
        assert_eq!(t.node_count(), 3);
    }

    #[test]
    fn expire_by_age() {
        let mut t = SpaceTree::new();
        put(&mut t, "f", 1, 0).unwrap();
        put(&mut t, "f", 2, 100).unwrap();
        put(&mut t, "g", 3, 100).unwrap();
        t.apply(&NsOp::Delete {
            path: p("g"),
            now: 200,
        })
        .unwrap();
        let expire = |now| NsOp::Expire {
            now,
            version_age_max_ns: Some(50),
            trash_age_max_ns: Some(500),
        };
        let fx = t.apply(&expire(140)).unwrap();
        assert!(fx.dropped.is_empty());
        let fx = t.apply(&expire(151)).unwrap();
        assert_eq!(fx.dropped.len(), 1);
        assert!(t.versions(&p("f")).unwrap().is_empty());
        let fx = t.apply(&expire(701)).unwrap();
        assert_eq!(fx.dropped.len(), 1);
        assert!(t.trash().is_empty());
    }

    #[test]
    fn props_are_atomic_and_limited() {
        let mut t = SpaceTree::new();
        put(&mut t, "f", 1, 0).unwrap();
        let f = t.resolve(&p("f")).unwrap();
        let n = |i: usize| PropName::new("urn:x", &format!("p{i}"));
        let set: Vec<_> = (0..PROPS_PER_ENTRY_MAX).map(|i| (n(i), vec![1])).collect();
        t.apply(&NsOp::SetProps {
            path: p("f"),
            set,
            remove: vec![],
            now: 9,
        })
        .unwrap();
        let one_more = vec![(n(PROPS_PER_ENTRY_MAX), vec![1])];
        let r = t.apply(&NsOp::SetProps {
            path: p("f"),
            set: one_more,
            remove: vec![],
            now: 9,
        });
        assert!(matches!(r, Err(Error::LimitExceeded(_))));
        let big = vec![(n(0), vec![0; PROP_VALUE_LEN_MAX + 1])];
        let r = t.apply(&NsOp::SetProps {
            path: p("f"),
            set: big,
            remove: vec![],
            now: 9,
        });
        assert!(matches!(r, Err(Error::LimitExceeded(_))));
        assert_eq!(t.props(f).len(), PROPS_PER_ENTRY_MAX);
        assert_eq!(t.props(f)[0].value.as_ref(), &[1]);
        t.apply(&NsOp::SetProps {
            path: p("f"),
            set: vec![],
            remove: vec![n(0)],
            now: 9,
        })
        .unwrap();
        assert_eq!(t.props(f).len(), PROPS_PER_ENTRY_MAX - 1);
    }

    #[test]
    fn quota_limits_growth_only() {
        let mut t = SpaceTree::new();
        t.apply(&NsOp::SetQuota { bytes: Some(15) }).unwrap();
        put(&mut t, "f", 1, 0).unwrap();
        assert!(matches!(put(&mut t, "g", 2, 0), Err(Error::QuotaExceeded)));
        let copy = NsOp::Copy {
            from: p("f"),
            to: p("g"),
            overwrite: false,
            now: 1,
        };
        assert!(matches!(t.apply(&copy), Err(Error::QuotaExceeded)));
        put(&mut t, "f", 2, 1).unwrap();
        t.apply(&NsOp::SetQuota { bytes: Some(5) }).unwrap();
        // Shrinking (or same size) still works over quota.
        put(&mut t, "f", 3, 2).unwrap();
        t.apply(&NsOp::Delete {
            path: p("f"),
            now: 3,
        })
        .unwrap();
        t.apply(&NsOp::SetQuota { bytes: None }).unwrap();
        assert_eq!(t.quota(), None);
        assert_eq!(t.retained_bytes(), 30);
    }

    #[test]
    fn list_costs_children_and_sees_all() {
        let mut t = SpaceTree::new();
        for i in 0..50 {
            put(&mut t, &format!("f{i}"), 1, i).unwrap();
        }
        let names: std::collections::BTreeSet<String> =
            t.list(NodeId::ROOT).into_iter().map(|e| e.name).collect();
        assert_eq!(names.len(), 50);
        assert_eq!(refs(&t, 1), 50);
        assert!(t.list(t.resolve(&p("f3")).unwrap()).is_empty());
    }
}
