//! Fuzzes the WAL record payload decoder (postcard) and replays a decoded space change on
//! an empty tree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = skab_engine::fuzzing::wal_record(data);
});
