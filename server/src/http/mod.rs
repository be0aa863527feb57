//! HTTP serving: the accept loop (plain or TLS), connection limits and timeouts, graceful
//! shutdown that lets in-flight requests (uploads) finish.

pub mod body;
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
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::limits::SHUTDOWN_GRACE_S;

/// Serves until ctrl-c / SIGTERM, then stops accepting and waits (bounded) for requests.
pub async fn run(app: Arc<App>, listener: TcpListener) -> anyhow::Result<()> {
    let tls = match (&app.config.tls.cert, &app.config.tls.key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(app.config.limits.connections_max));
    let mut shutdown = std::pin::pin!(shutdown_signal());
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
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let builder = builder(&app);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let first_byte = Duration::from_secs(app.config.limits.header_read_timeout_s);
        let idle = Duration::from_secs(app.config.limits.idle_timeout_s);
        tokio::spawn(async move {
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
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, std::convert::Infallible>(service::handle(app, req, peer).await) }
            });
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
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
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
        });
    }
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(Duration::from_secs(SHUTDOWN_GRACE_S)) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
    Ok(())
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
    tracing::info!("listening on {scheme}://{}", listener.local_addr()?);
    println!(
        "skab: serving WebDAV on {scheme}://{}/dav/",
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
