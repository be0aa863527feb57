//! Encryption at rest: each tenant's chunks and metadata records sealed with the tenant's own
//! key ([`seal`]), the keys wrapped by a master key in a key store apart from the data
//! ([`keystore`]). Destroying a tenant's key makes every copy of its data unreadable.
//! Design and threat model: `docs/security.md`; formats: `docs/formats.md`.

pub mod keystore;
pub mod seal;

pub use keystore::{KeyStore, MasterKey, RotateReport, TenantKey};
pub use seal::{OpenError, TenantCipher, SEAL_TAG_LEN};
