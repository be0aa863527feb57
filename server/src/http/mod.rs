//! HTTP serving: the accept loop (plain or TLS), connection limits and timeouts, graceful
//! shutdown that lets in-flight requests (uploads) finish. Knows nothing of WebDAV: each
//! request goes to a [`Handler`] (the server's router, `crate::route`).

pub mod body;
pub mod date;
pub mod h1;
mod idle;
pub mod proxy;
pub mod response;
mod tls;
mod tls_records;
mod tls_stream;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::limits::{SHUTDOWN_GRACE_S, WORKERS_MAX};
use body::ReqBody;
use response::Resp;

/// What answers requests: both HTTP/1 paths and HTTP/2 call it for every request.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: hyper::Request<ReqBody>,
        peer: SocketAddr,
    ) -> impl Future<Output = Resp> + Send;
}

/// How to serve: TLS, which HTTP/1 implementation, threads, limits and timeouts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Certificate and key (PEM); plain HTTP when none.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Skab's own HTTP/1 for plain and TLS connections (hyper's otherwise; HTTP/2 is
    /// always hyper's).
    pub own_http1: bool,
    /// Serving threads (0: one per CPU, at most `WORKERS_MAX`).
    pub workers: usize,
    pub connections_max: usize,
    /// From a connection's first byte (or accept) to the end of a request head.
    pub header_read: Duration,
    /// Between requests on a kept-alive connection.
    pub idle: Duration,
    pub header_size_max: usize,
    /// A request body that sends nothing for this long fails as stalled.
    pub body_stall: Duration,
    /// Peers whose PROXY protocol header and forwarding headers are believed.
    pub trusted_proxies: Arc<proxy::TrustedProxies>,
    /// Connections open now (read by the metrics).
    pub open_connections: Arc<AtomicU64>,
}

impl Settings {
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Whether HTTP/1 connections are served by Skab's own implementation.
    pub fn uses_own_http1(&self) -> bool {
        self.own_http1
    }
}

/// Serves until ctrl-c / SIGTERM, then stops accepting and waits (bounded) for requests.
///
/// The calling runtime only accepts; each connection is handed to one of the worker threads
/// (`workers`), each running its own single-threaded event loop, and stays there. Requests
/// then run without cross-thread wake-ups (docs/architecture.md, "Serving threads").
pub async fn run<H: Handler>(
    handler: Arc<H>,
    settings: Settings,
    listener: TcpListener,
) -> anyhow::Result<()> {
    let tls = match &settings.tls {
        Some((cert, key)) => {
            let (config, certs) = tls::config(cert, key)?;
            tokio::spawn(reload_on_sighup(certs));
            Some(config)
        }
        None => None,
    };
    let settings = Arc::new(settings);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Connections on Skab's own HTTP/1 hold a receiver; `closed()` tells when all are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(settings.connections_max));
    let workers = Workers::start(worker_count(settings.workers))?;
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut next = 0usize;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Over the connection limit: close at once; everyone else keeps being served.
            drop(tcp);
            continue;
        };
        let permit = Slot::new(permit, &settings.open_connections);
        // Detached from this runtime's reactor: the worker registers it with its own, so
        // readiness events reach the connection's task on the thread that runs it.
        let tcp = match tcp.into_std() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "could not detach an accepted connection");
                continue;
            }
        };
        let conn = Connection {
            tcp,
            peer,
            permit,
            handler: handler.clone(),
            settings: settings.clone(),
            tls: tls.clone(),
            watcher: graceful.watcher(),
            stop: stop_rx.clone(),
        };
        next = next.wrapping_add(1);
        if let Err(conn) = workers.hand_over(next, conn) {
            // A worker thread is gone (it panicked): serve here rather than drop the client.
            tokio::spawn(serve_connection(conn));
        }
    }
    tracing::info!("shutting down: finishing in-flight requests");
    drop(stop_rx);
    let _ = stop_tx.send(true);
    let all_closed = async {
        tokio::join!(graceful.shutdown(), stop_tx.closed());
    };
    tokio::select! {
        _ = all_closed => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(Duration::from_secs(SHUTDOWN_GRACE_S)) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
    tokio::task::spawn_blocking(move || workers.stop())
        .await
        .map_err(|e| anyhow::anyhow!("stopping workers: {e}"))?;
    Ok(())
}

/// The number of serving threads for a configured `workers` (0: one per CPU).
fn worker_count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(WORKERS_MAX)
}

/// A connection's place under `connections_max`, counted in `open_connections` while held.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Arc<AtomicU64>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, open: &Arc<AtomicU64>) -> Slot {
        open.fetch_add(1, Ordering::Relaxed);
        Slot {
            _permit: permit,
            open: open.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An accepted connection on its way to a worker thread.
struct Connection<H> {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    permit: Slot,
    handler: Arc<H>,
    settings: Arc<Settings>,
    tls: Option<Arc<rustls::ServerConfig>>,
    watcher: hyper_util::server::graceful::Watcher,
    /// Turns true when the server stops (for Skab's own HTTP/1 connections).
    stop: watch::Receiver<bool>,
}

/// Serving threads, each a single-threaded tokio runtime fed accepted connections.
struct Workers<H> {
    senders: Vec<mpsc::UnboundedSender<Connection<H>>>,
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl<H: Handler> Workers<H> {
    fn start(count: usize) -> anyhow::Result<Workers<H>> {
        assert!((1..=WORKERS_MAX).contains(&count));
        let (stop, _) = watch::channel(false);
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let (tx, rx) = mpsc::unbounded_channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("skab-blocking")
                .build()?;
            let stop = stop.subscribe();
            let thread = std::thread::Builder::new()
                .name(format!("skab-http-{i}"))
                .spawn(move || runtime.block_on(worker_loop(rx, stop)))?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(Workers {
            senders,
            stop,
            threads,
        })
    }

    /// Gives `conn` to worker `n % count`; hands it back if that worker is gone.
    fn hand_over(&self, n: usize, conn: Connection<H>) -> Result<(), Connection<H>> {
        let tx = &self.senders[n % self.senders.len()];
        tx.send(conn).map_err(|e| e.0)
    }

    /// Ends every worker's loop (dropping what is still open) and waits for the threads.
    fn stop(self) {
        drop(self.senders);
        let _ = self.stop.send(true);
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a serving thread panicked");
            }
        }
    }
}

async fn worker_loop<H: Handler>(
    mut connections: mpsc::UnboundedReceiver<Connection<H>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut accepting = true;
    loop {
        tokio::select! {
            conn = connections.recv(), if accepting => match conn {
                Some(conn) => {
                    tokio::spawn(serve_connection(conn));
                }
                // No more connections: keep serving the open ones until told to stop.
                None => accepting = false,
            },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn serve_connection<H: Handler>(conn: Connection<H>) {
    let Connection {
        tcp,
        peer,
        permit,
        handler,
        settings,
        tls,
        watcher,
        stop,
    } = conn;
    let mut tcp = match TcpStream::from_std(tcp) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "could not register a connection");
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let first_byte = settings.header_read;
    let idle = settings.idle;
    // Boxed and freed before serving (its timer and the PROXY header parser would otherwise
    // stay in every idle connection's task).
    let peer = {
        let opening = Box::pin(opening(&mut tcp, peer, &settings));
        match opening.await {
            Some(peer) => peer,
            None => {
                drop(permit);
                return;
            }
        }
    };
    let h1_settings = h1::Settings {
        idle,
        header_read: first_byte,
        head_max: settings.header_size_max,
        body_stall: settings.body_stall,
    };
    // A task is as large as its largest state: the TLS handshake and the way of serving are
    // boxed, each built in a statement of its own (a temporary in an awaited expression keeps
    // its room in the task), so an idle connection holds only the state of its way
    // (docs/architecture.md, "Idle connections").
    let serving: Serving = match tls {
        None if settings.own_http1 => {
            let conn = h1::Conn::new(tcp, h1_settings, stop);
            Box::pin(serve_own_http1(conn, handler, peer, settings, watcher))
        }
        Some(config) => {
            let handshake = Box::pin(tls_handshake(
                config,
                tcp,
                h1_settings,
                stop,
                handler,
                peer,
                settings,
                watcher,
            ));
            match handshake.await {
                Some(serving) => serving,
                None => {
                    drop(permit);
                    return;
                }
            }
        }
        None => {
            drop(stop);
            Box::pin(serve_hyper(tcp, handler, peer, settings, watcher))
        }
    };
    serving.await;
    drop(permit);
}

/// Waits for the connection's first byte (at most `header_read`: a client that connects and
/// sends nothing would otherwise hold its slot forever) and reads a PROXY protocol header if
/// one starts there; the client's address, or `None` when the connection is to be closed.
async fn opening(tcp: &mut TcpStream, peer: SocketAddr, settings: &Settings) -> Option<SocketAddr> {
    let mut probe = [0u8; 1];
    match tokio::time::timeout(settings.header_read, tcp.peek(&mut probe)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => {
            tracing::debug!(%peer, "connection sent nothing in time; closed");
            return None;
        }
    }
    // A PROXY protocol header (only HAProxy-style balancers start with `P`+`ROXY ` or the
    // v2 signature's `\r`): from a trusted peer it names the client; from others it closes.
    if !matches!(probe[0], b'P' | b'\r') {
        return Some(peer);
    }
    match proxy::read_proxy_header(tcp, peer, &settings.trusted_proxies, settings.header_read).await
    {
        Ok(source) => Some(source.unwrap_or(peer)),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "connection refused before HTTP");
            None
        }
    }
}

/// One connection's serving, boxed.
type Serving = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The TLS handshake (bounded by `header_read`); then how the connection is served: HTTP/1.1
/// on Skab's own code or, with ALPN `h2` or `http1 = "hyper"`, hyper. `None`: it failed.
#[allow(clippy::too_many_arguments)]
async fn tls_handshake<H: Handler>(
    config: Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    h1_settings: h1::Settings,
    stop: watch::Receiver<bool>,
    handler: Arc<H>,
    peer: SocketAddr,
    settings: Arc<Settings>,
    watcher: hyper_util::server::graceful::Watcher,
) -> Option<Serving> {
    let accept = tls_stream::TlsStream::accept(config, tcp);
    let stream = match tokio::time::timeout(h1_settings.header_read, accept).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake took longer than header_read_timeout_s");
            return None;
        }
    };
    let h2 = stream.alpn_protocol() == Some(b"h2".as_slice());
    Some(if settings.own_http1 && !h2 {
        let conn = h1::Conn::new(stream, h1_settings, stop);
        Box::pin(serve_own_http1(conn, handler, peer, settings, watcher))
    } else {
        drop(stop);
        Box::pin(serve_hyper(stream, handler, peer, settings, watcher))
    })
}

/// hyper's service calling `handler` for every request of one connection.
fn service<H: Handler>(
    handler: Arc<H>,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = Resp,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Resp, std::convert::Infallible>> + Send,
> + Clone
       + Send
       + 'static {
    service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        let req = req.map(body::ReqBody::Hyper);
        async move { Ok::<_, std::convert::Infallible>(handler.handle(req, peer).await) }
    })
}

/// Serves a connection (plain or TLS) with Skab's own HTTP/1, handing it to hyper's HTTP/2
/// if it starts with the HTTP/2 preface.
async fn serve_own_http1<S, H>(
    mut conn: h1::Conn<S>,
    handler: Arc<H>,
    peer: SocketAddr,
    settings: Arc<Settings>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    if let h1::Outcome::Http2 { read } = conn.run(&*handler, peer).await {
        let io = idle::IdleGuard::new(h1::Prefixed::new(read, conn.into_io()), settings.idle);
        let serving = serve_http2(io, handler, peer, &settings, watcher);
        serving.await;
    }
}

/// hyper's HTTP/2 on a connection that began with the preface, boxed (built outside the
/// HTTP/1 future, whose size it would otherwise add to every idle connection).
fn serve_http2<S, H>(
    io: S,
    handler: Arc<H>,
    peer: SocketAddr,
    settings: &Settings,
    watcher: hyper_util::server::graceful::Watcher,
) -> Serving
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let conn = http2_builder(settings).serve_connection(TokioIo::new(io), service(handler, peer));
    Box::pin(async move {
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(%peer, error = %e, "HTTP/2 connection ended with an error");
        }
    })
}

/// Serves a connection with hyper (HTTP/1 or HTTP/2, by ALPN or preface).
async fn serve_hyper<S, H>(
    io: S,
    handler: Arc<H>,
    peer: SocketAddr,
    settings: Arc<Settings>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let io = idle::IdleGuard::new(io, settings.idle);
    let builder = builder(&settings);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service(handler, peer));
    let watched = Box::pin(watcher.watch(conn.into_owned()));
    if let Err(e) = watched.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

fn builder(settings: &Settings) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read)
        .max_buf_size(settings.header_size_max.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(settings.header_size_max as u32)
        .keep_alive_interval(Some(settings.idle));
    b
}

/// HTTP/2 with prior knowledge on a plain connection (the `auto` builder's HTTP/2 settings).
fn http2_builder(settings: &Settings) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_header_list_size(settings.header_size_max as u32)
        .keep_alive_interval(Some(settings.idle));
    b
}

/// Reads the TLS certificate and key again on each `SIGHUP` (certificate renewal without a
/// restart); a bad pair is logged and the one in use stays.
async fn reload_on_sighup(certs: Arc<tls::Reloadable>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be caught: TLS certificates reload only at restart");
            return;
        };
        while hup.recv().await.is_some() {
            match certs.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays")
                }
            }
        }
    }
    #[cfg(not(unix))]
    drop(certs);
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
