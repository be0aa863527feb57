//! Read access to the spaces' change logs for `sync-collection`: the present token and the
//! changes below a collection since a token (`docs/namespace.md`, "Change log").

use super::Store;
use crate::ns::{Changes, Name, SyncToken};
use crate::{Error, Result, SpaceKey};

/// Mixed into every token's epoch so that a token of one space is refused by another.
fn key_mix(key: &SpaceKey) -> u64 {
    let mut h = blake3::Hasher::new();
    for p in [key.tenant(), key.user()] {
        h.update(&(p.len() as u32).to_le_bytes());
        h.update(p.as_bytes());
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(b)
}

fn outward(key: &SpaceKey, mut c: Changes) -> Changes {
    if let Changes::Since { token, .. } = &mut c {
        token.epoch ^= key_mix(key);
    }
    c
}

impl Store {
    /// The space's present sync token.
    pub fn sync_token(&self, key: &SpaceKey) -> Result<SyncToken> {
        let sp = self.space(key)?;
        let t = sp.tree.read().sync_token();
        Ok(SyncToken {
            epoch: t.epoch ^ key_mix(key),
            seq: t.seq,
        })
    }

    /// Every member below the collection at `path` (children, or all with `infinite`) and
    /// the present token, read at one instant.
    pub fn sync_listing(&self, key: &SpaceKey, path: &[Name], infinite: bool) -> Result<Changes> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        match tree.sync_listing(path, infinite) {
            Some(c) => Ok(outward(key, c)),
            None => Err(not_collection(&tree, path)),
        }
    }

    /// What changed below the collection at `path` since `token` (at most `limit` members
    /// unless one logged change alone has more).
    pub fn changes_since(
        &self,
        key: &SpaceKey,
        token: SyncToken,
        path: &[Name],
        infinite: bool,
        limit: usize,
    ) -> Result<Changes> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        let inner = SyncToken {
            epoch: token.epoch ^ key_mix(key),
            seq: token.seq,
        };
        match tree.changes_since(inner, path, infinite, limit) {
            Some(c) => Ok(outward(key, c)),
            None => Err(not_collection(&tree, path)),
        }
    }
}

fn not_collection(tree: &crate::ns::SpaceTree, path: &[Name]) -> Error {
    if tree.resolve(path).is_some() {
        Error::NotADirectory
    } else {
        Error::NotFound
    }
}
