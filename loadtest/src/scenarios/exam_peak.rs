//! `exam-peak`: pupils upload answer files on a deadline curve (most in the last minute),
//! then every acknowledged upload is read back and its BLAKE3 checked. In hand-in mode
//! (`[exam_peak.handin]`) every pupil uploads into one skab hand-in, each upload's receipt
//! is checked, the teacher reads every submission back and downloads the zip.

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
    let mut handles = tokio::task::JoinSet::new();
    for a in acked {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (ctx2, v, l, c, e) = (
            ctx.clone(),
            verified.clone(),
            lost.clone(),
            corrupted.clone(),
            errs.clone(),
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
            // The teacher's client, too, comes back after a 429/503 with `Retry-After`.
            let mut tries = 0;
            let got = loop {
                let r = ctx2
                    .http
                    .send(a.pupil, Method::GET, &path, &hdr, Bytes::new(), true)
                    .await;
                match &r {
                    Ok(x)
                        if matches!(x.status, 429 | 503)
                            && x.retry_after_s.is_some()
                            && tries < crate::limits::REFUSED_RETRIES_MAX =>
                    {
                        ctx2.rec.record("verify.refused", Instant::now(), None);
                        tries += 1;
                        let s = x
                            .retry_after_s
                            .unwrap_or(1)
                            .clamp(1, crate::limits::REFUSED_RETRY_AFTER_MAX_S);
                        let after = Duration::from_secs(s);
                        tokio::time::sleep(after + after.mul_f64(rand::random::<f64>() * 0.5))
                            .await;
                    }
                    _ => break r,
                }
            };
            match got {
                Ok(r) if r.status == 200 && r.hash == Some(a.hash) && r.len == a.len => {
                    ctx2.rec.record("verify", at, None);
                    v.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) if r.status == 200 => {
                    ctx2.rec.record("verify", at, Some("corrupted"));
                    c.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) if r.status == 404 || r.status == 410 => {
                    ctx2.rec.record("verify", at, Some("lost"));
                    l.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) => {
                    ctx2.rec
                        .record("verify", at, Some(&format!("status:{}", r.status)));
                    e.fetch_add(1, Ordering::Relaxed);
                }
                Err(f) => {
                    ctx2.rec.record("verify", at, Some(f.kind()));
                    e.fetch_add(1, Ordering::Relaxed);
                }
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
    out.verify_phase_s = start.elapsed().as_secs_f64();
}
