//! The in-memory WebDAV lock manager (RFC 4918 §6-7): write locks on each space's URL namespace.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;

use super::path::{contains_str, SpaceKey, SpacePath};
use crate::limits::{
    DAV_LOCKS_PER_SPACE_MAX, DAV_LOCKS_TOTAL_MAX, DAV_LOCK_OWNER_LEN_MAX,
    DAV_LOCK_TIMEOUT_DEFAULT_S, DAV_LOCK_TIMEOUT_MAX_S,
};

/// Exclusive or shared (RFC 4918 §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockScope {
    Exclusive,
    Shared,
}

/// A lock covers its root only, or its root and everything below (LOCK allows no Depth 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockDepth {
    Zero,
    Infinity,
}

/// A live lock as kept across a graceful restart (`dav::lock_file`): its time left, not an
/// instant, since instants do not survive the process.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedLock {
    pub tenant: String,
    pub user: String,
    pub token: String,
    /// The root's decoded segments.
    pub root: Vec<String>,
    pub exclusive: bool,
    pub infinity: bool,
    pub owner: Option<String>,
    pub principal: String,
    pub timeout_s: u64,
    pub remaining_ms: u64,
    pub created_resource: bool,
}

/// A snapshot of one live lock, for lockdiscovery and the handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    /// `opaquelocktoken:<uuid v4>`.
    pub token: String,
    pub root: SpacePath,
    pub scope: LockScope,
    pub depth: LockDepth,
    /// The request's `DAV:owner` element as raw XML, returned verbatim.
    pub owner: Option<String>,
    /// Who took the lock (the authenticated user's name).
    pub principal: String,
    /// Timeout granted at the last LOCK or refresh.
    pub timeout: Duration,
    /// Time left until it expires.
    pub remaining: Duration,
    /// The LOCK found the URL unmapped, and the handler created an empty resource (RFC 4918 §7.3).
    pub created_resource: bool,
}

/// What a LOCK request asks for.
#[derive(Clone, Debug)]
pub struct LockRequest<'a> {
    pub path: &'a SpacePath,
    pub scope: LockScope,
    pub depth: LockDepth,
    /// As parsed from the Timeout header (clamped again here to the manager's maximum).
    pub timeout: Duration,
    pub owner: Option<String>,
    pub principal: &'a str,
    /// Whether the URL is mapped; if not the handler creates an empty resource and answers 201.
    pub resource_exists: bool,
}

/// Which part of the namespace a write touches, for `check_write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteScope {
    /// The whole subtree below the path (DELETE, MOVE source, COPY/MOVE destination overwrite).
    pub subtree: bool,
    /// The parent collection's membership changes (create, delete, move in or out).
    pub membership: bool,
}

impl WriteScope {
    /// PUT to an existing resource, PROPPATCH.
    pub const CONTENT: WriteScope = WriteScope {
        subtree: false,
        membership: false,
    };
    /// PUT creating a resource, MKCOL.
    pub const CREATE: WriteScope = WriteScope {
        subtree: false,
        membership: true,
    };
    /// DELETE, MOVE source, overwritten COPY/MOVE destination.
    pub const REMOVE_TREE: WriteScope = WriteScope {
        subtree: true,
        membership: true,
    };
}

/// Why a lock operation was refused; `docs/webdav.md` maps each to its status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// LOCK conflicts with an existing lock (423, `no-conflicting-lock` naming `root`).
    #[error("conflicting lock at {root}")]
    Conflict { root: SpacePath },
    /// A write needs a lock token that was not submitted (423, `lock-token-submitted`).
    #[error("locked at {root}")]
    Locked { root: SpacePath },
    /// No live lock has that token (refresh: 412; UNLOCK: 409 `lock-token-matches-request-uri`).
    #[error("no such lock")]
    NoSuchLock,
    /// The lock exists but does not cover the request-URI (409 `lock-token-matches-request-uri`).
    #[error("lock does not cover the request-URI")]
    NotInScope,
    /// The lock belongs to another principal (403).
    #[error("lock belongs to another principal")]
    NotOwner,
    /// Lock table full (503).
    #[error("too many locks")]
    TooManyLocks,
    /// Owner XML too large (400).
    #[error("lock owner larger than {DAV_LOCK_OWNER_LEN_MAX} bytes")]
    OwnerTooLarge,
}

/// Source of the current time (tests drive expiry with a manual one).
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Tunables of the lock manager (defaults from `limits.rs`).
#[derive(Clone, Debug)]
pub struct LockConfig {
    pub default_timeout: Duration,
    pub max_timeout: Duration,
    pub per_space_max: usize,
    pub total_max: usize,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            default_timeout: Duration::from_secs(DAV_LOCK_TIMEOUT_DEFAULT_S),
            max_timeout: Duration::from_secs(DAV_LOCK_TIMEOUT_MAX_S),
            per_space_max: DAV_LOCKS_PER_SPACE_MAX,
            total_max: DAV_LOCKS_TOTAL_MAX,
        }
    }
}

struct Lock {
    root: SpacePath,
    scope: LockScope,
    depth: LockDepth,
    owner: Option<String>,
    principal: String,
    timeout: Duration,
    expires: Instant,
    created_resource: bool,
}

impl Lock {
    fn covers(&self, path: &str) -> bool {
        match self.depth {
            LockDepth::Zero => self.root.as_str() == path,
            LockDepth::Infinity => contains_str(self.root.as_str(), path),
        }
    }

    fn info(&self, token: &str, now: Instant) -> LockInfo {
        LockInfo {
            token: token.to_owned(),
            root: self.root.clone(),
            scope: self.scope,
            depth: self.depth,
            owner: self.owner.clone(),
            principal: self.principal.clone(),
            timeout: self.timeout,
            remaining: self.expires.saturating_duration_since(now),
            created_resource: self.created_resource,
        }
    }
}

/// One space's locks: by token (O(1) refresh) and by root path (conflict checks walk the
/// ancestors and range-scan the descendants), plus an expiry heap for lazy purging.
#[derive(Default)]
struct SpaceLocks {
    by_token: HashMap<String, Lock>,
    by_root: BTreeMap<String, Vec<String>>,
    expiry: BinaryHeap<Reverse<(Instant, String)>>,
}

impl SpaceLocks {
    fn remove(&mut self, token: &str, total: &AtomicUsize) -> Option<Lock> {
        let lock = self.by_token.remove(token)?;
        if let Some(v) = self.by_root.get_mut(lock.root.as_str()) {
            v.retain(|t| t != token);
            if v.is_empty() {
                self.by_root.remove(lock.root.as_str());
            }
        }
        total.fetch_sub(1, Ordering::Relaxed);
        Some(lock)
    }

    fn purge(&mut self, now: Instant, total: &AtomicUsize) {
        while let Some(Reverse((at, _))) = self.expiry.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, token))) = self.expiry.pop() else {
                break;
            };
            if self.by_token.get(&token).is_some_and(|l| l.expires <= now) {
                self.remove(&token, total);
            }
        }
        // Refreshes leave stale heap entries; rebuild when they dominate.
        if self.expiry.len() > 4 * self.by_token.len() + 64 {
            self.expiry = self
                .by_token
                .iter()
                .map(|(t, l)| Reverse((l.expires, t.clone())))
                .collect();
        }
    }

    /// Tokens of the locks rooted at exactly `path`.
    fn at(&self, path: &str) -> impl Iterator<Item = (&String, &Lock)> {
        self.by_root
            .get(path)
            .into_iter()
            .flatten()
            .filter_map(|t| self.by_token.get_key_value(t))
    }

    /// Locks whose scope covers `path`: rooted at it, or at an ancestor with depth infinity.
    fn covering<'a>(
        &'a self,
        path: &'a SpacePath,
    ) -> impl Iterator<Item = (&'a String, &'a Lock)> + 'a {
        let exact = self.at(path.as_str());
        let above = path
            .ancestors()
            .flat_map(move |a| self.at(a))
            .filter(|(_, l)| l.depth == LockDepth::Infinity);
        exact.chain(above)
    }

    /// Locks rooted strictly below `path`.
    fn below<'a>(
        &'a self,
        path: &'a SpacePath,
    ) -> impl Iterator<Item = (&'a String, &'a Lock)> + 'a {
        let p = path.as_str();
        let start = if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        };
        self.by_root
            .range(start.clone()..)
            .take_while(move |(k, _)| k.starts_with(&start))
            .filter(move |(k, _)| k.as_str() != p)
            .flat_map(|(_, v)| v.iter())
            .filter_map(|t| self.by_token.get_key_value(t))
    }
}

/// The lock manager of the whole server: one lock table per space.
pub struct LockManager {
    spaces: DashMap<SpaceKey, Arc<Mutex<SpaceLocks>>>,
    total: AtomicUsize,
    config: LockConfig,
    clock: Arc<dyn Clock>,
}

/// A fresh `opaquelocktoken:` URI with a random (version 4) UUID (RFC 4918 §6.5).
pub fn new_lock_token() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "opaquelocktoken:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl LockManager {
    pub fn new(config: LockConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    pub fn with_clock(config: LockConfig, clock: Arc<dyn Clock>) -> Self {
        LockManager {
            spaces: DashMap::new(),
            total: AtomicUsize::new(0),
            config,
            clock,
        }
    }

    /// Live locks in the whole server.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Runs `f` on the space's table after purging its expired locks; drops empty tables.
    fn with_space<R>(
        &self,
        space: &SpaceKey,
        create: bool,
        f: impl FnOnce(&mut SpaceLocks, Instant) -> R,
    ) -> Option<R> {
        let table = match self.spaces.get(space) {
            Some(t) => Arc::clone(t.value()),
            None if create => Arc::clone(self.spaces.entry(space.clone()).or_default().value()),
            None => return None,
        };
        let now = self.clock.now();
        let (r, empty) = {
            let mut t = table.lock();
            t.purge(now, &self.total);
            let r = f(&mut t, now);
            (r, t.by_token.is_empty())
        };
        drop(table);
        if empty {
            // Only when no other request holds the table (all clones come through the map's shard lock).
            self.spaces.remove_if(space, |_, t| {
                Arc::strong_count(t) == 1 && t.lock().by_token.is_empty()
            });
        }
        Some(r)
    }

    /// LOCK: grants a new lock or reports the conflicting lock's root.
    pub fn lock(&self, space: &SpaceKey, req: LockRequest<'_>) -> Result<LockInfo, LockError> {
        if req
            .owner
            .as_ref()
            .is_some_and(|o| o.len() > DAV_LOCK_OWNER_LEN_MAX)
        {
            return Err(LockError::OwnerTooLarge);
        }
        let timeout = req.timeout.clamp(
            Duration::from_secs(1),
            self.config.max_timeout.max(Duration::from_secs(1)),
        );
        let r = self.with_space(space, true, |t, now| {
            let conflicts =
                |l: &Lock| l.scope == LockScope::Exclusive || req.scope == LockScope::Exclusive;
            if let Some((_, l)) = t.covering(req.path).find(|(_, l)| conflicts(l)) {
                return Err(LockError::Conflict {
                    root: l.root.clone(),
                });
            }
            if req.depth == LockDepth::Infinity {
                if let Some((_, l)) = t.below(req.path).find(|(_, l)| conflicts(l)) {
                    return Err(LockError::Conflict {
                        root: l.root.clone(),
                    });
                }
            }
            if t.by_token.len() >= self.config.per_space_max {
                return Err(LockError::TooManyLocks);
            }
            if self.total.fetch_add(1, Ordering::Relaxed) >= self.config.total_max {
                self.total.fetch_sub(1, Ordering::Relaxed);
                return Err(LockError::TooManyLocks);
            }
            let token = new_lock_token();
            let lock = Lock {
                root: req.path.clone(),
                scope: req.scope,
                depth: req.depth,
                owner: req.owner.clone(),
                principal: req.principal.to_owned(),
                timeout,
                expires: now + timeout,
                created_resource: !req.resource_exists,
            };
            let info = lock.info(&token, now);
            t.by_root
                .entry(req.path.as_str().to_owned())
                .or_default()
                .push(token.clone());
            t.expiry.push(Reverse((lock.expires, token.clone())));
            t.by_token.insert(token, lock);
            Ok(info)
        });
        r.unwrap_or(Err(LockError::NoSuchLock))
    }

    /// LOCK refresh (no body): the first submitted token naming a live lock that covers `path`
    /// gets a new timeout.
    pub fn refresh(
        &self,
        space: &SpaceKey,
        path: &SpacePath,
        tokens: &[&str],
        timeout: Duration,
        principal: &str,
    ) -> Result<LockInfo, LockError> {
        let timeout = timeout.clamp(
            Duration::from_secs(1),
            self.config.max_timeout.max(Duration::from_secs(1)),
        );
        self.with_space(space, false, |t, now| {
            let mut err = LockError::NoSuchLock;
            for tok in tokens {
                let Some(l) = t.by_token.get_mut(*tok) else {
                    continue;
                };
                if !l.covers(path.as_str()) {
                    err = LockError::NotInScope;
                    continue;
                }
                if l.principal != principal {
                    err = LockError::NotOwner;
                    continue;
                }
                l.timeout = timeout;
                l.expires = now + timeout;
                let info = l.info(tok, now);
                t.expiry.push(Reverse((now + timeout, (*tok).to_owned())));
                return Ok(info);
            }
            Err(err)
        })
        .unwrap_or(Err(LockError::NoSuchLock))
    }

    /// UNLOCK: removes the lock named by `token`, which must cover `path` and belong to `principal`.
    pub fn unlock(
        &self,
        space: &SpaceKey,
        path: &SpacePath,
        token: &str,
        principal: &str,
    ) -> Result<LockInfo, LockError> {
        self.with_space(space, false, |t, now| {
            let l = t.by_token.get(token).ok_or(LockError::NoSuchLock)?;
            if !l.covers(path.as_str()) {
                return Err(LockError::NotInScope);
            }
            if l.principal != principal {
                return Err(LockError::NotOwner);
            }
            let info = l.info(token, now);
            t.remove(token, &self.total);
            Ok(info)
        })
        .unwrap_or(Err(LockError::NoSuchLock))
    }

    /// Every live lock with the time it has left (saved at shutdown).
    pub fn export(&self) -> Vec<SavedLock> {
        let now = self.clock.now();
        let mut out = Vec::with_capacity(self.total());
        for entry in self.spaces.iter() {
            let t = entry.value().lock();
            for (token, l) in t.by_token.iter().filter(|(_, l)| l.expires > now) {
                out.push(SavedLock {
                    tenant: entry.key().tenant.clone(),
                    user: entry.key().user.clone(),
                    token: token.clone(),
                    root: l.root.segments().map(str::to_owned).collect(),
                    exclusive: l.scope == LockScope::Exclusive,
                    infinity: l.depth == LockDepth::Infinity,
                    owner: l.owner.clone(),
                    principal: l.principal.clone(),
                    timeout_s: l.timeout.as_secs(),
                    remaining_ms: l.expires.duration_since(now).as_millis() as u64,
                    created_resource: l.created_resource,
                });
            }
        }
        out
    }

    /// Takes back saved locks, each with `elapsed` (the time since the save) taken off what it
    /// had left. Entries that expired meanwhile, that are malformed, that conflict with a lock
    /// already here or that exceed the limits are skipped. Returns how many were restored.
    pub fn restore(&self, saved: Vec<SavedLock>, elapsed: Duration) -> usize {
        let max_timeout = self.config.max_timeout.max(Duration::from_secs(1));
        let mut restored = 0;
        for s in saved {
            let left = Duration::from_millis(s.remaining_ms).saturating_sub(elapsed);
            let Ok(root) = SpacePath::from_segments(&s.root) else {
                continue;
            };
            if left.is_zero()
                || !s.token.starts_with("opaquelocktoken:")
                || s.owner
                    .as_ref()
                    .is_some_and(|o| o.len() > DAV_LOCK_OWNER_LEN_MAX)
            {
                continue;
            }
            let timeout =
                Duration::from_secs(s.timeout_s).clamp(Duration::from_secs(1), max_timeout);
            let scope = if s.exclusive {
                LockScope::Exclusive
            } else {
                LockScope::Shared
            };
            let depth = if s.infinity {
                LockDepth::Infinity
            } else {
                LockDepth::Zero
            };
            let space = SpaceKey {
                tenant: s.tenant,
                user: s.user,
            };
            let (token, owner, principal) = (s.token, s.owner, s.principal);
            let created_resource = s.created_resource;
            let ok = self.with_space(&space, true, |t, now| {
                let conflicts =
                    |l: &Lock| l.scope == LockScope::Exclusive || scope == LockScope::Exclusive;
                let clash = t.covering(&root).any(|(_, l)| conflicts(l))
                    || (depth == LockDepth::Infinity && t.below(&root).any(|(_, l)| conflicts(l)));
                if clash
                    || t.by_token.contains_key(&token)
                    || t.by_token.len() >= self.config.per_space_max
                {
                    return false;
                }
                if self.total.fetch_add(1, Ordering::Relaxed) >= self.config.total_max {
                    self.total.fetch_sub(1, Ordering::Relaxed);
                    return false;
                }
                let expires = now + left.min(timeout);
                t.by_root
                    .entry(root.as_str().to_owned())
                    .or_default()
                    .push(token.clone());
                t.expiry.push(Reverse((expires, token.clone())));
                t.by_token.insert(
                    token,
                    Lock {
                        root,
                        scope,
                        depth,
                        owner,
                        principal,
                        timeout,
                        expires,
                        created_resource,
                    },
                );
                true
            });
            if ok == Some(true) {
                restored += 1;
            }
        }
        restored
    }

    /// The live locks whose scope covers `path` (lockdiscovery, and the If evaluator's tokens).
    pub fn locks_covering(&self, space: &SpaceKey, path: &SpacePath) -> Vec<LockInfo> {
        self.with_space(space, false, |t, now| {
            t.covering(path).map(|(k, l)| l.info(k, now)).collect()
        })
        .unwrap_or_default()
    }

    /// The live lock with this token, if any.
    pub fn get(&self, space: &SpaceKey, token: &str) -> Option<LockInfo> {
        self.with_space(space, false, |t, now| {
            t.by_token.get(token).map(|l| l.info(token, now))
        })
        .flatten()
    }

    /// Before a write: every lock protecting what the write touches must have one of its
    /// tokens submitted by its own principal. Locks are grouped by root; for a root held by
    /// several shared locks one of them suffices. Err names the first unsatisfied root.
    pub fn check_write(
        &self,
        space: &SpaceKey,
        path: &SpacePath,
        scope: WriteScope,
        submitted: &[&str],
        principal: &str,
    ) -> Result<(), LockError> {
        self.with_space(space, false, |t, _| {
            let parent = path.parent();
            let mut relevant: Vec<(&String, &Lock)> = t.covering(path).collect();
            if scope.membership {
                if let Some(p) = &parent {
                    relevant.extend(t.at(p.as_str()).filter(|(_, l)| l.depth == LockDepth::Zero));
                }
            }
            if scope.subtree {
                relevant.extend(t.below(path));
            }
            let ok = |tok: &String, l: &Lock| {
                l.principal == principal && submitted.contains(&tok.as_str())
            };
            for (_, l) in &relevant {
                let root = &l.root;
                let satisfied = relevant.iter().any(|(tk, o)| &o.root == root && ok(tk, o));
                if !satisfied {
                    return Err(LockError::Locked { root: root.clone() });
                }
            }
            Ok(())
        })
        .unwrap_or(Ok(()))
    }

    /// After a successful DELETE (or the source side of MOVE): locks rooted at or below `path`
    /// are destroyed (RFC 4918 §9.6.1, §9.9.4: MOVE does not move locks). Returns how many.
    pub fn remove_tree(&self, space: &SpaceKey, path: &SpacePath) -> usize {
        self.with_space(space, false, |t, _| {
            let mut doomed: Vec<String> = t.at(path.as_str()).map(|(k, _)| k.clone()).collect();
            doomed.extend(t.below(path).map(|(k, _)| k.clone()));
            for tok in &doomed {
                t.remove(tok, &self.total);
            }
            doomed.len()
        })
        .unwrap_or(0)
    }

    /// Drops the locks of `space` last taken or refreshed more than `age` ago: those a
    /// deleted account of the same name took before the requester's account existed
    /// (`handin::access`). Returns how many.
    pub fn drop_taken_before(&self, space: &SpaceKey, age: Duration) -> usize {
        self.with_space(space, false, |t, now| {
            let doomed: Vec<String> = t
                .by_token
                .iter()
                .filter(|(_, l)| {
                    let taken = l.expires.checked_sub(l.timeout).unwrap_or(l.expires);
                    now.saturating_duration_since(taken) > age
                })
                .map(|(k, _)| k.clone())
                .collect();
            for tok in &doomed {
                t.remove(tok, &self.total);
            }
            doomed.len()
        })
        .unwrap_or(0)
    }

    /// After a successful MOVE: the source's locks go away; locks on the destination URL
    /// (whose tokens the client had to submit) stay, and an ancestor's depth-infinity lock
    /// covers the moved resource by path alone.
    pub fn on_move(&self, space: &SpaceKey, from: &SpacePath, _to: &SpacePath) -> usize {
        self.remove_tree(space, from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct ManualClock(Mutex<Instant>);
    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock()
        }
    }
    impl ManualClock {
        fn advance(&self, d: Duration) {
            *self.0.lock() += d;
        }
    }

    fn setup() -> (LockManager, Arc<ManualClock>, SpaceKey) {
        let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
        let m = LockManager::with_clock(LockConfig::default(), clock.clone());
        let s = SpaceKey {
            tenant: "t".into(),
            user: "u".into(),
        };
        (m, clock, s)
    }

    fn p(s: &str) -> SpacePath {
        SpacePath::from_segments(s.split('/').filter(|x| !x.is_empty())).unwrap()
    }

    fn req<'a>(
        path: &'a SpacePath,
        scope: LockScope,
        depth: LockDepth,
        who: &'a str,
    ) -> LockRequest<'a> {
        LockRequest {
            path,
            scope,
            depth,
            timeout: Duration::from_secs(100),
            owner: Some("<D:href>mailto:a@b</D:href>".into()),
            principal: who,
            resource_exists: true,
        }
    }

    use LockDepth::*;
    use LockScope::*;

    #[test]
    fn token_format() {
        let t = new_lock_token();
        let u = t.strip_prefix("opaquelocktoken:").unwrap();
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(t, new_lock_token());
    }

    #[test]
    fn locks_taken_before_an_age_are_dropped_newer_ones_stay() {
        let (m, clock, s) = setup();
        let (old, new) = (p("old.txt"), p("new.txt"));
        m.lock(&s, req(&old, Exclusive, Zero, "anna")).unwrap();
        clock.advance(Duration::from_secs(30));
        m.lock(&s, req(&new, Exclusive, Zero, "anna")).unwrap();
        clock.advance(Duration::from_secs(5));
        assert_eq!(m.drop_taken_before(&s, Duration::from_secs(10)), 1);
        assert!(m.locks_covering(&s, &old).is_empty());
        assert_eq!(m.locks_covering(&s, &new).len(), 1);
        assert_eq!(m.total(), 1);
        // Another space's table is not touched; a space without locks answers 0.
        let other = SpaceKey {
            tenant: "t".into(),
            user: "v".into(),
        };
        assert_eq!(m.drop_taken_before(&other, Duration::ZERO), 0);
    }

    #[test]
    fn exclusive_and_shared_conflicts() {
        let (m, _, s) = setup();
        let doc = p("a/doc.docx");
        let l1 = m.lock(&s, req(&doc, Exclusive, Zero, "anna")).unwrap();
        assert_eq!(l1.root, doc);
        assert_eq!(l1.owner.as_deref(), Some("<D:href>mailto:a@b</D:href>"));
        assert_eq!(
            m.lock(&s, req(&doc, Exclusive, Zero, "anna")),
            Err(LockError::Conflict { root: doc.clone() })
        );
        assert_eq!(
            m.lock(&s, req(&doc, Shared, Zero, "bo")),
            Err(LockError::Conflict { root: doc.clone() })
        );

        let f = p("a/f.txt");
        m.lock(&s, req(&f, Shared, Zero, "anna")).unwrap();
        m.lock(&s, req(&f, Shared, Zero, "bo")).unwrap();
        assert_eq!(
            m.lock(&s, req(&f, Exclusive, Zero, "cy")),
            Err(LockError::Conflict { root: f.clone() })
        );
        assert_eq!(m.locks_covering(&s, &f).len(), 2);
        assert_eq!(m.total(), 3);
    }

    #[test]
    fn depth_infinity_conflicts_both_ways() {
        let (m, _, s) = setup();
        let a = p("a");
        let deep = p("a/b/c.txt");
        m.lock(&s, req(&deep, Exclusive, Zero, "anna")).unwrap();
        // An infinity lock on an ancestor conflicts with the lock below.
        assert_eq!(
            m.lock(&s, req(&a, Exclusive, Infinity, "bo")),
            Err(LockError::Conflict { root: deep.clone() })
        );
        // A depth-0 lock on the ancestor does not.
        m.lock(&s, req(&a, Shared, Zero, "bo")).unwrap();
        // Sibling prefix "a/b/c.txtx" is not below "a/b/c.txt".
        m.lock(&s, req(&p("a/b/c.txtx"), Exclusive, Zero, "bo"))
            .unwrap();

        let (m, _, s) = setup();
        m.lock(&s, req(&p("x"), Exclusive, Infinity, "anna"))
            .unwrap();
        assert_eq!(
            m.lock(&s, req(&p("x/y/z"), Shared, Zero, "bo")),
            Err(LockError::Conflict { root: p("x") })
        );
        m.lock(&s, req(&p("xy"), Exclusive, Infinity, "bo"))
            .unwrap();
        assert_eq!(m.locks_covering(&s, &p("x/y/z")).len(), 1);
        assert_eq!(m.locks_covering(&s, &p("xy/q"))[0].root, p("xy"));
        // Root infinity lock conflicts with everything.
        assert_eq!(
            m.lock(&s, req(&SpacePath::root(), Shared, Infinity, "cy")),
            Err(LockError::Conflict { root: p("x") })
        );
    }

    #[test]
    fn check_write_needs_tokens() {
        let (m, _, s) = setup();
        let dir = p("dir");
        let file = p("dir/f");
        let l = m.lock(&s, req(&dir, Exclusive, Infinity, "anna")).unwrap();
        let tok = l.token.as_str();
        let locked = Err(LockError::Locked { root: dir.clone() });
        assert_eq!(
            m.check_write(&s, &file, WriteScope::CONTENT, &[], "anna"),
            locked
        );
        assert_eq!(
            m.check_write(&s, &file, WriteScope::CONTENT, &[tok], "anna"),
            Ok(())
        );
        assert_eq!(
            m.check_write(&s, &file, WriteScope::CONTENT, &[tok], "bo"),
            locked,
            "token of another principal"
        );
        assert_eq!(
            m.check_write(&s, &p("other"), WriteScope::CONTENT, &[], "bo"),
            Ok(())
        );
        // Deleting the parent of a locked subtree needs the token too.
        assert_eq!(
            m.check_write(&s, &SpacePath::root(), WriteScope::REMOVE_TREE, &[], "anna"),
            locked
        );
        assert_eq!(
            m.check_write(
                &s,
                &SpacePath::root(),
                WriteScope::REMOVE_TREE,
                &[tok],
                "anna"
            ),
            Ok(())
        );

        // Depth-0 lock on a collection protects its membership, not its members' content.
        let (m, _, s) = setup();
        let c = p("c");
        let l = m.lock(&s, req(&c, Exclusive, Zero, "anna")).unwrap();
        let member = p("c/new.txt");
        assert_eq!(
            m.check_write(&s, &member, WriteScope::CONTENT, &[], "bo"),
            Ok(())
        );
        assert_eq!(
            m.check_write(&s, &member, WriteScope::CREATE, &[], "bo"),
            Err(LockError::Locked { root: c.clone() })
        );
        assert_eq!(
            m.check_write(&s, &member, WriteScope::CREATE, &[&l.token], "anna"),
            Ok(())
        );
        assert_eq!(
            m.check_write(&s, &p("c/sub/x"), WriteScope::CREATE, &[], "bo"),
            Ok(())
        );
    }

    #[test]
    fn shared_locks_any_one_token() {
        let (m, _, s) = setup();
        let f = p("f");
        let a = m.lock(&s, req(&f, Shared, Zero, "anna")).unwrap();
        let _b = m.lock(&s, req(&f, Shared, Zero, "bo")).unwrap();
        assert_eq!(
            m.check_write(&s, &f, WriteScope::CONTENT, &[&a.token], "anna"),
            Ok(())
        );
        assert_eq!(
            m.check_write(&s, &f, WriteScope::CONTENT, &[&a.token], "bo"),
            Err(LockError::Locked { root: f.clone() })
        );
    }

    #[test]
    fn refresh_and_expiry() {
        let (m, clock, s) = setup();
        let f = p("doc.docx");
        let l = m.lock(&s, req(&f, Exclusive, Zero, "anna")).unwrap();
        assert_eq!(l.timeout, Duration::from_secs(100));
        clock.advance(Duration::from_secs(60));
        let r = m
            .refresh(
                &s,
                &f,
                &["opaquelocktoken:nope", &l.token],
                Duration::from_secs(100),
                "anna",
            )
            .unwrap();
        assert_eq!(r.remaining, Duration::from_secs(100));
        clock.advance(Duration::from_secs(60));
        // Still alive at t=120 thanks to the refresh at t=60.
        assert_eq!(m.locks_covering(&s, &f).len(), 1);
        assert_eq!(
            m.get(&s, &l.token).map(|i| i.remaining),
            Some(Duration::from_secs(40))
        );
        clock.advance(Duration::from_secs(41));
        assert!(m.locks_covering(&s, &f).is_empty(), "expired");
        assert_eq!(m.total(), 0);
        assert_eq!(
            m.refresh(&s, &f, &[&l.token], Duration::from_secs(1), "anna"),
            Err(LockError::NoSuchLock)
        );
        // Relocking after expiry works.
        m.lock(&s, req(&f, Exclusive, Zero, "bo")).unwrap();
    }

    #[test]
    fn refresh_errors_and_clamp() {
        let (m, _, s) = setup();
        let f = p("d/f");
        let l = m.lock(&s, req(&f, Exclusive, Zero, "anna")).unwrap();
        assert_eq!(
            m.refresh(&s, &p("d"), &[&l.token], Duration::from_secs(5), "anna"),
            Err(LockError::NotInScope)
        );
        assert_eq!(
            m.refresh(&s, &f, &[&l.token], Duration::from_secs(5), "bo"),
            Err(LockError::NotOwner)
        );
        let r = m
            .refresh(
                &s,
                &f,
                &[&l.token],
                Duration::from_secs(u64::MAX / 4),
                "anna",
            )
            .unwrap();
        assert_eq!(r.timeout, Duration::from_secs(DAV_LOCK_TIMEOUT_MAX_S));
        let g = p("g");
        let mut big = req(&g, Exclusive, Zero, "anna");
        big.timeout = Duration::from_secs(10_000_000);
        assert_eq!(
            m.lock(&s, big).unwrap().timeout,
            Duration::from_secs(DAV_LOCK_TIMEOUT_MAX_S)
        );
    }

    #[test]
    fn many_refreshes_keep_heap_bounded() {
        let (m, clock, s) = setup();
        let f = p("f");
        let l = m.lock(&s, req(&f, Exclusive, Zero, "anna")).unwrap();
        for _ in 0..1000 {
            clock.advance(Duration::from_secs(1));
            m.refresh(&s, &f, &[&l.token], Duration::from_secs(600), "anna")
                .unwrap();
        }
        let heap_len = m.spaces.get(&s).map(|t| t.lock().expiry.len()).unwrap_or(0);
        assert!(heap_len <= 4 + 64 + 1, "heap {heap_len}");
    }

    #[test]
    fn unlock_rules() {
        let (m, _, s) = setup();
        let d = p("d");
        let l = m.lock(&s, req(&d, Exclusive, Infinity, "anna")).unwrap();
        assert_eq!(
            m.unlock(&s, &p("e"), &l.token, "anna"),
            Err(LockError::NotInScope)
        );
        assert_eq!(m.unlock(&s, &d, &l.token, "bo"), Err(LockError::NotOwner));
        assert_eq!(
            m.unlock(&s, &d, "opaquelocktoken:x", "anna"),
            Err(LockError::NoSuchLock)
        );
        // A member URL inside an infinity lock may name it (RFC 4918 §9.11).
        let gone = m.unlock(&s, &p("d/x"), &l.token, "anna").unwrap();
        assert_eq!(gone.root, d);
        assert_eq!(m.total(), 0);
        assert!(m.spaces.is_empty(), "empty table dropped");
        assert_eq!(
            m.unlock(&s, &d, &l.token, "anna"),
            Err(LockError::NoSuchLock)
        );
    }

    #[test]
    fn delete_and_move_drop_locks() {
        let (m, _, s) = setup();
        m.lock(&s, req(&p("a/b"), Exclusive, Zero, "anna")).unwrap();
        m.lock(&s, req(&p("a/c/d"), Exclusive, Infinity, "anna"))
            .unwrap();
        let keep = m.lock(&s, req(&p("ab"), Exclusive, Zero, "anna")).unwrap();
        let dst = m.lock(&s, req(&p("z"), Exclusive, Zero, "anna")).unwrap();
        assert_eq!(m.on_move(&s, &p("a"), &p("z")), 2);
        assert!(m.locks_covering(&s, &p("a/b")).is_empty());
        assert!(m.get(&s, &keep.token).is_some());
        assert!(
            m.get(&s, &dst.token).is_some(),
            "destination URL keeps its lock"
        );
        assert_eq!(m.remove_tree(&s, &SpacePath::root()), 2);
        assert_eq!(m.total(), 0);
    }

    #[test]
    fn lock_on_unmapped_url_and_limits() {
        let (m, _, s) = setup();
        let (new, o) = (p("new.txt"), p("o"));
        let mut r = req(&new, Exclusive, Zero, "anna");
        r.resource_exists = false;
        assert!(m.lock(&s, r).unwrap().created_resource);
        let mut r = req(&o, Exclusive, Zero, "anna");
        r.owner = Some("x".repeat(DAV_LOCK_OWNER_LEN_MAX + 1));
        assert_eq!(m.lock(&s, r), Err(LockError::OwnerTooLarge));

        let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
        let cfg = LockConfig {
            per_space_max: 2,
            total_max: 3,
            ..LockConfig::default()
        };
        let m = LockManager::with_clock(cfg, clock);
        let s2 = SpaceKey {
            tenant: "t".into(),
            user: "v".into(),
        };
        m.lock(&s, req(&p("1"), Exclusive, Zero, "anna")).unwrap();
        m.lock(&s, req(&p("2"), Exclusive, Zero, "anna")).unwrap();
        assert_eq!(
            m.lock(&s, req(&p("3"), Exclusive, Zero, "anna")),
            Err(LockError::TooManyLocks)
        );
        m.lock(&s2, req(&p("1"), Exclusive, Zero, "bo")).unwrap();
        assert_eq!(
            m.lock(&s2, req(&p("2"), Exclusive, Zero, "bo")),
            Err(LockError::TooManyLocks)
        );
        assert_eq!(m.total(), 3);
    }
}
