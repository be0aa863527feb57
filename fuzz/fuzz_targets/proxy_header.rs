//! Fuzzes what a peer sends before HTTP behind a load balancer: the PROXY protocol v1/v2
//! header (sniffing and parsing), and forwarding headers (`X-Forwarded-For`, `Forwarded`)
//! and `http.trusted_proxies` entries. Nothing may panic; a parsed header never claims more
//! bytes than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skab_server::http::proxy::{
    client_from_forwarded, parse_proxy_header, public_authority, sniff, Cidr, TrustedProxies,
};

fuzz_target!(|data: &[u8]| {
    let _ = sniff(data);
    if let Ok(h) = parse_proxy_header(data) {
        assert!(h.len <= data.len());
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let trusted = TrustedProxies::parse(&["10.0.0.0/8", "::1", "127.0.0.1"]).unwrap();
    // Two header lines, split at a character boundary near the middle.
    let mid = (0..=s.len() / 2)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    let (a, b) = s.split_at(mid);
    for rfc7239 in [false, true] {
        let _ = client_from_forwarded([a, b], rfc7239, |ip| trusted.contains(ip));
    }
    let _ = Cidr::parse(s);
    let _ = public_authority(s);
});
