//! The user log's records and their framing: `len u32 LE | crc32c u32 LE | postcard payload`.
//! With encryption at rest, the operations that name users, groups or tokens are written as
//! [`Entry::Sealed`] records, a run of one tenant's operations sealed with its key.

use super::names::{GroupName, TenantName, UserName};
use super::TokenId;
use crate::limits::USER_LOG_RECORD_LEN_MAX;
use serde::{Deserialize, Serialize};

/// First bytes of `users.log`.
pub(crate) const MAGIC: &[u8; 8] = b"SKABUSR1";
/// Bytes of a frame header (length and checksum).
pub(crate) const FRAME_HEADER: usize = 8;

/// One change to the user database. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Op {
    TenantAdd {
        tenant: TenantName,
        at: u64,
    },
    UserAdd {
        tenant: TenantName,
        user: UserName,
        phc: String,
        at: u64,
    },
    UserPassword {
        tenant: TenantName,
        user: UserName,
        phc: String,
    },
    UserDelete {
        tenant: TenantName,
        user: UserName,
    },
    UserDisabled {
        tenant: TenantName,
        user: UserName,
        disabled: bool,
    },
    UserQuota {
        tenant: TenantName,
        user: UserName,
        quota: Option<u64>,
    },
    TokenAdd {
        tenant: TenantName,
        user: UserName,
        id: TokenId,
        label: String,
        hash: [u8; 32],
        at: u64,
    },
    TokenRevoke {
        tenant: TenantName,
        user: UserName,
        id: TokenId,
    },
    TokenUsed {
        tenant: TenantName,
        user: UserName,
        id: TokenId,
        at: u64,
    },
    /// The first operation of a compacted log: offsets in this file count from `base`, past
    /// every offset of the log it replaced, so epochs (offsets) never repeat.
    LogBase {
        base: u64,
    },
    /// A user as a compaction writes it: all of it, its epoch kept.
    UserRestore {
        tenant: TenantName,
        user: UserName,
        phc: String,
        quota: Option<u64>,
        disabled: bool,
        created: u64,
        epoch: u64,
    },
    /// An app token as a compaction writes it.
    TokenRestore {
        tenant: TenantName,
        user: UserName,
        id: TokenId,
        label: String,
        hash: [u8; 32],
        created: u64,
        last_used: Option<u64>,
    },
    /// Removes a tenant that no longer has users (its data is deleted first).
    TenantDelete {
        tenant: TenantName,
    },
    /// Creates a group with its first members (as a compaction also writes it).
    GroupAdd {
        tenant: TenantName,
        group: GroupName,
        members: Vec<UserName>,
        at: u64,
    },
    GroupDelete {
        tenant: TenantName,
        group: GroupName,
    },
    /// Adds and removes members; names not (or already) members are skipped.
    GroupMembers {
        tenant: TenantName,
        group: GroupName,
        add: Vec<UserName>,
        remove: Vec<UserName>,
    },
    /// Removes a tenant with everything it had (users, groups, tokens): what `skab tenant
    /// erase` writes once the tenant's key is destroyed, when its sealed records can no
    /// longer be read or written.
    TenantErase {
        tenant: TenantName,
    },
}

impl Op {
    /// The tenant whose key seals this operation, or `None` for one that stays in the clear
    /// (tenant names and the log's base are not secret; docs/security.md).
    pub(crate) fn sealed_tenant(&self) -> Option<&TenantName> {
        match self {
            Op::TenantAdd { .. }
            | Op::TenantDelete { .. }
            | Op::TenantErase { .. }
            | Op::LogBase { .. } => None,
            Op::UserAdd { tenant, .. }
            | Op::UserPassword { tenant, .. }
            | Op::UserDelete { tenant, .. }
            | Op::UserDisabled { tenant, .. }
            | Op::UserQuota { tenant, .. }
            | Op::TokenAdd { tenant, .. }
            | Op::TokenRevoke { tenant, .. }
            | Op::TokenUsed { tenant, .. }
            | Op::UserRestore { tenant, .. }
            | Op::TokenRestore { tenant, .. }
            | Op::GroupAdd { tenant, .. }
            | Op::GroupDelete { tenant, .. }
            | Op::GroupMembers { tenant, .. } => Some(tenant),
        }
    }
}

/// A record: an operation, the end of a transaction of `ops` operations, or `ops`
/// operations of one tenant sealed with its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Entry {
    Op(Op),
    Commit {
        ops: u32,
    },
    /// `sealed` is the postcard `Vec<Op>` of `ops` operations of `tenant`, sealed with the
    /// tenant's key (context [`SEAL_WHAT`]). Operation `j` of it is numbered as the frame's
    /// offset plus `j` (a frame is longer than its operation count, so numbers never meet).
    Sealed {
        tenant: TenantName,
        ops: u32,
        sealed: Vec<u8>,
    },
}

/// What the user log's sealed records are (authenticated with them).
pub(crate) const SEAL_WHAT: &str = "users.log";

/// Opens a sealed record: its operations, `None` when the tenant's key was erased, or why
/// it cannot be opened. `None` as the opener itself: the log is not sealed.
pub(crate) type Opener<'a> = &'a dyn Fn(&TenantName, &[u8]) -> Result<Option<Vec<Op>>, String>;

/// Appends `entry` framed to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, entry: &Entry) -> Result<(), String> {
    let payload = postcard::to_allocvec(entry).map_err(|e| e.to_string())?;
    if payload.len() > USER_LOG_RECORD_LEN_MAX {
        return Err(format!(
            "record of {} bytes exceeds the limit",
            payload.len()
        ));
    }
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// The entry of the frame at the start of `bytes`, if one is whole and sound there.
pub(crate) fn first_entry(bytes: &[u8]) -> Option<Entry> {
    let header = bytes.get(..FRAME_HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len > USER_LOG_RECORD_LEN_MAX {
        return None;
    }
    let payload = bytes.get(FRAME_HEADER..FRAME_HEADER + len)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    postcard::from_bytes(payload).ok()
}

/// Result of scanning log bytes: the complete transactions, and where the last one ends.
pub(crate) struct Scan {
    /// Operations of complete transactions, each with the file offset of its frame.
    pub ops: Vec<(u64, Op)>,
    /// File offset just past the last complete transaction.
    pub committed_end: u64,
    /// Bytes after `committed_end` that do not form a complete transaction.
    pub torn: bool,
    /// Operations in the clear that a sealed log would seal (written before encryption at
    /// rest sealed the user database, or by a command run without the key).
    pub clear_sealable: u64,
}

/// Scans `bytes`, which start at file offset `base`; stops at the first bad or partial frame.
/// `open` opens sealed records (a sealed log); without it (a plain log) a sealed record is
/// an error: a record that is whole but cannot be read is never taken for a torn tail.
/// Operations in the clear are read either way (and counted, so that a sealed database
/// seals them at once).
pub(crate) fn scan(bytes: &[u8], base: u64, open: Option<Opener<'_>>) -> Result<Scan, String> {
    let mut ops = Vec::new();
    let mut pending: Vec<(u64, Op)> = Vec::new();
    let mut pending_count = 0usize;
    let mut clear_sealable = 0u64;
    let mut pos = 0usize;
    let mut committed = 0usize;
    while let Some(header) = bytes.get(pos..pos + FRAME_HEADER) {
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(&header[..4]);
        let mut crc4 = [0u8; 4];
        crc4.copy_from_slice(&header[4..]);
        let len = u32::from_le_bytes(len4) as usize;
        if len > USER_LOG_RECORD_LEN_MAX {
            break;
        }
        let Some(payload) = bytes.get(pos + FRAME_HEADER..pos + FRAME_HEADER + len) else {
            break;
        };
        if crc32c::crc32c(payload) != u32::from_le_bytes(crc4) {
            break;
        }
        let Ok(entry) = postcard::from_bytes::<Entry>(payload) else {
            break;
        };
        let offset = base + pos as u64;
        pos += FRAME_HEADER + len;
        match entry {
            Entry::Op(op) => {
                if open.is_some() && op.sealed_tenant().is_some() {
                    clear_sealable += 1;
                }
                pending.push((offset, op));
                pending_count += 1;
            }
            Entry::Sealed {
                tenant,
                ops: n,
                sealed,
            } => {
                let open = open.ok_or_else(|| {
                    format!(
                        "record at offset {offset} is sealed (encryption at rest), but \
                         crypto.enabled is off"
                    )
                })?;
                if let Some(plain) = open(&tenant, &sealed)? {
                    if plain.len() != n as usize
                        || plain.iter().any(|o| o.sealed_tenant() != Some(&tenant))
                    {
                        return Err(format!(
                            "sealed record at offset {offset} does not hold what it says"
                        ));
                    }
                    pending.extend(
                        plain
                            .into_iter()
                            .enumerate()
                            .map(|(j, o)| (offset + j as u64, o)),
                    );
                }
                pending_count += n as usize;
            }
            Entry::Commit { ops: n } => {
                if n as usize != pending_count {
                    break;
                }
                ops.append(&mut pending);
                pending_count = 0;
                committed = pos;
            }
        }
    }
    Ok(Scan {
        ops,
        committed_end: base + committed as u64,
        torn: committed < bytes.len(),
        clear_sealable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(i: u64) -> Op {
        Op::TenantAdd {
            tenant: TenantName::new(&format!("t{i}")).unwrap(),
            at: i,
        }
    }

    fn txn(out: &mut Vec<u8>, ops: &[Op]) {
        for o in ops {
            encode(out, &Entry::Op(o.clone())).unwrap();
        }
        encode(
            out,
            &Entry::Commit {
                ops: ops.len() as u32,
            },
        )
        .unwrap();
    }

    #[test]
    fn complete_transactions_only() {
        let mut b = Vec::new();
        txn(&mut b, &[op(1), op(2)]);
        let end1 = b.len();
        txn(&mut b, &[op(3)]);
        let full = b.len();
        let s = scan(&b, 100, None).unwrap();
        assert_eq!(s.ops.len(), 3);
        assert_eq!(s.ops[0].0, 100);
        assert_eq!(s.committed_end, 100 + full as u64);
        assert!(!s.torn);
        // Every cut inside the second transaction keeps exactly the first.
        for cut in end1 + 1..full {
            let s = scan(&b[..cut], 0, None).unwrap();
            assert_eq!(s.ops.len(), 2, "cut at {cut}");
            assert_eq!(s.committed_end, end1 as u64);
            assert!(s.torn);
        }
        // A flipped bit in the second transaction also drops only it.
        let mut c = b.clone();
        c[end1 + 10] ^= 1;
        let s = scan(&c, 0, None).unwrap();
        assert_eq!(s.ops.len(), 2);
        assert!(s.torn);
    }

    #[test]
    fn ops_without_commit_are_torn() {
        let mut b = Vec::new();
        encode(&mut b, &Entry::Op(op(1))).unwrap();
        let s = scan(&b, 0, None).unwrap();
        assert!(s.ops.is_empty());
        assert_eq!(s.committed_end, 0);
        assert!(s.torn);
        // A commit with the wrong count is not a commit.
        encode(&mut b, &Entry::Commit { ops: 2 }).unwrap();
        assert!(scan(&b, 0, None).unwrap().ops.is_empty());
    }

    #[test]
    fn huge_length_field_is_not_trusted() {
        let mut b = vec![0xff; 8];
        b.extend_from_slice(&[0; 32]);
        let s = scan(&b, 0, None).unwrap();
        assert!(s.ops.is_empty() && s.torn);
    }
}
