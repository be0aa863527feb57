//! What every scenario shares: the run context (client, recorder, users, auth) and the
//! one helper that sends a request and records it against its scheduled start.

pub mod exam_peak;
pub mod login_storm;
pub mod poll;
pub mod school_day;
pub mod seed;
pub mod sync;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};

use crate::client::{AuthKind, Authn, Http, Resp};
use crate::config::Config;
use crate::record::Recorder;
use crate::users::User;

/// The PROPFIND body clients send: the properties a sync client needs.
pub const PROPFIND_BODY: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
<d:propfind xmlns:d=\"DAV:\"><d:prop><d:resourcetype/><d:getetag/>\
<d:getcontentlength/><d:getlastmodified/></d:prop></d:propfind>";

pub struct Ctx {
    pub http: Http,
    pub rec: Recorder,
    pub authn: Authn,
    pub users: Vec<User>,
    pub cfg: Config,
    /// Scenario seconds per wall second (60: an hour in a minute).
    pub time_scale: f64,
    /// No new work starts at or after this instant (the run's time bound).
    pub deadline: Instant,
    pub stopping: AtomicBool,
    /// Distinguishes this run's file names from earlier runs' (unix seconds at start).
    pub run_tag: u64,
    pub seed: u64,
    pub auth_counts: parking_lot::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Sync-client polling counters (login-storm and sync sessions).
    pub polling: poll::PollStats,
}

impl Ctx {
    /// Wall-clock duration of `s` scenario seconds.
    pub fn wall(&self, s: f64) -> std::time::Duration {
        std::time::Duration::from_secs_f64((s / self.time_scale).max(0.0))
    }

    pub fn past_deadline(&self) -> bool {
        self.stopping.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    pub fn home(&self, user: &User) -> String {
        crate::client::home_path(&self.cfg.target.home, user)
    }

    pub fn count_auth(&self, kind: AuthKind) {
        *self.auth_counts.lock().entry(kind.name()).or_default() += 1;
    }

    /// Sends a request and records op `op` from `scheduled`; an answer outside `expect`
    /// is an error of kind `status:NNN`. Returns the response when it was expected.
    #[allow(clippy::too_many_arguments)]
    pub async fn op(
        &self,
        op: &'static str,
        scheduled: Instant,
        pick: usize,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        expect: &[u16],
        hash: bool,
    ) -> Option<Resp> {
        match self
            .http
            .send(pick, method, path, headers, body, hash)
            .await
        {
            Ok(r) if expect.contains(&r.status) => {
                self.rec.record(op, scheduled, None);
                Some(r)
            }
            Ok(r) => {
                self.rec
                    .record(op, scheduled, Some(&format!("status:{}", r.status)));
                None
            }
            Err(f) => {
                self.rec.record(op, scheduled, Some(f.kind()));
                None
            }
        }
    }

    /// Like `op`, but a 429 or 503 with `Retry-After` (the server shedding load) is answered
    /// as clients do: wait that long (plus up to half again, so a refused cohort does not come
    /// back at one instant) and send again, at most `REFUSED_RETRIES_MAX` times; each refusal
    /// is a row of its own (`refused_op`), and the operation's latency runs from `scheduled`
    /// to its success (what the user waits).
    #[allow(clippy::too_many_arguments)]
    pub async fn op_retrying(
        &self,
        op: &'static str,
        refused_op: &'static str,
        scheduled: Instant,
        pick: usize,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        expect: &[u16],
        hash: bool,
    ) -> Option<Resp> {
        use crate::limits::{REFUSED_RETRIES_MAX, REFUSED_RETRY_AFTER_MAX_S};
        let mut tries = 0;
        loop {
            let sent = Instant::now();
            match self
                .http
                .send(pick, method.clone(), path, headers, body.clone(), hash)
                .await
            {
                Ok(r) if expect.contains(&r.status) => {
                    self.rec.record(op, scheduled, None);
                    return Some(r);
                }
                Ok(r)
                    if matches!(r.status, 429 | 503)
                        && r.retry_after_s.is_some()
                        && tries < REFUSED_RETRIES_MAX =>
                {
                    self.rec.record(refused_op, sent, None);
                    tries += 1;
                    let after = std::time::Duration::from_secs(
                        r.retry_after_s
                            .unwrap_or(1)
                            .clamp(1, REFUSED_RETRY_AFTER_MAX_S),
                    );
                    let spread = after.mul_f64(rand::random::<f64>() * 0.5);
                    tokio::time::sleep(after + spread).await;
                }
                Ok(r) => {
                    self.rec
                        .record(op, scheduled, Some(&format!("status:{}", r.status)));
                    return None;
                }
                Err(f) => {
                    self.rec.record(op, scheduled, Some(f.kind()));
                    return None;
                }
            }
        }
    }

    /// Like `op`, but the response keeps its body and `ETag` header (`Http::send_keep`).
    #[allow(clippy::too_many_arguments)]
    pub async fn op_keep(
        &self,
        op: &'static str,
        scheduled: Instant,
        pick: usize,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        expect: &[u16],
    ) -> Option<Resp> {
        match self.http.send_keep(pick, method, path, headers, body).await {
            Ok(r) if expect.contains(&r.status) => {
                self.rec.record(op, scheduled, None);
                Some(r)
            }
            Ok(r) => {
                self.rec
                    .record(op, scheduled, Some(&format!("status:{}", r.status)));
                None
            }
            Err(f) => {
                self.rec.record(op, scheduled, Some(f.kind()));
                None
            }
        }
    }
}

pub fn auth_header(v: HeaderValue) -> (HeaderName, HeaderValue) {
    (http::header::AUTHORIZATION, v)
}

pub fn propfind_headers(auth: &HeaderValue, depth: &'static str) -> [(HeaderName, HeaderValue); 3] {
    [
        auth_header(auth.clone()),
        (
            HeaderName::from_static("depth"),
            HeaderValue::from_static(depth),
        ),
        (
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        ),
    ]
}

pub fn propfind() -> Method {
    // Internal invariant: "PROPFIND" is a valid method token.
    Method::from_bytes(b"PROPFIND").expect("PROPFIND is a valid method")
}

/// Sleeps until `at` unless it has passed; returns false when the run's deadline came first.
pub async fn wait_until(ctx: &Arc<Ctx>, at: Instant) -> bool {
    if at >= ctx.deadline {
        return false;
    }
    if at > Instant::now() {
        tokio::time::sleep_until(at.into()).await;
    }
    !ctx.past_deadline()
}
