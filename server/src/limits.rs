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

const _: () = assert!(DAV_LOCK_TIMEOUT_DEFAULT_S <= DAV_LOCK_TIMEOUT_MAX_S);
const _: () = assert!(DAV_LOCKS_PER_SPACE_MAX <= DAV_LOCKS_TOTAL_MAX);
const _: () = assert!(DAV_SEGMENT_LEN_MAX * 3 < DAV_TARGET_LEN_MAX);
