//! Fair share: at most `limits.inflight_per_account_max` requests of one account in flight
//! (from authentication to the end of the response handler), and at most
//! `limits.inflight_per_tenant_max` of one tenant while another tenant has requests in flight,
//! so that one school's sync storm or one runaway client cannot take every serving slot from
//! the others. The tenant limit is work-conserving: a tenant alone on the server (one school's
//! exam deadline at night) is not held back. Over the account limit: 429; over the tenant
//! limit: 503; both with `Retry-After` (`INFLIGHT_RETRY_AFTER_S`).
//!
//! Counters live in sharded maps behind short locks; a key that exists costs a hash and a
//! lock, no allocation; an entry is removed when its count drops to zero, so the maps hold
//! only what is in flight (bounded by the open connections times their requests).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::limits::{FAIR_SHARE_SHARDS, INFLIGHT_RETRY_AFTER_S, NAME_LEN_MAX};

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The account has `inflight_per_account_max` requests in flight (429).
    Account,
    /// The tenant has `inflight_per_tenant_max` requests in flight while another tenant has
    /// some too (503).
    Tenant,
}

struct Counts {
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<Box<str>, usize>>>,
    /// Keys with something in flight (the entries of all shards).
    live: AtomicUsize,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            hasher: Default::default(),
            shards: (0..FAIR_SHARE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            live: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<Box<str>, usize>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()]
    }

    /// Adds one unless the count is at `max` and `others_live` (another key has something in
    /// flight) is required and true; `max == 0` counts nothing and always admits.
    fn try_add(&self, key: &str, max: usize, only_with_others: bool) -> bool {
        if max == 0 {
            return true;
        }
        let mut shard = self.shard(key).lock();
        if let Some(n) = shard.get_mut(key) {
            // This key is live itself, so another one is live when more than one is.
            if *n >= max && (!only_with_others || self.live.load(Ordering::Relaxed) > 1) {
                return false;
            }
            *n += 1;
            return true;
        }
        shard.insert(key.into(), 1);
        self.live.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn remove_one(&self, key: &str, max: usize) {
        if max == 0 {
            return;
        }
        let mut shard = self.shard(key).lock();
        if let Some(n) = shard.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                shard.remove(key);
                self.live.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn get(&self, key: &str) -> usize {
        self.shard(key).lock().get(key).copied().unwrap_or(0)
    }

    fn entries(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// The in-flight counters of the whole server. Share one (`Arc`).
pub struct FairShare {
    tenant_max: usize,
    account_max: usize,
    tenants: Counts,
    accounts: Counts,
}

/// The `user@tenant` key on the stack (names are short ASCII): no allocation per request.
struct AccountKey {
    buf: [u8; 2 * NAME_LEN_MAX + 1],
    len: usize,
    /// Where the tenant starts (after `user@`).
    tenant_at: usize,
}

impl AccountKey {
    fn new(tenant: &str, user: &str) -> Option<AccountKey> {
        let len = user.len() + 1 + tenant.len();
        let mut buf = [0u8; 2 * NAME_LEN_MAX + 1];
        if len > buf.len() {
            return None;
        }
        buf[..user.len()].copy_from_slice(user.as_bytes());
        buf[user.len()] = b'@';
        buf[user.len() + 1..len].copy_from_slice(tenant.as_bytes());
        Some(AccountKey {
            buf,
            len,
            tenant_at: user.len() + 1,
        })
    }

    fn as_str(&self) -> &str {
        // Built from two `&str` and an ASCII byte, cut at their joints.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn tenant(&self) -> &str {
        std::str::from_utf8(&self.buf[self.tenant_at..self.len]).unwrap_or("")
    }
}

/// A request's place in the counters; frees it when dropped (at the end of the handler).
pub struct Slot {
    share: Arc<FairShare>,
    account: AccountKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.share
            .accounts
            .remove_one(self.account.as_str(), self.share.account_max);
        self.share
            .tenants
            .remove_one(self.account.tenant(), self.share.tenant_max);
    }
}

impl FairShare {
    /// Limits of 0 turn that limit off.
    pub fn new(tenant_max: usize, account_max: usize) -> FairShare {
        FairShare {
            tenant_max,
            account_max,
            tenants: Counts::new(),
            accounts: Counts::new(),
        }
    }

    /// Admits one request of `user@tenant`, or says which limit it is over.
    pub fn admit(self: &Arc<Self>, tenant: &str, user: &str) -> Result<Slot, Refused> {
        // Longer names than the user database allows do not reach here; were one to, it is
        // counted under one shared key.
        let account = AccountKey::new(tenant, user).unwrap_or(AccountKey {
            buf: [b'?'; 2 * NAME_LEN_MAX + 1],
            len: 3,
            tenant_at: 2,
        });
        if !self
            .accounts
            .try_add(account.as_str(), self.account_max, false)
        {
            return Err(Refused::Account);
        }
        if !self
            .tenants
            .try_add(account.tenant(), self.tenant_max, true)
        {
            self.accounts.remove_one(account.as_str(), self.account_max);
            return Err(Refused::Tenant);
        }
        Ok(Slot {
            share: self.clone(),
            account,
        })
    }

    /// Requests of the account in flight (for tests and metrics).
    pub fn account_in_flight(&self, tenant: &str, user: &str) -> usize {
        AccountKey::new(tenant, user).map_or(0, |k| self.accounts.get(k.as_str()))
    }

    /// Requests of the tenant in flight.
    pub fn tenant_in_flight(&self, tenant: &str) -> usize {
        self.tenants.get(tenant)
    }

    /// Entries in both maps (each is a key with something in flight).
    pub fn entries(&self) -> usize {
        self.tenants.entries() + self.accounts.entries()
    }
}

/// The answer to a refused request: 429 (account) or 503 (tenant), with `Retry-After`.
pub fn refusal(r: Refused) -> crate::http::response::Resp {
    use hyper::StatusCode;
    let (code, msg) = match r {
        Refused::Account => (
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests of this account at once; retry shortly",
        ),
        Refused::Tenant => (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests of this school at once; retry shortly",
        ),
    };
    let mut resp = crate::http::response::text(code, msg);
    resp.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from(INFLIGHT_RETRY_AFTER_S),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_alone_is_not_held_back_until_another_one_comes() {
        let fs = Arc::new(FairShare::new(2, 0));
        let alone: Vec<_> = (0..5).map(|_| fs.admit("skole", "anna").unwrap()).collect();
        assert_eq!(fs.tenant_in_flight("skole"), 5);
        // Another tenant is admitted (under its share), and from then on the first one is
        // over its share until it drops below it.
        let other = fs.admit("andenskole", "bo").unwrap();
        assert_eq!(fs.admit("skole", "carl").err(), Some(Refused::Tenant));
        drop(alone);
        let again = fs.admit("skole", "carl").unwrap();
        drop(other);
        // Alone again: no limit.
        let more: Vec<_> = (0..4).map(|_| fs.admit("skole", "dan").unwrap()).collect();
        drop((again, more));
        assert_eq!(fs.entries(), 0);
    }

    #[test]
    fn limits_per_account_and_tenant_and_entries_go_away() {
        let fs = Arc::new(FairShare::new(3, 2));
        // Another tenant in flight: the tenant limit applies.
        let busy = fs.admit("tredjeskole", "eva").unwrap();
        let a1 = fs.admit("skole", "anna").unwrap();
        let a2 = fs.admit("skole", "anna").unwrap();
        assert_eq!(fs.admit("skole", "anna").err(), Some(Refused::Account));
        assert_eq!(fs.account_in_flight("skole", "anna"), 2);
        let b1 = fs.admit("skole", "bo").unwrap();
        assert_eq!(fs.admit("skole", "carl").err(), Some(Refused::Tenant));
        // A refusal by the tenant limit leaves the account's count as it was.
        assert_eq!(fs.account_in_flight("skole", "carl"), 0);
        let other = fs.admit("andenskole", "anna").unwrap();
        assert_eq!(fs.tenant_in_flight("skole"), 3);
        drop(a1);
        assert!(
            fs.admit("skole", "carl").is_ok(),
            "a freed slot is reused at once"
        );
        drop((a2, b1, other, busy));
        assert_eq!(fs.tenant_in_flight("skole"), 0);
        assert_eq!(fs.entries(), 0, "nothing in flight, nothing kept");
    }

    #[test]
    fn zero_is_off() {
        let fs = Arc::new(FairShare::new(0, 0));
        let slots: Vec<_> = (0..1000).map(|_| fs.admit("t", "u").unwrap()).collect();
        assert_eq!(fs.entries(), 0);
        drop(slots);
    }

    #[test]
    fn concurrent_admits_never_exceed_the_limit() {
        let fs = Arc::new(FairShare::new(0, 4));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let fs = fs.clone();
                let peak = peak.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        if let Ok(slot) = fs.admit("t", "u") {
                            let n = fs.account_in_flight("t", "u");
                            peak.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
                            drop(slot);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(std::sync::atomic::Ordering::Relaxed) <= 4);
        assert_eq!(fs.entries(), 0);
    }
}
