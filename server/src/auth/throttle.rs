//! Failed-login throttling: exponential backoff per account, a generous bucket per source.

use crate::limits::{AUTH_TABLE_SHARDS, SOURCE_IPV6_PREFIX_BITS, THROTTLE_ENTRIES_MAX};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Throttle settings (from `[auth]` in the config).
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    pub account_failures_free: u32,
    pub account_backoff_base: Duration,
    pub account_backoff_max: Duration,
    pub source_burst: u32,
    pub source_per_minute: u32,
}

struct Account {
    failures: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Table<K, V> {
    hasher: std::collections::hash_map::RandomState,
    per_shard: usize,
    shards: Vec<Mutex<HashMap<K, V>>>,
}

impl<K: Hash + Eq + Clone, V> Table<K, V> {
    fn new() -> Self {
        Table {
            hasher: Default::default(),
            per_shard: THROTTLE_ENTRIES_MAX.div_ceil(AUTH_TABLE_SHARDS),
            shards: (0..AUTH_TABLE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    fn shard(&self, k: &K) -> &Mutex<HashMap<K, V>> {
        &self.shards[(self.hasher.hash_one(k) as usize) % self.shards.len()]
    }
}

/// The source key: the IPv4 address, or the IPv6 /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX << (128 - SOURCE_IPV6_PREFIX_BITS);
            IpAddr::V6((bits & mask).into())
        }
    }
}

/// Failed-login bookkeeping, bounded in memory.
pub struct Throttle {
    cfg: ThrottleConfig,
    accounts: Table<String, Account>,
    sources: Table<IpAddr, Bucket>,
}

impl Throttle {
    pub fn new(cfg: ThrottleConfig) -> Self {
        Throttle {
            cfg,
            accounts: Table::new(),
            sources: Table::new(),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let rate = f64::from(self.cfg.source_per_minute) / 60.0;
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * rate).min(f64::from(self.cfg.source_burst));
        b.last = now;
    }

    /// `Err(wait)` if the source has used up its failures.
    pub fn check_source(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let k = source_key(ip);
        let mut shard = self.sources.shard(&k).lock();
        let Some(b) = shard.get_mut(&k) else {
            return Ok(());
        };
        self.refill(b, now);
        if b.tokens >= 1.0 {
            return Ok(());
        }
        let rate = f64::from(self.cfg.source_per_minute) / 60.0;
        if rate <= 0.0 {
            return Err(Duration::from_secs(3600));
        }
        Err(Duration::from_secs_f64((1.0 - b.tokens) / rate).max(Duration::from_secs(1)))
    }

    /// `Err(wait)` if the account is in backoff.
    pub fn check_account(&self, account: &str, now: Instant) -> Result<(), Duration> {
        let shard = self.accounts.shard(&account.to_string()).lock();
        match shard.get(account) {
            Some(a) if now < a.blocked_until => {
                Err((a.blocked_until - now).max(Duration::from_secs(1)))
            }
            _ => Ok(()),
        }
    }

    /// Both checks; the longer wait wins.
    pub fn check(&self, account: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match (self.check_account(account, now), self.check_source(ip, now)) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(a), _) | (_, Err(a)) => Err(a),
        }
    }

    /// Counts a failed login against the account and the source.
    pub fn record_failure(&self, account: &str, ip: IpAddr, now: Instant) {
        self.record_account_failure(account, now);
        self.record_source_failure(ip, now);
    }

    fn record_account_failure(&self, account: &str, now: Instant) {
        {
            let key = account.to_string();
            let mut shard = self.accounts.shard(&key).lock();
            if shard.len() >= self.accounts.per_shard && !shard.contains_key(&key) {
                let max = self.cfg.account_backoff_max;
                shard.retain(|_, a| now.saturating_duration_since(a.last_failure) < max);
                if shard.len() >= self.accounts.per_shard {
                    let victim = shard
                        .iter()
                        .min_by_key(|(_, a)| a.last_failure)
                        .map(|(k, _)| k.clone());
                    if let Some(v) = victim {
                        shard.remove(&v);
                    }
                }
            }
            let a = shard.entry(key).or_insert(Account {
                failures: 0,
                blocked_until: now,
                last_failure: now,
            });
            // Failures long ago are forgotten: the count restarts after a quiet max-backoff.
            if now.saturating_duration_since(a.last_failure) >= self.cfg.account_backoff_max
                && a.failures > 0
            {
                a.failures = 0;
            }
            a.failures = a.failures.saturating_add(1);
            a.last_failure = now;
            if a.failures > self.cfg.account_failures_free {
                let exp = (a.failures - self.cfg.account_failures_free - 1).min(30);
                let wait = self
                    .cfg
                    .account_backoff_base
                    .saturating_mul(1u32 << exp)
                    .min(self.cfg.account_backoff_max);
                a.blocked_until = now + wait;
            }
        }
    }

    /// Counts a failure against the source only (a bad Bearer token names no account).
    pub fn record_source_failure(&self, ip: IpAddr, now: Instant) {
        let k = source_key(ip);
        let mut shard = self.sources.shard(&k).lock();
        if shard.len() >= self.sources.per_shard && !shard.contains_key(&k) {
            let burst = f64::from(self.cfg.source_burst);
            let rate = f64::from(self.cfg.source_per_minute) / 60.0;
            shard.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
            });
            if shard.len() >= self.sources.per_shard {
                let victim = shard.iter().min_by_key(|(_, b)| b.last).map(|(k, _)| *k);
                if let Some(v) = victim {
                    shard.remove(&v);
                }
            }
        }
        let b = shard.entry(k).or_insert(Bucket {
            tokens: f64::from(self.cfg.source_burst),
            last: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    /// A successful login clears the account's failures (the source keeps its bucket).
    pub fn record_success(&self, account: &str) {
        let key = account.to_string();
        self.accounts.shard(&key).lock().remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ThrottleConfig {
        ThrottleConfig {
            account_failures_free: 5,
            account_backoff_base: Duration::from_secs(1),
            account_backoff_max: Duration::from_secs(900),
            source_burst: 300,
            source_per_minute: 300,
        }
    }

    #[test]
    fn one_pupils_typos_do_not_block_classmates_behind_the_same_nat() {
        let th = Throttle::new(cfg());
        let nat: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..8 {
            th.record_failure("pupil1@skole", nat, now);
        }
        let wait = th.check("pupil1@skole", nat, now).unwrap_err();
        assert!(wait >= Duration::from_secs(4), "{wait:?}");
        assert!(th.check("pupil2@skole", nat, now).is_ok());
        // A whole class making a typo each stays well within the source budget.
        for i in 0..200 {
            th.record_failure(&format!("p{i}@skole"), nat, now);
        }
        assert!(th.check("pupil2@skole", nat, now).is_ok());
    }

    #[test]
    fn backoff_grows_and_caps_and_success_clears() {
        let th = Throttle::new(cfg());
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let now = Instant::now();
        for _ in 0..5 {
            th.record_failure("a@t", ip, now);
        }
        assert!(th.check_account("a@t", now).is_ok(), "5 free failures");
        th.record_failure("a@t", ip, now);
        let w1 = th.check_account("a@t", now).unwrap_err();
        th.record_failure("a@t", ip, now);
        let w2 = th.check_account("a@t", now).unwrap_err();
        assert!(w2 > w1, "{w1:?} then {w2:?}");
        for _ in 0..40 {
            th.record_failure("a@t", ip, now);
        }
        let w = th.check_account("a@t", now).unwrap_err();
        assert!(w <= Duration::from_secs(900));
        assert!(th
            .check_account("a@t", now + Duration::from_secs(901))
            .is_ok());
        th.record_success("a@t");
        assert!(th.check_account("a@t", now).is_ok());
    }

    #[test]
    fn source_bucket_empties_and_refills() {
        let mut c = cfg();
        c.source_burst = 10;
        c.source_per_minute = 60;
        let th = Throttle::new(c);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let same64: IpAddr = "2001:db8::ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let now = Instant::now();
        for i in 0..10 {
            th.record_failure(&format!("u{i}@t"), ip, now);
        }
        assert!(th.check_source(ip, now).is_err());
        assert!(th.check_source(same64, now).is_err(), "same /64");
        assert!(th.check_source(other, now).is_ok(), "other /64");
        assert!(th.check_source(ip, now + Duration::from_secs(2)).is_ok());
    }
}
