//! `school-day`: steady open-loop mix of browse, open, save (new version with a small edit),
//! copy, move and delete over the seeded homes, for a configured duration.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{propfind, propfind_headers, wait_until, Ctx, PROPFIND_BODY};
use crate::content;

#[derive(Clone, Debug, Default, Serialize)]
pub struct SchoolDayOut {
    pub ops_planned: u64,
    pub ops_started: u64,
    pub scheduled_rate_per_s: f64,
}

#[derive(Clone, Copy)]
enum Kind {
    Browse,
    Open,
    Save,
    Copy,
    Move,
    Delete,
}

/// Files made by copy (waiting to be moved) and by move (waiting to be deleted).
#[derive(Default)]
struct Made {
    copied: VecDeque<(usize, String)>,
    moved: VecDeque<(usize, String)>,
}

pub async fn run(ctx: Arc<Ctx>, files_per_user: u32) -> SchoolDayOut {
    let c = ctx.cfg.school_day.clone();
    let n = (c.duration_s * c.rate_per_s).round().max(1.0) as u64;
    let n = n.min(crate::limits::SESSIONS_MAX);
    let w = &c.weights;
    let table = [
        (Kind::Browse, w.browse),
        (Kind::Open, w.open),
        (Kind::Save, w.save),
        (Kind::Copy, w.copy),
        (Kind::Move, w.mv),
        (Kind::Delete, w.delete),
    ];
    let total: u32 = table.iter().map(|t| t.1).sum();
    let template = content::template(c.doc_size_bytes as usize, ctx.seed);
    let made = Arc::new(Mutex::new(Made::default()));
    let start = Instant::now();
    let step = c.duration_s / n as f64;
    let mut handles = tokio::task::JoinSet::new();
    let mut started = 0u64;
    for j in 0..n {
        let sched = start + ctx.wall(j as f64 * step);
        if !wait_until(&ctx, sched).await {
            break;
        }
        ctx.rec.record_lag(sched);
        started += 1;
        let mut rng = rand::rngs::StdRng::seed_from_u64(ctx.seed ^ j.wrapping_mul(0xa24b_aed4));
        let mut x = rng.gen_range(0..total.max(1));
        let mut kind = Kind::Browse;
        for (k, wt) in table {
            if x < wt {
                kind = k;
                break;
            }
            x -= wt;
        }
        let u = rng.gen_range(0..ctx.users.len());
        let (ctx2, made2, template2) = (ctx.clone(), made.clone(), template.clone());
        handles.spawn(async move {
            one(
                &ctx2,
                j,
                u,
                kind,
                sched,
                &made2,
                &template2,
                files_per_user,
                &mut rng,
            )
            .await;
        });
        // Reap what finished (amortised O(1): a JoinSet keeps finished tasks apart).
        while handles.try_join_next().is_some() {}
    }
    while handles.join_next().await.is_some() {}
    SchoolDayOut {
        ops_planned: n,
        ops_started: started,
        scheduled_rate_per_s: c.rate_per_s * ctx.time_scale,
    }
}

#[allow(clippy::too_many_arguments)]
async fn one(
    ctx: &Arc<Ctx>,
    j: u64,
    u: usize,
    kind: Kind,
    sched: Instant,
    made: &Mutex<Made>,
    template: &Bytes,
    files_per_user: u32,
    rng: &mut rand::rngs::StdRng,
) {
    // A user's auth kind is stable (drawn from the user index).
    let Some(user) = ctx.users.get(u) else { return };
    let mut urng = rand::rngs::StdRng::seed_from_u64(ctx.seed ^ (u as u64).wrapping_mul(0x9e37));
    let akind = ctx.authn.pick(urng.gen(), user);
    let Some(auth) = ctx.authn.header(akind, user) else {
        ctx.rec.record("browse", sched, Some("auth-header"));
        return;
    };
    let home = ctx.home(user);
    let pick = u;
    let file = |k: u32| format!("{home}file-{k}.bin");
    let k = rng.gen_range(0..files_per_user.max(1));
    let a = [super::auth_header(auth.clone())];
    // Take pending copy/move work first so the queues stay short; fall back to a copy.
    let kind = match kind {
        Kind::Move => {
            let next = made.lock().copied.pop_front();
            match next {
                Some(x) => {
                    if let Some(x) = mv(ctx, j, x, sched).await {
                        made.lock().moved.push_back(x);
                    }
                    return;
                }
                None => Kind::Copy,
            }
        }
        Kind::Delete => {
            let next = {
                let mut m = made.lock();
                m.moved.pop_front().or_else(|| m.copied.pop_front())
            };
            match next {
                Some((uu, path)) => {
                    let Some(owner) = ctx.users.get(uu) else {
                        return;
                    };
                    let mut orng = rand::rngs::StdRng::seed_from_u64(
                        ctx.seed ^ (uu as u64).wrapping_mul(0x9e37),
                    );
                    let okind = ctx.authn.pick(orng.gen(), owner);
                    let Some(oauth) = ctx.authn.header(okind, owner) else {
                        return;
                    };
                    let h = [super::auth_header(oauth)];
                    ctx.op(
                        "delete",
                        sched,
                        uu,
                        Method::DELETE,
                        &path,
                        &h,
                        Bytes::new(),
                        &[204, 200],
                        false,
                    )
                    .await;
                    return;
                }
                None => Kind::Copy,
            }
        }
        k => k,
    };
    match kind {
        Kind::Browse => {
            let h = propfind_headers(&auth, "1");
            let body = Bytes::from_static(PROPFIND_BODY.as_bytes());
            ctx.op(
                "browse",
                sched,
                pick,
                propfind(),
                &home,
                &h,
                body,
                &[207],
                false,
            )
            .await;
        }
        Kind::Open => {
            ctx.op(
                "open",
                sched,
                pick,
                Method::GET,
                &file(k),
                &a,
                Bytes::new(),
                &[200],
                false,
            )
            .await;
        }
        Kind::Save => {
            let marker = format!("edit {j} of run {}", ctx.run_tag);
            let body = content::edited(template, template.len(), marker.as_bytes(), rng);
            ctx.op(
                "save",
                sched,
                pick,
                Method::PUT,
                &file(k),
                &a,
                body,
                &[201, 204],
                false,
            )
            .await;
        }
        Kind::Copy | Kind::Move | Kind::Delete => {
            let to = format!("{home}copy-{}-{j}.bin", ctx.run_tag);
            let dest = format!("http://{}{}", ctx.http.authority(pick), to);
            let Ok(dv) = HeaderValue::from_str(&dest) else {
                return;
            };
            let h = [
                super::auth_header(auth.clone()),
                (HeaderName::from_static("destination"), dv),
                (
                    HeaderName::from_static("overwrite"),
                    HeaderValue::from_static("F"),
                ),
            ];
            let copy = Method::from_bytes(b"COPY").expect("COPY is a valid method");
            if ctx
                .op(
                    "copy",
                    sched,
                    pick,
                    copy,
                    &file(k),
                    &h,
                    Bytes::new(),
                    &[201],
                    false,
                )
                .await
                .is_some()
            {
                made.lock().copied.push_back((u, to));
            }
        }
    }
}

async fn mv(
    ctx: &Arc<Ctx>,
    j: u64,
    (u, from): (usize, String),
    sched: Instant,
) -> Option<(usize, String)> {
    let owner = ctx.users.get(u)?;
    let mut orng = rand::rngs::StdRng::seed_from_u64(ctx.seed ^ (u as u64).wrapping_mul(0x9e37));
    let okind = ctx.authn.pick(orng.gen(), owner);
    let auth = ctx.authn.header(okind, owner)?;
    let to = format!("{}moved-{}-{j}.bin", ctx.home(owner), ctx.run_tag);
    let dest = format!("http://{}{}", ctx.http.authority(u), to);
    let dv = HeaderValue::from_str(&dest).ok()?;
    let h = [
        super::auth_header(auth),
        (HeaderName::from_static("destination"), dv),
        (
            HeaderName::from_static("overwrite"),
            HeaderValue::from_static("F"),
        ),
    ];
    let m = Method::from_bytes(b"MOVE").expect("MOVE is a valid method");
    ctx.op("move", sched, u, m, &from, &h, Bytes::new(), &[201], false)
        .await?;
    Some((u, to))
}
