//! Fuzzes store recovery end to end: opens a one-shard store over an in-memory storage
//! whose files (meta, snapshot, WAL segments, packs, checkpoint) come from the input; see
//! `skab_fuzz` for the input format. Open must return Ok or Err, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files = skab_fuzz::files(data);
    let _ = skab_engine::fuzzing::open_store(&files);
});
