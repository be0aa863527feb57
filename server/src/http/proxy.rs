//! Behind proxies: which peers are trusted (`http.trusted_proxies`), the client address a
//! trusted proxy reports in `Forwarded` / `X-Forwarded-For`, and the PROXY protocol (v1 text,
//! v2 binary) header a trusted load balancer sends at the start of a connection.
//!
//! The parsing is pure (`parse_proxy_header`, `client_from_forwarded`, `Cidr::parse`); the
//! only I/O is [`read_proxy_header`], which peeks at a fresh connection and consumes exactly
//! the PROXY header, so that either HTTP implementation reads the rest untouched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hyper::HeaderMap;
use tokio::net::TcpStream;

use crate::limits::{
    FORWARDED_HOPS_MAX, PROXY_HEADER_LEN_MAX, PROXY_HEADER_RETRY_MS, PROXY_V1_LEN_MAX,
    TRUSTED_PROXIES_MAX,
};

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address (`127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/BITS`; the address is cut down to its prefix.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{s:?}: prefix length must be 0..={max}")),
            },
        };
        Ok(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` is inside the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d` (a dual-stack listener reports IPv4 peers so).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The configured trusted proxies; empty trusts nobody (headers and PROXY are ignored).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
    /// The client is named in `Forwarded` (else in `X-Forwarded-For`).
    rfc7239: bool,
}

impl TrustedProxies {
    /// From `http.trusted_proxies`; at most `TRUSTED_PROXIES_MAX` entries.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<TrustedProxies, String> {
        if list.len() > TRUSTED_PROXIES_MAX {
            return Err(format!(
                "http.trusted_proxies: at most {TRUSTED_PROXIES_MAX} entries"
            ));
        }
        let blocks = list
            .iter()
            .map(|s| Cidr::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("http.trusted_proxies: {e}"))?;
        Ok(TrustedProxies {
            blocks,
            rfc7239: false,
        })
    }

    /// Reads the client from RFC 7239 `Forwarded` instead of `X-Forwarded-For`. Only one of
    /// the two is looked at: a proxy that manages one passes the other on as the client sent it.
    pub fn with_forwarded(mut self, rfc7239: bool) -> TrustedProxies {
        self.rfc7239 = rfc7239;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// The client address of a request that arrived from `peer` (the TCP peer, or what a
    /// trusted PROXY header named): the right-most address of the configured header
    /// (`X-Forwarded-For` or `Forwarded`) that is not a trusted proxy, when `peer` is trusted;
    /// `peer` otherwise.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if self.blocks.is_empty() || !self.contains(peer.ip()) {
            return peer;
        }
        let rfc7239 = self.rfc7239;
        let name = if rfc7239 {
            hyper::header::FORWARDED
        } else {
            hyper::header::HeaderName::from_static("x-forwarded-for")
        };
        let hops = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
        match client_from_forwarded(hops, rfc7239, |ip| self.contains(ip)) {
            Some(ip) => SocketAddr::new(ip, 0),
            None => peer,
        }
    }
}

/// One element's address: `Forwarded`'s `for=` (quoted, `[v6]:port`, `v4:port`) when
/// `rfc7239`, else an `X-Forwarded-For` item (an address, possibly `[v6]:port`/`v4:port`).
/// `None` for `unknown`, obfuscated names and anything else.
pub fn hop_address(element: &str, rfc7239: bool) -> Option<IpAddr> {
    let raw = if rfc7239 {
        // `for=...;proto=https;by=...`
        element.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
        })?
    } else {
        element.trim()
    };
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = raw.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return v6.parse::<Ipv6Addr>().ok().map(|a| canonical(a.into()));
    }
    raw.parse::<std::net::SocketAddrV4>()
        .ok()
        .map(|s| IpAddr::V4(*s.ip()))
}

/// Walks the hops of the forwarding headers (`values`, each a comma-separated list, in
/// header order; no allocation) from the right: the first address that is not `trusted` is the client.
/// When the walk meets something that is no address (`unknown`, a typo) or goes past
/// `FORWARDED_HOPS_MAX`, the last trusted hop passed is the answer (the proxy that vouches for
/// the unparsable rest); `None` when that is no hop at all (the peer itself is the answer).
pub fn client_from_forwarded<'a, I>(
    values: I,
    rfc7239: bool,
    trusted: impl Fn(IpAddr) -> bool,
) -> Option<IpAddr>
where
    I: IntoIterator<Item = &'a str>,
    I::IntoIter: DoubleEndedIterator,
{
    let mut last_trusted = None;
    let hops = values.into_iter().rev().flat_map(|v| v.rsplit(','));
    for (i, element) in hops.enumerate() {
        if i >= FORWARDED_HOPS_MAX {
            break;
        }
        if element.trim().is_empty() {
            continue;
        }
        match hop_address(element, rfc7239) {
            Some(ip) if trusted(ip) => last_trusted = Some(ip),
            Some(ip) => return Some(ip),
            None => break,
        }
    }
    last_trusted
}

/// The authority (`host[:port]`, default port dropped) of `http.public_url`, for matching
/// Destination and `If` URIs; only `http` and `https` URLs with a host and no user part.
pub fn public_authority(url: &str) -> Result<String, String> {
    let bad = || format!("http.public_url {url:?} must look like https://skab.example.dk");
    let (scheme, rest) = url.trim().split_once("://").ok_or_else(bad)?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else if scheme.eq_ignore_ascii_case("http") {
        ":80"
    } else {
        return Err(bad());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty()
        || authority.contains('@')
        || authority.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Err(bad());
    }
    Ok(authority
        .strip_suffix(default_port)
        .unwrap_or(authority)
        .to_ascii_lowercase())
}

// ---- PROXY protocol ----

/// The v2 signature (12 bytes).
pub const PROXY_V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const PROXY_V1_PREFIX: &[u8] = b"PROXY ";

/// What the first bytes of a connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// Not a PROXY header (HTTP, TLS).
    No,
    /// A PROXY header (v1 or v2) starts here.
    Yes,
    /// Too few bytes to tell.
    NeedMore,
}

/// Classifies a connection's first bytes.
pub fn sniff(buf: &[u8]) -> Sniff {
    for sig in [PROXY_V1_PREFIX, &PROXY_V2_SIGNATURE[..]] {
        let n = buf.len().min(sig.len());
        if buf[..n] == sig[..n] {
            return if n == sig.len() {
                Sniff::Yes
            } else {
                Sniff::NeedMore
            };
        }
    }
    Sniff::No
}

/// A parsed PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Its length in bytes (what to consume before HTTP).
    pub len: usize,
    /// The original client; `None` for `UNKNOWN` / `LOCAL` (health checks of the balancer:
    /// the connection's own peer stays the address).
    pub source: Option<SocketAddr>,
}

/// Why a PROXY header is refused (the connection is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the PROXY header is incomplete")]
    Incomplete,
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
}

/// Parses a PROXY protocol v1 or v2 header at the start of `buf`.
/// `Err(Incomplete)` when more bytes are needed (and may still come).
pub fn parse_proxy_header(buf: &[u8]) -> Result<ProxyHeader, ProxyError> {
    match sniff(buf) {
        Sniff::NeedMore => Err(ProxyError::Incomplete),
        Sniff::No => Err(ProxyError::Malformed("no PROXY signature")),
        Sniff::Yes if buf.starts_with(PROXY_V1_PREFIX) => parse_v1(buf),
        Sniff::Yes => parse_v2(buf),
    }
}

fn parse_v1(buf: &[u8]) -> Result<ProxyHeader, ProxyError> {
    let window = &buf[..buf.len().min(PROXY_V1_LEN_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= PROXY_V1_LEN_MAX {
            Err(ProxyError::Malformed("v1 line too long"))
        } else {
            Err(ProxyError::Incomplete)
        };
    };
    let len = end + 2;
    let line =
        std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError::Malformed("v1 not ASCII"))?;
    let mut f = line.split(' ');
    let _proxy = f.next();
    let proto = f.next().ok_or(ProxyError::Malformed("v1 protocol"))?;
    if proto == "UNKNOWN" {
        // The rest of the line is to be ignored (specification, 2.1).
        return Ok(ProxyHeader { len, source: None });
    }
    let fields: Vec<&str> = f.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::Malformed("v1 needs 4 fields"));
    };
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            src.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError::Malformed("v1 source"))?
                .into(),
            dst.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError::Malformed("v1 destination"))?
                .into(),
        ),
        "TCP6" => (
            src.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError::Malformed("v1 source"))?
                .into(),
            dst.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError::Malformed("v1 destination"))?
                .into(),
        ),
        _ => return Err(ProxyError::Malformed("v1 protocol")),
    };
    let _ = dst;
    let port = |p: &str| -> Result<u16, ProxyError> {
        // Decimal without leading zeros or signs (u16's parser takes `+1`).
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProxyError::Malformed("v1 port"));
        }
        if p.len() > 1 && p.starts_with('0') {
            return Err(ProxyError::Malformed("v1 port"));
        }
        p.parse().map_err(|_| ProxyError::Malformed("v1 port"))
    };
    let sport = port(sport)?;
    port(dport)?;
    Ok(ProxyHeader {
        len,
        source: Some(SocketAddr::new(canonical(src), sport)),
    })
}

fn parse_v2(buf: &[u8]) -> Result<ProxyHeader, ProxyError> {
    if buf.len() < 16 {
        return Err(ProxyError::Incomplete);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version"));
    }
    let fam = buf[13];
    let body_len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body_len;
    if len > PROXY_HEADER_LEN_MAX {
        return Err(ProxyError::Malformed("v2 header too long"));
    }
    if buf.len() < len {
        return Err(ProxyError::Incomplete);
    }
    let body = &buf[16..len];
    match ver_cmd & 0x0f {
        // LOCAL: the balancer's own connection (health check); addresses are ignored.
        0 => return Ok(ProxyHeader { len, source: None }),
        1 => {}
        _ => return Err(ProxyError::Malformed("v2 command")),
    }
    let source = match fam {
        // UNSPEC: addresses unknown.
        0x00 => None,
        // TCP or UDP over IPv4.
        0x11 | 0x12 => {
            if body.len() < 12 {
                return Err(ProxyError::Malformed("v2 IPv4 addresses"));
            }
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        // TCP or UDP over IPv6.
        0x21 | 0x22 => {
            if body.len() < 36 {
                return Err(ProxyError::Malformed("v2 IPv6 addresses"));
            }
            let mut a = [0u8; 16];
            a.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Some(SocketAddr::new(canonical(Ipv6Addr::from(a).into()), port))
        }
        // UNIX sockets: no IP address to speak of.
        0x31 | 0x32 => None,
        _ => return Err(ProxyError::Malformed("v2 address family")),
    };
    Ok(ProxyHeader { len, source })
}

/// Why a connection is closed before HTTP.
#[derive(Debug, thiserror::Error)]
pub enum PrefaceError {
    #[error("a PROXY header from an untrusted peer")]
    Untrusted,
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("the PROXY header did not arrive in time")]
    TimedOut,
    #[error("connection closed during the PROXY header")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Looks at the start of a fresh connection from `peer`. From a trusted peer, a PROXY header
/// (v1 or v2) is consumed and its source returned (`Ok(None)` when there is none, or it names
/// no address); from anyone else, a PROXY header closes the connection (`Untrusted`).
/// Waits at most `timeout`; reads nothing past the header.
pub async fn read_proxy_header(
    tcp: &mut TcpStream,
    peer: SocketAddr,
    trusted: &TrustedProxies,
    timeout: Duration,
) -> Result<Option<SocketAddr>, PrefaceError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; PROXY_HEADER_LEN_MAX];
    let mut seen = 0;
    loop {
        let n = match tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await {
            Ok(Ok(0)) => return Err(PrefaceError::Closed),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(PrefaceError::TimedOut),
        };
        let wait_more = match sniff(&buf[..n]) {
            Sniff::No => return Ok(None),
            Sniff::NeedMore => true,
            Sniff::Yes if !trusted.contains(peer.ip()) => return Err(PrefaceError::Untrusted),
            Sniff::Yes => match parse_proxy_header(&buf[..n]) {
                Ok(h) => {
                    use tokio::io::AsyncReadExt;
                    let mut sink = [0u8; PROXY_HEADER_LEN_MAX];
                    tokio::time::timeout_at(deadline, tcp.read_exact(&mut sink[..h.len]))
                        .await
                        .map_err(|_| PrefaceError::TimedOut)??;
                    return Ok(h.source);
                }
                Err(ProxyError::Incomplete) if n < buf.len() => true,
                Err(e) => return Err(e.into()),
            },
        };
        if wait_more {
            if n == seen {
                // Nothing new since the last look: peek would answer at once again.
                tokio::time::sleep(Duration::from_millis(PROXY_HEADER_RETRY_MS)).await;
                if tokio::time::Instant::now() >= deadline {
                    return Err(PrefaceError::TimedOut);
                }
            }
            seen = n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.1.0.1")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/-1",
            "10.0.0.0/",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=TRUSTED_PROXIES_MAX)
            .map(|_| "10.0.0.1".into())
            .collect();
        assert!(TrustedProxies::parse(&many).is_err());
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).unwrap();
        let tr = |i| t.contains(i);
        // nginx appends its peer: a client's spoofed entry stays left of the real one.
        assert_eq!(
            client_from_forwarded(["6.6.6.6, 198.51.100.7"], false, tr),
            Some(ip("198.51.100.7"))
        );
        // Trusted hops on the right are skipped.
        assert_eq!(
            client_from_forwarded(["198.51.100.7, 10.0.0.2", "10.0.0.3"], false, tr),
            Some(ip("198.51.100.7"))
        );
        // All trusted: the left-most trusted one.
        assert_eq!(
            client_from_forwarded(["10.0.0.9,10.0.0.2"], false, tr),
            Some(ip("10.0.0.9"))
        );
        // An unparsable hop stops the walk at the proxy that passed it on.
        assert_eq!(
            client_from_forwarded(["198.51.100.7, unknown, 10.0.0.2"], false, tr),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(client_from_forwarded(["garbage"], false, tr), None);
        assert_eq!(client_from_forwarded([] as [&str; 0], false, tr), None);
        // Ports and brackets.
        assert_eq!(
            client_from_forwarded(["198.51.100.7:5000"], false, tr),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_from_forwarded(["[2001:db8::7]:443"], false, tr),
            Some(ip("2001:db8::7"))
        );
        // RFC 7239.
        assert_eq!(
            client_from_forwarded(
                [
                    "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https",
                    "for=10.0.0.2;by=x"
                ],
                true,
                tr
            ),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            client_from_forwarded(["proto=https;for=_hidden"], true, tr),
            None
        );
        // Deeper than FORWARDED_HOPS_MAX: stops at the last trusted hop seen.
        let deep = format!(
            "198.51.100.7{}",
            ", 10.0.0.1".repeat(FORWARDED_HOPS_MAX + 3)
        );
        assert_eq!(
            client_from_forwarded([deep.as_str()], false, tr),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn public_urls() {
        assert_eq!(
            public_authority("https://Skab.Example.dk").unwrap(),
            "skab.example.dk"
        );
        assert_eq!(public_authority("https://h:443/x").unwrap(), "h");
        assert_eq!(public_authority("http://h:8443").unwrap(), "h:8443");
        assert_eq!(public_authority("http://[::1]:80/").unwrap(), "[::1]");
        for bad in ["h", "ftp://h", "https://", "https://u@h", "https://a b"] {
            assert!(public_authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_count_only_from_trusted_peers() {
        let t = TrustedProxies::parse(&["127.0.0.1"]).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
        let proxy: SocketAddr = "127.0.0.1:999".parse().unwrap();
        let stranger: SocketAddr = "127.0.0.2:999".parse().unwrap();
        assert_eq!(t.client(proxy, &h).ip(), ip("203.0.113.5"));
        assert_eq!(t.client(stranger, &h), stranger);
        assert_eq!(TrustedProxies::default().client(proxy, &h), proxy);
        // Only the configured header counts: a client's own `Forwarded` that nginx passes on
        // is not believed.
        h.insert(hyper::header::FORWARDED, "for=192.0.2.44".parse().unwrap());
        assert_eq!(t.client(proxy, &h).ip(), ip("203.0.113.5"));
        let f = t.clone().with_forwarded(true);
        assert_eq!(f.client(proxy, &h).ip(), ip("192.0.2.44"));
        // No header at all: the peer.
        assert_eq!(t.client(proxy, &HeaderMap::new()), proxy);
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut v = PROXY_V2_SIGNATURE.to_vec();
        v.push(0x20 | cmd);
        v.push(fam);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn proxy_v1_headers() {
        let h = b"PROXY TCP4 198.51.100.22 203.0.113.7 35646 80\r\nGET / HTTP/1.1\r\n";
        let p = parse_proxy_header(h).unwrap();
        assert_eq!(p.len, 47);
        assert_eq!(p.source, Some("198.51.100.22:35646".parse().unwrap()));
        let p = parse_proxy_header(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n").unwrap();
        assert_eq!(p.source, Some("[2001:db8::1]:1".parse().unwrap()));
        let p = parse_proxy_header(b"PROXY UNKNOWN ffff::1 whatever\r\n").unwrap();
        assert_eq!(p.source, None);
        assert_eq!(p.len, 32);
        for partial in [&b"PROX"[..], b"PROXY TCP4 1.2.3.4", b"\r\n\r\n\0"] {
            assert_eq!(parse_proxy_header(partial), Err(ProxyError::Incomplete));
        }
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..],
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY\r\n",
            b"GET / HTTP/1.1\r\n",
        ] {
            assert!(
                matches!(parse_proxy_header(bad), Err(ProxyError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert!(matches!(
            parse_proxy_header(&long),
            Err(ProxyError::Malformed(_))
        ));
    }

    #[test]
    fn proxy_v2_headers() {
        let mut body = vec![198, 51, 100, 22, 203, 0, 113, 7];
        body.extend_from_slice(&35646u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(&[0x03, 0, 4, 1, 2, 3, 4]); // a TLV (CRC32C), ignored
        let h = v2(1, 0x11, &body);
        let p = parse_proxy_header(&[h.as_slice(), b"GET /"].concat()).unwrap();
        assert_eq!(p.len, h.len());
        assert_eq!(p.source, Some("198.51.100.22:35646".parse().unwrap()));
        let mut body6 = vec![0u8; 36];
        body6[0] = 0x20;
        body6[1] = 0x01;
        body6[15] = 9;
        body6[32..34].copy_from_slice(&7u16.to_be_bytes());
        let p = parse_proxy_header(&v2(1, 0x21, &body6)).unwrap();
        assert_eq!(p.source, Some("[2001::9]:7".parse().unwrap()));
        // LOCAL and UNSPEC carry no client.
        assert_eq!(
            parse_proxy_header(&v2(0, 0x11, &body)).unwrap().source,
            None
        );
        assert_eq!(parse_proxy_header(&v2(1, 0x00, &[])).unwrap().source, None);
        // Incomplete, then malformed.
        assert_eq!(
            parse_proxy_header(&h[..h.len() - 1]),
            Err(ProxyError::Incomplete)
        );
        let mut badver = h.clone();
        badver[12] = 0x11;
        assert!(parse_proxy_header(&badver).is_err());
        assert!(parse_proxy_header(&v2(2, 0x11, &body)).is_err(), "command");
        assert!(
            parse_proxy_header(&v2(1, 0x11, &body[..11])).is_err(),
            "short"
        );
        assert!(parse_proxy_header(&v2(1, 0x21, &body)).is_err(), "short v6");
        assert!(parse_proxy_header(&v2(1, 0x41, &body)).is_err(), "family");
        let huge = v2(1, 0x11, &vec![0u8; PROXY_HEADER_LEN_MAX]);
        assert!(matches!(
            parse_proxy_header(&huge),
            Err(ProxyError::Malformed(_))
        ));
    }

    #[test]
    fn sniffing_tells_http_from_proxy() {
        assert_eq!(sniff(b"PUT /dav"), Sniff::No);
        assert_eq!(sniff(b"PROPFIND /"), Sniff::No);
        assert_eq!(sniff(b"PRO"), Sniff::NeedMore);
        assert_eq!(sniff(b"P"), Sniff::NeedMore);
        assert_eq!(sniff(b"PROXY "), Sniff::Yes);
        assert_eq!(sniff(b"\r\n\r\n"), Sniff::NeedMore);
        assert_eq!(sniff(&PROXY_V2_SIGNATURE), Sniff::Yes);
        assert_eq!(sniff(b"\x16\x03\x01"), Sniff::No, "TLS");
        assert_eq!(sniff(b""), Sniff::NeedMore);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn hostile_proxy_headers_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            v2_prefix in any::<bool>(),
            v1_prefix in any::<bool>(),
        ) {
            let mut b = Vec::new();
            if v2_prefix {
                b.extend_from_slice(&PROXY_V2_SIGNATURE);
            } else if v1_prefix {
                b.extend_from_slice(b"PROXY ");
            }
            b.extend_from_slice(&bytes);
            if let Ok(h) = parse_proxy_header(&b) {
                prop_assert!(h.len <= b.len());
                prop_assert!(h.len <= PROXY_HEADER_LEN_MAX);
            }
            let _ = sniff(&b);
        }

        #[test]
        fn hostile_forwarded_headers_never_panic(
            a in "[ -~]{0,200}",
            b in "[0-9a-f:.,\\[\\]\" ;=forFOR_]{0,200}",
            rfc in any::<bool>(),
        ) {
            let t = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).unwrap();
            let _ = client_from_forwarded([a.as_str(), b.as_str()], rfc, |i| t.contains(i));
            // A hostile left part never hides a real hop appended on the right.
            let appended = format!("{b}, 198.51.100.7");
            prop_assert_eq!(
                client_from_forwarded([a.as_str(), appended.as_str()], false, |i| t.contains(i)),
                Some("198.51.100.7".parse().unwrap())
            );
            let _ = Cidr::parse(&a);
        }
    }
}
