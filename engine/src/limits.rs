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
pub const WAL_RECORD_LEN_MAX: usize = 64 * 1024 * 1024;
/// Largest single file, bytes.
pub const FILE_SIZE_MAX: u64 = 16 * 1024 * 1024 * 1024;
/// Dead properties per entry, count.
pub const PROPS_PER_ENTRY_MAX: usize = 256;
/// Largest dead property value, bytes.
pub const PROP_VALUE_LEN_MAX: usize = 64 * 1024;

const _: () = assert!(CHUNK_SIZE_MIN_DEFAULT < CHUNK_SIZE_AVG_DEFAULT);
const _: () = assert!(CHUNK_SIZE_AVG_DEFAULT < CHUNK_SIZE_MAX_DEFAULT);
const _: () = assert!(CHUNK_SIZE_MAX_DEFAULT <= CHUNK_SIZE_MAX_LIMIT);
const _: () = assert!((CHUNK_SIZE_MAX_LIMIT as u64) < PACK_SIZE_TARGET);

// ---- Storage I/O backends (engine/src/io) ----

/// Longest storage file name (`packs/00000001.pack`), bytes; names are internal, this only
/// catches a runaway caller before the file system does.
pub const STORAGE_NAME_LEN_MAX: usize = 1024;
/// Submission queue entries of one io_uring ring; a write batch larger than this is split
/// into several submissions (the fdatasync is linked to the last one).
pub const URING_RING_ENTRIES: u32 = 256;
/// Idle rings the io_uring backend keeps for reuse, count; more concurrent callers create
/// extra rings that are closed after use (each ring pins a little kernel memory).
pub const URING_POOL_IDLE_MAX: usize = 32;
/// Largest single io_uring read or write operation, bytes: the kernel caps one read/write
/// at 0x7ffff000 bytes, so larger buffers are split into pieces of this size.
pub const URING_OP_BYTES_MAX: usize = 1 << 30;
/// Times a transiently refused io_uring_enter (EINTR/EAGAIN/EBUSY) is retried before an
/// error is returned (or, with operations in flight, waited on further).
pub const URING_ENTER_RETRIES: u32 = 1000;
/// Alignment of direct (page-cache bypassing) writes: their file offset, length and memory
/// address, bytes. 4 KiB covers 512-byte and 4 KiB logical sectors alike.
pub const DIRECT_IO_ALIGN: usize = 4096;
/// Largest file the in-memory test backend holds, bytes: a test writing past it has a bug.
pub const MEM_FILE_LEN_MAX: u64 = 1 << 32;
/// Largest file offset any backend accepts, bytes (the kernel's `loff_t` is signed).
pub const STORAGE_OFFSET_MAX: u64 = i64::MAX as u64;

const _: () = assert!(URING_RING_ENTRIES >= 2);
const _: () = assert!(URING_OP_BYTES_MAX <= 0x7fff_f000);
const _: () = assert!(URING_OP_BYTES_MAX.is_multiple_of(DIRECT_IO_ALIGN));
const _: () = assert!(DIRECT_IO_ALIGN.is_power_of_two());

// --- Namespace tree (engine/src/ns) ---

/// Node slots of one space (live entries + trash), count: slots are u32 and the top values
/// are sentinels; a billion entries in one home is far beyond any school user.
pub const SPACE_NODES_MAX: usize = 1 << 30;
/// Longest dead property name (namespace URI + local name together), bytes: real WebDAV
/// clients use short URIs; this bounds memory per property.
pub const PROP_NAME_LEN_MAX: usize = 1024;
/// Chunk references in one file's content, count: one `PutFile` op must fit one WAL record
/// (a chunk reference serializes to at most 37 bytes with postcard; 4 KiB left for the path).
pub const CONTENT_CHUNKS_MAX: usize = (WAL_RECORD_LEN_MAX - 4096) / 37;

/// Change-log entries each space keeps for `sync-collection`, count: older ones are dropped
/// and a sync token older than the oldest kept is refused (the client lists everything again).
/// 16 bytes an entry (a removal's path more): a full log is some 16 KiB, and most of a million
/// spaces change far less between two syncs of their owner.
pub const CHANGE_LOG_ENTRIES_MAX: usize = 1000;
/// Most members one change answer holds (an initial listing, or what one logged change of a
/// large subtree expands to), count: about 50 MB of multistatus; a larger answer is refused
/// and the client falls back to listing collection by collection.
pub const SYNC_RESULTS_MAX: usize = 100_000;
/// Most members one change answer looks at, repeats included, count (bounds the time a
/// query holds the space's read lock when many logged changes expand the same subtree).
pub const SYNC_WORK_MAX: usize = 4 * SYNC_RESULTS_MAX;

// A file of FILE_SIZE_MAX cut at twice the average rate still fits one WAL record; only a
// pathological file cut at the minimum size everywhere can hit CONTENT_CHUNKS_MAX first.
const _: () = assert!((FILE_SIZE_MAX as usize / CHUNK_SIZE_AVG_DEFAULT) * 2 < CONTENT_CHUNKS_MAX);

// --- Store configuration (engine/src/store) ---

/// Smallest configurable pack size target, bytes (a pack always takes at least one record,
/// whatever its size); small packs exist only so tests can seal and compact them.
pub const PACK_SIZE_TARGET_MIN: u64 = 64 * 1024;

const _: () = assert!(PACK_SIZE_TARGET_MIN <= PACK_SIZE_TARGET);

// --- Chunk cache (engine/src/store/cache.rs) ---

/// Bytes of verified chunks kept in memory for hot reads, default of
/// `StoreConfig::chunk_cache_bytes` (0 turns the cache off): 256 MiB holds some 16,000 chunks of
/// 16 KiB, the morning's hot set of a school (templates, handouts a class opens at once) many
/// times over, and is small next to the page cache of a server that holds terabytes.
pub const CHUNK_CACHE_BYTES_DEFAULT: u64 = 256 << 20;
/// Most shards of the chunk cache, count (each shard has its own lock and its own eviction):
/// 64 keeps 16 reader threads from meeting on a lock more than rarely.
pub const CHUNK_CACHE_SHARDS_MAX: u64 = 64;
/// Fewest bytes of one cache shard: a small cache gets fewer shards, so that each still holds
/// dozens of chunks and evicts by its own recency, not by which shard a chunk fell into.
pub const CHUNK_CACHE_SHARD_BYTES_MIN: u64 = 4 << 20;
/// A chunk is cached only when at most 1/this of its shard's bytes: a few big chunks must not
/// flush many small hot ones (with the default, chunks up to 512 KiB, all of a default chunking).
pub const CHUNK_CACHE_ENTRY_SHARE_DIV: u64 = 8;
/// Bytes counted per cached chunk on top of its data (id, handle, domain tag, the cache's slot
/// and list links, rounded up), so that many tiny chunks cannot hold more memory than the bound.
pub const CHUNK_CACHE_ENTRY_OVERHEAD: u64 = 128;

const _: () = assert!(CHUNK_CACHE_SHARDS_MAX.is_power_of_two());
const _: () = assert!(
    CHUNK_CACHE_SHARD_BYTES_MIN / CHUNK_CACHE_ENTRY_SHARE_DIV >= CHUNK_SIZE_MAX_DEFAULT as u64
);

// --- Reads of chunks that miss the caches (engine/src/store/reader.rs, docs/io.md "Reads") ---

/// Reader threads that take the chunk reads which must wait for the disk off the event loops,
/// count: also the most such reads in flight, so enough to fill a disk's queue (an NVMe drive
/// needs some 32 reads in flight to reach its rate; a SATA disk's queue holds 32). Each costs
/// an idle thread (a few KiB of stack touched) and starts on the first read that needs it.
pub const READER_THREADS: usize = 32;
/// Largest chunk, bytes, that an event loop reads from the page cache and verifies itself
/// (some 40 µs of hashing at 128 KiB); a larger chunk is read and hashed by a reader thread.
pub const READ_ON_LOOP_BYTES_MAX: usize = 128 * 1024;

const _: () = assert!(READ_ON_LOOP_BYTES_MAX >= CHUNK_SIZE_MAX_DEFAULT);

// --- Disk space (engine/src/store, engine/src/pack/writer.rs) ---

/// Free bytes the file system must keep beyond an accepted upload, default of
/// `StoreConfig::free_space_reserve_bytes`: uploads are refused (`NoSpace`) below it, so the
/// WAL, snapshots and checkpoints, whose write failures cannot be undone, never run out.
pub const FREE_SPACE_RESERVE_DEFAULT: u64 = 512 << 20;
/// Free bytes above the reserve below which an upload waits for its chunks to be durable
/// before it touches the namespace (one fsync more), so that a pack write refused for lack of
/// space fails the upload cleanly instead of poisoning the store; 128 MiB covers the uploads
/// in flight between two free-space checks.
pub const FREE_SPACE_CAREFUL_MARGIN: u64 = 128 << 20;

/// Emptied pack batch buffers the writer keeps for the next batches (a batch of small uploads
/// grows to some hundreds of KiB; starting each from scratch copied it again at every doubling).
pub const PACK_BATCH_SPARES: usize = 2;
/// Largest batch buffer kept for reuse, bytes (a batch after a burst of large files is let go).
pub const PACK_BATCH_SPARE_BYTES_MAX: usize = 4 << 20;

// --- Pre-zeroing (engine/src/io/prezero.rs, docs/architecture.md "Pre-zeroed appends") ---

/// Bytes of a pack zeroed (written and synced) ahead of its append position per round: a
/// 16 KiB record's fdatasync into zeroed space is 2-3x faster than an append. 16 MiB is some
/// 40 ms of disk for the zeroer and lasts ~1000 small uploads.
pub const PACK_PREZERO_STEP: u64 = 16 << 20;
/// A new pack round starts once fewer zeroed bytes than this lie ahead of the pack's writes,
/// bytes: half a step, so that a burst does not outrun the zeroer. Zeros ahead of the pack
/// never exceed step + low water (24 MiB), and rounds start only while the free space is above
/// the reserve plus `FREE_SPACE_CAREFUL_MARGIN`.
pub const PACK_PREZERO_LOW_WATER: u64 = 8 << 20;
/// Bytes of a WAL segment zeroed ahead per round: records are ~200 bytes per upload, so 1 MiB
/// lasts thousands of uploads; with 64 shards the logs hold at most 80 MiB of zeros ahead.
pub const WAL_PREZERO_STEP: u64 = 1 << 20;
/// A new WAL round starts once fewer zeroed bytes than this lie ahead of the log's writes.
pub const WAL_PREZERO_LOW_WATER: u64 = 256 << 10;
/// Largest single zero write, bytes: a flusher that catches up with the zeroer waits for at
/// most one such page-cache write (well under a millisecond) before it writes over it.
pub const PREZERO_PIECE_BYTES: usize = 256 << 10;

const _: () = assert!(PACK_PREZERO_LOW_WATER <= PACK_PREZERO_STEP);
const _: () = assert!(WAL_PREZERO_LOW_WATER <= WAL_PREZERO_STEP);
const _: () = assert!(PACK_PREZERO_STEP + PACK_PREZERO_LOW_WATER < FREE_SPACE_CAREFUL_MARGIN);

/// Bytes read and written per step of a backup's file copy: large enough for sequential speed,
/// small enough to hold beside a serving store.
pub const BACKUP_COPY_BYTES: usize = 4 << 20;

// --- Object storage mirror (engine/src/io/object.rs, docs/scaleout.md) ---

/// Tries of one S3 request before the operation fails (each try may go to the next endpoint).
pub const OBJECT_REQUEST_TRIES: u32 = 8;
/// First wait between tries, milliseconds; doubled per try up to [`OBJECT_RETRY_WAIT_MAX_MS`].
pub const OBJECT_RETRY_WAIT_MS: u64 = 50;
/// Longest wait between two tries, milliseconds (8 tries wait about 3 s in all).
pub const OBJECT_RETRY_WAIT_MAX_MS: u64 = 1_000;
/// Time limit of one S3 request (connect, send, answer), seconds.
pub const OBJECT_REQUEST_TIMEOUT_S: u64 = 30;
/// A process that takes a mirrored file over under a fence numbers its segments from this far
/// above the last one it found (docs/scaleout.md, "Fencing").
pub const OBJECT_TAKEOVER_SEQ_JUMP: u64 = 1 << 32;
/// Time limit of connecting to an S3 endpoint, milliseconds: a node that is down or hung is
/// left for the next endpoint quickly.
pub const OBJECT_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Largest segment part uploaded as one object, bytes; a larger sync is split into parts
/// uploaded in parallel.
pub const OBJECT_PART_BYTES: usize = 4 << 20;
/// Parts of one sync uploaded at once.
pub const OBJECT_UPLOAD_PARALLEL: usize = 4;
/// Files rebuilt from the bucket at once when a directory is opened empty (a cluster node
/// taking a cell over waits for it).
pub const OBJECT_REBUILD_PARALLEL: usize = 4;
/// Objects of one file fetched at once during a rebuild (each at most `OBJECT_PART_BYTES`
/// and a little: with `OBJECT_REBUILD_PARALLEL` files, at most 4 x 16 x 4 MiB in memory).
pub const OBJECT_REBUILD_WINDOW: usize = 16;
/// Largest object body read back (a part plus its header), bytes.
pub const OBJECT_BODY_MAX: u64 = (OBJECT_PART_BYTES as u64) * 2 + (1 << 20);
/// A file not written for this long with two or more segments is compacted into a whole-file
/// object, seconds.
pub const OBJECT_COMPACT_IDLE_S: u64 = 10;
/// A file with this many segments is compacted even while it is written.
pub const OBJECT_COMPACT_SEGMENTS_MAX: usize = 1_000;
/// Keys asked for per list request.
pub const OBJECT_LIST_PAGE: usize = 1_000;
