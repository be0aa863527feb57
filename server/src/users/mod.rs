//! The user database: tenants, users, groups and app tokens in an append-only log in the data dir.
//!
//! Format, locking and the refresh protocol: `docs/auth.md`; sealed with the tenants' keys
//! under encryption at rest: `docs/security.md`.

mod files;
pub mod import;
mod log;
pub mod names;
pub mod password;
pub mod token;

pub use names::{parse_login, GroupName, NameError, TenantName, UserName};

use crate::crypt::Sealer;
use crate::limits::{
    GROUPS_PER_TENANT_MAX, GROUP_MEMBERS_MAX, GROUP_MEMBERS_PER_RECORD_MAX, TOKENS_PER_USER_MAX,
    TOKEN_LABEL_LEN_MAX, USER_LOG_COMPACT_MIN_BYTES, USER_LOG_COMPACT_RATIO,
    USER_LOG_COMPACT_TXN_OPS, USER_LOG_SEALED_BATCH_BYTES,
};
use files::{Files, LogHandle};
use log::{Entry, Op};
use parking_lot::{Mutex, RwLock};
use skab_engine::io::Storage;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Sub-directory of the data dir holding the user database.
pub const USERS_DIR: &str = "users";

/// Identity of an app token within its user (random, shown as 16 hex digits).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TokenId(pub u64);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

impl std::str::FromStr for TokenId {
    type Err = UserDbError;
    fn from_str(s: &str) -> Result<Self, UserDbError> {
        if s.len() != 16 {
            return Err(UserDbError::NoSuchToken);
        }
        u64::from_str_radix(s, 16)
            .map(TokenId)
            .map_err(|_| UserDbError::NoSuchToken)
    }
}

/// Why a user database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserDbError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("user database {path} is damaged: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error("another process is writing the user database")]
    Busy,
    #[error("no such tenant: {0}")]
    NoSuchTenant(TenantName),
    #[error("no such user: {1}@{0}")]
    NoSuchUser(TenantName, UserName),
    #[error("tenant {0} still has users; delete them first")]
    TenantNotEmpty(TenantName),
    #[error("no such group: {1} of tenant {0}")]
    NoSuchGroup(TenantName, GroupName),
    #[error("group exists: {1} of tenant {0}")]
    GroupExists(TenantName, GroupName),
    #[error("a group may have at most {GROUP_MEMBERS_MAX} members")]
    TooManyMembers,
    #[error("a tenant may have at most {GROUPS_PER_TENANT_MAX} groups")]
    TooManyGroups,
    #[error("tenant exists: {0}")]
    TenantExists(TenantName),
    #[error("user exists: {1}@{0}")]
    UserExists(TenantName, UserName),
    #[error("no such token")]
    NoSuchToken,
    #[error("a user may have at most {TOKENS_PER_USER_MAX} app tokens")]
    TooManyTokens,
    #[error("token label longer than {TOKEN_LABEL_LEN_MAX} bytes")]
    LabelTooLong,
    #[error("password hash: {0}")]
    Password(#[from] password::PasswordError),
    #[error("{0}")]
    Name(#[from] NameError),
    #[error("{0}")]
    Other(String),
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
struct TokenRec {
    id: TokenId,
    label: String,
    hash: [u8; 32],
    created: u64,
    last_used: Option<u64>,
}

#[derive(Debug, Clone)]
struct User {
    phc: Box<str>,
    quota: Option<u64>,
    disabled: bool,
    created: u64,
    /// Log offset of the last change to the password or the disabled flag.
    epoch: u64,
    tokens: Vec<TokenRec>,
}

#[derive(Debug, Clone, Default)]
struct Group {
    created: u64,
    members: BTreeSet<UserName>,
}

#[derive(Debug, Default)]
struct Tenant {
    created: u64,
    users: HashMap<UserName, User>,
    groups: HashMap<GroupName, Group>,
    /// Each user's groups (the reverse of `Group::members`, kept in step by `apply`).
    member_of: HashMap<UserName, BTreeSet<GroupName>>,
}

#[derive(Debug, Default)]
struct State {
    tenants: HashMap<TenantName, Tenant>,
    /// Keyed token hash to its owner.
    token_index: HashMap<[u8; 32], (TenantName, UserName, TokenId)>,
    /// Operations that did not fit the state when replayed (written by a buggy writer).
    ignored: u64,
}

/// A tenant as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantInfo {
    pub name: TenantName,
    pub created: u64,
    pub users: usize,
}

/// A user as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    pub tenant: TenantName,
    pub user: UserName,
    /// Own quota in bytes; `None` means the configured default.
    pub quota: Option<u64>,
    pub disabled: bool,
    pub created: u64,
    pub tokens: usize,
}

/// A group as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfo {
    pub name: GroupName,
    /// Sorted by name.
    pub members: Vec<UserName>,
    pub created: u64,
}

/// An app token as listed (its secret is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub id: TokenId,
    pub label: String,
    pub created: u64,
    pub last_used: Option<u64>,
}

/// What authentication needs of a user.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub phc: Box<str>,
    pub disabled: bool,
    /// Changes whenever the password or the disabled flag changes (cache invalidation).
    pub epoch: u64,
}

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing new in the log.
    Unchanged,
    /// This many operations were applied.
    Applied(usize),
    /// A writer holds the lock; try again later.
    Busy,
}

struct ReadPos {
    /// A compaction in any process renames a new log over the name, which the next refresh
    /// or write notices (another generation) and reloads.
    log: LogHandle,
    /// File offset just past the last applied transaction.
    applied_end: u64,
    /// `(applied_end, file length)` when the bytes past `applied_end` were found torn.
    torn_seen: Option<(u64, u64)>,
    /// What file offset 0 counts as (`Op::LogBase` of a compacted log, else 0): operations
    /// are numbered `base + offset`, and a user's epoch is such a number.
    base: u64,
    /// Operations in the current file (against the live records: when to compact).
    ops: u64,
}

/// What a compaction of the user log did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub ops_before: u64,
    pub ops_after: u64,
}

/// A frame's bytes and the operations it holds.
type Frame = (Vec<u8>, Vec<Op>);

/// The frames of `ops`, each with the operations it holds in the order they apply: each
/// operation in its own frame; or with a `sealer`, one tenant's operations that name users
/// sealed together in one frame (at most [`USER_LOG_SEALED_BATCH_BYTES`] of plain bytes, or
/// one operation), placed where that tenant's first of them was. Operations of different
/// tenants never depend on each other, so only each tenant's own order is kept: a plain
/// operation of a tenant (`TenantAdd`, `TenantDelete`, `TenantErase`) closes that tenant's
/// group, `LogBase` every group. A transaction that interleaves schools (a CSV import) thus
/// costs one seal per school and batch, not one per user.
fn frames(ops: &[Op], sealer: Option<&Sealer>) -> Result<Vec<Frame>, UserDbError> {
    let mut out = Vec::new();
    let Some(sealer) = sealer else {
        for op in ops {
            let mut f = Vec::new();
            log::encode(&mut f, &Entry::Op(op.clone())).map_err(UserDbError::Other)?;
            out.push((f, vec![op.clone()]));
        }
        return Ok(out);
    };
    enum Item {
        Plain(Op),
        Group(TenantName, Vec<Op>),
    }
    let mut items: Vec<Item> = Vec::new();
    // Each tenant's open group: its index in `items` and its plain bytes so far.
    let mut open: HashMap<TenantName, (usize, usize)> = HashMap::new();
    for op in ops {
        let Some(tenant) = op.sealed_tenant() else {
            match op {
                Op::TenantAdd { tenant, .. }
                | Op::TenantDelete { tenant }
                | Op::TenantErase { tenant } => {
                    open.remove(tenant);
                }
                _ => open.clear(),
            }
            items.push(Item::Plain(op.clone()));
            continue;
        };
        let len = postcard::to_allocvec(op)
            .map_err(|e| UserDbError::Other(e.to_string()))?
            .len();
        match open.get_mut(tenant) {
            Some((at, bytes)) if *bytes + len <= USER_LOG_SEALED_BATCH_BYTES => {
                *bytes += len;
                if let Item::Group(_, v) = &mut items[*at] {
                    v.push(op.clone());
                }
            }
            _ => {
                open.insert(tenant.clone(), (items.len(), len));
                items.push(Item::Group(tenant.clone(), vec![op.clone()]));
            }
        }
    }
    for item in items {
        let mut f = Vec::new();
        match item {
            Item::Plain(op) => {
                log::encode(&mut f, &Entry::Op(op.clone())).map_err(UserDbError::Other)?;
                out.push((f, vec![op]));
            }
            Item::Group(tenant, run) => {
                let plain =
                    postcard::to_allocvec(&run).map_err(|e| UserDbError::Other(e.to_string()))?;
                let sealed = sealer
                    .seal(tenant.as_str(), log::SEAL_WHAT, &plain)
                    .map_err(UserDbError::Other)?;
                log::encode(
                    &mut f,
                    &Entry::Sealed {
                        tenant,
                        ops: run.len() as u32,
                        sealed,
                    },
                )
                .map_err(UserDbError::Other)?;
                out.push((f, run));
            }
        }
    }
    Ok(out)
}

/// Appends `ops` as one transaction (the operations, then their commit) to `buf`.
fn encode_txn(buf: &mut Vec<u8>, ops: &[Op], sealer: Option<&Sealer>) -> Result<(), UserDbError> {
    let count = u32::try_from(ops.len())
        .map_err(|_| UserDbError::Other("too many operations in one transaction".into()))?;
    for (f, _) in frames(ops, sealer)? {
        buf.extend_from_slice(&f);
    }
    log::encode(buf, &Entry::Commit { ops: count }).map_err(UserDbError::Other)
}

/// A user plus the one new user to add, for import.
pub(crate) struct NewUser {
    pub tenant: TenantName,
    pub user: UserName,
    pub phc: String,
    /// Groups to put the user in (created when missing).
    pub groups: Vec<GroupName>,
}

/// An account as an import brings it (`UserDb::import_accounts`).
pub struct ImportedAccount {
    pub user: UserName,
    /// Argon2id PHC string.
    pub phc: String,
    pub disabled: bool,
    /// Unix seconds.
    pub created: u64,
}

/// The user database of one data dir. Cheap to share (`Arc`); all methods take `&self`.
pub struct UserDb {
    files: Files,
    /// Seals the records that name users (encryption at rest), if on.
    sealer: Option<Arc<Sealer>>,
    /// Operations in the clear were read that the sealer would seal (a compaction seals
    /// them).
    clear_seen: std::sync::atomic::AtomicBool,
    token_key: [u8; 32],
    state: RwLock<State>,
    io: Mutex<ReadPos>,
}

/// Bytes of log written per positioned write while appending or compacting.
const WRITE_CHUNK_BYTES: usize = 8 * 1024 * 1024;

impl UserDb {
    /// Opens (creating if needed) the user database under `data_dir/users` and loads it.
    /// Waits while another process writes.
    /// Sealed per tenant when the data dir has encryption at rest (`crypto::sealer`).
    pub fn open(data_dir: &Path) -> Result<UserDb, UserDbError> {
        UserDb::open_files(
            Files::on_disk(&data_dir.join(USERS_DIR))?,
            crate::crypt::sealer(data_dir),
        )
    }

    /// Opens (creating if needed) a user database on `storage`, which no other process may
    /// use: what the crash and fault-injection tests run it on.
    pub fn open_on(storage: Arc<dyn Storage>) -> Result<UserDb, UserDbError> {
        UserDb::open_files(Files::on(storage), None)
    }

    /// [`UserDb::open_on`], its records sealed by `sealer`.
    pub fn open_on_sealed(
        storage: Arc<dyn Storage>,
        sealer: Arc<Sealer>,
    ) -> Result<UserDb, UserDbError> {
        UserDb::open_files(Files::on(storage), Some(sealer))
    }

    fn open_files(files: Files, sealer: Option<Arc<Sealer>>) -> Result<UserDb, UserDbError> {
        files.init()?;
        let token_key = files.token_key()?;
        let log = files.open_log()?;
        let db = UserDb {
            files,
            sealer,
            clear_seen: Default::default(),
            token_key,
            state: RwLock::new(State::default()),
            io: Mutex::new(ReadPos {
                base: log.generation,
                log,
                applied_end: log::MAGIC.len() as u64,
                torn_seen: None,
                ops: 0,
            }),
        };
        {
            let mut io = db.io.lock();
            let _lock = db.files.lock(false, true)?;
            db.read_new(&mut io)?;
        }
        // Users made before the database was sealed (or by a command without the key) are
        // sealed now: the compaction rewrites the whole log sealed.
        if db.sealer.is_some() && db.clear_seen.load(std::sync::atomic::Ordering::Relaxed) {
            db.compact()?;
            db.clear_seen
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(db)
    }

    /// The directory holding the database files.
    pub fn dir(&self) -> &Path {
        self.files.dir()
    }

    /// Copies the database's files into the directory `dest` (a backup); consistent with
    /// every change made before the call. Returns the bytes copied.
    pub fn backup_to(&self, dest: &Path) -> Result<u64, UserDbError> {
        self.files.copy_to(dest)
    }

    /// The server secret that app tokens are hashed with.
    pub(crate) fn token_key(&self) -> &[u8; 32] {
        &self.token_key
    }

    /// Applies records appended since the last load. Never waits for a writer: if one holds
    /// the lock, returns [`Refresh::Busy`]. Cheap when nothing changed (the log's length and
    /// its first record).
    pub fn refresh(&self) -> Result<Refresh, UserDbError> {
        let mut io = self.io.lock();
        let len = self.files.len(&io.log)?;
        if (len == io.applied_end || io.torn_seen == Some((io.applied_end, len)))
            && !self.replaced(&io)?
        {
            return Ok(Refresh::Unchanged);
        }
        let Some(_lock) = self.files.lock(false, false)? else {
            return Ok(Refresh::Busy);
        };
        self.read_new(&mut io)
    }

    /// [`log::scan`] with this database's sealer; a record that cannot be read is
    /// corruption (never a torn tail to cut).
    fn scan(&self, bytes: &[u8], base: u64) -> Result<log::Scan, UserDbError> {
        let open = |tenant: &TenantName, sealed: &[u8]| -> Result<Option<Vec<Op>>, String> {
            let Some(s) = &self.sealer else {
                return Err("sealed record without a sealer".into());
            };
            match s.open(tenant.as_str(), log::SEAL_WHAT, sealed)? {
                None => Ok(None),
                Some(plain) => postcard::from_bytes(&plain)
                    .map(Some)
                    .map_err(|e| format!("sealed record of tenant {tenant}: {e}")),
            }
        };
        let opener: Option<log::Opener<'_>> = match self.sealer {
            Some(_) => Some(&open),
            None => None,
        };
        let scan = log::scan(bytes, base, opener).map_err(|why| UserDbError::Corrupt {
            path: self.dir().join(files::LOG_FILE),
            why,
        })?;
        if scan.clear_sealable > 0 {
            self.clear_seen
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(scan)
    }

    /// Whether a compaction replaced the log since `io` opened it.
    fn replaced(&self, io: &ReadPos) -> Result<bool, UserDbError> {
        Ok(self.files.open_log()?.generation != io.log.generation)
    }

    /// Loads the log now at its name from its start into a fresh state, then swaps it in
    /// (readers see the old state until then). Caller holds a lock.
    fn reload(&self, io: &mut ReadPos) -> Result<Refresh, UserDbError> {
        let log = self.files.open_log()?;
        let start = log::MAGIC.len() as u64;
        let len = self.files.len(&log)?;
        let bytes = self.files.read(&log, start, len)?;
        let scan = self.scan(&bytes, start)?;
        let n = scan.ops.len();
        let mut st = State::default();
        let mut base = 0;
        for (offset, op) in scan.ops {
            match op {
                Op::LogBase { base: b } => base = b,
                op => apply(&mut st, base + offset, op),
            }
        }
        *self.state.write() = st;
        *io = ReadPos {
            log,
            applied_end: scan.committed_end,
            torn_seen: scan.torn.then_some((scan.committed_end, len)),
            base,
            ops: n as u64,
        };
        Ok(Refresh::Applied(n))
    }

    /// Reads and applies complete transactions past `applied_end` (the whole log again if a
    /// compaction replaced it). Caller holds a lock.
    fn read_new(&self, io: &mut ReadPos) -> Result<Refresh, UserDbError> {
        if self.replaced(io)? {
            return self.reload(io);
        }
        let len = self.files.len(&io.log)?;
        if len < io.applied_end {
            return Err(UserDbError::Corrupt {
                path: self.dir().join(files::LOG_FILE),
                why: format!("log shrank below applied data ({len} < {})", io.applied_end),
            });
        }
        if len == io.applied_end {
            return Ok(Refresh::Unchanged);
        }
        let bytes = self.files.read(&io.log, io.applied_end, len)?;
        let scan = self.scan(&bytes, io.applied_end)?;
        let n = scan.ops.len();
        if n > 0 {
            let mut st = self.state.write();
            for (offset, op) in scan.ops {
                match op {
                    Op::LogBase { base } => io.base = base,
                    op => apply(&mut st, io.base + offset, op),
                }
            }
        }
        io.ops += n as u64;
        io.applied_end = scan.committed_end;
        io.torn_seen = scan.torn.then_some((io.applied_end, len));
        Ok(if n > 0 {
            Refresh::Applied(n)
        } else {
            Refresh::Unchanged
        })
    }

    /// Runs one write transaction: takes the exclusive lock (waiting), catches up with the
    /// log, cuts a torn tail, lets `build` check the fresh state and return the operations,
    /// appends them with a commit record, makes them durable once, and applies them.
    fn transact<T>(
        &self,
        build: impl FnOnce(&State) -> Result<(Vec<Op>, T), UserDbError>,
    ) -> Result<T, UserDbError> {
        let mut io = self.io.lock();
        let _lock = self.files.lock(true, true)?.ok_or(UserDbError::Busy)?;
        self.append_locked(&mut io, build)
    }

    fn append_locked<T>(
        &self,
        io: &mut ReadPos,
        build: impl FnOnce(&State) -> Result<(Vec<Op>, T), UserDbError>,
    ) -> Result<T, UserDbError> {
        self.read_new(io)?;
        self.set_aside_torn_tail(io)?;
        let (ops, out) = {
            let st = self.state.read();
            build(&st)?
        };
        if ops.is_empty() {
            return Ok(out);
        }
        let start = io.applied_end;
        let mut buf = Vec::with_capacity(ops.len() * 128);
        let mut applied = Vec::with_capacity(ops.len());
        let mut written = start;
        let count = u32::try_from(ops.len())
            .map_err(|_| UserDbError::Other("too many operations in one transaction".into()))?;
        // Applied in the log's order (a sealed frame gathers one tenant's operations).
        for (frame, in_frame) in frames(&ops, self.sealer.as_deref())? {
            let at = io.base + written + buf.len() as u64;
            applied.extend(
                in_frame
                    .into_iter()
                    .enumerate()
                    .map(|(j, op)| (at + j as u64, op)),
            );
            buf.extend_from_slice(&frame);
            if buf.len() >= WRITE_CHUNK_BYTES {
                self.files.write(&io.log, written, &buf, false)?;
                written += buf.len() as u64;
                buf.clear();
            }
        }
        log::encode(&mut buf, &Entry::Commit { ops: count }).map_err(UserDbError::Other)?;
        self.files.write(&io.log, written, &buf, true)?;
        written += buf.len() as u64;
        let mut st = self.state.write();
        for (offset, op) in applied {
            apply(&mut st, offset, op);
        }
        io.applied_end = written;
        io.ops += u64::from(count);
        Ok(out)
    }

    /// Cuts the bytes after the last complete transaction (a writer died mid-transaction),
    /// keeping a copy of them aside. Caller holds the exclusive lock.
    fn set_aside_torn_tail(&self, io: &mut ReadPos) -> Result<(), UserDbError> {
        let len = self.files.len(&io.log)?;
        if len > io.applied_end {
            let torn = self.files.read(&io.log, io.applied_end, len)?;
            self.files.cut_torn_tail(&io.log, io.applied_end, &torn)?;
            io.torn_seen = None;
        }
        Ok(())
    }

    /// Records that the live state needs: tenants, users and app tokens.
    fn live_records(&self) -> u64 {
        let st = self.state.read();
        st.tenants
            .values()
            .map(|t| {
                1 + t
                    .users
                    .values()
                    .map(|u| 1 + u.tokens.len() as u64)
                    .sum::<u64>()
                    + t.groups
                        .values()
                        .map(|g| 1 + (g.members.len() / GROUP_MEMBERS_PER_RECORD_MAX) as u64)
                        .sum::<u64>()
            })
            .sum()
    }

    /// Whether the log has grown well past what the live state needs (app-token uses above
    /// all: one record per used token every few minutes) and is worth compacting.
    pub fn compaction_due(&self) -> bool {
        let (bytes, ops) = {
            let io = self.io.lock();
            (io.applied_end, io.ops)
        };
        bytes >= USER_LOG_COMPACT_MIN_BYTES
            && ops > USER_LOG_COMPACT_RATIO.saturating_mul(self.live_records() + 1)
    }

    /// Rewrites the log as the live state alone (a record per tenant, user and app token,
    /// epochs kept, numbering continued past the old log's end), atomically: a temp file,
    /// fsync, rename over the log, directory fsync. Other processes reload at their next
    /// refresh or write. Waits while another process writes.
    pub fn compact(&self) -> Result<Compaction, UserDbError> {
        let mut io = self.io.lock();
        let _lock = self.files.lock(true, true)?.ok_or(UserDbError::Busy)?;
        self.read_new(&mut io)?;
        self.set_aside_torn_tail(&mut io)?;
        let (bytes_before, ops_before) = (io.applied_end, io.ops);
        let base = io.base + io.applied_end;
        let mut f = self.files.compact_writer()?;
        let mut buf = log::MAGIC.to_vec();
        let mut txn = vec![Op::LogBase { base }];
        let mut ops_after = 0u64;
        {
            let st = self.state.read();
            for (tenant, t) in &st.tenants {
                txn.push(Op::TenantAdd {
                    tenant: tenant.clone(),
                    at: t.created,
                });
                for (user, u) in &t.users {
                    txn.push(Op::UserRestore {
                        tenant: tenant.clone(),
                        user: user.clone(),
                        phc: u.phc.to_string(),
                        quota: u.quota,
                        disabled: u.disabled,
                        created: u.created,
                        epoch: u.epoch,
                    });
                    for k in &u.tokens {
                        txn.push(Op::TokenRestore {
                            tenant: tenant.clone(),
                            user: user.clone(),
                            id: k.id,
                            label: k.label.clone(),
                            hash: k.hash,
                            created: k.created,
                            last_used: k.last_used,
                        });
                    }
                    if txn.len() >= USER_LOG_COMPACT_TXN_OPS {
                        encode_txn(&mut buf, &txn, self.sealer.as_deref())?;
                        ops_after += txn.len() as u64;
                        txn.clear();
                        if buf.len() >= WRITE_CHUNK_BYTES {
                            f.write(&buf)?;
                            buf.clear();
                        }
                    }
                }
                // Groups after the users: members must exist when a group's record applies.
                for (group, g) in &t.groups {
                    let members: Vec<UserName> = g.members.iter().cloned().collect();
                    txn.extend(group_add_ops(tenant, group, &members, g.created));
                    if txn.len() >= USER_LOG_COMPACT_TXN_OPS {
                        encode_txn(&mut buf, &txn, self.sealer.as_deref())?;
                        ops_after += txn.len() as u64;
                        txn.clear();
                    }
                }
            }
        }
        if !txn.is_empty() {
            encode_txn(&mut buf, &txn, self.sealer.as_deref())?;
            ops_after += txn.len() as u64;
        }
        f.write(&buf)?;
        let log = f.install()?;
        let bytes_after = self.files.len(&log)?;
        *io = ReadPos {
            log,
            applied_end: bytes_after,
            torn_seen: None,
            base,
            ops: ops_after,
        };
        Ok(Compaction {
            bytes_before,
            bytes_after,
            ops_before,
            ops_after,
        })
    }

    // ----- reads -----

    /// Credentials of `user@tenant`, if the user exists.
    pub fn credentials(&self, tenant: &TenantName, user: &UserName) -> Option<Credentials> {
        let st = self.state.read();
        let u = st.tenants.get(tenant)?.users.get(user)?;
        Some(Credentials {
            phc: u.phc.clone(),
            disabled: u.disabled,
            epoch: u.epoch,
        })
    }

    /// `(disabled, epoch)` of the user's credentials, without copying the password hash
    /// (what every request that the credential cache or a token answers needs).
    pub fn credential_state(&self, tenant: &TenantName, user: &UserName) -> Option<(bool, u64)> {
        let st = self.state.read();
        let u = st.tenants.get(tenant)?.users.get(user)?;
        Some((u.disabled, u.epoch))
    }

    /// The user's info, if the user exists.
    pub fn user(&self, tenant: &TenantName, user: &UserName) -> Option<UserInfo> {
        let st = self.state.read();
        let u = st.tenants.get(tenant)?.users.get(user)?;
        Some(user_info(tenant, user, u))
    }

    /// All tenants, sorted by name.
    pub fn tenants(&self) -> Vec<TenantInfo> {
        let st = self.state.read();
        let mut v: Vec<TenantInfo> = st
            .tenants
            .iter()
            .map(|(n, t)| TenantInfo {
                name: n.clone(),
                created: t.created,
                users: t.users.len(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Groups of a tenant, sorted by name.
    pub fn groups(&self, tenant: &TenantName) -> Result<Vec<GroupInfo>, UserDbError> {
        let st = self.state.read();
        let t = st
            .tenants
            .get(tenant)
            .ok_or_else(|| UserDbError::NoSuchTenant(tenant.clone()))?;
        let mut v: Vec<GroupInfo> = t.groups.iter().map(|(n, g)| group_info(n, g)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// One group, if it exists.
    pub fn group(&self, tenant: &TenantName, group: &GroupName) -> Option<GroupInfo> {
        let st = self.state.read();
        let g = st.tenants.get(tenant)?.groups.get(group)?;
        Some(group_info(group, g))
    }

    /// The groups `user` is a member of, sorted by name (empty for an unknown user).
    pub fn groups_of(&self, tenant: &TenantName, user: &UserName) -> Vec<GroupName> {
        let st = self.state.read();
        st.tenants
            .get(tenant)
            .and_then(|t| t.member_of.get(user))
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Users of a tenant, sorted by name.
    pub fn users(&self, tenant: &TenantName) -> Result<Vec<UserInfo>, UserDbError> {
        let st = self.state.read();
        let t = st
            .tenants
            .get(tenant)
            .ok_or_else(|| UserDbError::NoSuchTenant(tenant.clone()))?;
        let mut v: Vec<UserInfo> = t
            .users
            .iter()
            .map(|(n, u)| user_info(tenant, n, u))
            .collect();
        v.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(v)
    }

    /// Number of users in all tenants.
    pub fn user_count(&self) -> usize {
        self.state
            .read()
            .tenants
            .values()
            .map(|t| t.users.len())
            .sum()
    }

    /// App tokens of a user, sorted by creation.
    pub fn tokens(
        &self,
        tenant: &TenantName,
        user: &UserName,
    ) -> Result<Vec<TokenInfo>, UserDbError> {
        let st = self.state.read();
        let u = get_user(&st, tenant, user)?;
        let mut v: Vec<TokenInfo> = u
            .tokens
            .iter()
            .map(|t| TokenInfo {
                id: t.id,
                label: t.label.clone(),
                created: t.created,
                last_used: t.last_used,
            })
            .collect();
        v.sort_by_key(|t| (t.created, t.id));
        Ok(v)
    }

    /// Owner of an app token, by the token's keyed hash.
    pub(crate) fn token_owner(&self, hash: &[u8; 32]) -> Option<(TenantName, UserName, TokenId)> {
        self.state.read().token_index.get(hash).cloned()
    }

    /// Last recorded use of a token, if the token exists.
    pub(crate) fn token_last_used(
        &self,
        tenant: &TenantName,
        user: &UserName,
        id: TokenId,
    ) -> Option<Option<u64>> {
        let st = self.state.read();
        let u = st.tenants.get(tenant)?.users.get(user)?;
        u.tokens.iter().find(|t| t.id == id).map(|t| t.last_used)
    }

    /// Operations skipped on replay because they did not fit (0 in a healthy log).
    pub fn ignored_ops(&self) -> u64 {
        self.state.read().ignored
    }

    // ----- writes -----

    /// Creates a tenant.
    pub fn add_tenant(&self, tenant: &TenantName) -> Result<(), UserDbError> {
        self.transact(|st| {
            if st.tenants.contains_key(tenant) {
                return Err(UserDbError::TenantExists(tenant.clone()));
            }
            Ok((
                vec![Op::TenantAdd {
                    tenant: tenant.clone(),
                    at: now_unix(),
                }],
                (),
            ))
        })
    }

    /// Adds a user with an argon2id PHC hash, creating the tenant if missing.
    pub fn add_user(
        &self,
        tenant: &TenantName,
        user: &UserName,
        phc: &str,
    ) -> Result<(), UserDbError> {
        password::check_phc(phc)?;
        self.transact(|st| {
            let mut ops = Vec::new();
            let at = now_unix();
            match st.tenants.get(tenant) {
                None => ops.push(Op::TenantAdd {
                    tenant: tenant.clone(),
                    at,
                }),
                Some(t) if t.users.contains_key(user) => {
                    return Err(UserDbError::UserExists(tenant.clone(), user.clone()))
                }
                Some(_) => {}
            }
            ops.push(Op::UserAdd {
                tenant: tenant.clone(),
                user: user.clone(),
                phc: phc.to_string(),
                at,
            });
            Ok((ops, ()))
        })
    }

    /// Adds many users in one transaction (one fsync). Tenants are created as needed.
    /// Fails as a whole, writing nothing, if any user exists; returns those that do.
    pub(crate) fn add_users(
        &self,
        new: Vec<NewUser>,
    ) -> Result<Result<usize, Vec<usize>>, UserDbError> {
        self.transact(|st| {
            let existing: Vec<usize> = new
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    st.tenants
                        .get(&n.tenant)
                        .is_some_and(|t| t.users.contains_key(&n.user))
                })
                .map(|(i, _)| i)
                .collect();
            if !existing.is_empty() {
                return Ok((Vec::new(), Err(existing)));
            }
            let at = now_unix();
            let mut ops = Vec::with_capacity(new.len() + 16);
            let mut new_tenants = std::collections::HashSet::new();
            let mut joins: BTreeMap<(TenantName, GroupName), Vec<UserName>> = BTreeMap::new();
            let count = new.len();
            for n in new {
                if !st.tenants.contains_key(&n.tenant) && new_tenants.insert(n.tenant.clone()) {
                    ops.push(Op::TenantAdd {
                        tenant: n.tenant.clone(),
                        at,
                    });
                }
                for g in n.groups {
                    joins
                        .entry((n.tenant.clone(), g))
                        .or_default()
                        .push(n.user.clone());
                }
                ops.push(Op::UserAdd {
                    tenant: n.tenant,
                    user: n.user,
                    phc: n.phc,
                    at,
                });
            }
            // Group records after the users they name (they apply in order).
            let mut new_groups: HashMap<&TenantName, usize> = HashMap::new();
            for ((tenant, group), members) in &joins {
                let existing = st.tenants.get(tenant).and_then(|t| t.groups.get(group));
                let size = existing.map_or(0, |g| g.members.len()) + members.len();
                if size > GROUP_MEMBERS_MAX {
                    return Err(UserDbError::TooManyMembers);
                }
                match existing {
                    Some(_) => {
                        for c in members.chunks(GROUP_MEMBERS_PER_RECORD_MAX) {
                            ops.push(Op::GroupMembers {
                                tenant: tenant.clone(),
                                group: group.clone(),
                                add: c.to_vec(),
                                remove: Vec::new(),
                            });
                        }
                    }
                    None => {
                        let n = new_groups.entry(tenant).or_default();
                        *n += 1;
                        let had = st.tenants.get(tenant).map_or(0, |t| t.groups.len());
                        if had + *n > GROUPS_PER_TENANT_MAX {
                            return Err(UserDbError::TooManyGroups);
                        }
                        ops.extend(group_add_ops(tenant, group, members, at));
                    }
                }
            }
            Ok((ops, Ok(count)))
        })
    }

    /// Adds the accounts and groups of an exported tenant (`docs/export.md`) in one
    /// transaction, keeping their creation times; the tenant is created when missing. Fails
    /// as a whole, writing nothing, when any account or group exists.
    pub fn import_accounts(
        &self,
        tenant: &TenantName,
        tenant_created: u64,
        users: &[ImportedAccount],
        groups: &[(GroupName, u64, Vec<UserName>)],
    ) -> Result<(), UserDbError> {
        for u in users {
            password::check_phc(&u.phc)?;
        }
        self.transact(|st| {
            let mut ops = Vec::new();
            let t = st.tenants.get(tenant);
            if t.is_none() {
                ops.push(Op::TenantAdd {
                    tenant: tenant.clone(),
                    at: tenant_created,
                });
            }
            let had_groups = t.map_or(0, |t| t.groups.len());
            let new_groups = groups
                .iter()
                .filter(|(g, ..)| !t.is_some_and(|t| t.groups.contains_key(g)))
                .count();
            if had_groups + new_groups > GROUPS_PER_TENANT_MAX {
                return Err(UserDbError::TooManyGroups);
            }
            for u in users {
                if t.is_some_and(|t| t.users.contains_key(&u.user)) {
                    return Err(UserDbError::UserExists(tenant.clone(), u.user.clone()));
                }
                ops.extend(imported_account_ops(tenant, u));
            }
            for (g, at, members) in groups {
                let members = dedup(members);
                match t.and_then(|t| t.groups.get(g)) {
                    // One user's export into a tenant that has the group: they join it.
                    Some(existing) => {
                        ops.extend(group_join_ops(tenant, g, existing, &members)?);
                    }
                    None => {
                        if members.len() > GROUP_MEMBERS_MAX {
                            return Err(UserDbError::TooManyMembers);
                        }
                        ops.extend(group_add_ops(tenant, g, &members, *at));
                    }
                }
            }
            Ok((ops, ()))
        })
    }

    /// `skab import --merge`: adds the accounts and groups the tenant does not have (the
    /// tenant too, when missing) in one transaction, and the members a group of both does not
    /// have yet; an account or group the tenant has is kept as it is (password, disabled,
    /// creation time). Returns (accounts added, groups added, members added).
    pub fn merge_accounts(
        &self,
        tenant: &TenantName,
        tenant_created: u64,
        users: &[ImportedAccount],
        groups: &[(GroupName, u64, Vec<UserName>)],
    ) -> Result<(usize, usize, usize), UserDbError> {
        for u in users {
            password::check_phc(&u.phc)?;
        }
        self.transact(|st| {
            let mut ops = Vec::new();
            let t = st.tenants.get(tenant);
            if t.is_none() {
                ops.push(Op::TenantAdd {
                    tenant: tenant.clone(),
                    at: tenant_created,
                });
            }
            let mut added = (0, 0, 0);
            for u in users {
                if t.is_some_and(|t| t.users.contains_key(&u.user)) {
                    continue;
                }
                added.0 += 1;
                ops.extend(imported_account_ops(tenant, u));
            }
            let had_groups = t.map_or(0, |t| t.groups.len());
            for (g, at, members) in groups {
                let members = dedup(members);
                match t.and_then(|t| t.groups.get(g)) {
                    Some(existing) => {
                        let new: Vec<UserName> = members
                            .into_iter()
                            .filter(|m| !existing.members.contains(m))
                            .collect();
                        ops.extend(group_join_ops(tenant, g, existing, &new)?);
                        added.2 += new.len();
                    }
                    None => {
                        if members.len() > GROUP_MEMBERS_MAX {
                            return Err(UserDbError::TooManyMembers);
                        }
                        added.1 += 1;
                        added.2 += members.len();
                        ops.extend(group_add_ops(tenant, g, &members, *at));
                    }
                }
            }
            if had_groups + added.1 > GROUPS_PER_TENANT_MAX {
                return Err(UserDbError::TooManyGroups);
            }
            Ok((ops, added))
        })
    }

    /// Whether a user exists (for import's early check).
    pub(crate) fn has_user(&self, tenant: &TenantName, user: &UserName) -> bool {
        self.state
            .read()
            .tenants
            .get(tenant)
            .is_some_and(|t| t.users.contains_key(user))
    }

    /// Replaces a user's password hash.
    pub fn set_password(
        &self,
        tenant: &TenantName,
        user: &UserName,
        phc: &str,
    ) -> Result<(), UserDbError> {
        password::check_phc(phc)?;
        self.transact(|st| {
            get_user(st, tenant, user)?;
            Ok((
                vec![Op::UserPassword {
                    tenant: tenant.clone(),
                    user: user.clone(),
                    phc: phc.to_string(),
                }],
                (),
            ))
        })
    }

    /// Deletes a user and their app tokens.
    pub fn delete_user(&self, tenant: &TenantName, user: &UserName) -> Result<(), UserDbError> {
        self.transact(|st| {
            get_user(st, tenant, user)?;
            Ok((
                vec![Op::UserDelete {
                    tenant: tenant.clone(),
                    user: user.clone(),
                }],
                (),
            ))
        })
    }

    /// Disables or re-enables a user (a disabled user cannot log in by any means).
    pub fn set_disabled(
        &self,
        tenant: &TenantName,
        user: &UserName,
        disabled: bool,
    ) -> Result<(), UserDbError> {
        self.transact(|st| {
            get_user(st, tenant, user)?;
            Ok((
                vec![Op::UserDisabled {
                    tenant: tenant.clone(),
                    user: user.clone(),
                    disabled,
                }],
                (),
            ))
        })
    }

    /// Sets a user's own quota in bytes; `None` falls back to the configured default.
    pub fn set_quota(
        &self,
        tenant: &TenantName,
        user: &UserName,
        quota: Option<u64>,
    ) -> Result<(), UserDbError> {
        self.transact(|st| {
            get_user(st, tenant, user)?;
            Ok((
                vec![Op::UserQuota {
                    tenant: tenant.clone(),
                    user: user.clone(),
                    quota,
                }],
                (),
            ))
        })
    }

    /// Removes a tenant that has no users left (its groups go with it); its data must have
    /// been deleted first.
    pub fn delete_tenant(&self, tenant: &TenantName) -> Result<(), UserDbError> {
        self.transact(|st| {
            let t = st
                .tenants
                .get(tenant)
                .ok_or_else(|| UserDbError::NoSuchTenant(tenant.clone()))?;
            if !t.users.is_empty() {
                return Err(UserDbError::TenantNotEmpty(tenant.clone()));
            }
            Ok((
                vec![Op::TenantDelete {
                    tenant: tenant.clone(),
                }],
                (),
            ))
        })
    }

    /// Removes tenant `tenant` with all its users, groups and app tokens in one record in the
    /// clear (`skab tenant erase`, after its key was destroyed: its sealed records can no
    /// longer be read or written). Returns how many users it had here.
    pub fn erase_tenant(&self, tenant: &TenantName) -> Result<usize, UserDbError> {
        self.transact(|st| {
            let Some(t) = st.tenants.get(tenant) else {
                return Ok((Vec::new(), 0));
            };
            Ok((
                vec![Op::TenantErase {
                    tenant: tenant.clone(),
                }],
                t.users.len(),
            ))
        })
    }

    /// Creates a group of existing users of an existing tenant.
    pub fn add_group(
        &self,
        tenant: &TenantName,
        group: &GroupName,
        members: &[UserName],
    ) -> Result<(), UserDbError> {
        let members = dedup(members);
        if members.len() > GROUP_MEMBERS_MAX {
            return Err(UserDbError::TooManyMembers);
        }
        self.transact(|st| {
            let t = st
                .tenants
                .get(tenant)
                .ok_or_else(|| UserDbError::NoSuchTenant(tenant.clone()))?;
            if t.groups.contains_key(group) {
                return Err(UserDbError::GroupExists(tenant.clone(), group.clone()));
            }
            if t.groups.len() >= GROUPS_PER_TENANT_MAX {
                return Err(UserDbError::TooManyGroups);
            }
            for m in &members {
                get_user(st, tenant, m)?;
            }
            Ok((group_add_ops(tenant, group, &members, now_unix()), ()))
        })
    }

    /// Deletes a group (its members' accounts stay).
    pub fn delete_group(&self, tenant: &TenantName, group: &GroupName) -> Result<(), UserDbError> {
        self.transact(|st| {
            get_group(st, tenant, group)?;
            Ok((
                vec![Op::GroupDelete {
                    tenant: tenant.clone(),
                    group: group.clone(),
                }],
                (),
            ))
        })
    }

    /// Adds existing users to a group and removes members from it, in one transaction.
    /// Adding a member or removing a non-member is no error (nothing changes for them).
    pub fn change_group_members(
        &self,
        tenant: &TenantName,
        group: &GroupName,
        add: &[UserName],
        remove: &[UserName],
    ) -> Result<(), UserDbError> {
        let (add, remove) = (dedup(add), dedup(remove));
        self.transact(|st| {
            let g = get_group(st, tenant, group)?;
            for m in &add {
                get_user(st, tenant, m)?;
            }
            let after = g.members.len() + add.iter().filter(|m| !g.members.contains(*m)).count()
                - remove.iter().filter(|m| g.members.contains(*m)).count();
            if after > GROUP_MEMBERS_MAX {
                return Err(UserDbError::TooManyMembers);
            }
            let mut ops = Vec::new();
            let (mut add, mut remove) = (add.as_slice(), remove.as_slice());
            while !add.is_empty() || !remove.is_empty() {
                let (a, r) = (
                    add.len().min(GROUP_MEMBERS_PER_RECORD_MAX),
                    remove.len().min(GROUP_MEMBERS_PER_RECORD_MAX),
                );
                ops.push(Op::GroupMembers {
                    tenant: tenant.clone(),
                    group: group.clone(),
                    add: add[..a].to_vec(),
                    remove: remove[..r].to_vec(),
                });
                (add, remove) = (&add[a..], &remove[r..]);
            }
            Ok((ops, ()))
        })
    }

    /// Creates an app token; returns its id and the secret, which is shown once and not kept.
    pub fn create_token(
        &self,
        tenant: &TenantName,
        user: &UserName,
        label: &str,
    ) -> Result<(TokenId, String), UserDbError> {
        if label.len() > TOKEN_LABEL_LEN_MAX {
            return Err(UserDbError::LabelTooLong);
        }
        let (secret, raw) = token::generate();
        let hash = token::hash(&self.token_key, &raw);
        self.transact(|st| {
            let u = get_user(st, tenant, user)?;
            if u.tokens.len() >= TOKENS_PER_USER_MAX {
                return Err(UserDbError::TooManyTokens);
            }
            let mut id = TokenId(rand::random());
            while u.tokens.iter().any(|t| t.id == id) {
                id = TokenId(rand::random());
            }
            Ok((
                vec![Op::TokenAdd {
                    tenant: tenant.clone(),
                    user: user.clone(),
                    id,
                    label: label.to_string(),
                    hash,
                    at: now_unix(),
                }],
                id,
            ))
        })
        .map(|id| (id, secret))
    }

    /// Revokes an app token.
    pub fn revoke_token(
        &self,
        tenant: &TenantName,
        user: &UserName,
        id: TokenId,
    ) -> Result<(), UserDbError> {
        self.transact(|st| {
            let u = get_user(st, tenant, user)?;
            if !u.tokens.iter().any(|t| t.id == id) {
                return Err(UserDbError::NoSuchToken);
            }
            Ok((
                vec![Op::TokenRevoke {
                    tenant: tenant.clone(),
                    user: user.clone(),
                    id,
                }],
                (),
            ))
        })
    }

    /// Records token uses (Unix seconds) without waiting: returns `Ok(false)` if a writer
    /// holds the lock. Uses of tokens that no longer exist are dropped.
    pub fn record_token_use(
        &self,
        uses: &[(TenantName, UserName, TokenId, u64)],
    ) -> Result<bool, UserDbError> {
        if uses.is_empty() {
            return Ok(true);
        }
        let mut io = self.io.lock();
        let Some(_lock) = self.files.lock(true, false)? else {
            return Ok(false);
        };
        self.append_locked(&mut io, |st| {
            let ops = uses
                .iter()
                .filter(|(t, u, id, _)| {
                    get_user(st, t, u).is_ok_and(|u| u.tokens.iter().any(|k| k.id == *id))
                })
                .map(|(t, u, id, at)| Op::TokenUsed {
                    tenant: t.clone(),
                    user: u.clone(),
                    id: *id,
                    at: *at,
                })
                .collect();
            Ok((ops, ()))
        })?;
        Ok(true)
    }
}

fn get_user<'a>(
    st: &'a State,
    tenant: &TenantName,
    user: &UserName,
) -> Result<&'a User, UserDbError> {
    st.tenants
        .get(tenant)
        .ok_or_else(|| UserDbError::NoSuchTenant(tenant.clone()))?
        .users
        .get(user)
        .ok_or_else(|| UserDbError::NoSuchUser(tenant.clone(), user.clone()))
}

fn get_group<'a>(
    st: &'a State,
    tenant: &TenantName,
    group: &GroupName,
) -> Result<&'a Group, UserDbError> {
    st.tenants
        .get(tenant)
        .ok_or_else(|| UserDbError::NoSuchTenant(tenant.clone()))?
        .groups
        .get(group)
        .ok_or_else(|| UserDbError::NoSuchGroup(tenant.clone(), group.clone()))
}

fn group_info(name: &GroupName, g: &Group) -> GroupInfo {
    GroupInfo {
        name: name.clone(),
        members: g.members.iter().cloned().collect(),
        created: g.created,
    }
}

/// `names` without repeats, in their first order.
fn dedup(names: &[UserName]) -> Vec<UserName> {
    let mut seen = BTreeSet::new();
    names.iter().filter(|n| seen.insert(*n)).cloned().collect()
}

fn user_info(tenant: &TenantName, name: &UserName, u: &User) -> UserInfo {
    UserInfo {
        tenant: tenant.clone(),
        user: name.clone(),
        quota: u.quota,
        disabled: u.disabled,
        created: u.created,
        tokens: u.tokens.len(),
    }
}

/// Applies one replayed or freshly written operation. Never fails: an operation that does
/// not fit the state (which a correct writer never writes) is counted and skipped.
fn apply(st: &mut State, offset: u64, op: Op) {
    let ok = match op {
        Op::TenantAdd { tenant, at } => {
            st.tenants.entry(tenant).or_insert_with(|| Tenant {
                created: at,
                ..Tenant::default()
            });
            true
        }
        Op::UserAdd {
            tenant,
            user,
            phc,
            at,
        } => add_user(
            st,
            &tenant,
            user,
            User {
                phc: phc.into_boxed_str(),
                quota: None,
                disabled: false,
                created: at,
                epoch: offset,
                tokens: Vec::new(),
            },
        ),
        Op::UserPassword { tenant, user, phc } => match user_mut(st, &tenant, &user) {
            Some(u) => {
                u.phc = phc.into_boxed_str();
                u.epoch = offset;
                true
            }
            None => false,
        },
        Op::UserDelete { tenant, user } => {
            let removed = st.tenants.get_mut(&tenant).and_then(|t| {
                let u = t.users.remove(&user)?;
                for g in t.member_of.remove(&user).unwrap_or_default() {
                    if let Some(group) = t.groups.get_mut(&g) {
                        group.members.remove(&user);
                    }
                }
                Some(u)
            });
            match removed {
                Some(u) => {
                    for t in u.tokens {
                        st.token_index.remove(&t.hash);
                    }
                    true
                }
                None => false,
            }
        }
        Op::UserDisabled {
            tenant,
            user,
            disabled,
        } => match user_mut(st, &tenant, &user) {
            Some(u) => {
                u.disabled = disabled;
                u.epoch = offset;
                true
            }
            None => false,
        },
        Op::UserQuota {
            tenant,
            user,
            quota,
        } => match user_mut(st, &tenant, &user) {
            Some(u) => {
                u.quota = quota;
                true
            }
            None => false,
        },
        Op::TokenAdd {
            tenant,
            user,
            id,
            label,
            hash,
            at,
        } => add_token(
            st,
            tenant,
            user,
            TokenRec {
                id,
                label,
                hash,
                created: at,
                last_used: None,
            },
        ),
        Op::TokenRestore {
            tenant,
            user,
            id,
            label,
            hash,
            created,
            last_used,
        } => add_token(
            st,
            tenant,
            user,
            TokenRec {
                id,
                label,
                hash,
                created,
                last_used,
            },
        ),
        Op::UserRestore {
            tenant,
            user,
            phc,
            quota,
            disabled,
            created,
            epoch,
        } => add_user(
            st,
            &tenant,
            user,
            User {
                phc: phc.into_boxed_str(),
                quota,
                disabled,
                created,
                epoch,
                tokens: Vec::new(),
            },
        ),
        // Read by the log reader, which numbers the operations after it.
        Op::LogBase { .. } => true,
        Op::TenantErase { tenant } => {
            st.token_index.retain(|_, (t, _, _)| *t != tenant);
            st.tenants.remove(&tenant).is_some()
        }
        Op::TenantDelete { tenant } => match st.tenants.get(&tenant) {
            Some(t) if t.users.is_empty() => {
                st.tenants.remove(&tenant);
                true
            }
            _ => false,
        },
        Op::GroupAdd {
            tenant,
            group,
            members,
            at,
        } => match st.tenants.get_mut(&tenant) {
            Some(t) if !t.groups.contains_key(&group) => {
                t.groups.insert(
                    group.clone(),
                    Group {
                        created: at,
                        members: BTreeSet::new(),
                    },
                );
                change_members(t, &group, members, Vec::new())
            }
            _ => false,
        },
        Op::GroupDelete { tenant, group } => {
            match st.tenants.get_mut(&tenant).and_then(|t| {
                let g = t.groups.remove(&group)?;
                for m in g.members {
                    if let Some(set) = t.member_of.get_mut(&m) {
                        set.remove(&group);
                        if set.is_empty() {
                            t.member_of.remove(&m);
                        }
                    }
                }
                Some(())
            }) {
                Some(()) => true,
                None => false,
            }
        }
        Op::GroupMembers {
            tenant,
            group,
            add,
            remove,
        } => match st.tenants.get_mut(&tenant) {
            Some(t) => change_members(t, &group, add, remove),
            None => false,
        },
        Op::TokenRevoke { tenant, user, id } => {
            let hash = user_mut(st, &tenant, &user).and_then(|u| {
                let i = u.tokens.iter().position(|t| t.id == id)?;
                Some(u.tokens.swap_remove(i).hash)
            });
            match hash {
                Some(h) => {
                    st.token_index.remove(&h);
                    true
                }
                None => false,
            }
        }
        Op::TokenUsed {
            tenant,
            user,
            id,
            at,
        } => match user_mut(st, &tenant, &user)
            .and_then(|u| u.tokens.iter_mut().find(|t| t.id == id))
        {
            Some(t) => {
                t.last_used = Some(t.last_used.map_or(at, |l| l.max(at)));
                true
            }
            None => false,
        },
    };
    if !ok {
        st.ignored += 1;
    }
}

/// Adds existing users to `group` and removes members from it, keeping `member_of` in step.
/// False (nothing changed) when the group does not exist; users that do not exist are skipped.
fn change_members(
    t: &mut Tenant,
    group: &GroupName,
    add: Vec<UserName>,
    remove: Vec<UserName>,
) -> bool {
    let Some(g) = t.groups.get_mut(group) else {
        return false;
    };
    for u in remove {
        if g.members.remove(&u) {
            if let Some(set) = t.member_of.get_mut(&u) {
                set.remove(group);
                if set.is_empty() {
                    t.member_of.remove(&u);
                }
            }
        }
    }
    for u in add {
        if t.users.contains_key(&u) && g.members.insert(u.clone()) {
            t.member_of.entry(u).or_default().insert(group.clone());
        }
    }
    true
}

/// Operations that create `group` with `members`, each record naming at most
/// [`GROUP_MEMBERS_PER_RECORD_MAX`] of them.
fn group_add_ops(tenant: &TenantName, group: &GroupName, members: &[UserName], at: u64) -> Vec<Op> {
    let mut chunks = members.chunks(GROUP_MEMBERS_PER_RECORD_MAX);
    let mut ops = vec![Op::GroupAdd {
        tenant: tenant.clone(),
        group: group.clone(),
        members: chunks.next().map(<[UserName]>::to_vec).unwrap_or_default(),
        at,
    }];
    ops.extend(chunks.map(|c| Op::GroupMembers {
        tenant: tenant.clone(),
        group: group.clone(),
        add: c.to_vec(),
        remove: Vec::new(),
    }));
    ops
}

/// The records that add the imported account `u` to `tenant` (disabled if it was).
fn imported_account_ops(tenant: &TenantName, u: &ImportedAccount) -> Vec<Op> {
    let mut ops = vec![Op::UserAdd {
        tenant: tenant.clone(),
        user: u.user.clone(),
        phc: u.phc.clone(),
        at: u.created,
    }];
    if u.disabled {
        ops.push(Op::UserDisabled {
            tenant: tenant.clone(),
            user: u.user.clone(),
            disabled: true,
        });
    }
    ops
}

/// The records that add `members` to the existing group `existing` (refused when it would
/// outgrow `GROUP_MEMBERS_MAX`).
fn group_join_ops(
    tenant: &TenantName,
    group: &GroupName,
    existing: &Group,
    members: &[UserName],
) -> Result<Vec<Op>, UserDbError> {
    if existing.members.len() + members.len() > GROUP_MEMBERS_MAX {
        return Err(UserDbError::TooManyMembers);
    }
    Ok(members
        .chunks(GROUP_MEMBERS_PER_RECORD_MAX)
        .map(|c| Op::GroupMembers {
            tenant: tenant.clone(),
            group: group.clone(),
            add: c.to_vec(),
            remove: Vec::new(),
        })
        .collect())
}

/// Adds `user` to an existing `tenant`, unless the name is taken.
fn add_user(st: &mut State, tenant: &TenantName, user: UserName, u: User) -> bool {
    match st.tenants.get_mut(tenant) {
        Some(t) if !t.users.contains_key(&user) => {
            t.users.insert(user, u);
            true
        }
        _ => false,
    }
}

/// Gives `user` the app token `rec`, unless its id or hash is taken.
fn add_token(st: &mut State, tenant: TenantName, user: UserName, rec: TokenRec) -> bool {
    let (id, hash) = (rec.id, rec.hash);
    let fits = !st.token_index.contains_key(&hash)
        && user_mut(st, &tenant, &user).is_some_and(|u| {
            if u.tokens.iter().any(|t| t.id == id) {
                return false;
            }
            u.tokens.push(rec);
            true
        });
    if fits {
        st.token_index.insert(hash, (tenant, user, id));
    }
    fits
}

fn user_mut<'a>(st: &'a mut State, tenant: &TenantName, user: &UserName) -> Option<&'a mut User> {
    st.tenants.get_mut(tenant)?.users.get_mut(user)
}

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod sealed_tests;

#[cfg(test)]
mod tests {
    use super::files::{KEY_FILE, LOG_FILE};
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn t(s: &str) -> TenantName {
        TenantName::new(s).unwrap()
    }
    fn u(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }
    /// A cheap but valid argon2id hash for tests (tiny cost).
    pub(crate) fn test_phc(pw: &str) -> String {
        password::hash_with(pw, 8, 1, 1).unwrap()
    }

    #[test]
    fn reopen_sees_all_changes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = UserDb::open(dir.path()).unwrap();
            db.add_user(&t("s1"), &u("anna"), &test_phc("pw")).unwrap();
            db.add_user(&t("s1"), &u("bo"), &test_phc("pw")).unwrap();
            db.set_disabled(&t("s1"), &u("bo"), true).unwrap();
            db.set_quota(&t("s1"), &u("anna"), Some(100)).unwrap();
            db.add_tenant(&t("s2")).unwrap();
            assert!(matches!(
                db.add_tenant(&t("s2")),
                Err(UserDbError::TenantExists(_))
            ));
            assert!(matches!(
                db.add_user(&t("s1"), &u("anna"), &test_phc("x")),
                Err(UserDbError::UserExists(..))
            ));
            let (id, _secret) = db.create_token(&t("s1"), &u("anna"), "phone").unwrap();
            db.create_token(&t("s1"), &u("anna"), "laptop").unwrap();
            db.revoke_token(&t("s1"), &u("anna"), id).unwrap();
        }
        let db = UserDb::open(dir.path()).unwrap();
        assert_eq!(db.ignored_ops(), 0);
        let names: Vec<String> = db.tenants().iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, ["s1", "s2"]);
        let users = db.users(&t("s1")).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].quota, Some(100));
        assert!(users[1].disabled);
        let toks = db.tokens(&t("s1"), &u("anna")).unwrap();
        assert_eq!(toks.len(), 1);
        assert_eq!(toks[0].label, "laptop");
        db.delete_user(&t("s1"), &u("anna")).unwrap();
        assert!(db.user(&t("s1"), &u("anna")).is_none());
        assert!(db.users(&t("nope")).is_err());
    }

    #[test]
    fn second_handle_sees_writes_after_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let server = UserDb::open(dir.path()).unwrap();
        let cli = UserDb::open(dir.path()).unwrap();
        cli.add_user(&t("s"), &u("a"), &test_phc("1")).unwrap();
        assert!(server.credentials(&t("s"), &u("a")).is_none());
        assert_eq!(server.refresh().unwrap(), Refresh::Applied(2));
        let c1 = server.credentials(&t("s"), &u("a")).unwrap();
        assert_eq!(server.refresh().unwrap(), Refresh::Unchanged);
        cli.set_password(&t("s"), &u("a"), &test_phc("2")).unwrap();
        server.refresh().unwrap();
        let c2 = server.credentials(&t("s"), &u("a")).unwrap();
        assert_ne!(c1.epoch, c2.epoch, "password change moves the epoch");
        // While a writer holds the lock, refresh does not wait.
        let lock = cli.files.lock(true, true).unwrap();
        {
            // Append bytes so that refresh has something to read.
            let mut f = OpenOptions::new()
                .append(true)
                .open(cli.dir().join(LOG_FILE))
                .unwrap();
            f.write_all(&[1, 0, 0, 0]).unwrap();
        }
        assert_eq!(server.refresh().unwrap(), Refresh::Busy);
        drop(lock);
        // The partial frame is torn: nothing applied, and it is remembered.
        assert_eq!(server.refresh().unwrap(), Refresh::Unchanged);
        assert_eq!(server.refresh().unwrap(), Refresh::Unchanged);
    }

    #[test]
    fn torn_tail_is_ignored_then_cut_by_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(dir.path()).unwrap();
        db.add_user(&t("s"), &u("a"), &test_phc("1")).unwrap();
        let log_path = db.dir().join(LOG_FILE);
        let good_len = std::fs::metadata(&log_path).unwrap().len();
        drop(db);
        // Simulate a crash mid-transaction: an op without its commit, then half a frame.
        let mut buf = Vec::new();
        log::encode(
            &mut buf,
            &Entry::Op(Op::UserAdd {
                tenant: t("s"),
                user: u("ghost"),
                phc: test_phc("x"),
                at: 0,
            }),
        )
        .unwrap();
        buf.extend_from_slice(&[9, 9, 9]);
        let mut f = OpenOptions::new().append(true).open(&log_path).unwrap();
        f.write_all(&buf).unwrap();
        drop(f);
        let db = UserDb::open(dir.path()).unwrap();
        assert!(db.user(&t("s"), &u("ghost")).is_none());
        assert!(db.user(&t("s"), &u("a")).is_some());
        db.add_user(&t("s"), &u("b"), &test_phc("2")).unwrap();
        assert!(dir
            .path()
            .join(USERS_DIR)
            .join(format!("{LOG_FILE}.torn-{good_len}"))
            .exists());
        drop(db);
        let db = UserDb::open(dir.path()).unwrap();
        assert!(db.user(&t("s"), &u("b")).is_some());
        assert!(db.user(&t("s"), &u("ghost")).is_none());
        assert_eq!(db.user_count(), 2);
    }

    #[test]
    fn bad_magic_and_bad_key_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        drop(UserDb::open(dir.path()).unwrap());
        let udir = dir.path().join(USERS_DIR);
        std::fs::write(udir.join(KEY_FILE), b"short").unwrap();
        assert!(matches!(
            UserDb::open(dir.path()),
            Err(UserDbError::Corrupt { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        drop(UserDb::open(dir.path()).unwrap());
        std::fs::write(dir.path().join(USERS_DIR).join(LOG_FILE), b"NOTMAGIC").unwrap();
        assert!(matches!(
            UserDb::open(dir.path()),
            Err(UserDbError::Corrupt { .. })
        ));
    }

    #[test]
    fn token_limits_and_use_records() {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(dir.path()).unwrap();
        db.add_user(&t("s"), &u("a"), &test_phc("1")).unwrap();
        assert!(matches!(
            db.create_token(&t("s"), &u("a"), &"x".repeat(TOKEN_LABEL_LEN_MAX + 1)),
            Err(UserDbError::LabelTooLong)
        ));
        let (id, secret) = db.create_token(&t("s"), &u("a"), "l").unwrap();
        let raw = token::parse(&secret).unwrap();
        let owner = db.token_owner(&token::hash(db.token_key(), &raw)).unwrap();
        assert_eq!(owner, (t("s"), u("a"), id));
        assert!(db.record_token_use(&[(t("s"), u("a"), id, 1234)]).unwrap());
        drop(db);
        let db = UserDb::open(dir.path()).unwrap();
        assert_eq!(
            db.tokens(&t("s"), &u("a")).unwrap()[0].last_used,
            Some(1234)
        );
        for i in 1..TOKENS_PER_USER_MAX {
            db.create_token(&t("s"), &u("a"), &format!("{i}")).unwrap();
        }
        assert!(matches!(
            db.create_token(&t("s"), &u("a"), "one too many"),
            Err(UserDbError::TooManyTokens)
        ));
        assert!(matches!(
            db.revoke_token(&t("s"), &u("a"), TokenId(0)),
            Err(UserDbError::NoSuchToken)
        ));
    }

    /// Everything a caller can see of the database, for before/after comparisons.
    fn view(db: &UserDb) -> Vec<String> {
        let mut v = Vec::new();
        for ti in db.tenants() {
            v.push(format!("{ti:?}"));
            for ui in db.users(&ti.name).unwrap() {
                let c = db.credentials(&ti.name, &ui.user).unwrap();
                v.push(format!("{ui:?} {} {} {}", c.phc, c.disabled, c.epoch));
                for k in db.tokens(&ti.name, &ui.user).unwrap() {
                    v.push(format!("{k:?}"));
                }
                v.push(format!(
                    "{} in {:?}",
                    ui.user,
                    db.groups_of(&ti.name, &ui.user)
                ));
            }
            for g in db.groups(&ti.name).unwrap() {
                v.push(format!("{g:?}"));
            }
        }
        v.sort();
        v
    }

    /// Groups: members must exist; a deleted user leaves every group; a member list longer
    /// than one record's share is split and comes back whole after a reopen, a compaction
    /// and in another process; a tenant goes only once empty, and with it its groups.
    #[test]
    fn groups_follow_their_members_through_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(dir.path()).unwrap();
        let other = UserDb::open(dir.path()).unwrap();
        let pupils: Vec<UserName> = (0..1200).map(|i| u(&format!("p{i}"))).collect();
        let new = pupils
            .iter()
            .map(|p| NewUser {
                tenant: t("s"),
                user: p.clone(),
                phc: test_phc("pw"),
                groups: vec![GroupName::new("y9").unwrap()],
            })
            .collect();
        assert_eq!(db.add_users(new).unwrap(), Ok(1200));
        db.add_user(&t("s"), &u("teacher"), &test_phc("pw"))
            .unwrap();
        let g = |s: &str| GroupName::new(s).unwrap();
        assert!(matches!(
            db.add_group(&t("s"), &g("9a"), &[u("p1"), u("nobody")]),
            Err(UserDbError::NoSuchUser(..))
        ));
        assert!(matches!(
            db.add_group(&t("nope"), &g("9a"), &[]),
            Err(UserDbError::NoSuchTenant(_))
        ));
        db.add_group(&t("s"), &g("9a"), &pupils[..30]).unwrap();
        assert!(matches!(
            db.add_group(&t("s"), &g("9a"), &[]),
            Err(UserDbError::GroupExists(..))
        ));
        db.change_group_members(&t("s"), &g("9a"), &[u("teacher"), u("p0")], &[u("p1")])
            .unwrap();
        assert_eq!(db.group(&t("s"), &g("y9")).unwrap().members.len(), 1200);
        assert_eq!(db.group(&t("s"), &g("9a")).unwrap().members.len(), 30);
        assert_eq!(db.groups_of(&t("s"), &u("p2")), [g("9a"), g("y9")]);
        assert_eq!(db.groups_of(&t("s"), &u("p1")), [g("y9")]);
        assert_eq!(db.groups_of(&t("s"), &u("teacher")), [g("9a")]);
        db.delete_user(&t("s"), &u("p2")).unwrap();
        assert!(db.groups_of(&t("s"), &u("p2")).is_empty());
        assert!(!db
            .group(&t("s"), &g("9a"))
            .unwrap()
            .members
            .contains(&u("p2")));
        // Re-created, the name starts in no group.
        db.add_user(&t("s"), &u("p2"), &test_phc("pw")).unwrap();
        assert!(db.groups_of(&t("s"), &u("p2")).is_empty());
        db.add_group(&t("s"), &g("gone"), &[u("p3")]).unwrap();
        db.delete_group(&t("s"), &g("gone")).unwrap();
        assert_eq!(db.groups_of(&t("s"), &u("p3")), [g("9a"), g("y9")]);
        assert!(matches!(
            db.delete_group(&t("s"), &g("gone")),
            Err(UserDbError::NoSuchGroup(..))
        ));
        let before = view(&db);
        other.refresh().unwrap();
        assert_eq!(view(&other), before);
        drop(db);
        let db = UserDb::open(dir.path()).unwrap();
        assert_eq!(view(&db), before);
        db.compact().unwrap();
        assert_eq!(view(&db), before);
        other.refresh().unwrap();
        assert_eq!(view(&other), before);
        drop(db);
        let db = UserDb::open(dir.path()).unwrap();
        assert_eq!(view(&db), before);
        assert_eq!(db.ignored_ops(), 0);
        // A tenant with users cannot go; once empty it does, groups and all.
        assert!(matches!(
            db.delete_tenant(&t("s")),
            Err(UserDbError::TenantNotEmpty(_))
        ));
        for ui in db.users(&t("s")).unwrap() {
            db.delete_user(&t("s"), &ui.user).unwrap();
        }
        db.delete_tenant(&t("s")).unwrap();
        assert!(db.tenants().is_empty());
        drop(db);
        let db = UserDb::open(dir.path()).unwrap();
        assert!(db.tenants().is_empty());
        db.add_user(&t("s"), &u("p0"), &test_phc("pw")).unwrap();
        assert!(db.groups(&t("s")).unwrap().is_empty());
        assert!(db.groups_of(&t("s"), &u("p0")).is_empty());
        assert_eq!(db.ignored_ops(), 0);
    }

    /// A log that grew with token-use records is rewritten as the live state alone: the same
    /// users, tokens (with their last use), quotas, flags and epochs, in this process, after a
    /// reopen and in another process that only refreshes; numbering goes on past the old log,
    /// so a later password change never reuses an epoch.
    #[test]
    fn compaction_keeps_the_state_and_the_epochs_and_other_processes_follow() {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(dir.path()).unwrap();
        let other = UserDb::open(dir.path()).unwrap();
        for i in 0..20 {
            db.add_user(&t("s"), &u(&format!("p{i}")), &test_phc("pw"))
                .unwrap();
        }
        db.set_quota(&t("s"), &u("p1"), Some(7)).unwrap();
        db.set_disabled(&t("s"), &u("p2"), true).unwrap();
        db.add_user(&t("gone"), &u("x"), &test_phc("pw")).unwrap();
        db.delete_user(&t("gone"), &u("x")).unwrap();
        let (id, secret) = db.create_token(&t("s"), &u("p3"), "laptop").unwrap();
        let (dead, _) = db.create_token(&t("s"), &u("p3"), "old").unwrap();
        db.revoke_token(&t("s"), &u("p3"), dead).unwrap();
        for at in 0..300 {
            assert!(db
                .record_token_use(&[(t("s"), u("p3"), id, 1000 + at)])
                .unwrap());
        }
        let before = view(&db);
        // The other process is up to date, so only the file's identity can tell it to reload.
        other.refresh().unwrap();
        assert_eq!(view(&other), before);
        assert_eq!(other.refresh().unwrap(), Refresh::Unchanged);
        let epochs_before: Vec<u64> = (0..20)
            .map(|i| db.credentials(&t("s"), &u(&format!("p{i}"))).unwrap().epoch)
            .collect();
        let max_epoch = *epochs_before.iter().max().unwrap();
        let len_before = std::fs::metadata(dir.path().join(USERS_DIR).join(LOG_FILE))
            .unwrap()
            .len();
        let c = db.compact().unwrap();
        assert_eq!(c.bytes_before, len_before);
        assert!(c.bytes_after < c.bytes_before / 3, "{c:?}");
        assert!(c.ops_after < c.ops_before / 10, "{c:?}");
        assert_eq!(view(&db), before);
        assert_eq!(
            db.tokens(&t("s"), &u("p3")).unwrap()[0].last_used,
            Some(1299)
        );
        let raw = token::parse(&secret).unwrap();
        assert_eq!(
            db.token_owner(&token::hash(db.token_key(), &raw)),
            Some((t("s"), u("p3"), id))
        );
        // The other process notices the new file and reloads it.
        assert!(matches!(other.refresh().unwrap(), Refresh::Applied(_)));
        assert_eq!(view(&other), before);
        // Writes from either side after the compaction reach the other.
        other
            .set_password(&t("s"), &u("p0"), &test_phc("new"))
            .unwrap();
        let e = other.credentials(&t("s"), &u("p0")).unwrap().epoch;
        assert!(e > max_epoch, "epoch {e} reused (max before {max_epoch})");
        db.refresh().unwrap();
        assert_eq!(db.credentials(&t("s"), &u("p0")).unwrap().epoch, e);
        db.add_user(&t("s"), &u("late"), &test_phc("pw")).unwrap();
        other.refresh().unwrap();
        assert!(other.user(&t("s"), &u("late")).is_some());
        let now = view(&db);
        assert_eq!(view(&other), now);
        drop((db, other));
        let db = UserDb::open(dir.path()).unwrap();
        assert_eq!(view(&db), now);
        assert_eq!(db.ignored_ops(), 0);
        // A second compaction numbers past the first one's end.
        let before_second = view(&db);
        db.compact().unwrap();
        assert_eq!(view(&db), before_second);
        db.set_disabled(&t("s"), &u("p5"), true).unwrap();
        assert!(db.credentials(&t("s"), &u("p5")).unwrap().epoch > e);
    }

    #[test]
    fn compaction_is_due_only_for_a_grown_log() {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(dir.path()).unwrap();
        db.add_user(&t("s"), &u("a"), &test_phc("pw")).unwrap();
        let (id, _) = db.create_token(&t("s"), &u("a"), "sync").unwrap();
        assert!(!db.compaction_due(), "a small log");
        // Token uses alone, written in large batches, past the size floor.
        let batch: Vec<_> = (0..20_000u64).map(|at| (t("s"), u("a"), id, at)).collect();
        while std::fs::metadata(dir.path().join(USERS_DIR).join(LOG_FILE))
            .unwrap()
            .len()
            < USER_LOG_COMPACT_MIN_BYTES
        {
            assert!(!db.compaction_due());
            db.record_token_use(&batch).unwrap();
        }
        assert!(db.compaction_due());
        db.compact().unwrap();
        assert!(!db.compaction_due());
        assert_eq!(
            db.tokens(&t("s"), &u("a")).unwrap()[0].last_used,
            Some(19_999)
        );
    }
}
