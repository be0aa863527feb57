//! HTTP serving: the accept loop (plain or TLS), connection limits and timeouts, graceful
//! shutdown that lets in-flight requests (uploads) finish.

pub mod body;
pub mod date;
pub mod h1;
mod idle;
pub mod response;
pub mod service;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::app::App;
use crate::limits::{SHUTDOWN_GRACE_S, WORKERS_MAX};

/// Serves until ctrl-c / SIGTERM, then stops accepting and waits (bounded) for requests.
///
/// The calling runtime only accepts; each connection is handed to one of the worker threads
/// (`workers`), each running its own single-threaded event loop, and stays there. Requests
/// then run without cross-thread wake-ups (docs/architecture.md, "Serving threads").
pub async fn run(app: Arc<App>, listener: TcpListener) -> anyhow::Result<()> {
    let tls = match (&app.config.tls.cert, &app.config.tls.key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Connections on Skab's own HTTP/1 hold a receiver; `closed()` tells when all are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(app.config.limits.connections_max));
    let workers = Workers::start(worker_count(app.config.workers))?;
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
            app: app.clone(),
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

/// An accepted connection on its way to a worker thread.
struct Connection {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    app: Arc<App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
    /// Turns true when the server stops (for Skab's own HTTP/1 connections).
    stop: watch::Receiver<bool>,
}

/// Serving threads, each a single-threaded tokio runtime fed accepted connections.
struct Workers {
    senders: Vec<mpsc::UnboundedSender<Connection>>,
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(count: usize) -> anyhow::Result<Workers> {
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
    fn hand_over(&self, n: usize, conn: Connection) -> Result<(), Connection> {
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

async fn worker_loop(
    mut connections: mpsc::UnboundedReceiver<Connection>,
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

async fn serve_connection(conn: Connection) {
    let Connection {
        tcp,
        peer,
        permit,
        app,
        tls,
        watcher,
        stop,
    } = conn;
    let tcp = match TcpStream::from_std(tcp) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "could not register a connection");
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let builder = builder(&app);
    let first_byte = Duration::from_secs(app.config.limits.header_read_timeout_s);
    let idle = Duration::from_secs(app.config.limits.idle_timeout_s);
    // hyper's header timeout starts at the first byte: a client that connects and
    // sends nothing would hold its connection slot forever (connection exhaustion).
    let mut probe = [0u8; 1];
    match tokio::time::timeout(first_byte, tcp.peek(&mut probe)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => {
            tracing::debug!(%peer, "connection sent nothing in time; closed");
            drop(permit);
            return;
        }
    }
    let own_http1 = tls.is_none() && app.config.http1 == crate::config::Http1::Skab;
    let service_app = app.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = service_app.clone();
        let req = req.map(body::ReqBody::Hyper);
        async move { Ok::<_, std::convert::Infallible>(service::handle(app, req, peer).await) }
    });
    if own_http1 {
        let settings = h1::Settings {
            idle,
            header_read: first_byte,
            head_max: app.config.limits.header_size_max,
            body_stall: Duration::from_secs(app.config.limits.body_stall_timeout_s),
        };
        if let h1::Outcome::Http2 { io, read } = h1::Conn::new(tcp, settings, stop)
            .run(app.clone(), peer)
            .await
        {
            let io = idle::IdleGuard::new(h1::Prefixed::new(read, io), idle);
            let conn = http2_builder(&app).serve_connection(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "HTTP/2 connection ended with an error");
            }
        }
        drop(permit);
        return;
    }
    drop(stop);
    let result = match tls {
        Some(acceptor) => match tokio::time::timeout(first_byte, acceptor.accept(tcp))
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "TLS handshake took longer than header_read_timeout_s",
                ))
            }) {
            Ok(stream) => {
                let stream = idle::IdleGuard::new(stream, idle);
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                watcher.watch(conn.into_owned()).await
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                Ok(())
            }
        },
        None => {
            let tcp = idle::IdleGuard::new(tcp, idle);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            watcher.watch(conn.into_owned()).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
    drop(permit);
}

fn builder(app: &App) -> auto::Builder<TokioExecutor> {
    let limits = &app.config.limits;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_s))
        .max_buf_size(limits.header_size_max.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.header_size_max as u32)
        .keep_alive_interval(Some(Duration::from_secs(limits.idle_timeout_s)));
    b
}

/// HTTP/2 with prior knowledge on a plain connection (the `auto` builder's HTTP/2 settings).
fn http2_builder(app: &App) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let limits = &app.config.limits;
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_header_list_size(limits.header_size_max as u32)
        .keep_alive_interval(Some(Duration::from_secs(limits.idle_timeout_s)));
    b
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

/// Binds and serves `app` (the `skab serve` command).
pub async fn serve(app: Arc<App>, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let scheme = if app.config.tls.cert.is_some() {
        "https"
    } else {
        "http"
    };
    let http1 = match (scheme, app.config.http1) {
        ("http", crate::config::Http1::Skab) => "skab",
        _ => "hyper",
    };
    tracing::info!(
        "listening on {scheme}://{} (HTTP/1.1 by {http1})",
        listener.local_addr()?
    );
    println!(
        "skab: serving WebDAV on {scheme}://{}/dav/ (HTTP/1.1 by {http1})",
        listener.local_addr()?
    );
    run(app, listener).await
}

mod tls {
    //! rustls acceptor from PEM certificate chain and key files.
    use std::path::Path;
    use std::sync::Arc;

    use tokio_rustls::TlsAcceptor;

    pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
        let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(cert)?))
            .collect::<Result<Vec<_>, _>>()?;
        let key =
            rustls_pemfile::private_key(&mut std::io::BufReader::new(std::fs::File::open(key)?))?
                .ok_or_else(|| anyhow::anyhow!("no private key in {}", key.display()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
