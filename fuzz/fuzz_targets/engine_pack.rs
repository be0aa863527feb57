//! Fuzzes the fixed-layout on-disk headers: pack header, chunk record header, the chunk
//! index checkpoint and `store.meta`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skab_engine::fuzzing;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::pack_headers(data);
    let _ = fuzzing::chunk_checkpoint(data);
    let _ = fuzzing::store_meta(data);
});
