//! `seed`: fills every user's home through WebDAV (MKCOL of the home, then PUT
//! `file-0.bin` .. `file-{K-1}.bin`), closed loop with bounded concurrency; optionally first
//! MKCOL the collections above the homes (`seed.mkcol_parents`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use rand::SeedableRng;
use serde::Serialize;

use super::Ctx;
use crate::client::AuthKind;
use crate::content;

#[derive(Clone, Debug, Default, Serialize)]
pub struct SeedOut {
    pub users: u64,
    pub files_per_user: u32,
    pub files_written: u64,
    pub bytes_written: u64,
    pub failed: u64,
}

pub async fn run(ctx: Arc<Ctx>, files_per_user: u32) -> SeedOut {
    let c = ctx.cfg.seed.clone();
    let template = content::template(c.file_size_bytes as usize, ctx.seed);
    let sem = Arc::new(tokio::sync::Semaphore::new(c.concurrency));
    let written = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    if c.mkcol_parents {
        mkcol_parents(&ctx, &failed).await;
    }
    // With `shared_content` every user's file-k has the same bytes.
    let shared: Vec<Bytes> = if c.shared_content {
        (0..files_per_user)
            .map(|k| {
                let mut rng = rand::rngs::StdRng::seed_from_u64(ctx.seed ^ u64::from(k));
                let marker = format!("shared file {k}");
                content::edited(&template, template.len(), marker.as_bytes(), &mut rng)
            })
            .collect()
    } else {
        Vec::new()
    };
    let shared = Arc::new(shared);
    let mut handles = tokio::task::JoinSet::new();
    for u in 0..ctx.users.len() {
        if ctx.past_deadline() {
            break;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (ctx2, w, b, f, t, sh) = (
            ctx.clone(),
            written.clone(),
            bytes.clone(),
            failed.clone(),
            template.clone(),
            shared.clone(),
        );
        handles.spawn(async move {
            let _permit = permit;
            let Some(user) = ctx2.users.get(u) else {
                return;
            };
            let kind = cheapest(&ctx2, user);
            let Some(auth) = ctx2.authn.header(kind, user) else {
                f.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let a = [super::auth_header(auth)];
            let home = ctx2.home(user);
            let mkcol = Method::from_bytes(b"MKCOL").expect("MKCOL is a valid method");
            // 201: made; 405: already there (skab makes homes itself).
            if ctx2.cfg.seed.mkcol_home
                && ctx2
                    .op(
                        "seed.mkcol",
                        Instant::now(),
                        u,
                        mkcol,
                        &home,
                        &a,
                        Bytes::new(),
                        &[201, 405],
                        false,
                    )
                    .await
                    .is_none()
            {
                f.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let mut rng = rand::rngs::StdRng::seed_from_u64(ctx2.seed ^ u as u64);
            for k in 0..files_per_user {
                let body = match sh.get(k as usize) {
                    Some(b) => b.clone(),
                    None => {
                        let marker = format!("{} file {k}", user.login());
                        content::edited(&t, t.len(), marker.as_bytes(), &mut rng)
                    }
                };
                let len = body.len() as u64;
                let path = format!("{home}file-{k}.bin");
                match ctx2
                    .op(
                        "seed.put",
                        Instant::now(),
                        u,
                        Method::PUT,
                        &path,
                        &a,
                        body,
                        &[201, 204],
                        false,
                    )
                    .await
                {
                    Some(_) => {
                        w.fetch_add(1, Ordering::Relaxed);
                        b.fetch_add(len, Ordering::Relaxed);
                    }
                    None => {
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        // Reap what finished (amortised O(1): a JoinSet keeps finished tasks apart).
        while handles.try_join_next().is_some() {}
    }
    while handles.join_next().await.is_some() {}
    SeedOut {
        users: ctx.users.len() as u64,
        files_per_user,
        files_written: written.load(Ordering::Relaxed),
        bytes_written: bytes.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
    }
}

/// MKCOL every distinct collection above the homes, outermost first, one at a time, as the
/// first user under it (201 made, 405 already there).
async fn mkcol_parents(ctx: &Arc<Ctx>, failed: &AtomicU64) {
    let mut parents: std::collections::BTreeMap<(usize, String), usize> = Default::default();
    for (u, user) in ctx.users.iter().enumerate() {
        for p in crate::client::parent_paths(&ctx.cfg.target.home, user) {
            parents.entry((p.len(), p)).or_insert(u);
        }
    }
    for ((_, path), u) in parents {
        if ctx.past_deadline() {
            break;
        }
        let Some(user) = ctx.users.get(u) else {
            continue;
        };
        let Some(auth) = ctx.authn.header(cheapest(ctx, user), user) else {
            failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let mkcol = Method::from_bytes(b"MKCOL").expect("MKCOL is a valid method");
        if ctx
            .op(
                "seed.mkcol",
                Instant::now(),
                u,
                mkcol,
                &path,
                &[super::auth_header(auth)],
                Bytes::new(),
                &[201, 405],
                false,
            )
            .await
            .is_none()
        {
            failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Seeding is not the measured load: the cheapest credential the user has.
fn cheapest(ctx: &Ctx, user: &crate::users::User) -> AuthKind {
    [AuthKind::Token, AuthKind::Jwt, AuthKind::Basic]
        .into_iter()
        .find(|k| ctx.authn.available(*k, user))
        .unwrap_or(AuthKind::Basic)
}
