//! The server's configuration: defaults, TOML file, `SKAB_*` environment overrides and CLI flags.

use crate::limits as L;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

/// The whole configuration. Every field has a default (see `docs/configuration.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory holding all data (users, packs, index).
    pub data_dir: PathBuf,
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Threads that serve connections (each runs its own event loop); 0: one per CPU.
    pub workers: usize,
    /// Which HTTP/1 implementation serves plain (non-TLS) connections.
    pub http1: Http1,
    pub http: HttpConfig,
    pub tls: TlsConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub spaces: SpacesConfig,
    pub crypto: CryptoConfig,
    /// `[cluster]`: several nodes over object storage and etcd (off when absent;
    /// docs/scaleout.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
}

/// How this node finds the others and what it owns (`[cluster]`, docs/scaleout.md). A config
/// with `[cluster]` but without `node_id` is an admin configuration: admin commands given it
/// act on the cluster through its nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name (unique in the cluster); absent in an admin configuration.
    #[serde(default)]
    pub node_id: Option<String>,
    /// The base URL other nodes (and redirected clients) reach this node at.
    #[serde(default)]
    pub advertise_url: Option<String>,
    /// etcd client URLs; a failed request goes to the next.
    pub etcd: Vec<String>,
    /// Groups of tenants, each owned by one node at a time; fixed for the cluster's life.
    #[serde(default = "default_cluster_cells")]
    pub cells: u32,
    /// A node that renews nothing for this long loses its cells, seconds.
    #[serde(default = "default_cluster_lease_ttl")]
    pub lease_ttl_s: u64,
    /// The secret shared by the nodes and admin commands (64 hex digits) ...
    #[serde(default)]
    pub secret: Option<String>,
    /// ... or a file holding it (first line) ...
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    // ... or the environment variable `SKAB_CLUSTER_SECRET`.
    /// Requests for a cell owned elsewhere: proxied to the owner, or redirected (307) to it.
    #[serde(default)]
    pub forward: ForwardMode,
    /// Names this cluster's keys in etcd and its objects in the bucket.
    #[serde(default = "default_cluster_name")]
    pub name: String,
}

/// How a node answers a request for a cell it does not own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    #[default]
    Proxy,
    Redirect,
}

fn default_cluster_cells() -> u32 {
    L::CLUSTER_CELLS_DEFAULT
}

fn default_cluster_lease_ttl() -> u64 {
    L::CLUSTER_LEASE_TTL_DEFAULT_S
}

fn default_cluster_name() -> String {
    "skab".into()
}

/// The environment variable the cluster secret may be given in; not a setting.
pub const ENV_CLUSTER_SECRET: &str = "SKAB_CLUSTER_SECRET";

impl ClusterConfig {
    /// The shared secret, read and checked (32 bytes as 64 hex digits).
    pub fn secret_bytes(&self) -> Result<[u8; 32], String> {
        let text = match (&self.secret, &self.secret_file) {
            (Some(s), _) => s.trim().to_string(),
            (None, Some(p)) => std::fs::read_to_string(p)
                .map_err(|e| format!("cluster.secret_file {}: {e}", p.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            (None, None) => std::env::var(ENV_CLUSTER_SECRET).map_err(|_| {
                format!("cluster: no secret (set cluster.secret, cluster.secret_file or {ENV_CLUSTER_SECRET})")
            })?,
        };
        let bytes = hex::decode(&text)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("cluster: the secret must be 64 hex digits")?;
        Ok(bytes)
    }

    /// Checks the settings of a node (`node` true) or of an admin configuration.
    pub fn check(&self, node: bool) -> Result<(), String> {
        if self.etcd.is_empty() {
            return Err("cluster.etcd: at least one etcd URL is needed".into());
        }
        if self.cells == 0 || self.cells > L::CLUSTER_CELLS_MAX {
            return Err(format!(
                "cluster.cells must be 1 to {}",
                L::CLUSTER_CELLS_MAX
            ));
        }
        if !(L::CLUSTER_LEASE_TTL_MIN_S..=L::CLUSTER_LEASE_TTL_MAX_S).contains(&self.lease_ttl_s) {
            return Err(format!(
                "cluster.lease_ttl_s must be {} to {}",
                L::CLUSTER_LEASE_TTL_MIN_S,
                L::CLUSTER_LEASE_TTL_MAX_S
            ));
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name_ok(&self.name) {
            return Err("cluster.name: 1-64 letters, digits, '-' or '_'".into());
        }
        if node {
            match &self.node_id {
                Some(n) if name_ok(n) => {}
                _ => return Err("cluster.node_id: 1-64 letters, digits, '-' or '_'".into()),
            }
            match &self.advertise_url {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {}
                _ => return Err("cluster.advertise_url: the http(s):// URL of this node".into()),
            }
        }
        self.secret_bytes().map(|_| ())
    }
}

/// Encryption at rest per tenant (docs/security.md, "Encryption at rest").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CryptoConfig {
    /// Seal every tenant's chunks, WAL records and snapshots with the tenant's own key. Fixed
    /// for a data dir's life: a data dir written without it is refused with it, and the other
    /// way round. Off by default, so that existing data dirs open as before.
    pub enabled: bool,
    /// The key store (tenant keys wrapped by the master key): keep it apart from the data and
    /// back it up on its own schedule. Default: `<data_dir>-keys` beside the data dir.
    pub key_store: Option<PathBuf>,
    /// The master key (64 hex digits) is read from this file (mode 0600 or stricter)...
    pub master_key_file: Option<PathBuf>,
    /// ...or from this environment variable (`SKAB_MASTER_KEY` is the one `SKAB_` name that
    /// is not a setting)...
    pub master_key_env: Option<String>,
    /// ...or is what this command prints (run with `sh -c`; an HSM or KMS client).
    pub master_key_command: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./skab-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            http1: Http1::default(),
            http: HttpConfig::default(),
            tls: TlsConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            spaces: SpacesConfig::default(),
            crypto: CryptoConfig::default(),
            cluster: None,
        }
    }
}

/// The HTTP face of the server: browser origins, and the proxies and load balancers in front
/// (docs/operations.md, "Behind a load balancer").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Origins (`scheme://host[:port]`) whose web pages may call the server with the
    /// user's credentials (CORS, `crate::cors`); none by default, `*` is refused.
    pub cors_origins: Vec<String>,
    /// Addresses or CIDR blocks whose PROXY protocol header and `Forwarded` /
    /// `X-Forwarded-For` headers are believed; none by default.
    pub trusted_proxies: Vec<String>,
    /// Which header a trusted proxy names the client in; the other is ignored (a proxy passes
    /// on what the client sent in the header it does not manage).
    pub client_header: ClientHeader,
    /// The URL clients use (e.g. `https://skab.example.dk`), when a proxy rewrites `Host`:
    /// Destination and `If` URIs naming its authority are this server.
    pub public_url: Option<String>,
}

/// The header in which trusted proxies name the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientHeader {
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`, HAProxy's `forwardfor`, most
    /// cloud load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded` (`for=`).
    Forwarded,
}

/// TLS: both paths set serves HTTPS, none serves plain HTTP (behind a TLS proxy).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

/// The HTTP/1 implementation for plain connections (TLS and HTTP/2 always use hyper).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Http1 {
    /// Skab's own (`server/src/http/h1`): less CPU per request.
    #[default]
    Skab,
    /// hyper's.
    Hyper,
}

/// Which chunks may be shared by deduplication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupDomain {
    /// Chunks are shared only within one tenant (no cross-tenant side channel).
    #[default]
    Tenant,
    /// Chunks are shared across all tenants (more saving; opt-in).
    Global,
}

/// How the engine does its file I/O.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoBackend {
    /// io_uring where the kernel allows it, else the portable backend.
    #[default]
    Auto,
    /// io_uring, or refuse to start.
    Uring,
    /// Plain system calls (pwrite, fdatasync) from the committing threads.
    Std,
}

/// Storage policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub dedup_domain: DedupDomain,
    pub versions_kept: u32,
    pub trash_retention_days: u32,
    /// Trash retention in seconds; when non-zero it replaces `trash_retention_days`
    /// (short retentions for tests and for sites that want the trash gone quickly).
    pub trash_retention_s: u64,
    /// Quota of a user without one of their own, bytes; 0 means unlimited.
    pub default_quota_bytes: u64,
    /// Uploads are refused (507) while the data dir's file system has fewer free bytes; 0: off.
    pub free_space_reserve_bytes: u64,
    /// Bytes of verified chunks kept in memory for hot reads; 0: off.
    pub chunk_cache_bytes: u64,
    /// Keep packs and WAL segments written with zeros ahead of their appends: cheaper
    /// fdatasync for small uploads, but it doubles pack writes and made the exam peak slower
    /// (docs/benchmarks.md, "Pre-zeroing and the exam peak"), so off by default.
    pub prezero: bool,
    /// Append pack data with direct I/O (no copy into the page cache) where the file
    /// system allows; ignored while `prezero` is on.
    pub direct_io: bool,
    /// File I/O backend: `auto` (io_uring where allowed), `uring` or `std`.
    pub io: IoBackend,
    /// A sync client's chunked upload untouched this long is removed with its chunks, seconds.
    pub upload_ttl_s: u64,
    /// `[storage.object]`: mirror the store into an S3 bucket (off when absent;
    /// docs/scaleout.md, "Object storage mirror").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectStorageConfig>,
}

/// The environment variable the object storage's secret key is read from by default; not a
/// setting, so not refused as an unknown `SKAB_` variable.
pub const ENV_OBJECT_SECRET_KEY: &str = "SKAB_OBJECT_SECRET_KEY";

/// Where the store is mirrored (`[storage.object]`). The secret key is never in the file:
/// it is read from `secret_key_file` or from the environment variable `secret_key_env`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStorageConfig {
    /// S3 endpoints, e.g. `["http://127.0.0.1:3900"]`; a failed request goes to the next.
    pub endpoints: Vec<String>,
    #[serde(default = "default_object_region")]
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    /// A file holding the secret key (first line).
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    /// The variable holding the secret key when `secret_key_file` is not set.
    #[serde(default = "default_object_secret_env")]
    pub secret_key_env: String,
    /// Key prefix inside the bucket ("" or ending in `/`): one store per prefix.
    #[serde(default)]
    pub prefix: String,
}

fn default_object_region() -> String {
    "garage".into()
}

fn default_object_secret_env() -> String {
    ENV_OBJECT_SECRET_KEY.into()
}

impl ObjectStorageConfig {
    /// The engine's configuration, with the secret key read.
    pub fn engine(&self) -> Result<skab_engine::io::ObjectConfig, String> {
        let secret = match &self.secret_key_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("storage.object.secret_key_file {}: {e}", p.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            None => std::env::var(&self.secret_key_env).map_err(|_| {
                format!(
                    "storage.object: no secret key (set {} or secret_key_file)",
                    self.secret_key_env
                )
            })?,
        };
        if secret.is_empty() || self.endpoints.is_empty() || self.bucket.is_empty() {
            return Err("storage.object: endpoints, bucket and a secret key are needed".into());
        }
        if !(self.prefix.is_empty() || self.prefix.ends_with('/')) {
            return Err("storage.object.prefix must be empty or end in '/'".into());
        }
        Ok(skab_engine::io::ObjectConfig {
            endpoints: self.endpoints.clone(),
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            access_key: self.access_key.clone(),
            secret_key: secret,
            prefix: self.prefix.clone(),
            fence: None,
        })
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dedup_domain: DedupDomain::Tenant,
            versions_kept: L::VERSIONS_KEPT_DEFAULT,
            trash_retention_days: L::TRASH_RETENTION_DAYS_DEFAULT,
            trash_retention_s: 0,
            default_quota_bytes: 0,
            free_space_reserve_bytes: skab_engine::limits::FREE_SPACE_RESERVE_DEFAULT,
            chunk_cache_bytes: skab_engine::limits::CHUNK_CACHE_BYTES_DEFAULT,
            prezero: false,
            direct_io: false,
            io: IoBackend::Auto,
            upload_ttl_s: crate::limits::OC_UPLOAD_TTL_DEFAULT_S,
            object: None,
        }
    }
}

/// Request limits of the HTTP and WebDAV layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub body_size_max: u64,
    pub header_size_max: usize,
    pub xml_size_max: usize,
    pub xml_depth_max: usize,
    pub path_len_max: usize,
    pub props_per_request_max: usize,
    pub locks_per_user_max: usize,
    pub idle_timeout_s: u64,
    pub header_read_timeout_s: u64,
    pub body_stall_timeout_s: u64,
    /// Open client connections; over it, new connections are closed at once.
    pub connections_max: usize,
    /// Requests of one tenant in flight (authenticated, handler running); over it 503; 0: off.
    pub inflight_per_tenant_max: usize,
    /// Requests of one account in flight; over it 429; 0: off.
    pub inflight_per_account_max: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            body_size_max: L::BODY_SIZE_MAX_DEFAULT,
            header_size_max: L::HEADER_SIZE_MAX_DEFAULT,
            xml_size_max: L::XML_SIZE_MAX_DEFAULT,
            xml_depth_max: L::XML_DEPTH_MAX_DEFAULT,
            path_len_max: L::PATH_LEN_MAX_DEFAULT,
            props_per_request_max: L::PROPS_PER_REQUEST_MAX_DEFAULT,
            locks_per_user_max: L::LOCKS_PER_USER_MAX_DEFAULT,
            idle_timeout_s: L::IDLE_TIMEOUT_S_DEFAULT,
            header_read_timeout_s: L::HEADER_READ_TIMEOUT_S_DEFAULT,
            body_stall_timeout_s: L::BODY_STALL_TIMEOUT_S_DEFAULT,
            connections_max: L::CONNECTIONS_MAX,
            inflight_per_tenant_max: L::INFLIGHT_PER_TENANT_MAX_DEFAULT,
            inflight_per_account_max: L::INFLIGHT_PER_ACCOUNT_MAX_DEFAULT,
        }
    }
}

/// Authentication settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Realm named in `WWW-Authenticate`.
    pub realm: String,
    pub credential_cache_ttl_s: u64,
    pub credential_cache_entries: usize,
    /// Longest life of a verified credential after its argon2 run, seconds.
    pub credential_cache_max_age_s: u64,
    /// Password-hashing threads (argon2 runs at once); 0 means one per CPU core.
    pub hash_concurrency: usize,
    /// Nice value of the hashing threads (0 to 19).
    pub hash_nice: i32,
    /// Longest expected wait for a hashing thread before a login gets 503, milliseconds.
    pub hash_wait_max_ms: u64,
    pub account_failures_free: u32,
    pub account_backoff_base_ms: u64,
    pub account_backoff_max_s: u64,
    pub source_failures_burst: u32,
    pub source_failures_per_minute: u32,
    /// Trusted JWT issuers (`[[auth.jwt]]`); none means Bearer JWTs are refused.
    pub jwt: Vec<JwtIssuerConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            realm: "skab".to_string(),
            credential_cache_ttl_s: L::CREDENTIAL_CACHE_TTL_S_DEFAULT,
            credential_cache_entries: L::CREDENTIAL_CACHE_ENTRIES_DEFAULT,
            credential_cache_max_age_s: L::CREDENTIAL_CACHE_MAX_AGE_S_DEFAULT,
            hash_concurrency: 0,
            hash_nice: L::HASH_NICE_DEFAULT,
            hash_wait_max_ms: L::HASH_WAIT_MAX_MS_DEFAULT,
            account_failures_free: L::ACCOUNT_FAILURES_FREE_DEFAULT,
            account_backoff_base_ms: L::ACCOUNT_BACKOFF_BASE_MS_DEFAULT,
            account_backoff_max_s: L::ACCOUNT_BACKOFF_MAX_S_DEFAULT,
            source_failures_burst: L::SOURCE_FAILURES_BURST_DEFAULT,
            source_failures_per_minute: L::SOURCE_FAILURES_PER_MINUTE_DEFAULT,
            jwt: Vec::new(),
        }
    }
}

/// Signature algorithm of a JWT issuer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    #[default]
    HS256,
    RS256,
    ES256,
}

/// One trusted JWT issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtIssuerConfig {
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim (one of).
    pub audience: String,
    pub algorithm: JwtAlgorithm,
    /// HS256 shared secret (text).
    pub secret: Option<String>,
    /// File holding the HS256 secret (raw bytes).
    pub secret_file: Option<PathBuf>,
    /// RS256/ES256 public key, PEM text.
    pub public_key_pem: Option<String>,
    /// File holding the RS256/ES256 public key, PEM.
    pub public_key_file: Option<PathBuf>,
    /// Claim naming the user: `user@tenant`, or the bare user when `tenant_claim` is set.
    pub user_claim: String,
    /// Claim naming the tenant; unset means the tenant comes from `user_claim`.
    pub tenant_claim: Option<String>,
    /// Claim listing the user's groups (an array of names, or one string of names
    /// separated by spaces or commas; a leading `/` is dropped); they count for spaces,
    /// shares and hand-ins while the token is valid, besides the user database's groups.
    pub groups_claim: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_s: u64,
}

impl Default for JwtIssuerConfig {
    fn default() -> Self {
        JwtIssuerConfig {
            issuer: String::new(),
            audience: String::new(),
            algorithm: JwtAlgorithm::HS256,
            secret: None,
            secret_file: None,
            public_key_pem: None,
            public_key_file: None,
            user_claim: "preferred_username".to_string(),
            tenant_claim: None,
            groups_claim: None,
            leeway_s: L::JWT_LEEWAY_S_DEFAULT,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Shared spaces and shares (docs/spaces.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpacesConfig {
    /// Put before a space's name to make the name of its folder in each member's home
    /// (e.g. `"Space "` shows space `math-9a` as `Space math-9a`); empty by default.
    pub home_folder_prefix: String,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `skab=debug,info`.
    pub level: String,
    /// The access log: `off`, `stderr`, or a file path (appended to).
    pub access: String,
    pub access_format: AccessFormat,
    /// The audit log of security events (`<data_dir>/audit/`).
    pub audit: bool,
    /// Audit records are kept at least this many days (whole months are dropped).
    pub audit_retention_days: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_string(),
            access: "off".to_string(),
            access_format: AccessFormat::Json,
            audit: true,
            audit_retention_days: crate::limits::AUDIT_RETENTION_DAYS_DEFAULT,
        }
    }
}

/// The access log's line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Apache's combined format, with the duration in microseconds appended.
    Combined,
}

/// Settings given as command-line flags (the top layer).
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "SKAB_";
/// Names of the tables; a variable `SKAB_<TABLE>_<KEY>` sets `<table>.<key>`.
const SECTIONS: &[&str] = &[
    "http", "tls", "storage", "limits", "auth", "log", "spaces", "crypto",
];

/// The environment variable a master key may be given in (`crypto.master_key_env`); not a
/// setting, so not refused as an unknown `SKAB_` variable.
pub const ENV_MASTER_KEY: &str = "SKAB_MASTER_KEY";

/// Environment variable that names the config file when `--config` is not given.
pub const ENV_CONFIG_FILE: &str = "SKAB_CONFIG";

impl Config {
    /// Builds the configuration: defaults < file < environment < flags.
    pub fn load(cli: &CliOverrides) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let config = Self::load_from(cli, &env)?;
        // The server's own files of this data dir are sealed per tenant with encryption on.
        crate::crypt::register(&config);
        Ok(config)
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_from(cli: &CliOverrides, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let file = cli.config.clone().or_else(|| {
            env.iter()
                .find(|(k, _)| k == ENV_CONFIG_FILE)
                .map(|(_, v)| PathBuf::from(v))
        });
        let mut table = match &file {
            Some(path) => read_file_table(path)?,
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let mut config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| match &file {
                    Some(path) => ConfigError::File {
                        path: path.clone(),
                        message: e.to_string(),
                    },
                    None => ConfigError::Invalid(e.to_string()),
                })?;
        if let Some(d) = &cli.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(l) = cli.listen {
            config.listen = l;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks settings that are each valid but not together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key must be set together".into(),
            ));
        }
        if let Some(c) = &self.cluster {
            c.check(c.node_id.is_some()).map_err(ConfigError::Invalid)?;
            if self.storage.object.is_none() {
                return Err(ConfigError::Invalid(
                    "[cluster] needs [storage.object]: the cells' data lives in the bucket".into(),
                ));
            }
            if self.crypto.enabled {
                return Err(ConfigError::Invalid(
                    "crypto.enabled is not available with [cluster] yet: the key store is kept \
                     per node, and a cell taken over by another node could not be read"
                        .into(),
                ));
            }
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("data_dir is empty".into()));
        }
        if self.workers > L::WORKERS_MAX {
            return Err(ConfigError::Invalid(format!(
                "workers must be at most {}",
                L::WORKERS_MAX
            )));
        }
        if self.limits.connections_max == 0 {
            return Err(ConfigError::Invalid(
                "limits.connections_max must be at least 1".into(),
            ));
        }
        if !(0..=19).contains(&self.auth.hash_nice) {
            return Err(ConfigError::Invalid(
                "auth.hash_nice must be 0 to 19".into(),
            ));
        }
        if self.auth.hash_concurrency > L::HASH_THREADS_MAX {
            return Err(ConfigError::Invalid(format!(
                "auth.hash_concurrency must be at most {}",
                L::HASH_THREADS_MAX
            )));
        }
        if self.auth.credential_cache_max_age_s < self.auth.credential_cache_ttl_s {
            return Err(ConfigError::Invalid(
                "auth.credential_cache_max_age_s must be at least auth.credential_cache_ttl_s"
                    .into(),
            ));
        }
        if self.crypto.enabled {
            let c = &self.crypto;
            let sources = [
                c.master_key_file.is_some(),
                c.master_key_env.is_some(),
                c.master_key_command.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(ConfigError::Invalid(
                    "crypto.enabled needs exactly one master key source: crypto.master_key_file, \
                     crypto.master_key_env or crypto.master_key_command"
                        .into(),
                ));
            }
        }
        crate::cors::validate_origins(&self.http.cors_origins).map_err(ConfigError::Invalid)?;
        crate::http::proxy::TrustedProxies::parse(&self.http.trusted_proxies)
            .map_err(ConfigError::Invalid)?;
        if let Some(u) = &self.http.public_url {
            crate::http::proxy::public_authority(u).map_err(ConfigError::Invalid)?;
        }
        for (i, j) in self.auth.jwt.iter().enumerate() {
            if j.issuer.is_empty() || j.audience.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "auth.jwt[{i}]: issuer and audience are required"
                )));
            }
            let has_secret = j.secret.is_some() || j.secret_file.is_some();
            let has_key = j.public_key_pem.is_some() || j.public_key_file.is_some();
            let ok = match j.algorithm {
                JwtAlgorithm::HS256 => has_secret && !has_key,
                JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => has_key && !has_secret,
            };
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "auth.jwt[{i}]: HS256 needs secret or secret_file; RS256/ES256 need \
                     public_key_pem or public_key_file (exactly one kind)"
                )));
            }
        }
        Ok(())
    }

    /// Every settable key as `key` or `table.key`, with its environment variable name.
    /// `auth.jwt` is a list of tables and is set only in the file.
    pub fn keys() -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for (path, _) in leaf_kinds() {
            let env = if path == "auth.jwt" {
                None
            } else {
                Some(env_name(&path))
            };
            out.push((path, env));
        }
        for (path, _) in jwt_leaf_kinds() {
            out.push((format!("auth.jwt[].{path}"), None));
        }
        out
    }
}

fn read_file_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>().map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The kind of value a leaf holds, read off a fully populated example.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
    Bool,
    /// A list of strings; from the environment, comma-separated.
    List,
    Other,
}

fn kind_of(v: &toml::Value) -> Kind {
    match v {
        toml::Value::String(_) => Kind::Str,
        toml::Value::Integer(_) => Kind::Int,
        toml::Value::Boolean(_) => Kind::Bool,
        toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_str) => Kind::List,
        _ => Kind::Other,
    }
}

/// Config with every optional field set, so that serialization names every key.
fn populated() -> Config {
    let mut c = Config::default();
    c.tls.cert = Some(PathBuf::from("cert.pem"));
    c.tls.key = Some(PathBuf::from("key.pem"));
    c.http.cors_origins = vec!["https://example.org".into()];
    c.http.public_url = Some("https://skab.example".to_string());
    c.http.trusted_proxies = vec!["127.0.0.1".to_string()];
    c.crypto.key_store = Some(PathBuf::from("keys"));
    c.crypto.master_key_file = Some(PathBuf::from("master.key"));
    c.crypto.master_key_env = Some(ENV_MASTER_KEY.to_string());
    c.crypto.master_key_command = Some("kms-client get".to_string());
    c
}

fn leaf_kinds() -> Vec<(String, Kind)> {
    let mut out = Vec::new();
    let Ok(toml::Value::Table(t)) = toml::Value::try_from(populated()) else {
        return out;
    };
    for (k, v) in &t {
        match v {
            toml::Value::Table(sub) => {
                for (k2, v2) in sub {
                    out.push((format!("{k}.{k2}"), kind_of(v2)));
                }
            }
            other => out.push((k.clone(), kind_of(other))),
        }
    }
    out
}

fn jwt_leaf_kinds() -> Vec<(String, Kind)> {
    let j = JwtIssuerConfig {
        secret: Some(String::new()),
        secret_file: Some(PathBuf::new()),
        public_key_pem: Some(String::new()),
        public_key_file: Some(PathBuf::new()),
        tenant_claim: Some(String::new()),
        groups_claim: Some(String::new()),
        ..JwtIssuerConfig::default()
    };
    match toml::Value::try_from(j) {
        Ok(toml::Value::Table(t)) => t.iter().map(|(k, v)| (k.clone(), kind_of(v))).collect(),
        _ => Vec::new(),
    }
}

/// `limits.body_size_max` -> `SKAB_LIMITS_BODY_SIZE_MAX`; `data_dir` -> `SKAB_DATA_DIR`.
pub fn env_name(path: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        path.replace('.', "_").to_ascii_uppercase()
    )
}

fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    let leaves = leaf_kinds();
    for (var, raw) in env {
        if !var.starts_with(ENV_PREFIX)
            || var == ENV_CONFIG_FILE
            || var == ENV_MASTER_KEY
            || var == ENV_OBJECT_SECRET_KEY
            || var == ENV_CLUSTER_SECRET
        {
            continue;
        }
        let Some((path, kind)) = leaves.iter().find(|(p, _)| env_name(p) == *var) else {
            // Unknown SKAB_ variables are refused so that a typo does not go unnoticed.
            return Err(ConfigError::Env {
                var: var.clone(),
                message: "no such setting (see docs/configuration.md)".into(),
            });
        };
        let bad = |m: &str| ConfigError::Env {
            var: var.clone(),
            message: m.to_string(),
        };
        let value = match kind {
            Kind::Str => toml::Value::String(raw.clone()),
            Kind::Int => toml::Value::Integer(
                raw.trim()
                    .parse::<i64>()
                    .map_err(|_| bad("expected an integer"))?,
            ),
            Kind::Bool => toml::Value::Boolean(
                raw.trim()
                    .parse::<bool>()
                    .map_err(|_| bad("expected true or false"))?,
            ),
            Kind::List => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
            Kind::Other => return Err(bad("this setting can be set only in the config file")),
        };
        match path.split_once('.') {
            None => {
                table.insert(path.clone(), value);
            }
            Some((section, key)) => {
                debug_assert!(SECTIONS.contains(&section));
                let entry = table
                    .entry(section.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let toml::Value::Table(sub) = entry else {
                    return Err(bad("the config file has this section as a non-table"));
                };
                sub.insert(key.to_string(), value);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_file_env_or_flags() {
        let c = Config::load_from(&CliOverrides::default(), &[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.data_dir, PathBuf::from("./skab-data"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.storage.dedup_domain, DedupDomain::Tenant);
    }

    #[test]
    fn file_then_env_then_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skab.toml");
        std::fs::write(
            &path,
            "data_dir = \"/file\"\nlisten = \"0.0.0.0:1\"\n[limits]\nxml_depth_max = 7\n\
             body_size_max = 5\n[storage]\ndedup_domain = \"global\"\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        let cli = CliOverrides {
            config: Some(path.clone()),
            ..Default::default()
        };
        // File only.
        let c = Config::load_from(&cli, &[]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/file"));
        assert_eq!(c.limits.xml_depth_max, 7);
        assert_eq!(c.limits.body_size_max, 5);
        assert_eq!(c.storage.dedup_domain, DedupDomain::Global);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.limits.path_len_max, L::PATH_LEN_MAX_DEFAULT);
        // Env over file.
        let e = env(&[
            ("SKAB_DATA_DIR", "/env"),
            ("SKAB_LIMITS_XML_DEPTH_MAX", "9"),
            ("SKAB_AUTH_CREDENTIAL_CACHE_TTL_S", "17"),
            ("SKAB_LISTEN", "10.0.0.1:2"),
        ]);
        let c = Config::load_from(&cli, &e).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/env"));
        assert_eq!(c.listen.to_string(), "10.0.0.1:2");
        assert_eq!(c.limits.xml_depth_max, 9);
        assert_eq!(
            c.limits.body_size_max, 5,
            "file value kept where env is silent"
        );
        assert_eq!(c.auth.credential_cache_ttl_s, 17);
        // Flags over env.
        let cli2 = CliOverrides {
            config: Some(path),
            data_dir: Some(PathBuf::from("/flag")),
            listen: Some("[::1]:3".parse().unwrap()),
        };
        let c = Config::load_from(&cli2, &e).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/flag"));
        assert_eq!(c.listen.to_string(), "[::1]:3");
        assert_eq!(c.limits.xml_depth_max, 9);
    }

    #[test]
    fn cors_origins_from_file_and_comma_separated_env() {
        let c = Config::load_from(&CliOverrides::default(), &[]).unwrap();
        assert!(c.http.cors_origins.is_empty());
        let e = env(&[(
            "SKAB_HTTP_CORS_ORIGINS",
            "https://a.example, http://127.0.0.1:8081,",
        )]);
        let c = Config::load_from(&CliOverrides::default(), &e).unwrap();
        assert_eq!(
            c.http.cors_origins,
            vec!["https://a.example", "http://127.0.0.1:8081"]
        );
        assert!(Config::keys().iter().any(
            |(k, v)| k == "http.cors_origins" && v.as_deref() == Some("SKAB_HTTP_CORS_ORIGINS")
        ));
        let e = env(&[("SKAB_HTTP_CORS_ORIGINS", "*")]);
        assert!(Config::load_from(&CliOverrides::default(), &e).is_err());
        // `auth.jwt` stays file-only.
        let e = env(&[("SKAB_AUTH_JWT", "x")]);
        assert!(Config::load_from(&CliOverrides::default(), &e).is_err());
    }

    #[test]
    fn the_io_backend_is_chosen_by_name() {
        let c = Config::load_from(&CliOverrides::default(), &[]).unwrap();
        assert_eq!(c.storage.io, IoBackend::Auto);
        for (name, want) in [("std", IoBackend::Std), ("uring", IoBackend::Uring)] {
            let e = env(&[("SKAB_STORAGE_IO", name)]);
            let c = Config::load_from(&CliOverrides::default(), &e).unwrap();
            assert_eq!(c.storage.io, want);
        }
        let e = env(&[("SKAB_STORAGE_IO", "aio")]);
        let err = Config::load_from(&CliOverrides::default(), &e).unwrap_err();
        assert!(err.to_string().contains("storage.io"), "{err}");
    }

    #[test]
    fn proxy_settings_from_file_and_env() {
        let c = Config::load_from(&CliOverrides::default(), &[]).unwrap();
        assert!(c.http.trusted_proxies.is_empty() && c.http.public_url.is_none());
        let e = env(&[
            (
                "SKAB_HTTP_TRUSTED_PROXIES",
                "127.0.0.1, 10.0.0.0/8,,2001:db8::/32",
            ),
            ("SKAB_HTTP_PUBLIC_URL", "https://skab.example.dk"),
            ("SKAB_LIMITS_INFLIGHT_PER_ACCOUNT_MAX", "1"),
        ]);
        let c = Config::load_from(&CliOverrides::default(), &e).unwrap();
        assert_eq!(
            c.http.trusted_proxies,
            ["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"]
        );
        assert_eq!(
            c.http.public_url.as_deref(),
            Some("https://skab.example.dk")
        );
        assert_eq!(c.limits.inflight_per_account_max, 1);
        assert_eq!(c.http.client_header, ClientHeader::XForwardedFor);
        let e = env(&[("SKAB_HTTP_CLIENT_HEADER", "forwarded")]);
        let c = Config::load_from(&CliOverrides::default(), &e).unwrap();
        assert_eq!(c.http.client_header, ClientHeader::Forwarded);
        assert_eq!(
            c.limits.inflight_per_tenant_max,
            L::INFLIGHT_PER_TENANT_MAX_DEFAULT
        );
        for (var, bad) in [
            ("SKAB_HTTP_TRUSTED_PROXIES", "10.0.0.0/40"),
            ("SKAB_HTTP_TRUSTED_PROXIES", "proxy.example"),
            ("SKAB_HTTP_PUBLIC_URL", "skab.example.dk"),
            ("SKAB_HTTP_PUBLIC_URL", "ftp://skab.example.dk"),
        ] {
            let e = env(&[(var, bad)]);
            assert!(
                Config::load_from(&CliOverrides::default(), &e).is_err(),
                "{var}={bad}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[http]\ntrusted_proxies = [\"127.0.0.1\"]\npublic_url = \"http://h:8080/\"\n",
        )
        .unwrap();
        let cli = CliOverrides {
            config: Some(path),
            ..Default::default()
        };
        let c = Config::load_from(&cli, &[]).unwrap();
        assert_eq!(c.http.trusted_proxies, ["127.0.0.1"]);
    }

    #[test]
    fn config_file_named_by_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[storage]\nversions_kept = 3\n").unwrap();
        let e = env(&[("SKAB_CONFIG", path.to_str().unwrap())]);
        let c = Config::load_from(&CliOverrides::default(), &e).unwrap();
        assert_eq!(c.storage.versions_kept, 3);
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let e = env(&[("SKAB_LIMITS_XML_DEPTH_MAX", "deep")]);
        let err = Config::load_from(&CliOverrides::default(), &e).unwrap_err();
        assert!(
            err.to_string().contains("SKAB_LIMITS_XML_DEPTH_MAX"),
            "{err}"
        );
        let e = env(&[("SKAB_LIMITS_NO_SUCH", "1")]);
        assert!(Config::load_from(&CliOverrides::default(), &e).is_err());
        let e = env(&[("SKAB_AUTH_JWT", "x")]);
        assert!(Config::load_from(&CliOverrides::default(), &e).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[limits]\nunknown_key = 1\n").unwrap();
        let cli = CliOverrides {
            config: Some(path.clone()),
            ..Default::default()
        };
        let err = Config::load_from(&cli, &[]).unwrap_err();
        assert!(err.to_string().contains("unknown_key"), "{err}");
        std::fs::write(&path, "[tls]\ncert = \"/c.pem\"\n").unwrap();
        assert!(Config::load_from(&cli, &[]).is_err(), "cert without key");
        std::fs::write(&path, "[[auth.jwt]]\nissuer = \"i\"\naudience = \"a\"\n").unwrap();
        assert!(
            Config::load_from(&cli, &[]).is_err(),
            "HS256 without secret"
        );
        let missing = CliOverrides {
            config: Some(dir.path().join("missing.toml")),
            ..Default::default()
        };
        assert!(matches!(
            Config::load_from(&missing, &[]),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn jwt_issuers_parse_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[auth.jwt]]\nissuer = \"https://idp\"\naudience = \"skab\"\nsecret = \"s\"\n",
        )
        .unwrap();
        let cli = CliOverrides {
            config: Some(path),
            ..Default::default()
        };
        let c = Config::load_from(&cli, &[]).unwrap();
        assert_eq!(c.auth.jwt.len(), 1);
        assert_eq!(c.auth.jwt[0].user_claim, "preferred_username");
        assert_eq!(c.auth.jwt[0].leeway_s, L::JWT_LEEWAY_S_DEFAULT);
    }

    #[test]
    fn a_cluster_needs_object_storage_a_secret_and_a_node_id_to_serve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let cli = CliOverrides {
                config: Some(path.clone()),
                ..Default::default()
            };
            Config::load_from(&cli, &[])
        };
        let object = "[storage.object]\nendpoints = [\"http://127.0.0.1:1\"]\nbucket = \"b\"\naccess_key = \"k\"\n";
        let secret = "a".repeat(64);
        let node = format!(
            "{object}[cluster]\nnode_id = \"n1\"\nadvertise_url = \"http://127.0.0.1:2\"\netcd = [\"http://127.0.0.1:3\"]\nsecret = \"{secret}\"\n"
        );
        let c = load(&node).unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!(cl.cells, L::CLUSTER_CELLS_DEFAULT);
        assert_eq!(cl.forward, ForwardMode::Proxy);
        assert_eq!(cl.secret_bytes().unwrap(), [0xaa; 32]);
        // An admin configuration: no node id, no URL.
        let admin =
            format!("{object}[cluster]\netcd = [\"http://127.0.0.1:3\"]\nsecret = \"{secret}\"\n");
        assert!(load(&admin).unwrap().cluster.unwrap().node_id.is_none());
        for (bad, why) in [
            (node.replace(object, ""), "storage.object"),
            (node.replace(&secret, "abc"), "64 hex"),
            (
                node.replace("node_id = \"n1\"", "node_id = \"a b\""),
                "node_id",
            ),
            (
                node.replace("http://127.0.0.1:2", "127.0.0.1:2"),
                "advertise_url",
            ),
            (format!("{node}cells = 0\n"), "cluster.cells"),
            (format!("{node}lease_ttl_s = 1\n"), "lease_ttl_s"),
            (
                format!("{node}[crypto]\nenabled = true\n"),
                "crypto.enabled",
            ),
        ] {
            let e = load(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn every_key_is_documented_with_its_env_name() {
        let doc = include_str!("../../docs/configuration.md");
        let keys = Config::keys();
        assert!(keys.len() > 30, "keys() found {} keys", keys.len());
        for (key, env) in keys {
            assert!(doc.contains(&format!("`{key}`")), "{key} missing in docs");
            if let Some(env) = env {
                assert!(doc.contains(&format!("`{env}`")), "{env} missing in docs");
            }
        }
    }
}
