//! `exam-peak`: pupils upload answer files on a deadline curve (most in the last minute),
//! then every acknowledged upload is read back and its BLAKE3 checked. In hand-in mode
//! (`[exam_peak.handin]`) every pupil uploads into one skab hand-in, each upload's receipt
//! is checked, the teacher reads every submission back and downloads the zip.
//!
//! With several targets (cluster nodes), pupil i uploads through target `i % n`, and its
//! read-back goes first through the *next* target (`(i + 1) % n`), then through the others,
//! its own last: an upload is lost only when it was acknowledged and no target returns its
//! bytes, so a node killed after acknowledging shows up as lost unless the survivors serve it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{wait_until, Ctx};
use crate::content;
use crate::curve::{arrivals, peak_rate, Shape};
use crate::limits::VERIFY_CONCURRENCY;

#[derive(Clone, Debug, Default, Serialize)]
pub struct ExamOut {
    pub pupils_planned: u64,
    pub uploads_started: u64,
    /// Uploads the server answered 201/204 to.
    pub acknowledged: u64,
    pub upload_failed: u64,
    pub logical_bytes_acknowledged: u64,
    pub template_uploads: u64,
    pub peak_scheduled_uploads_per_s: f64,
    /// Acknowledged uploads per wall second over the upload phase.
    pub uploads_per_s: f64,
    pub upload_phase_s: f64,
    pub verify_ran: bool,
    /// Read back with the same BLAKE3 and length.
    pub verified: u64,
    /// Acknowledged but gone (404/410).
    pub lost: u64,
    /// Acknowledged but read back with other bytes.
    pub corrupted: u64,
    /// Could not be read back for another reason (timeouts, 5xx): neither verified nor lost.
    pub verify_errors: u64,
    pub verify_phase_s: f64,
    /// Targets the verify pass may read through (all of `--target`).
    pub verify_targets: usize,
    /// Verified through a target other than the one that acknowledged the upload.
    pub verified_elsewhere: u64,
    /// Per target, in `--target` order: uploads started, acknowledged, failed through it.
    pub started_by_target: Vec<u64>,
    pub acknowledged_by_target: Vec<u64>,
    pub failed_by_target: Vec<u64>,
    /// Hand-in mode: receipts whose signature holds and that state the upload's user, file,
    /// size and BLAKE3; bad (wrong or unsigned); missing (no `Skab-Receipt` header).
    pub receipts_verified: u64,
    pub receipts_bad: u64,
    pub receipts_missing: u64,
    /// The teacher's zip download: status (0: not tried), bytes, wall seconds.
    pub zip_status: u16,
    pub zip_bytes: u64,
    pub zip_s: f64,
}

struct Acked {
    pupil: usize,
    path: String,
    hash: blake3::Hash,
    len: u64,
    receipt: Option<String>,
}

/// The hand-in's URL for the tenant of `user` (hand-in mode), with a trailing slash.
fn handin_url(name: &str, user: &crate::users::User) -> String {
    format!("/dav/{}/handin/{name}/", user.tenant)
}

/// The teacher's basic-auth header.
fn teacher_auth(c: &crate::config::HandinCfg) -> Option<http::HeaderValue> {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", c.teacher, c.teacher_password));
    http::HeaderValue::from_str(&format!("Basic {b}")).ok()
}

pub async fn run(ctx: Arc<Ctx>, pupils: u64) -> ExamOut {
    let c = ctx.cfg.exam_peak.clone();
    let times = arrivals(
        pupils,
        c.window_s,
        Shape::Deadline {
            last_share: c.last_share,
            last_s: c.last_s,
        },
    );
    let template = content::template(c.size_max_bytes as usize, ctx.seed);
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let templ = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = tokio::task::JoinSet::new();
    let mut started = 0u64;
    for (i, t) in times.iter().enumerate() {
        let sched = start + ctx.wall(*t);
        if !wait_until(&ctx, sched).await {
            break;
        }
        ctx.rec.record_lag(sched);
        started += 1;
        let (ctx2, acked2, failed2, templ2, template2) = (
            ctx.clone(),
            acked.clone(),
            failed.clone(),
            templ.clone(),
            template.clone(),
        );
        handles.spawn(async move {
            ctx2.rec.sessions_started.fetch_add(1, Ordering::Relaxed);
            ctx2.rec.sessions_live.fetch_add(1, Ordering::Relaxed);
            match upload(&ctx2, i, sched, &template2, &templ2).await {
                Some(a) => acked2.lock().push(a),
                None => {
                    failed2.fetch_add(1, Ordering::Relaxed);
                }
            }
            ctx2.rec.sessions_live.fetch_sub(1, Ordering::Relaxed);
            ctx2.rec.sessions_done.fetch_add(1, Ordering::Relaxed);
        });
        // Reap what finished (amortised O(1): a JoinSet keeps finished tasks apart).
        while handles.try_join_next().is_some() {}
    }
    while handles.join_next().await.is_some() {}
    let upload_phase_s = start.elapsed().as_secs_f64();
    let acked = std::mem::take(&mut *acked.lock());
    let n = ctx.http.targets.len();
    let mut started_by_target = vec![0u64; n];
    for i in 0..started as usize {
        started_by_target[ctx.http.target_of(i)] += 1;
    }
    let mut acknowledged_by_target = vec![0u64; n];
    for a in &acked {
        acknowledged_by_target[ctx.http.target_of(a.pupil)] += 1;
    }
    let failed_by_target = started_by_target
        .iter()
        .zip(&acknowledged_by_target)
        .map(|(s, a)| s.saturating_sub(*a))
        .collect();
    let mut out = ExamOut {
        pupils_planned: pupils,
        uploads_started: started,
        acknowledged: acked.len() as u64,
        upload_failed: failed.load(Ordering::Relaxed),
        logical_bytes_acknowledged: acked.iter().map(|a| a.len).sum(),
        template_uploads: templ.load(Ordering::Relaxed),
        peak_scheduled_uploads_per_s: peak_rate(&times, c.window_s) * ctx.time_scale,
        uploads_per_s: acked.len() as f64 / upload_phase_s.max(1e-9),
        upload_phase_s,
        verify_targets: n,
        started_by_target,
        acknowledged_by_target,
        failed_by_target,
        ..ExamOut::default()
    };
    if !c.handin.name.is_empty() {
        check_receipts(&ctx, &acked, &mut out);
    }
    if c.verify {
        verify(&ctx, acked, &mut out).await;
    }
    if !c.handin.name.is_empty() && c.handin.zip_wait_s > 0.0 {
        download_zip(&ctx, &mut out).await;
    }
    out
}

/// Every acknowledged upload's receipt against the tenant's public key and the upload.
fn check_receipts(ctx: &Ctx, acked: &[Acked], out: &mut ExamOut) {
    let key = crate::receipt::parse_key(&ctx.cfg.exam_peak.handin.public_key);
    for a in acked {
        let Some(text) = &a.receipt else {
            out.receipts_missing += 1;
            continue;
        };
        let user = ctx.users.get(a.pupil % ctx.users.len());
        let good = key
            .as_ref()
            .and_then(|k| crate::receipt::verify(text, k))
            .is_some_and(|r| {
                Some(r.user.as_str()) == user.map(|u| u.user.as_str())
                    && a.path.ends_with(&format!("/{}", r.file))
                    && r.size == a.len
                    && r.blake3 == a.hash.to_hex().as_str()
            });
        if good {
            out.receipts_verified += 1;
        } else {
            out.receipts_bad += 1;
        }
    }
}

/// Waits for the hand-in to close (403 until then), then streams the zip once.
async fn download_zip(ctx: &Arc<Ctx>, out: &mut ExamOut) {
    let h = &ctx.cfg.exam_peak.handin;
    let (Some(user), Some(auth)) = (ctx.users.first(), teacher_auth(h)) else {
        return;
    };
    let url = format!("{}?zip", handin_url(&h.name, user));
    let until = Instant::now() + std::time::Duration::from_secs_f64(h.zip_wait_s);
    loop {
        let at = Instant::now();
        let hdr = [super::auth_header(auth.clone())];
        match ctx
            .http
            .send(0, Method::GET, &url, &hdr, Bytes::new(), false)
            .await
        {
            Ok(r) if r.status == 403 && Instant::now() < until => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Ok(r) => {
                ctx.rec
                    .record("zip", at, (r.status != 200).then_some("zip-status"));
                out.zip_status = r.status;
                out.zip_bytes = r.len;
                out.zip_s = at.elapsed().as_secs_f64();
                return;
            }
            Err(f) => {
                ctx.rec.record("zip", at, Some(f.kind()));
                return;
            }
        }
    }
}

async fn upload(
    ctx: &Arc<Ctx>,
    i: usize,
    sched: Instant,
    template: &Bytes,
    templ: &AtomicU64,
) -> Option<Acked> {
    let c = &ctx.cfg.exam_peak;
    let user = ctx.users.get(i % ctx.users.len())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(ctx.seed ^ (i as u64).wrapping_mul(0x51ed));
    let kind = ctx.authn.pick(rng.gen(), user);
    ctx.count_auth(kind);
    let size = content::lognormal_size(
        &mut rng,
        c.size_median_bytes,
        c.size_sigma,
        c.size_min_bytes,
        c.size_max_bytes,
    ) as usize;
    let body = if rng.gen_bool(c.template_share) {
        templ.fetch_add(1, Ordering::Relaxed);
        let marker = format!("pupil {i} of run {}: my answer", ctx.run_tag);
        content::edited(template, size, marker.as_bytes(), &mut rng)
    } else {
        content::random(size, &mut rng)
    };
    let hash = blake3::hash(&body);
    let len = body.len() as u64;
    let h = &c.handin;
    let path = if h.name.is_empty() {
        format!("{}exam-{}-{i}.bin", ctx.home(user), ctx.run_tag)
    } else {
        format!("{}exam-{}-{i}.bin", handin_url(&h.name, user), ctx.run_tag)
    };
    let Some(auth) = ctx.authn.header(kind, user) else {
        ctx.rec.record("upload", sched, Some("auth-header"));
        return None;
    };
    let headers = [
        super::auth_header(auth),
        (
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/octet-stream"),
        ),
    ];
    let r = ctx
        .op_retrying(
            "upload",
            "upload.refused",
            sched,
            i,
            Method::PUT,
            &path,
            &headers,
            body,
            &[201, 204],
            false,
        )
        .await?;
    Some(Acked {
        pupil: i,
        path,
        hash,
        len,
        receipt: r.receipt.and_then(|v| v.to_str().ok().map(str::to_string)),
    })
}

async fn verify(ctx: &Arc<Ctx>, acked: Vec<Acked>, out: &mut ExamOut) {
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(VERIFY_CONCURRENCY));
    let verified = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let corrupted = Arc::new(AtomicU64::new(0));
    let errs = Arc::new(AtomicU64::new(0));
    let elsewhere = Arc::new(AtomicU64::new(0));
    let mut handles = tokio::task::JoinSet::new();
    for a in acked {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (ctx2, v, l, c, e, el) = (
            ctx.clone(),
            verified.clone(),
            lost.clone(),
            corrupted.clone(),
            errs.clone(),
            elsewhere.clone(),
        );
        handles.spawn(async move {
            let _permit = permit;
            let Some(user) = ctx2.users.get(a.pupil % ctx2.users.len()) else {
                e.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let h = &ctx2.cfg.exam_peak.handin;
            // Verify reads use the cheapest credential the user has (not part of the load);
            // in hand-in mode the teacher reads each pupil's folder.
            let (auth, path) = if h.name.is_empty() {
                let kind = ctx2.authn.pick(0.0, user);
                (ctx2.authn.header(kind, user), a.path.clone())
            } else {
                let base = handin_url(&h.name, user);
                let rest = a.path.strip_prefix(&base).unwrap_or(&a.path);
                (teacher_auth(h), format!("{base}{}/{rest}", user.user))
            };
            let Some(auth) = auth else {
                e.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let at = Instant::now();
            let hdr = [super::auth_header(auth)];
            let n = ctx2.http.targets.len().max(1);
            let own = ctx2.http.target_of(a.pupil);
            // The next target first, the one that acknowledged it last.
            let mut seen = Seen::default();
            for k in 1..=n {
                let target = (own + k) % n;
                let pick = ctx2.http.pick_on(a.pupil, target);
                match read_back(&ctx2, pick, &path, &hdr, &a).await {
                    ReadBack::Exact => {
                        seen.exact = true;
                        if target != own {
                            el.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                    ReadBack::Other => seen.other = true,
                    ReadBack::Gone => seen.gone = true,
                    ReadBack::Failed(kind) => seen.failed = Some(kind),
                }
            }
            // Byte-exact anywhere: verified; else other bytes anywhere: corrupted; else a
            // target said it is not there: lost; else no target could answer.
            if seen.exact {
                ctx2.rec.record("verify", at, None);
                v.fetch_add(1, Ordering::Relaxed);
            } else if seen.other {
                ctx2.rec.record("verify", at, Some("corrupted"));
                c.fetch_add(1, Ordering::Relaxed);
            } else if seen.gone {
                ctx2.rec.record("verify", at, Some("lost"));
                l.fetch_add(1, Ordering::Relaxed);
            } else {
                ctx2.rec
                    .record("verify", at, Some(seen.failed.as_deref().unwrap_or("io")));
                e.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Reap what finished (amortised O(1): a JoinSet keeps finished tasks apart).
        while handles.try_join_next().is_some() {}
    }
    while handles.join_next().await.is_some() {}
    out.verify_ran = true;
    out.verified = verified.load(Ordering::Relaxed);
    out.lost = lost.load(Ordering::Relaxed);
    out.corrupted = corrupted.load(Ordering::Relaxed);
    out.verify_errors = errs.load(Ordering::Relaxed);
    out.verified_elsewhere = elsewhere.load(Ordering::Relaxed);
    out.verify_phase_s = start.elapsed().as_secs_f64();
}

/// What the verify pass saw of one upload over the targets it tried.
#[derive(Default)]
struct Seen {
    exact: bool,
    other: bool,
    gone: bool,
    failed: Option<String>,
}

/// One read-back through one target.
enum ReadBack {
    /// 200 with the acknowledged bytes.
    Exact,
    /// 200 with other bytes.
    Other,
    /// 404 or 410.
    Gone,
    /// Anything else (the error kind: `status:503`, `connect`, ...).
    Failed(String),
}

/// GETs `path` through the target of `pick`; a 429 or 503 with `Retry-After` is waited for
/// and sent again (the teacher's client does that too), at most `REFUSED_RETRIES_MAX` times.
async fn read_back(
    ctx: &Ctx,
    pick: usize,
    path: &str,
    hdr: &[(http::HeaderName, http::HeaderValue)],
    a: &Acked,
) -> ReadBack {
    let mut tries = 0;
    loop {
        let r = ctx
            .http
            .send(pick, Method::GET, path, hdr, Bytes::new(), true)
            .await;
        return match r {
            Ok(x)
                if matches!(x.status, 429 | 503)
                    && x.retry_after_s.is_some()
                    && tries < crate::limits::REFUSED_RETRIES_MAX =>
            {
                ctx.rec.record("verify.refused", Instant::now(), None);
                tries += 1;
                let s = x
                    .retry_after_s
                    .unwrap_or(1)
                    .clamp(1, crate::limits::REFUSED_RETRY_AFTER_MAX_S);
                let after = Duration::from_secs(s);
                tokio::time::sleep(after + after.mul_f64(rand::random::<f64>() * 0.5)).await;
                continue;
            }
            Ok(x) if x.status == 200 && x.hash == Some(a.hash) && x.len == a.len => ReadBack::Exact,
            Ok(x) if x.status == 200 => ReadBack::Other,
            Ok(x) if x.status == 404 || x.status == 410 => ReadBack::Gone,
            Ok(x) => ReadBack::Failed(format!("status:{}", x.status)),
            Err(f) => ReadBack::Failed(f.kind().to_string()),
        };
    }
}
