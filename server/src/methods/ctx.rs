//! The request context every WebDAV method gets: who asks, for what, in which space.

use std::sync::Arc;

use skab_engine::ns::Name;

use crate::app::App;
use crate::dav::path::{DavPath, SpacePath};

/// What every WebDAV handler gets: who asks, for what, in which space.
pub struct Ctx {
    pub app: Arc<App>,
    /// The engine's key of the requester's home space (a user reaches only their own).
    pub space: skab_engine::SpaceKey,
    pub target: DavPath,
    /// The target's path as engine names (NFC-normalized).
    pub names: Vec<Name>,
    /// What the requester may do here, when it is not their own home (`crate::spaces`).
    pub access: crate::spaces::access::Access,
}

impl Ctx {
    /// `user@tenant`: the principal that owns locks (built only by the lock paths).
    pub fn principal(&self) -> String {
        match &self.access.requester {
            Some(r) => r.clone(),
            None => format!("{}@{}", self.space.user(), self.space.tenant()),
        }
    }

    /// The key locks are kept under: a space or share seen inside a home shares its locks
    /// with every other way to reach it.
    pub fn lock_space(&self) -> crate::dav::path::SpaceKey {
        self.access
            .lock_space
            .clone()
            .unwrap_or_else(|| self.target.space.clone())
    }

    pub fn href(&self, path: &SpacePath, collection: bool) -> String {
        crate::dav::path::href_at(self.target.mount, &self.target.space, path, collection)
    }
}

/// Converts the protocol layer's path into engine names.
pub fn engine_names(path: &SpacePath) -> Result<Vec<Name>, skab_engine::Error> {
    path.segments().map(Name::new).collect()
}
