//! `skab space add|list|del|share|unshare` and `skab share list|add|del`.

use std::io::Write;

use clap::Subcommand;

use super::registry::{Grant, Grantee, Perm, Registry, Share, Space};
use super::SpaceName;
use crate::cli::{fmt_time, CliError, DirArgs};
use crate::config::Config;
use crate::dav::path::SpacePath;
use crate::users::{GroupName, TenantName, UserDb, UserName};

#[derive(Debug, Subcommand)]
pub enum SpaceCmd {
    /// Add a shared space at /dav/<tenant>/spaces/<space>/, shown in every member's home.
    Add {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        space: String,
        /// Its owner (may always write).
        #[arg(long)]
        owner: String,
        /// A member: `group:NAME=read|write` or `user:NAME=read|write` (repeatable).
        #[arg(long = "share", value_name = "WHO=PERM")]
        shares: Vec<String>,
    },
    /// List the spaces of a tenant with their members.
    List {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
    },
    /// Remove a space (its files stay in the data dir, reachable again by adding it).
    Del {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        space: String,
    },
    /// Add members to a space, or change what they may do.
    Share {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        space: String,
        /// `group:NAME=read|write` or `user:NAME=read|write` (repeatable).
        #[arg(long = "share", value_name = "WHO=PERM", required = true)]
        shares: Vec<String>,
    },
    /// Remove members from a space (at once, also for open connections).
    Unshare {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        space: String,
        /// `group:NAME` or `user:NAME` (repeatable).
        #[arg(long = "from", value_name = "WHO", required = true)]
        from: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShareCmd {
    /// List the shares of a tenant (or those of one owner).
    List {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        /// Only the shares this user made.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Share a folder of a user's home with a user or a group.
    Add {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        /// Whose folder.
        #[arg(long)]
        owner: String,
        /// The folder's path in the owner's home (e.g. `Teaching/Physics`).
        #[arg(long)]
        path: String,
        /// `group:NAME` or `user:NAME`.
        #[arg(long = "with", value_name = "WHO")]
        with: String,
        #[arg(long, value_enum, default_value = "read")]
        perm: PermArg,
    },
    /// Revoke a share (at once, also for open connections).
    Del {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        id: u64,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PermArg {
    Read,
    Write,
}

impl From<PermArg> for Perm {
    fn from(p: PermArg) -> Perm {
        match p {
            PermArg::Read => Perm::Read,
            PermArg::Write => Perm::Write,
        }
    }
}

/// The configuration, the data dir's own files mirrored when in object storage mode
/// (`crate::own_files::open`).
fn config(dir: &DirArgs) -> Result<Config, CliError> {
    crate::cli::load_config(dir)
}

/// `group:NAME` or `user:NAME`, checked against the user database.
fn grantee(db: &UserDb, t: &TenantName, s: &str) -> Result<Grantee, CliError> {
    let to = match s.split_once(':') {
        Some(("user", n)) => Grantee::User(n.to_string()),
        Some(("group", n)) => Grantee::Group(n.to_string()),
        _ => return Err(CliError(format!("{s:?}: expected user:NAME or group:NAME"))),
    };
    check_grantee(db, t, &to)?;
    Ok(to)
}

fn check_grantee(db: &UserDb, t: &TenantName, to: &Grantee) -> Result<(), CliError> {
    match to {
        Grantee::User(u) => {
            let u = UserName::new(u)?;
            if db.user(t, &u).is_none() {
                return Err(CliError(format!("no such user {u}@{t}")));
            }
        }
        Grantee::Group(g) => {
            let g = GroupName::new(g)?;
            if db.group(t, &g).is_none() {
                return Err(CliError(format!("no group {g} in tenant {t}")));
            }
        }
    }
    Ok(())
}

fn grants(db: &UserDb, t: &TenantName, list: &[String]) -> Result<Vec<Grant>, CliError> {
    list.iter()
        .map(|s| {
            let g = Grant::parse(s).map_err(CliError)?;
            check_grantee(db, t, &g.to)?;
            Ok(g)
        })
        .collect()
}

fn grants_text(s: &Space) -> String {
    if s.grants.is_empty() {
        return "-".into();
    }
    s.grants
        .iter()
        .map(Grant::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn space_cmd(c: SpaceCmd, out: &mut impl Write) -> Result<(), CliError> {
    match c {
        SpaceCmd::Add {
            dir,
            tenant,
            space,
            owner,
            shares,
        } => {
            let cfg = config(&dir)?;
            let t = TenantName::new(&tenant)?;
            let o = UserName::new(&owner)?;
            SpaceName::new(&space).map_err(CliError)?;
            let db = UserDb::open(&cfg.data_dir)?;
            if db.user(&t, &o).is_none() {
                return Err(CliError(format!("no such user {o}@{t}")));
            }
            let grants = grants(&db, &t, &shares)?;
            Registry::new(&cfg.data_dir).add_space(Space {
                tenant: tenant.clone(),
                name: space.clone(),
                owner,
                grants,
                created: 0,
            })?;
            writeln!(
                out,
                "added space {space} of tenant {tenant} at /dav/{tenant}/spaces/{space}/"
            )?;
        }
        SpaceCmd::List { dir, tenant } => {
            let cfg = config(&dir)?;
            writeln!(out, "space\towner\tmembers\tcreated")?;
            for s in Registry::new(&cfg.data_dir)
                .all()
                .spaces
                .iter()
                .filter(|s| s.tenant == tenant)
            {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    s.name,
                    s.owner,
                    grants_text(s),
                    fmt_time(s.created)
                )?;
            }
        }
        SpaceCmd::Del { dir, tenant, space } => {
            let cfg = config(&dir)?;
            Registry::new(&cfg.data_dir).delete_space(&tenant, &space)?;
            writeln!(out, "removed space {space} of tenant {tenant}")?;
        }
        SpaceCmd::Share {
            dir,
            tenant,
            space,
            shares,
        } => {
            let cfg = config(&dir)?;
            let t = TenantName::new(&tenant)?;
            let db = UserDb::open(&cfg.data_dir)?;
            let add = grants(&db, &t, &shares)?;
            let s = Registry::new(&cfg.data_dir).regrant(&tenant, &space, &add, &[])?;
            writeln!(out, "space {space}: {}", grants_text(&s))?;
        }
        SpaceCmd::Unshare {
            dir,
            tenant,
            space,
            from,
        } => {
            let cfg = config(&dir)?;
            let remove: Vec<Grantee> = from
                .iter()
                .map(|s| match s.split_once(':') {
                    Some(("user", n)) => Ok(Grantee::User(n.to_string())),
                    Some(("group", n)) => Ok(Grantee::Group(n.to_string())),
                    _ => Err(CliError(format!("{s:?}: expected user:NAME or group:NAME"))),
                })
                .collect::<Result<_, _>>()?;
            let s = Registry::new(&cfg.data_dir).regrant(&tenant, &space, &[], &remove)?;
            writeln!(out, "space {space}: {}", grants_text(&s))?;
        }
    }
    Ok(())
}

pub fn share_cmd(c: ShareCmd, out: &mut impl Write) -> Result<(), CliError> {
    match c {
        ShareCmd::List { dir, tenant, owner } => {
            let cfg = config(&dir)?;
            writeln!(out, "id\towner\tpath\twith\tperm\tcreated")?;
            for s in Registry::new(&cfg.data_dir)
                .all()
                .shares
                .iter()
                .filter(|s| s.tenant == tenant && owner.as_ref().is_none_or(|o| *o == s.owner))
            {
                writeln!(
                    out,
                    "{}\t{}\t/{}\t{}\t{}\t{}",
                    s.id,
                    s.owner,
                    s.path,
                    s.to,
                    s.perm.as_str(),
                    fmt_time(s.created)
                )?;
            }
        }
        ShareCmd::Add {
            dir,
            tenant,
            owner,
            path,
            with,
            perm,
        } => {
            let cfg = config(&dir)?;
            let t = TenantName::new(&tenant)?;
            let o = UserName::new(&owner)?;
            let db = UserDb::open(&cfg.data_dir)?;
            if db.user(&t, &o).is_none() {
                return Err(CliError(format!("no such user {o}@{t}")));
            }
            let to = grantee(&db, &t, &with)?;
            let path = share_path(&path)?;
            let s = Registry::new(&cfg.data_dir).add_share(Share {
                id: 0,
                tenant,
                owner,
                path,
                to,
                perm: perm.into(),
                created: 0,
            })?;
            writeln!(
                out,
                "share {}: /{} of {} with {} ({})",
                s.id,
                s.path,
                s.owner,
                s.to,
                s.perm.as_str()
            )?;
        }
        ShareCmd::Del { dir, tenant, id } => {
            let cfg = config(&dir)?;
            let s = Registry::new(&cfg.data_dir).delete_share(&tenant, id, |_| true)?;
            writeln!(
                out,
                "revoked share {id}: /{} of {} with {}",
                s.path, s.owner, s.to
            )?;
        }
    }
    Ok(())
}

/// A shared folder's path as stored: decoded segments joined by `/`, not the root.
pub fn share_path(raw: &str) -> Result<String, CliError> {
    let p = SpacePath::from_segments(raw.split('/').filter(|s| !s.is_empty()))
        .map_err(|e| CliError(format!("--path {raw:?}: {e}")))?;
    if p.is_root() {
        return Err(CliError("a share is a folder, not the whole home".into()));
    }
    Ok(p.as_str().to_string())
}

/// What an audit record of a space command says: (data dir args, log, kind, target).
pub fn audit_of_space(c: &SpaceCmd) -> Option<(DirArgs, String, &'static str, Option<String>)> {
    let rec = |dir: &DirArgs, tenant: &String, kind, target: String| {
        Some((dir.clone(), tenant.clone(), kind, Some(target)))
    };
    match c {
        SpaceCmd::Add {
            dir,
            tenant,
            space,
            shares,
            ..
        } => rec(
            dir,
            tenant,
            "admin.space.add",
            format!("{space} {}", shares.join(",")),
        ),
        SpaceCmd::Del { dir, tenant, space } => {
            rec(dir, tenant, "admin.space.delete", space.clone())
        }
        SpaceCmd::Share {
            dir,
            tenant,
            space,
            shares,
        } => rec(
            dir,
            tenant,
            "admin.space.share",
            format!("{space} {}", shares.join(",")),
        ),
        SpaceCmd::Unshare {
            dir,
            tenant,
            space,
            from,
        } => rec(
            dir,
            tenant,
            "admin.space.unshare",
            format!("{space} {}", from.join(",")),
        ),
        SpaceCmd::List { .. } => None,
    }
}

/// What an audit record of a share command says.
pub fn audit_of_share(c: &ShareCmd) -> Option<(DirArgs, String, &'static str, Option<String>)> {
    match c {
        ShareCmd::Add {
            dir,
            tenant,
            owner,
            path,
            with,
            perm,
        } => Some((
            dir.clone(),
            tenant.clone(),
            "admin.share.add",
            Some(format!(
                "{owner}:/{path} {with}={}",
                Perm::from(*perm).as_str()
            )),
        )),
        ShareCmd::Del { dir, tenant, id } => Some((
            dir.clone(),
            tenant.clone(),
            "admin.share.delete",
            Some(id.to_string()),
        )),
        ShareCmd::List { .. } => None,
    }
}
