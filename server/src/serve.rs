//! `skab serve`: logging, the runtime, the store, a demo account on first start, then HTTP.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use crate::app::App;
use crate::cli::CliError;
use crate::config::{Config, LogFormat};
use crate::limits::{ALLOC_MMAP_THRESHOLD_BYTES, CHECKPOINT_NICE, MAINTENANCE_INTERVAL_S};
use crate::users::password::hash_password;
use crate::users::{TenantName, UserName};

/// Tenant and user created on the first start of an empty data dir.
pub const DEMO_TENANT: &str = "demo";
pub const DEMO_USER: &str = "demo";
/// File in the data dir written (durably) once the data dir has been initialised: from then
/// on no start creates the demo account again, even when it finds no users.
pub const INITIALIZED_MARKER: &str = "initialized";

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, not in files or journald.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Writes the marker file durably: the file and its directory entry are synced.
fn write_marker(data_dir: &Path) -> std::io::Result<()> {
    let storage = crate::own_files::storage_at(data_dir)?;
    let f = storage.open(INITIALIZED_MARKER, true)?;
    f.truncate(0)?;
    f.write_batch(
        &[(
            0,
            b"skab data dir initialised; the demo account is not created again\n",
        )],
        true,
    )?;
    storage.sync_dir("")
}

/// On the first initialisation of a data dir (no marker, no users, no stored spaces) creates
/// the demo tenant and user and prints the login; then writes the marker, so that a later
/// start that finds no users (all deleted) creates nothing.
fn ensure_demo_account(app: &App) -> Result<(), CliError> {
    let data_dir = &app.config.data_dir;
    if data_dir.join(INITIALIZED_MARKER).exists() {
        return Ok(());
    }
    if app.users.user_count() == 0 && app.store.tenants().is_empty() {
        create_demo_account(app)?;
    }
    write_marker(data_dir).map_err(|e| CliError(format!("writing {}: {e}", INITIALIZED_MARKER)))
}

fn create_demo_account(app: &App) -> Result<(), CliError> {
    let password: String = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..16)
            .map(|_| {
                let i = rng.gen_range(0..32);
                b"abcdefghjkmnpqrstuvwxyz23456789"[i.min(30)] as char
            })
            .collect()
    };
    let phc = hash_password(&password).map_err(|e| CliError(e.to_string()))?;
    let tenant = TenantName::new(DEMO_TENANT).map_err(|e| CliError(e.to_string()))?;
    let user = UserName::new(DEMO_USER).map_err(|e| CliError(e.to_string()))?;
    app.users
        .add_user(&tenant, &user, &phc)
        .map_err(|e| CliError(e.to_string()))?;
    println!("skab: first start: created demo account");
    println!("skab:   login:    {DEMO_USER}@{DEMO_TENANT}");
    println!("skab:   password: {password}");
    println!("skab:   home:     /dav/{DEMO_TENANT}/{DEMO_USER}/");
    Ok(())
}

/// On every `SIGHUP`: the access log file is opened again (log rotation). The TLS
/// certificates reload on the same signal (`http`). Listening also keeps the signal's default
/// action, ending the process, from hitting a server that serves no TLS.
async fn reopen_logs_on_sighup(app: Arc<App>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP cannot be caught: the access log is not reopened on it");
        return;
    };
    while hup.recv().await.is_some() {
        if let Some(log) = &app.access_log {
            log.reopen();
            tracing::info!("access log reopened");
        }
    }
}

/// Periodic upkeep: snapshots (so restarts replay little WAL), version/trash expiry,
/// app-token last-use records and, when it has grown enough, user log compaction.
async fn maintenance(app: Arc<App>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(MAINTENANCE_INTERVAL_S));
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = app.store.expire().await {
            tracing::warn!(error = %e, "expiry failed");
        }
        let uploads = crate::oc::upload::expire(&app).await;
        if uploads > 0 {
            tracing::info!(uploads, "unfinished chunked uploads expired");
        }
        checkpoint_at_low_priority(&app).await;
        prune_audit(&app).await;
        if let Err(e) = app.auth.flush_token_use().await {
            tracing::warn!(error = %e, "recording app token use failed");
        }
        match app.auth.compact_users_if_due().await {
            Ok(Some(c)) => tracing::info!(
                bytes_before = c.bytes_before,
                bytes_after = c.bytes_after,
                "user log compacted"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "user log compaction failed"),
        }
    }
}

/// Drops audit segments past `log.audit_retention_days` (each drop recorded in its log).
async fn prune_audit(app: &Arc<App>) {
    if app.audit.is_none() {
        return;
    }
    let store = crate::audit::AuditStore::new(&app.config.data_dir);
    let keep =
        std::time::Duration::from_secs(app.config.log.audit_retention_days.saturating_mul(86_400));
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
        let mut n = 0;
        for log in store.logs()? {
            n += store.prune(&log, keep, std::time::SystemTime::now())?;
        }
        Ok(n)
    })
    .await;
    match result {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(segments = n, "audit segments past retention dropped"),
        Ok(Err(e)) => tracing::warn!(error = %e, "audit retention failed"),
        Err(e) => tracing::warn!(error = %e, "audit retention failed"),
    }
}

/// Writes the snapshots on a thread of its own with a lower CPU priority: encoding a million
/// spaces takes a core for seconds, and on a busy machine requests must go first (in the
/// 1,000,000-session storm the checkpoint at minute 5 held p99 near 2 s for 5 s).
async fn checkpoint_at_low_priority(app: &App) {
    let store = app.store.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("skab-checkpoint".into())
        .spawn(move || {
            set_this_threads_nice(CHECKPOINT_NICE);
            let _ = tx.send(store.checkpoint());
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the checkpoint thread");
        return;
    }
    match rx.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "checkpoint failed"),
        Err(_) => tracing::warn!("checkpoint thread ended without an answer"),
        Ok(Ok(())) => {}
    }
}

/// Sets the calling thread's nice value (Linux: per thread); failure only costs priority.
pub(crate) fn set_this_threads_nice(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only changes the scheduling priority of the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Large allocations (argon2's 19 MiB per password check, snapshot buffers) always get their
/// own mappings, returned to the OS when freed. glibc otherwise raises its mmap threshold after
/// the first such free and serves later ones from the heap, which keeps them resident: RSS
/// stepped up by about 2 x 19 MiB once the credential cache expired and passwords were
/// checked again (10-minute soak, docs/reliability.md).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator parameter; called before any other thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, ALLOC_MMAP_THRESHOLD_BYTES);
    }
}

/// The saved WebDAV locks of the last shutdown, restored (the server's own small files go
/// through the engine's storage layer).
pub(crate) fn restore_locks(app: &App) {
    let own_files = match crate::own_files::storage_at(&app.config.data_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "saved WebDAV locks not restored");
            return;
        }
    };
    match crate::dav::lock_file::load(&own_files, &app.locks, Some(&app.store)) {
        Ok(0) => {}
        Ok(n) => tracing::info!(locks = n, "WebDAV locks restored from the last shutdown"),
        Err(e) => tracing::warn!(error = %e, "saved WebDAV locks not restored"),
    }
}

/// At a planned stop: the WebDAV locks saved (office suites hold locks for hours, a restart
/// must not break their next save) and a fresh snapshot left so the next start replays little.
pub(crate) fn save_locks_and_checkpoint(app: &App) {
    match crate::own_files::storage_at(&app.config.data_dir)
        .map_err(|e| e.to_string())
        .and_then(|own| {
            crate::dav::lock_file::save(&own, &app.locks, Some(&app.store))
                .map_err(|e| e.to_string())
        }) {
        Ok(0) => {}
        Ok(n) => tracing::info!(locks = n, "WebDAV locks saved for the next start"),
        Err(e) => tracing::warn!(error = %e, "WebDAV locks could not be saved"),
    }
    if let Err(e) = app.store.checkpoint() {
        tracing::warn!(error = %e, "checkpoint at shutdown failed");
    }
}

/// What an open data dir runs beside its requests: the admin socket, the expiry of unfinished
/// chunked uploads and the periodic maintenance. The tasks are returned so that a cluster
/// cell that closes can stop them.
pub(crate) async fn start_app_tasks(
    app: &Arc<App>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let admin = crate::admin::spawn_listener(app.store.clone(), &app.config.data_dir)
        .map_err(|e| anyhow::anyhow!("admin socket: {e}"))?;
    let expired = crate::oc::upload::expire(app).await;
    if expired > 0 {
        tracing::info!(uploads = expired, "unfinished chunked uploads expired");
    }
    Ok(vec![admin, tokio::spawn(maintenance(app.clone()))])
}

/// Runs the server until SIGINT/SIGTERM.
pub fn serve(config: Config) -> Result<(), CliError> {
    tune_allocator();
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("skab-worker")
        .build()
        .map_err(|e| CliError(format!("runtime: {e}")))?;
    if config.cluster.is_some() {
        return crate::cluster::serve(config, runtime);
    }
    let listen = config.listen;
    let app = App::open(config).map_err(|e| CliError(format!("opening the data dir: {e:#}")))?;
    let report = app.store.recovery_report();
    tracing::info!(
        took_ms = report.duration.as_millis() as u64,
        spaces = report.spaces,
        entries = report.entries,
        io = report.io_backend,
        "store recovered"
    );
    ensure_demo_account(&app)?;
    restore_locks(&app);
    let app = Arc::new(app);
    let result = runtime.block_on(async {
        start_app_tasks(&app).await?;
        tokio::spawn(reopen_logs_on_sighup(app.clone()));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let settings = crate::route::http_settings(&app);
        let (scheme, http1) = (
            settings.scheme(),
            if settings.uses_own_http1() {
                "skab"
            } else {
                "hyper"
            },
        );
        let addr = listener.local_addr()?;
        tracing::info!("listening on {scheme}://{addr} (HTTP/1.1 by {http1})");
        println!("skab: serving WebDAV on {scheme}://{addr}/dav/ (HTTP/1.1 by {http1})");
        crate::http::run(
            Arc::new(crate::route::Router::new(app.clone())),
            settings,
            listener,
        )
        .await
    });
    save_locks_and_checkpoint(&app);
    result.map_err(|e| CliError(format!("{e:#}")))
}
