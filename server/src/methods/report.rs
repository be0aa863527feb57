//! REPORT (RFC 3253 §3.6) with the `sync-collection` report (RFC 6578): the members of a
//! collection that changed since a sync token, from the space's change log. Token format,
//! limits and leniencies: `docs/webdav.md`, "sync-collection".

use hyper::{Request, StatusCode};
use skab_engine::ns::{Change, Changes, SyncToken};

use super::common::{engine_error, read_xml_body};
use super::ctx::Ctx;
use super::propfind::{describe, quota_for};
use super::reply::{condition, multistatus};
use crate::dav::path::SpacePath;
use crate::dav::status::xml_error;
use crate::dav::xml::{parse_report, DavCondition, Multistatus, XmlLimits};
use crate::http::body::ReqBody;
use crate::http::response::{text, Resp};
use crate::limits::{DAV_SYNC_RESULTS_MAX, DAV_SYNC_TOKEN_LEN_MAX};

/// Every token is this URI followed by `<epoch, hex>-<sequence number, decimal>`.
pub const TOKEN_PREFIX: &str = "http://skab.dk/ns/sync/";
/// Room reserved per answered member (as PROPFIND's multistatus).
const RESPONSE_BYTES: usize = 512;

pub fn token_uri(t: SyncToken) -> String {
    format!("{TOKEN_PREFIX}{:x}-{}", t.epoch, t.seq)
}

fn parse_token(s: &str) -> Option<SyncToken> {
    if s.len() > DAV_SYNC_TOKEN_LEN_MAX {
        return None;
    }
    let (epoch, seq) = s.strip_prefix(TOKEN_PREFIX)?.split_once('-')?;
    let digits = |x: &str, hex: bool| {
        !x.is_empty()
            && x.bytes().all(|b| {
                if hex {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    if !digits(epoch, true) || !digits(seq, false) {
        return None;
    }
    Some(SyncToken {
        epoch: u64::from_str_radix(epoch, 16).ok()?,
        seq: seq.parse().ok()?,
    })
}

pub async fn handle(ctx: &Ctx, req: Request<ReqBody>) -> Resp {
    // RFC 3253: a missing Depth is 0; RFC 6578 §3.3 wants 0. Depth 1 is accepted and ignored
    // (sync-level decides); only infinity is refused (docs/webdav.md).
    match req
        .headers()
        .get("depth")
        .map(|v| v.to_str().map(str::trim))
    {
        None | Some(Ok("0")) | Some(Ok("1")) => {}
        Some(_) => return text(StatusCode::BAD_REQUEST, "REPORT takes Depth 0"),
    }
    let body = match read_xml_body(ctx, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let q = match parse_report(&body, XmlLimits::from_config(&ctx.app.config.limits)) {
        Ok(Some(q)) => q,
        Ok(None) => {
            return condition(StatusCode::FORBIDDEN, Some(&DavCondition::SupportedReport));
        }
        Err(e) => {
            let (code, cond) = xml_error(&e);
            return condition(code, cond.as_ref());
        }
    };
    let limit = q
        .nresults
        .map_or(DAV_SYNC_RESULTS_MAX, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        })
        .clamp(1, DAV_SYNC_RESULTS_MAX);
    let store = &ctx.app.store;
    let answer = if q.token.is_empty() {
        store.sync_listing(&ctx.space, &ctx.names, q.infinite)
    } else {
        match parse_token(&q.token) {
            Some(t) => store.changes_since(&ctx.space, t, &ctx.names, q.infinite, limit),
            None => Ok(Changes::Invalid),
        }
    };
    let (changes, token, complete) = match answer {
        Ok(Changes::Since {
            changes,
            token,
            complete,
        }) => (changes, token, complete),
        Ok(Changes::Invalid) => {
            return condition(StatusCode::FORBIDDEN, Some(&DavCondition::ValidSyncToken));
        }
        Ok(Changes::TooMany) => {
            return condition(
                StatusCode::INSUFFICIENT_STORAGE,
                Some(&DavCondition::NumberOfMatchesWithinLimits),
            );
        }
        Err(skab_engine::Error::NotADirectory) => {
            return condition(StatusCode::FORBIDDEN, Some(&DavCondition::SupportedReport));
        }
        Err(e) => return engine_error(&e),
    };
    let any_dir = changes
        .iter()
        .any(|c| matches!(c, Change::Changed { info, .. } if super::common::is_dir(info)));
    let quota = quota_for(ctx, any_dir);
    let mut ms = Multistatus::with_capacity((changes.len() + 2) * RESPONSE_BYTES);
    for c in &changes {
        match c {
            Change::Changed { path, info } => {
                let Ok(p) = SpacePath::from_segments(path.iter().map(|n| n.as_str())) else {
                    continue;
                };
                describe(ctx, &mut ms, &p, info, &q.props, quota.as_ref());
            }
            Change::Removed { path, dir } => {
                let Ok(p) = SpacePath::from_segments(path.iter().map(|n| n.as_str())) else {
                    continue;
                };
                ms.response(&ctx.href(&p, *dir))
                    .status(StatusCode::NOT_FOUND);
            }
        }
    }
    if !complete {
        // RFC 6578 §3.6: truncated; the token continues from the last change answered.
        ms.response(&ctx.href(&ctx.target.path, true))
            .status(StatusCode::INSUFFICIENT_STORAGE)
            .error(&DavCondition::NumberOfMatchesWithinLimits);
    }
    multistatus(ms.finish_with_sync_token(&token_uri(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let t = SyncToken {
            epoch: 0xdead_beef_0123,
            seq: 42,
        };
        assert_eq!(parse_token(&token_uri(t)), Some(t));
        for bad in [
            "",
            "http://skab.dk/ns/sync/",
            "http://skab.dk/ns/sync/1",
            "http://skab.dk/ns/sync/-1",
            "http://skab.dk/ns/sync/1-",
            "http://skab.dk/ns/sync/g-1",
            "http://skab.dk/ns/sync/1-+1",
            "http://skab.dk/ns/sync/11111111111111111-1",
            "http://skab.dk/ns/sync/1-99999999999999999999",
            "http://example.com/ns/sync/1-1",
        ] {
            assert_eq!(parse_token(bad), None, "{bad:?}");
        }
    }
}
