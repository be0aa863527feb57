//! Every bound of the load generator, with its unit and reason.

/// Most sessions (or pupils) one run may start: a run must be bounded in count.
pub const SESSIONS_MAX: u64 = 10_000_000;

/// Longest wall-clock time one run may take, seconds, whatever the scenario asks (24 h).
pub const RUN_WALL_MAX_S: u64 = 24 * 3600;

/// Default cap on open connections to the target. A process here may hold 20,000 open
/// files; stay well under it so the generator never dies of EMFILE.
pub const CONNECTIONS_DEFAULT: usize = 2_000;

/// Hard cap on `connections.max`, whatever the flag says. The pool may hold up to `max` idle
/// connections besides `max` busy ones, so 2 x 9,000 stays below the 20,000 open-file limit.
pub const CONNECTIONS_MAX: usize = 9_000;

/// Most distinct loopback source addresses (127.0.0.1 ..= 127.0.0.N).
pub const SOURCE_ADDRS_MAX: usize = 250;

/// Highest latency a histogram records, microseconds (1 hour); longer values are clamped.
pub const HIST_MAX_US: u64 = 3_600_000_000;

/// Significant figures of every histogram (3: 0.1 % resolution).
pub const HIST_SIGFIGS: u8 = 3;

/// A request (or session step) starting this many milliseconds after its scheduled time counts
/// as late: the generator fell behind its schedule.
pub const LATE_START_MS: u64 = 50;

/// Timeout of one request, seconds; a request past it counts as an error of kind `timeout`.
pub const REQUEST_TIMEOUT_S: u64 = 120;

/// Times a session's login is tried again after a 503 or 429 with `Retry-After` (as sync
/// clients do), before it counts as failed.
pub const LOGIN_RETRIES_MAX: u32 = 5;

/// Longest `Retry-After` a login waits for, seconds (a larger one is waited for this long).
pub const LOGIN_RETRY_AFTER_MAX_S: u64 = 60;

/// Largest file the exam and seed content generators produce, bytes (64 MiB).
pub const FILE_SIZE_MAX: u64 = 64 << 20;

/// Most users read from a users.csv (so that a wrong file cannot exhaust memory).
pub const USERS_MAX: usize = 10_000_000;

/// Seed uploads in flight at once by default.
pub const SEED_CONCURRENCY_DEFAULT: usize = 64;

/// Points of the tabulated arrival curve used to invert its distribution.
pub const CURVE_TABLE_POINTS: usize = 4096;

/// Most timeline buckets kept (one per second of the run; longer runs merge buckets).
pub const TIMELINE_BUCKETS_MAX: usize = 4096;

/// Uploads verified at once in the exam verify pass.
pub const VERIFY_CONCURRENCY: usize = 256;

/// Extra wall time a scenario may take past its scheduled end, seconds, before the run stops
/// waiting for stragglers and counts them as errors of kind `abandoned`.
pub const DRAIN_GRACE_S: u64 = 120;

/// Most generator threads (`--threads`).
pub const THREADS_MAX: usize = 256;

/// Most users of one `sync` run (each has several clients polling every interval).
pub const SYNC_USERS_MAX: u64 = 100_000;

/// Most sync clients per user in the `sync` scenario.
pub const SYNC_DEVICES_MAX: u32 = 16;

/// Most subfolders per home in the `sync` scenario.
pub const SYNC_FOLDERS_MAX: u32 = 64;

/// Most changes one `sync` run makes (duration x rate).
pub const SYNC_CHANGES_MAX: u64 = 1_000_000;

/// Extra wall time a `sync` run allows for its setup (subfolders, every client's first
/// listing) before its schedule, seconds.
pub const SYNC_SETUP_S: u64 = 60;

/// Longest a TLS handshake may take, seconds; past it the connect fails (error `connect`).
pub const TLS_HANDSHAKE_TIMEOUT_S: u64 = 30;

/// Most TLS 1.3 session tickets kept for resumption, all connections together; the oldest
/// go first. Each is a few hundred bytes; far more than the connections open at once.
pub const TLS_TICKETS_MAX: usize = 20_000;

/// TLS 1.2 sessions (and key-exchange hints) kept per server name by rustls's own store.
pub const TLS_TLS12_SESSIONS_MAX: usize = 256;

/// The system's CA certificates, trusted for `https://` targets without `--ca-cert`.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Times an upload (or the teacher's read-back) is sent again after a 429 or 503 with
/// `Retry-After`, as sync clients do.
pub const REFUSED_RETRIES_MAX: u32 = 5;
/// Longest `Retry-After` waited for after a refused request, seconds.
pub const REFUSED_RETRY_AFTER_MAX_S: u64 = 60;

/// Most targets (`--target`, repeated or comma-separated): the nodes of one cluster.
pub const TARGETS_MAX: usize = 64;

/// Most redirects (307/308) one request follows with `connections.follow_redirects`.
pub const REDIRECTS_MAX: u32 = 3;
