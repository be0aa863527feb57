//! Measurement: HDR histograms per operation (latency from the *scheduled* start), a
//! per-interval timeline, error counts by kind, and the live progress window.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

use crate::limits::{HIST_MAX_US, HIST_SIGFIGS, LATE_START_MS, TIMELINE_BUCKETS_MAX};

pub fn hist(sigfigs: u8) -> Histogram<u64> {
    // Internal invariant: the bounds and sigfigs are constants hdrhistogram accepts.
    Histogram::new_with_bounds(1, HIST_MAX_US, sigfigs).expect("constant histogram bounds")
}

struct OpStats {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    /// Successful completions per timeline bucket.
    per_bucket: Vec<u32>,
}

struct Bucket {
    requests: u64,
    errors: u64,
    hist: Histogram<u64>,
}

struct Inner {
    ops: BTreeMap<&'static str, OpStats>,
    errors_by_kind: BTreeMap<String, u64>,
    errors_by_op: BTreeMap<String, u64>,
    timeline: Vec<Option<Bucket>>,
    window: Histogram<u64>,
    window_requests: u64,
    lag: Histogram<u64>,
    late: u64,
}

/// Shared by every task of a run.
pub struct Recorder {
    pub start: Instant,
    bucket: Duration,
    inner: Mutex<Inner>,
    pub sessions_started: AtomicU64,
    pub sessions_live: AtomicU64,
    pub sessions_done: AtomicU64,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
}

impl Recorder {
    /// `expected` is the planned run length; the timeline gets at most
    /// `TIMELINE_BUCKETS_MAX` buckets of whole seconds (or 100 ms for short runs).
    pub fn new(expected: Duration) -> Recorder {
        let ms = expected.as_millis() as u64;
        let bucket_ms = if ms <= 60_000 {
            (ms / 200).clamp(100, 1000)
        } else {
            (ms / TIMELINE_BUCKETS_MAX as u64).max(1000).div_ceil(1000) * 1000
        };
        Recorder {
            start: Instant::now(),
            bucket: Duration::from_millis(bucket_ms),
            inner: Mutex::new(Inner {
                ops: BTreeMap::new(),
                errors_by_kind: BTreeMap::new(),
                errors_by_op: BTreeMap::new(),
                timeline: Vec::new(),
                window: hist(2),
                window_requests: 0,
                lag: hist(2),
                late: 0,
            }),
            sessions_started: AtomicU64::new(0),
            sessions_live: AtomicU64::new(0),
            sessions_done: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Records one operation that was scheduled to start at `scheduled` and ended now;
    /// `err` is `None` on success or the error kind (`status:404`, `timeout`, ...).
    pub fn record(&self, op: &'static str, scheduled: Instant, err: Option<&str>) {
        let now = Instant::now();
        let us = now.saturating_duration_since(scheduled).as_micros() as u64;
        let us = us.clamp(1, HIST_MAX_US);
        let idx = (now.saturating_duration_since(self.start).as_millis()
            / self.bucket.as_millis().max(1)) as usize;
        let idx = idx.min(TIMELINE_BUCKETS_MAX * 4);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if err.is_some() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let s = inner.ops.entry(op).or_insert_with(|| OpStats {
            hist: hist(HIST_SIGFIGS),
            ok: 0,
            errors: 0,
            per_bucket: Vec::new(),
        });
        let _ = s.hist.record(us);
        match err {
            None => {
                s.ok += 1;
                if s.per_bucket.len() <= idx {
                    s.per_bucket.resize(idx + 1, 0);
                }
                if let Some(c) = s.per_bucket.get_mut(idx) {
                    *c += 1;
                }
            }
            Some(kind) => {
                s.errors += 1;
                *inner.errors_by_kind.entry(kind.to_string()).or_default() += 1;
                *inner
                    .errors_by_op
                    .entry(format!("{op}:{kind}"))
                    .or_default() += 1;
            }
        }
        if inner.timeline.len() <= idx {
            inner.timeline.resize_with(idx + 1, || None);
        }
        if let Some(slot) = inner.timeline.get_mut(idx) {
            let b = slot.get_or_insert_with(|| Bucket {
                requests: 0,
                errors: 0,
                hist: hist(2),
            });
            b.requests += 1;
            b.errors += u64::from(err.is_some());
            let _ = b.hist.record(us);
        }
        let _ = inner.window.record(us);
        inner.window_requests += 1;
    }

    /// Records how late a scheduled start actually began (the generator's own lag).
    pub fn record_lag(&self, scheduled: Instant) {
        let lag = Instant::now().saturating_duration_since(scheduled);
        let mut g = self.inner.lock();
        let _ = g.lag.record((lag.as_micros() as u64).clamp(1, HIST_MAX_US));
        if lag >= Duration::from_millis(LATE_START_MS) {
            g.late += 1;
        }
    }

    /// p99 (µs) and count of the requests since the last call, then resets the window.
    pub fn take_window(&self) -> (u64, u64) {
        let mut g = self.inner.lock();
        let p99 = g.window.value_at_quantile(0.99);
        let n = g.window_requests;
        g.window.reset();
        g.window_requests = 0;
        (p99, n)
    }

    pub fn late_starts(&self) -> u64 {
        self.inner.lock().late
    }

    /// Everything measured, for result.json.
    pub fn snapshot(&self, wall_s: f64) -> Measured {
        let g = self.inner.lock();
        let mut all = hist(HIST_SIGFIGS);
        let mut ops = BTreeMap::new();
        let mut distribution = BTreeMap::new();
        let bs = self.bucket.as_secs_f64();
        let mut peak_ok_per_s = BTreeMap::new();
        let mut logins: Vec<u64> = Vec::new();
        for (name, s) in &g.ops {
            let peak = s.per_bucket.iter().copied().max().unwrap_or(0);
            peak_ok_per_s.insert(name.to_string(), peak as f64 / bs);
            if name.starts_with("login.") {
                if logins.len() < s.per_bucket.len() {
                    logins.resize(s.per_bucket.len(), 0);
                }
                for (a, b) in logins.iter_mut().zip(&s.per_bucket) {
                    *a += u64::from(*b);
                }
            }
        }
        if !logins.is_empty() {
            let peak = logins.iter().copied().max().unwrap_or(0);
            peak_ok_per_s.insert("login.*".to_string(), peak as f64 / bs);
        }
        for (name, s) in &g.ops {
            let _ = all.add(&s.hist);
            ops.insert(
                name.to_string(),
                OpSummary {
                    count: s.ok + s.errors,
                    ok: s.ok,
                    errors: s.errors,
                    per_s: (s.ok + s.errors) as f64 / wall_s.max(1e-9),
                    latency_us: Latency::of(&s.hist),
                },
            );
            distribution.insert(name.to_string(), curve(&s.hist));
        }
        distribution.insert("all".to_string(), curve(&all));
        let timeline = g
            .timeline
            .iter()
            .enumerate()
            .map(|(i, b)| match b {
                Some(b) => TimePoint {
                    t_s: i as f64 * bs,
                    requests: b.requests,
                    per_s: b.requests as f64 / bs,
                    errors: b.errors,
                    p50_us: b.hist.value_at_quantile(0.5),
                    p90_us: b.hist.value_at_quantile(0.9),
                    p99_us: b.hist.value_at_quantile(0.99),
                    max_us: b.hist.max(),
                },
                None => TimePoint {
                    t_s: i as f64 * bs,
                    ..TimePoint::default()
                },
            })
            .collect();
        let total = all.len();
        let errors: u64 = g.ops.values().map(|s| s.errors).sum();
        Measured {
            requests: Requests {
                total,
                ok: total.saturating_sub(errors),
                errors,
                per_s: total as f64 / wall_s.max(1e-9),
            },
            latency_us: Latency::of(&all),
            ops,
            errors: Errors {
                by_kind: g.errors_by_kind.clone(),
                by_op: g.errors_by_op.clone(),
            },
            timeline,
            timeline_bucket_s: bs,
            peak_ok_per_s,
            distribution,
            schedule_lag_us: Latency::of(&g.lag),
            late_starts: g.late,
        }
    }
}

fn curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    const Q: [f64; 14] = [
        0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
    ];
    if h.is_empty() {
        return Vec::new();
    }
    Q.iter().map(|&p| (p, h.value_at_percentile(p))).collect()
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct OpSummary {
    pub count: u64,
    pub ok: u64,
    pub errors: u64,
    pub per_s: f64,
    pub latency_us: Latency,
}

#[derive(Clone, Debug, Serialize)]
pub struct Requests {
    pub total: u64,
    pub ok: u64,
    pub errors: u64,
    pub per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Errors {
    pub by_kind: BTreeMap<String, u64>,
    pub by_op: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TimePoint {
    pub t_s: f64,
    pub requests: u64,
    pub per_s: f64,
    pub errors: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// The measured part of result.json.
#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    pub requests: Requests,
    pub latency_us: Latency,
    pub ops: BTreeMap<String, OpSummary>,
    pub errors: Errors,
    pub timeline: Vec<TimePoint>,
    pub timeline_bucket_s: f64,
    /// Per op (and `login.*` for all logins): successes in the busiest timeline bucket, per second.
    pub peak_ok_per_s: BTreeMap<String, f64>,
    /// Per op and `all`: (percentile, latency µs) pairs.
    pub distribution: BTreeMap<String, Vec<(f64, u64)>>,
    /// How late scheduled starts actually began (the generator's own lag).
    pub schedule_lag_us: Latency,
    pub late_starts: u64,
}
