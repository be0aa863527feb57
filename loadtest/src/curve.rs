//! Arrival schedules: the times (seconds from the start) at which sessions or uploads begin,
//! from a density on a window, by inverting its tabulated distribution (deterministic).

use crate::limits::CURVE_TABLE_POINTS;

/// The shape of arrivals over a window of `window_s` seconds.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// A normal bump at `peak_at * window` with deviation `spread * window`, plus
    /// `baseline` of the arrivals spread evenly.
    Peak {
        peak_at: f64,
        spread: f64,
        baseline: f64,
    },
    /// `last_share` of the arrivals in the final `last_s` seconds, the rest evenly before.
    Deadline { last_share: f64, last_s: f64 },
}

/// `n` arrival times in [0, window_s], ascending.
pub fn arrivals(n: u64, window_s: f64, shape: Shape) -> Vec<f64> {
    let k = CURVE_TABLE_POINTS;
    let w = window_s.max(1e-9);
    let density = |t: f64| -> f64 {
        match shape {
            Shape::Peak {
                peak_at,
                spread,
                baseline,
            } => {
                let mu = peak_at * w;
                let sd = (spread * w).max(1e-9);
                let z = (t - mu) / sd;
                baseline / w + (1.0 - baseline) * (-0.5 * z * z).exp() / (sd * 2.5066282746)
            }
            Shape::Deadline { last_share, last_s } => {
                let last = last_s.min(w);
                if t >= w - last {
                    last_share / last.max(1e-9)
                } else {
                    (1.0 - last_share) / (w - last).max(1e-9)
                }
            }
        }
    };
    // Cumulative mass at the table points (trapezoids), then invert by interpolation.
    let dt = w / k as f64;
    let mut cdf = Vec::with_capacity(k + 1);
    cdf.push(0.0);
    let mut acc = 0.0;
    for i in 0..k {
        let a = density(i as f64 * dt);
        let b = density((i + 1) as f64 * dt);
        acc += 0.5 * (a + b) * dt;
        cdf.push(acc);
    }
    let total = if acc > 0.0 { acc } else { 1.0 };
    let mut out = Vec::with_capacity(n as usize);
    let mut j = 0usize;
    for i in 0..n {
        let target = (i as f64 + 0.5) / n as f64 * total;
        while j + 1 < cdf.len() - 1 && cdf[j + 1] < target {
            j += 1;
        }
        let (c0, c1) = (cdf[j], cdf[j + 1]);
        let frac = if c1 > c0 {
            (target - c0) / (c1 - c0)
        } else {
            0.0
        };
        out.push(((j as f64 + frac.clamp(0.0, 1.0)) * dt).clamp(0.0, w));
    }
    out
}

/// The highest arrival rate (per second) over any 1%-of-window slice of `times`.
pub fn peak_rate(times: &[f64], window_s: f64) -> f64 {
    if times.is_empty() || window_s <= 0.0 {
        return 0.0;
    }
    let slice = (window_s / 100.0).max(1e-6);
    let mut best = 0usize;
    let mut lo = 0usize;
    for hi in 0..times.len() {
        while times[hi] - times[lo] > slice {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as f64 / slice
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_shape_is_sorted_bounded_and_peaks_where_asked() {
        let t = arrivals(
            100_000,
            3600.0,
            Shape::Peak {
                peak_at: 0.5,
                spread: 0.1,
                baseline: 0.1,
            },
        );
        assert_eq!(t.len(), 100_000);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        assert!(t[0] >= 0.0 && t[t.len() - 1] <= 3600.0);
        let near = t.iter().filter(|&&x| (x - 1800.0).abs() < 360.0).count();
        let early = t.iter().filter(|&&x| x < 360.0).count();
        assert!(near > 50_000, "{near}");
        assert!(early < 5_000, "{early}");
    }

    #[test]
    fn deadline_shape_puts_the_share_in_the_last_seconds() {
        let t = arrivals(
            10_000,
            600.0,
            Shape::Deadline {
                last_share: 0.8,
                last_s: 60.0,
            },
        );
        let last = t.iter().filter(|&&x| x >= 540.0).count();
        assert!((7_900..=8_100).contains(&last), "{last}");
        assert!(peak_rate(&t, 600.0) > 100.0);
    }
}
