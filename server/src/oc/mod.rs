//! The subset of the ownCloud/Nextcloud protocol that their desktop clients and ownCloud Web
//! use: discovery (`status.php`, OCS capabilities and user), the `oc:` properties and
//! headers, client checksums, and chunked uploads. What each client needs and what is left
//! out: `docs/webdav.md`, "Sync clients".

pub mod checksum;
pub mod discovery;
pub mod headers;
pub mod upload;

/// The XML namespace of ownCloud's properties (`oc:`).
pub const OC_NS: &str = "http://owncloud.org/ns";
/// The XML namespace of Nextcloud's properties (`nc:`).
pub const NC_NS: &str = "http://nextcloud.org/ns";
