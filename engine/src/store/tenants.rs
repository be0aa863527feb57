//! Tenants and spaces: creating them, their quotas and their usage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{domain_key, record, space, SpaceHandle, Store, Tenant};
use crate::error::Result;
use crate::ns::{NsOp, SpaceTree};
use crate::store::record::WalRecord;
use crate::{validate_account_name, SpaceKey};

/// What [`Store::erase_tenant`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EraseReport {
    /// Whether a live key was destroyed (false: it was already erased).
    pub key_destroyed: bool,
    pub spaces: u64,
    pub entries: u64,
}

/// A space's logical usage and quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used_bytes: u64,
    pub quota_bytes: Option<u64>,
    /// Of the tenant, which also bounds the space.
    pub tenant_used_bytes: u64,
    pub tenant_quota_bytes: Option<u64>,
}

impl Usage {
    /// Bytes the space may still grow by.
    pub fn available_bytes(&self) -> Option<u64> {
        let own = self.quota_bytes.map(|q| q.saturating_sub(self.used_bytes));
        let tenant = self
            .tenant_quota_bytes
            .map(|q| q.saturating_sub(self.tenant_used_bytes));
        match (own, tenant) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Store {
    /// Tenant `name`, created (in memory) if missing; with encryption its key is created in
    /// the key store first (durably), and an erased tenant's name is refused.
    fn tenant_or_create(&self, name: &str) -> Result<Arc<Tenant>> {
        let inner = &self.inner;
        if let Some(t) = inner.tenants.get(name) {
            return Ok(t.clone());
        }
        let key = domain_key(&inner.master, &inner.config, name)?;
        Ok(inner
            .tenants
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Tenant {
                    quota: Mutex::new(None),
                    used: AtomicU64::new(0),
                    key,
                    shard: space::shard_of(&[name], inner.shards.len()),
                })
            })
            .clone())
    }

    /// Creates tenant `name` if missing and sets its quota (logical bytes; `None` = unlimited).
    pub async fn set_tenant_quota(&self, name: &str, quota: Option<u64>) -> Result<()> {
        validate_account_name(name)?;
        let tenant = self.tenant_or_create(name)?;
        let shard = &self.inner.shards[tenant.shard];
        let seq = {
            let _a = shard.apply.read();
            *tenant.quota.lock() = quota;
            shard.log.append(&record::seal(
                tenant.key.cipher(),
                name,
                record::encode(&WalRecord::Tenant {
                    tenant: name.to_string(),
                    quota,
                }),
            ))?
        };
        shard.log.wait_durable(seq).await
    }

    /// Creates the space if missing (and its tenant). Returns whether it was created.
    pub async fn create_space(&self, key: &SpaceKey) -> Result<bool> {
        if self.inner.spaces.contains_key(key) {
            return Ok(false);
        }
        let inner = &self.inner;
        let tenant = self.tenant_or_create(key.tenant())?;
        let shard_no = space::shard_of(&[key.tenant(), key.user()], inner.shards.len());
        let shard = &inner.shards[shard_no];
        let (seq, created) = {
            let _a = shard.apply.read();
            let mut created = false;
            let handle = inner
                .spaces
                .entry(key.clone())
                .or_insert_with(|| {
                    created = true;
                    // No own quota: `space_quota_default` applies at each op (not copied in,
                    // so a changed default reaches existing spaces).
                    let tree = SpaceTree::new();
                    Arc::new(SpaceHandle {
                        key: key.clone(),
                        shard: shard_no,
                        tree: RwLock::new(tree),
                    })
                })
                .clone();
            if !created {
                return Ok(false);
            }
            shard.spaces.lock().push(handle);
            let seq = shard.log.append(&record::seal(
                tenant.key.cipher(),
                key.tenant(),
                record::encode(&WalRecord::CreateSpace {
                    tenant: key.tenant().to_string(),
                    user: key.user().to_string(),
                }),
            ))?;
            (seq, created)
        };
        shard.log.wait_durable(seq).await?;
        Ok(created)
    }

    /// Crypto-erasure of tenant `name`: its key is destroyed in the key store first (durably:
    /// from then on its data is unreadable in every pack, snapshot and copy that holds it),
    /// then its spaces are dropped from memory with their chunk references, and a checkpoint
    /// writes its shards' snapshots without it; `gc` then reclaims its chunks. A crash at any
    /// point after the key is gone ends the same way: recovery skips records it cannot open
    /// of a tenant whose key is erased. Needs encryption at rest.
    pub fn erase_tenant(&self, name: &str) -> Result<EraseReport> {
        validate_account_name(name)?;
        let Some(keys) = &self.inner.config.keys else {
            return Err(crate::Error::Invalid(
                "erasing a tenant's key needs encryption at rest (crypto.enabled)",
            ));
        };
        let key_destroyed = keys.erase(name)?;
        let inner = &self.inner;
        let mut report = EraseReport {
            key_destroyed,
            ..Default::default()
        };
        for key in self.spaces_of(name) {
            let Some((_, h)) = inner.spaces.remove(&key) else {
                continue;
            };
            let shard = &inner.shards[h.shard];
            {
                let _x = shard.apply.write();
                shard.spaces.lock().retain(|s| !Arc::ptr_eq(s, &h));
                shard
                    .snapshot_seq
                    .store(super::SNAPSHOT_STALE, Ordering::Release);
            }
            let tree = h.tree.read();
            report.entries += tree.entry_count();
            tree.for_each_content(|content, _refs| {
                for c in content.chunks.iter() {
                    inner.chunks.release(&c.id);
                }
            });
            report.spaces += 1;
        }
        if let Some((_, t)) = inner.tenants.remove(name) {
            inner.shards[t.shard]
                .snapshot_seq
                .store(super::SNAPSHOT_STALE, Ordering::Release);
        }
        self.checkpoint()?;
        Ok(report)
    }

    /// Whether the store seals its tenants' data (encryption at rest).
    pub fn is_encrypted(&self) -> bool {
        self.inner.config.keys.is_some()
    }

    /// `plain` sealed with tenant `tenant`'s key, for the server's own records that hold a
    /// tenant's names (saved locks); `context` names the kind of record and is authenticated.
    /// `None` when encryption is off; an error for a tenant without a live key.
    pub fn seal_for_tenant(
        &self,
        tenant: &str,
        context: &str,
        plain: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let Some(keys) = &self.inner.config.keys else {
            return Ok(None);
        };
        let cipher = match keys.tenant(tenant)? {
            crate::crypt::TenantKey::Live(c) => c,
            _ => {
                return Err(crate::Error::Key(format!(
                    "tenant {tenant} has no live key"
                )))
            }
        };
        Ok(Some(cipher.seal_meta(&app_context(tenant, context), plain)))
    }

    /// Opens what [`Store::seal_for_tenant`] sealed: an error for a tenant whose key was
    /// erased, for another context or for damaged bytes.
    pub fn open_for_tenant(&self, tenant: &str, context: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        let Some(keys) = &self.inner.config.keys else {
            return Err(crate::Error::Key("encryption at rest is off".into()));
        };
        let cipher = match keys.tenant(tenant)? {
            crate::crypt::TenantKey::Live(c) => c,
            _ => {
                return Err(crate::Error::Key(format!(
                    "tenant {tenant} has no live key"
                )))
            }
        };
        cipher
            .open_meta(&app_context(tenant, context), sealed)
            .map_err(|e| crate::Error::Integrity(format!("{context} of tenant {tenant}: {e}")))
    }

    pub fn space_exists(&self, key: &SpaceKey) -> bool {
        self.inner.spaces.contains_key(key)
    }

    /// Names of all tenants, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.tenants.iter().map(|t| t.key().clone()).collect();
        v.sort();
        v
    }

    /// Spaces of tenant `tenant`, sorted.
    pub fn spaces_of(&self, tenant: &str) -> Vec<SpaceKey> {
        let mut v: Vec<SpaceKey> = self
            .inner
            .spaces
            .iter()
            .filter(|s| s.key().tenant() == tenant)
            .map(|s| s.key().clone())
            .collect();
        v.sort();
        v
    }

    /// Logical usage and quotas of a space.
    pub fn usage(&self, key: &SpaceKey) -> Result<Usage> {
        let sp = self.space(key)?;
        let tenant = self.tenant(key.tenant())?;
        let tree = sp.tree.read();
        let tenant_quota_bytes = *tenant.quota.lock();
        Ok(Usage {
            used_bytes: tree.used_bytes(),
            quota_bytes: tree.quota().or(self.inner.config.space_quota_default),
            tenant_used_bytes: tenant.used.load(Ordering::Relaxed),
            tenant_quota_bytes,
        })
    }

    /// Logical usage of a tenant (sum of its spaces) and its quota.
    pub fn tenant_usage(&self, name: &str) -> Result<(u64, Option<u64>)> {
        let t = self.tenant(name)?;
        let q = *t.quota.lock();
        Ok((t.used.load(Ordering::Relaxed), q))
    }

    /// Sets a space's quota (logical bytes; `None` = unlimited).
    pub async fn set_space_quota(&self, key: &SpaceKey, quota: Option<u64>) -> Result<()> {
        self.mutate(key, NsOp::SetQuota { bytes: quota }, 0)
            .await
            .map(|_| ())
    }
}

/// Context of a record the server seals: apart from the engine's own (`skab wal:`, ...).
fn app_context(tenant: &str, context: &str) -> Vec<u8> {
    format!("skab app {context}:{tenant}").into_bytes()
}
