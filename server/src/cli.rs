//! The `skab` command line: `serve` and the user, tenant and token administration commands.

use crate::admin::AdminRequest;
use crate::config::{CliOverrides, Config};
use crate::history::HistoryRequest;
use crate::limits::PASSWORD_LEN_MAX;
use crate::users::import::{import_csv_with_progress, ImportError, ImportProgress};
use crate::users::password;
use crate::users::{GroupName, TenantName, TokenId, UserDb, UserName};
use clap::{Args, Parser, Subcommand};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Skab: a deduplicating WebDAV file server for schools.
#[derive(Debug, Parser)]
#[command(name = "skab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the WebDAV server.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage tenants (schools).
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Encryption at rest: master keys (docs/security.md).
    #[command(subcommand)]
    Key(KeyCmd),
    /// Manage groups of users (classes, subjects, year groups).
    #[command(subcommand)]
    Group(GroupCmd),
    /// Manage app tokens (app passwords for sync clients).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage exam hand-ins.
    #[command(subcommand)]
    Handin(crate::handin::cli::HandinCmd),
    /// Hand-in receipts: the tenant's public key, and offline verification.
    #[command(subcommand)]
    Receipt(crate::handin::cli::ReceiptCmd),
    /// Manage shared spaces (class folders shown in every member's home).
    #[command(subcommand)]
    Space(crate::spaces::cli::SpaceCmd),
    /// Manage the folders users share with users and groups.
    #[command(subcommand)]
    Share(crate::spaces::cli::ShareCmd),
    /// Set storage quotas (works while the server runs).
    #[command(subcommand)]
    Quota(QuotaCmd),
    /// Show logical usage per tenant and user, and the store's dedup figures.
    Usage {
        #[command(flatten)]
        dir: DirArgs,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Verify every stored chunk; exits non-zero when corruption is found.
    Scrub {
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Back the data dir up into a directory while the server runs (again into the same
    /// directory: only what changed is copied).
    Backup {
        #[command(flatten)]
        dir: DirArgs,
        /// The backup directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Restore a backup into a new (missing or empty) data dir.
    Restore {
        #[command(flatten)]
        dir: DirArgs,
        /// The backup directory `skab backup` wrote.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
    /// Write a tenant's complete export (a tar archive with a JSON manifest; docs/export.md),
    /// while the server runs; or check one offline with --verify.
    Export(ExportArgs),
    /// Load an export into this data dir (refused when it has the tenant already, unless
    /// --merge).
    Import {
        #[command(flatten)]
        dir: DirArgs,
        /// The archive `skab export` wrote.
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        /// Merge into the tenant (or user) this data dir has: add what it lacks, keep what
        /// it has; an imported file whose name holds other content is added as "name
        /// (import N)" (docs/export.md, "Merge").
        #[arg(long)]
        merge: bool,
    },
    /// Check or export the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// List and restore a user's earlier file versions (help desk).
    #[command(subcommand)]
    Version(VersionCmd),
    /// List, restore and purge a user's deleted files and folders (help desk).
    #[command(subcommand)]
    Trash(TrashCmd),
    /// Expire old versions and trash, collect unreferenced chunks, compact packs.
    Gc {
        #[command(flatten)]
        dir: DirArgs,
        /// Compact packs whose garbage share is at least this (0..1).
        #[arg(long, default_value_t = 0.3)]
        compact_ratio: f64,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    #[arg(long, required_unless_present = "verify", conflicts_with = "verify")]
    pub tenant: Option<String>,
    /// Only this user's home, account and group memberships.
    #[arg(long, requires = "tenant")]
    pub user: Option<String>,
    /// The archive to write.
    #[arg(long, value_name = "FILE", required_unless_present = "verify")]
    pub out: Option<PathBuf>,
    /// Include the accounts' password hashes (argon2id), so that logins work after an import.
    #[arg(long, requires = "tenant")]
    pub with_password_hashes: bool,
    /// Include the tenant's receipt signing key, so that an import goes on signing with it.
    #[arg(long, requires = "tenant")]
    pub with_receipt_key: bool,
    /// Check an export offline instead: every file's size and BLAKE3, the manifest, nothing
    /// missing or extra. Exits non-zero on any problem.
    #[arg(long, value_name = "FILE")]
    pub verify: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum QuotaCmd {
    /// Set the quota of a user (with --user) or a whole tenant.
    Set {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: Option<String>,
        /// Quota in bytes.
        #[arg(
            long,
            conflicts_with_all = ["unlimited", "default"],
            required_unless_present_any = ["unlimited", "default"]
        )]
        bytes: Option<u64>,
        /// No limit (for a user: also not `storage.default_quota_bytes`).
        #[arg(long, conflicts_with = "default")]
        unlimited: bool,
        /// A user's own quota removed: `storage.default_quota_bytes` applies again.
        #[arg(long, requires = "user")]
        default: bool,
    },
}

/// Where the data is: `--data-dir`, or the config file / environment / default.
#[derive(Debug, Clone, Args)]
pub struct DirArgs {
    /// Data directory (overrides the config file and SKAB_DATA_DIR).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (TOML; see docs/configuration.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Address and port to listen on, e.g. 0.0.0.0:8080.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Args)]
pub struct UserRef {
    #[command(flatten)]
    pub dir: DirArgs,
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub user: String,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user (creating the tenant if missing); the password is read from stdin.
    Add {
        #[command(flatten)]
        who: UserRef,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Set a user's password, read from stdin.
    Passwd {
        #[command(flatten)]
        who: UserRef,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Delete a user, their app tokens and their data (files, versions, trash, own quota);
    /// a user created later with the same name starts empty.
    Del {
        #[command(flatten)]
        who: UserRef,
        /// Copy the user's current files to `ARCHIVE/<user>/` in the tenant's space named
        /// ARCHIVE before deleting (a login of that name can read them).
        #[arg(long, value_name = "ARCHIVE")]
        keep_data: Option<String>,
    },
    /// Disable a user: no login by any means until enabled.
    Disable {
        #[command(flatten)]
        who: UserRef,
    },
    /// Enable a disabled user.
    Enable {
        #[command(flatten)]
        who: UserRef,
    },
    /// List the users of a tenant.
    List {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
    },
    /// Import users from CSV (header: user,tenant,password; password may be a PHC argon2id hash).
    Import {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
    },
    /// Rewrite the user log as the current users, tenants and app tokens alone (safe while
    /// the server runs; the server also does it by itself once the log has grown enough).
    Compact {
        #[command(flatten)]
        dir: DirArgs,
    },
}

/// A group of a tenant.
#[derive(Debug, Clone, Args)]
pub struct GroupRef {
    #[command(flatten)]
    pub dir: DirArgs,
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub group: String,
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Add a group of existing users.
    Add {
        #[command(flatten)]
        which: GroupRef,
        /// Comma-separated user names.
        #[arg(long, value_delimiter = ',', value_name = "U1,U2,...")]
        members: Vec<String>,
    },
    /// List a tenant's groups with their member counts.
    List {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
    },
    /// Delete a group (its members' accounts and files stay).
    Del {
        #[command(flatten)]
        which: GroupRef,
    },
    /// Show a group's members, or change them with --add/--remove.
    Members {
        #[command(flatten)]
        which: GroupRef,
        /// Comma-separated user names to add.
        #[arg(long, value_delimiter = ',', value_name = "U1,U2,...")]
        add: Vec<String>,
        /// Comma-separated user names to remove.
        #[arg(long, value_delimiter = ',', value_name = "U1,U2,...")]
        remove: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Add a tenant.
    Add {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Delete a tenant: every user with all their data, its groups, and its name.
    Del {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
    },
    /// Crypto-erase a tenant (needs crypto.enabled): destroy its key first, so that its data
    /// is unreadable at once in every pack, snapshot and backup; then drop its spaces, users
    /// and name, and collect its chunks. Asks for the tenant's name unless --yes.
    Erase {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Write a new random master key (64 hex digits) to a new file, mode 0600.
    Generate {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Rewrap every tenant key from the configured master key to a new one, without
    /// rewriting data (crash-safe: run it again with the same keys to finish). Afterwards set
    /// crypto.master_key_* to the new key and restart the server.
    Rotate {
        #[command(flatten)]
        dir: DirArgs,
        /// The new master key: file:PATH, env:VARIABLE or cmd:COMMAND.
        #[arg(long, value_name = "SOURCE")]
        new_master_from: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an app token; it is printed once and never again.
    Create {
        #[command(flatten)]
        who: UserRef,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List a user's app tokens.
    List {
        #[command(flatten)]
        who: UserRef,
    },
    /// Revoke an app token by id.
    Revoke {
        #[command(flatten)]
        who: UserRef,
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain of every audit log, or one tenant's: every record unaltered, none
    /// removed, the tail not cut off. Exits non-zero on any problem.
    Verify {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Write a tenant's audit records as JSON lines to standard output (for a SIEM).
    Export {
        #[command(flatten)]
        dir: DirArgs,
        /// A tenant, or `_system` for backups, restores and store maintenance.
        #[arg(long)]
        tenant: String,
        /// Only records at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Only records before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
    },
}

/// A user's space, for `skab version` and `skab trash`.
#[derive(Debug, Clone, Args)]
pub struct SpaceRef {
    #[command(flatten)]
    pub dir: DirArgs,
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub user: String,
}

#[derive(Debug, Subcommand)]
pub enum VersionCmd {
    /// The earlier versions of a file: id, size, modified, replaced.
    List {
        #[command(flatten)]
        space: SpaceRef,
        /// The file, e.g. /maths/answer.odt.
        #[arg(long)]
        path: String,
    },
    /// Makes an earlier version current; the current content becomes a version.
    Restore {
        #[command(flatten)]
        space: SpaceRef,
        #[arg(long)]
        path: String,
        /// A version id from `skab version list`.
        #[arg(long)]
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrashCmd {
    /// The deleted files and folders: id, kind, original path, size, deletion time.
    List {
        #[command(flatten)]
        space: SpaceRef,
    },
    /// Brings an item back to where it was (or to --to); never overwrites an existing entry.
    Restore {
        #[command(flatten)]
        space: SpaceRef,
        /// An id from `skab trash list`.
        #[arg(long)]
        id: u64,
        /// Restore here instead of the original path.
        #[arg(long)]
        to: Option<String>,
    },
    /// Deletes one item (--id) or the whole trash (--all) for good.
    Purge {
        #[command(flatten)]
        space: SpaceRef,
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<u64>,
        #[arg(long)]
        all: bool,
    },
}

/// A failed command: its message for stderr.
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

/// Runs a parsed command line. `serve` is handed to `serve_fn`.
/// What an administration command changes, for the audit log: (data dir args, log, kind,
/// target). `None` for commands that only read.
fn audit_of(c: &Command) -> Option<(DirArgs, String, &'static str, Option<String>)> {
    let user =
        |w: &UserRef, kind| Some((w.dir.clone(), w.tenant.clone(), kind, Some(w.user.clone())));
    let group =
        |w: &GroupRef, kind| Some((w.dir.clone(), w.tenant.clone(), kind, Some(w.group.clone())));
    match c {
        Command::User(UserCmd::Add { who, .. }) => user(who, "admin.user.add"),
        Command::User(UserCmd::Passwd { who, .. }) => user(who, "admin.user.password"),
        Command::User(UserCmd::Del { who, .. }) => user(who, "admin.user.delete"),
        Command::User(UserCmd::Disable { who }) => user(who, "admin.user.disable"),
        Command::User(UserCmd::Enable { who }) => user(who, "admin.user.enable"),
        Command::User(UserCmd::Import { dir, csv }) => Some((
            dir.clone(),
            store_log_system(),
            "admin.user.import",
            Some(csv.display().to_string()),
        )),
        Command::Tenant(TenantCmd::Add { dir, tenant }) => {
            Some((dir.clone(), tenant.clone(), "admin.tenant.add", None))
        }
        Command::Tenant(TenantCmd::Del { dir, tenant }) => {
            Some((dir.clone(), tenant.clone(), "admin.tenant.delete", None))
        }
        Command::Tenant(TenantCmd::Erase { dir, tenant, .. }) => {
            Some((dir.clone(), tenant.clone(), "admin.tenant.erase", None))
        }
        Command::Key(KeyCmd::Rotate { dir, .. }) => {
            Some((dir.clone(), store_log_system(), "admin.key.rotate", None))
        }
        Command::Group(GroupCmd::Add { which, .. }) => group(which, "admin.group.add"),
        Command::Group(GroupCmd::Del { which }) => group(which, "admin.group.delete"),
        Command::Group(GroupCmd::Members { which, add, remove })
            if !add.is_empty() || !remove.is_empty() =>
        {
            group(which, "admin.group.members")
        }
        Command::Token(TokenCmd::Create { who, .. }) => user(who, "token.create"),
        Command::Token(TokenCmd::Revoke { who, .. }) => user(who, "token.revoke"),
        Command::Quota(QuotaCmd::Set {
            dir, tenant, user, ..
        }) => Some((dir.clone(), tenant.clone(), "admin.quota.set", user.clone())),
        Command::Backup { dir, out } => Some((
            dir.clone(),
            store_log_system(),
            "admin.backup",
            Some(out.display().to_string()),
        )),
        Command::Restore { dir, from } => Some((
            dir.clone(),
            store_log_system(),
            "admin.restore",
            Some(from.display().to_string()),
        )),
        Command::Gc { dir, .. } => Some((dir.clone(), store_log_system(), "admin.gc", None)),
        Command::Export(ExportArgs {
            dir,
            tenant: Some(tenant),
            user,
            out: Some(out),
            ..
        }) => Some((
            dir.clone(),
            tenant.clone(),
            "admin.export",
            Some(match user {
                Some(u) => format!("{u} to {}", out.display()),
                None => out.display().to_string(),
            }),
        )),
        // `skab import` records `admin.import` itself: the tenant is named in the archive.
        Command::Version(VersionCmd::Restore { space, path, id }) => Some((
            space.dir.clone(),
            space.tenant.clone(),
            "admin.version.restore",
            Some(format!("{}:{path}#{id}", space.user)),
        )),
        Command::Trash(TrashCmd::Restore { space, id, .. }) => Some((
            space.dir.clone(),
            space.tenant.clone(),
            "admin.trash.restore",
            Some(format!("{}#{id}", space.user)),
        )),
        Command::Trash(TrashCmd::Purge { space, id, .. }) => Some((
            space.dir.clone(),
            space.tenant.clone(),
            "admin.trash.purge",
            Some(match id {
                Some(id) => format!("{}#{id}", space.user),
                None => space.user.clone(),
            }),
        )),
        Command::Handin(crate::handin::cli::HandinCmd::Add {
            dir,
            tenant,
            handin,
            ..
        }) => Some((
            dir.clone(),
            tenant.clone(),
            "admin.handin.add",
            Some(handin.clone()),
        )),
        Command::Handin(crate::handin::cli::HandinCmd::Del {
            dir,
            tenant,
            handin,
            ..
        }) => Some((
            dir.clone(),
            tenant.clone(),
            "admin.handin.delete",
            Some(handin.clone()),
        )),
        Command::Space(c) => crate::spaces::cli::audit_of_space(c),
        Command::Share(c) => crate::spaces::cli::audit_of_share(c),
        _ => None,
    }
}

fn store_log_system() -> String {
    crate::audit::SYSTEM_LOG.to_string()
}

/// Appends a done administration command to the audit log (when `log.audit` is on).
fn audit_admin(
    (dir, log, kind, target): (DirArgs, String, &'static str, Option<String>),
) -> Result<(), CliError> {
    let cfg = load_config(&dir)?;
    if !cfg.log.audit {
        return Ok(());
    }
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let mut e = crate::audit::event(kind);
    e.actor = Some(format!("admin:{who}"));
    e.target = target;
    crate::audit::AuditStore::new(&cfg.data_dir)
        .append(&log, &[e])
        .map_err(|e| {
            CliError(format!(
                "the command succeeded but its audit record failed: {e}"
            ))
        })
}

fn audit_cmd(c: AuditCmd, out: &mut impl Write) -> Result<(), CliError> {
    let parse = |s: &Option<String>| -> Result<Option<std::time::SystemTime>, CliError> {
        s.as_deref()
            .map(|t| {
                humantime::parse_rfc3339_weak(t)
                    .map_err(|e| CliError(format!("{t:?} is not an RFC 3339 time: {e}")))
            })
            .transpose()
    };
    match c {
        AuditCmd::Verify { dir, tenant } => {
            let store = crate::audit::AuditStore::new(&load_config(&dir)?.data_dir);
            let logs = match tenant {
                Some(t) => vec![t],
                None => store.logs()?,
            };
            let mut bad = 0;
            for log in logs {
                let r = store.verify(&log)?;
                writeln!(
                    out,
                    "{log}: {} records in {} segments, {}",
                    r.records,
                    r.segments,
                    if r.problems.is_empty() {
                        "chain intact"
                    } else {
                        "DAMAGED"
                    }
                )?;
                if r.sealed_unread > 0 {
                    writeln!(
                        out,
                        "  {} sealed records checked in the chain only (no key, or the \
                         tenant's key erased)",
                        r.sealed_unread
                    )?;
                }
                for p in &r.problems {
                    writeln!(out, "  {p}")?;
                }
                bad += r.problems.len();
            }
            if bad > 0 {
                return Err(CliError(format!("{bad} problem(s) in the audit log")));
            }
        }
        AuditCmd::Export {
            dir,
            tenant,
            since,
            until,
        } => {
            let store = crate::audit::AuditStore::new(&load_config(&dir)?.data_dir);
            store.export(&tenant, parse(&since)?, parse(&until)?, out)?;
        }
    }
    Ok(())
}

pub fn run(cli: Cli, serve_fn: fn(Config) -> Result<(), CliError>) -> Result<(), CliError> {
    if !matches!(cli.command, Command::Serve(_)) {
        // Given a cluster's configuration, the command runs on the node that owns its tenant.
        if let Some(cfg) = crate::cluster::admin::cluster_config_of_args()? {
            return crate::cluster::admin::run_remote(&cfg, &cli.command);
        }
    }
    if forwardable(&cli.command) {
        let argv: Vec<String> = std::env::args().collect();
        if let Some(done) = forward(&cli.command, &argv)? {
            return done;
        }
    }
    let audit = audit_of(&cli.command);
    let result = run_command(cli, serve_fn, std::io::stdout().lock());
    if let (Ok(()), Some(a)) = (&result, audit) {
        audit_admin(a)?;
    }
    result
}

// ---- admin commands run by the server (object storage mode) ----

/// A command the server runs for an `skab` process (`forward`): the server's configuration
/// and what the process read from its stdin.
struct Forwarded {
    config: Config,
    stdin: Option<Vec<u8>>,
}

thread_local! {
    /// Set while this thread runs a forwarded command.
    static FORWARDED: std::cell::RefCell<Option<Forwarded>> = const { std::cell::RefCell::new(None) };
}

/// The command's stdin: the process's, or what a forwarded command brought.
pub(crate) fn stdin_reader() -> Box<dyn Read> {
    FORWARDED.with(|f| match &mut *f.borrow_mut() {
        Some(fw) => {
            Box::new(std::io::Cursor::new(fw.stdin.take().unwrap_or_default())) as Box<dyn Read>
        }
        None => Box::new(std::io::stdin()),
    })
}

/// Commands that write (or read) the data dir's own files and that a running server in object
/// storage mode runs instead (`skab user import` reads a file named relative to the caller:
/// not forwarded).
fn forwardable(c: &Command) -> bool {
    matches!(
        c,
        Command::User(_)
            | Command::Tenant(_)
            | Command::Group(_)
            | Command::Token(_)
            | Command::Handin(_)
            | Command::Receipt(_)
            | Command::Space(_)
            | Command::Share(_)
            | Command::Audit(_)
    ) && !matches!(c, Command::User(UserCmd::Import { .. }))
}

/// Whether the command reads its stdin (what is forwarded with it).
pub(crate) fn needs_stdin(c: &Command) -> bool {
    use crate::handin::cli::ReceiptCmd;
    match c {
        Command::User(UserCmd::Add { .. } | UserCmd::Passwd { .. }) => true,
        Command::Tenant(TenantCmd::Erase { yes, .. }) => !yes,
        Command::Receipt(ReceiptCmd::Verify { receipt, .. }) => receipt == "-",
        _ => false,
    }
}

/// `--data-dir` and `--config` as given in `argv` (wherever the subcommand put them).
fn dir_args_of(argv: &[String]) -> DirArgs {
    let mut dir = DirArgs {
        data_dir: None,
        config: None,
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        for (flag, slot) in [
            ("--data-dir", &mut dir.data_dir),
            ("--config", &mut dir.config),
        ] {
            if a == flag {
                *slot = it.clone().next().map(PathBuf::from);
            } else if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                *slot = Some(PathBuf::from(v));
            }
        }
    }
    dir
}

/// Runs the command in the server when one mirrors the data dir's own files (object storage
/// mode, `own.lock` held by another process): over its admin socket, with the command line and
/// stdin; prints what it printed. `None`: the command is to run here.
fn forward(c: &Command, argv: &[String]) -> Result<Option<Result<(), CliError>>, CliError> {
    let cfg = plain_config(&dir_args_of(argv))?;
    if cfg.storage.object.is_none() || !crate::own_files::held_elsewhere(&cfg.data_dir) {
        return Ok(None);
    }
    let stdin = if needs_stdin(c) {
        let mut buf = Vec::new();
        let limited = std::io::stdin()
            .lock()
            .take(crate::limits::ADMIN_FORWARD_STDIN_LEN_MAX as u64);
        if let Command::Tenant(TenantCmd::Erase { tenant, .. }) = c {
            // The confirmation: one line, asked here (the server's text comes back after it).
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!(
                    "This destroys the key of tenant {tenant} for good: every file, version and \
                     trash item of the tenant becomes unreadable, in this data dir and in every \
                     backup or copy of it. Type the tenant's name to confirm: "
                );
            }
            std::io::BufRead::read_until(&mut std::io::BufReader::new(limited), b'\n', &mut buf)?;
        } else {
            let mut limited = limited;
            limited.read_to_end(&mut buf)?;
        }
        Some(String::from_utf8(buf).map_err(|_| CliError("stdin is not UTF-8".into()))?)
    } else {
        None
    };
    let req = AdminRequest::Cli {
        argv: argv.iter().skip(1).cloned().collect(),
        stdin,
    };
    let resp = crate::admin::send(&cfg.data_dir, &req).map_err(|e| {
        CliError(format!(
            "{}, but its admin socket did not answer: {e}",
            crate::own_files::SERVER_RUNS
        ))
    })?;
    if resp.ok {
        print!("{}", resp.text);
        Ok(Some(Ok(())))
    } else {
        Ok(Some(Err(CliError(resp.text.trim_end().to_string()))))
    }
}

/// Runs a forwarded command line (`argv` without the program name) in the server, against its
/// data dir and configuration `config` whatever the line names: what it printed and whether
/// it succeeded (its error last).
pub fn run_forwarded(
    config: Config,
    argv: Vec<String>,
    stdin: Option<String>,
    any_command: bool,
) -> crate::admin::AdminResponse {
    let fail = |text: String| crate::admin::AdminResponse { ok: false, text };
    let cli = match Cli::try_parse_from(std::iter::once("skab".to_string()).chain(argv)) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    if !any_command && !forwardable(&cli.command) {
        return fail(
            "the server runs only user, tenant, group, token, hand-in, receipt, space, \
                     share and audit commands"
                .into(),
        );
    }
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            FORWARDED.with(|f| *f.borrow_mut() = None);
        }
    }
    let stdin = stdin.map(String::into_bytes);
    FORWARDED.with(|f| *f.borrow_mut() = Some(Forwarded { config, stdin }));
    let _clear = Clear;
    let audit = audit_of(&cli.command);
    let mut out = Vec::new();
    let mut result = run_command(cli, |_| Err(CliError("not here".into())), &mut out);
    if let (Ok(()), Some(a)) = (&result, audit) {
        result = audit_admin(a);
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    match result {
        Ok(()) => crate::admin::AdminResponse { ok: true, text },
        Err(e) => {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&e.0);
            fail(text)
        }
    }
}

fn run_command(
    cli: Cli,
    serve_fn: fn(Config) -> Result<(), CliError>,
    mut out: impl Write,
) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(a) => {
            let cfg = Config::load(&CliOverrides {
                config: a.dir.config,
                data_dir: a.dir.data_dir,
                listen: a.listen,
            })?;
            serve_fn(cfg)
        }
        Command::User(c) => user_cmd(c, &mut out),
        Command::Tenant(c) => tenant_cmd(c, &mut out),
        Command::Key(c) => key_cmd(c, &mut out),
        Command::Token(c) => token_cmd(c, &mut out),
        Command::Group(c) => group_cmd(c, &mut out),
        Command::Audit(c) => audit_cmd(c, &mut out),
        Command::Backup { dir, out: dest } => {
            let text = crate::backup::backup(&plain_config(&dir)?, &dest)?;
            write!(out, "{text}")?;
            Ok(())
        }
        Command::Restore { dir, from } => {
            let text = crate::backup::restore(&plain_config(&dir)?, &from)?;
            write!(out, "{text}")?;
            Ok(())
        }
        Command::Export(a) => export_cmd(a, &mut out),
        Command::Import { dir, input, merge } => import_cmd(&dir, &input, merge, &mut out),
        Command::Handin(c) => crate::handin::cli::handin_cmd(c, &mut out),
        Command::Receipt(c) => crate::handin::cli::receipt_cmd(c, &mut out),
        Command::Space(c) => crate::spaces::cli::space_cmd(c, &mut out),
        Command::Share(c) => crate::spaces::cli::share_cmd(c, &mut out),
        Command::Quota(QuotaCmd::Set {
            dir,
            tenant,
            user,
            bytes,
            unlimited,
            default,
        }) => {
            // A user's explicit "unlimited" is stored as u64::MAX so that it is not taken
            // for "no own quota", which the configured default fills.
            let bytes = match (unlimited, default, &user) {
                (true, _, Some(_)) => Some(u64::MAX),
                (true, _, None) | (_, true, _) => None,
                _ => bytes,
            };
            admin_cmd(
                &dir,
                AdminRequest::SetQuota {
                    tenant,
                    user,
                    bytes,
                },
                &mut out,
            )
        }
        Command::Usage { dir, tenant } => admin_cmd(&dir, AdminRequest::Usage { tenant }, &mut out),
        Command::Scrub { dir } => admin_cmd(&dir, AdminRequest::Scrub, &mut out),
        Command::Version(c) => {
            let (space, req) = match c {
                VersionCmd::List { space, path } => (space, HistoryRequest::Versions { path }),
                VersionCmd::Restore { space, path, id } => {
                    (space, HistoryRequest::RestoreVersion { path, id })
                }
            };
            history_cmd(space, req, &mut out)
        }
        Command::Trash(c) => {
            let (space, req) = match c {
                TrashCmd::List { space } => (space, HistoryRequest::Trash),
                TrashCmd::Restore { space, id, to } => {
                    (space, HistoryRequest::RestoreTrash { id, to })
                }
                TrashCmd::Purge { space, id, .. } => (space, HistoryRequest::Purge { id }),
            };
            history_cmd(space, req, &mut out)
        }
        Command::Gc { dir, compact_ratio } => {
            if !(0.0..=1.0).contains(&compact_ratio) {
                return Err(CliError("--compact-ratio must be between 0 and 1".into()));
            }
            admin_cmd(&dir, AdminRequest::Gc { compact_ratio }, &mut out)
        }
    }
}

fn export_cmd(a: ExportArgs, out: &mut impl Write) -> Result<(), CliError> {
    if let Some(file) = a.verify {
        let v = crate::export::verify::verify(&file).map_err(CliError)?;
        for p in &v.problems {
            writeln!(out, "{p}")?;
        }
        if !v.problems.is_empty() {
            return Err(CliError(format!(
                "{}: {} problem(s); the export does not verify",
                file.display(),
                v.problems.len()
            )));
        }
        writeln!(
            out,
            "{}: export of tenant {} verified: {} files, {} bytes, manifest version {}",
            file.display(),
            v.manifest.tenant.name,
            v.manifest.totals.files,
            v.manifest.totals.bytes,
            v.manifest.version
        )?;
        return Ok(());
    }
    let (Some(tenant), Some(dest)) = (a.tenant, a.out) else {
        return Err(CliError("--tenant and --out are required".into()));
    };
    let cfg = plain_config(&a.dir)?;
    // The server may run as another user in another directory: give it a full path.
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .map_err(|e| CliError(format!("{}: {e}", parent.display())))?;
    let name = dest
        .file_name()
        .ok_or_else(|| CliError(format!("{}: not a file name", dest.display())))?;
    let req = crate::export::ExportRequest {
        data_dir: cfg.data_dir.clone(),
        tenant,
        user: a.user,
        out: parent.join(name),
        with_password_hashes: a.with_password_hashes,
        with_receipt_key: a.with_receipt_key,
    };
    admin_cmd(&a.dir, AdminRequest::Export(req), out)
}

fn import_cmd(
    dir: &DirArgs,
    input: &std::path::Path,
    merge: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let cfg = plain_config(dir)?;
    let input = input
        .canonicalize()
        .map_err(|e| CliError(format!("{}: {e}", input.display())))?;
    let tenant = crate::export::verify::peek_manifest(&input)
        .map_err(CliError)?
        .tenant
        .name;
    let req = crate::export::ImportRequest {
        data_dir: cfg.data_dir.clone(),
        input: input.clone(),
        merge,
    };
    admin_cmd(dir, AdminRequest::Import(req), out)?;
    audit_admin((
        dir.clone(),
        tenant,
        if merge {
            "admin.import.merge"
        } else {
            "admin.import"
        },
        Some(input.display().to_string()),
    ))
}

fn history_cmd(space: SpaceRef, req: HistoryRequest, out: &mut impl Write) -> Result<(), CliError> {
    let req = AdminRequest::History {
        tenant: space.tenant,
        user: space.user,
        req,
    };
    admin_cmd(&space.dir, req, out)
}

fn admin_cmd(dir: &DirArgs, req: AdminRequest, out: &mut impl Write) -> Result<(), CliError> {
    let cfg = plain_config(dir)?;
    let resp = crate::admin::run(&cfg, req).map_err(CliError)?;
    if resp.ok {
        write!(out, "{}", resp.text)?;
        Ok(())
    } else {
        Err(CliError(resp.text))
    }
}

/// The configuration for a command that writes the data dir's own files: in object storage
/// mode their mirror is opened (refused while a server runs on the data dir,
/// `crate::own_files::open`).
pub(crate) fn load_config(dir: &DirArgs) -> Result<Config, CliError> {
    let cfg = plain_config(dir)?;
    crate::own_files::open(&cfg).map_err(CliError)?;
    Ok(cfg)
}

/// The configuration alone, for a command that hands its work to a running server or only
/// reads the data dir's own files.
/// Inside the server (a forwarded command), the server's own configuration.
fn plain_config(dir: &DirArgs) -> Result<Config, CliError> {
    if let Some(c) = FORWARDED.with(|f| f.borrow().as_ref().map(|fw| fw.config.clone())) {
        return Ok(c);
    }
    Ok(Config::load(&CliOverrides {
        config: dir.config.clone(),
        data_dir: dir.data_dir.clone(),
        listen: None,
    })?)
}

fn open_db(dir: &DirArgs) -> Result<UserDb, CliError> {
    Ok(UserDb::open(&load_config(dir)?.data_dir)?)
}

fn names(who: &UserRef) -> Result<(TenantName, UserName), CliError> {
    Ok((TenantName::new(&who.tenant)?, UserName::new(&who.user)?))
}

fn read_password_stdin() -> Result<String, CliError> {
    let mut buf = Vec::new();
    stdin_reader()
        .take(PASSWORD_LEN_MAX as u64 + 3)
        .read_to_end(&mut buf)?;
    let text = String::from_utf8(buf).map_err(|_| CliError("password is not UTF-8".into()))?;
    let line = text.split('\n').next().unwrap_or("");
    let pw = line.strip_suffix('\r').unwrap_or(line);
    password::check_password(pw)?;
    Ok(pw.to_string())
}

fn user_cmd(c: UserCmd, out: &mut impl Write) -> Result<(), CliError> {
    match c {
        UserCmd::Add { who, .. } => {
            let (t, u) = names(&who)?;
            let pw = read_password_stdin()?;
            let db = open_db(&who.dir)?;
            db.add_user(&t, &u, &password::hash_password(&pw)?)?;
            writeln!(out, "added {u}@{t}")?;
        }
        UserCmd::Passwd { who, .. } => {
            let (t, u) = names(&who)?;
            let pw = read_password_stdin()?;
            let db = open_db(&who.dir)?;
            db.set_password(&t, &u, &password::hash_password(&pw)?)?;
            writeln!(out, "password changed for {u}@{t}")?;
        }
        UserCmd::Del { who, keep_data } => {
            let (t, u) = names(&who)?;
            let db = open_db(&who.dir)?;
            // No login while the data goes; the login itself goes last, so that a failure
            // half way can be finished by running the command again.
            let exists = db.user(&t, &u).is_some();
            if exists {
                db.set_disabled(&t, &u, true)?;
            }
            if let Some(a) = &keep_data {
                UserName::new(a)?;
            }
            let mut done = Vec::new();
            admin_cmd(
                &who.dir,
                AdminRequest::DeleteSpaces {
                    tenant: t.to_string(),
                    user: Some(u.to_string()),
                    keep_data,
                },
                &mut done,
            )?;
            // Nothing of the account may pass to a later one of the same name.
            let data_dir = load_config(&who.dir)?.data_dir;
            crate::spaces::Registry::new(&data_dir).forget(
                t.as_str(),
                crate::spaces::registry::Forget::User(u.as_str()),
            )?;
            crate::handin::Registry::new(&data_dir)
                .forget(
                    t.as_str(),
                    crate::spaces::registry::Forget::User(u.as_str()),
                )
                .map_err(|e| CliError(e.to_string()))?;
            if exists {
                db.delete_user(&t, &u)?;
            } else if done == crate::admin::NO_STORED_DATA.as_bytes() {
                return Err(CliError(format!("no such user {u}@{t}")));
            }
            out.write_all(&done)?;
            writeln!(out, "deleted {u}@{t}")?;
        }
        UserCmd::Disable { who } => {
            let (t, u) = names(&who)?;
            open_db(&who.dir)?.set_disabled(&t, &u, true)?;
            writeln!(out, "disabled {u}@{t}")?;
        }
        UserCmd::Enable { who } => {
            let (t, u) = names(&who)?;
            open_db(&who.dir)?.set_disabled(&t, &u, false)?;
            writeln!(out, "enabled {u}@{t}")?;
        }
        UserCmd::List { dir, tenant } => {
            let t = TenantName::new(&tenant)?;
            let db = open_db(&dir)?;
            // Quotas live in the store (`skab quota set`, shown by `skab usage`), not here.
            writeln!(out, "user\tstatus\ttokens\tcreated")?;
            for u in db.users(&t)? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    u.user,
                    if u.disabled { "disabled" } else { "enabled" },
                    u.tokens,
                    fmt_time(u.created)
                )?;
            }
        }
        UserCmd::Compact { dir } => {
            let c = open_db(&dir)?.compact()?;
            writeln!(
                out,
                "user log compacted: {} -> {} bytes, {} -> {} records",
                c.bytes_before, c.bytes_after, c.ops_before, c.ops_after
            )?;
        }
        UserCmd::Import { dir, csv } => {
            let db = open_db(&dir)?;
            let file = std::fs::File::open(&csv)
                .map_err(|e| CliError(format!("{}: {e}", csv.display())))?;
            let started = std::time::Instant::now();
            let progress = ImportBar::new();
            let result = import_csv_with_progress(
                &db,
                std::io::BufReader::with_capacity(1 << 20, file),
                &progress,
            );
            progress.finish();
            match result {
                Ok(r) => {
                    writeln!(
                        out,
                        "imported {} users ({} passwords hashed) in {:.1} s",
                        r.users,
                        r.hashed,
                        started.elapsed().as_secs_f64()
                    )?;
                    if let Some((took, threads)) = progress.hashing_took() {
                        writeln!(
                            out,
                            "hashing: {:.1} s on {threads} threads, {:.0} passwords/s",
                            took.as_secs_f64(),
                            r.hashed as f64 / took.as_secs_f64().max(1e-9)
                        )?;
                    }
                }
                Err(ImportError::Rows { shown, total }) => {
                    let mut err = std::io::stderr().lock();
                    for e in &shown {
                        if e.line > 0 {
                            writeln!(err, "{}:{}: {}", csv.display(), e.line, e.message)?;
                        } else {
                            writeln!(err, "{}: {}", csv.display(), e.message)?;
                        }
                    }
                    if total > shown.len() {
                        writeln!(err, "... and {} more", total - shown.len())?;
                    }
                    return Err(CliError(format!(
                        "{total} bad row(s); nothing was imported"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn tenant_cmd(c: TenantCmd, out: &mut impl Write) -> Result<(), CliError> {
    match c {
        TenantCmd::Add { dir, tenant } => {
            let t = TenantName::new(&tenant)?;
            open_db(&dir)?.add_tenant(&t)?;
            writeln!(out, "added tenant {t}")?;
        }
        TenantCmd::List { dir } => {
            writeln!(out, "tenant\tusers\tcreated")?;
            for t in open_db(&dir)?.tenants() {
                writeln!(out, "{}\t{}\t{}", t.name, t.users, fmt_time(t.created))?;
            }
        }
        TenantCmd::Del { dir, tenant } => {
            let t = TenantName::new(&tenant)?;
            let db = open_db(&dir)?;
            let users = db.users(&t)?;
            for u in &users {
                db.set_disabled(&t, &u.user, true)?;
            }
            admin_cmd(
                &dir,
                AdminRequest::DeleteSpaces {
                    tenant: t.to_string(),
                    user: None,
                    keep_data: None,
                },
                out,
            )?;
            let data_dir = load_config(&dir)?.data_dir;
            crate::spaces::Registry::new(&data_dir)
                .forget(t.as_str(), crate::spaces::registry::Forget::Tenant)?;
            crate::handin::Registry::new(&data_dir)
                .forget(t.as_str(), crate::spaces::registry::Forget::Tenant)
                .map_err(|e| CliError(e.to_string()))?;
            for u in &users {
                db.delete_user(&t, &u.user)?;
            }
            db.delete_tenant(&t)?;
            writeln!(
                out,
                "deleted {} users of tenant {t} and its data",
                users.len()
            )?;
        }
        TenantCmd::Erase { dir, tenant, yes } => tenant_erase(&dir, &tenant, yes, out)?,
    }
    Ok(())
}

/// `skab tenant erase`: the key first (durably), then the store, then the user database. A
/// run cut short anywhere is finished by running it again.
fn tenant_erase(
    dir: &DirArgs,
    tenant: &str,
    yes: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let t = TenantName::new(tenant)?;
    let cfg = load_config(dir)?;
    if !cfg.crypto.enabled {
        return Err(CliError(
            "tenant erase destroys the tenant's key and needs encryption at rest \
             (crypto.enabled); without it, `skab tenant del` deletes the data"
                .into(),
        ));
    }
    let keys = crate::crypt::key_store_dir(&cfg);
    if !yes {
        writeln!(
            out,
            "This destroys the key of tenant {t} in {}: every file, version and trash item of \
             the tenant becomes unreadable for good, in this data dir and in every backup or \
             copy of it. Its users and groups are deleted.",
            keys.display()
        )?;
        write!(out, "Type the tenant's name to confirm: ")?;
        out.flush()?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdin_reader()), &mut line)?;
        if line.trim() != t.as_str() {
            return Err(CliError("not confirmed: nothing was changed".into()));
        }
    }
    // Opened (and the tenant's users counted) while its records can still be read.
    let db = open_db(dir)?;
    // Through this process's sealer (whose cache of keys must see it) when it has one.
    let destroyed = match crate::crypt::sealer(&cfg.data_dir) {
        Some(s) => s.erase(t.as_str()),
        None => {
            skab_engine::crypt::KeyStore::erase_at(&keys, t.as_str()).map_err(|e| e.to_string())
        }
    }
    .map_err(|e| CliError(format!("destroying the key of tenant {t}: {e}")))?;
    if destroyed {
        writeln!(
            out,
            "destroyed the key of tenant {t} (key store {})",
            keys.display()
        )?;
    } else {
        writeln!(out, "the key of tenant {t} was already destroyed")?;
    }
    // The user database's records of the tenant are sealed with the key just destroyed:
    // one record in the clear takes the tenant with its users, groups and tokens away (the
    // server applies it at its next refresh), and a compaction drops the sealed ones.
    let users = db.erase_tenant(&t)?;
    db.compact()?;
    admin_cmd(
        dir,
        AdminRequest::EraseTenant {
            tenant: t.to_string(),
        },
        out,
    )?;
    let cfg_dir = &cfg.data_dir;
    let mut removed = 0;
    let logs = cfg_dir
        .join(crate::handin::receipt::LOG_DIR)
        .join(t.as_str());
    if crate::handin::receipt::remove_tenant_logs(cfg_dir, t.as_str())
        .map_err(|e| CliError(format!("{}: {e}", logs.display())))?
    {
        removed += 1;
    }
    let keys = cfg_dir.join(crate::handin::receipt::KEY_DIR);
    if crate::handin::receipt::remove_tenant_key(cfg_dir, t.as_str())
        .map_err(|e| CliError(format!("{}: {e}", keys.display())))?
    {
        removed += 1;
    }
    crate::handin::Registry::new(cfg_dir)
        .forget(t.as_str(), crate::spaces::registry::Forget::Tenant)
        .map_err(|e| CliError(e.to_string()))?;
    crate::spaces::Registry::new(cfg_dir)
        .forget(t.as_str(), crate::spaces::registry::Forget::Tenant)
        .map_err(|e| CliError(e.to_string()))?;
    writeln!(
        out,
        "deleted {users} users of tenant {t} and its name; removed its receipt logs and \
         receipt key ({removed} paths); its audit log stays, sealed with the destroyed key"
    )?;
    Ok(())
}

fn key_cmd(c: KeyCmd, out: &mut impl Write) -> Result<(), CliError> {
    use crate::crypt::MasterSource;
    match c {
        KeyCmd::Generate { out: path } => {
            crate::crypt::generate(&path).map_err(CliError)?;
            writeln!(
                out,
                "wrote a new master key to {} (mode 0600)",
                path.display()
            )?;
        }
        KeyCmd::Rotate {
            dir,
            new_master_from,
        } => {
            let cfg = load_config(&dir)?;
            if !cfg.crypto.enabled {
                return Err(CliError(
                    "encryption at rest is off (crypto.enabled)".into(),
                ));
            }
            let old = MasterSource::of(&cfg.crypto)
                .ok_or_else(|| CliError("no master key source configured".into()))?
                .load()
                .map_err(|e| CliError(format!("the current master key: {e}")))?;
            let new = MasterSource::parse(&new_master_from)
                .and_then(|s| s.load())
                .map_err(|e| CliError(format!("the new master key: {e}")))?;
            let keys = crate::crypt::key_store_dir(&cfg);
            let r = skab_engine::crypt::KeyStore::rotate(&keys, &old, &new, None)
                .map_err(|e| CliError(format!("rotation: {e}")))?;
            writeln!(
                out,
                "rewrapped {} tenant keys in {} from master key {} to {} ({} erased tenants \
                 keep their tombstones); no data was rewritten. Now set crypto.master_key_* to \
                 the new key and restart the server.",
                r.tenants_rewrapped,
                keys.display(),
                old.fingerprint_hex(),
                new.fingerprint_hex(),
                r.tenants_erased
            )?;
        }
    }
    Ok(())
}

/// Parses comma-separated user names (empty items skipped).
fn user_names(list: &[String]) -> Result<Vec<UserName>, CliError> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| UserName::new(s).map_err(CliError::from))
        .collect()
}

fn group_cmd(c: GroupCmd, out: &mut impl Write) -> Result<(), CliError> {
    let group_ref = |w: &GroupRef| -> Result<(TenantName, GroupName), CliError> {
        Ok((TenantName::new(&w.tenant)?, GroupName::new(&w.group)?))
    };
    match c {
        GroupCmd::Add { which, members } => {
            let (t, g) = group_ref(&which)?;
            let members = user_names(&members)?;
            open_db(&which.dir)?.add_group(&t, &g, &members)?;
            writeln!(
                out,
                "added group {g} of tenant {t} with {} members",
                members.len()
            )?;
        }
        GroupCmd::List { dir, tenant } => {
            let t = TenantName::new(&tenant)?;
            writeln!(out, "group\tmembers\tcreated")?;
            for g in open_db(&dir)?.groups(&t)? {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    g.name,
                    g.members.len(),
                    fmt_time(g.created)
                )?;
            }
        }
        GroupCmd::Del { which } => {
            let (t, g) = group_ref(&which)?;
            open_db(&which.dir)?.delete_group(&t, &g)?;
            let data_dir = load_config(&which.dir)?.data_dir;
            crate::spaces::Registry::new(&data_dir).forget(
                t.as_str(),
                crate::spaces::registry::Forget::Group(g.as_str()),
            )?;
            crate::handin::Registry::new(&data_dir)
                .forget(
                    t.as_str(),
                    crate::spaces::registry::Forget::Group(g.as_str()),
                )
                .map_err(|e| CliError(e.to_string()))?;
            writeln!(out, "deleted group {g} of tenant {t}")?;
        }
        GroupCmd::Members { which, add, remove } => {
            let (t, g) = group_ref(&which)?;
            let db = open_db(&which.dir)?;
            let (add, remove) = (user_names(&add)?, user_names(&remove)?);
            if !add.is_empty() || !remove.is_empty() {
                db.change_group_members(&t, &g, &add, &remove)?;
            }
            let info = db
                .group(&t, &g)
                .ok_or_else(|| CliError(format!("no such group: {g} of tenant {t}")))?;
            for m in info.members {
                writeln!(out, "{m}")?;
            }
        }
    }
    Ok(())
}

fn token_cmd(c: TokenCmd, out: &mut impl Write) -> Result<(), CliError> {
    match c {
        TokenCmd::Create { who, label } => {
            let (t, u) = names(&who)?;
            let (id, secret) = open_db(&who.dir)?.create_token(&t, &u, &label)?;
            writeln!(out, "id: {id}")?;
            writeln!(out, "token: {secret}")?;
            eprintln!("The token is shown only now; store it in the client.");
        }
        TokenCmd::List { who } => {
            let (t, u) = names(&who)?;
            writeln!(out, "id\tcreated\tlast_used\tlabel")?;
            for k in open_db(&who.dir)?.tokens(&t, &u)? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    k.id,
                    fmt_time(k.created),
                    k.last_used.map_or("never".to_string(), fmt_time),
                    k.label
                )?;
            }
        }
        TokenCmd::Revoke { who, id } => {
            let (t, u) = names(&who)?;
            let id: TokenId = id.parse()?;
            open_db(&who.dir)?.revoke_token(&t, &u, id)?;
            writeln!(out, "revoked {id}")?;
        }
    }
    Ok(())
}

/// Unix seconds as `YYYY-MM-DDThh:mm:ssZ` (UTC).
pub fn fmt_time(secs: u64) -> String {
    crate::dav::xml::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// The progress bar of `skab user import` while plaintext passwords are hashed (on standard
/// error; drawn only at a terminal), and how long the hashing took.
struct ImportBar {
    bar: indicatif::ProgressBar,
    started: parking_lot::Mutex<Option<std::time::Instant>>,
    took: parking_lot::Mutex<Option<std::time::Duration>>,
}

impl ImportBar {
    fn new() -> ImportBar {
        ImportBar {
            bar: indicatif::ProgressBar::hidden(),
            started: parking_lot::Mutex::new(None),
            took: parking_lot::Mutex::new(None),
        }
    }

    fn finish(&self) {
        if let Some(t0) = *self.started.lock() {
            *self.took.lock() = Some(t0.elapsed());
        }
        self.bar.finish_and_clear();
    }

    /// Time spent hashing and the threads used, when anything was hashed.
    fn hashing_took(&self) -> Option<(std::time::Duration, usize)> {
        let took = (*self.took.lock())?;
        (self.bar.length().unwrap_or(0) > 0).then(|| (took, rayon::current_num_threads()))
    }
}

impl ImportProgress for ImportBar {
    fn hashing(&self, to_hash: u64) {
        *self.started.lock() = Some(std::time::Instant::now());
        self.bar.set_length(to_hash);
        if to_hash == 0 {
            return;
        }
        self.bar
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        let style = indicatif::ProgressStyle::with_template(
            "hashing passwords {bar:40} {pos}/{len} ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        self.bar.set_style(style);
        eprintln!(
            "hashing {to_hash} passwords on {} threads (argon2id, about 20 ms of one core each)",
            rayon::current_num_threads()
        );
    }

    fn hashed_one(&self) {
        self.bar.inc(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(fmt_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(fmt_time(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn a_forwarded_command_line_names_its_data_dir_and_stdin() {
        let argv = |s: &str| -> Vec<String> { s.split(' ').map(str::to_owned).collect() };
        let d = dir_args_of(&argv(
            "skab user add --data-dir /d --tenant t --config=/c.toml",
        ));
        assert_eq!(d.data_dir.as_deref(), Some(std::path::Path::new("/d")));
        assert_eq!(d.config.as_deref(), Some(std::path::Path::new("/c.toml")));
        let d = dir_args_of(&argv("skab group list --tenant t"));
        assert!(d.data_dir.is_none() && d.config.is_none());
        let cmd = |s: &str| Cli::try_parse_from(argv(s)).unwrap().command;
        assert!(needs_stdin(&cmd(
            "skab user add --tenant t --user u --password-stdin"
        )));
        assert!(needs_stdin(&cmd("skab tenant erase --tenant t")));
        assert!(!needs_stdin(&cmd("skab tenant erase --tenant t --yes")));
        assert!(needs_stdin(&cmd("skab receipt verify -")));
        assert!(!needs_stdin(&cmd("skab receipt verify skab-receipt-1.x")));
        assert!(forwardable(&cmd("skab space list --tenant t")));
        assert!(!forwardable(&cmd("skab user import --csv f.csv")));
        assert!(!forwardable(&cmd("skab scrub")));
        // Inside the server no other command runs, and a bad line is a clear error.
        let cfg = Config::load_from(&CliOverrides::default(), &[]).unwrap();
        let r = run_forwarded(cfg.clone(), argv("scrub"), None, false);
        assert!(!r.ok && r.text.contains("runs only"), "{}", r.text);
        let r = run_forwarded(cfg, argv("user frobnicate"), None, false);
        assert!(!r.ok && r.text.contains("frobnicate"), "{}", r.text);
    }
}
