//! Fuzzes snapshot decoding: rkyv validation of a shard snapshot archive and the rebuild of
//! every space tree in it, and the namespace snapshot decoder on the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skab_engine::fuzzing;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::shard_snapshot(data);
    let _ = fuzzing::space_snapshot(data);
});
