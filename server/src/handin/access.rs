//! Who may do what in a hand-in, decided once per request before any method runs: the
//! hand-in must exist and the requester be its teacher or a member of its group (anyone
//! else gets 404, so names do not leak); a pupil's URLs map to their own folder only; the
//! teacher only reads; writes follow the server's clock against opens and closes. Also
//! the receipt an accepted PUT earns and the teacher's zip download.
// A refusal is the response itself, as in `methods::common`.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use skab_engine::ns::{EntryInfo, Name, PropName};

use super::receipt::{Receipt, RECEIPT_HEADER};
use super::{space_user, split_view, Handin, LatePolicy, Phase, Upload, PROP_NS, URL_SEGMENT};
use crate::app::App;
use crate::auth::Principal;
use crate::dav::path::{
    decode_segment, parse_destination, parse_target_as, Destination, HostCheck, SpaceKey,
    DAV_PREFIX,
};
use crate::dav::status::path_error;
use crate::http::body::{streamed, ReqBody};
use crate::http::response::{text, Resp};
use crate::methods::{self, engine_names, status_of, Ctx};

/// True when `path` is under `/dav/<tenant>/handin/`.
pub fn is_handin_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix(DAV_PREFIX) else {
        return false;
    };
    let mut segs = rest.split('/').filter(|s| !s.is_empty());
    segs.next().is_some() && segs.next() == Some(URL_SEGMENT)
}

fn not_found() -> Resp {
    text(StatusCode::NOT_FOUND, "not found")
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn unix_s(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn time_text(unix: u64) -> String {
    crate::cli::fmt_time(unix)
}

/// Methods that change nothing.
fn is_read(m: &Method) -> bool {
    matches!(
        m.as_str(),
        "GET" | "HEAD" | "PROPFIND" | "OPTIONS" | "REPORT"
    )
}

/// Serves a request under `/dav/<tenant>/handin/`.
pub async fn serve(app: Arc<App>, mut req: Request<ReqBody>, principal: Principal) -> Resp {
    let tenant = principal.tenant.as_str().to_string();
    let user = principal.user.as_str().to_string();
    // Which hand-in, from the raw URL (a hand-in of another tenant is as missing as none).
    let path = req.uri().path().to_string();
    let mut segs = path[DAV_PREFIX.len()..]
        .split('/')
        .filter(|s| !s.is_empty());
    let (Some(t_raw), Some(_), Some(h_raw)) = (segs.next(), segs.next(), segs.next()) else {
        return not_found();
    };
    let (Ok(t), Ok(h)) = (decode_segment(t_raw), decode_segment(h_raw)) else {
        return not_found();
    };
    if t != tenant {
        return not_found();
    }
    let Some(handin) = app.handins.get(&tenant, &h) else {
        return not_found();
    };
    let pupil = if user == handin.owner {
        None
    } else {
        // The user's groups (a few), not the group's members (a year group).
        let member = crate::spaces::access::groups(&app, &tenant, &user)
            .iter()
            .any(|g| g.as_str() == handin.group);
        if !member {
            return not_found();
        }
        Some(user.clone())
    };
    let view_user = match &pupil {
        Some(p) => format!("{}/{p}", space_user(&h)),
        None => space_user(&h),
    };
    let view = SpaceKey {
        tenant: tenant.clone(),
        user: view_user,
    };
    let target = match parse_target_as(&path, Some(&view))
        .and_then(|t| t.path.check_len(app.config.limits.path_len_max).map(|()| t))
    {
        Ok(t) if t.space == view => t,
        Ok(_) => return not_found(),
        Err(e) => return text(path_error(&e), &e.to_string()),
    };
    let space = match skab_engine::SpaceKey::new(&tenant, &space_user(&h)) {
        Ok(s) => s,
        Err(e) => return text(status_of(&e), &e.to_string()),
    };
    if let Some(p) = &pupil {
        if let Err(r) = forget_older_account(&app, &space, &view, p).await {
            return r;
        }
    }
    if let Err(r) = prepare(&app, &space, &handin, pupil.as_deref()).await {
        return r;
    }
    let arrived = now();
    let phase = handin.phase(unix_s(arrived));
    let method = req.method().clone();
    let zip = req.uri().query() == Some("zip");
    if zip {
        return zip_download(
            &app,
            &handin,
            space,
            pupil.is_some(),
            target.path.is_root(),
            phase,
        );
    }
    if method == Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "hand in with PUT (each upload gets a receipt)",
        );
    }
    if method.as_str() == "PROPPATCH" {
        return text(
            StatusCode::FORBIDDEN,
            "the properties of a hand-in are set by the server",
        );
    }
    if !is_read(&method) {
        let Some(pupil) = &pupil else {
            return text(
                StatusCode::FORBIDDEN,
                "the teacher's view of a hand-in is read-only",
            );
        };
        let late = match phase {
            Phase::NotYetOpen => {
                return text(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "hand-in {h} opens at {}",
                        time_text(handin.opens.unwrap_or(0))
                    ),
                )
            }
            Phase::Open => false,
            Phase::Closed if handin.late == LatePolicy::Mark => true,
            Phase::Closed => {
                return text(
                    StatusCode::FORBIDDEN,
                    &format!("hand-in {h} closed at {}", time_text(handin.closes)),
                )
            }
        };
        // The pupil's folder itself is the view's root: it cannot be replaced or removed.
        if target.path.depth() <= 1 && method != Method::PUT {
            return text(
                StatusCode::FORBIDDEN,
                "the hand-in folder itself cannot be changed",
            );
        }
        if method.as_str() == "COPY" || method.as_str() == "MOVE" {
            if let Err(r) = check_destination(&req, &view) {
                return r;
            }
        }
        req.extensions_mut().insert(Upload {
            handin: h.clone(),
            pupil: pupil.clone(),
            late,
        });
    }
    let names = match engine_names(&target.path) {
        Ok(n) => n,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    // File ids carry the hand-in space's tag, as a space's do: they never meet the home's,
    // and the versions endpoint finds the file by them (`history_dav`).
    let access = crate::spaces::access::Access {
        file_id_tag: crate::spaces::access::file_id_tag(&space),
        ..Default::default()
    };
    let ctx = Ctx {
        app,
        space,
        target,
        names,
        access,
    };
    methods::dispatch(ctx, req).await
}

/// A pupil's COPY or MOVE must land below their folder (any other Destination is refused
/// by the method as another space; the folder itself here).
fn check_destination(req: &Request<ReqBody>, view: &SpaceKey) -> Result<(), Resp> {
    let Some(raw) = req
        .headers()
        .get("destination")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    if let Ok(Destination::Local(d)) = parse_destination(raw, view, HostCheck::Ignore) {
        if d.path.depth() <= 1 {
            return Err(text(
                StatusCode::FORBIDDEN,
                "the hand-in folder itself cannot be replaced",
            ));
        }
    }
    Ok(())
}

/// Makes the hand-in's space (no quota of its own: the tenant's bounds it) and the folder
/// of the pupil, or, for the teacher, of every member of the group.
async fn prepare(
    app: &App,
    space: &skab_engine::SpaceKey,
    handin: &Handin,
    pupil: Option<&str>,
) -> Result<(), Resp> {
    let err = |e: skab_engine::Error| text(status_of(&e), &e.to_string());
    if !app.store.space_exists(space) {
        app.store.create_space(space).await.map_err(err)?;
        // A user's explicit "unlimited" (see `skab quota set`): the default quota of
        // homes does not apply to the whole year group's hand-ins.
        app.store
            .set_space_quota(space, Some(u64::MAX))
            .await
            .map_err(err)?;
    }
    let folders: Vec<String> = match pupil {
        Some(p) => vec![p.to_string()],
        // Every member's folder, at most once per `HANDIN_FOLDERS_REFRESH_S` (a teacher
        // reading a year group's hand-ins must not walk the group on every request).
        None if !app.handins.folders_due(&handin.tenant, &handin.name) => return Ok(()),
        None => {
            let Ok(t) = crate::users::TenantName::new(&handin.tenant) else {
                return Ok(());
            };
            crate::users::GroupName::new(&handin.group)
                .ok()
                .and_then(|g| app.users.group(&t, &g))
                .map(|g| g.members.iter().map(|m| m.as_str().to_string()).collect())
                .unwrap_or_default()
        }
    };
    for f in folders {
        if f == handin.owner {
            continue;
        }
        let name = [Name::new(&f).map_err(err)?];
        if app.store.stat(space, &name).is_err() {
            match app.store.mkdir(space, &name).await {
                Ok(_) | Err(skab_engine::Error::AlreadyExists) => {}
                Err(e) => return Err(err(e)),
            }
        }
    }
    Ok(())
}

/// [`forget_older_account`] for `pupil` in hand-in `handin` of `tenant`, for the versions
/// and trash endpoints (`history_dav`), which reach a pupil's folder without this module.
pub async fn settle_pupil(app: &App, tenant: &str, handin: &str, pupil: &str) -> Result<(), Resp> {
    let Ok(space) = skab_engine::SpaceKey::new(tenant, &space_user(handin)) else {
        return Ok(());
    };
    let view = SpaceKey {
        tenant: tenant.to_string(),
        user: format!("{}/{pupil}", space_user(handin)),
    };
    forget_older_account(app, &space, &view, pupil).await
}

/// What a deleted account of the same name left in the pupil's view, from the moment
/// between `skab user del` retiring its folder and the server seeing it disabled (or from
/// before that command retired folders at all): a folder made before the account was is
/// retired as `user del` does (`handin::retire`), and locks taken before it are dropped, so
/// that the new account sees neither.
async fn forget_older_account(
    app: &App,
    space: &skab_engine::SpaceKey,
    view: &SpaceKey,
    pupil: &str,
) -> Result<(), Resp> {
    let tenant = space.tenant();
    let (Ok(t), Ok(u), Ok(name)) = (
        crate::users::TenantName::new(tenant),
        crate::users::UserName::new(pupil),
        Name::new(pupil),
    ) else {
        return Ok(());
    };
    let Some(created) = app.users.user(&t, &u).map(|i| i.created) else {
        return Ok(());
    };
    // One second more than the account's age in whole seconds: never one of its own locks.
    let age = std::time::Duration::from_secs(unix_s(now()).saturating_sub(created) + 1);
    app.locks.drop_taken_before(view, age);
    let Ok(info) = app.store.stat(space, &[name]) else {
        return Ok(());
    };
    if info.ctime.div_euclid(1_000_000_000) >= i64::try_from(created).unwrap_or(i64::MAX) {
        return Ok(());
    }
    match super::retire::folder(&app.store, space, pupil).await {
        Ok(to) => {
            tracing::warn!(tenant, pupil, space = %space, retired_as = ?to.map(|n| n.to_string()),
                "a hand-in folder older than its pupil's account was retired");
            Ok(())
        }
        Err(e) => {
            tracing::error!(tenant, pupil, error = %e, "an old hand-in folder was not retired");
            Err(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "your hand-in folder is being set up; try again",
            ))
        }
    }
}

/// `GET /dav/<tenant>/handin/<H>/?zip`: the teacher's download of every folder, once closed.
fn zip_download(
    app: &App,
    handin: &Handin,
    space: skab_engine::SpaceKey,
    is_pupil: bool,
    at_root: bool,
    phase: Phase,
) -> Resp {
    if is_pupil {
        return text(
            StatusCode::FORBIDDEN,
            "only the teacher downloads the hand-in",
        );
    }
    if !at_root {
        return text(
            StatusCode::BAD_REQUEST,
            "?zip is asked of the hand-in's root",
        );
    }
    if phase != Phase::Closed {
        return text(
            StatusCode::FORBIDDEN,
            &format!(
                "hand-in {} can be downloaded from {}",
                handin.name,
                time_text(handin.closes)
            ),
        );
    }
    let body = streamed(super::zip::stream(app.store.clone(), space));
    let mut r = hyper::Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-{}.zip\"",
        handin.tenant, handin.name
    )) {
        r.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    r
}

/// After a PUT into a hand-in stored the file: signs and logs the receipt, keeps it (and
/// the late mark) as dead properties of the file, and puts it in the response.
pub async fn after_put(
    ctx: &Ctx,
    upload: &Upload,
    info: &EntryInfo,
    hash: Option<blake3::Hash>,
    resp: &mut Resp,
) -> Result<(), Resp> {
    let Some(hash) = hash else {
        return Err(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upload's hash was not taken",
        ));
    };
    let file = ctx
        .target
        .path
        .segments()
        .skip(1)
        .collect::<Vec<_>>()
        .join("/");
    let r = Receipt {
        tenant: ctx.space.tenant().to_string(),
        handin: upload.handin.clone(),
        user: upload.pupil.clone(),
        file,
        size: info.size,
        blake3: hash.to_hex().to_string(),
        time: rfc3339_ms(now()),
        late: upload.late,
    };
    let fail = |e: std::io::Error| {
        tracing::error!(error = %e, "hand-in receipt not issued");
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "stored, but the receipt could not be issued; upload again",
        )
    };
    let issued = ctx.app.receipts.sign(&r).map_err(fail)?;
    // The log keeps every receipt. A late upload also gets its receipt and the late mark as
    // dead properties (PROPFIND shows them); an on-time one gets none, which spares each
    // upload of the exam peak one more durable write (docs/benchmarks.md, "Exam hand-in").
    let late = PropName::new(PROP_NS, "late");
    let receipt = PropName::new(PROP_NS, "receipt");
    let (props, remove) = if upload.late {
        (
            vec![
                (
                    receipt,
                    format!("<h:receipt xmlns:h=\"{PROP_NS}\">{issued}</h:receipt>").into_bytes(),
                ),
                (
                    late,
                    format!("<h:late xmlns:h=\"{PROP_NS}\">{}</h:late>", r.time).into_bytes(),
                ),
            ],
            Vec::new(),
        )
    } else {
        // An earlier late upload's marks do not describe this content.
        let had: Vec<PropName> = ctx
            .app
            .store
            .props_of(&ctx.space, info.id)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| *n == late || *n == receipt)
            .collect();
        (Vec::new(), had)
    };
    let set = async {
        if props.is_empty() && remove.is_empty() {
            return Ok(());
        }
        ctx.app
            .store
            .set_props(&ctx.space, &ctx.names, props, remove)
            .await
    };
    let (logged, propped) = tokio::join!(ctx.app.receipts.log(&r, &issued), set);
    logged.map_err(fail)?;
    if let Err(e) = propped {
        tracing::warn!(error = %e, "hand-in late mark not set");
    }
    if let Ok(v) = HeaderValue::from_str(&issued) {
        resp.headers_mut().insert(RECEIPT_HEADER, v);
    }
    Ok(())
}

/// `YYYY-MM-DDThh:mm:ss.mmmZ`.
fn rfc3339_ms(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    let s = crate::dav::xml::rfc3339(t);
    format!("{}.{ms:03}Z", s.trim_end_matches('Z'))
}

/// The hand-in view's href prefix of the protocol layer's space key `space` (see
/// [`split_view`]): `/dav/<tenant>/handin/<H>/`, and whether paths start with a pupil's
/// folder that the URL leaves out.
pub fn href_prefix(space: &SpaceKey, out: &mut String) -> bool {
    let (h, pupil) = split_view(&space.user).unwrap_or((&space.user, None));
    out.push_str(DAV_PREFIX);
    crate::dav::path::encode_segment(&space.tenant, out);
    out.push('/');
    out.push_str(URL_SEGMENT);
    out.push('/');
    crate::dav::path::encode_segment(h, out);
    out.push('/');
    pupil.is_some()
}
