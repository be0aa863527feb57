//! `skab handin add|list|del` and `skab receipt key|verify`.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Subcommand;

use super::receipt;
use super::registry::{Handin, LatePolicy, Registry};
use super::HandinName;
use crate::cli::{fmt_time, CliError, DirArgs};
use crate::config::Config;
use crate::limits::RECEIPT_LEN_MAX;
use crate::users::{GroupName, TenantName, UserDb, UserName};

#[derive(Debug, Subcommand)]
pub enum HandinCmd {
    /// Add a hand-in: the group's members upload to /dav/<tenant>/handin/<handin>/ until
    /// --closes (the server's clock); the owner (teacher) reads every pupil's folder.
    Add {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        handin: String,
        /// The teacher.
        #[arg(long)]
        owner: String,
        /// The group whose members hand in.
        #[arg(long)]
        group: String,
        /// Deadline, RFC 3339 (e.g. 2026-06-12T12:00:00+02:00).
        #[arg(long, value_name = "RFC3339")]
        closes: String,
        /// Uploads are refused before this (RFC 3339); default: open now.
        #[arg(long, value_name = "RFC3339")]
        opens: Option<String>,
        /// After the deadline: refuse uploads (403), or accept them marked late.
        #[arg(long, value_enum, default_value = "refuse")]
        late: LatePolicy,
    },
    /// List the hand-ins of a tenant.
    List {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
    },
    /// Remove a hand-in (its files and receipts stay in the data dir).
    Del {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        handin: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReceiptCmd {
    /// Print the tenant's public receipt key (made on first use), for verifying offline.
    Key {
        #[command(flatten)]
        dir: DirArgs,
        #[arg(long)]
        tenant: String,
    },
    /// Check a receipt's signature; exits non-zero when it does not verify.
    Verify {
        /// The receipt (the Skab-Receipt header's value), or '-' to read it from stdin.
        receipt: String,
        /// A file holding the public key `skab receipt key` printed (no data dir needed).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        #[command(flatten)]
        dir: DirArgs,
    },
}

/// The configuration, the data dir's own files mirrored when in object storage mode
/// (`crate::own_files::open`).
fn config(dir: &DirArgs) -> Result<Config, CliError> {
    crate::cli::load_config(dir)
}

fn parse_time(what: &str, s: &str) -> Result<u64, CliError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| CliError(format!("--{what} {s:?}: not an RFC 3339 time: {e}")))?;
    u64::try_from(t.unix_timestamp()).map_err(|_| CliError(format!("--{what} {s:?}: before 1970")))
}

pub fn handin_cmd(c: HandinCmd, out: &mut impl Write) -> Result<(), CliError> {
    match c {
        HandinCmd::Add {
            dir,
            tenant,
            handin,
            owner,
            group,
            closes,
            opens,
            late,
        } => {
            let cfg = config(&dir)?;
            let t = TenantName::new(&tenant)?;
            let o = UserName::new(&owner)?;
            let g = GroupName::new(&group)?;
            HandinName::new(&handin).map_err(CliError)?;
            let closes = parse_time("closes", &closes)?;
            let opens = opens.map(|o| parse_time("opens", &o)).transpose()?;
            let db = UserDb::open(&cfg.data_dir)?;
            if db.user(&t, &o).is_none() {
                return Err(CliError(format!("no such user {o}@{t}")));
            }
            if db.group(&t, &g).is_none() {
                return Err(CliError(format!("no group {g} in tenant {t}")));
            }
            Registry::new(&cfg.data_dir).add(Handin {
                tenant: tenant.clone(),
                name: handin.clone(),
                owner,
                group,
                opens,
                closes,
                late,
                created: 0,
            })?;
            writeln!(
                out,
                "added hand-in {handin} of tenant {tenant}: closes {}",
                fmt_time(closes)
            )?;
        }
        HandinCmd::List { dir, tenant } => {
            let cfg = config(&dir)?;
            writeln!(out, "handin\towner\tgroup\topens\tcloses\tlate")?;
            for h in Registry::new(&cfg.data_dir)
                .all()
                .iter()
                .filter(|h| h.tenant == tenant)
            {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    h.name,
                    h.owner,
                    h.group,
                    h.opens.map_or_else(|| "-".to_string(), fmt_time),
                    fmt_time(h.closes),
                    match h.late {
                        LatePolicy::Refuse => "refuse",
                        LatePolicy::Mark => "mark",
                    }
                )?;
            }
        }
        HandinCmd::Del {
            dir,
            tenant,
            handin,
        } => {
            let cfg = config(&dir)?;
            Registry::new(&cfg.data_dir).delete(&tenant, &handin)?;
            writeln!(out, "removed hand-in {handin} of tenant {tenant}")?;
        }
    }
    Ok(())
}

pub fn receipt_cmd(c: ReceiptCmd, out: &mut impl Write) -> Result<(), CliError> {
    match c {
        ReceiptCmd::Key { dir, tenant } => {
            let cfg = config(&dir)?;
            let key = receipt::tenant_key(&cfg.data_dir, &tenant)?;
            writeln!(out, "{}", receipt::public_key_text(&key.verifying_key()))?;
        }
        ReceiptCmd::Verify { receipt, key, dir } => {
            let text = if receipt == "-" {
                let mut buf = String::new();
                crate::cli::stdin_reader()
                    .take(RECEIPT_LEN_MAX as u64 + 2)
                    .read_to_string(&mut buf)?;
                buf
            } else {
                receipt
            };
            let stated = receipt::peek(&text)?;
            let public = match key {
                Some(f) => receipt::parse_public_key(
                    &std::fs::read_to_string(&f)
                        .map_err(|e| CliError(format!("{}: {e}", f.display())))?,
                )?,
                None => {
                    let cfg = config(&dir)?;
                    receipt::read_tenant_key(&cfg.data_dir, &stated.tenant)?
                        .ok_or_else(|| {
                            CliError(format!(
                                "tenant {} has no receipt key in {}",
                                stated.tenant,
                                cfg.data_dir.display()
                            ))
                        })?
                        .verifying_key()
                }
            };
            let r = receipt::verify(&text, &public)?;
            writeln!(out, "receipt verified")?;
            writeln!(out, "tenant\t{}", r.tenant)?;
            writeln!(out, "handin\t{}", r.handin)?;
            writeln!(out, "user\t{}", r.user)?;
            writeln!(out, "file\t{}", r.file)?;
            writeln!(out, "size\t{}", r.size)?;
            writeln!(out, "blake3\t{}", r.blake3)?;
            writeln!(out, "time\t{}", r.time)?;
            writeln!(out, "late\t{}", r.late)?;
        }
    }
    Ok(())
}
