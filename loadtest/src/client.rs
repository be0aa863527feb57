//! The HTTP side: a capped keep-alive connection pool (hyper-util) over counted connections,
//! plain or TLS (with session resumption from a shared ticket pool), connection churn (a
//! share of requests on a new connection), optional loopback source-address spreading, the
//! loopback-only target check, auth headers. Several targets (the nodes of a cluster behind a
//! load balancer without affinity): each `pick` (a session) sticks to target `pick % n`, and
//! every target keeps its own HTTP-level counts and latency histogram.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::ConnCfg;
use crate::limits::{REQUEST_TIMEOUT_S, TLS_HANDSHAKE_TIMEOUT_S, TLS_TICKETS_MAX};

/// Connections opened and open now (peak kept); TLS handshakes by kind.
#[derive(Default)]
pub struct ConnStats {
    pub opened: AtomicU64,
    pub open: AtomicU64,
    pub peak_open: AtomicU64,
    /// TLS handshakes that did the key exchange and certificate check.
    pub tls_full: AtomicU64,
    /// TLS handshakes that resumed an earlier session from a ticket.
    pub tls_resumed: AtomicU64,
    /// TLS handshakes that failed (counted as connect errors of their requests).
    pub tls_failed: AtomicU64,
}

/// A connection's byte stream: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection that keeps `ConnStats::open` right while it lives.
pub struct Counted {
    io: TokioIo<Stream>,
    stats: Arc<ConnStats>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection for Counted {
    fn connected(&self) -> Connected {
        // HTTP/1.1 only (the only ALPN protocol offered), never through a proxy.
        Connected::new()
    }
}

impl hyper::rt::Read for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// `HttpConnector` whose connections are counted, with TLS on top for `https://` targets.
#[derive(Clone)]
pub struct CountingConnector {
    inner: HttpConnector,
    stats: Arc<ConnStats>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for CountingConnector {
    type Response = Counted;
    type Error = BoxErr;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Counted, BoxErr>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxErr>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let fut = self.inner.call(uri);
        let stats = self.stats.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = fut.await?.into_inner();
            let stream = match tls {
                None => Stream::Plain(tcp),
                Some((connector, name)) => {
                    let handshake = connector.connect(name, tcp);
                    let limit = Duration::from_secs(TLS_HANDSHAKE_TIMEOUT_S);
                    let tls = match tokio::time::timeout(limit, handshake).await {
                        Ok(Ok(t)) => t,
                        Ok(Err(e)) => {
                            stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                            return Err(e.into());
                        }
                        Err(elapsed) => {
                            stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                            return Err(elapsed.into());
                        }
                    };
                    let kind = tls.get_ref().1.handshake_kind();
                    if kind == Some(rustls::HandshakeKind::Resumed) {
                        stats.tls_resumed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.tls_full.fetch_add(1, Ordering::Relaxed);
                    }
                    Stream::Tls(Box::new(tls))
                }
            };
            stats.opened.fetch_add(1, Ordering::Relaxed);
            let now = stats.open.fetch_add(1, Ordering::Relaxed) + 1;
            stats.peak_open.fetch_max(now, Ordering::Relaxed);
            Ok(Counted {
                io: TokioIo::new(stream),
                stats,
            })
        })
    }
}

/// Why a request failed before it had a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Timeout,
    Io,
}

impl Failure {
    pub fn kind(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Io => "io",
        }
    }
}

/// A finished response: status, body length and (if asked) the body's BLAKE3; with
/// `Http::send_keep` also the body itself and the `ETag` header.
pub struct Resp {
    pub status: u16,
    pub len: u64,
    pub hash: Option<blake3::Hash>,
    /// The body (only from `send_keep`; empty otherwise).
    pub body: Bytes,
    /// The `ETag` response header (only from `send_keep`).
    pub etag: Option<HeaderValue>,
    /// The `Skab-Receipt` response header of an upload into a skab hand-in.
    pub receipt: Option<HeaderValue>,
    /// The `Retry-After` response header in seconds (a 503 or 429 that asks to come back).
    pub retry_after_s: Option<u64>,
}

/// The clients of one source address: a keep-alive pool, and two without idle connections
/// for requests that churn (a new connection each), resuming a TLS session or not.
struct Clients {
    pooled: Client<CountingConnector, Full<Bytes>>,
    churn_resumed: Client<CountingConnector, Full<Bytes>>,
    churn_full: Client<CountingConnector, Full<Bytes>>,
}

/// Evenly spread yes/no choices: of every `n` draws, `share x n` (rounded) are yes, in a
/// fixed pattern (no randomness: runs compare exactly).
#[derive(Default)]
struct Spread {
    draws: AtomicU64,
}

impl Spread {
    fn next(&self, share: f64) -> bool {
        let n = self.draws.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * share).floor() > (n * share).floor()
    }
}

/// What one target answered, at the HTTP level (any status is an answer; what a scenario
/// expected is judged in its ops): requests, answers by class, failures without a status,
/// and each request's latency from send to the end of its body.
pub struct TargetStats {
    pub requests: AtomicU64,
    /// Answers below 400.
    pub ok: AtomicU64,
    pub status_4xx: AtomicU64,
    pub status_5xx: AtomicU64,
    /// Connect errors, timeouts, broken connections.
    pub failures: AtomicU64,
    /// Redirects (307/308) followed from requests sent to this target.
    pub redirects: AtomicU64,
    pub latency: parking_lot::Mutex<hdrhistogram::Histogram<u64>>,
}

impl TargetStats {
    fn new() -> TargetStats {
        TargetStats {
            requests: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            status_4xx: AtomicU64::new(0),
            status_5xx: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            redirects: AtomicU64::new(0),
            latency: parking_lot::Mutex::new(crate::record::hist(crate::limits::HIST_SIGFIGS)),
        }
    }

    fn count(&self, got: &Result<Resp, Failure>, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let slot = match got {
            Ok(r) if r.status < 400 => &self.ok,
            Ok(r) if r.status < 500 => &self.status_4xx,
            Ok(_) => &self.status_5xx,
            Err(_) => &self.failures,
        };
        slot.fetch_add(1, Ordering::Relaxed);
        let us = (took.as_micros() as u64).clamp(1, crate::limits::HIST_MAX_US);
        let _ = self.latency.lock().record(us);
    }
}

/// One target server: its base URL, host:port, and its clients per source address.
pub struct Target {
    pub url: String,
    pub authority: String,
    clients: Vec<Clients>,
    pub stats: TargetStats,
}

/// The targets of a run from `--target` values: each may be a comma-separated list; spaces
/// around the commas are ignored. At least one, at most `TARGETS_MAX`, no duplicates, all
/// `http://` or all `https://`, each with a host.
pub fn parse_targets(values: &[String]) -> Result<Vec<Uri>> {
    let mut out: Vec<Uri> = Vec::new();
    for v in values {
        for part in v.split(',') {
            let part = part.trim().trim_end_matches('/');
            if part.is_empty() {
                bail!("--target {v:?} holds an empty URL");
            }
            let uri: Uri = part
                .parse()
                .with_context(|| format!("target {part:?} is not a URL"))?;
            match uri.scheme_str() {
                Some("http" | "https") => {}
                Some(other) => {
                    bail!("target scheme {other}:// is not supported: http:// or https://")
                }
                None => bail!("target {part:?} needs a scheme: http:// or https://"),
            }
            if uri.host().is_none_or(str::is_empty) {
                bail!("target {part:?} needs a host");
            }
            if out.iter().any(|o| o.authority() == uri.authority()) {
                bail!("target {part:?} is given twice");
            }
            if let Some(first) = out.first() {
                if first.scheme_str() != uri.scheme_str() {
                    bail!("targets mix http:// and https://: give all of one scheme");
                }
            }
            out.push(uri);
        }
    }
    if out.is_empty() {
        bail!("no --target given");
    }
    if out.len() > crate::limits::TARGETS_MAX {
        bail!("at most {} targets", crate::limits::TARGETS_MAX);
    }
    Ok(out)
}

/// The shared client: per target, clients per source address, all under one cap on open
/// connections.
pub struct Http {
    pub targets: Vec<Target>,
    cap: Arc<Semaphore>,
    scheme: String,
    pub stats: Arc<ConnStats>,
    /// Share of requests sent on a new connection (`connections.churn`).
    churn: f64,
    /// Share of those new connections that offer TLS session resumption.
    resumption: f64,
    churn_spread: Spread,
    resumption_spread: Spread,
    follow_redirects: bool,
}

/// A TLS session store shared by every connection of the run: like one client device per
/// session keeping the tickets its last connection got (each is used once, as rustls does),
/// pooled so that any new connection can resume while a ticket is left. Kx hints and TLS 1.2
/// sessions go to rustls's own store.
#[derive(Debug)]
struct TicketPool {
    tickets: parking_lot::Mutex<
        VecDeque<(ServerName<'static>, rustls::client::Tls13ClientSessionValue)>,
    >,
    rest: ClientSessionMemoryCache,
}

impl ClientSessionStore for TicketPool {
    fn set_kx_hint(&self, name: ServerName<'static>, group: rustls::NamedGroup) {
        self.rest.set_kx_hint(name, group)
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.rest.kx_hint(name)
    }
    fn set_tls12_session(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.rest.set_tls12_session(name, value)
    }
    fn tls12_session(
        &self,
        name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.rest.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.rest.remove_tls12_session(name)
    }
    fn insert_tls13_ticket(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        let mut t = self.tickets.lock();
        if t.len() >= TLS_TICKETS_MAX {
            t.pop_front();
        }
        t.push_back((name, value));
    }
    fn take_tls13_ticket(
        &self,
        name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        let mut t = self.tickets.lock();
        // The newest ticket for this server (one target per run: the first one looked at).
        let i = t.iter().rposition(|(n, _)| n == name)?;
        t.remove(i).map(|(_, v)| v)
    }
}

/// The TLS client configurations of an `https://` target: resuming (from one shared ticket
/// pool) and never resuming; both trust only the roots of `ca_cert` (or the system's).
fn tls_configs(
    ca_cert: Option<&Path>,
) -> Result<(Arc<rustls::ClientConfig>, Arc<rustls::ClientConfig>)> {
    let file = ca_cert.unwrap_or(Path::new(crate::limits::SYSTEM_CA_FILE));
    let pem = std::fs::read(file).with_context(|| {
        format!(
            "read CA certificates {} (an https:// target needs --ca-cert FILE, or the system's CA file)",
            file.display()
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.with_context(|| format!("parse {}", file.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("a certificate of {} is unusable", file.display()))?;
    }
    if roots.is_empty() {
        bail!("no CA certificate in {}", file.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let build = |resumption: Resumption| -> Result<Arc<rustls::ClientConfig>> {
        let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        c.resumption = resumption;
        Ok(Arc::new(c))
    };
    let pool = Arc::new(TicketPool {
        tickets: parking_lot::Mutex::new(VecDeque::new()),
        rest: ClientSessionMemoryCache::new(crate::limits::TLS_TLS12_SESSIONS_MAX),
    });
    Ok((
        build(Resumption::store(pool))?,
        build(Resumption::disabled())?,
    ))
}

impl Http {
    /// `bases` are the target URLs (`http://127.0.0.1:8080` or `https://...`, all of one
    /// scheme, as `parse_targets` returns them); their paths are ignored.
    pub fn new(bases: &[Uri], conns: &ConnCfg) -> Result<Http> {
        let (max_conns, source_addrs) = (conns.max, conns.source_addrs);
        let first = bases.first().context("no target")?;
        let scheme = first.scheme_str().unwrap_or("http").to_string();
        let tls = match scheme.as_str() {
            "http" => None,
            "https" => Some(tls_configs(conns.ca_cert.as_deref())?),
            other => bail!("target scheme {other}:// is not supported: http:// or https://"),
        };
        let stats = Arc::new(ConnStats::default());
        let mut targets = Vec::new();
        for base in bases {
            if base.scheme_str().unwrap_or("http") != scheme {
                bail!("targets mix http:// and https://: give all of one scheme");
            }
            let authority = base
                .authority()
                .context("target URL needs a host")?
                .to_string();
            let tls = match &tls {
                None => None,
                Some(configs) => {
                    let host = base
                        .host()
                        .context("target URL needs a host")?
                        .trim_start_matches('[')
                        .trim_end_matches(']');
                    let name = ServerName::try_from(host.to_string())
                        .with_context(|| format!("{host} is not a TLS server name"))?;
                    Some((configs.clone(), name))
                }
            };
            let mut clients = Vec::new();
            for i in 0..source_addrs.max(1) {
                let mut c = HttpConnector::new();
                c.set_nodelay(true);
                c.set_keepalive(Some(Duration::from_secs(60)));
                c.set_connect_timeout(Some(Duration::from_secs(30)));
                // TLS is done by the counting connector over this plain TCP connection.
                c.enforce_http(false);
                if source_addrs > 1 {
                    let last = u8::try_from(i + 1).context("too many source addresses")?;
                    c.set_local_address(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))));
                }
                let connector = |resume: bool| CountingConnector {
                    inner: c.clone(),
                    stats: stats.clone(),
                    tls: tls.as_ref().map(|((resuming, full), name)| {
                        let config = if resume { resuming } else { full };
                        (TlsConnector::from(config.clone()), name.clone())
                    }),
                };
                let per = max_conns.div_ceil(source_addrs.max(1));
                let pooled = Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(per)
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(connector(conns.resumption > 0.0));
                let once = |resume: bool| {
                    Client::builder(TokioExecutor::new())
                        .pool_max_idle_per_host(0)
                        .build(connector(resume))
                };
                clients.push(Clients {
                    pooled,
                    churn_resumed: once(true),
                    churn_full: once(false),
                });
            }
            targets.push(Target {
                url: format!("{scheme}://{authority}"),
                authority,
                clients,
                stats: TargetStats::new(),
            });
        }
        Ok(Http {
            targets,
            cap: Arc::new(Semaphore::new(max_conns)),
            scheme,
            stats,
            churn: conns.churn,
            resumption: conns.resumption,
            churn_spread: Spread::default(),
            resumption_spread: Spread::default(),
            follow_redirects: conns.follow_redirects,
        })
    }

    /// Where a `Location` of an answer to `from` points, when a redirect may go there: to a
    /// target's host:port or a loopback address, of the run's scheme.
    fn redirect_to(&self, from: &Uri, location: &str) -> Option<Uri> {
        let to: Uri = location.parse().ok()?;
        let to = if to.authority().is_none() {
            // A path: the same server.
            format!("{}://{}{}", self.scheme, from.authority()?, location)
                .parse()
                .ok()?
        } else {
            to
        };
        if to.scheme_str() != Some(self.scheme.as_str()) {
            return None;
        }
        let authority = to.authority()?.as_str();
        let host = to.host()?.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        (loopback || self.targets.iter().any(|t| t.authority == authority)).then_some(to)
    }

    /// The target that requests of `pick` go to: `pick % targets` (a session sticks to one).
    pub fn target_of(&self, pick: usize) -> usize {
        pick % self.targets.len().max(1)
    }

    /// A pick that goes to target `target` from the same source address as `pick`.
    pub fn pick_on(&self, pick: usize, target: usize) -> usize {
        let n = self.targets.len().max(1);
        (pick / n) * n + target % n
    }

    /// host:port of the target of `pick` (for `Destination` headers).
    pub fn authority(&self, pick: usize) -> &str {
        &self.targets[self.target_of(pick)].authority
    }

    /// The client for the next request of source address `pick`, and whether it is sent on
    /// a new connection (then with `Connection: close`: the server closes it, like a client
    /// whose connection is cut before its next request).
    fn choose(&self, pick: usize) -> (&Client<CountingConnector, Full<Bytes>>, bool) {
        let n = self.targets.len().max(1);
        let clients = &self.targets[pick % n].clients;
        let c = &clients[(pick / n) % clients.len()];
        if self.churn > 0.0 && self.churn_spread.next(self.churn) {
            if self.resumption_spread.next(self.resumption) {
                (&c.churn_resumed, true)
            } else {
                (&c.churn_full, true)
            }
        } else {
            (&c.pooled, false)
        }
    }

    /// Sends one request to target `pick % targets` on the pool of source address
    /// `(pick / targets) % source addresses` and reads the whole body
    /// (hashing it when `hash`). Waits for a free connection slot first.
    pub async fn send(
        &self,
        pick: usize,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        hash: bool,
    ) -> Result<Resp, Failure> {
        self.send_inner(pick, method, path, headers, body, hash, false)
            .await
    }

    /// Like `send`, but keeps the response body and its `ETag` header (multistatus answers
    /// that a sync client parses, uploads whose new ETag it remembers).
    pub async fn send_keep(
        &self,
        pick: usize,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Resp, Failure> {
        self.send_inner(pick, method, path, headers, body, false, true)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_inner(
        &self,
        pick: usize,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        hash: bool,
        keep: bool,
    ) -> Result<Resp, Failure> {
        let Ok(_permit) = self.cap.acquire().await else {
            return Err(Failure::Connect);
        };
        let target = &self.targets[self.target_of(pick)];
        let Ok(mut uri) = format!("{}://{}{}", self.scheme, target.authority, path).parse::<Uri>()
        else {
            return Err(Failure::Io);
        };
        let (client, fresh) = self.choose(pick);
        let work = async {
            let mut hops = 0;
            let resp = loop {
                let mut b = Request::builder().method(method.clone()).uri(uri.clone());
                for (k, v) in headers {
                    b = b.header(k, v);
                }
                if fresh {
                    b = b.header(http::header::CONNECTION, "close");
                }
                let req = b.body(Full::new(body.clone())).map_err(|_| Failure::Io)?;
                let resp = client.request(req).await.map_err(|e| {
                    if e.is_connect() {
                        Failure::Connect
                    } else {
                        Failure::Io
                    }
                })?;
                let next = (self.follow_redirects
                    && matches!(resp.status().as_u16(), 307 | 308)
                    && hops < crate::limits::REDIRECTS_MAX)
                    .then(|| resp.headers().get(http::header::LOCATION))
                    .flatten()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| self.redirect_to(&uri, l));
                let Some(next) = next else {
                    break resp;
                };
                // Read the redirect's body to the end so its connection can be used again.
                let _ = resp.into_body().collect().await;
                target.stats.redirects.fetch_add(1, Ordering::Relaxed);
                hops += 1;
                uri = next;
            };
            let status = resp.status().as_u16();
            let etag = if keep {
                resp.headers().get(http::header::ETAG).cloned()
            } else {
                None
            };
            let receipt = resp.headers().get("skab-receipt").cloned();
            let retry_after_s = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let mut body = resp.into_body();
            let mut hasher = hash.then(blake3::Hasher::new);
            let mut len = 0u64;
            // A one-frame body is kept as it came (no copy); more frames are joined.
            let mut first = Bytes::new();
            let mut joined: Option<bytes::BytesMut> = None;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| Failure::Io)?;
                if let Ok(data) = frame.into_data() {
                    len += data.len() as u64;
                    if let Some(h) = hasher.as_mut() {
                        h.update(&data);
                    }
                    if keep {
                        if let Some(j) = joined.as_mut() {
                            j.extend_from_slice(&data);
                        } else if first.is_empty() {
                            first = data;
                        } else {
                            let mut j = bytes::BytesMut::with_capacity(first.len() + data.len());
                            j.extend_from_slice(&first);
                            j.extend_from_slice(&data);
                            joined = Some(j);
                        }
                    }
                }
            }
            let body = match joined {
                Some(j) => j.freeze(),
                None => first,
            };
            Ok(Resp {
                status,
                len,
                hash: hasher.map(|h| h.finalize()),
                body,
                etag,
                receipt,
                retry_after_s,
            })
        };
        let sent = std::time::Instant::now();
        let got = match tokio::time::timeout(Duration::from_secs(REQUEST_TIMEOUT_S), work).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        };
        target.stats.count(&got, sent.elapsed());
        got
    }
}

impl Http {
    /// GET `path` from the first target without auth and without counting it as load: (body
    /// text) on 200.
    pub async fn get_text(&self, path: &str) -> Option<String> {
        let first = self.targets.first()?;
        let uri = format!("{}://{}{}", self.scheme, first.authority, path);
        let req = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .ok()?;
        let client = &first.clients.first()?.pooled;
        let work = async {
            let resp = client.request(req).await.ok()?;
            if resp.status() != 200 {
                return None;
            }
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            String::from_utf8(body.to_vec()).ok()
        };
        tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .ok()
            .flatten()
    }
}

/// Refuses targets outside loopback unless `allow_remote`.
pub async fn check_target(base: &Uri, allow_remote: bool) -> Result<()> {
    let host = base.host().context("target URL needs a host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if allow_remote {
        return Ok(());
    }
    let port = base
        .port_u16()
        .unwrap_or(if base.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolve {host}"))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        bail!(
            "target {host} is not a loopback address; pass --allow-remote to load a remote server"
        );
    }
    Ok(())
}

/// How a session proves who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthKind {
    Jwt,
    Token,
    Basic,
}

impl AuthKind {
    pub fn name(self) -> &'static str {
        match self {
            AuthKind::Jwt => "jwt",
            AuthKind::Token => "token",
            AuthKind::Basic => "basic",
        }
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    preferred_username: &'a str,
}

/// Builds `Authorization` values for the configured mix.
pub struct Authn {
    cfg: crate::config::AuthCfg,
    key: Option<jsonwebtoken::EncodingKey>,
}

impl Authn {
    pub fn new(cfg: &crate::config::AuthCfg) -> Authn {
        let key = (!cfg.jwt_secret.is_empty())
            .then(|| jsonwebtoken::EncodingKey::from_secret(cfg.jwt_secret.as_bytes()));
        Authn {
            cfg: cfg.clone(),
            key,
        }
    }

    /// The kind for a session drawn with `u` uniform in [0, 1), falling back to what the user
    /// and the config allow (token -> JWT -> Basic).
    pub fn pick(&self, u: f64, user: &crate::users::User) -> AuthKind {
        let total = self.cfg.jwt_share + self.cfg.token_share + self.cfg.basic_share;
        let x = u * total;
        let want = if x < self.cfg.jwt_share {
            AuthKind::Jwt
        } else if x < self.cfg.jwt_share + self.cfg.token_share {
            AuthKind::Token
        } else {
            AuthKind::Basic
        };
        match want {
            AuthKind::Token if user.token.is_some() => AuthKind::Token,
            AuthKind::Token | AuthKind::Jwt if self.key.is_some() => AuthKind::Jwt,
            _ => AuthKind::Basic,
        }
    }

    /// Whether `kind` can be used for `user` (a JWT secret is set; the user has a token).
    pub fn available(&self, kind: AuthKind, user: &crate::users::User) -> bool {
        match kind {
            AuthKind::Jwt => self.key.is_some(),
            AuthKind::Token => user.token.is_some(),
            AuthKind::Basic => true,
        }
    }

    /// The header value for `user` logging in by `kind`.
    pub fn header(&self, kind: AuthKind, user: &crate::users::User) -> Option<HeaderValue> {
        let text = match (kind, &self.key, &user.token) {
            (AuthKind::Jwt, Some(key), _) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let login = user.login();
                let claims = Claims {
                    iss: &self.cfg.jwt_issuer,
                    aud: &self.cfg.jwt_audience,
                    exp: now + self.cfg.jwt_ttl_s,
                    iat: now,
                    preferred_username: &login,
                };
                let jwt = jsonwebtoken::encode(
                    &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                    &claims,
                    key,
                )
                .ok()?;
                format!("Bearer {jwt}")
            }
            (AuthKind::Token, _, Some(t)) => format!("Bearer {t}"),
            _ if !self.cfg.basic_shared_login.is_empty() => {
                let raw = format!(
                    "{}:{}",
                    self.cfg.basic_shared_login, self.cfg.basic_shared_password
                );
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            _ => {
                let raw = format!("{}:{}", user.login(), user.password);
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
        };
        HeaderValue::from_str(&text).ok()
    }
}

/// A user's home path from the template, names percent-encoded.
pub fn home_path(template: &str, user: &crate::users::User) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let enc = |s: &str| {
        utf8_percent_encode(s, NON_ALPHANUMERIC)
            .to_string()
            .replace("%2E", ".")
            .replace("%2D", "-")
            .replace("%5F", "_")
    };
    template
        .replace("{tenant}", &enc(&user.tenant))
        .replace("{user}", &enc(&user.user))
}

/// The collections above a user's home that the template names (prefixes ending in `/` that
/// contain a placeholder), outermost first: `/{tenant}/` of `/{tenant}/{user}/`.
pub fn parent_paths(template: &str, user: &crate::users::User) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in template.match_indices('/') {
        let prefix = &template[..=i];
        if prefix.len() < template.trim_end_matches('/').len() && prefix.contains('{') {
            out.push(home_path(prefix, user));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_go_only_to_targets_or_loopback() {
        let targets = parse_targets(&["http://127.0.0.1:1,http://node2.test:2".into()]).unwrap();
        let http = Http::new(&targets, &ConnCfg::default()).unwrap();
        let from: Uri = "http://127.0.0.1:1/dav/t/u/a.bin".parse().unwrap();
        let to = |loc: &str| http.redirect_to(&from, loc).map(|u| u.to_string());
        assert_eq!(
            to("http://127.0.0.1:3/dav/t/u/a.bin").as_deref(),
            Some("http://127.0.0.1:3/dav/t/u/a.bin"),
            "another loopback node"
        );
        assert_eq!(
            to("http://node2.test:2/x").as_deref(),
            Some("http://node2.test:2/x"),
            "a target"
        );
        assert_eq!(
            to("/dav/t/u/b.bin").as_deref(),
            Some("http://127.0.0.1:1/dav/t/u/b.bin"),
            "a path: the same server"
        );
        assert!(to("http://localhost:9/").is_some());
        assert!(to("http://[::1]:9/").is_some());
        assert_eq!(to("http://node2.test:3/x"), None, "not a target's port");
        assert_eq!(to("http://10.0.0.1:1/x"), None, "not loopback");
        assert_eq!(to("https://127.0.0.1:1/x"), None, "another scheme");
        assert_eq!(to("not a url at all"), None);
    }
}
