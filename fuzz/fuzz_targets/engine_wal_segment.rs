//! Fuzzes the WAL segment decoder (header, framed records, torn-tail detection) and the
//! record payload decoder on every record it yields.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = skab_engine::fuzzing::wal_segment(data);
});
