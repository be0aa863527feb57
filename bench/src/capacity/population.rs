//! A school population: users over tenants, files of realistic kinds and sizes, shared class templates and edited versions.
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

fn random_bytes(rng: &mut StdRng, (lo, hi): (usize, usize)) -> Bytes {
    let n = rng.gen_range(lo..=hi);
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

/// Builds users `from..to` with `files` files each; `progress` is called after each user.
pub async fn build(
    store: &Store,
    from: u64,
    to: u64,
    files: usize,
    tenants: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Built> {
    let mut built = Built::default();
    let mut it = futures::stream::iter((from..to).map(|u| {
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
                let path = [name("docs"), name(&format!("f{f}"))];
                let data = if rng.gen_bool(TEMPLATE_SHARE) {
                    // Same bytes for every pupil of the class: seeded by class and slot.
                    let mut t = StdRng::seed_from_u64(class * 1_000_003 + f as u64);
                    random_bytes(&mut t, DOC_BYTES)
                } else {
                    let x: f64 = rng.gen();
                    let range = if x < VIDEO_SHARE {
                        VIDEO_BYTES
                    } else if x < VIDEO_SHARE + PHOTO_SHARE {
                        PHOTO_BYTES
                    } else {
                        DOC_BYTES
                    };
                    random_bytes(&mut rng, range)
                };
                b.logical_written += data.len() as u64;
                store.put_bytes(&key, &path, data.clone()).await?;
                b.files += 1;
                if data.len() <= DOC_BYTES.1 && rng.gen_bool(EDIT_SHARE) {
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
