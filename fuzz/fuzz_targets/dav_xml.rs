//! Fuzzes the request body parsers: PROPFIND, PROPPATCH and LOCK (lockinfo) XML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skab_server::dav::xml::{parse_lockinfo, parse_propfind, parse_proppatch};

fuzz_target!(|data: &[u8]| {
    let _ = parse_propfind(data);
    let _ = parse_proppatch(data);
    let _ = parse_lockinfo(data);
});
