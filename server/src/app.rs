//! The server's shared state: the engine store, users and auth, locks, metrics, config.

use std::sync::Arc;
use std::time::Duration;

use skab_engine::io::IoChoice;
use skab_engine::{DedupMode, Store, StoreConfig};

use crate::access_log::AccessLog;
use crate::auth::Authenticator;
use crate::config::{ClientHeader, Config, DedupDomain, IoBackend};
use crate::dav::locks::{LockConfig, LockManager};
use crate::fair_share::FairShare;
use crate::http::proxy::{public_authority, TrustedProxies};
use crate::metrics::Metrics;
use crate::users::UserDb;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub users: Arc<UserDb>,
    pub auth: Authenticator,
    pub locks: LockManager,
    pub lock_config: LockConfig,
    pub metrics: Metrics,
    /// `None` when `log.access` is `off`.
    pub access_log: Option<AccessLog>,
    /// The audit log's writer (`log.audit`).
    pub audit: Option<crate::audit::Audit>,
    /// `http.trusted_proxies`: whose forwarding headers name the client.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Connections open now (kept by the HTTP layer, read by the metrics).
    pub open_connections: Arc<std::sync::atomic::AtomicU64>,
    /// `http.public_url`'s authority: Destination and `If` URIs naming it are this server.
    pub public_authority: Option<String>,
    /// In-flight limits per tenant and account (`limits.inflight_per_*_max`).
    pub fair_share: Arc<FairShare>,
    /// The hand-ins (reread when `skab handin` changes them).
    pub handins: crate::handin::Registry,
    /// The tenants' receipt keys and the receipt logs.
    pub receipts: crate::handin::receipt::Keys,
    /// The shared spaces and user shares (`crate::spaces`).
    pub spaces: crate::spaces::Registry,
}

/// The engine's configuration from the server's.
/// With encryption on, the key store is opened here (master key loaded and checked): a wrong
/// or missing key is an error.
pub fn store_config(config: &Config) -> Result<StoreConfig, String> {
    let keys = crate::crypt::open_keys(config)?;
    if let Some(k) = &keys {
        crate::crypt::register_keys(&config.data_dir, k.clone());
    }
    let s = &config.storage;
    let days = |d: u64| (d > 0).then(|| Duration::from_secs(d * 24 * 3600));
    Ok(StoreConfig {
        dedup: match s.dedup_domain {
            DedupDomain::Tenant => DedupMode::PerTenant,
            DedupDomain::Global => DedupMode::Global,
        },
        versions_kept: s.versions_kept,
        trash_age_max: if s.trash_retention_s > 0 {
            Some(Duration::from_secs(s.trash_retention_s))
        } else {
            days(u64::from(s.trash_retention_days))
        },
        space_quota_default: (s.default_quota_bytes > 0).then_some(s.default_quota_bytes),
        free_space_reserve_bytes: s.free_space_reserve_bytes,
        chunk_cache_bytes: s.chunk_cache_bytes,
        prezero: s.prezero,
        direct_io: s.direct_io,
        io: match s.io {
            IoBackend::Auto => IoChoice::Auto,
            IoBackend::Uring => IoChoice::Uring,
            IoBackend::Std => IoChoice::Std,
        },
        keys,
        ..StoreConfig::default()
    })
}

/// Opens the store under the data dir: on local disk, or mirrored into object storage when
/// `[storage.object]` is set (pre-zeroing and direct I/O are then off: zeros would be
/// uploaded, and the mirror has no direct handles).
pub fn open_store(
    config: &Config,
    mut store_config: StoreConfig,
    fence: Option<skab_engine::io::Fence>,
) -> skab_engine::Result<Store> {
    let dir = config.data_dir.join("store");
    let Some(object) = &config.storage.object else {
        return Store::open(&dir, store_config);
    };
    let mut object = object.engine().map_err(|e| {
        skab_engine::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    })?;
    object.fence = fence;
    store_config.prezero = false;
    store_config.direct_io = false;
    let root = dir.clone();
    Store::open_wrapped(&dir, store_config, move |local| {
        let (storage, report) = skab_engine::io::ObjectStorage::open(&root, local, &object)?;
        tracing::info!(
            endpoints = ?object.endpoints,
            bucket = %object.bucket,
            rebuilt_files = report.rebuilt_files,
            rebuilt_bytes = report.rebuilt_bytes,
            uploaded_files = report.uploaded_files,
            "store mirrored into object storage"
        );
        Ok(Arc::new(storage))
    })
}

impl App {
    /// Opens the store and user database under the configured data dir.
    pub fn open(config: Config) -> anyhow::Result<App> {
        App::open_fenced(config, None)
    }

    /// As [`App::open`]; in cluster mode with the fence of the node's lease on the cell.
    pub fn open_fenced(
        config: Config,
        fence: Option<skab_engine::io::Fence>,
    ) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data_dir)?;
        // Before anything reads the data dir's own files: they may be rebuilt from the bucket.
        crate::own_files::open_fenced(&config, fence.clone()).map_err(anyhow::Error::msg)?;
        let store_config =
            store_config(&config).map_err(|e| anyhow::anyhow!("encryption at rest: {e}"))?;
        let store = open_store(&config, store_config, fence)?;
        let users = Arc::new(UserDb::open(&config.data_dir)?);
        let auth = Authenticator::new(users.clone(), &config.auth).map_err(anyhow::Error::msg)?;
        let lock_config = LockConfig {
            per_space_max: config.limits.locks_per_user_max,
            ..LockConfig::default()
        };
        let locks = LockManager::new(lock_config.clone());
        let access_log = match config.log.access.as_str() {
            "off" | "" => None,
            dest => Some(
                AccessLog::open(dest, config.log.access_format)
                    .map_err(|e| anyhow::anyhow!("access log {dest}: {e}"))?,
            ),
        };
        let audit = if config.log.audit {
            Some(
                crate::audit::Audit::start(crate::audit::AuditStore::new(&config.data_dir))
                    .map_err(|e| anyhow::anyhow!("audit log: {e}"))?,
            )
        } else {
            None
        };
        let trusted_proxies = Arc::new(
            TrustedProxies::parse(&config.http.trusted_proxies)
                .map_err(anyhow::Error::msg)?
                .with_forwarded(config.http.client_header == ClientHeader::Forwarded),
        );
        let public_authority = match &config.http.public_url {
            Some(u) => Some(public_authority(u).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let fair_share = Arc::new(FairShare::new(
            config.limits.inflight_per_tenant_max,
            config.limits.inflight_per_account_max,
        ));
        let handins = crate::handin::Registry::new(&config.data_dir);
        let receipts = crate::handin::receipt::Keys::new(&config.data_dir);
        let spaces = crate::spaces::Registry::new(&config.data_dir);
        Ok(App {
            spaces,
            handins,
            receipts,
            config,
            store,
            users,
            auth,
            locks,
            lock_config,
            metrics: Metrics::new(),
            access_log,
            audit,
            trusted_proxies,
            open_connections: Arc::default(),
            public_authority,
            fair_share,
        })
    }
}
