//! File contents the scenarios upload: deterministic per (seed, index), sizes from a
//! log-normal, and a shared template with small per-pupil edits so that dedup matters.

use bytes::{Bytes, BytesMut};
use rand::{Rng, RngCore, SeedableRng};

/// Deterministic pseudo-random bytes for the shared template.
pub fn template(len: usize, seed: u64) -> Bytes {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x7e3a_1e5c_0ffe_e000);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    Bytes::from(v)
}

/// A log-normal size with this median and sigma, clamped to `min..=max`.
pub fn lognormal_size(rng: &mut impl Rng, median: f64, sigma: f64, min: u64, max: u64) -> u64 {
    // Box-Muller.
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let s = (median.max(1.0).ln() + sigma * z).exp();
    (s as u64).clamp(min, max)
}

/// A document: the first `len` bytes of `template` (repeated if shorter) with `marker`
/// written at its start, middle and at a random place: a pupil's edit of a shared file.
pub fn edited(template: &Bytes, len: usize, marker: &[u8], rng: &mut impl Rng) -> Bytes {
    let mut b = BytesMut::with_capacity(len);
    while b.len() < len && !template.is_empty() {
        let take = (len - b.len()).min(template.len());
        b.extend_from_slice(&template[..take]);
    }
    b.resize(len, 0);
    if len > 0 && !marker.is_empty() {
        let places = [0, len / 2, rng.gen_range(0..len)];
        for p in places {
            let end = (p + marker.len()).min(len);
            b[p..end].copy_from_slice(&marker[..end - p]);
        }
    }
    b.freeze()
}

/// `len` fresh pseudo-random bytes (no dedup possible).
pub fn random(len: usize, rng: &mut impl RngCore) -> Bytes {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edited_files_share_most_bytes_but_differ() {
        let t = template(100_000, 1);
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let a = edited(&t, 50_000, b"pupil 1", &mut rng);
        let b = edited(&t, 50_000, b"pupil 2", &mut rng);
        assert_eq!(a.len(), 50_000);
        assert_ne!(a, b);
        let same = a.iter().zip(b.iter()).filter(|(x, y)| x == y).count();
        assert!(same > 49_900, "{same}");
        let c = edited(&t, 250_000, b"x", &mut rng);
        assert_eq!(c.len(), 250_000);
    }

    #[test]
    fn lognormal_sizes_stay_in_bounds_and_centre_on_the_median() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut v: Vec<u64> = (0..10_001)
            .map(|_| lognormal_size(&mut rng, 60_000.0, 1.0, 1024, 1 << 23))
            .collect();
        v.sort_unstable();
        assert!(v.iter().all(|&s| (1024..=1 << 23).contains(&s)));
        let median = v[5_000];
        assert!((45_000..80_000).contains(&median), "{median}");
    }
}
