//! What the versions and trash endpoints need beyond `read.rs`: a live entry's path from its
//! node id (the file id clients know), and reads of an earlier version's bytes.

use super::read::ContentStream;
use super::Store;
use crate::error::{Error, Result};
use crate::ns::{EntryInfo, Name, VersionInfo};
use crate::{NodeId, SpaceKey};

impl Store {
    /// Path of the live entry `id` in `key`'s space; `NotFound` for a free slot or an entry
    /// in the trash.
    pub fn path_of(&self, key: &SpaceKey, id: NodeId) -> Result<Vec<Name>> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        tree.path_of(id).ok_or(Error::NotFound)
    }

    /// The live entry `id` and its path, looked up under one lock.
    pub fn stat_id(&self, key: &SpaceKey, id: NodeId) -> Result<(Vec<Name>, EntryInfo)> {
        let sp = self.space(key)?;
        let tree = sp.tree.read();
        let path = tree.path_of(id).ok_or(Error::NotFound)?;
        let info = tree.stat(id).ok_or(Error::NotFound)?;
        Ok((path, info))
    }

    /// Opens version `version_id` of the file at `path` for reading; `range` as in
    /// [`Store::read`].
    pub fn read_version(
        &self,
        key: &SpaceKey,
        path: &[Name],
        version_id: u64,
        range: Option<(u64, u64)>,
    ) -> Result<(VersionInfo, ContentStream)> {
        let v = self
            .versions(key, path)?
            .into_iter()
            .find(|v| v.id == version_id)
            .ok_or(Error::NotFound)?;
        let tenant = self.tenant(key.tenant())?;
        let (start, len) = range.unwrap_or((0, v.content.size));
        if start
            .checked_add(len)
            .is_none_or(|end| end > v.content.size)
        {
            return Err(Error::Invalid("range outside the file"));
        }
        let stream = ContentStream::new(
            self.clone(),
            tenant.key.clone(),
            v.content.clone(),
            start,
            len,
        );
        Ok((v, stream))
    }
}
