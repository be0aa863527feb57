//! Every limit of the engine in one place, each with its unit and the reason for its value.

/// Smallest chunk the chunker cuts, bytes (files smaller than this are one chunk): avg / 4.
pub const CHUNK_SIZE_MIN_DEFAULT: usize = 8 * 1024;
/// Average chunk size the chunker aims at, bytes: chosen by measurement on the school corpus
/// (docs/chunking.md): most of the dedup of 8 KiB at half its metadata.
pub const CHUNK_SIZE_AVG_DEFAULT: usize = 32 * 1024;
/// Largest chunk the chunker cuts, bytes; bounds the memory of one chunk in flight: avg * 4.
pub const CHUNK_SIZE_MAX_DEFAULT: usize = 128 * 1024;
/// Smallest allowed `min` chunk size, bytes: below it per-chunk metadata dwarfs the data.
pub const CHUNK_SIZE_MIN_LIMIT: usize = 64;
/// Smallest allowed `avg` chunk size, bytes (the smallest FastCDC mask of normalized chunking).
pub const CHUNK_SIZE_AVG_MIN_LIMIT: usize = 256;
/// A streamed input piece shorter than this, bytes, is copied into the chunk being built instead
/// of kept as its own `Bytes` (32 B of handle per piece: tiny network frames would cost more in
/// handles than in data).
pub const CHUNK_STREAM_COALESCE_BELOW: usize = 4096;
/// Hard ceiling of any chunk, bytes: a pack record length above this is corruption.
pub const CHUNK_SIZE_MAX_LIMIT: usize = 4 * 1024 * 1024;

/// A pack file is sealed and a new one started past this size, bytes.
pub const PACK_SIZE_TARGET: u64 = 256 * 1024 * 1024;

/// Longest name of one entry, bytes of UTF-8 (as most file systems).
pub const NAME_LEN_MAX: usize = 255;
/// Deepest path, components.
pub const PATH_DEPTH_MAX: usize = 64;
/// Largest WAL record payload, bytes (a file's chunk list dominates: 16 MiB of chunk refs).
pub const WAL_RECORD_LEN_MAX: usize = 16 * 1024 * 1024;
/// Largest single file, bytes.
pub const FILE_SIZE_MAX: u64 = 64 * 1024 * 1024 * 1024;
/// Dead properties per entry, count.
pub const PROPS_PER_ENTRY_MAX: usize = 256;
/// Largest dead property value, bytes.
pub const PROP_VALUE_LEN_MAX: usize = 64 * 1024;

const _: () = assert!(CHUNK_SIZE_MIN_DEFAULT < CHUNK_SIZE_AVG_DEFAULT);
const _: () = assert!(CHUNK_SIZE_AVG_DEFAULT < CHUNK_SIZE_MAX_DEFAULT);
const _: () = assert!(CHUNK_SIZE_MAX_DEFAULT <= CHUNK_SIZE_MAX_LIMIT);
const _: () = assert!((CHUNK_SIZE_MAX_LIMIT as u64) < PACK_SIZE_TARGET);
