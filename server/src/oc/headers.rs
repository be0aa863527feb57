//! The headers the sync clients send with uploads (`X-OC-Mtime`) and read from the answers
//! (`OC-FileId`, `OC-ETag`, `X-OC-MTime: accepted`), and the file ids they know files by.

use hyper::header::{HeaderMap, HeaderValue, ETAG};
use skab_engine::ns::EntryInfo;

use crate::http::response::Resp;
use crate::limits::{OC_MTIME_HEADER_LEN_MAX, OC_MTIME_MAX_S};

/// The instance part of `oc:id` (ownCloud appends its instance id to the padded file id).
pub const INSTANCE_ID: &str = "ocskab";

/// `oc:permissions` of a file and of a collection in one's own space: delete (D), rename
/// (N), move (V), write (W) / create files (C) and folders (K).
pub const FILE_PERMISSIONS: &str = "DNVW";
pub const DIR_PERMISSIONS: &str = "DNVCK";

/// `X-OC-Mtime` (seconds since the epoch, maybe with a fraction) as nanoseconds; `Ok(None)`
/// when absent.
pub fn client_mtime(headers: &HeaderMap) -> Result<Option<i64>, &'static str> {
    let Some(v) = headers.get("x-oc-mtime") else {
        return Ok(None);
    };
    let bad = "X-OC-Mtime is not a time in seconds since 1970";
    let s = v.to_str().map_err(|_| bad)?.trim();
    if s.len() > OC_MTIME_HEADER_LEN_MAX {
        return Err(bad);
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = whole.parse().map_err(|_| bad)?;
    if !(0..=OC_MTIME_MAX_S).contains(&secs) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let mut nanos = 0i64;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
    }
    Ok(Some(secs * 1_000_000_000 + nanos))
}

/// What a client says about an upload: its `X-OC-Mtime` (ns) and its `OC-Checksum`.
pub fn upload_headers(
    headers: &HeaderMap,
) -> Result<(Option<i64>, Option<super::checksum::Expected>), &'static str> {
    let mtime = client_mtime(headers)?;
    let checksum = match headers.get("oc-checksum") {
        None => None,
        Some(v) => v
            .to_str()
            .map_err(|_| "bad OC-Checksum")
            .and_then(super::checksum::Expected::parse)?,
    };
    Ok((mtime, checksum))
}

/// `oc:fileid`: the entry's node id, which a rename or move keeps.
pub fn file_id(info: &EntryInfo) -> u64 {
    u64::from(info.id.0)
}

/// `oc:id`: the file id padded to 8 digits, then the instance id.
pub fn oc_id(info: &EntryInfo) -> String {
    oc_id_of(file_id(info))
}

/// `oc:id` of a file id.
pub fn oc_id_of(id: u64) -> String {
    format!("{id:08}{INSTANCE_ID}")
}

/// Adds what the clients read after an upload: `OC-FileId`, `OC-ETag` (and `ETag`), and
/// `X-OC-MTime: accepted` when they sent a time.
/// `file_id` is the entry's id as the request's space shows it (`Access::file_id`).
pub fn after_upload(r: &mut Resp, etag: &str, mtime_given: bool, file_id: u64) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(ETAG, v.clone());
        h.insert("oc-etag", v);
    }
    if let Ok(v) = HeaderValue::from_str(&oc_id_of(file_id)) {
        h.insert("oc-fileid", v);
    }
    // The ownCloud client asks again with a PROPFIND when an upload's answer lacks them.
    h.insert("oc-perm", HeaderValue::from_static(FILE_PERMISSIONS));
    if mtime_given {
        h.insert("x-oc-mtime", HeaderValue::from_static("accepted"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-oc-mtime", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn mtimes_in_seconds_with_fractions() {
        assert_eq!(client_mtime(&HeaderMap::new()), Ok(None));
        assert_eq!(
            client_mtime(&with("1700000000")),
            Ok(Some(1_700_000_000_000_000_000))
        );
        assert_eq!(client_mtime(&with("12.5")), Ok(Some(12_500_000_000)));
        for bad in ["-1", "x", "1e9", "99999999999999", "1.2.3", "1.-2", ""] {
            assert!(client_mtime(&with(bad)).is_err(), "{bad}");
        }
    }
}
