//! A school population: users over tenants, files of realistic kinds and sizes, shared class templates and edited versions.
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use bytes::Bytes;
use futures::StreamExt;
use rand::{rngs::StdRng, Rng, SeedableRng};
use skab_engine::ns::Name;
use skab_engine::{SpaceKey, Store};

/// Pupils per class: a class template is shared by this many users (dedup).
pub const CLASS_SIZE: usize = 25;
/// Share of a user's files that are class templates (identical across the class).
pub const TEMPLATE_SHARE: f64 = 0.2;
/// Share of documents written a second time with a small edit (a version).
pub const EDIT_SHARE: f64 = 0.1;
/// Document sizes, bytes (min, max).
pub const DOC_BYTES: (usize, usize) = (2 << 10, 48 << 10);
/// Photo sizes, bytes (min, max): phone photos scaled down by the sync clients.
pub const PHOTO_BYTES: (usize, usize) = (150 << 10, 600 << 10);
/// Video sizes, bytes (min, max).
pub const VIDEO_BYTES: (usize, usize) = (2 << 20, 4 << 20);
/// Share of files that are photos and videos; the rest are documents.
pub const PHOTO_SHARE: f64 = 0.15;
pub const VIDEO_SHARE: f64 = 0.005;
/// Operations in flight while building.
pub const IN_FLIGHT: usize = 256;

/// What was built.
#[derive(Debug, Default, Clone, Copy)]
pub struct Built {
    pub users: u64,
    pub files: u64,
    pub versions: u64,
    pub logical_written: u64,
}

pub fn name(s: &str) -> Name {
    Name::new(s).expect("population names are valid")
}

/// A file's name in a user's `docs` folder: the name the loadtest's sessions open
/// (`file-0.bin`, `file-1.bin`; its home is `/dav/{tenant}/{user}/docs/`).
pub fn file_name(f: usize) -> String {
    format!("file-{f}.bin")
}

/// Random bytes of a size drawn from `lo..=hi`, both scaled by `scale` (at least 1 byte).
fn random_bytes(rng: &mut StdRng, (lo, hi): (usize, usize), scale: f64) -> Bytes {
    let s = |b: usize| ((b as f64 * scale) as usize).max(1);
    let n = rng.gen_range(s(lo)..=s(hi));
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    Bytes::from(v)
}

/// The key of user `u` (tenant `u % tenants`).
pub fn user_key(u: u64, tenants: u64) -> Result<SpaceKey> {
    Ok(SpaceKey::new(
        &format!("t{}", u % tenants),
        &format!("u{u}"),
    )?)
}

/// What to build: users `from..to` with `files` files each over `tenants` tenants, file sizes
/// multiplied by `size_scale` (1.0: the sizes above; less for large runs on a small disk).
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub from: u64,
    pub to: u64,
    pub files: usize,
    pub tenants: u64,
    pub size_scale: f64,
}

/// Builds the users of `spec`; `progress` is called after each user. When `stop` turns true no
/// further user is started (those in flight finish), so what was built stays consistent.
pub async fn build(
    store: &Store,
    spec: Spec,
    stop: &AtomicBool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Built> {
    let Spec {
        from,
        to,
        files,
        tenants,
        size_scale,
    } = spec;
    let mut built = Built::default();
    let users = (from..to).take_while(|_| !stop.load(Ordering::Relaxed));
    let mut it = futures::stream::iter(users.map(|u| {
        let store = store.clone();
        async move {
            let key = user_key(u, tenants)?;
            store.create_space(&key).await?;
            store.mkdir(&key, &[name("docs")]).await?;
            let mut rng = StdRng::seed_from_u64(u);
            let class = u / CLASS_SIZE as u64;
            let mut b = Built {
                users: 1,
                ..Default::default()
            };
            for f in 0..files {
                let path = [name("docs"), name(&file_name(f))];
                let data = if rng.gen_bool(TEMPLATE_SHARE) {
                    // Same bytes for every pupil of the class: seeded by class and slot.
                    let mut t = StdRng::seed_from_u64(class * 1_000_003 + f as u64);
                    random_bytes(&mut t, DOC_BYTES, size_scale)
                } else {
                    let x: f64 = rng.gen();
                    let range = if x < VIDEO_SHARE {
                        VIDEO_BYTES
                    } else if x < VIDEO_SHARE + PHOTO_SHARE {
                        PHOTO_BYTES
                    } else {
                        DOC_BYTES
                    };
                    random_bytes(&mut rng, range, size_scale)
                };
                b.logical_written += data.len() as u64;
                store.put_bytes(&key, &path, data.clone()).await?;
                b.files += 1;
                if data.len() <= (DOC_BYTES.1 as f64 * size_scale).max(1.0) as usize
                    && rng.gen_bool(EDIT_SHARE)
                {
                    let mut v = data.to_vec();
                    let at = rng.gen_range(0..v.len());
                    v[at] ^= 0x55;
                    b.logical_written += v.len() as u64;
                    store.put_bytes(&key, &path, Bytes::from(v)).await?;
                    b.versions += 1;
                }
            }
            anyhow::Ok(b)
        }
    }))
    .buffer_unordered(IN_FLIGHT);
    while let Some(r) = it.next().await {
        let b = r?;
        built.users += b.users;
        built.files += b.files;
        built.versions += b.versions;
        built.logical_written += b.logical_written;
        progress(built.users);
    }
    Ok(built)
}
