//! Fuzzes name and path validation (`Name::new`, `parse_path`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let (name_ok, path_ok) = skab_engine::fuzzing::names(s);
        // A valid name without '/' is a valid one-segment path.
        if name_ok && !s.contains('/') {
            assert!(path_ok, "{s:?}");
        }
    }
});
