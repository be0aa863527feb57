//! `login-storm`: sessions arrive on the 08:00 curve; each logs in (PROPFIND Depth 1 of its
//! home, remembering the home's ETag), opens one or two files, then polls its home while alive
//! the way the desktop sync clients do (`poll.rs`: Depth 0; on a changed ETag the follow-up
//! listings).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::poll::{PollOut, Poller, Tree};
use super::{wait_until, Ctx};
use crate::curve::{arrivals, peak_rate, Shape};

#[derive(Clone, Debug, Serialize)]
pub struct LoginStormOut {
    pub sessions_planned: u64,
    pub sessions_started: u64,
    pub logins_ok: u64,
    pub logins_failed: u64,
    /// Highest scheduled arrival rate over a 1 % slice of the window, sessions per wall second.
    pub peak_scheduled_logins_per_s: f64,
    /// Polls, polls that found the home's ETag changed, and the follow-up listings.
    pub polling: PollOut,
}

pub async fn run(ctx: Arc<Ctx>, sessions: u64) -> LoginStormOut {
    let c = ctx.cfg.login_storm.clone();
    let times = arrivals(
        sessions,
        c.window_s,
        Shape::Peak {
            peak_at: c.peak_at,
            spread: c.spread,
            baseline: c.baseline_share,
        },
    );
    let start = Instant::now();
    let mut handles = tokio::task::JoinSet::new();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut started = 0u64;
    for (i, t) in times.iter().enumerate() {
        let sched = start + ctx.wall(*t);
        if !wait_until(&ctx, sched).await {
            break;
        }
        ctx.rec.record_lag(sched);
        started += 1;
        let (ctx2, ok, bad) = (ctx.clone(), done.clone(), failed.clone());
        handles.spawn(async move {
            ctx2.rec
                .sessions_started
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ctx2.rec
                .sessions_live
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let good = session(&ctx2, i, sched).await;
            let counter = if good { ok } else { bad };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ctx2.rec
                .sessions_live
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            ctx2.rec
                .sessions_done
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        // Reap what finished (amortised O(1): a JoinSet keeps finished tasks apart).
        while handles.try_join_next().is_some() {}
    }
    while handles.join_next().await.is_some() {}
    let scale = ctx.time_scale;
    LoginStormOut {
        sessions_planned: sessions,
        sessions_started: started,
        logins_ok: done.load(std::sync::atomic::Ordering::Relaxed),
        logins_failed: failed.load(std::sync::atomic::Ordering::Relaxed),
        peak_scheduled_logins_per_s: peak_rate(&times, c.window_s) * scale,
        polling: ctx.polling.out(),
    }
}

/// One session; true when it logged in.
async fn session(ctx: &Arc<Ctx>, i: usize, sched: Instant) -> bool {
    let c = &ctx.cfg.login_storm;
    let Some(user) = ctx.users.get(i % ctx.users.len()) else {
        return false;
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(ctx.seed ^ (i as u64).wrapping_mul(0x9e37));
    let kind = ctx.authn.pick(rng.gen(), user);
    ctx.count_auth(kind);
    let Some(auth) = ctx.authn.header(kind, user) else {
        ctx.rec.record("login.jwt", sched, Some("auth-header"));
        return false;
    };
    let home = ctx.home(user);
    let op: &'static str = match kind {
        crate::client::AuthKind::Jwt => "login.jwt",
        crate::client::AuthKind::Token => "login.token",
        crate::client::AuthKind::Basic => "login.basic",
    };
    let poller = Poller {
        ctx,
        pick: i,
        home: &home,
        auth: &auth,
    };
    // What the session remembers between polls: its home's ETag (and its folders').
    let mut tree = Tree::default();
    // Requests are boxed: a session spends most of its life asleep between polls, and its
    // future is only as large as its largest state (an inline request future is kilobytes).
    if !Box::pin(poller.login(op, sched, &mut tree)).await {
        return false;
    }
    let files = rng.gen_range(c.files_min..=c.files_max);
    let auth_only = [super::auth_header(auth.clone())];
    for k in 0..files {
        let path = format!("{home}file-{k}.bin");
        let at = Instant::now();
        Box::pin(ctx.op(
            "get",
            at,
            i,
            Method::GET,
            &path,
            &auth_only,
            Bytes::new(),
            &[200],
            false,
        ))
        .await;
    }
    ctx.rec.record("session", sched, None);
    let every = ctx.wall(c.poll_every_s);
    let alive = ctx.wall(c.session_s);
    // A client polls only once it has logged in: polls whose time passed while the login
    // waited (a refused login waits for its `Retry-After`) are not sent, so the `poll` row
    // measures polls, not the first login again.
    let ready = Instant::now();
    let mut n = 1u32;
    while every * n <= alive {
        let at = sched + every * n;
        if at < ready {
            n += 1;
            continue;
        }
        if !wait_until(ctx, at).await {
            break;
        }
        Box::pin(poller.poll(at, &mut tree)).await;
        n += 1;
    }
    true
}
