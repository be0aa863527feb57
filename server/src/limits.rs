//! Every limit of the server in one place, each with its unit and the reason for its value.

// ---- WebDAV protocol layer (server/src/dav) ----

/// Longest request-target or Destination header accepted, bytes (raw, before decoding);
/// a whole path of `DAV_PATH_DEPTH_MAX` maximal names, percent-encoded, fits far below.
pub const DAV_TARGET_LEN_MAX: usize = 16 * 1024;
/// Longest name of one path segment after decoding, bytes of UTF-8 (the engine's limit).
pub const DAV_SEGMENT_LEN_MAX: usize = skab_engine::limits::NAME_LEN_MAX;
/// Deepest path inside a user's space, components (the engine's limit).
pub const DAV_PATH_DEPTH_MAX: usize = skab_engine::limits::PATH_DEPTH_MAX;
/// Longest header value the DAV header parsers look at, bytes (`If` with many lists).
pub const DAV_HEADER_LEN_MAX: usize = 16 * 1024;
/// Most lists plus conditions in one `If` header, count (bounds its evaluation cost).
pub const DAV_IF_CONDITIONS_MAX: usize = 256;
/// Most ranges in one `Range` header, count; more is answered with the full body
/// (RFC 9110 §14.2 lets a server ignore a Range header; bounds multipart abuse).
pub const DAV_RANGES_MAX: usize = 32;
/// Largest XML request body (PROPFIND, PROPPATCH, LOCK), bytes.
pub const DAV_XML_BODY_MAX: usize = 1024 * 1024;
/// Deepest element nesting in a request body, elements (dead property values nest).
pub const DAV_XML_DEPTH_MAX: usize = 64;
/// Most elements in a request body, count.
/// PROPFIND bodies each serving thread remembers parsed (sync clients repeat theirs).
pub const PROPFIND_CACHE_ENTRIES: usize = 16;
/// Largest PROPFIND body remembered, bytes; larger ones are parsed each time.
pub const PROPFIND_CACHE_BODY_MAX: usize = 4096;
/// Most bytes a multistatus buffer reserves up front (it can still grow past this).
pub const MULTISTATUS_PREALLOC_MAX: usize = 4 * 1024 * 1024;
pub const DAV_XML_ELEMENTS_MAX: usize = 20_000;
/// Most properties named in one PROPFIND or PROPPATCH, count (the engine keeps at most
/// `PROPS_PER_ENTRY_MAX` dead properties per entry, plus the live ones).
pub const DAV_XML_PROPS_MAX: usize = skab_engine::limits::PROPS_PER_ENTRY_MAX + 64;
/// Largest `DAV:owner` of a LOCK request, bytes of raw XML (kept in memory per lock).
pub const DAV_LOCK_OWNER_LEN_MAX: usize = 4 * 1024;
/// Lock timeout when the client asks none, seconds (RFC 4918 §10.7 leaves it to the server).
pub const DAV_LOCK_TIMEOUT_DEFAULT_S: u64 = 600;
/// Longest lock timeout granted, seconds; `Infinite` and longer requests are clamped to it
/// so that locks of vanished clients expire within the hour.
pub const DAV_LOCK_TIMEOUT_MAX_S: u64 = 3600;
/// Most live locks in one user's space, count (Office holds one per open document).
pub const DAV_LOCKS_PER_SPACE_MAX: usize = 1024;
/// Most live locks in the whole server, count (bounds the lock manager's memory).
pub const DAV_LOCKS_TOTAL_MAX: usize = 1_000_000;
/// Largest saved-locks file read back at start (`dav::lock_file`), bytes; a larger one is
/// dropped with a warning (1,000,000 locks with typical owners take about 200 MB).
pub const LOCK_FILE_LEN_MAX: u64 = 1 << 30;

const _: () = assert!(DAV_LOCK_TIMEOUT_DEFAULT_S <= DAV_LOCK_TIMEOUT_MAX_S);
const _: () = assert!(DAV_LOCKS_PER_SPACE_MAX <= DAV_LOCKS_TOTAL_MAX);
const _: () = assert!(DAV_SEGMENT_LEN_MAX * 3 < DAV_TARGET_LEN_MAX);
// ---------------------------------------------------------------------------------------------
// Configuration, users and authentication (config.rs, users/, auth/, cli.rs).
// Values named `*_DEFAULT` are defaults of a setting in the config file (docs/configuration.md);
// the others are hard limits that no setting lifts.
// ---------------------------------------------------------------------------------------------

/// Shortest tenant or user name, bytes.
pub const NAME_LEN_MIN: usize = 1;
/// Longest tenant or user name, bytes (ASCII `[a-z0-9._-]`): fits any school login system.
pub const NAME_LEN_MAX: usize = 64;
/// Longest password accepted, bytes: argon2 takes any length, but a longer one is not a password.
pub const PASSWORD_LEN_MAX: usize = 1024;
/// Longest `Authorization` header value looked at, bytes; a JWT with many claims stays well below.
pub const AUTH_HEADER_LEN_MAX: usize = 16 * 1024;
/// Longest token label, bytes.
pub const TOKEN_LABEL_LEN_MAX: usize = 128;
/// App tokens per user, count: each Basic login with a token compares against all of them.
pub const TOKENS_PER_USER_MAX: usize = 64;
/// Random bytes in an app token (256 bits: not guessable, so no slow hash is needed).
pub const APP_TOKEN_BYTES: usize = 32;
/// A token's last use is written to the log at most this often, seconds (one record per hour).
pub const TOKEN_LAST_USED_RESOLUTION_S: u64 = 3600;
/// Members named in one record of the user log, count: 500 names of at most 64 bytes stay
/// well inside [`USER_LOG_RECORD_LEN_MAX`]; a longer list is written as several records.
pub const GROUP_MEMBERS_PER_RECORD_MAX: usize = 500;
/// Members of one group, count: a year group of the largest municipality fits many times.
pub const GROUP_MEMBERS_MAX: usize = 100_000;
/// Groups of one tenant, count: every class and subject of a municipality's schools.
pub const GROUPS_PER_TENANT_MAX: usize = 100_000;
/// Largest record in the user log, bytes; a larger length field is corruption.
pub const USER_LOG_RECORD_LEN_MAX: usize = 64 * 1024;
/// Plain bytes of one tenant's operations sealed together in one user log record (with
/// encryption at rest): one seal per record, so opening a log of a million users costs a few
/// thousand seals rather than a million; well inside [`USER_LOG_RECORD_LEN_MAX`] (one record
/// over it starts a new one).
pub const USER_LOG_SEALED_BATCH_BYTES: usize = 16 * 1024;
/// Names tried for the copy of an imported file whose path `skab import --merge` finds taken
/// by other content (`name (import 1).ext`, `(import 2)`, ...): beyond this the merge stops
/// with an error rather than probe without end.
pub const IMPORT_MERGE_COPY_NAMES_MAX: u32 = 100;
/// Rows of a CSV import, count: 10 million is ten times Denmark's pupils and staff.
pub const IMPORT_ROWS_MAX: usize = 10_000_000;
/// Bad rows an import prints before it only counts them, count.
pub const IMPORT_ERRORS_SHOWN_MAX: usize = 100;
/// The running server re-reads the user log at most this often on its own, milliseconds.
pub const USER_DB_REFRESH_INTERVAL_MS: u64 = 1000;
/// The user log is compacted only once it is at least this large, bytes.
pub const USER_LOG_COMPACT_MIN_BYTES: u64 = 16 << 20;
/// ... and holds more than this many operations per live record (tenant, user, app token).
pub const USER_LOG_COMPACT_RATIO: u64 = 4;
/// Operations per transaction in a compacted log (bounds what a reader holds per transaction).
pub const USER_LOG_COMPACT_TXN_OPS: usize = 4096;
/// A failed login re-reads the user log first unless it was read this recently, milliseconds.
pub const USER_DB_REFRESH_ON_MISS_MIN_MS: u64 = 100;

/// argon2id memory cost for new hashes, KiB (19 MiB, the OWASP recommendation for argon2id).
pub const ARGON2_M_COST_KIB: u32 = 19 * 1024;
/// argon2id passes for new hashes.
pub const ARGON2_T_COST: u32 = 2;
/// argon2id lanes for new hashes (one core per verification; the server runs many at once).
pub const ARGON2_P_COST: u32 = 1;
/// Largest memory cost accepted from an imported hash, KiB: more would let one login eat RAM.
pub const ARGON2_M_COST_MAX_KIB: u32 = 256 * 1024;
/// Largest pass count accepted from an imported hash.
pub const ARGON2_T_COST_MAX: u32 = 16;
/// Largest lane count accepted from an imported hash.
pub const ARGON2_P_COST_MAX: u32 = 16;

/// Default idle lifetime of a verified-credential cache entry, seconds: each use extends it
/// (sliding), up to `auth.credential_cache_max_age_s` after the argon2 verification.
pub const CREDENTIAL_CACHE_TTL_S_DEFAULT: u64 = 300;
/// Default longest life of a verified-credential cache entry after its argon2 verification,
/// seconds (a school day): past it the password is verified again.
pub const CREDENTIAL_CACHE_MAX_AGE_S_DEFAULT: u64 = 8 * 3600;
/// An entry in use is re-verified in the background (if the hashing queue is empty) from a
/// random point between these fractions of the max age, in percent: a cohort verified at
/// 08:00 is re-verified spread over 40 % of the max age, not at once.
pub const CREDENTIAL_REVERIFY_FROM_PERCENT: u64 = 50;
pub const CREDENTIAL_REVERIFY_TO_PERCENT: u64 = 90;
/// After a background re-verification is queued (or skipped because the queue was busy),
/// the next attempt for the same entry waits this long, seconds.
pub const CREDENTIAL_REVERIFY_RETRY_S: u64 = 60;
/// Default size of the verified-credential cache, entries: a million password users (about
/// 100 bytes each, so about 100 MB when full; nothing is allocated until used).
pub const CREDENTIAL_CACHE_ENTRIES_DEFAULT: usize = 1_000_000;
/// Default longest expected wait for an argon2 thread, milliseconds; a password login that
/// would wait longer is answered 503 with `Retry-After` at once.
pub const HASH_WAIT_MAX_MS_DEFAULT: u64 = 2000;
/// Most password-hashing threads (`auth.hash_concurrency`; 19 MiB of memory each while hashing).
pub const HASH_THREADS_MAX: usize = 256;
/// Default nice value of the hashing threads (19: they run on what the serving threads leave).
pub const HASH_NICE_DEFAULT: i32 = 19;
/// What one argon2 verification is assumed to take until the pool has measured it, ms.
pub const ARGON2_VERIFY_MS_ESTIMATE: u64 = 40;
/// Upper bounds of the hashing-queue wait histogram (`skab_login_hash_wait_seconds`), ms.
pub const HASH_WAIT_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];
/// Password verifications in progress that later identical ones can join, count (about
/// 150 bytes each); beyond it a verification runs unshared.
pub const ARGON2_FLIGHTS_MAX: usize = 65_536;
/// Shards of the credential cache and the throttle tables, count (lock contention).
pub const AUTH_TABLE_SHARDS: usize = 64;
/// Default: failures of one account before it is slowed down, count.
pub const ACCOUNT_FAILURES_FREE_DEFAULT: u32 = 5;
/// Default: first wait after the free failures, milliseconds; it doubles with each failure.
pub const ACCOUNT_BACKOFF_BASE_MS_DEFAULT: u64 = 1000;
/// Default: longest wait imposed on one account, seconds.
pub const ACCOUNT_BACKOFF_MAX_S_DEFAULT: u64 = 900;
/// Default: failed logins one source address may make in a burst, count (a school behind NAT).
pub const SOURCE_FAILURES_BURST_DEFAULT: u32 = 300;
/// Default: failed logins one source address earns back per minute, count.
pub const SOURCE_FAILURES_PER_MINUTE_DEFAULT: u32 = 300;
/// Accounts and source addresses tracked by the throttle, count each (bounded memory).
pub const THROTTLE_ENTRIES_MAX: usize = 200_000;
/// IPv6 source addresses are throttled by this prefix, bits (one host's usual allocation).
pub const SOURCE_IPV6_PREFIX_BITS: u32 = 64;
/// Default clock skew allowed on JWT `exp`/`nbf`, seconds.
pub const JWT_LEEWAY_S_DEFAULT: u64 = 30;

/// Default largest request body, bytes (a PUT; equal to the engine's largest file).
pub const BODY_SIZE_MAX_DEFAULT: u64 = skab_engine::limits::FILE_SIZE_MAX;
/// Default largest request head (request line and headers), bytes.
pub const HEADER_SIZE_MAX_DEFAULT: usize = 64 * 1024;
/// Default largest XML request body (PROPFIND, PROPPATCH, LOCK), bytes.
pub const XML_SIZE_MAX_DEFAULT: usize = 1024 * 1024;
/// Default deepest XML element nesting, levels (also the most a setting may ask for).
pub const XML_DEPTH_MAX_DEFAULT: usize = DAV_XML_DEPTH_MAX;
/// Default longest path inside a user's space, bytes (percent-decoded; Linux's PATH_MAX).
/// Larger settings are bounded by `DAV_TARGET_LEN_MAX` on the raw request target.
pub const PATH_LEN_MAX_DEFAULT: usize = 4096;
/// Default most properties named in one PROPFIND/PROPPATCH, count (also the most a setting
/// may ask for).
pub const PROPS_PER_REQUEST_MAX_DEFAULT: usize = DAV_XML_PROPS_MAX;
/// Default most locks one user may hold, count.
pub const LOCKS_PER_USER_MAX_DEFAULT: usize = 1000;
/// Default: an idle keep-alive connection is closed after this long, seconds.
pub const IDLE_TIMEOUT_S_DEFAULT: u64 = 120;
/// Default: a client must send its whole request head within this long, seconds (slowloris).
pub const HEADER_READ_TIMEOUT_S_DEFAULT: u64 = 30;
/// Default: a body upload that sends no byte for this long is dropped, seconds (slow client).
pub const BODY_STALL_TIMEOUT_S_DEFAULT: u64 = 60;
/// Default versions of a file kept besides the current one, count.
pub const VERSIONS_KEPT_DEFAULT: u32 = 10;
/// Default days a deleted file stays in the trash.
pub const TRASH_RETENTION_DAYS_DEFAULT: u32 = 30;

const _: () = assert!(NAME_LEN_MIN >= 1 && NAME_LEN_MIN <= NAME_LEN_MAX);
// A record of members (each name plus its length prefix) stays far inside a log record.
const _: () =
    assert!(GROUP_MEMBERS_PER_RECORD_MAX * (NAME_LEN_MAX + 2) + 1024 < USER_LOG_RECORD_LEN_MAX);
// A sealed batch (salt, tag, tenant name and counts around it) fits one record.
const _: () = assert!(USER_LOG_SEALED_BATCH_BYTES + 1024 < USER_LOG_RECORD_LEN_MAX);
const _: () = assert!(ARGON2_M_COST_KIB <= ARGON2_M_COST_MAX_KIB);
const _: () = assert!(ARGON2_T_COST <= ARGON2_T_COST_MAX);
const _: () = assert!(ARGON2_P_COST <= ARGON2_P_COST_MAX);
const _: () = assert!(CREDENTIAL_REVERIFY_FROM_PERCENT < CREDENTIAL_REVERIFY_TO_PERCENT);
const _: () = assert!(CREDENTIAL_REVERIFY_TO_PERCENT < 100);
const _: () = assert!(CREDENTIAL_CACHE_MAX_AGE_S_DEFAULT >= CREDENTIAL_CACHE_TTL_S_DEFAULT);
const _: () = assert!(AUTH_HEADER_LEN_MAX < HEADER_SIZE_MAX_DEFAULT);

// ---- HTTP serving (server/src/http) ----

/// Default of `limits.connections_max`: open client connections, count: the process may hold 20,000 files here; the rest is
/// kept for packs, logs and the listener. Over it, new connections are closed at once.
pub const CONNECTIONS_MAX: usize = 16_000;
/// Most connection-serving threads (`workers`) a configuration may ask for.
pub const WORKERS_MAX: usize = 256;
/// After SIGTERM, how long in-flight requests (uploads) may take to finish, seconds.
pub const SHUTDOWN_GRACE_S: u64 = 30;

// ---- TLS (server/src/http/tls.rs) ----

/// TLS 1.2 sessions remembered for resumption by session ID, count (clients that resume
/// without tickets; TLS 1.3 and ticket-capable TLS 1.2 clients resume from a stateless
/// ticket instead). An entry is a few hundred bytes: about 6 MB at most.
pub const TLS_SESSION_CACHE_ENTRIES: usize = 20_000;
/// Session tickets sent after each TLS 1.3 handshake, count: one per connection a client
/// may open in parallel and resume (each ticket is used once); rustls's default.
pub const TLS13_TICKETS_PER_HANDSHAKE: usize = 2;
/// Room made for one read of TLS records from a socket, bytes: a whole record (16 KiB of
/// data and its header and tag) in one read. Borrowed from the thread's spares for the read
/// only (`http/tls_stream.rs`).
pub const TLS_READ_BYTES: usize = 16 * 1024 + 512;
/// Encrypted bytes a TLS connection queues for its socket before a write waits for the
/// socket to take them, bytes. The queue's buffer is the thread's spare, kept up to twice
/// this size.
pub const TLS_WRITE_PENDING_MAX_BYTES: usize = 48 * 1024;

// ---- HTTP/1 connections (server/src/http/h1) ----

/// Most header fields in one request head, count (the head's size is `limits.header_size_max`).
pub const H1_HEADERS_MAX: usize = 128;
/// Read buffer of a connection, bytes: a request head and a small body fit in one read. A
/// connection's buffer grows while a body streams in; an idle connection holds none (a read
/// attempt borrows its thread's spare, `server/src/http/h1/spare.rs`).
pub const H1_READ_BUF_BYTES: usize = 8 * 1024;
/// Room reserved for a response head, bytes (a typical head is 150-400 bytes).
pub const H1_WRITE_HEAD_BYTES: usize = 1024;
/// Largest buffer kept as a thread's spare, bytes: one an upload or a huge head grew is freed.
pub const H1_SPARE_BUF_MAX_BYTES: usize = 64 * 1024;
/// Empty read buffers a serving thread keeps for its connections' next reads, count: enough
/// for the requests of one event-loop turn to reuse them instead of allocating (16 x 8 KiB =
/// 128 KiB per thread at most).
pub const H1_SPARE_READ_BUFS: usize = 16;
const _: () = assert!(H1_READ_BUF_BYTES <= H1_SPARE_BUF_MAX_BYTES);
const _: () = assert!(H1_WRITE_HEAD_BYTES <= H1_SPARE_BUF_MAX_BYTES);
/// Most bytes read from the socket in one call while a body is streamed in.
pub const H1_BODY_READ_BYTES: usize = 256 * 1024;
/// Largest unread request body the server reads and discards after answering (e.g. a 401
/// to a PUT) to keep the connection; a longer rest closes it, bytes.
pub const H1_DRAIN_MAX_BYTES: u64 = 256 * 1024;
/// After answering a request whose body is not read to its end, how long the connection
/// keeps reading (and dropping) what the client still sends before closing, milliseconds.
pub const H1_LINGER_MS: u64 = 2000;
/// Most bytes read and dropped while lingering after a body of unknown length (chunked).
pub const H1_LINGER_MAX_BYTES: u64 = 1024 * 1024;
/// Most bytes read and dropped while lingering after a body with a declared length (the
/// client will send all of it; an upload refused from its head is the common case).
pub const H1_LINGER_DECLARED_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Response body bytes gathered into one vectored write, bytes.
pub const H1_WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Buffers in one vectored write, count (below the kernel's IOV_MAX of 1024).
pub const H1_WRITE_IOVECS_MAX: usize = 64;
/// Hex digits of a chunk size: 16 cover every u64.
pub const CHUNK_SIZE_DIGITS_MAX: usize = 16;
/// Longest chunk extension (`;name=value`, ignored), bytes.
pub const CHUNK_EXTENSIONS_LEN_MAX: usize = 4096;
/// Largest trailer section of a chunked body (ignored), bytes.
pub const CHUNK_TRAILERS_LEN_MAX: usize = 16 * 1024;

// ---- Administration socket (server/src/admin.rs) ----

/// Largest admin request line, bytes.
pub const ADMIN_REQUEST_LEN_MAX: usize = 64 * 1024;
/// Largest stdin an `skab` command forwards to the server with its command line (object
/// storage mode: a password, a receipt, a confirmation), bytes; it travels inside the request
/// line as a JSON string (at most 6 bytes per byte, `\u00XX`), with room for the arguments.
pub const ADMIN_FORWARD_STDIN_LEN_MAX: usize = 8 * 1024;
const _: () = assert!(ADMIN_FORWARD_STDIN_LEN_MAX * 6 + 8 * 1024 <= ADMIN_REQUEST_LEN_MAX);
/// How long the server waits for an admin request line, seconds.
pub const ADMIN_TIMEOUT_S: u64 = 10;
/// Allocations at least this large get their own mapping (freed memory goes back to the OS),
/// bytes; below it the heap serves them. 4 MiB keeps request-sized buffers on the heap.
pub const ALLOC_MMAP_THRESHOLD_BYTES: i32 = 4 << 20;
/// Interval of the background maintenance (checkpoint, expiry), seconds.
pub const MAINTENANCE_INTERVAL_S: u64 = 300;
/// Nice value of the thread that writes periodic snapshots (requests go first).
pub const CHECKPOINT_NICE: i32 = 10;

// ---- Access log (server/src/access_log.rs) ----

/// Lines waiting for the access log's writer; beyond it lines are dropped, not waited for.
pub const ACCESS_LOG_QUEUE_LINES: usize = 64 * 1024;
/// How often the access log's writer writes what has queued, ms (lines reach the file at most
/// this late; at 100,000 requests/s that is 2,000 lines, far below the queue's bound).
pub const ACCESS_LOG_FLUSH_MS: u64 = 20;
/// The writer's batch: at most this many bytes go out in one write.
pub const ACCESS_LOG_WRITE_BYTES: usize = 256 * 1024;

// ---- Audit log (server/src/audit/) ----
/// How often the audit writer appends what has queued, ms: one fdatasync per log and turn,
/// so a login storm costs at most one sync a second per tenant with logins (measured:
/// docs/benchmarks.md, "Audit log cost").
pub const AUDIT_FLUSH_MS: u64 = 1000;
/// Events queued for the writer, count (~300 bytes each): beyond it events are counted lost.
pub const AUDIT_QUEUE_EVENTS: usize = 1_000_000;
/// Longest actor, target or detail kept in a record, bytes (longer ones are cut).
pub const AUDIT_FIELD_LEN_MAX: usize = 1024;
/// Bytes read from a segment's end to find its last record: above the longest record.
pub const AUDIT_TAIL_READ_BYTES: u64 = 64 * 1024;
const _: () = assert!((AUDIT_FIELD_LEN_MAX * 3 * 2 + 1024) as u64 <= AUDIT_TAIL_READ_BYTES);
/// A login by cache, app token or JWT is recorded once per account, method and source in
/// this many seconds (a session's start; a password checked by argon2 always is).
pub const AUDIT_LOGIN_REPEAT_S: u64 = 3600;
/// Recent login records remembered to leave out repeats, count (~100 bytes each).
pub const AUDIT_LOGIN_SEEN_MAX: usize = 200_000;
/// Default of `log.audit_retention_days`: 13 months, so a year can always be looked back on.
pub const AUDIT_RETENTION_DAYS_DEFAULT: u64 = 400;

// ---- ownCloud/Nextcloud client protocol (server/src/oc) ----

/// Longest `OC-Checksum` header, bytes (a few `TYPE:hex` items).
pub const OC_CHECKSUM_HEADER_LEN_MAX: usize = 512;
/// Longest `X-OC-Mtime` header, bytes.
pub const OC_MTIME_HEADER_LEN_MAX: usize = 32;
/// Latest modification time a client may set: 9999-12-31, seconds since the epoch.
pub const OC_MTIME_MAX_S: i64 = 253_402_300_799;
/// Default of `storage.upload_ttl_s`: a chunked upload untouched this long is removed with its
/// chunks, seconds (a day: a client resuming after a night still finds its chunks).
pub const OC_UPLOAD_TTL_DEFAULT_S: u64 = 24 * 3600;
/// Chunked uploads one user may have open at once.
pub const OC_UPLOADS_PER_USER_MAX: usize = 64;
/// Chunks in one chunked upload (a 100 GiB file in 10 MiB chunks is ~10,000).
pub const OC_CHUNKS_PER_UPLOAD_MAX: usize = 16_384;

// ---- sync-collection REPORT (server/src/methods/report.rs) ----

/// Most members one `sync-collection` answer lists, count: a client's `DAV:nresults` above it
/// is lowered to it, and an initial listing or a single logged change with more members is
/// refused (`number-of-matches-within-limits`; the client falls back to PROPFIND).
pub const DAV_SYNC_RESULTS_MAX: usize = skab_engine::limits::SYNC_RESULTS_MAX;
/// Longest `DAV:sync-token` accepted, bytes (ours are about 60).
pub const DAV_SYNC_TOKEN_LEN_MAX: usize = 256;

// ---- Browser frontends (server/src/cors.rs, methods/listing.rs, methods/post.rs) ----

/// How long a browser may cache a CORS preflight answer, seconds (`Access-Control-Max-Age`);
/// short, so that a removed origin stops working soon (Chromium caps it at 7200).
pub const CORS_PREFLIGHT_MAX_AGE_S: u32 = 600;
/// Most origins in `http.cors_origins`, count (each request compares against all of them).
pub const CORS_ORIGINS_MAX: usize = 64;
/// Longest origin accepted in `http.cors_origins`, bytes.
pub const CORS_ORIGIN_LEN_MAX: usize = 256;
/// Most entries an HTML collection listing shows, count; a note says when more exist.
pub const LISTING_ENTRIES_MAX: usize = 5_000;
/// Most parts (files and other fields) in one multipart/form-data upload, count.
pub const MULTIPART_PARTS_MAX: usize = 1_000;
/// Longest form field name of a multipart part, bytes.
pub const MULTIPART_FIELD_NAME_LEN_MAX: usize = 256;
/// Longest file name of a multipart part, bytes (the engine's longest name).
pub const MULTIPART_FILE_NAME_LEN_MAX: usize = DAV_SEGMENT_LEN_MAX;
/// Most bytes of one part's head (boundary line and part headers) the upload parser may
/// hold before the part's data starts, bytes (bounds what a malformed body can make it buffer).
pub const MULTIPART_PART_HEAD_MAX: u64 = 16 * 1024;
/// Most request bytes handed to the multipart parser in one poll before it must yield,
/// bytes: with `MULTIPART_PART_HEAD_MAX` it bounds the parser's buffer per upload.
pub const MULTIPART_POLL_BYTES_MAX: u64 = 256 * 1024;

const _: () = assert!(MULTIPART_FILE_NAME_LEN_MAX as u64 * 3 < MULTIPART_PART_HEAD_MAX);

// ---- Behind proxies (server/src/http/proxy.rs) ----

/// Most entries of `http.trusted_proxies`, count (each request walks the list per hop).
pub const TRUSTED_PROXIES_MAX: usize = 256;
/// Most `Forwarded` / `X-Forwarded-For` hops looked at, from the right, count: a chain of
/// proxies longer than this is not a deployment; the walk stops there (at a trusted hop, the
/// client is then that hop).
pub const FORWARDED_HOPS_MAX: usize = 16;
/// Longest PROXY protocol header accepted, bytes: v1 is at most 107 bytes; v2 is a 16-byte
/// prefix and its TLVs (AWS NLB and Azure add a few ids), bounded well below a read buffer.
pub const PROXY_HEADER_LEN_MAX: usize = 1024;
/// PROXY protocol v1 header's longest line, bytes (the specification's own limit).
pub const PROXY_V1_LEN_MAX: usize = 107;
/// While a PROXY protocol header has arrived only in part, how long the server waits before
/// looking again, milliseconds (proxies send it in one segment; the whole wait is bounded by
/// `limits.header_read_timeout_s`).
pub const PROXY_HEADER_RETRY_MS: u64 = 5;

// ---- Fair share (server/src/fair_share.rs) and the penalty lane (auth) ----

/// Default of `limits.inflight_per_tenant_max`: requests of one tenant in flight, count.
pub const INFLIGHT_PER_TENANT_MAX_DEFAULT: usize = 256;
/// Default of `limits.inflight_per_account_max`: requests of one account in flight, count
/// (a sync client runs a few at once; 32 leaves room for several devices).
pub const INFLIGHT_PER_ACCOUNT_MAX_DEFAULT: usize = 32;
/// `Retry-After` of a request refused by the fair-share limits, seconds.
pub const INFLIGHT_RETRY_AFTER_S: u64 = 1;
/// Shards of the fair-share counters, count (each a small map behind its own lock).
pub const FAIR_SHARE_SHARDS: usize = 64;
/// Password verifications (argon2) at once for logins from sources whose failed-login
/// bucket is empty, count: a valid password still logs in, an attacker's guesses cost at
/// most this much CPU.
pub const PENALTY_LANE_SLOTS: usize = 1;
/// How long a login from a throttled source waits for the penalty lane before 429,
/// milliseconds.
pub const PENALTY_LANE_WAIT_MS: u64 = 2000;

/// Names a trash restore tries (`x`, `x (restored)`, `x (restored 2)`, …) before giving up
/// with 412 rather than overwrite.
pub const TRASH_RESTORE_NAME_TRIES: u32 = 100;
// ---- Exam hand-ins (server/src/handin) ----

/// Most hand-ins of all tenants together, count (the registry is one file read whole).
pub const HANDINS_MAX: usize = 100_000;
/// Largest hand-in registry file read, bytes (`HANDINS_MAX` entries of about 300 bytes).
pub const HANDIN_REGISTRY_LEN_MAX: u64 = 64 << 20;
/// How often a teacher's request makes the folders of members added since, seconds (making
/// them walks the whole group; a pupil's own folder is made on their first request anyway).
pub const HANDIN_FOLDERS_REFRESH_S: u64 = 10;
/// Longest receipt verified, bytes (a receipt with maximal names is about 3 KiB).
pub const RECEIPT_LEN_MAX: usize = 16 * 1024;
/// Slots of the channel between the zip writer and the response, each up to about
/// `HANDIN_ZIP_FLUSH_BYTES` plus one engine chunk: bounds a download's memory.
pub const HANDIN_ZIP_CHANNEL_DEPTH: usize = 4;
/// Bytes of zip output gathered before they are sent on (fewer, larger frames).
pub const HANDIN_ZIP_FLUSH_BYTES: usize = 256 * 1024;

// ----- export and import (`docs/export.md`) -----

/// Buffer between an export and its archive file: large enough for sequential writes, small
/// beside a serving store (the only memory an export's file bytes take, besides one chunk).
pub const EXPORT_WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Bytes handed to the store per step while an import stores one file (one buffer held).
pub const IMPORT_READ_BYTES: usize = 1 << 20;
/// Largest `manifest.json` that `skab import` and `skab export --verify` read (about 300
/// bytes per entry: some 850,000 entries), held in memory whole.
pub const EXPORT_MANIFEST_LEN_MAX: u64 = 256 << 20;
// ---- Shared spaces and user shares (server/src/spaces) ----

/// Most spaces and shares of all tenants together, count (the registry is one file read
/// whole, and every request to a home looks through the tenant's part of it).
pub const SPACES_MAX: usize = 50_000;
/// Most user shares of all tenants together, count.
pub const SHARES_MAX: usize = 200_000;
/// Most grants (`--share`) on one space, count (a class space has a group or two).
pub const SPACE_GRANTS_MAX: usize = 64;
/// Largest space registry file read, bytes (`SPACES_MAX` + `SHARES_MAX` entries of about
/// 250 bytes).
pub const SPACE_REGISTRY_LEN_MAX: u64 = 128 << 20;
/// Longest OCS request body read (a share creation form), bytes.
pub const OCS_BODY_LEN_MAX: usize = 16 * 1024;
/// Groups taken from one JWT's groups claim, count (more are ignored; a pupil is in a few).
pub const JWT_CLAIM_GROUPS_MAX: usize = 256;
/// Users whose groups from a JWT claim are remembered at once, count (one entry of a few
/// hundred bytes each; expired entries are dropped first, then new ones are not kept).
pub const JWT_CLAIM_GROUPS_USERS_MAX: usize = 1_000_000;
/// Files and folders one COPY or MOVE between a home and a space may carry, count (each is
/// one durable engine operation; a larger tree is refused before anything is copied).
pub const CROSS_COPY_ENTRIES_MAX: usize = 10_000;
/// Seconds `crypto.master_key_command` may take to print the master key before the start is
/// refused (an HSM or KMS round trip takes well under a second; a hung one must not hang
/// the start forever).
pub const MASTER_KEY_COMMAND_TIMEOUT_S: u64 = 30;
/// Most bytes read as a master key from a file, a variable or a command's output (the key is
/// 64 hex digits; anything much longer is a wrong file).
pub const MASTER_KEY_SOURCE_BYTES_MAX: usize = 4096;

// Cluster mode (docs/scaleout.md).
/// Cells (tenant groups) of a cluster when `cluster.cells` is not set.
pub const CLUSTER_CELLS_DEFAULT: u32 = 12;
/// Most cells a cluster may have.
pub const CLUSTER_CELLS_MAX: u32 = 4096;
/// A node's etcd lease when `cluster.lease_ttl_s` is not set, seconds.
pub const CLUSTER_LEASE_TTL_DEFAULT_S: u64 = 3;
/// Shortest and longest lease a node may take, seconds.
pub const CLUSTER_LEASE_TTL_MIN_S: u64 = 2;
pub const CLUSTER_LEASE_TTL_MAX_S: u64 = 60;
/// Of its lease, a node stops writing this many milliseconds before its own deadline (clock
/// rates of two machines differ a little; a request in flight needs time to be cut off).
pub const CLUSTER_LEASE_MARGIN_MS: u64 = 500;
/// How often a node reads who owns what and renews its lease: this fraction of the TTL.
pub const CLUSTER_TICK_DIVISOR: u32 = 4;
/// After taking a cell over from a node that died, wait this long before reading its objects:
/// an object request the old owner sent just before its deadline has landed by then.
pub const CLUSTER_TAKEOVER_GRACE_MS: u64 = 500;
/// Scheduling priority (nice) of a cell's takeover (rebuild from the bucket, recovery): above
/// the serving threads, since the cell's requests wait for it.
pub const CLUSTER_TAKEOVER_NICE: i32 = -5;
/// A cell with no owner is taken by a node other than its preferred one after this many
/// lease TTLs (its preferred node may be starting).
pub const CLUSTER_FOREIGN_TAKE_TTLS: u64 = 2;
/// A request for a cell that is being opened (or has no owner) waits at most this long, then
/// gets 503 with Retry-After.
pub const CLUSTER_CELL_WAIT_MS: u64 = 15_000;
/// One etcd request's time limit, milliseconds (it is retried on the next endpoint).
pub const CLUSTER_ETCD_TIMEOUT_MS: u64 = 2_000;
/// Most bytes of an etcd answer.
pub const CLUSTER_ETCD_BODY_MAX: u64 = 16 << 20;
/// A forwarded request's connect time limit, milliseconds.
pub const CLUSTER_FORWARD_CONNECT_MS: u64 = 2_000;
/// Most bytes of an admin command's arguments and of its output sent between nodes.
pub const CLUSTER_ADMIN_BODY_MAX: usize = 16 << 20;
/// An admin command run on a cell's owner must finish in this many seconds.
pub const CLUSTER_ADMIN_TIMEOUT_S: u64 = 600;
/// An admin command whose cell is moving between nodes is sent again for this long.
pub const CLUSTER_ADMIN_RETRY_S: u64 = 30;
/// Most bytes of a users CSV `skab user import` sends to a cluster (base64 in the request
/// must stay under `CLUSTER_ADMIN_BODY_MAX`).
pub const CLUSTER_IMPORT_CSV_MAX: usize = 8 << 20;
