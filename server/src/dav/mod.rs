//! The WebDAV protocol layer: pure parsers, writers and the lock manager (no I/O).
//!
//! See `docs/webdav.md` for what is implemented, the status-code table and client quirks.

pub mod headers;
pub mod lock_file;
pub mod locks;
pub mod path;
pub mod propfind_cache;
pub mod status;
pub mod xml;
