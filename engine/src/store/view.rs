//! A read-only view of one tenant at one instant, for exports (`docs/export.md`): every space's
//! live entries, versions, trash and quotas taken in one consistent cut, and the file bytes read
//! chunk by chunk afterwards while gc and compaction wait.

use bytes::Bytes;
use parking_lot::MutexGuard;

use super::Store;
use crate::chunk::DomainKey;
use crate::error::{Error, Result};
use crate::ns::{Content, EntryInfo, Kind, Name, Prop, SpaceTree, TrashInfo, VersionInfo};
use crate::{NodeId, SpaceKey};

/// One entry of a space as the view saw it.
#[derive(Clone, Debug)]
pub struct ViewEntry {
    /// From the space's root (live entries) or from the trashed item (trash; empty for the
    /// item itself).
    pub path: Vec<Name>,
    pub info: EntryInfo,
    /// Dead properties, sorted by name.
    pub props: Vec<Prop>,
    /// Earlier contents of a file, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// One item of a space's trash, with everything inside it.
#[derive(Clone, Debug)]
pub struct ViewTrash {
    pub info: TrashInfo,
    /// The item itself first, then what it holds, parents before children, names sorted.
    pub entries: Vec<ViewEntry>,
}

/// One space of the tenant.
#[derive(Clone, Debug)]
pub struct SpaceView {
    pub key: SpaceKey,
    /// The space's own quota (`None`: the configured default applies).
    pub quota: Option<u64>,
    /// Dead properties of the root.
    pub root_props: Vec<Prop>,
    /// Live entries, parents before children, names sorted; the root is not listed.
    pub entries: Vec<ViewEntry>,
    /// Oldest first.
    pub trash: Vec<ViewTrash>,
}

/// A tenant's spaces at one instant. While it lives, gc, compaction and checkpoints wait
/// (as during a backup), so every chunk it names stays readable; writes go on.
pub struct TenantView<'a> {
    store: &'a Store,
    _pause: MutexGuard<'a, ()>,
    key: DomainKey,
    /// The tenant's quota.
    pub quota: Option<u64>,
    /// Sorted by user name.
    pub spaces: Vec<SpaceView>,
}

/// The subtree at `id` (itself included when `with_self`), parents first, names sorted;
/// paths start with `prefix`.
fn walk(
    tree: &SpaceTree,
    id: NodeId,
    prefix: Vec<Name>,
    with_self: bool,
    out: &mut Vec<ViewEntry>,
) -> Result<()> {
    let mut todo = vec![(id, prefix, with_self)];
    while let Some((id, path, emit)) = todo.pop() {
        let info = tree
            .stat(id)
            .ok_or(Error::Integrity(format!("node {} vanished", id.0)))?;
        let kind = info.kind;
        if emit {
            out.push(ViewEntry {
                path: path.clone(),
                versions: tree.versions_of(id),
                props: tree.props(id).to_vec(),
                info,
            });
        }
        if kind == Kind::Dir {
            let mut children: Vec<(Name, NodeId)> = tree
                .list(id)
                .into_iter()
                .map(|c| Name::new(&c.name).map(|n| (n, c.id)))
                .collect::<Result<_>>()?;
            // Reversed onto the stack, so that they come out sorted.
            children.sort_by(|a, b| b.0.cmp(&a.0));
            for (name, child) in children {
                let mut p = path.clone();
                p.push(name);
                todo.push((child, p, true));
            }
        }
    }
    Ok(())
}

impl Store {
    /// Takes a consistent view of `tenant`: every shard's writes are held off for the moment
    /// it takes to walk the tenant's spaces (O(entries)), so the view is one instant of all of
    /// them. The view then holds off gc, compaction and checkpoints until dropped; call it
    /// from a thread that may block.
    pub fn tenant_view(&self, tenant: &str) -> Result<TenantView<'_>> {
        let pause = self.inner.maintenance.lock();
        let t = self.tenant(tenant)?;
        // All shards, in order (mutations take one shard's lock shared at a time).
        let cut: Vec<_> = self.inner.shards.iter().map(|s| s.apply.write()).collect();
        let quota = *t.quota.lock();
        let mut spaces = Vec::new();
        for key in self.spaces_of(tenant) {
            let sp = self.space(&key)?;
            let tree = sp.tree.read();
            let root = NodeId(0);
            let mut entries = Vec::new();
            walk(&tree, root, Vec::new(), false, &mut entries)?;
            let mut trash = Vec::new();
            for item in tree.trash() {
                let mut inside = Vec::new();
                walk(&tree, item.node, Vec::new(), true, &mut inside)?;
                trash.push(ViewTrash {
                    info: item,
                    entries: inside,
                });
            }
            spaces.push(SpaceView {
                quota: tree.quota(),
                root_props: tree.props(root).to_vec(),
                key,
                entries,
                trash,
            });
        }
        drop(cut);
        Ok(TenantView {
            store: self,
            _pause: pause,
            key: t.key.clone(),
            quota,
            spaces,
        })
    }
}

impl TenantView<'_> {
    /// The bytes of `content` (a file, version or trash item of this view), chunk by chunk,
    /// each verified against its id; read from the packs, not through the chunk cache.
    pub fn read<'c>(&'c self, content: &'c Content) -> impl Iterator<Item = Result<Bytes>> + 'c {
        content
            .chunks
            .iter()
            .map(move |c| self.store.read_chunk_from_disk(&self.key, &c.id))
    }
}
