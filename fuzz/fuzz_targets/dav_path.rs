//! Fuzzes request-target parsing, percent-decoding, Destination / Simple-ref parsing and the
//! href round trip (an href the server writes must parse back to the same path).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skab_server::dav::path::{
    decode_segment, href, parse_destination, parse_target, parse_uri_ref, HostCheck, SpaceKey,
};
use skab_server::limits::DAV_TARGET_LEN_MAX;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = decode_segment(s);
    if let Ok(p) = parse_target(s) {
        for collection in [false, true] {
            let h = href(&p.space, &p.path, collection);
            if h.len() <= DAV_TARGET_LEN_MAX {
                let q = parse_target(&h).expect("an href the server writes parses");
                assert_eq!(q.space, p.space, "href {h:?}");
                assert_eq!(q.path, p.path, "href {h:?}");
            }
        }
    }
    let space = SpaceKey {
        tenant: "skole1".into(),
        user: "anna".into(),
    };
    let _ = parse_uri_ref(s, HostCheck::Require("dav.example.dk:443"), None);
    let _ = parse_uri_ref(s, HostCheck::Ignore, None);
    let _ = parse_destination(s, &space, HostCheck::Require("dav.example.dk"));
    let _ = parse_destination(s, &space, HostCheck::Ignore);
});
