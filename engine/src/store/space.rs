//! Names of tenants and users, and the key of a space (one user's home).

use std::fmt;

use crate::error::{Error, Result};

/// Longest tenant or user name, bytes.
pub const ACCOUNT_NAME_LEN_MAX: usize = 64;

/// Checks a tenant or user name: 1..=64 bytes of `[a-z0-9._-]`, not starting with `.` or `-`.
pub fn validate_account_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= ACCOUNT_NAME_LEN_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(
            "tenant and user names are 1-64 characters of a-z, 0-9, '.', '_', '-'",
        ))
    }
}

/// One user's home space inside a tenant.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct SpaceKey {
    tenant: String,
    user: String,
}

impl SpaceKey {
    /// A validated key.
    pub fn new(tenant: &str, user: &str) -> Result<SpaceKey> {
        validate_account_name(tenant)?;
        validate_account_name(user)?;
        Ok(SpaceKey {
            tenant: tenant.to_string(),
            user: user.to_string(),
        })
    }
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Debug for SpaceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.user)
    }
}

impl fmt::Display for SpaceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.user)
    }
}

/// The shard a key lives in: a stable hash (BLAKE3), never the process-random std hasher.
pub(crate) fn shard_of(parts: &[&str], shards: usize) -> usize {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u32).to_le_bytes());
        h.update(p.as_bytes());
    }
    let b = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&b.as_bytes()[..8]);
    (u64::from_le_bytes(first) % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        assert!(SpaceKey::new("aarhus", "pupil.01").is_ok());
        for bad in ["", "Upper", "a/b", "-x", ".x", "x y", &"a".repeat(65)] {
            assert!(validate_account_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        let a = shard_of(&["t", "u"], 64);
        assert_eq!(a, shard_of(&["t", "u"], 64));
        assert!(a < 64);
        assert_ne!(
            shard_of(&["tu", ""], 1 << 20),
            shard_of(&["t", "u"], 1 << 20)
        );
    }
}
