//! The WAL record: what one logged change says (postcard-encoded; see `docs/formats.md`).

use crate::ns::NsOp;

/// Version tag of [`WalRecord`]'s encoding; bump on any incompatible change.
pub(crate) const WAL_RECORD_VERSION: u8 = 1;

/// One logged change.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum WalRecord {
    /// Create tenant `tenant` if missing and set its quota.
    Tenant { tenant: String, quota: Option<u64> },
    /// Create the space (tenant, user) if missing.
    CreateSpace { tenant: String, user: String },
    /// A change inside the space (tenant, user).
    Space {
        tenant: String,
        user: String,
        op: NsOp,
    },
}

pub(crate) fn encode(rec: &WalRecord) -> Vec<u8> {
    let out = vec![WAL_RECORD_VERSION];
    // Serialising our own enum into a Vec cannot fail.
    match postcard::to_extend(rec, out) {
        Ok(v) => v,
        Err(e) => unreachable!("postcard encoding into a Vec failed: {e}"),
    }
}

/// Borrowing twin of [`WalRecord`] for encoding without cloning (same variants, same order).
#[derive(serde::Serialize)]
enum WalRecordRef<'a> {
    _Tenant {
        tenant: &'a str,
        quota: Option<u64>,
    },
    _CreateSpace {
        tenant: &'a str,
        user: &'a str,
    },
    Space {
        tenant: &'a str,
        user: &'a str,
        op: &'a NsOp,
    },
}

/// Encodes a [`WalRecord::Space`] without cloning the op.
pub(crate) fn encode_space_op(tenant: &str, user: &str, op: &NsOp) -> Vec<u8> {
    let out = vec![WAL_RECORD_VERSION];
    match postcard::to_extend(&WalRecordRef::Space { tenant, user, op }, out) {
        Ok(v) => v,
        Err(e) => unreachable!("postcard encoding into a Vec failed: {e}"),
    }
}

/// Borrowing view of [`WalRecord`] for replay: no string allocations per record.
#[derive(Debug, serde::Deserialize)]
pub(crate) enum WalRecordView<'a> {
    Tenant {
        tenant: &'a str,
        quota: Option<u64>,
    },
    CreateSpace {
        tenant: &'a str,
        user: &'a str,
    },
    Space {
        tenant: &'a str,
        user: &'a str,
        op: NsOp,
    },
}

pub(crate) fn decode_view(buf: &[u8]) -> Result<WalRecordView<'_>, String> {
    match buf.split_first() {
        Some((&WAL_RECORD_VERSION, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!("unknown WAL record version {v}")),
        None => Err("empty WAL record".into()),
    }
}
