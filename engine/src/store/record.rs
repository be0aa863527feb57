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

/// Version tag of a sealed record: `[2][tenant name length u8][tenant name][sealed]`, where
/// `sealed` is a plain record (version 1) sealed with the tenant's key
/// ([`crate::crypt::TenantCipher::seal_meta`], context `skab wal:` and the tenant's name). The
/// tenant's name stays readable: replay must know whose key opens the record.
pub(crate) const WAL_SEALED_VERSION: u8 = 2;

fn wal_context(tenant: &str) -> Vec<u8> {
    format!("skab wal:{tenant}").into_bytes()
}

/// `plain` (an encoded record of `tenant`) as it goes into the log: sealed when the tenant
/// has a cipher, else as it is.
pub(crate) fn seal(
    cipher: Option<&crate::crypt::TenantCipher>,
    tenant: &str,
    plain: Vec<u8>,
) -> Vec<u8> {
    let Some(c) = cipher else { return plain };
    let sealed = c.seal_meta(&wal_context(tenant), &plain);
    let mut out = Vec::with_capacity(2 + tenant.len() + sealed.len());
    out.push(WAL_SEALED_VERSION);
    // Tenant names are validated account names: at most 64 bytes.
    out.push(tenant.len() as u8);
    out.extend_from_slice(tenant.as_bytes());
    out.extend_from_slice(&sealed);
    out
}

/// What a logged payload is, before decoding.
pub(crate) enum Logged<'a> {
    /// A plain record (decode it with [`decode_view`]).
    Plain(&'a [u8]),
    /// A sealed record of this tenant, and its sealed bytes.
    Sealed { tenant: &'a str, sealed: &'a [u8] },
}

pub(crate) fn classify(buf: &[u8]) -> Result<Logged<'_>, String> {
    match buf.split_first() {
        Some((&WAL_SEALED_VERSION, rest)) => {
            let (&n, rest) = rest.split_first().ok_or("sealed record without tenant")?;
            if rest.len() < n as usize {
                return Err("sealed record shorter than its tenant name".into());
            }
            let (name, sealed) = rest.split_at(n as usize);
            let tenant = std::str::from_utf8(name).map_err(|_| "tenant name not UTF-8")?;
            Ok(Logged::Sealed { tenant, sealed })
        }
        _ => Ok(Logged::Plain(buf)),
    }
}

/// Opens a sealed record's bytes with its tenant's cipher.
pub(crate) fn open(
    cipher: &crate::crypt::TenantCipher,
    tenant: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, String> {
    cipher
        .open_meta(&wal_context(tenant), sealed)
        .map_err(|e| format!("sealed record of tenant {tenant}: {e}"))
}
