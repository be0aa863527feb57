//! Prometheus metrics: request counts and latency histograms per method, engine figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use skab_engine::Store;

use crate::http::body::full;
use crate::http::response::Resp;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    method: &'static str,
    status: u16,
}

/// The methods with their own label; any other is `other` (a client must not be able to grow
/// the label set).
const METHOD_LABELS: [&str; 14] = [
    "GET",
    "HEAD",
    "PUT",
    "DELETE",
    "OPTIONS",
    "POST",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "other",
];
/// Statuses whose counters are remembered per method (the rest are looked up each time).
const STATUS_CACHED: std::ops::Range<u16> = 100..600;

/// The index of a request method's label in `METHOD_LABELS`.
fn method_index(method: &Method) -> usize {
    let m = method.as_str();
    METHOD_LABELS[..METHOD_LABELS.len() - 1]
        .iter()
        .position(|k| *k == m)
        .unwrap_or(METHOD_LABELS.len() - 1)
}

/// One engine flush-time histogram in the text format (cumulative buckets, seconds).
fn flush_histogram(out: &mut String, name: &str, help: &str, t: &skab_engine::FlushTimes) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}.");
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0u64;
    for (bound_us, n) in skab_engine::FLUSH_TIME_BUCKETS_US
        .iter()
        .zip(t.buckets.iter())
    {
        cumulative += n;
        let le = *bound_us as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", t.count);
    let _ = writeln!(out, "{name}_sum {}", t.total_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", t.count);
}

/// The hashing queue's waits (submission to a thread taking the job) in the text format.
fn hash_wait_histogram(out: &mut String, f: &LiveFigures) {
    use std::fmt::Write as _;
    let name = "skab_login_hash_wait_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Waits of password verifications for a hashing thread."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0u64;
    for (bound_ms, n) in crate::limits::HASH_WAIT_BUCKETS_MS
        .iter()
        .zip(f.hash_wait_buckets.iter())
    {
        cumulative += n;
        let le = *bound_ms as f64 / 1e3;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let count: u64 = f.hash_wait_buckets.iter().sum();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {}", f.hash_wait_sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {count}");
}

/// Latency buckets, seconds: 100 µs to about 13 s.
fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 18,
    ))
}

/// Figures of the login path and the connections, read at scrape time (the server passes
/// them in: the metrics know nothing of auth or the HTTP layer).
#[derive(Debug, Default, Clone, Copy)]
pub struct LiveFigures {
    pub open_connections: u64,
    pub password_hashes: u64,
    pub hashes_queued: u64,
    /// The password-hashing pool: threads, running now, refused at once (503), background
    /// re-verifications queued, mean hash time (µs), and the queue waits.
    pub hash_threads: u64,
    pub hashes_running: u64,
    pub hashes_refused: u64,
    pub hash_reverify_queued: u64,
    pub hash_mean_us: u64,
    pub hash_wait_buckets: [u64; crate::limits::HASH_WAIT_BUCKETS_MS.len() + 1],
    pub hash_wait_sum_us: u64,
    pub logins_verifying: u64,
    pub credential_cache_hits: u64,
    pub credential_cache_misses: u64,
    pub credential_cache_entries: u64,
    pub jwt_verifications: u64,
    pub jwt_cache_hits: u64,
    pub throttled_account: u64,
    pub throttled_source: u64,
    pub throttled_penalty_lane: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// The login-path series.
struct Login {
    open_connections: Gauge<f64, AtomicU64>,
    password_hashes: Counter<u64, AtomicU64>,
    hashes_queued: Gauge<f64, AtomicU64>,
    hash_threads: Gauge<f64, AtomicU64>,
    hashes_running: Gauge<f64, AtomicU64>,
    hashes_refused: Counter<u64, AtomicU64>,
    hash_reverify_queued: Counter<u64, AtomicU64>,
    hash_mean: Gauge<f64, AtomicU64>,
    logins_verifying: Gauge<f64, AtomicU64>,
    cache_hits: Counter<u64, AtomicU64>,
    cache_misses: Counter<u64, AtomicU64>,
    cache_entries: Gauge<f64, AtomicU64>,
    jwt_verifications: Counter<u64, AtomicU64>,
    jwt_cache_hits: Counter<u64, AtomicU64>,
    throttled: Family<KindLabels, Counter>,
}

impl Login {
    fn register(registry: &mut Registry) -> Login {
        let l = Login {
            open_connections: Gauge::default(),
            password_hashes: Counter::default(),
            hashes_queued: Gauge::default(),
            hash_threads: Gauge::default(),
            hashes_running: Gauge::default(),
            hashes_refused: Counter::default(),
            hash_reverify_queued: Counter::default(),
            hash_mean: Gauge::default(),
            logins_verifying: Gauge::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_entries: Gauge::default(),
            jwt_verifications: Counter::default(),
            jwt_cache_hits: Counter::default(),
            throttled: Family::default(),
        };
        registry.register(
            "open_connections",
            "Client connections open now",
            l.open_connections.clone(),
        );
        registry.register(
            "login_password_hashes",
            "Password verifications (argon2 runs) since start",
            l.password_hashes.clone(),
        );
        registry.register(
            "login_hashes_queued",
            "Password verifications waiting for a hashing thread now (the hashing queue)",
            l.hashes_queued.clone(),
        );
        registry.register(
            "login_hash_threads",
            "Password-hashing threads (auth.hash_concurrency)",
            l.hash_threads.clone(),
        );
        registry.register(
            "login_hashes_running",
            "Password verifications running on the hashing threads now",
            l.hashes_running.clone(),
        );
        registry.register(
            "login_hash_refused",
            "Password logins answered 503 at once: the hashing queue's expected wait was over auth.hash_wait_max_ms",
            l.hashes_refused.clone(),
        );
        registry.register(
            "login_hash_reverify_queued",
            "Background re-verifications of cached credentials queued",
            l.hash_reverify_queued.clone(),
        );
        registry.register(
            "login_hash_mean_seconds",
            "Measured mean wall time of one password verification (moving average)",
            l.hash_mean.clone(),
        );
        registry.register(
            "login_verifying",
            "Distinct logins being verified now (identical ones share a run)",
            l.logins_verifying.clone(),
        );
        registry.register(
            "login_credential_cache_hits",
            "Password logins answered by the verified-credential cache",
            l.cache_hits.clone(),
        );
        registry.register(
            "login_credential_cache_misses",
            "Password logins that needed argon2",
            l.cache_misses.clone(),
        );
        registry.register(
            "login_credential_cache_entries",
            "Users held in the verified-credential cache (about 100 bytes each)",
            l.cache_entries.clone(),
        );
        registry.register(
            "login_jwt_verifications",
            "JWT signature checks since start",
            l.jwt_verifications.clone(),
        );
        registry.register(
            "login_jwt_cache_hits",
            "Bearer JWTs answered by the verified-JWT cache",
            l.jwt_cache_hits.clone(),
        );
        registry.register(
            "login_throttled",
            "Logins refused with 429 by kind: account (backoff after failures), source (forged tokens), penalty_lane (a throttled source's lane stayed full)",
            l.throttled.clone(),
        );
        l
    }

    fn set(&self, f: &LiveFigures) {
        self.open_connections.set(f.open_connections as f64);
        self.password_hashes
            .inner()
            .store(f.password_hashes, Ordering::Relaxed);
        self.hashes_queued.set(f.hashes_queued as f64);
        self.hash_threads.set(f.hash_threads as f64);
        self.hashes_running.set(f.hashes_running as f64);
        self.hashes_refused
            .inner()
            .store(f.hashes_refused, Ordering::Relaxed);
        self.hash_reverify_queued
            .inner()
            .store(f.hash_reverify_queued, Ordering::Relaxed);
        self.hash_mean.set(f.hash_mean_us as f64 / 1e6);
        self.logins_verifying.set(f.logins_verifying as f64);
        self.cache_hits
            .inner()
            .store(f.credential_cache_hits, Ordering::Relaxed);
        self.cache_misses
            .inner()
            .store(f.credential_cache_misses, Ordering::Relaxed);
        self.cache_entries.set(f.credential_cache_entries as f64);
        self.jwt_verifications
            .inner()
            .store(f.jwt_verifications, Ordering::Relaxed);
        self.jwt_cache_hits
            .inner()
            .store(f.jwt_cache_hits, Ordering::Relaxed);
        for (kind, n) in [
            ("account", f.throttled_account),
            ("source", f.throttled_source),
            ("penalty_lane", f.throttled_penalty_lane),
        ] {
            self.throttled
                .get_or_create(&KindLabels { kind })
                .inner()
                .store(n, Ordering::Relaxed);
        }
    }
}

pub struct Metrics {
    registry: Registry,
    login: Login,
    requests: Family<StatusLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    logical: Gauge<f64, AtomicU64>,
    stored: Gauge<f64, AtomicU64>,
    packs: Gauge<f64, AtomicU64>,
    dedup: Gauge<f64, AtomicU64>,
    spaces: Gauge<f64, AtomicU64>,
    entries: Gauge<f64, AtomicU64>,
    cache_hits: Counter<u64, AtomicU64>,
    cache_misses: Counter<u64, AtomicU64>,
    cache_bytes: Gauge<f64, AtomicU64>,
    /// Handles into `requests` by (method, status), filled on first use: the family's lookup
    /// (a lock and a hash of the labels) is paid once per series, not per request.
    request_counters: Box<[OnceLock<Counter>]>,
    latency_by_method: [OnceLock<Histogram>; METHOD_LABELS.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("skab");
        let requests = Family::<StatusLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests by method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method",
            latency.clone(),
        );
        let logical = Gauge::<f64, AtomicU64>::default();
        let stored = Gauge::<f64, AtomicU64>::default();
        let packs = Gauge::<f64, AtomicU64>::default();
        let dedup = Gauge::<f64, AtomicU64>::default();
        let spaces = Gauge::<f64, AtomicU64>::default();
        let entries = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "logical_bytes",
            "Bytes of live files as users see them",
            logical.clone(),
        );
        registry.register(
            "stored_bytes",
            "Bytes of unique chunks stored",
            stored.clone(),
        );
        registry.register(
            "pack_bytes",
            "Bytes of pack records on disk (without the zeros kept ahead of the writer)",
            packs.clone(),
        );
        registry.register(
            "dedup_ratio",
            "Logical bytes per stored byte",
            dedup.clone(),
        );
        registry.register("spaces", "User spaces", spaces.clone());
        registry.register("entries", "Files and collections", entries.clone());
        let cache_hits = Counter::<u64, AtomicU64>::default();
        let cache_misses = Counter::<u64, AtomicU64>::default();
        let cache_bytes = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "chunk_cache_hits",
            "Chunk reads served from the verified-chunk cache",
            cache_hits.clone(),
        );
        registry.register(
            "chunk_cache_misses",
            "Chunk reads the chunk cache could not serve (read from the packs)",
            cache_misses.clone(),
        );
        registry.register(
            "chunk_cache_bytes",
            "Bytes the chunk cache holds (chunk bytes plus bookkeeping)",
            cache_bytes.clone(),
        );
        let login = Login::register(&mut registry);
        Metrics {
            registry,
            login,
            requests,
            latency,
            logical,
            stored,
            packs,
            dedup,
            spaces,
            entries,
            cache_hits,
            cache_misses,
            cache_bytes,
            request_counters: (0..METHOD_LABELS.len() * STATUS_CACHED.len())
                .map(|_| OnceLock::new())
                .collect(),
            latency_by_method: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    pub fn observe(&self, method: &Method, status: StatusCode, took: Duration) {
        let m = method_index(method);
        let labels = || StatusLabels {
            method: METHOD_LABELS[m],
            status: status.as_u16(),
        };
        let code = status.as_u16();
        if STATUS_CACHED.contains(&code) {
            let slot = m * STATUS_CACHED.len() + usize::from(code - STATUS_CACHED.start);
            self.request_counters[slot]
                .get_or_init(|| self.requests.get_or_create(&labels()).clone())
                .inc();
        } else {
            self.requests.get_or_create(&labels()).inc();
        }
        self.latency_by_method[m]
            .get_or_init(|| {
                self.latency
                    .get_or_create(&MethodLabels {
                        method: METHOD_LABELS[m],
                    })
                    .clone()
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition (engine figures read at scrape time).
    pub fn render(&self, store: &Store, live: &LiveFigures) -> Resp {
        self.login.set(live);
        let s = store.stats();
        self.logical.set(s.logical_bytes as f64);
        self.stored.set(s.stored_bytes as f64);
        self.packs.set(s.pack_bytes as f64);
        self.dedup.set(s.dedup_ratio);
        self.spaces.set(s.spaces as f64);
        self.entries.set(s.entries as f64);
        // The engine counts; the counters take its totals as they are.
        self.cache_hits
            .inner()
            .store(s.chunk_cache_hits, Ordering::Relaxed);
        self.cache_misses
            .inner()
            .store(s.chunk_cache_misses, Ordering::Relaxed);
        self.cache_bytes.set(s.chunk_cache_bytes as f64);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            return crate::http::response::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics encoding failed",
            );
        }
        // The engine keeps its own flush-time buckets; they are written as histograms before
        // the end marker.
        let end = out.rfind("# EOF").unwrap_or(out.len());
        let mut flushes = String::new();
        flush_histogram(
            &mut flushes,
            "skab_wal_flush_seconds",
            "Write-ahead log flushes (a batch's write and fdatasync), all shards",
            &s.wal_flush,
        );
        flush_histogram(
            &mut flushes,
            "skab_pack_flush_seconds",
            "Pack appender flushes (a batch's write and fdatasync)",
            &s.pack_flush,
        );
        hash_wait_histogram(&mut flushes, live);
        out.insert_str(end, &flushes);
        let mut r = Response::new(full(out));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        r
    }
}
